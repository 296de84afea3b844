#!/usr/bin/env python3
"""sine_data.py DIR [T] — the sine example's data as .npy files for `rnnc tune --data`: the
stream x[t] = sin(0.2 t) (the omega of sine_train.c and sine_app.c) and the next-sample target
y[t] = x[t + 1], both float32 [T][1][1] (time-major, batch 1, one feature). Default T: 4096.
Standard library only."""
import math
import os
import struct
import sys


def save(path, values):
    header = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, 1, 1), }" % len(values)
    header += " " * (63 - (10 + len(header)) % 64) + "\n"
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode("latin1"))
        f.write(struct.pack("<%df" % len(values), *values))


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    out, T = sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 4096
    os.makedirs(out, exist_ok=True)
    stream = [math.sin(0.2 * t) for t in range(T + 1)]
    save(os.path.join(out, "x.npy"), stream[:-1])
    save(os.path.join(out, "y.npy"), stream[1:])
    print("wrote %s/x.npy and %s/y.npy: %d steps of sin(0.2 t) and the next sample" % (out, out, T))


main()
