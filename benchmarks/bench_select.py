"""k-center greedy (coreset) selection: curate vs plain numpy vs the per-pick recompute of AL libraries.

Data: ``--n`` unit vectors in ``--d`` dims (fp16, as curate stores them) around
``--centres`` random centres, generated once under ``--work``.

Implementations of the same algorithm (first pick: the row farthest from the mean
direction; then the row farthest from its nearest pick; cosine distance; ties to the
smallest row), each in a fresh process so peak RSS is per method:

- ``curate``:    ``curate.select.kcenter.kcenter_greedy`` (the fused ``kcenter_update`` kernel:
                 one pass over the pool per pick updates every row's distance to its nearest
                 center and finds the next pick; Triton on CUDA, blockwise torch on CPU);
- ``numpy``:     the same incremental update written in plain numpy (``mind = min(mind, 1 - X @ c)``);
- ``recompute``: how modAL (``ranked_batch``: ``pairwise_distances(X_pool, X_selected).min(1)``
                 each pick), BAAL and the original coreset code compute it: per pick the full
                 pool x selected distance matrix, then its row minimum (cosine via a matmul
                 here, which is cheaper than sklearn's ``pairwise_distances``).

A method may be capped (``--cap-<impl>``): it then runs only its first C picks and the total
is extrapolated (constant cost per pick for curate/numpy; a least-squares line a + b*k in
the pick index k for ``recompute``, whose pick k costs O(N k d)); the output and the CSV say so.
Checked: every method's picks equal curate's (longest common prefix) and the covering radius
(max over the pool of the distance to the nearest pick) of each method's picks.

    python benchmarks/bench_select.py --part speed                          # CPU: 100k x 512, 1k picks
    python benchmarks/bench_select.py --part speed --n 1000000 --picks 100 --impls curate numpy
    python benchmarks/bench_select.py --part speed --n 1000000 --picks 10000 --device cuda   # GPU node
    python benchmarks/bench_select.py --part quality --seeds 0 1 --max-labels 100   # see _select_quality.py
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

IMPLS = ("curate", "numpy", "recompute")
FIELDS = ["benchmark", "impl", "n", "d", "picks", "picks_timed", "extrapolated", "seconds", "ms_per_pick",
          "speedup_vs_recompute", "speedup_vs_numpy", "same_picks_prefix", "radius", "radius_rel_diff",
          "peak_rss_mb", "rss_before_mb", "peak_device_mb", "device", "device_name", "torch", "cpu_count",
          "loadavg", "timestamp"]


def make_vectors(path: Path, n: int, d: int, centres: int, seed: int) -> None:
    """Clustered unit vectors (fp16 .npy), written blockwise."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, d)).astype(np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    tmp = path.with_name("tmp-" + path.name)
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(n, d))
    for lo in range(0, n, 65536):
        hi = min(n, lo + 65536)
        x = c[rng.integers(0, centres, hi - lo)] + rng.normal(scale=1.0 / np.sqrt(d), size=(hi - lo, d))
        out[lo:hi] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float16)
    out.flush()
    del out
    os.replace(tmp, path)


def peak_rss_mb() -> float:
    """VmHWM: this process image's peak RSS (ru_maxrss would carry the parent's over fork + exec)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# --------------------------------------------------------------------------- the three methods


def run_curate(x16: np.ndarray, picks: int, device: str) -> tuple[np.ndarray, dict]:
    from curate.select.kcenter import kcenter_greedy

    result = kcenter_greedy(x16, picks, device=device)
    return result.picks, {}


def _first_pick(x: np.ndarray) -> int:
    mean = x.mean(axis=0, dtype=np.float32)
    mean /= max(float(np.linalg.norm(mean)), 1e-12)
    return int(np.argmin(x @ mean))


def run_numpy(x16: np.ndarray, picks: int, device: str) -> tuple[np.ndarray, dict]:
    x = np.asarray(x16, dtype=np.float32)
    out = np.empty(picks, dtype=np.int64)
    mind = np.full(len(x), np.inf, dtype=np.float32)
    at = _first_pick(x)
    for k in range(picks):
        out[k] = at
        np.minimum(mind, 1.0 - x @ x[at], out=mind)
        mind[at] = -np.inf
        at = int(np.argmax(mind))
    return out, {}


def _recompute_step(x: np.ndarray, selected: list[int]) -> int:
    dist = 1.0 - x @ x[selected].T  # pool x selected, recomputed from scratch each pick
    mind = dist.min(axis=1)
    mind[selected] = -np.inf
    return int(np.argmax(mind))


def run_recompute(x16: np.ndarray, picks: int, device: str, probes: tuple[int, ...] = ()) -> tuple[np.ndarray, dict]:
    """The first ``picks`` picks for real; then the cost of single picks at set sizes ``probes``
    (min of 3 runs each: a pick's cost depends only on the set size), for the extrapolation."""
    t = time.perf_counter()
    x = np.asarray(x16, dtype=np.float32)
    selected = [_first_pick(x)]
    for _ in range(1, picks):
        selected.append(_recompute_step(x, selected))
    seconds = time.perf_counter() - t
    probe = {}
    for k in probes:
        rows = list(range(k))  # any k rows cost the same
        times = []
        for _ in range(3):
            t = time.perf_counter()
            _recompute_step(x, rows)
            times.append(time.perf_counter() - t)
        probe[int(k)] = min(times)
    return np.array(selected, dtype=np.int64), {"seconds": seconds, "probes": probe} if probes else {}


RUNNERS = {"curate": run_curate, "numpy": run_numpy, "recompute": run_recompute}


def child(impl: str, args) -> None:
    x16 = np.load(args.vectors, mmap_mode="r")
    picks = min(args.picks, getattr(args, f"cap_{impl}") or args.picks)
    device = args.device
    cuda = False
    if impl == "curate":  # torch only where it is used: the numpy methods' RSS stays numpy's
        import torch

        cuda = torch.cuda.is_available() and device != "cpu"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    before = rss_mb()
    extra = {}
    if impl == "recompute" and picks < args.picks:
        extra["probes"] = tuple(int(k) for k in np.linspace(picks, args.picks - 1, 5))
    t = time.perf_counter()
    got, info = RUNNERS[impl](x16, picks, device, **extra)
    seconds = info.get("seconds", time.perf_counter() - t)  # recompute with probes: its picks alone
    np.save(args.result + ".npy", got)
    Path(args.result).write_text(json.dumps({
        "seconds": seconds, "picks_timed": int(picks), "probes": info.get("probes", {}), "rss_before_mb": before,
        "peak_rss_mb": peak_rss_mb(),
        "peak_device_mb": torch.cuda.max_memory_allocated() / 2**20 if cuda else 0.0}))


# --------------------------------------------------------------------------- checks and extrapolation


def extrapolate(impl: str, r: dict, picks: int) -> float:
    """Total seconds for ``picks`` from a run of the first ``picks_timed``: constant cost per pick
    (curate, numpy), or the measured single-pick costs at a few set sizes, interpolated (recompute)."""
    timed = r["picks_timed"]
    if timed >= picks:
        return r["seconds"]
    if not r.get("probes"):
        return r["seconds"] * picks / timed
    ks = np.array(sorted(int(k) for k in r["probes"]), dtype=np.float64)
    cost = np.array([r["probes"][str(int(k))] for k in ks])
    return r["seconds"] + float(np.sum(np.interp(np.arange(timed, picks), ks, cost)))


def covering_radius(x16: np.ndarray, picks: np.ndarray, device: str) -> float:
    """max over all rows of the cosine distance to the nearest pick (blockwise)."""
    from curate.prune.strategies import nearest_distance

    return float(nearest_distance(x16, np.arange(len(x16)), picks, device=device, block=8192).max())


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    m = min(len(a), len(b))
    diff = np.flatnonzero(a[:m] != b[:m])
    return int(diff[0]) if len(diff) else m


# --------------------------------------------------------------------------- driver


def speed(args) -> None:
    import torch

    work = Path(args.work) / f"select-{args.n}-{args.d}-s{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    vectors = work / "vectors.npy"
    if not vectors.exists():
        t = time.perf_counter()
        make_vectors(vectors, args.n, args.d, args.centres, args.seed)
        print(f"generated {args.n:,} x {args.d} fp16 vectors in {time.perf_counter() - t:.1f}s")
    cuda = args.device != "cpu" and torch.cuda.is_available()
    device_name = torch.cuda.get_device_name() if cuda else "cpu"
    print(f"k-center greedy: {args.picks:,} picks from {args.n:,} x {args.d} on {device_name} "
          f"(curate), numpy/recompute on {os.cpu_count()} CPU cores")
    results, picks = {}, {}
    for impl in args.impls:
        out = work / f"{impl}.json"
        cmd = [sys.executable, __file__, *sys.argv[1:], "--child", impl, "--vectors", str(vectors),
               "--result", str(out)]
        subprocess.run(cmd, check=True)
        r = json.loads(out.read_text())
        picks[impl] = np.load(str(out) + ".npy")
        r["total"] = extrapolate(impl, r, args.picks)
        results[impl] = r
    load = os.getloadavg()[1]  # 5-minute load average: other work on the machine skews CPU timings
    print(f"load average (5 min) during the run: {load:.2f} on {os.cpu_count()} cores")
    x16 = np.load(vectors, mmap_mode="r")
    ref = picks.get("curate")
    radius_dev = "cuda" if cuda else "cpu"
    for impl, r in results.items():
        r["radius"] = covering_radius(x16, picks[impl], radius_dev)
    for impl, r in results.items():  # against curate's picks over the same count
        if ref is None:
            r["prefix"], r["radius_ref"] = "", r["radius"]
            continue
        r["prefix"] = common_prefix(picks[impl], ref)
        same = len(picks[impl]) == len(ref)
        r["radius_ref"] = results["curate"]["radius"] if same else covering_radius(x16, ref[:len(picks[impl])],
                                                                                 radius_dev)
    rows = []
    for impl, r in results.items():
        vs_rec = results["recompute"]["total"] / r["total"] if "recompute" in results else ""
        vs_np = results["numpy"]["total"] / r["total"] if "numpy" in results else ""
        rel = abs(r["radius"] - r["radius_ref"]) / max(r["radius_ref"], 1e-12)
        extrap = r["picks_timed"] < args.picks
        note = f" (first {r['picks_timed']:,} picks timed: {r['seconds']:.1f}s, total extrapolated)" if extrap else ""
        print(f"{impl:10s} {r['total']:9.2f}s  {1000 * r['total'] / args.picks:8.2f} ms/pick  "
              f"peak RSS {r['peak_rss_mb']:6.0f} MB (before {r['rss_before_mb']:.0f})"
              + (f"  device {r['peak_device_mb']:.0f} MB" if r["peak_device_mb"] else "")
              + (f"  x{vs_rec:.1f} vs recompute" if vs_rec != "" else "")
              + (f"  same picks as curate: first {r['prefix']:,}/{r['picks_timed']:,}"
                 f" radius {r['radius']:.5f} (curate's over the same count {r['radius_ref']:.5f})" if ref is not None
                 else f"  radius {r['radius']:.5f}") + note)
        rows.append(["select-speed", impl, args.n, args.d, args.picks, r["picks_timed"], extrap, f"{r['total']:.3f}",
                     f"{1000 * r['total'] / args.picks:.3f}", f"{vs_rec:.2f}" if vs_rec != "" else "",
                     f"{vs_np:.2f}" if vs_np != "" else "", r["prefix"], f"{r['radius']:.6f}", f"{rel:.2e}",
                     f"{r['peak_rss_mb']:.0f}", f"{r['rss_before_mb']:.0f}", f"{r['peak_device_mb']:.0f}",
                     "cuda" if cuda and impl == "curate" else "cpu", device_name if impl == "curate" else "cpu",
                     torch.__version__, os.cpu_count(), f"{load:.2f}", dt.datetime.now(dt.timezone.utc).isoformat()])
    write_csv(Path(args.csv), rows)


def write_csv(path: Path, rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with open(path, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(FIELDS)
        w.writerows(rows)


def quality(args) -> None:
    """The learning-curve part lives in ``_select_quality.py``; its own options come after ours."""
    sys.path.insert(0, str(HERE))
    try:
        import _select_quality as q
    except ModuleNotFoundError as exc:
        if exc.name != "_select_quality":
            raise
        print("quality part: benchmarks/_select_quality.py is not there yet (it provides run_quality(args)); "
              "skipped", file=sys.stderr)
        return
    if hasattr(q, "add_quality_args"):
        parser = argparse.ArgumentParser(prog=f"{Path(__file__).name} --part quality")
        qargs = q.add_quality_args(parser).parse_args(args.extra)
        for name in ("device", "work", "seed"):
            if not hasattr(qargs, name):
                setattr(qargs, name, getattr(args, name))
    else:
        qargs = args
    q.run_quality(qargs)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    p.add_argument("--part", choices=["speed", "quality", "all"], default="all")
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--picks", type=int, default=1000)
    p.add_argument("--centres", type=int, default=1000)
    p.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS))
    p.add_argument("--cap-curate", type=int, default=None, help="time only this many picks and extrapolate")
    p.add_argument("--cap-numpy", type=int, default=None, help="time only this many picks and extrapolate")
    p.add_argument("--cap-recompute", type=int, default=200,
                   help="time only this many picks and extrapolate (its pick k costs O(N k d))")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default=str(HERE / "_work"))
    p.add_argument("--csv", default=str(HERE / "results" / "select.csv"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--vectors", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args, extra = p.parse_known_args()
    args.extra = extra  # options for the quality part, which parses its own
    if args.child:
        child(args.child, args)
        return
    if extra and args.part == "speed":
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.part in ("speed", "all"):
        speed(args)
    if args.part in ("quality", "all"):
        quality(args)


if __name__ == "__main__":
    main()
