"""python -m benchmarks: every workload, every backend, fused and unfused, beside NumPy and the
installed peers, against the machine's floors, in one process run.

    python -m benchmarks                           # everything (several minutes)
    python -m benchmarks --workloads W4,W5 --peers numpy,jax --reps 30
    python -m benchmarks --quick                   # small sizes, agreement only (CI)
    python -m benchmarks --backends cuda,cpu       # on a GPU (pycuda): GPU floors and peers too
"""

from __future__ import annotations

import argparse
import json
import sys

from tracejit.runtime.backends import BACKENDS, NAMES

from .peers import GPU_PEERS, PEERS, unavailable_reason
from .runner import Plan, default_backends, rows_as_dicts, run, uses_gpu
from .workloads import VARIANTS


def _fmt_time(s) -> str:
    if s is None:
        return "-"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s * 1e9:.3g} ns"


def _fmt_ratio(r) -> str:
    return "-" if r is None else f"{r:.2f}x"


def table(rows, quick: bool) -> str:
    """One table per workload variant."""
    out = []
    keys = []
    for r in rows:
        if (r.workload, r.variant) not in keys:
            keys.append((r.workload, r.variant))
    for w, v in keys:
        group = [r for r in rows if (r.workload, r.variant) == (w, v)]
        title = next(x.title for x in VARIANTS if (x.workload, x.name) == (w, v))
        floors: dict[str, list] = {}    # each floor's text -> the devices it is the floor of
        for r in group:
            if r.floor_what:
                tags = floors.setdefault(f"{_fmt_time(r.floor)} ({r.floor_what})", [])
                tag = "gpu tf32" if r.allow_tf32 else r.device
                if tag not in tags:
                    tags.append(tag)
        if len(floors) <= 1:
            text = next(iter(floors), "-")
        else:
            text = "; ".join(f"{'/'.join(tags)} {what}" for what, tags in floors.items())
        out.append(f"\n{title}   floor {text}")
        header = (f"  {'implementation':<31} {'kernels':>7} {'median':>10} {'min':>10} "
                  f"{'max':>10} {'first call':>10} {'/floor':>9} {'/best peer':>10}  agrees")
        if quick:
            header = (f"  {'implementation':<31} {'kernels':>7} {'first call':>10}  agrees  "
                      "max rel err")
        out.append(header)
        for r in group:
            agree = "yes" if r.agrees else "NO"
            if quick:
                err = "-" if r.max_rel_err is None else f"{r.max_rel_err:.1e}"
                out.append(f"  {r.label:<31} {r.kernels or '':>7} {_fmt_time(r.first_call):>10}"
                           f"  {agree:<6}  {err}  {r.note if r.agrees is False else ''}")
                continue
            out.append(f"  {r.label:<31} {r.kernels or '':>7} {_fmt_time(r.median):>10} "
                       f"{_fmt_time(r.min):>10} {_fmt_time(r.max):>10} "
                       f"{_fmt_time(r.first_call):>10} {_fmt_ratio(r.ratio_floor):>9} "
                       f"{_fmt_ratio(r.ratio_best_peer):>10}  {agree}"
                       + (f"  {r.note}" if r.agrees is False else ""))
    return "\n".join(out)


def plot(rows, path: str) -> str:
    """Bars of time / floor per workload for every implementation (log scale)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "no plot: matplotlib is not installed (pip install -e '.[bench]')"
    keys = []
    for r in rows:
        if (r.workload, r.variant) not in keys and r.ratio_floor:
            keys.append((r.workload, r.variant))
    labels = []
    for r in rows:
        if r.label not in labels:
            labels.append(r.label)
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(keys)), 5))
    width = 0.8 / max(len(labels), 1)
    for i, label in enumerate(labels):
        xs, ys = [], []
        for j, key in enumerate(keys):
            r = next((r for r in rows if (r.workload, r.variant) == key and r.label == label),
                     None)
            if r is not None and r.ratio_floor:
                xs.append(j + i * width)
                ys.append(r.ratio_floor)
        ax.bar(xs, ys, width, label=label)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(keys))])
    ax.set_xticklabels([f"{w}\n{v}" for w, v in keys])
    ax.set_yscale("log")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_ylabel("median time / floor (lower is better)")
    ax.set_title("tracejit fused vs unfused vs NumPy and peers")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return f"plot written to {path}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="all", help="e.g. W1,W4,W5 (default: all)")
    parser.add_argument("--backends", default=None,
                        help=f"tracejit backends, of {', '.join(NAMES)} (default: cpu, "
                        "interpret, and cuda where pycuda and a GPU are usable; on cuda, W4 and "
                        "W7 also run with allow_tf32=True as 'cuda tf32')")
    parser.add_argument("--fuse", default="on,off", help="on, off, or on,off")
    parser.add_argument("--peers", default=None,
                        help=f"numpy, {', '.join(PEERS + GPU_PEERS)}, or none; the available "
                        "ones run (default: numpy and the CPU peers, and the GPU peers when "
                        "cuda is benchmarked)")
    parser.add_argument("--reps", type=int, default=15, help="timed samples at least")
    parser.add_argument("--min-time", type=float, default=1.0,
                        help="seconds to keep sampling each implementation (up to 10x reps)")
    parser.add_argument("--quick", action="store_true",
                        help="every workload once at small sizes; check agreement, no timing")
    parser.add_argument("--json", default="benchmark-results.json", help="where to write JSON")
    parser.add_argument("--plot", default="benchmark-results.png", help="where to write the PNG")
    parser.add_argument("--no-progress", action="store_true")
    ns = parser.parse_args(argv)

    wanted = None if ns.workloads == "all" else set(ns.workloads.upper().split(","))
    variants = [v for v in VARIANTS if wanted is None or v.workload in wanted]
    if ns.backends is None:
        backends = default_backends()
    else:
        backends = [b for b in ns.backends.split(",") if b]
    if not backends:
        parser.error("no backend to benchmark")
    for b in backends:
        if b not in BACKENDS:
            parser.error(f"backend {b!r} is not available (available: {', '.join(NAMES)})")
    for b in backends if ns.backends is not None else ():    # the default ones can run
        why = BACKENDS[b].why_unavailable()
        if why is not None:
            parser.error(f"backend {b!r} cannot run here: {why}")
    fuse = [{"on": True, "off": False}[f] for f in ns.fuse.split(",")]
    if ns.peers is None:
        peers = ["numpy", *PEERS] + (list(GPU_PEERS) if uses_gpu(backends) else [])
    else:
        peers = [] if ns.peers == "none" else [p for p in ns.peers.split(",") if p]
    for p in peers:
        if p != "numpy" and p not in PEERS + GPU_PEERS:
            parser.error(f"unknown peer {p!r} (known: numpy, {', '.join(PEERS + GPU_PEERS)})")
    missing = {p: unavailable_reason(p) for p in peers if unavailable_reason(p) is not None}
    plan = Plan(variants, backends, fuse, peers, ns.reps, ns.min_time, ns.quick)
    rows, floors, env = run(plan, progress=not ns.no_progress)

    print(f"tracejit benchmarks: {len(variants)} workload variants, backends "
          f"{', '.join(backends)}; peers {', '.join(p for p in peers if p not in missing)}"
          + (f" (not run: {'; '.join(f'{p}: {why}' for p, why in missing.items())})"
             if missing else ""))
    print(f"floors: copy bandwidth {floors.copy_bandwidth / 1e9:.1f} GB/s, sgemm "
          f"{floors.sgemm_flops / 1e9:.0f} GFLOP/s, Python call "
          f"{floors.call_overhead * 1e9:.0f} ns;"
          f" threads: {env.get('torch_threads', '-')} (torch), {env['cpus']} cpus")
    gpu = env.get("gpu_floors")
    if gpu is not None:
        blas = (f"cuBLAS sgemm {gpu['sgemm_flops'] / 1e12:.1f} TFLOP/s FP32, "
                f"{gpu['tf32_flops'] / 1e12:.1f} TFLOP/s TF32 (torch.matmul)"
                if gpu["sgemm_flops"] else gpu["cublas_note"])
        print(f"GPU floors ({gpu['name']}): copy bandwidth {gpu['copy_bandwidth'] / 1e9:.0f} "
              f"GB/s (device to device), {blas}")
    print(table(rows, ns.quick))
    disagreements = [r for r in rows if r.agrees is False]
    if not ns.quick:
        with open(ns.json, "w") as f:
            json.dump({"environment": env, "floors": floors.__dict__,
                       "gpu_floors": env.get("gpu_floors"),
                       "rows": rows_as_dicts(rows)}, f, indent=1)
        print(f"\nresults written to {ns.json}; {plot(rows, ns.plot)}")
    if disagreements:
        print(f"\n{len(disagreements)} implementation(s) disagree with tracejit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
