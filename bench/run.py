"""run.py — runs the benchmark (bench/Makefile's `run`; `make bench` at the top level).

For each configuration (bench/specs/NAME.lua), one at a time, pinned to one otherwise idle core
(taskset -c <last CPU> when there are two or more):

  1. data: weights from rnnc's PyTorch-style init (seed 1, safetensors with PyTorch names), inputs
     X [T][B][I] and a fixed dloss/dy DY [T][B][O], uniform in [-1, 1] (numpy, seed 1)
  2. agreement: every implementation runs the same W, X, DY from the zero state: y of T streaming
     steps, y of the sequence forward, y of the training forward and the gradients of the
     backward of DY; each is compared with PyTorch in float64 (torch_bench.py writes it):
     |got - ref| <= ATOL * max|ref| + RTOL * |ref| elementwise, per output and per tensor
  3. timing: rnnc's binary of every ISA (`bench --json`, the generated driver's), oneDNN
     (dnnl_bench) and PyTorch (torch_bench.py), each the median of RUNS runs after warm-up

then prints the tables (every figure, the ratios, the roofline fractions, the targets met or
missed) and writes OUT/results.csv, OUT/machine.json, OUT/results.png (gnuplot, when installed)
and OUT/table.txt (what the terminal shows). Only the Python standard library and numpy.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys

import numpy as np

from safetensors_np import read_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
ATOL = 1e-4  # times the largest |ref| of the output or tensor
RTOL = 1e-4
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
IMPLS = ("rnnc", "onednn", "pytorch")


# ---- Small helpers ------------------------------------------------------------------------------
class Runner:
    def __init__(self, pin, pin_all):
        self.pin = pin          # one core, the last: the single-thread measurements
        self.pin_all = pin_all  # every core: the 2-thread ones

    def run(self, argv, pinned=False, env=None, check=True):
        cmd = ((self.pin_all if pinned == "all" else self.pin) + argv) if pinned else argv
        full_env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        full_env.update(env or {})
        p = subprocess.run(cmd, capture_output=True, text=True, env=full_env)
        if check and p.returncode != 0:
            raise SystemExit(f"bench: command failed ({p.returncode}): {' '.join(cmd)}\n{p.stderr.strip()}")
        return p

    def json(self, argv, pinned=False, env=None):
        p = self.run(argv, pinned, env)
        lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
        if not lines:
            raise SystemExit(f"bench: no JSON from {' '.join(argv)}:\n{p.stdout}\n{p.stderr}")
        return json.loads(lines[-1])


def first_line(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0].strip()
    except (OSError, IndexError):
        return "unknown"


# ---- The machine ----------------------------------------------------------------------------------
def machine_info(runner, bin_dir, python, cpu):
    info = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "kernel": platform.release(),
            "cpus": os.cpu_count(), "pinned_cpu": cpu}
    model, flags = "unknown", []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "unknown":
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    info["cpu"] = model
    wanted = ["sse4_1", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
              "amx_tile"]
    info["flags"] = " ".join(f for f in wanted if f in flags)
    info["hypervisor"] = "hypervisor" in flags
    caches = {}
    base = f"/sys/devices/system/cpu/cpu{cpu if cpu is not None else 0}/cache"
    for idx in sorted(os.listdir(base)) if os.path.isdir(base) else []:
        if not idx.startswith("index"):
            continue
        def rd(name):
            with open(os.path.join(base, idx, name)) as f:
                return f.read().strip()
        try:
            kind = {"Data": "d", "Instruction": "i", "Unified": ""}[rd("type")]
            caches[f"L{rd('level')}{kind}"] = rd("size")
        except (OSError, KeyError):
            pass
    info["caches"] = caches
    info["cc"] = first_line(["cc", "--version"])
    info["cxx"] = first_line(["g++", "--version"])
    # SLEEF as the compiler sees it: the version macros of the sleef.h it includes
    p = subprocess.run(["cc", "-E", "-dM", "-"], input="#include <sleef.h>\n", capture_output=True, text=True)
    macros = dict(re.findall(r"#define SLEEF_VERSION_(MAJOR|MINOR|PATCHLEVEL) (\d+)", p.stdout))
    info["sleef"] = ".".join(macros[k] for k in ("MAJOR", "MINOR", "PATCHLEVEL")) if len(macros) == 3 else "unknown"
    info.update(runner.json([os.path.join(bin_dir, "dnnl_bench"), "--version"]))
    info.update(runner.json([python, os.path.join(HERE, "torch_bench.py"), "--version"]))
    return info


# ---- FLOPs and the roofline --------------------------------------------------------------------
def flops(desc, mode):
    """FLOPs per call as the driver counts them: a multiply-add is 2, a recurrent layer 2*G*H*(in+H)
    per timestep and sequence, a dense layer 2*in*out, training 3 x forward."""
    T, B = desc["seq_len"], desc["batch"]
    layers = sum(2 * GATES[l["cell"]] * l["hidden"] * (l["input"] + l["hidden"]) for l in desc["layers"])
    heads = sum(2 * h["input"] * h["output"] for h in desc["heads"])
    if mode == "step":
        return B * (layers + heads)
    fwd = T * B * (layers + heads)
    return fwd if mode == "forward" else 3 * fwd


def sequential_flops(desc):
    """FLOPs per sequence of the W_hh h_{t-1} products, the part that cannot leave the time loop."""
    T, B = desc["seq_len"], desc["batch"]
    return T * B * sum(2 * GATES[l["cell"]] * l["hidden"] * l["hidden"] for l in desc["layers"])


def matvec_rate(nbytes, roof):
    """GFLOP/s of a matrix-vector product whose matrix has nbytes, and the levels it streams from.
    The matrix is counted as filling the nearer caches first (the first L1 bytes at the L1 rate,
    the next up to the L2 size at the L2 rate, the rest at the L3 rate): optimistic for a stream,
    as a roofline must be. Beyond L3 the L3 rate is kept (nothing here is that large)."""
    seconds, left, below, levels = 0.0, float(nbytes), 0.0, []
    for level in ("l1", "l2", "l3"):
        size = roof.get(f"{level}_cache_bytes", 0) or 0
        part = left if level == "l3" else max(0.0, min(left, size - below))
        below = max(below, size)
        if part > 0:
            seconds += part / 2 / (roof[f"{level}_gflops"] * 1e9)  # 4 bytes per weight, 2 FLOPs
            levels.append(level)
            left -= part
    return nbytes / 2 / seconds / 1e9, "+".join(levels)


def roofline(desc, mode, peak, roof):
    """The fastest the machine could run this call (GFLOP/s), and what bounds it. Batch 1: a step
    is a matrix-vector product over all the weights, at the rate of the caches that hold them
    (matvec_rate); a sequence forward does its W_hh h_{t-1} part at the rate of the largest W_hh
    (one layer at a time) and the rest (input projections, head: matrix products over all T rows)
    at the FMA peak; training does the sequential part twice (W_hh h forward, W_hh^T delta back)
    and the rest of its 3 x forward FLOPs at the peak. Batch >= 2: all of it at the peak (each
    weight is reused B times per step)."""
    f = flops(desc, mode)
    if desc["batch"] > 1:
        return peak, "peak"
    if mode == "step":
        wbytes = 4 * sum(GATES[l["cell"]] * l["hidden"] * (l["input"] + l["hidden"]) for l in desc["layers"]) + \
            4 * sum(h["input"] * h["output"] for h in desc["heads"])
        return matvec_rate(wbytes, roof)
    rate, levels = matvec_rate(max(4 * GATES[l["cell"]] * l["hidden"] ** 2 for l in desc["layers"]), roof)
    seq = sequential_flops(desc) * (1 if mode == "forward" else 2)
    seconds = seq / (rate * 1e9) + (f - seq) / (peak * 1e9)
    return f / seconds / 1e9, levels + "+peak"


# ---- Agreement ------------------------------------------------------------------------------------
def compare(got, ref):
    """Worst |got - ref| / (ATOL * max|ref| + RTOL * |ref|) (<= 1 passes) and the largest |got - ref|
    relative to max|ref|."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return float("inf"), float("inf")
    scale = max(float(np.abs(ref).max()), 1e-30)
    diff = np.abs(got - ref)
    return float((diff / (ATOL * scale + RTOL * np.abs(ref))).max()), float(diff.max() / scale)


def check_config(dirs, ref_dir):
    """Per implementation: worst ratio and error over its outputs and gradients, and what failed."""
    ref_y = np.load(os.path.join(ref_dir, "ref_y.npy"))
    ref_g = read_safetensors(os.path.join(ref_dir, "ref_grads.safetensors"))
    out = {}
    for impl, d in dirs.items():
        worst, err, failed = 0.0, 0.0, []
        for name in ("y_step", "y_seq", "y_train"):
            r, e = compare(np.load(os.path.join(d, name + ".npy")), ref_y)
            worst, err = max(worst, r), max(err, e)
            if r > 1:
                failed.append(name)
        grads = read_safetensors(os.path.join(d, "grads.safetensors"))
        for name, ref in ref_g.items():
            r, e = compare(grads.get(name, np.zeros(0)), ref)
            worst, err = max(worst, r), max(err, e)
            if r > 1:
                failed.append(name)
        out[impl] = {"ratio": worst, "error": err, "failed": failed}
    return out


# ---- One configuration ----------------------------------------------------------------------------
MODES = ("step", "forward", "train")  # in table order


def modes_of(desc):
    return list(MODES) if desc["batch"] == 1 else ["train"]


def bench_config(name, args, runner, python):
    work = os.path.join(args.out, "work", name)
    os.makedirs(work, exist_ok=True)
    bins = {isa: os.path.join(args.models, isa, name, name) for isa in args.isas}
    first = bins[args.isas[-1]]
    desc = runner.json([first, "describe"])
    desc_path = os.path.join(work, "desc.json")
    with open(desc_path, "w") as f:
        json.dump(desc, f)
    T, B = desc["seq_len"], desc["batch"]
    w, x, dy = (os.path.join(work, n) for n in ("W.safetensors", "X.npy", "DY.npy"))
    runner.run([first, "init", "--seed", "1", "-o", w])
    rng = np.random.default_rng(1)
    np.save(x, rng.uniform(-1, 1, (T, B, desc["input"])).astype(np.float32))
    np.save(dy, rng.uniform(-1, 1, (T, B, desc["output"])).astype(np.float32))

    # agreement
    dirs = {}
    for isa, b in bins.items():
        d = dirs[f"rnnc-{isa}"] = os.path.join(work, "check", isa)
        os.makedirs(d, exist_ok=True)
        runner.run([b, "check", w, x, dy, d])
    dirs["onednn"] = os.path.join(work, "check", "onednn")
    dirs["pytorch"] = os.path.join(work, "check", "pytorch")
    for d in dirs.values():
        os.makedirs(d, exist_ok=True)
    dnnl = [os.path.join(args.bin, "dnnl_bench"), "--model", desc_path, "--data", w, x, dy]
    torch = [python, os.path.join(HERE, "torch_bench.py"), "--model", desc_path, "--data", w, x, dy]
    runner.run(dnnl + ["--check", dirs["onednn"]])
    runner.run(torch + ["--check", dirs["pytorch"]])
    agreement = check_config(dirs, dirs["pytorch"])

    # timing
    modes = modes_of(desc)
    timings = {}
    for isa, b in bins.items():
        timings[f"rnnc-{isa}"] = runner.json([b, "bench", "--json", "--threads", "1", "--steps", str(args.runs)],
                                             pinned=True)
    timings["onednn"] = runner.json(dnnl + ["--runs", str(args.runs), "--modes", ",".join(modes)], pinned=True)
    timings["pytorch"] = runner.json(torch + ["--runs", str(args.runs), "--modes", ",".join(modes)], pinned=True)
    # Two threads, on the two cores: rnnc at its best ISA, and oneDNN.
    if args.threads > 1:
        n = str(args.threads)
        best = args.isas[-1]
        timings[f"rnnc-{best}@{n}"] = runner.json([bins[best], "bench", "--json", "--threads", n, "--steps", str(args.runs)],
                                                  pinned="all")
        timings[f"onednn@{n}"] = runner.json(dnnl + ["--runs", str(args.runs), "--modes", ",".join(modes), "--threads", n],
                                             pinned="all", env={"OMP_NUM_THREADS": n})
    return desc, modes, agreement, timings


# ---- Rows, tables, files ----------------------------------------------------------------------------
def make_rows(name, desc, modes, agreement, timings, peak, roof):
    rows = []
    for mode in modes:
        f = flops(desc, mode)
        roof_gflops, bound = roofline(desc, mode, peak, roof)
        for key, t in timings.items():
            if f"{mode}_us" not in t:
                continue
            impl, _, threads = key.partition("@")
            us = t[f"{mode}_us"]
            g = f / (us * 1e3)
            a = agreement[impl]
            rows.append({
                "config": name, "mode": mode, "impl": impl.split("-")[0], "threads": int(threads or 1),
                "isa": impl.split("-")[1] if impl.startswith("rnnc-") else "",
                "B": desc["batch"], "T": 1 if mode == "step" else desc["seq_len"],
                "median_us": us, "min_us": t[f"{mode}_min_us"], "max_us": t[f"{mode}_max_us"],
                "gflops": g, "flops": f, "roofline_gflops": roof_gflops, "roofline_bound": bound,
                "roofline_frac": g / roof_gflops, "peak_frac": g / peak,
                "preempted_runs": t.get(f"{mode}_preempted_runs", 0), "runs": t.get("runs", 0),
                "check_ratio": a["ratio"], "check_error": a["error"],
                "check": "ok" if not a["failed"] else "FAIL " + "/".join(a["failed"]),
            })
    return rows


def best_rnnc(rows, config, mode, threads=1):
    cand = [r for r in rows if r["config"] == config and r["mode"] == mode and r["impl"] == "rnnc" and r["threads"] == threads]
    return min(cand, key=lambda r: r["median_us"]) if cand else None


def measured(rows, configs, threads=1):
    """(config, mode, rnnc's fastest row) of every configuration and mode rnnc was measured in,
    in table order."""
    for c in configs:
        for mode in MODES:
            r = best_rnnc(rows, c, mode, threads)
            if r:
                yield c, mode, r


def pick(rows, config, mode, impl, threads=1):
    for r in rows:
        if r["config"] == config and r["mode"] == mode and r["impl"] == impl and r["threads"] == threads:
            return r
    return None


def fmt_us(us):
    if us is None:
        return "-"
    return f"{us:.2f}" if us < 100 else f"{us:.1f}" if us < 10000 else f"{us:.0f}"


def tables(rows, configs, isas, machine, peak, roof, quick):
    out = []
    p = out.append
    p(f"rnnc benchmark — {machine['date']}{'  (QUICK: a smoke test, not a result)' if quick else ''}")
    p(f"machine  {machine['cpu']}; {machine['cpus']} CPUs{' (virtual machine)' if machine['hypervisor'] else ''}, "
      f"measured on CPU {machine['pinned_cpu']}; caches " +
      ", ".join(f"{k} {v}" for k, v in machine["caches"].items()))
    p(f"flags    {machine['flags']}")
    p(f"software {machine['cc']}; oneDNN {machine['onednn']} ({machine['onednn_isa']}, {machine['omp_threads']} thread); "
      f"PyTorch {machine['torch']} ({machine['torch_cpu_capability']}, {machine['torch_threads']} thread); "
      f"SLEEF {machine['sleef']}; numpy {machine['numpy']}")
    p(f"limits   FMA peak {peak:.1f} GFLOP/s (" + ", ".join(f"{k.split('_')[0]} {v:.1f}" for k, v in machine["fma_peak"].items()
                                                  if k.endswith("_gflops")) + "); "
      f"matrix-vector from L1 {roof['l1_gflops']:.1f}, L2 {roof['l2_gflops']:.1f}, L3 {roof['l3_gflops']:.1f} GFLOP/s "
      "(each the better of a measure before and after the configurations)")
    p("")
    head = (f"{'config':<15} {'mode':<7} {'B':>2} {'T':>3} | {'rnnc':>6} {'us':>8} {'GF/s':>6} {'%roof':>5} | "
            f"{'oneDNN us':>9} {'GF/s':>6} {'%roof':>5} | {'PyTorch us':>10} {'GF/s':>5} {'%roof':>5} | "
            f"{'x oneDNN':>8} {'x PyTorch':>9} | {'roof GF/s':>9} | check")
    p(head)
    p("-" * len(head))
    for c, mode, r in measured(rows, configs):
        d, t = pick(rows, c, mode, "onednn"), pick(rows, c, mode, "pytorch")
        checks = {x["check"] for x in rows if x["config"] == c}
        check = "ok" if checks == {"ok"} else "; ".join(sorted(checks - {"ok"}))
        p(f"{c:<15} {mode:<7} {r['B']:>2} {r['T']:>3} | {r['isa']:>6} {fmt_us(r['median_us']):>8} {r['gflops']:>6.1f} "
          f"{100 * r['roofline_frac']:>5.0f} | "
          f"{fmt_us(d['median_us']) if d else '-':>9} {d['gflops'] if d else 0:>6.1f} "
          f"{100 * d['roofline_frac'] if d else 0:>5.0f} | "
          f"{fmt_us(t['median_us']) if t else '-':>10} {t['gflops'] if t else 0:>5.2f} "
          f"{100 * t['roofline_frac'] if t else 0:>5.1f} | "
          f"{(d['median_us'] / r['median_us']) if d else 0:>7.2f}x {(t['median_us'] / r['median_us']) if t else 0:>8.1f}x | "
          f"{r['roofline_gflops']:>9.1f} | {check}")
    p("")
    p("rnnc is its fastest ISA; x oneDNN, x PyTorch: their time / rnnc's (above 1: rnnc is faster). Times are medians")
    p("per call (step: one timestep; forward: one sequence of T steps; train: forward + backward of one")
    p("sequence, no optimizer). %roof: GFLOP/s as a share of the call's roofline (roof GF/s, bench/README.md).")
    p("")
    # every ISA
    head = f"{'config':<15} {'mode':<7} | " + " ".join(f"{isa + ' us':>11}" for isa in isas) + " | " + \
        " ".join(f"{isa + ' GF/s':>12}" for isa in isas) + " | min..max us (best ISA)"
    p(head)
    p("-" * len(head))
    for c, mode, r in measured(rows, configs):
        by = {x["isa"]: x for x in rows
              if x["config"] == c and x["mode"] == mode and x["impl"] == "rnnc" and x["threads"] == 1}
        p(f"{c:<15} {mode:<7} | " + " ".join(f"{fmt_us(by[i]['median_us']) if i in by else '-':>11}" for i in isas) +
          " | " + " ".join(f"{by[i]['gflops'] if i in by else 0:>12.1f}" for i in isas) +
          f" | {fmt_us(r['min_us'])}..{fmt_us(r['max_us'])}")
    p("")
    # threads
    if any(x["threads"] > 1 for x in rows):
        n = max(x["threads"] for x in rows)
        head = (f"{'config':<15} {'mode':<7} | {'rnnc 1t us':>10} {f'rnnc {n}t us':>10} {'speedup':>7} | "
                f"{'oneDNN 1t us':>12} {f'oneDNN {n}t us':>12} | {f'x oneDNN {n}t':>12}")
        p(head)
        p("-" * len(head))
        for c, mode, many in measured(rows, configs, n):
            one = best_rnnc(rows, c, mode)
            if not one:
                continue
            d1, dn = pick(rows, c, mode, "onednn"), pick(rows, c, mode, "onednn", n)
            p(f"{c:<15} {mode:<7} | {fmt_us(one['median_us']):>10} {fmt_us(many['median_us']):>10} "
              f"{one['median_us'] / many['median_us']:>6.2f}x | {fmt_us(d1['median_us']) if d1 else '-':>12} "
              f"{fmt_us(dn['median_us']) if dn else '-':>12} | "
              f"{(dn['median_us'] / many['median_us']) if dn else 0:>11.2f}x")
        p(f"rnnc {n}t: the best ISA on a team of {n} threads (bitwise the results of one thread); speedup: 1t / {n}t;")
        p(f"x oneDNN {n}t: oneDNN's time with {n} OpenMP threads / rnnc's with {n}. Pinned to the machine's first {n} cores.")
        p("")
    # agreement
    p("agreement with PyTorch float64 (worst |got-ref| / max|ref| over y of step, forward, training forward")
    p(f"and every gradient; passes when |got-ref| <= {ATOL:g}*max|ref| + {RTOL:g}*|ref| everywhere):")
    for c in configs:
        seen = {}
        for x in rows:
            if x["config"] == c and x["threads"] == 1:
                key = x["impl"] + ("-" + x["isa"] if x["isa"] else "")
                seen[key] = x
        p(f"  {c:<15} " + "  ".join(f"{k} {v['check_error']:.1e}{'' if v['check'] == 'ok' else ' FAIL'}"
                                     for k, v in seen.items()))
    p("")
    preempted = sum(x["preempted_runs"] for x in rows)
    if preempted:
        p(f"warning: {preempted} reported runs were preempted by other processes even after redoing as many: "
          "the machine was busy, medians may be slow")
        p("")
    return out


def targets(rows, configs, peak):
    res = []

    def ratio(c, mode, impl):
        r, o = best_rnnc(rows, c, mode), pick(rows, c, mode, impl)
        return (o["median_us"] / r["median_us"], r) if r and o else (None, r)

    def add(text, ok, detail):
        res.append((text, "n/a" if ok is None else "met" if ok else "MISSED", detail))

    x, r = ratio("lstm1x32", "step", "onednn")
    add("LSTM 1x32 step >= 4x faster than oneDNN per-step calls", None if x is None else x >= 4,
        "" if x is None else f"{x:.2f}x")
    x, r = ratio("lstm2x128", "step", "onednn")
    add("LSTM 2x128 step >= 2x faster than oneDNN and >= 50 GFLOP/s",
        None if x is None else x >= 2 and r["gflops"] >= 50, "" if x is None else f"{x:.2f}x, {r['gflops']:.1f} GFLOP/s")
    small = [c for c in configs if c in ("lstm1x32", "lstm1x128", "lstm2x128", "gru2x128", "lstm2x128_head")]
    got = [(c, ratio(c, "forward", "onednn")[0]) for c in small]
    got = [(c, v) for c, v in got if v is not None]
    add("batch-1 sequence forward >= 1.3x faster than oneDNN, every config up to 2x128",
        None if not got else all(v >= 1.3 for _, v in got), ", ".join(f"{c} {v:.2f}x" for c, v in got))
    b16 = [c for c in configs if pick(rows, c, "train", "onednn") and pick(rows, c, "train", "onednn")["B"] > 1]
    det, ok = [], None
    for c in b16:
        x, r = ratio(c, "train", "onednn")
        good = x >= 1 and r["gflops"] >= 0.65 * peak
        ok = good if ok is None else ok and good
        det.append(f"{c} {x:.2f}x, {100 * r['gflops'] / peak:.0f}% of peak")
    add("training at B=16 at least as fast as oneDNN and >= 65% of the FMA peak", ok, "; ".join(det))
    det, ok, worst = [], None, None
    for c in configs:
        for mode in MODES:
            x, r = ratio(c, mode, "pytorch")
            if x is None or r["B"] != 1:
                continue
            ok = (x >= 10) if ok is None else ok and x >= 10
            if worst is None or x < worst[0]:
                worst = (x, c, mode)
    add("every batch-1 config and mode >= 10x faster than PyTorch", ok,
        "" if worst is None else f"slowest ratio {worst[0]:.1f}x ({worst[1]} {worst[2]})")
    # Two cores (issue 7).
    def speedup(c, mode):
        one, two = best_rnnc(rows, c, mode), best_rnnc(rows, c, mode, 2)
        return (one["median_us"] / two["median_us"], two) if one and two else (None, None)
    x, two = speedup("lstm2x256", "step")
    d2 = pick(rows, "lstm2x256", "step", "onednn", 2)
    y = d2["median_us"] / two["median_us"] if d2 and two else None
    add("2 threads: LSTM 2x256 step >= 2.5x faster than 1 thread and >= 1.5x faster than oneDNN with 2",
        None if x is None or y is None else x >= 2.5 and y >= 1.5, "" if x is None or y is None else f"{x:.2f}x, {y:.2f}x oneDNN")
    x, _ = speedup("lstm2x128_t256", "forward")
    add("2 threads: LSTM 2x128 sequence forward T=256 >= 1.5x faster than 1 thread", None if x is None else x >= 1.5,
        "" if x is None else f"{x:.2f}x")
    x, _ = speedup("lstm2x256_b16", "train")
    add("2 threads: LSTM 2x256 training B=16 T=50 >= 1.7x faster than 1 thread", None if x is None else x >= 1.7,
        "" if x is None else f"{x:.2f}x")
    # Slower: by more than the run-to-run noise of a median (a one-thread fallback runs the
    # same code as one thread, and measures within a few percent of it).
    slower = [(c, mode, v) for c in configs for mode in MODES
              for v in [speedup(c, mode)[0]] if v is not None and v < NOT_SLOWER]
    any2 = any(speedup(c, m)[0] is not None for c in configs for m in MODES)
    add(f"2 threads: no configuration slower than with 1 (below {NOT_SLOWER}x)", None if not any2 else not slower,
        ", ".join(f"{c} {m} {v:.2f}x" for c, m, v in slower))
    return res


NOT_SLOWER = 0.95

CSV_FIELDS = ["config", "mode", "impl", "isa", "threads", "B", "T", "median_us", "min_us", "max_us", "gflops", "flops",
              "roofline_gflops", "roofline_bound", "roofline_frac", "peak_frac", "preempted_runs", "runs",
              "check", "check_ratio", "check_error"]


def write_csv(path, rows):
    with open(path, "w") as f:
        f.write(",".join(CSV_FIELDS) + "\n")
        for r in rows:
            f.write(",".join(f"{r[k]:.6g}" if isinstance(r[k], float) else str(r[k]) for k in CSV_FIELDS) + "\n")


def write_chart(out, rows, configs):
    """GFLOP/s of rnnc (best ISA), oneDNN and PyTorch with the roofline, per configuration and mode
    (log scale), through gnuplot when it is installed."""
    if not shutil.which("gnuplot"):
        return None
    data = os.path.join(out, "chart.dat")
    with open(data, "w") as f:
        f.write("# label rnnc oneDNN PyTorch roofline (GFLOP/s)\n")
        for c, mode, r in measured(rows, configs):
            d, t = pick(rows, c, mode, "onednn"), pick(rows, c, mode, "pytorch")
            f.write(f"\"{c} {mode}\" {r['gflops']:.4g} {d['gflops'] if d else 0:.4g} "
                    f"{t['gflops'] if t else 0:.4g} {r['roofline_gflops']:.4g}\n")
    png = os.path.join(out, "results.png")
    clusters = sum(1 for _ in measured(rows, configs))
    script = f"""
set terminal pngcairo size {max(900, 200 + 60 * clusters)},600 font ",10"
set output "{png}"
set title "rnnc vs oneDNN vs PyTorch, 1 thread (GFLOP/s, log scale; triangles: the roofline of the call)" noenhanced
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [0.1:*]
set ylabel "GFLOP/s"
set grid ytics
set xtics rotate by -40 left noenhanced
set xrange [-0.6:*]
set key top left
plot "{data}" using 2:xtic(1) title "rnnc (best ISA)" lc rgb "#1b7837", \\
     "" using 3 title "oneDNN" lc rgb "#2166ac", \\
     "" using 4 title "PyTorch" lc rgb "#b2182b", \\
     "" using 0:5 with points title "roofline" lc rgb "#444444" pt 9 ps 1.6
"""
    with open(os.path.join(out, "chart.gp"), "w") as f:
        f.write(script)
    p = subprocess.run(["gnuplot", os.path.join(out, "chart.gp")], capture_output=True, text=True)
    return png if p.returncode == 0 else None


# ---- Main -------------------------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser(description="rnnc vs oneDNN vs PyTorch")
    ap.add_argument("--out", required=True)
    ap.add_argument("--bin", required=True)
    ap.add_argument("--models", required=True)
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--configs", required=True)
    ap.add_argument("--isas", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2, help="also measure rnnc and oneDNN on this many threads (1: not)")
    args = ap.parse_args()
    args.configs, args.isas = args.configs.split(), args.isas.split()
    python = sys.executable
    ncpu = os.cpu_count() or 1
    cpu = ncpu - 1 if ncpu >= 2 and shutil.which("taskset") else None
    runner = Runner(["taskset", "-c", str(cpu)] if cpu is not None else [],
                    ["taskset", "-c", f"0-{min(args.threads, ncpu) - 1}"] if cpu is not None else [])
    args.threads = min(args.threads, ncpu)
    if cpu is None:
        print("bench: note: not pinned to a core (needs taskset and 2 or more CPUs)")
    os.makedirs(args.out, exist_ok=True)

    machine = machine_info(runner, args.bin, python, cpu)
    limits = []

    def measure_limits():
        print("  BENCH machine limits (FMA peak, matrix-vector from L1/L2/L3)", flush=True)
        limits.append((runner.json([os.path.join(args.bin, "fma_peak")], pinned=True),
                       runner.json([os.path.join(args.bin, "roofline")], pinned=True)))

    # The limits are measured before and after the configurations and the larger of the two
    # counts: another process on the core (or on its SMT sibling) can only make them look lower.
    measure_limits()
    raw = []
    for name in args.configs:
        print(f"  BENCH {name}", flush=True)
        raw.append((name,) + bench_config(name, args, runner, python))
    measure_limits()
    machine["fma_peak"] = {k: max(l[0][k] for l in limits) for k in limits[0][0]}
    roof = machine["roofline"] = {k: max(l[1][k] for l in limits) for k in limits[0][1]}
    machine["limits_measured"] = [{"fma_peak": a, "roofline": b} for a, b in limits]
    peak = max(v for k, v in machine["fma_peak"].items() if k.endswith("_gflops"))
    rows = []
    for name, desc, modes, agreement, timings in raw:
        rows += make_rows(name, desc, modes, agreement, timings, peak, roof)

    lines = tables(rows, args.configs, args.isas, machine, peak, roof, args.quick)
    lines.append("targets (rnnc at its fastest ISA):")
    for text, status, detail in targets(rows, args.configs, peak):
        lines.append(f"  {status:<7} {text}{': ' + detail if detail else ''}")
    text = "\n".join(lines)
    print("\n" + text)
    with open(os.path.join(args.out, "table.txt"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(args.out, "machine.json"), "w") as f:
        json.dump(machine, f, indent=1)
    write_csv(os.path.join(args.out, "results.csv"), rows)
    png = write_chart(args.out, rows, args.configs)
    print(f"\nwrote {os.path.join(args.out, 'results.csv')}, {os.path.join(args.out, 'table.txt')}, "
          f"{os.path.join(args.out, 'machine.json')}" + (f", {png}" if png else " (no chart: gnuplot is not installed)"))
    failed = [r for r in rows if r["check"] != "ok"]
    if failed:
        print("bench: error: implementations disagree (see the agreement lines above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
