#!/usr/bin/python3
"""torch_forward.py: PyTorch's side of the conformance test (tests/test_torch.c).

usage: torch_forward.py DIR...

Each DIR holds arch.json, written by the C test from a generated model's descriptor:

    {"name": "torch_lstm_all_f32", "dtype": "float32", "input": 13, "batch": 3,
     "seq_len": 11, "output": 3, "output_last": 0, "seed": 1234,
     "layers": [{"cell": "lstm", "input": 13, "hidden": 17}, ...],   cell: rnn_tanh|rnn_relu|gru|lstm
     "heads": [{"act": "tanh", "input": 33, "output": 7}, ...],      act: linear|relu|tanh|sigmoid
     "tensors": [{"name": "rnn.weight_ih_l0", "shape": [68, 13]}, ...],
     "runs": [{"tag": "zero", "T": 11, "warm": 0}, {"tag": "warm", "T": 6, "warm": 1}]}

For it this script builds the equivalent torch module: one nn.LSTM / nn.GRU / nn.RNN per layer
(the sizes may differ from layer to layer, which one multi-layer module cannot express) and an
nn.Linear per head layer, in float or double, initialised by torch's own default init after
torch.manual_seed(seed). It writes into DIR:

    weights.safetensors        the state dict under DESIGN.md's PyTorch names (rnn.weight_ih_l{k},
                               ..., head.{j}.weight, head.{j}.bias), in the "tensors" order
    x_TAG.npy                  the input, [T][B][I], time-major
    h0_TAG_l{k}.npy, c0_...    the start state of a warm run (h, and c for lstm), [B][H_k]
    y_TAG.npy                  torch's output, [T][B][O] (or [B][O] when output_last)
    h_TAG_l{k}.npy, c_...      torch's final state, [B][H_k]

The safetensors file is written by hand (8-byte little-endian header length, JSON header padded
with spaces to a multiple of 8, then the raw little-endian data), because the safetensors Python
package is not in Debian.
"""

import json
import os
import struct
import sys

import numpy as np
import torch
from torch import nn

DTYPES = {"float32": torch.float32, "float64": torch.float64}
ACTS = {
    "linear": lambda v: v,
    "relu": torch.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
}


class Net(nn.Module):
    """The architecture of an rnnc model, as separate per-layer torch modules."""

    def __init__(self, arch, dtype):
        super().__init__()
        self.cells = [L["cell"] for L in arch["layers"]]
        self.layers = nn.ModuleList()
        for L in arch["layers"]:
            cell, i, h = L["cell"], L["input"], L["hidden"]
            if cell == "lstm":
                self.layers.append(nn.LSTM(i, h, 1, dtype=dtype))
            elif cell == "gru":
                self.layers.append(nn.GRU(i, h, 1, dtype=dtype))
            elif cell in ("rnn_tanh", "rnn_relu"):
                self.layers.append(nn.RNN(i, h, 1, nonlinearity=cell[4:], dtype=dtype))
            else:
                raise ValueError(f"unknown cell {cell!r}")
        self.head = nn.ModuleList(nn.Linear(D["input"], D["output"], dtype=dtype)
                                  for D in arch["heads"])
        self.acts = [ACTS[D["act"]] for D in arch["heads"]]

    def named_tensors(self):
        """The parameters under rnnc's names: layer k's weight_ih_l0 is rnn.weight_ih_l{k}."""
        out = {}
        for k, layer in enumerate(self.layers):
            for name, p in layer.named_parameters():
                assert name.endswith("_l0"), name
                out[f"rnn.{name[:-3]}_l{k}"] = p
        for j, lin in enumerate(self.head):
            out[f"head.{j}.weight"] = lin.weight
            out[f"head.{j}.bias"] = lin.bias
        return out

    def forward(self, x, h0, c0, output_last):
        """x [T][B][I]; h0[k], c0[k] [1][B][H_k]. Returns y and the final h, c per layer."""
        hs, cs = [], []
        inp = x
        for k, layer in enumerate(self.layers):
            if self.cells[k] == "lstm":
                inp, (h, c) = layer(inp, (h0[k], c0[k]))
                cs.append(c)
            else:
                inp, h = layer(inp, h0[k])
                cs.append(None)
            hs.append(h)
        top = inp[-1] if output_last else inp  # [B][H] or [T][B][H]
        for lin, act in zip(self.head, self.acts):
            top = act(lin(top))
        return top, hs, cs


def write_safetensors(path, tensors):
    """tensors: list of (name, numpy array), written in that order, contiguous, little endian."""
    header = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, a in tensors:
        a = np.ascontiguousarray(a)
        code = {"float32": "F32", "float64": "F64"}[a.dtype.name]
        data = a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        header[name] = {"dtype": code, "shape": list(a.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)


def run_model(d):
    with open(os.path.join(d, "arch.json")) as f:
        arch = json.load(f)
    dtype = DTYPES[arch["dtype"]]
    torch.manual_seed(arch["seed"])
    # The modules are created in the model's dtype, so that torch's default init draws an f64
    # model's weights in full double precision (not float values widened, which would hide a
    # float truncation of the weights in generated f64 code).
    net = Net(arch, dtype)

    named = net.named_tensors()
    want = [(t["name"], list(t["shape"])) for t in arch["tensors"]]
    have = [(name, list(p.shape)) for name, p in named.items()]
    if sorted(want) != sorted(have):
        raise SystemExit(f"{d}: the model's tensors {want} differ from torch's {have}")
    write_safetensors(os.path.join(d, "weights.safetensors"),
                      [(name, named[name].detach().numpy()) for name, _ in want])

    B, I = arch["batch"], arch["input"]
    gen = torch.Generator().manual_seed(arch["seed"] + 1)
    for run in arch["runs"]:
        tag, T = run["tag"], run["T"]
        x = (torch.rand(T, B, I, generator=gen, dtype=torch.float64) * 4 - 2).to(dtype)
        h0, c0 = [], []
        for L in arch["layers"]:
            shape = (1, B, L["hidden"])
            if run["warm"]:
                h = torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1
                if L["cell"] == "rnn_relu":
                    h = h.abs()  # a relu layer's state is never negative
                c = torch.rand(shape, generator=gen, dtype=torch.float64) * 2 - 1
            else:
                h = torch.zeros(shape, dtype=torch.float64)
                c = torch.zeros(shape, dtype=torch.float64)
            h0.append(h.to(dtype))
            c0.append(c.to(dtype))
        with torch.no_grad():
            y, hs, cs = net(x, h0, c0, bool(arch["output_last"]))
        np.save(os.path.join(d, f"x_{tag}.npy"), x.numpy())
        np.save(os.path.join(d, f"y_{tag}.npy"), y.numpy())
        for k, L in enumerate(arch["layers"]):
            np.save(os.path.join(d, f"h_{tag}_l{k}.npy"), hs[k][0].numpy())
            if run["warm"]:
                np.save(os.path.join(d, f"h0_{tag}_l{k}.npy"), h0[k][0].numpy())
            if L["cell"] == "lstm":
                np.save(os.path.join(d, f"c_{tag}_l{k}.npy"), cs[k][0].numpy())
                if run["warm"]:
                    np.save(os.path.join(d, f"c0_{tag}_l{k}.npy"), c0[k][0].numpy())


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    torch.set_num_threads(1)  # deterministic and quick at these sizes
    for d in argv[1:]:
        run_model(d)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
