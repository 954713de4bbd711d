"""Label-error audit: curate (``curate.audit.labels``) against cleanlab, quality and speed.

Parts (``--parts``, all by default):

- ``quality``: the three sets in ``--data`` (default ``../shared/data/label-errors`` next to the
  repository): out-of-sample ``pred_probs.npy`` [50000, 10], ``noisy_labels.npy``, ``true_labels.npy``;
  a label is wrong where noisy != true. Scores (lower = more likely wrong): AUROC, AUPRC. Flags:
  precision, recall, F1. curate ``label_quality`` (default ``flag_by="union"``, and its two parts)
  against cleanlab ``get_label_quality_scores`` (self_confidence, normalized_margin) and
  ``find_label_issues`` (defaults) on the same arrays.
- ``knn``: embeddings only. scikit-learn digits (1,797 x 64; 10% and 20% of labels flipped to
  another class, seeds 0-4) and a 10-class Gaussian mixture (10,000 x 32, overlapping, 15% flipped).
  cleanlab: ``Datalab(data, label_name="y").find_issues(features=X, issue_types={"label": {}})``
  (its own 10-NN, Euclidean). curate ``knn_label_quality`` on the same 10-NN graph (Euclidean, each
  neighbour weighted ``exp(-(d / median 10-NN distance)^2)``), and on a cosine graph (FAISS
  ``IndexFlatIP`` on centred unit vectors, as curate's stores are searched).
- ``timing``: synthetic fp32 ``pred_probs`` (``--timing-n`` x ``--timing-k``; Dirichlet(1) rows with
  the true class boosted, 10% of labels flipped) written once to a ``.npy`` under ``--work`` and
  memory-mapped; curate in a fresh process (seconds, peak RSS, peak anonymous RSS, i.e. without the
  mapped file, and the flags' F1 against the planted flips); cleanlab (``get_label_quality_scores``
  + ``find_label_issues``) in a fresh process on the same rows, loaded into memory (it holds several
  copies: about 12 GB at 1M x 1,000; ``--cleanlab-n`` times it on the first N rows instead).

Writes long-format rows to ``benchmarks/results/audit_labels.csv`` and prints tables.

    python benchmarks/bench_audit_labels.py                      # everything (about 2 min on 2 cores)
    python benchmarks/bench_audit_labels.py --parts quality knn  # no timing
    python benchmarks/bench_audit_labels.py --data /path/to/label-errors
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

SETS = ("cifar10s-resnet18", "cifar10n-aggre-resnet18", "cifar10n-aggre-swin")
FIELDS = ["benchmark", "part", "dataset", "method", "metric", "value", "note", "host", "timestamp"]


def score_metrics(wrong: np.ndarray, score: np.ndarray) -> dict:
    from sklearn.metrics import average_precision_score, roc_auc_score

    ok = np.isfinite(score)
    return {"auroc": roc_auc_score(wrong[ok], -score[ok]), "auprc": average_precision_score(wrong[ok], -score[ok])}


def flag_metrics(wrong: np.ndarray, flag: np.ndarray) -> dict:
    tp = int((wrong & flag).sum())
    p = tp / max(int(flag.sum()), 1)
    r = tp / max(int(wrong.sum()), 1)
    return {"precision": p, "recall": r, "f1": 2 * p * r / max(p + r, 1e-12), "flagged": int(flag.sum())}


def run_quality(data: Path) -> list[dict]:
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    from curate.audit.labels import label_quality

    rows = []
    for name in SETS:
        probs = np.load(data / name / "pred_probs.npy")
        noisy, true = np.load(data / name / "noisy_labels.npy"), np.load(data / name / "true_labels.npy")
        wrong = noisy != true
        for flag_by in ("union", "confident_learning", "mixture"):
            t0 = time.perf_counter()
            audit = label_quality(probs, noisy, flag_by=flag_by)
            took = time.perf_counter() - t0
            method = "curate" if flag_by == "union" else f"curate:{flag_by}"
            got = {**score_metrics(wrong, audit.label_score), **flag_metrics(wrong, audit.label_issue)}
            rows += [dict(dataset=name, method=method, metric=m, value=v) for m, v in got.items()]
            rows.append(dict(dataset=name, method=method, metric="seconds", value=took))
        t0 = time.perf_counter()
        issues = find_label_issues(noisy, probs)
        took = time.perf_counter() - t0
        for how in ("self_confidence", "normalized_margin"):
            score = get_label_quality_scores(noisy, probs, method=how)
            got = {**score_metrics(wrong, score), **flag_metrics(wrong, issues)}
            rows += [dict(dataset=name, method=f"cleanlab:{how}", metric=m, value=v) for m, v in got.items()]
        rows.append(dict(dataset=name, method="cleanlab:self_confidence", metric="seconds", value=took))
        rows.append(dict(dataset=name, method="truth", metric="wrong_labels", value=int(wrong.sum())))
    return [{**r, "part": "quality", "note": ""} for r in rows]


def _flip(truth: np.ndarray, rate: float, seed: int, classes: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noisy = truth.copy()
    flip = rng.random(truth.size) < rate
    noisy[flip] = (truth[flip] + rng.integers(1, classes, flip.sum())) % classes
    return noisy


def _knn_sets():
    from sklearn.datasets import load_digits, make_blobs

    x, t = load_digits(return_X_y=True)
    for rate in (0.1, 0.2):
        for seed in range(5):
            yield f"digits-{int(rate * 100)}pct", seed, x.astype(np.float32), t, _flip(t, rate, seed, 10)
    x, t = make_blobs(10_000, centers=10, n_features=32, cluster_std=9.0, random_state=0)
    yield "gaussian-mixture-15pct", 0, x.astype(np.float32), t, _flip(t, 0.15, 0, 10)


def run_knn() -> list[dict]:
    import faiss
    from cleanlab import Datalab
    from sklearn.neighbors import NearestNeighbors

    from curate.audit.label_knn import knn_label_quality

    rows, k = [], 10
    for name, seed, x, truth, noisy in _knn_sets():
        wrong = noisy != truth
        dist, ids = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
        scale = np.median(dist[:, 1:])
        unit = x - x.mean(axis=0)
        unit /= np.linalg.norm(unit, axis=1, keepdims=True) + 1e-12
        index = faiss.IndexFlatIP(unit.shape[1])
        index.add(unit)
        sims, cos_ids = index.search(unit, k + 1)
        graphs = {"curate": (ids, np.exp(-((dist / scale) ** 2))), "curate:cosine-graph": (cos_ids, sims)}
        for method, (nbr, weight) in graphs.items():
            audit = knn_label_quality(nbr, weight, noisy, num_classes=10, k=k)
            got = {**score_metrics(wrong, audit.label_score), **flag_metrics(wrong, audit.label_issue)}
            rows += [dict(dataset=name, method=method, metric=m, value=v, note=f"seed {seed}") for m, v in got.items()]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lab = Datalab({"y": noisy}, label_name="y", verbosity=0)
            lab.find_issues(features=x, issue_types={"label": {}})
        found = lab.get_issues("label")
        score, flag = found["label_score"].to_numpy(), found["is_label_issue"].to_numpy()
        got = {**score_metrics(wrong, score), **flag_metrics(wrong, flag)}
        note = f"seed {seed}"
        rows += [dict(dataset=name, method="cleanlab:datalab", metric=m, value=v, note=note) for m, v in got.items()]
    return [{**r, "part": "knn"} for r in rows]


def _make_synthetic(path: Path, n: int, k: int, seed: int = 0) -> None:
    """Dirichlet(1) rows with the true class boosted, fp32, and 10% flipped labels, blockwise."""
    if path.exists() and np.load(path, mmap_mode="r").shape == (n, k) and _side(path, "truth").exists():
        return
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path.with_suffix(".tmp.npy"), mode="w+", dtype=np.float32, shape=(n, k))
    truth = rng.integers(0, k, n)
    for a in range(0, n, 16384):
        b = min(a + 16384, n)
        e = rng.standard_exponential((b - a, k), dtype=np.float32)
        e[np.arange(b - a), truth[a:b]] += k * rng.uniform(0.0, 3.0, b - a).astype(np.float32)
        out[a:b] = e / e.sum(axis=1, keepdims=True)
    out.flush()
    del out
    np.save(_side(path, "labels"), _flip(truth, 0.1, seed + 1, k))
    np.save(_side(path, "truth"), truth)
    os.replace(path.with_suffix(".tmp.npy"), path)


def _side(path: Path, what: str) -> Path:
    return path.with_name(f"{path.stem}-{what}.npy")


def _child(which: str, path: str, rows: int) -> None:
    """One timed run in this (fresh) process; prints a JSON line."""
    peak = {"anon": 0}

    def watch():
        while True:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("RssAnon:"):
                        peak["anon"] = max(peak["anon"], int(line.split()[1]))
            time.sleep(0.02)

    threading.Thread(target=watch, daemon=True).start()
    labels = np.load(_side(Path(path), "labels"))[:rows]
    t0 = time.perf_counter()
    if which == "curate":
        from curate.audit.labels import label_quality

        probs = np.load(path, mmap_mode="r")[:rows]
        flags = label_quality(probs, labels).label_issue
    else:
        from cleanlab.filter import find_label_issues
        from cleanlab.rank import get_label_quality_scores

        probs = np.load(path, mmap_mode="r")[:rows].copy()
        get_label_quality_scores(labels, probs)
        flags = find_label_issues(labels, probs)
    took = time.perf_counter() - t0
    quality = flag_metrics(labels != np.load(_side(Path(path), "truth"))[:rows], flags)
    time.sleep(0.05)
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))
    got = {"seconds": took, "peak_rss_mb": hwm / 1024, "peak_anon_mb": peak["anon"] / 1024, **quality}
    print(json.dumps(got))


def run_timing(args) -> list[dict]:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    path = work / f"audit-probs-{args.timing_n}x{args.timing_k}.npy"
    t0 = time.perf_counter()
    _make_synthetic(path, args.timing_n, args.timing_k)
    print(f"synthetic {args.timing_n:,} x {args.timing_k:,} fp32 ready in {time.perf_counter() - t0:.0f} s: {path}")
    rows = []
    cleanlab_n = min(args.cleanlab_n or args.timing_n, args.timing_n)
    plan = [("curate", args.timing_n)] + ([("curate", cleanlab_n)] if cleanlab_n < args.timing_n else [])
    plan.append(("cleanlab", cleanlab_n))
    for which, n in plan:
        cmd = [sys.executable, __file__, "--child", which, str(path), str(n)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        got = json.loads(done.stdout.strip().splitlines()[-1])
        note = f"{n:,} x {args.timing_k:,} fp32, " + ("memory-mapped" if which == "curate" else "in memory")
        name = f"synthetic-{n}x{args.timing_k}"
        rows += [dict(dataset=name, method=which, metric=m, value=v, note=note) for m, v in got.items()]
    return [{**r, "part": "timing"} for r in rows]


def _table(rows: list[dict], part: str, metrics: list[str]) -> None:
    picked = [r for r in rows if r["part"] == part and r["method"] != "truth"]
    if not picked:
        return
    cells: dict = {}
    for r in picked:
        cells.setdefault((r["dataset"], r["method"]), {}).setdefault(r["metric"], []).append(float(r["value"]))
    print(f"\n{part}:  " + "  ".join(f"{m:>9}" for m in metrics))
    for (dataset, method), got in cells.items():
        vals = [np.mean(got[m]) if m in got else float("nan") for m in metrics]
        text = "  ".join(f"{v:9.4f}" if abs(v) < 10 else f"{v:9.1f}" if abs(v) < 1000 else f"{v:9.0f}" for v in vals)
        print(f"{dataset:26s} {method:30s} {text}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str((ROOT / ".." / "shared" / "data" / "label-errors").resolve()))
    p.add_argument("--parts", nargs="+", default=["quality", "knn", "timing"], choices=["quality", "knn", "timing"])
    p.add_argument("--timing-n", type=int, default=1_000_000)
    p.add_argument("--timing-k", type=int, default=1000)
    p.add_argument("--cleanlab-n", type=int, help="time cleanlab on the first N rows (default all: about 12 GB)")
    p.add_argument("--work", default=str(HERE / "_work"))
    p.add_argument("--out", default=str(HERE / "results" / "audit_labels.csv"))
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child(args.child[0], args.child[1], int(args.child[2]))
        return
    rows = []
    if "quality" in args.parts:
        rows += run_quality(Path(args.data))
    if "knn" in args.parts:
        rows += run_knn()
    if "timing" in args.parts:
        rows += run_timing(args)
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in rows:
            note = r.get("note", "")
            w.writerow(
                {
                    **r,
                    "benchmark": "audit_labels",
                    "note": f"{note}; load {load}".strip("; "),
                    "host": platform.node(),
                    "timestamp": stamp,
                }
            )
    _table(rows, "quality", ["auroc", "auprc", "precision", "recall", "f1", "flagged"])
    _table(rows, "knn", ["auroc", "auprc", "precision", "recall", "f1", "flagged"])
    _table(rows, "timing", ["seconds", "peak_rss_mb", "peak_anon_mb", "f1", "flagged"])
    print(f"\nload average {load}; wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()
