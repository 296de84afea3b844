"""torch_bench.py — the benchmark configurations in PyTorch on the CPU, one thread, as an
application writes them: `self.rnn = nn.LSTM(I, H, N)` (or nn.GRU, nn.RNN) and `self.head =
nn.ModuleList([nn.Linear(...), ...])`, whose state_dict names are the weights file's.

    torch_bench.py --version
    torch_bench.py --model DESC.json --data W.safetensors X.npy DY.npy --check OUTDIR
    torch_bench.py --model DESC.json --data W.safetensors X.npy DY.npy [--runs N] [--modes step,forward,train]

DESC.json is an rnnc benchmark binary's `describe` (bench/rnnc_main.c). --check writes, each from
the zero state, y_step.npy (T calls of one step each, state carried), y_seq.npy, y_train.npy and
grads.safetensors (backward of DY, no loss) in float32, and ref_y.npy / ref_grads.safetensors, the
same network in float64: the reference every implementation is compared with. Otherwise the modes
are timed and one JSON object printed, as `<model> bench --json` of the generated driver does:

    step     model(x_t, state) for one timestep [1, B, I], the returned state fed to the next call,
             under torch.inference_mode(): what an application streaming with PyTorch does
    forward  model(x) over the whole sequence, under torch.inference_mode()
    train    y = model(x); y.backward(dy): forward with autograd and backward, no loss, no optimizer
             (gradients accumulate within a run and are reset before each run, as rnnc's bench does)

Timing as the driver's: warm-up >= 50 ms, calls per run so that a run lasts >= 2 ms, runs during
which the process was preempted redone (up to --runs more), median / min / max per call.
Run it with Debian's /usr/bin/python3 (python3-torch).
"""
import argparse
import json
import os
import resource
import sys
import time

import numpy as np
import torch
from safetensors_np import read_safetensors, write_safetensors
from torch import nn

MIN_RUN_NS = 2_000_000
WARMUP_NS = 50_000_000
PATIENCE_NS = 200_000_000

ACTIVATIONS = {"linear": lambda v: v, "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}


class Net(nn.Module):
    def __init__(self, desc):
        super().__init__()
        layers = desc["layers"]
        cells = {l["cell"] for l in layers}
        hidden = {l["hidden"] for l in layers}
        if len(cells) != 1 or len(hidden) != 1:
            raise SystemExit("torch_bench: only stacks of one cell type and size map onto nn.LSTM/GRU/RNN")
        cell, H, N, I = layers[0]["cell"], layers[0]["hidden"], len(layers), desc["input"]
        if cell == "lstm":
            self.rnn = nn.LSTM(I, H, N)
        elif cell == "gru":
            self.rnn = nn.GRU(I, H, N)
        else:
            self.rnn = nn.RNN(I, H, N, nonlinearity="relu" if cell == "rnn_relu" else "tanh")
        self.head = nn.ModuleList([nn.Linear(h["input"], h["output"]) for h in desc["heads"]])
        self.acts = [ACTIVATIONS[h["act"]] for h in desc["heads"]]

    def forward(self, x, state=None):
        h, state = self.rnn(x, state)
        for act, linear in zip(self.acts, self.head):
            h = act(linear(h))
        return h, state


def load(model, path):
    tensors = read_safetensors(path)
    expected = model.state_dict()
    if set(tensors) != set(expected):
        raise SystemExit(f"torch_bench: {path}: tensors {sorted(tensors)} != the model's {sorted(expected)}")
    model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()}, strict=True)


# ---- Timing ----------------------------------------------------------------------------------
def preemptions():
    return resource.getrusage(resource.RUSAGE_SELF).ru_nivcsw


def measure(runs, prepare, call):
    def run(calls):
        prepare()
        sw = preemptions()
        t0 = time.perf_counter_ns()
        for _ in range(calls):
            call()
        ns = time.perf_counter_ns() - t0
        return ns, preemptions() != sw

    calls, spent = 1, 0
    while True:
        ns, pre = run(calls)
        spent += max(ns, 1)
        if ns >= MIN_RUN_NS and (not pre or spent >= PATIENCE_NS) and spent >= WARMUP_NS:
            break
        if ns < MIN_RUN_NS:
            grow = 1.25 * MIN_RUN_NS / ns if ns > 0 else 100
            calls = int(np.ceil(calls * min(grow, 100)))
    clean, aside = [], []
    for _ in range(2 * runs):
        if len(clean) >= runs:
            break
        ns, pre = run(calls)
        (aside if pre else clean).append(ns * 1e-3 / calls)
    aside.sort()
    preempted = runs - len(clean)
    clean += aside[:preempted]
    clean.sort()
    return {"us": float(np.median(clean)), "min_us": clean[0], "max_us": clean[-1], "calls_per_run": calls,
            "preempted_runs": preempted}


# ---- Commands --------------------------------------------------------------------------------
def version():
    cap = ""
    for line in torch.__config__.show().splitlines():
        if "CPU capability usage" in line:
            cap = line.split(":", 1)[1].strip()
    print(json.dumps({"torch": torch.__version__, "numpy": np.__version__, "torch_cpu_capability": cap,
                      "torch_threads": torch.get_num_threads(), "mkldnn": torch.backends.mkldnn.is_available()}))


def run_steps(model, x, B):
    ys, state = [], None
    for t in range(x.shape[0]):
        y, state = model(x[t:t + 1], state)
        ys.append(y)
    return torch.cat(ys)


def check(model, x, dy, out):
    def grads(m):
        return {k: p.grad.detach().numpy().copy() for k, p in m.named_parameters()}

    with torch.inference_mode():
        np.save(os.path.join(out, "y_step.npy"), run_steps(model, x, x.shape[1]).numpy())
        np.save(os.path.join(out, "y_seq.npy"), model(x)[0].numpy())
    model.zero_grad(set_to_none=True)
    y, _ = model(x)
    y.backward(dy)
    np.save(os.path.join(out, "y_train.npy"), y.detach().numpy())
    write_safetensors(os.path.join(out, "grads.safetensors"), grads(model))
    ref = model.double()
    ref.zero_grad(set_to_none=True)
    y, _ = ref(x.double())
    y.backward(dy.double())
    np.save(os.path.join(out, "ref_y.npy"), y.detach().numpy())
    write_safetensors(os.path.join(out, "ref_grads.safetensors"), grads(ref))


def bench(model, x, dy, runs, modes, desc):
    T, B = x.shape[0], x.shape[1]
    result = {"impl": "pytorch", "model": desc["name"], "threads": torch.get_num_threads(), "T": T, "B": B, "runs": runs}

    def put(name, r):
        for k, v in r.items():
            result[f"{name}_{k}"] = v

    if "step" in modes:
        model.eval()
        ctx = {"t": 0, "state": None}

        def prepare():
            ctx["t"], ctx["state"] = 0, None

        def step():
            t = ctx["t"]
            _, ctx["state"] = model(x[t:t + 1], ctx["state"])
            ctx["t"] = t + 1 if t + 1 < T else 0

        with torch.inference_mode():
            put("step", measure(runs, prepare, step))
    if "forward" in modes:
        model.eval()
        with torch.inference_mode():
            put("forward", measure(runs, lambda: None, lambda: model(x)))
    if "train" in modes:
        model.train()

        def train():
            y, _ = model(x)
            y.backward(dy)

        put("train", measure(runs, lambda: model.zero_grad(set_to_none=True), train))
    print(json.dumps(result))


def main():
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="store_true")
    ap.add_argument("--model")
    ap.add_argument("--data", nargs=3, metavar=("W", "X", "DY"))
    ap.add_argument("--check", metavar="OUTDIR")
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--modes", default="step,forward,train")
    a = ap.parse_args()
    if a.version:
        return version()
    if not a.model or not a.data:
        ap.error("--model and --data are required")
    with open(a.model) as f:
        desc = json.load(f)
    torch.manual_seed(0)
    model = Net(desc)
    load(model, a.data[0])
    x = torch.from_numpy(np.load(a.data[1]))
    dy = torch.from_numpy(np.load(a.data[2]))
    if a.check:
        return check(model, x, dy, a.check)
    bench(model, x, dy, max(1, a.runs), a.modes.split(","), desc)


if __name__ == "__main__":
    sys.exit(main())
