"""Importing precomputed vectors: ``curate embed --model precomputed:...`` vs plain numpy / pyarrow.

Two inputs of ``--n`` x ``--d`` float32 vectors (deterministic from ``--seed``):

- ``npy``:     one .npy file, rows in manifest order (the workspace is ingested from a JSONL
               file of ``--n`` short texts);
- ``parquet``: Parquet shards with an ``embedding`` list column next to id and text
               (``bench_scale.make_data``), ingested with ``--embedding-field embedding``.

Implementations, each in its own process (peak RSS of that process, timed region after imports):

- ``curate``:   ``curate.embed.stage.embed`` with ``precomputed:/file.npy`` or ``precomputed:embedding``:
                reads, checks every vector (finite, non-zero, one dimension), L2-normalises,
                writes the fp16 store, its id and status tables and the decision table;
- ``baseline``: the least a user would write: ``np.load`` + ``astype(float16)`` + ``np.save``
                (npy), or ``pq.read_table(column)`` + flatten + reshape + cast + ``np.save``
                (parquet); no checks, no normalisation.

Ingest is done once beforehand and not timed.

    python benchmarks/bench_import.py --n 1000000
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))


def prepare(work: Path, n: int, d: int, seed: int) -> dict:
    """Inputs and ingested workspaces (reused when present)."""
    from bench_scale import make_data

    from curate.ingest import ingest, ingest_config
    from curate.workspace import Workspace

    work.mkdir(parents=True, exist_ok=True)
    npy = work / f"vectors-{n}x{d}.npy"
    if not npy.exists():
        out = np.lib.format.open_memmap(work / "tmp.npy", mode="w+", dtype=np.float32, shape=(n, d))
        rng = np.random.default_rng(seed)
        for lo in range(0, n, 262144):
            out[lo:lo + 262144] = rng.normal(size=(min(262144, n - lo), d))
        out.flush()
        del out
        (work / "tmp.npy").replace(npy)
    texts = work / f"texts-{n}.jsonl"
    if not texts.exists():
        with open(work / "tmp.jsonl", "w") as fh:
            for i in range(n):
                fh.write(json.dumps({"id": f"t{i}", "text": f"text number {i}"}) + "\n")
        (work / "tmp.jsonl").replace(texts)
    shards = work / f"parquet-{n}x{d}"
    make_data(shards, n, d, 500_000, 0.0, 0, seed)
    spaces = {"npy": work / f"ws-npy-{n}", "parquet": work / f"ws-parquet-{n}x{d}"}
    for case, source, extra in (("npy", texts, {}), ("parquet", shards, {"embedding_field": "embedding"})):
        if not (spaces[case] / "manifest").exists():
            shutil.rmtree(spaces[case], ignore_errors=True)
            ingest(Workspace(str(spaces[case])), [str(source)], ingest_config(extra), progress=False)
    return {"npy": str(npy), "shards": str(shards), "ws_npy": str(spaces["npy"]),
            "ws_parquet": str(spaces["parquet"])}


def run_one(case: str, impl: str, paths: dict, out: str) -> dict:
    """The timed part, in this (fresh) process."""
    import pyarrow.parquet as pq

    from curate.embed.stage import EmbedConfig, embed
    from curate.workspace import Workspace

    if impl == "curate":
        ws_path = paths["ws_" + case]
        shutil.rmtree(Path(ws_path) / "embeddings", ignore_errors=True)
        for sub in ("decisions/embed", "state/embed"):
            shutil.rmtree(Path(ws_path) / sub, ignore_errors=True)
        model = f"precomputed:{paths['npy']}" if case == "npy" else "precomputed:embedding"
        start = time.perf_counter()
        result = embed(Workspace(ws_path), EmbedConfig(model=model), progress=False)
        seconds = time.perf_counter() - start
        rows = result.meta["embedded"]
    else:
        start = time.perf_counter()
        if case == "npy":
            array = np.load(paths["npy"]).astype(np.float16)
        else:
            files = sorted(str(f) for f in Path(paths["shards"]).glob("*.parquet"))
            column = pq.read_table(files, columns=["embedding"]).column(0).combine_chunks()
            array = column.flatten().to_numpy().reshape(len(column), -1).astype(np.float16)
        np.save(out, array)
        seconds = time.perf_counter() - start
        rows = len(array)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": seconds, "rows": rows, "peak_rss_mb": usage.ru_maxrss / 1024}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--d", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--cases", nargs="+", default=["npy", "parquet"])
    p.add_argument("--work", type=Path, default=HERE / "_work" / "import")
    p.add_argument("--child", nargs=3, metavar=("CASE", "IMPL", "PATHS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        case, impl, paths = args.child
        print(json.dumps(run_one(case, impl, json.loads(paths), str(args.work / "baseline-out.npy"))))
        return

    paths = prepare(args.work, args.n, args.d, args.seed)
    results: dict[tuple[str, str], list[dict]] = {}
    for _ in range(args.repeat):
        for case in args.cases:
            for impl in ("baseline", "curate"):
                cmd = [sys.executable, __file__, "--work", str(args.work), "--child", case, impl, json.dumps(paths)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                results.setdefault((case, impl), []).append(json.loads(out.strip().splitlines()[-1]))
    print(f"{'case':>8} {'impl':>9} {'rows':>11} {'seconds':>8} {'rows/s':>11} {'curate/baseline time':>21} "
          f"{'peak RSS MB':>11}")
    rows_out = []
    load = os.getloadavg()[0]
    for case in args.cases:
        median = {impl: sorted(results[(case, impl)], key=lambda r: r["seconds"])[len(results[(case, impl)]) // 2]
                  for impl in ("baseline", "curate")}
        for impl, r in median.items():
            ratio = r["seconds"] / median["baseline"]["seconds"]
            print(f"{case:>8} {impl:>9} {r['rows']:>11,} {r['seconds']:>8.2f} {r['rows'] / r['seconds']:>11,.0f} "
                  f"{ratio:>20.2f}x {r['peak_rss_mb']:>11,.0f}")
            rows_out.append([case, impl, r["rows"], f"{r['seconds']:.3f}", f"{r['rows'] / r['seconds']:.0f}",
                             f"{ratio:.3f}", f"{r['peak_rss_mb']:.0f}"])
    print(f"load average {load:.2f}")
    results_dir = HERE / "results"
    results_dir.mkdir(exist_ok=True)
    with open(results_dir / "import.csv", "a", newline="") as fh:
        writer = csv.writer(fh)
        if fh.tell() == 0:
            writer.writerow(["when", "host", "cpus", "n", "d", "case", "impl", "rows", "seconds", "rows_per_s",
                             "time_vs_baseline", "peak_rss_mb", "load_1m"])
        when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        for row in rows_out:
            writer.writerow([when, platform.node(), os.cpu_count(), args.n, args.d, *row, f"{load:.2f}"])


if __name__ == "__main__":
    main()
