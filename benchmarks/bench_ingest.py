"""Ingest throughput and peak memory: curate vs the straightforward loop, same run.

Cases (data generated once under ``--work``, deterministic from ``--seed``):

- ``jsonl``:  one JSONL file of ``--rows`` short text records (id, text, label);
- ``images``: an image folder of ``--images`` small JPEG/PNG files (64..128 px) in class
  sub-folders.

Implementations measured for each case, every one in its own fresh Python process so
that its peak RSS (``ru_maxrss``) is its own:

- ``baseline``:     what people write by hand: a single-threaded loop (open, sha256 of the
                    bytes, ``json.loads`` per line / full PIL decode ``.convert("RGB")`` per
                    image), collect dicts, write one Parquet file with pyarrow;
- ``curate``:       ``curate.ingest.ingest`` into a fresh workspace (default read options);
- ``curate-w1``:    the same with ``workers=1`` (how much of the ratio is threads);
- ``curate-rerun``: ``ingest`` again on the ``curate`` workspace (every shard unchanged, so
                    skipped): the cost of resuming a finished run.

Run from the repository root::

    python benchmarks/bench_ingest.py            # 100,000 rows + 10,000 images
    python benchmarks/bench_ingest.py --quick    # 10x smaller smoke run

Prints a table and writes a long-format CSV (``benchmarks/results/ingest.csv`` for full
runs; under the work folder for ``--quick`` unless ``--csv`` is given).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARK = "ingest"
CASES = ("jsonl", "images")
IMPLS = ("baseline", "curate", "curate-w1", "curate-rerun")
LABELS = ("cat", "dog", "bird", "fish", "frog", "horse", "ship", "truck", "plane", "car")
WORDS = (
    "the", "a", "of", "and", "to", "in", "is", "it", "that", "for", "on", "with", "as",
    "was", "by", "at", "from", "this", "be", "are", "or", "an", "not", "have", "data",
    "model", "image", "text", "sample", "label", "train", "test", "value", "cluster",
    "embed", "index", "shard", "batch", "river", "mountain", "city", "quiet", "bright",
    "small", "large", "green", "blue", "red", "yellow", "fast", "slow", "open", "close",
    "learn", "read", "write", "store", "find", "keep", "drop", "merge", "split", "count",
    "measure", "weight", "noise", "signal",
)
COLUMNS = (
    "benchmark", "case", "impl", "n", "repeats", "workers", "seconds", "seconds_min",
    "seconds_max", "cpu_seconds", "items_per_s", "ratio_vs_baseline", "peak_rss_mb",
    "import_rss_mb", "load_1m", "device", "cpu_count", "python", "curate_version", "commit", "timestamp",
)


# --------------------------------------------------------------------------- data


def make_jsonl(path: Path, rows: int, seed: int) -> None:
    """``rows`` records of 5..40 words with a label; deterministic for a seed."""
    rng = random.Random(seed)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        for i in range(rows):
            text = " ".join(rng.choices(WORDS, k=rng.randint(5, 40)))
            fh.write(json.dumps({"id": f"r{i:07d}", "text": text, "label": rng.choice(LABELS)}))
            fh.write("\n")
    os.replace(tmp, path)


def make_images(folder: Path, count: int, seed: int) -> None:
    """``count`` smooth noisy images, 64..128 px a side, ~70% JPEG / 30% PNG, in class folders."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for label in LABELS:
        (tmp / label).mkdir(parents=True)
    for i in range(count):
        w, h = (int(v) for v in rng.integers(64, 129, size=2))
        coarse = rng.integers(0, 256, size=(4, 4, 3), dtype=np.uint8)
        img = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BILINEAR), dtype=np.int16)
        img = img + rng.integers(-12, 13, size=img.shape, dtype=np.int16)
        pil = Image.fromarray(img.clip(0, 255).astype(np.uint8))
        label = LABELS[int(rng.integers(len(LABELS)))]
        if rng.random() < 0.7:
            pil.save(tmp / label / f"img{i:06d}.jpg", quality=90)
        else:
            pil.save(tmp / label / f"img{i:06d}.png")
    os.replace(tmp, folder)


def ensure_data(work: Path, rows: int, images: int, seed: int) -> dict[str, Path]:
    """Generate the inputs once per (size, seed); later runs reuse them."""
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    jsonl = data / f"text-{rows}-s{seed}" / "rows.jsonl"
    if not jsonl.exists():
        jsonl.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        make_jsonl(jsonl, rows, seed)
        print(f"generated {rows:,} JSONL rows in {time.perf_counter() - t:.1f}s: {jsonl}")
    imgs = data / f"images-{images}-s{seed}"
    if not imgs.exists():
        t = time.perf_counter()
        make_images(imgs, images, seed)
        print(f"generated {images:,} images in {time.perf_counter() - t:.1f}s: {imgs}")
    return {"jsonl": jsonl, "images": imgs}


# --------------------------------------------------------------------------- implementations


def baseline_jsonl(src: Path, out: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    with open(src, "rb") as fh:
        for line in fh:
            obj = json.loads(line)
            text = obj["text"]
            rows.append({"id": str(obj["id"]), "text": text, "label": obj.get("label"),
                         "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest()})
    pq.write_table(pa.Table.from_pylist(rows), out)
    return len(rows)


def baseline_images(src: Path, out: Path) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    rows = []
    for label in sorted(os.listdir(src)):
        for name in sorted(os.listdir(src / label)):
            path = src / label / name
            with open(path, "rb") as fh:
                data = fh.read()
            with Image.open(path) as img:
                fmt = img.format
                rgb = img.convert("RGB")  # full decode
            rows.append({"id": f"{label}/{name}", "path": str(path), "label": label,
                         "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
                         "format": fmt, "width": rgb.width, "height": rgb.height})
    pq.write_table(pa.Table.from_pylist(rows), out)
    return len(rows)


def run_case(case: str, impl: str, src: Path, work: Path, workers: int | None) -> dict:
    """Body of one child process: import, time the work, report seconds and peak RSS."""
    if impl == "baseline":
        import pyarrow.parquet  # noqa: F401  (imports are not timed, for every impl)
        from PIL import Image  # noqa: F401
    else:
        from curate.ingest import IngestConfig, ingest
        from curate.readers.base import ReadOptions
        from curate.workspace import Workspace
    import_rss = _peak_rss_mb()
    cpu0 = _cpu_seconds()

    ws_dir = work / "ws" / f"{case}-{'curate' if impl == 'curate-rerun' else impl}"
    if impl == "baseline":
        out = work / "baseline" / f"{case}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        fn = baseline_jsonl if case == "jsonl" else baseline_images
        start = time.perf_counter()
        n = fn(src, out)
        seconds = time.perf_counter() - start
        info = {}
    else:
        if impl == "curate-rerun":
            if not (ws_dir / "manifest" / "_meta.json").exists():
                raise SystemExit(f"curate-rerun needs the workspace {ws_dir} (run curate first)")
        else:
            shutil.rmtree(ws_dir, ignore_errors=True)
        read = ReadOptions() if workers is None else ReadOptions(workers=workers)
        if impl == "curate-w1":
            read = ReadOptions(workers=1)
        config = IngestConfig(read=read)
        start = time.perf_counter()
        result = ingest(Workspace(str(ws_dir)), [str(src)], config)
        seconds = time.perf_counter() - start
        n = result.meta["samples"]
        info = {"quarantined": result.meta["quarantined"], "units_read": result.meta["units_read"],
                "units_skipped": result.meta["units_skipped"], "workers": read.workers}
    return {"n": n, "seconds": seconds, "cpu_seconds": _cpu_seconds() - cpu0,
            "peak_rss_mb": _peak_rss_mb(), "import_rss_mb": import_rss, **info}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


# --------------------------------------------------------------------------- driver


def measure(case: str, impl: str, src: Path, work: Path, workers: int | None) -> dict:
    """Run one (case, impl) in a fresh interpreter and return its JSON report."""
    load = os.getloadavg()[0]
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", case, impl,
           "--src", str(src), "--work", str(work)]
    if workers is not None:
        cmd += ["--workers", str(workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"{case}/{impl} failed with exit status {proc.returncode}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "load_1m": load}


def device_name() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"cpu: {model}"


def git_commit() -> str:
    """Short HEAD of the checkout, ``+dirty`` when the package sources differ from it."""
    root = HERE.parent

    def git(*cmd: str) -> str:
        out = subprocess.run(["git", "-C", str(root), *cmd], capture_output=True, text=True,
                             check=False)
        return out.stdout.strip() if out.returncode == 0 else ""

    head = git("rev-parse", "--short", "HEAD")
    if not head:
        return "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--", "curate") else "")


def summarise(case: str, impl: str, runs: list[dict], expected: int) -> dict:
    secs = [r["seconds"] for r in runs]
    n = runs[0]["n"]
    if any(r["n"] != n for r in runs) or n != expected:
        print(f"WARNING {case}/{impl}: counted {[r['n'] for r in runs]}, expected {expected}")
    if any(r.get("quarantined") for r in runs):
        print(f"WARNING {case}/{impl}: {runs[0]['quarantined']} samples quarantined (expected 0)")
    median = statistics.median(secs)
    return {
        "case": case, "impl": impl, "n": n, "repeats": len(runs),
        "workers": runs[0].get("workers", 1), "seconds": median, "seconds_min": min(secs),
        "seconds_max": max(secs), "cpu_seconds": statistics.median(r["cpu_seconds"] for r in runs),
        "items_per_s": n / median if median else float("inf"),
        "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        "import_rss_mb": max(r["import_rss_mb"] for r in runs),
        "load_1m": max(r["load_1m"] for r in runs),
    }


def print_table(rows: list[dict]) -> None:
    head = (f"{'case':<7} {'impl':<13} {'n':>9} {'workers':>7} {'seconds':>8} {'cpu s':>7} "
            f"{'items/s':>11} {'vs baseline':>11} {'peak RSS MB':>11} {'after import':>12}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['case']:<7} {r['impl']:<13} {r['n']:>9,} {r['workers']:>7} "
              f"{r['seconds']:>8.3f} {r['cpu_seconds']:>7.3f} {r['items_per_s']:>11,.0f} "
              f"{r['ratio_vs_baseline']:>10.2f}x {r['peak_rss_mb']:>11.0f} "
              f"{r['import_rss_mb']:>12.0f}")


def write_csv(path: Path, rows: list[dict], env: dict, append: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not (append and path.exists())
    with open(path, "w" if new else "a", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        for r in rows:
            rec = {"benchmark": BENCHMARK, **env, **r}
            for key in ("seconds", "seconds_min", "seconds_max", "cpu_seconds"):
                rec[key] = f"{rec[key]:.4f}"
            for key in ("items_per_s", "peak_rss_mb", "import_rss_mb", "load_1m"):
                rec[key] = f"{rec[key]:.1f}"
            rec["ratio_vs_baseline"] = f"{rec['ratio_vs_baseline']:.3f}"
            writer.writerow(rec)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--work", type=Path, default=HERE / "_work",
                   help="folder for generated data and workspaces (default: benchmarks/_work)")
    p.add_argument("--rows", type=int, default=None, help="JSONL rows (default 100,000)")
    p.add_argument("--images", type=int, default=None, help="images (default 10,000)")
    p.add_argument("--quick", action="store_true", help="10x smaller default sizes (smoke run)")
    p.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    p.add_argument("--impls", nargs="+", choices=IMPLS, default=list(IMPLS),
                   help="implementations to run (baseline is always run: ratios need it)")
    p.add_argument("--repeat", type=int, default=3,
                   help="runs per (case, impl); the median time is reported (default 3)")
    p.add_argument("--workers", type=int, default=None,
                   help="reader threads for `curate` (default: curate's ReadOptions default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--csv", type=Path, default=None,
                   help="results CSV (default benchmarks/results/ingest.csv; quick runs: WORK/)")
    p.add_argument("--append", action="store_true",
                   help="append to the CSV instead of replacing it")
    p.add_argument("--child", nargs=2, metavar=("CASE", "IMPL"), help=argparse.SUPPRESS)
    p.add_argument("--src", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    work = args.work.resolve()
    if args.child:
        case, impl = args.child
        print(json.dumps(run_case(case, impl, args.src, work, args.workers)))
        return

    scale = 10 if args.quick else 1
    rows = args.rows if args.rows is not None else 100_000 // scale
    images = args.images if args.images is not None else 10_000 // scale
    sizes = {"jsonl": rows, "images": images}
    impls = ["baseline"] + [i for i in IMPLS[1:] if i in args.impls]
    if "curate-rerun" in impls and "curate" not in impls:
        impls.insert(impls.index("curate-rerun"), "curate")  # rerun needs curate's workspace

    import curate

    env = {
        "device": device_name(), "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "curate_version": curate.__version__,
        "commit": git_commit(),
        "timestamp": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    print(f"ingest benchmark: {env['device']}, {env['cpu_count']} CPUs, "
          f"Python {env['python']}, curate {env['curate_version']} ({env['commit']}); "
          f"median of {args.repeat} run(s), each in its own process")
    sources = ensure_data(work, rows, images, args.seed)

    load = os.getloadavg()[0]
    if load > 0.5 * (os.cpu_count() or 1):
        print(f"WARNING: 1-minute load average is {load:.2f} before starting; other work on "
              "this machine will inflate wall times (cpu s is less affected)")
    results = []
    for case in args.cases:
        # Round-robin over implementations so background noise hits all of them alike.
        runs: dict[str, list[dict]] = {impl: [] for impl in impls}
        for rep in range(max(1, args.repeat)):
            for impl in impls:
                run = measure(case, impl, sources[case], work, args.workers)
                runs[impl].append(run)
                print(f"  {case}/{impl} #{rep + 1}: {run['seconds']:.3f}s "
                      f"({run['n'] / run['seconds']:,.0f}/s), cpu {run['cpu_seconds']:.3f}s, "
                      f"peak RSS {run['peak_rss_mb']:.0f} MB, load {run['load_1m']:.2f}")
        base_rate = None
        for impl in impls:
            row = summarise(case, impl, runs[impl], sizes[case])
            base_rate = base_rate or row["items_per_s"]
            row["ratio_vs_baseline"] = row["items_per_s"] / base_rate
            results.append(row)

    print()
    print("baseline = single-threaded loop: read, sha256, json.loads / PIL full decode to RGB,")
    print("           collect dicts, one pyarrow Parquet write. ratio = items/s over baseline's.")
    print_table(results)
    default_csv = work / "ingest-quick.csv" if args.quick else HERE / "results" / "ingest.csv"
    out = args.csv or default_csv
    write_csv(out, results, env, args.append)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
