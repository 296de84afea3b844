#!/usr/bin/python3
"""torch_optim.py: PyTorch's side of the optimizer conformance test (tests/test_optim.c).

usage: torch_optim.py DIR

DIR/cases.json, written by the C test from its case table, lists the cases:

    {"cases": [{"name": "adam_wd_f32", "optim": "adam", "dtype": "float32", "n": 1031,
                "steps": 3, "seed": 7, "lr": 0.01, "weight_decay": 0.1, "momentum": 0,
                "dampening": 0, "nesterov": 0, "beta1": 0.8, "beta2": 0.99, "eps": 1e-06}, ...]}

optim is sgd, adam or adamw; the hyper-parameters are printed with 17 significant digits, so
Python sees the very doubles the C side uses. For each case this script draws, after
torch.manual_seed(seed), a parameter vector of n elements and `steps` gradients, runs
torch.optim.SGD / Adam / AdamW (foreach=False: the single-tensor code path) over them, and writes
into DIR/<name>/:

    params0.npy   the parameters before the first step, [n]
    grads.npy     the gradient of each step, [steps][n]
    params.npy    torch's parameters after each step, [steps][n]

in the case's dtype. Gradient magnitudes spread over seven decades (1e-6 to 10) so that Adam's
eps and SGD's weight decay matter for some elements and not for others, and a few parameters and
gradients are exactly zero.

The last line printed is "torch VERSION numpy VERSION", which the C test shows once.
"""

import json
import os
import sys

import numpy as np
import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def make_optimizer(case, param):
    kind = case["optim"]
    if kind == "sgd":
        return torch.optim.SGD([param], lr=case["lr"], momentum=case["momentum"],
                               dampening=case["dampening"], weight_decay=case["weight_decay"],
                               nesterov=bool(case["nesterov"]), foreach=False)
    betas = (case["beta1"], case["beta2"])
    if kind == "adam":
        return torch.optim.Adam([param], lr=case["lr"], betas=betas, eps=case["eps"],
                                weight_decay=case["weight_decay"], foreach=False)
    if kind == "adamw":
        return torch.optim.AdamW([param], lr=case["lr"], betas=betas, eps=case["eps"],
                                 weight_decay=case["weight_decay"], foreach=False)
    raise ValueError(f"case {case['name']}: unknown optimizer {kind!r}")


def run_case(case, out_dir):
    dtype = DTYPES[case["dtype"]]
    n, steps = case["n"], case["steps"]
    torch.manual_seed(case["seed"])
    params0 = torch.randn(n, dtype=dtype)
    params0[:3] = 0
    scale = torch.pow(10.0, torch.empty(steps, n, dtype=torch.float64).uniform_(-6, 1)).to(dtype)
    grads = torch.randn(steps, n, dtype=dtype) * scale
    grads[:, 1:5] = 0

    param = torch.nn.Parameter(params0.clone())
    opt = make_optimizer(case, param)
    after = torch.empty(steps, n, dtype=dtype)
    for k in range(steps):
        param.grad = grads[k].clone()
        opt.step()
        after[k] = param.detach()

    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, "params0.npy"), params0.numpy())
    np.save(os.path.join(out_dir, "grads.npy"), grads.numpy())
    np.save(os.path.join(out_dir, "params.npy"), after.numpy())


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: torch_optim.py DIR")
    with open(os.path.join(argv[1], "cases.json")) as f:
        cases = json.load(f)["cases"]
    torch.set_num_threads(1)
    for case in cases:
        run_case(case, os.path.join(argv[1], case["name"]))
    print(f"torch {torch.__version__} numpy {np.__version__}")


if __name__ == "__main__":
    main(sys.argv)
