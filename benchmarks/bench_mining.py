"""Targeted mining (``--strategy similar``): curate's miner vs brute-force nearest neighbours.

Data: ``--n`` clustered unit vectors in ``--d`` dims (fp16 .npy, as curate stores them; the
generator of ``bench_select.py``), ``--queries`` queries that are noisy copies of random pool
rows (the "failures"), ``--labeled-frac`` of the pool labeled. Each implementation runs in a
fresh process so peak RSS (VmHWM) is its own:

- ``index``:        build the IVF-Flat FAISS index over the store, as ``curate dedup`` saves it
                    (k-means on a 200k sample, nlist ~ sqrt(N), nprobe = max(16, nlist / 32));
                    reported separately: a workspace builds it once, every mining run reuses it;
- ``mining``:       ``curate.select.mining.mine`` with that index (load time, and one bare
                    top-k search for the recall check, reported apart):
                    top-k retrieval (k = 4 x budget / queries, grown when filtering exhausts a
                    query), round-robin over query clusters, labeled/near-duplicate filtering;
- ``mining-exact``: the same miner with exact search (the small-pool path; here the pool is
                    above the 1 GB cache, so the store is streamed per search);
- ``brute-force``:  exact blockwise top-k over the whole pool for every query in numpy
                    (pool blocks x all queries, argpartition merge): what mining costs without
                    an index; its top-k is the ground truth.

Reported: seconds (the whole ``mine`` call; brute force: its top-k), retrieval_seconds (one
top-k search for all queries), peak RSS, ratio brute-force / impl, recall@k of each retrieval
against the exact top-k, and the share of the IVF miner's picks equal to the exact miner's.

    python benchmarks/bench_mining.py                         # 1M x 512, 100 queries, CPU
    python benchmarks/bench_mining.py --n 200000
    python benchmarks/bench_mining.py --device cuda           # GPU node (FAISS GPU / torch CUDA)
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_select import make_vectors, peak_rss_mb  # noqa: E402

IMPLS = ("index", "mining", "mining-exact", "brute-force")
FIELDS = ["benchmark", "impl", "n", "d", "queries", "budget", "k", "seconds", "retrieval_seconds", "load_seconds",
          "ratio_vs_brute_force",
          "recall_at_k", "same_picks", "picks", "searches", "peak_rss_mb", "device", "device_name", "faiss", "torch",
          "cpu_count", "loadavg", "timestamp"]


def make_inputs(work: Path, args) -> None:
    """Queries (noisy copies of random pool rows) and the labeled mask, once per setting."""
    if (work / "queries.npy").exists():
        return
    x = np.load(work / "vectors.npy", mmap_mode="r")
    rng = np.random.default_rng(args.seed + 1)
    base = np.asarray(x[np.sort(rng.choice(args.n, args.queries, replace=False))], dtype=np.float32)
    q = base + rng.normal(scale=0.5 / np.sqrt(args.d), size=base.shape)
    np.save(work / "queries.npy", (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32))
    np.save(work / "labeled.npy", rng.random(args.n) < args.labeled_frac)


def brute_force(x: np.ndarray, q: np.ndarray, k: int, block: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k inner product of every query over the whole pool, blockwise, in numpy."""
    best_s = np.full((len(q), 0), -np.inf, dtype=np.float32)
    best_i = np.empty((len(q), 0), dtype=np.int64)
    for lo in range(0, len(x), block):
        s = q @ np.asarray(x[lo:lo + block], dtype=np.float32).T
        cand_s = np.concatenate([best_s, s], axis=1)
        cand_i = np.concatenate([best_i, np.broadcast_to(np.arange(lo, lo + s.shape[1]), s.shape)], axis=1)
        top = np.argpartition(-cand_s, min(k, cand_s.shape[1]) - 1, axis=1)[:, :k]
        best_s, best_i = np.take_along_axis(cand_s, top, 1), np.take_along_axis(cand_i, top, 1)
    order = np.argsort(-best_s, axis=1, kind="stable")
    return np.take_along_axis(best_s, order, 1), np.take_along_axis(best_i, order, 1)


def child(impl: str, args) -> None:
    import faiss
    import torch

    from curate.index import ann
    from curate.select import mining

    work = Path(args.work)
    x = np.load(work / "vectors.npy", mmap_mode="r")
    q = np.load(work / "queries.npy")
    labeled = np.load(work / "labeled.npy")
    k = 4 * -(-args.budget // args.queries)
    out: dict = {"k": k, "load_seconds": 0.0, "searches": None, "picks": None}
    start = time.perf_counter()
    if impl == "index":
        index = ann.build_index(x, kind="ivf", device=args.device)
        ann.save_index(index, work / "index", {"store_fingerprint": "bench"})
    elif impl == "brute-force":
        _, rows = brute_force(x, q, k)
        np.save(work / f"{impl}-topk.npy", rows)
        out["retrieval_seconds"] = time.perf_counter() - start
    else:
        if impl == "mining":
            index = ann.load_index(work / "index", device=args.device)
            out["load_seconds"] = time.perf_counter() - start
            start = time.perf_counter()
            retriever = mining.index_retriever(index)
        else:
            retriever = mining.exact_retriever(x, ~labeled, args.device)
        top = retriever.search(q, k)[1]  # the retrieval alone (timed apart), for recall
        out["retrieval_seconds"] = time.perf_counter() - start
        start = time.perf_counter()
        result = mining.mine(x, q, ~labeled, labeled, args.budget, retriever, dup_threshold=args.dup_threshold,
                             seed=args.seed, device=args.device)
        out.update(searches=result.searches, picks=len(result.rows))
        np.save(work / f"{impl}-topk.npy", top)
        np.save(work / f"{impl}-picks.npy", result.rows)
    out["seconds"] = time.perf_counter() - start
    out["peak_rss_mb"] = peak_rss_mb()
    out["faiss"] = getattr(faiss, "__version__", "?")
    out["torch"] = torch.__version__
    out["device_name"] = torch.cuda.get_device_name(0) if args.device != "cpu" and torch.cuda.is_available() else "cpu"
    Path(args.result).write_text(json.dumps(out))


def recall(found: np.ndarray, exact: list[np.ndarray]) -> float:
    """Mean over queries of |found ∩ exact| / |exact|."""
    return float(np.mean([len(set(f[f >= 0].tolist()) & set(e.tolist())) / max(1, len(e))
                          for f, e in zip(found, exact)]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--d", type=int, default=512)
    p.add_argument("--centres", type=int, default=1000)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--budget", type=int, default=1000)
    p.add_argument("--labeled-frac", type=float, default=0.05)
    p.add_argument("--dup-threshold", type=float, default=0.9)
    p.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default=str(HERE / "_work"))
    p.add_argument("--csv", default=str(HERE / "results" / "mining.csv"))
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args)
        return
    work = Path(args.work) / f"mining-{args.n}-{args.d}-s{args.seed}"
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "vectors.npy").exists():
        t = time.perf_counter()
        make_vectors(work / "vectors.npy", args.n, args.d, args.centres, args.seed)
        print(f"data: {args.n:,} x {args.d} fp16 in {time.perf_counter() - t:.0f}s")
    make_inputs(work, args)
    impls = [i for i in IMPLS if i in args.impls]
    if "mining" in impls and "index" not in impls and not (work / "index" / "index.json").exists():
        impls.insert(0, "index")
    results = {}
    for impl in impls:
        res = work / f"{impl}.json"
        cmd = [sys.executable, __file__, "--child", impl, "--result", str(res), "--work", str(work)] + [
            f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
            if k in ("n", "d", "queries", "budget", "dup_threshold", "device", "seed")]
        subprocess.run(cmd, check=True, cwd="/tmp")
        results[impl] = json.loads(res.read_text())
        r = results[impl]
        print(f"{impl:13s} {r['seconds']:8.2f}s (retrieval alone {r.get('retrieval_seconds', float('nan')):.2f}s, "
              f"load {r['load_seconds']:.1f}s)  peak RSS {r['peak_rss_mb']:7.0f} MB"
              + (f"  picks {r['picks']}, searches {r['searches']}" if r.get("picks") is not None else ""))
    labeled = np.load(work / "labeled.npy")
    exact = np.load(work / "brute-force-topk.npy") if (work / "brute-force-topk.npy").exists() else None
    brute = results.get("brute-force", {}).get("seconds")
    stamp = dt.datetime.now(dt.timezone.utc).isoformat()
    rows = []
    for impl, r in results.items():
        rec = same = None
        if exact is not None and impl == "mining":
            rec = recall(np.load(work / "mining-topk.npy"), list(exact))
        if exact is not None and impl == "mining-exact":  # it searches unlabeled rows only: compare on those
            rec = recall(np.load(work / "mining-exact-topk.npy"), [e[~labeled[e]] for e in exact])
        if impl == "mining" and (work / "mining-exact-picks.npy").exists():
            a, b = np.load(work / "mining-picks.npy"), np.load(work / "mining-exact-picks.npy")
            same = len(set(a.tolist()) & set(b.tolist())) / max(1, len(b))
        ratio = brute / r["seconds"] if brute and impl != "index" else None
        rows.append({"benchmark": "mining", "impl": impl, "n": args.n, "d": args.d, "queries": args.queries,
                     "budget": args.budget, "k": r["k"], "seconds": f"{r['seconds']:.3f}",
                     "load_seconds": f"{r['load_seconds']:.3f}",
                     "retrieval_seconds": f"{r['retrieval_seconds']:.3f}" if "retrieval_seconds" in r else "",
                     "ratio_vs_brute_force": f"{ratio:.2f}" if ratio else "",
                     "recall_at_k": f"{rec:.4f}" if rec is not None else "",
                     "same_picks": f"{same:.4f}" if same is not None else "", "picks": r.get("picks") or "",
                     "searches": r.get("searches") or "", "peak_rss_mb": f"{r['peak_rss_mb']:.0f}",
                     "device": args.device, "device_name": r["device_name"], "faiss": r["faiss"], "torch": r["torch"],
                     "cpu_count": os.cpu_count(), "loadavg": f"{os.getloadavg()[0]:.2f}", "timestamp": stamp})
        print(f"{impl:13s} ratio brute/impl {rows[-1]['ratio_vs_brute_force'] or '-':>6}  "
              f"recall@{r['k']} {rows[-1]['recall_at_k'] or '-'}  same picks {rows[-1]['same_picks'] or '-'}")
    out = Path(args.csv)
    new = not out.exists()
    with out.open("a", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            w.writeheader()
        w.writerows(rows)


if __name__ == "__main__":
    main()
