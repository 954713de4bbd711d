"""The whole flow at scale on one machine: Parquet shards with precomputed vectors ->
ingest -> embed (precomputed) -> semantic dedup -> prune to 50% (prototypes) -> export Parquet.

Data (deterministic from ``--seed``): ``--n`` rows in Parquet shards of ``--shard-rows`` rows,
columns ``id``, ``text`` (a short sentence) and ``embedding`` (``list<float32>`` of ``--d``
values) around random cluster centres; ``--dup-frac`` of the rows are planted near-copies
(cosine about 0.97) of other rows, and ``--bad`` rows carry a NaN, all-zero or wrong-length
vector (they must end up quarantined with a reason, none lost).

Every stage runs as the ``curate`` CLI in its own process; the table gives its wall time,
CPU time and peak RSS (``wait4`` rusage of that process alone). ``--kill STAGE:SECONDS``
kills that stage with SIGKILL after the given time and runs it again, to show it resumes
at that size (the rerun's time is reported as its own row).

    python benchmarks/bench_scale.py --n 10000000               # the target: < 30 min, < 12 GiB
    python benchmarks/bench_scale.py --n 200000 --quick         # a smoke run
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
STAGES = ("ingest", "embed", "dedup", "prune", "export")


def make_data(folder: Path, n: int, d: int, shard_rows: int, dup_frac: float, bad: int, seed: int) -> dict:
    """Write the shards (skipped when a complete set is there); returns what was planted."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = folder / "planted.json"
    if done.exists():
        planted = json.loads(done.read_text())
        if planted.get("args") == [n, d, shard_rows, dup_frac, bad, seed]:
            return planted
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(16, int(np.sqrt(n))), d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    n_dup = int(n * dup_frac)
    # copy rows are spread over the set; each copies an earlier non-copy row of its own shard
    is_copy = np.zeros(n, dtype=bool)
    is_copy[rng.choice(np.arange(1, n), size=n_dup, replace=False)] = True
    bad_rows = rng.choice(np.flatnonzero(~is_copy), size=min(bad, int((~is_copy).sum())), replace=False)
    bad_kind = {int(r): ("nan", "zero", "ragged")[i % 3] for i, r in enumerate(sorted(bad_rows))}
    copies = 0
    for s, lo in enumerate(range(0, n, shard_rows)):
        hi = min(n, lo + shard_rows)
        m = hi - lo
        topic = rng.integers(0, len(centres), m)
        x = centres[topic] + rng.standard_normal((m, d), dtype=np.float32) * np.float32(1.2 / np.sqrt(d))
        local_copy = np.flatnonzero(is_copy[lo:hi])
        originals = np.flatnonzero(~is_copy[lo:hi])
        earlier = np.searchsorted(originals, local_copy)  # originals before each copy
        pick = np.floor(rng.random(len(local_copy)) * np.maximum(earlier, 1)).astype(np.int64)
        src = originals[np.where(earlier > 0, pick, 0)]  # an earlier original of the shard (or the first)
        x[local_copy] = x[src] + rng.standard_normal((len(local_copy), d), dtype=np.float32) * np.float32(
            0.25 / np.sqrt(d))
        topic[local_copy] = topic[src]
        copies += len(local_copy)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        lengths = np.full(m, d, dtype=np.int32)
        for r, kind in bad_kind.items():
            if lo <= r < hi:
                if kind == "nan":
                    x[r - lo, 3] = np.nan
                elif kind == "zero":
                    x[r - lo] = 0
                else:
                    lengths[r - lo] = d - 1
        offsets = np.zeros(m + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        values = x.ravel() if lengths.min() == d else x[np.arange(d)[None, :] < lengths[:, None]]
        ids = pa.array([f"s{i:09d}" for i in range(lo, hi)])
        texts = pa.array([f"item {i} about topic {t}" for i, t in zip(range(lo, hi), topic)])
        emb = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.float32()))
        table = pa.table({"id": ids, "text": texts, "embedding": emb})
        pq.write_table(table, folder / f"part-{s:05d}.parquet", row_group_size=65536)
        print(f"  wrote shard {s} ({hi:,}/{n:,} rows)", flush=True)
    planted = {"args": [n, d, shard_rows, dup_frac, bad, seed], "copies": copies,
               "bad": {k: sum(1 for v in bad_kind.values() if v == k) for k in ("nan", "zero", "ragged")}}
    done.write_text(json.dumps(planted))
    return planted


def stage_command(stage: str, data: Path, ws: Path, out: Path) -> list[str]:
    curate = [sys.executable, "-m", "curate"]
    return {
        "ingest": curate + ["ingest", str(data), "-w", str(ws), "--embedding-field", "embedding", "--no-progress"],
        "embed": curate + ["embed", "-w", str(ws), "--model", "precomputed:embedding", "--no-progress"],
        "dedup": curate + ["dedup", "-w", str(ws), "--method", "semantic", "--no-progress"],
        "prune": curate + ["prune", "-w", str(ws), "--fraction", "0.5", "--strategy", "prototypes", "--no-progress"],
        "export": curate + ["export", "-w", str(ws), "--format", "parquet", "--out", str(out),
                            "--no-progress"],
    }[stage]


def run_process(cmd: list[str], kill_after: float | None = None) -> dict:
    """Run ``cmd``; wall, CPU seconds and peak RSS of that process alone (and whether it was killed)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    killed = False
    if kill_after is not None:
        try:
            proc.wait(timeout=kill_after)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            killed = True
    out = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0 and not killed:
        raise SystemExit(f"{' '.join(cmd)} failed ({code}):\n{out[-3000:]}")
    return {"seconds": wall, "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024, "killed": killed, "output": out}


def decision_counts(ws: Path) -> dict:
    """Rows and kept rows of each stage's latest decision table (every id accounted for)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    counts = {}
    for stage in ("ingest", "embed", "dedup", "prune", "export"):
        folder = ws / "decisions" / stage
        runs = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime) if folder.exists() else []
        if not runs:
            continue
        table = pq.read_table(runs[-1].with_suffix(".parquet"), columns=["id", "kept"])
        counts[stage] = {"rows": table.num_rows, "kept": int(pc.sum(table.column("kept")).as_py() or 0)}
    return counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=10_000_000)
    p.add_argument("--d", type=int, default=256)
    p.add_argument("--shard-rows", type=int, default=500_000)
    p.add_argument("--dup-frac", type=float, default=0.05)
    p.add_argument("--bad", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stages", nargs="+", default=list(STAGES), choices=STAGES)
    p.add_argument("--kill", default=None, help="STAGE:SECONDS: SIGKILL that stage after SECONDS, then rerun it")
    p.add_argument("--work", type=Path, default=HERE / "_work" / "scale")
    p.add_argument("--keep-workspace", action="store_true", help="start from the workspace a previous run left")
    p.add_argument("--quick", action="store_true", help="smaller shards (a smoke run)")
    args = p.parse_args()
    if args.quick:
        args.shard_rows = min(args.shard_rows, 50_000)

    data = args.work / f"data-{args.n}x{args.d}"
    ws, out = args.work / f"ws-{args.n}", args.work / f"export-{args.n}"
    t0 = time.perf_counter()
    planted = make_data(data, args.n, args.d, args.shard_rows, args.dup_frac, args.bad, args.seed)
    print(f"data ready in {time.perf_counter() - t0:.0f} s: {planted}", flush=True)
    if not args.keep_workspace:
        shutil.rmtree(ws, ignore_errors=True)
        shutil.rmtree(out, ignore_errors=True)
    kill_stage, kill_after = (args.kill.split(":") + [None])[:2] if args.kill else (None, None)

    rows = []
    for stage in args.stages:
        cmd = stage_command(stage, data, ws, out)
        if stage == kill_stage:
            first = run_process(cmd, float(kill_after))
            rows.append({"stage": f"{stage} (killed)" if first["killed"] else stage, **first})
            print(f"{rows[-1]['stage']:>16}: {first['seconds']:8.1f} s  {first['peak_rss_mb']:8.0f} MB", flush=True)
            if not first["killed"]:
                continue
            stage = f"{stage} (resumed)"
        result = run_process(cmd)
        rows.append({"stage": stage, **result})
        print(f"{stage:>16}: {result['seconds']:8.1f} s  {result['peak_rss_mb']:8.0f} MB", flush=True)
        print("".join(f"                  | {line}\n" for line in result["output"].strip().splitlines()[:3]), end="")
    counts = decision_counts(ws)
    total = sum(r["seconds"] for r in rows)
    peak = max(r["peak_rss_mb"] for r in rows)
    print(f"{'total':>16}: {total:8.1f} s  peak {peak:.0f} MB")
    print(json.dumps(counts, indent=1))
    for stage, c in counts.items():
        if c["rows"] != args.n:
            print(f"WARNING: {stage} decision table has {c['rows']:,} rows, expected {args.n:,}")

    results = HERE / "results"
    results.mkdir(exist_ok=True)
    with open(results / "scale.csv", "a", newline="") as fh:
        writer = csv.writer(fh)
        if fh.tell() == 0:
            writer.writerow(["when", "host", "cpus", "n", "d", "stage", "seconds", "cpu_seconds", "peak_rss_mb",
                             "killed", "rows", "kept", "load_1m"])
        when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        for r in rows:
            c = counts.get(r["stage"].split(" ")[0], {})
            writer.writerow([when, platform.node(), os.cpu_count(), args.n, args.d, r["stage"], f"{r['seconds']:.2f}",
                             f"{r['cpu_seconds']:.2f}", f"{r['peak_rss_mb']:.0f}", r["killed"], c.get("rows"),
                             c.get("kept"), os.getloadavg()[0]])


if __name__ == "__main__":
    main()
