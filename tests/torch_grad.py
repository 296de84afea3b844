#!/usr/bin/python3
"""torch_grad.py: PyTorch's side of the gradient and workflow conformance tests (tests/test_torch_grad.c).

usage: torch_grad.py ref MODELS DIR...
       torch_grad.py c2t MODELS DIR...

MODELS is the directory holding the generated PyTorch modules <name>.py (`rnnc generate` writes
them beside the C sources). Each DIR holds arch.json, written by the C test from a generated
model's descriptor: the fields of tests/torch_forward.py's arch.json (name, dtype, input, batch,
seq_len, output, output_last, seed, layers, heads, tensors, runs) plus

    "loss": "mse" | "cross_entropy" | "bce",
    "tbptt": [T1, T2],                        the two chunks of the truncated-BPTT case
    "train": {"steps": 5, "lr": 0.01},        Adam steps of the workflow cases
    "step_lr": 0.001                          lr of the one torch step on the C-trained weights

Mode "ref", run once before the tests, writes into each DIR:

  Gradients, computed by torch autograd on the network of tests/torch_forward.py (separate
  torch.nn.LSTM / GRU / RNN modules and nn.Linear, torch's default init after
  torch.manual_seed(seed)), with the loss as torch.nn.functional's mse_loss, cross_entropy (class
  indices) or binary_cross_entropy_with_logits, mean-reduced:
    weights.safetensors              the weights, under DESIGN.md's PyTorch names
    x_TAG.npy, target_TAG.npy        per run: input [T][B][I], target ([T][B][O], or [T][B] int32
                                     class indices; without T when output_last)
    h0_TAG_l{k}.npy, c0_TAG_l{k}.npy the start state of a warm run, [B][H_k]
    loss_TAG.npy                     the loss, float64 [1]
    grad_TAG.safetensors             every parameter's .grad, under the parameter's name
    dx_TAG.npy                       x.grad, [T][B][I]
  Truncated BPTT: chunk 1 (T1 steps) from the zero state, backward; chunk 2 (T2 steps) from chunk
  1's final state .detach()ed, backward; the .grad accumulated over both:
    x_tb{1,2}.npy, target_tb{1,2}.npy, loss_tb.npy (float64 [2]), grad_tb.safetensors,
    dx_tb{1,2}.npy
  Workflow torch -> C, through the generated module: Model() after torch.manual_seed(seed),
  train.steps Adam steps (lr train.lr) on x_zero, target_zero from the zero state, saved with the
  module's save(), then the trained module's forward and loss on the same data:
    trained.safetensors, y_trained.npy, h_trained_l{k}.npy, c_trained_l{k}.npy (lstm),
    loss_trained.npy (float64 [1])

Mode "c2t", run by the C test after it trained each model in C and saved it with
nnrt_model_save as DIR/c_trained.safetensors: the generated module's load() reads it, its forward
from the zero state runs on x_zero, and one torch.optim.Adam step (lr step_lr) follows. Writes:
    y_py.npy, h_py_l{k}.npy, c_py_l{k}.npy (lstm)   forward on the loaded weights
    loss_py.npy                                      float64 [2]: loss before and after the step

When torch or numpy cannot be imported the script prints why and exits with status 77, which the
C test reports as "SKIPPED" (or a failure under RNNC_REQUIRE_TORCH=1).
"""

import importlib
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in tests/ or next to the generated modules

try:
    import numpy as np
    import torch
except ImportError as e:  # the C test turns this status into SKIPPED
    print(f"cannot import torch and numpy: {e}")
    sys.exit(77)

from torch.nn import functional as F

from torch_forward import DTYPES, Net, write_safetensors  # tests/torch_forward.py, same directory


def read_arch(d):
    with open(os.path.join(d, "arch.json")) as f:
        return json.load(f)


def loss_fn(arch, y, target):
    """The model's loss, mean-reduced, as torch.nn.functional computes it."""
    if arch["loss"] == "mse":
        return F.mse_loss(y, target)
    if arch["loss"] == "bce":
        return F.binary_cross_entropy_with_logits(y, target)
    if arch["loss"] == "cross_entropy":
        return F.cross_entropy(y.reshape(-1, arch["output"]), target.reshape(-1).long())
    raise ValueError(f"{arch['name']}: unknown loss {arch['loss']!r}")


def draw_data(arch, T, gen, dtype):
    """x [T][B][I] in [-2, 2); a target the loss accepts: mse U(-1, 1), bce probabilities U(0, 1)
    (soft labels, which BCEWithLogitsLoss allows), cross_entropy int32 class indices."""
    B, I, O = arch["batch"], arch["input"], arch["output"]
    x = (torch.rand(T, B, I, generator=gen, dtype=torch.float64) * 4 - 2).to(dtype)
    rows = (B,) if arch["output_last"] else (T, B)
    if arch["loss"] == "cross_entropy":
        target = torch.randint(0, O, rows, generator=gen, dtype=torch.int32)
    elif arch["loss"] == "bce":
        target = torch.rand(rows + (O,), generator=gen, dtype=torch.float64).to(dtype)
    else:
        target = (torch.rand(rows + (O,), generator=gen, dtype=torch.float64) * 2 - 1).to(dtype)
    return x, target


def draw_state(arch, gen, dtype, warm):
    """h0, c0 per layer, [1][B][H_k]: zero, or U(-1, 1) (|.| for a relu layer, whose state is
    never negative), drawn in double and rounded to the model's dtype."""
    h0, c0 = [], []
    for L in arch["layers"]:
        shape = (1, arch["batch"], L["hidden"])
        if warm:
            h = torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1
            if L["cell"] == "rnn_relu":
                h = h.abs()
            c = torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1
        else:
            h = torch.zeros(shape, dtype=torch.float64)
            c = torch.zeros(shape, dtype=torch.float64)
        h0.append(h.to(dtype))
        c0.append(c.to(dtype))
    return h0, c0


def save_npy(d, name, t):
    np.save(os.path.join(d, name), t.detach().numpy())


def save_state(d, arch, prefix, hs, cs):
    """Per layer: prefix h_l{k}.npy (and c for lstm), [B][H_k], from [1][B][H_k] tensors."""
    for k, L in enumerate(arch["layers"]):
        save_npy(d, f"h{prefix}_l{k}.npy", hs[k][0])
        if L["cell"] == "lstm":
            save_npy(d, f"c{prefix}_l{k}.npy", cs[k][0])


def save_grads(path, arch, named):
    write_safetensors(path, [(t["name"], named[t["name"]].grad.detach().numpy())
                             for t in arch["tensors"]])


def import_generated(models, arch):
    """The generated module <name>.py, checked against the C model's tensor table."""
    if models not in sys.path:
        sys.path.insert(0, models)
    name = arch["name"]
    try:
        mod = importlib.import_module(name)
    except ImportError as e:
        raise SystemExit(f"cannot import the generated module {name} from {models}: {e}")
    have = {k: list(v.shape) for k, v in mod.Model().state_dict().items()}
    want = {t["name"]: list(t["shape"]) for t in arch["tensors"]}
    if have != want:
        raise SystemExit(f"{models}/{name}.py: state_dict {have} differs from the C model's {want}")
    return mod


def ref_gradients(d, arch, dtype):
    torch.manual_seed(arch["seed"])
    # In the model's dtype, so an f64 model's weights are drawn in full double precision.
    net = Net(arch, dtype)
    named = net.named_tensors()
    want = [(t["name"], list(t["shape"])) for t in arch["tensors"]]
    have = [(name, list(p.shape)) for name, p in named.items()]
    if sorted(want) != sorted(have):
        raise SystemExit(f"{d}: the model's tensors {want} differ from torch's {have}")
    write_safetensors(os.path.join(d, "weights.safetensors"),
                      [(name, named[name].detach().numpy()) for name, _ in want])
    last = bool(arch["output_last"])
    gen = torch.Generator().manual_seed(arch["seed"] + 1)

    # One forward and backward per run, from the zero or a random state (a constant: h0 and c0
    # do not require grad, as the C model's start state).
    for run in arch["runs"]:
        tag, T = run["tag"], run["T"]
        x, target = draw_data(arch, T, gen, dtype)
        h0, c0 = draw_state(arch, gen, dtype, run["warm"])
        net.zero_grad(set_to_none=True)
        x.requires_grad_(True)
        y, _, _ = net(x, h0, c0, last)
        loss = loss_fn(arch, y, target)
        loss.backward()
        save_npy(d, f"x_{tag}.npy", x)
        save_npy(d, f"target_{tag}.npy", target)
        save_npy(d, f"dx_{tag}.npy", x.grad)
        np.save(os.path.join(d, f"loss_{tag}.npy"), np.array([loss.item()], dtype=np.float64))
        save_grads(os.path.join(d, f"grad_{tag}.safetensors"), arch, named)
        if run["warm"]:
            save_state(d, arch, f"0_{tag}", h0, c0)

    # Truncated BPTT over two chunks, the second from the first's final state, detached.
    net.zero_grad(set_to_none=True)
    h0, c0 = draw_state(arch, gen, dtype, False)
    losses = []
    for chunk, T in enumerate(arch["tbptt"], start=1):
        x, target = draw_data(arch, T, gen, dtype)
        x.requires_grad_(True)
        y, hs, cs = net(x, h0, c0, last)
        loss = loss_fn(arch, y, target)
        loss.backward()  # accumulates into .grad
        losses.append(loss.item())
        save_npy(d, f"x_tb{chunk}.npy", x)
        save_npy(d, f"target_tb{chunk}.npy", target)
        save_npy(d, f"dx_tb{chunk}.npy", x.grad)
        h0 = [h.detach() for h in hs]
        c0 = [c.detach() if c is not None else torch.zeros_like(h) for h, c in zip(h0, cs)]
    np.save(os.path.join(d, "loss_tb.npy"), np.array(losses, dtype=np.float64))
    save_grads(os.path.join(d, "grad_tb.safetensors"), arch, named)


def torch_to_c(d, arch, mod):
    """Train the generated module with Adam, save it with its save(); the C model loads that."""
    x = torch.from_numpy(np.load(os.path.join(d, "x_zero.npy")))
    target = torch.from_numpy(np.load(os.path.join(d, "target_zero.npy")))
    torch.manual_seed(arch["seed"] + 2)
    model = mod.Model()
    opt = torch.optim.Adam(model.parameters(), lr=arch["train"]["lr"], foreach=False)
    for _ in range(arch["train"]["steps"]):
        opt.zero_grad()
        y, _ = model(x)
        model.loss(y, target).backward()
        opt.step()
    mod.save(model, os.path.join(d, "trained.safetensors"))
    with torch.no_grad():
        y, state = model(x)
        loss = model.loss(y, target)
    save_trained(d, arch, "_trained", y, state, [loss.item()])


def save_trained(d, arch, suffix, y, state, losses):
    save_npy(d, f"y{suffix}.npy", y)
    hs = [s[0] if L["cell"] == "lstm" else s for s, L in zip(state, arch["layers"])]
    cs = [s[1] if L["cell"] == "lstm" else None for s, L in zip(state, arch["layers"])]
    save_state(d, arch, suffix, hs, cs)
    np.save(os.path.join(d, f"loss{suffix}.npy"), np.array(losses, dtype=np.float64))


def c_to_torch(d, arch, mod):
    """Load the C-trained weights with the module's load(), run its forward, one more Adam step."""
    x = torch.from_numpy(np.load(os.path.join(d, "x_zero.npy")))
    target = torch.from_numpy(np.load(os.path.join(d, "target_zero.npy")))
    model = mod.Model()
    mod.load(model, os.path.join(d, "c_trained.safetensors"))
    with torch.no_grad():
        y, state = model(x)
        before = model.loss(y, target).item()
    opt = torch.optim.Adam(model.parameters(), lr=arch["step_lr"], foreach=False)
    opt.zero_grad()
    y2, _ = model(x)
    model.loss(y2, target).backward()
    opt.step()
    with torch.no_grad():
        after = model.loss(model(x)[0], target).item()
    save_trained(d, arch, "_py", y, state, [before, after])


def main(argv):
    if len(argv) < 4 or argv[1] not in ("ref", "c2t"):
        print("\n".join(__doc__.strip().splitlines()[2:4]), file=sys.stderr)
        return 2
    mode, models = argv[1], argv[2]
    torch.set_num_threads(1)  # deterministic and quick at these sizes
    for d in argv[3:]:
        arch = read_arch(d)
        dtype = DTYPES[arch["dtype"]]
        mod = import_generated(models, arch)
        if mode == "ref":
            ref_gradients(d, arch, dtype)
            torch_to_c(d, arch, mod)
        else:
            c_to_torch(d, arch, mod)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
