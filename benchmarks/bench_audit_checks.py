"""Audit checks on planted defects: curate's image checks vs CleanVision, and curate's text checks.

Data: benchmarks/_audit_data.py (images) and benchmarks/_audit_texts.py (texts), all built offline from
what installed packages ship; every clean item gets one copy per defect kind. Settings are TUNED on one
origin (images: ``photos``; texts: ``docs``, the standard library's and numpy's docstrings) and REPORTED
on every origin: the thresholds each check's score would need on the tuning origin are printed beside the
module defaults, and the tables use the defaults.

Per check and origin: recall (planted defects of that kind flagged by that check) and false-flag rate
(clean items flagged by it; grayscale only counts colour sources, since a grey picture is rightly
grayscale). CleanVision runs on the same files in the same run (issue types mapped: blurry, dark,
light -> overexposed, low_information, odd_size -> tiny, odd_aspect_ratio -> odd-aspect, grayscale;
undecodable files are left out for it: it raises on the first truncated file). Both tools run in a
child process each, on 2 workers, for wall time and peak RSS; ``--large`` adds a timing-only set of
large JPEGs (1600-2400 px), where curate's reduced-scale JPEG decode matters.

    python benchmarks/bench_audit_checks.py                      # images and texts, ~10 minutes on 2 CPUs
    python benchmarks/bench_audit_checks.py --modality texts --texts 150 --scale 20000
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import random
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

WORK = HERE / "_work" / "audit"
IMAGE_ORIGINS = ("photos", "photos-heldout", "scans", "synthetic")
IMAGE_CHECKS = ("blurry", "dark", "overexposed", "low-information", "tiny", "odd-aspect", "grayscale", "undecodable")
CLEANVISION = {"blurry": "blurry", "dark": "dark", "overexposed": "light", "low-information": "low_information",
               "tiny": "odd_size", "odd-aspect": "odd_aspect_ratio", "grayscale": "grayscale"}


# -- workers (run in a child process each: own wall time and peak RSS) ----------------------------------------


def worker_curate(files: list[str], out: Path, workers: int) -> None:
    from curate.audit.image_checks import image_check_scores

    def payloads():
        for f in files:
            with open(f, "rb") as fh:
                yield fh.read()

    t, c = time.perf_counter(), _cpu_seconds()
    scores = image_check_scores(payloads(), workers=workers)
    seconds = time.perf_counter() - t
    np.savez(out, seconds=seconds, cpu=_cpu_seconds() - c, rss=_peak_rss_mb(), **{k: v for k, v in scores.items()})


def worker_cleanvision(files: list[str], out: Path, workers: int) -> None:
    import contextlib
    import io

    from cleanvision import Imagelab

    t, c = time.perf_counter(), _cpu_seconds()
    lab = Imagelab(filepaths=files)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        lab.find_issues({v: {} for v in CLEANVISION.values()}, verbose=False, n_jobs=workers)
    seconds = time.perf_counter() - t
    issues = lab.issues.reindex(files)
    np.savez(out, seconds=seconds, cpu=_cpu_seconds() - c, rss=_peak_rss_mb(),
             **{k: issues[f"is_{v}_issue"].to_numpy(dtype=bool) for k, v in CLEANVISION.items()})


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished worker processes."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _peak_rss_mb() -> float:
    """Peak RSS of this process plus that of its largest worker process (if any), MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + kids) / 1024


def run_child(tool: str, files: list[str], workers: int) -> tuple[dict, float, float, float]:
    """Run one tool on ``files`` in a child process: (arrays, wall seconds inside the tool, CPU seconds,
    peak RSS MB of the child plus its largest worker process)."""
    WORK.mkdir(parents=True, exist_ok=True)
    listing = WORK / f"{tool}-files.json"
    listing.write_text(json.dumps(files))
    out = WORK / f"{tool}-out.npz"
    code = (f"import json, sys; sys.path.insert(0, {str(HERE)!r}); sys.path.insert(0, {str(HERE.parent)!r}); "
            f"import bench_audit_checks as b; from pathlib import Path; "
            f"b.worker_{tool}(json.loads(Path({str(listing)!r}).read_text()), Path({str(out)!r}), {workers})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{tool} failed:\n{proc.stderr[-3000:]}")
    with np.load(out) as z:
        arrays = {k: z[k] for k in z.files}
    return arrays, float(arrays.pop("seconds")), float(arrays.pop("cpu")), float(arrays.pop("rss"))


# -- metrics ------------------------------------------------------------------------------------------------


def tune_threshold(clean: np.ndarray, planted: np.ndarray, max_false: float = 0.02) -> tuple[float, float]:
    """The thresholds a score can take on the tuning origin: the interval ``[lo, hi]`` of thresholds with at
    most ``max_false`` of the clean items flagged and the best recall that allows (any threshold in it gives
    the same result there)."""
    clean = np.sort(clean[np.isfinite(clean)])[::-1]
    planted = planted[np.isfinite(planted)]
    allowed = int(np.floor(max_false * clean.size + 1e-9))
    lo = float(clean[allowed]) + 1e-3 if clean.size > allowed else 0.0  # flags at most `allowed` clean items
    above = planted[planted >= lo]
    hi = float(above.min()) if above.size else 1.0
    return round(lo, 3), round(max(lo, hi), 3)


def image_metrics(records: list[dict], flags: dict[str, np.ndarray], tool: str) -> list[dict]:
    rows = []
    kinds = np.array([r["kind"] for r in records])
    origins = np.array([r["origin"] for r in records])
    grey = np.array([r["grey_source"] for r in records])
    for origin in IMAGE_ORIGINS:
        here = origins == origin
        for check in IMAGE_CHECKS:
            if check not in flags:
                continue
            f = flags[check]
            planted = here & (kinds == check)
            clean = here & (kinds == "clean") & (~grey if check == "grayscale" else True)
            rows.append({"origin": origin, "check": check, "tool": tool,
                         "recall": float(f[planted].mean()) if planted.any() else float("nan"),
                         "false_flags": float(f[clean].mean()) if clean.any() else float("nan"),
                         "planted": int(planted.sum()), "clean": int(clean.sum())})
    return rows


def print_table(rows: list[dict], origins, checks, tools) -> None:
    head = f"{'check':16s} {'origin':15s}" + "".join(f" {t[:22]:>24s}" for t in tools)
    print(head + "\n" + "-" * len(head))
    by = {(r["check"], r["origin"], r["tool"]): r for r in rows}
    for check in checks:
        for origin in origins:
            cells = []
            for t in tools:
                r = by.get((check, origin, t))
                cells.append(f"{'-':>24s}" if r is None else
                             f"{_pct(r['recall']):>8s} / {_pct(r['false_flags']):>5s} ({r['planted']:>3d})")
            print(f"{check:16s} {origin:15s}" + "".join(f" {c:>24s}" for c in cells))
    print("(each cell: recall on planted / false-flag rate on clean (planted count))")


def _pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.0f}%"


# -- images ------------------------------------------------------------------------------------------------


def large_jpegs(root: Path, n: int, seed: int) -> list[str]:
    """Timing-only: ``n`` photo crops upscaled to 1600-2400 px, JPEG q90."""
    import _audit_data as data
    from PIL import Image

    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    names = data.PHOTOS["photos"] + data.PHOTOS["photos-heldout"]
    sources = {name: data._photo(name) for name in names}
    files = []
    for i in range(n):
        img = data._random_crop(sources[names[i % len(names)]], rng)
        f = rng.randint(1600, 2400) / max(img.size)
        img = img.resize((round(img.width * f), round(img.height * f)), Image.BICUBIC)
        path = root / f"large-{i:04d}.jpg"
        img.save(path, "JPEG", quality=90)
        files.append(str(path))
    return files


def run_images(args, commit: str) -> list[dict]:
    import _audit_data as data

    from curate.audit.image_checks import ImageCheckConfig, flags

    root = WORK / "images"
    shutil.rmtree(root, ignore_errors=True)
    t = time.perf_counter()
    records = data.build_images(IMAGE_ORIGINS, args.per_origin, root, args.seed)
    print(f"\n== images: {len(records)} files ({args.per_origin} clean per origin, each with "
          f"{len(data.IMAGE_DEFECTS)} planted copies), built in {time.perf_counter() - t:.0f}s")
    files = [r["path"] for r in records]
    scores, cur_s, cur_cpu, cur_rss = run_child("curate", files, args.workers)
    decodable = [r for r in records if r["kind"] != "undecodable"]
    cv_flags, cv_s, cv_cpu, cv_rss = run_child("cleanvision", [r["path"] for r in decodable], args.workers)

    # tuning on the photos origin (scores), reported next to the defaults
    config = ImageCheckConfig()
    kinds = np.array([r["kind"] for r in records])
    origins = np.array([r["origin"] for r in records])
    grey = np.array([r["grey_source"] for r in records])
    tune = origins == "photos"
    print("\nthresholds tuned on 'photos' (interval with <= 2% false flags and the best recall) vs the defaults:")
    for check in IMAGE_CHECKS[:-1]:
        clean = tune & (kinds == "clean") & (~grey if check == "grayscale" else True)
        lo, hi = tune_threshold(scores[check][clean], scores[check][tune & (kinds == check)])
        print(f"  {check:16s} tuned {lo:.3f} .. {hi:.3f}  default {getattr(config, check.replace('-', '_')):.2f}")

    ours = flags(scores, config)
    rows = image_metrics(records, ours, "curate")
    # CleanVision flags, aligned with all records (undecodable: not run)
    idx = {r["path"]: i for i, r in enumerate(decodable)}
    cv_full = {}
    for check, values in cv_flags.items():
        full = np.zeros(len(records), dtype=bool)
        for i, r in enumerate(records):
            if r["path"] in idx:
                full[i] = values[idx[r["path"]]]
        cv_full[check] = full
    cv_rows = [r for r in image_metrics(records, cv_full, "CleanVision 0.3") if r["check"] != "undecodable"]
    rows += cv_rows
    print()
    print_table(rows, IMAGE_ORIGINS, IMAGE_CHECKS, ("curate", "CleanVision 0.3"))

    n_cur, n_cv = len(files), len(decodable)
    timing = [{"set": "bench", "tool": "curate", "images": n_cur, "seconds": cur_s, "cpu": cur_cpu, "rss": cur_rss},
              {"set": "bench", "tool": "CleanVision 0.3", "images": n_cv, "seconds": cv_s, "cpu": cv_cpu,
               "rss": cv_rss}]
    if args.large:
        large = large_jpegs(WORK / "large", args.large, args.seed)
        _, s1, c1, r1 = run_child("curate", large, args.workers)
        _, s2, c2, r2 = run_child("cleanvision", large, args.workers)
        timing += [{"set": "large", "tool": "curate", "images": len(large), "seconds": s1, "cpu": c1, "rss": r1},
                   {"set": "large", "tool": "CleanVision 0.3", "images": len(large), "seconds": s2, "cpu": c2,
                    "rss": r2}]
    print(f"\ntiming ({args.workers} workers each, child processes):")
    for tset in dict.fromkeys(t["set"] for t in timing):
        a, b = [t for t in timing if t["set"] == tset]
        ra, rb = a["images"] / a["seconds"], b["images"] / b["seconds"]
        ca, cb = 1000 * a["cpu"] / a["images"], 1000 * b["cpu"] / b["images"]
        print(f"  {tset:6s} curate {a['images']} images {a['seconds']:.1f}s = {ra:.0f} img/s, {ca:.1f} CPU ms/img, "
              f"peak RSS {a['rss']:.0f} MB | CleanVision {b['images']} images {b['seconds']:.1f}s = {rb:.0f} img/s, "
              f"{cb:.1f} CPU ms/img, peak RSS {b['rss']:.0f} MB | curate/CleanVision: wall {ra / rb:.1f}x, "
              f"CPU {cb / ca:.1f}x")
        for t in (a, b):
            rows.append({"origin": tset, "check": "_timing", "tool": t["tool"], "images": t["images"],
                         "seconds": t["seconds"], "images_per_s": t["images"] / t["seconds"],
                         "cpu_ms_per_image": 1000 * t["cpu"] / t["images"], "peak_rss_mb": t["rss"]})
    return rows


# -- texts -------------------------------------------------------------------------------------------------


def run_texts(args, commit: str) -> list[dict]:
    """Clean-text false flags come from one run over every origin's clean texts (the dataset); each defect
    kind's recall from a run over the clean texts plus that kind's planted copies (a dataset with some
    defective texts: the corpus-level checks, boilerplate and the majority language, see a realistic mix)."""
    import _audit_texts as tdata

    from curate.audit.text_checks import TEXT_CHECKS, TextCheckConfig, flags, text_check_scores

    t = time.perf_counter()
    records = tdata.build_texts(args.texts, args.seed)
    origins = list(dict.fromkeys(r["origin"] for r in records))
    print(f"\n== texts: {len(records)} texts ({', '.join(origins)}; each clean text with one planted copy per "
          f"defect kind, too-long: 8 per origin), built in {time.perf_counter() - t:.0f}s")
    config = TextCheckConfig()
    checks = [c for c in TEXT_CHECKS if c != "language" or _has_langid()]
    clean = [r for r in records if r["kind"] == "clean"]
    t = time.perf_counter()
    clean_scores = text_check_scores([r["text"] for r in clean])
    clean_seconds = time.perf_counter() - t
    clean_origin = np.array([r["origin"] for r in clean])
    clean_flags = flags(clean_scores, config)
    planted_scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for check in checks:
        planted = [r for r in records if r["kind"] == check]
        s = text_check_scores([r["text"] for r in clean] + [r["text"] for r in planted], checks=[check])
        planted_scores[check] = (s[check][len(clean):], np.array([r["origin"] for r in planted]))
    print("\nthresholds tuned on 'docs' (interval with <= 2% false flags and the best recall) vs the defaults:")
    for check in checks:
        values, origin = planted_scores[check]
        lo, hi = tune_threshold(clean_scores[check][clean_origin == "docs"], values[origin == "docs"])
        print(f"  {check:16s} tuned {lo:.3f} .. {hi:.3f}  default {getattr(config, check.replace('-', '_')):.2f}")
    rows = []
    for origin in origins:
        for check in checks:
            values, porigin = planted_scores[check]
            threshold = getattr(config, check.replace("-", "_"))
            p = np.nan_to_num(values[porigin == origin], nan=-1.0) >= threshold
            c = clean_flags[check][clean_origin == origin]
            rows.append({"origin": origin, "check": check, "tool": "curate",
                         "recall": float(p.mean()) if p.size else float("nan"),
                         "false_flags": float(c.mean()) if c.size else float("nan"),
                         "planted": int(p.size), "clean": int(c.size)})
    rows += text_outliers(records, args)
    print()
    print_table(rows, origins, checks + ["outlier", "outlier (12% junk)"],
                ("curate", "curate (MiniLM kNN only)", "curate (characters only)"))
    # speed: every check on the clean texts of all origins (one process)
    n = len(clean)
    mb = sum(len(r["text"]) for r in clean) / 1e6
    print(f"\ntext checks: {n} texts ({mb:.1f} MB) in {clean_seconds:.2f}s = {n / clean_seconds:.0f} texts/s, "
          f"{mb / clean_seconds:.2f} MB/s (one process)")
    rows.append({"origin": "clean", "check": "_timing", "tool": "curate", "texts": n, "mb": mb,
                 "seconds": clean_seconds, "texts_per_s": n / clean_seconds})
    if args.scale:
        rows += text_scale([r["text"] for r in clean], args.scale, args.seed)
    return rows


def text_scale(pool: list[str], n: int, seed: int) -> list[dict]:
    """Throughput on ``n`` texts (the clean texts, each copy with one word dropped so no two are equal), per
    check, in this process (the language model is loaded before timing)."""
    from curate.audit.text_checks import TEXT_CHECKS, language_available, text_check_scores

    rng = random.Random(seed)
    texts = []
    for i in range(n):
        words = pool[i % len(pool)].split(" ")
        del words[rng.randrange(len(words))]
        texts.append(" ".join(words))
    mb = sum(map(len, texts)) / 1e6
    if language_available():
        text_check_scores(texts[:10], checks=["language"])  # model load, not timed
    rows, total = [], 0.0
    print(f"\nthroughput on {n} texts ({mb:.0f} MB), one process:")
    for check in TEXT_CHECKS:
        if check == "language" and not language_available():
            continue
        t = time.perf_counter()
        text_check_scores(texts, checks=[check])
        sec = time.perf_counter() - t
        total += sec
        print(f"  {check:12s} {sec:7.1f}s  {n / sec:8.0f} texts/s  {mb / sec:6.2f} MB/s")
        rows.append({"origin": f"scale-{n}", "check": check, "tool": "curate", "texts": n, "mb": mb,
                     "seconds": sec, "texts_per_s": n / sec})
    print(f"  {'all':12s} {total:7.1f}s  {n / total:8.0f} texts/s  {mb / total:6.2f} MB/s"
          f"  (1M texts of this size: {1e6 / n * total / 60:.0f} min)")
    return rows


def _has_langid() -> bool:
    from curate.audit.text_checks import language_available

    return language_available()


def text_outliers(records: list[dict], args) -> list[dict]:
    """``outlier`` as the stage scores texts: the higher of the MiniLM kNN score (k = 10) and the character
    model's (:mod:`curate.audit.text_outlier`), each also alone; each origin's clean texts plus 3% (and, to
    show a cluster of alike junk, 12%) out-of-distribution texts (translated and Russian man page paragraphs,
    tables of numbers, base64 blobs, random-letter tokens)."""
    import _audit_texts as tdata

    from curate.audit.outlier import knn_sims, outlier_scores
    from curate.audit.text_outlier import text_outlier_scores

    try:
        vectors_of = tdata.embedder()
    except Exception as exc:  # no MiniLM weights: the kNN part is skipped with a note
        print(f"outlier: MiniLM part skipped ({type(exc).__name__}: {exc})")
        vectors_of = None
    rows = []
    clean = [r for r in records if r["kind"] == "clean"]
    origins = list(dict.fromkeys(r["origin"] for r in clean))
    for share in (3, 12):
        for j, origin in enumerate(origins):
            own = [r["text"] for r in clean if r["origin"] == origin]
            planted = tdata.outlier_texts(max(5, len(own) * share // 100), args.seed + j)
            texts = own + planted
            chars = text_outlier_scores(texts)
            knn = outlier_scores(knn_sims(vectors_of(texts), k=10)) if vectors_of else np.full(len(texts), np.nan)
            for tool, score in (("curate", np.fmax(knn, chars)), ("curate (MiniLM kNN only)", knn),
                                ("curate (characters only)", chars)):
                flagged = np.nan_to_num(score, nan=-1.0) >= 0.5
                check = "outlier" if share == 3 else f"outlier ({share}% junk)"
                rows.append({"origin": origin, "check": check, "tool": tool,
                             "recall": float(flagged[len(own):].mean()),
                             "false_flags": float(flagged[:len(own)].mean()), "planted": len(planted),
                             "clean": len(own)})
    return rows


# -- main --------------------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--modality", nargs="+", default=["images", "texts"], choices=["images", "texts"])
    p.add_argument("--per-origin", type=int, default=60, help="clean images per origin (each gets 8 planted copies)")
    p.add_argument("--texts", type=int, default=150, help="clean texts per origin (each gets planted copies)")
    p.add_argument("--large", type=int, default=150, help="large JPEGs for a timing-only run (0: none)")
    p.add_argument("--scale", type=int, default=20000, help="texts for a throughput run (0: none)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE.parent).stdout.strip()
    for modality in args.modality:
        rows = run_images(args, commit) if modality == "images" else run_texts(args, commit)
        _write_csv(modality, rows, commit)
    load = os.getloadavg()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / "
          f"{load[2]:.1f}, this process's peak RSS {rss:.0f} MB, commit {commit}")


def _write_csv(modality: str, rows: list[dict], commit: str) -> None:
    """Long format: one row per (origin, check, tool, metric) in benchmarks/results/audit_checks.csv."""
    out = HERE / "results" / "audit_checks.csv"
    new = not out.exists()
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    load = round(os.getloadavg()[0], 2)
    with out.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["timestamp", "commit", "modality", "origin", "check", "tool", "metric", "value", "load1"])
        for r in rows:
            for metric, value in r.items():
                if metric in ("origin", "check", "tool"):
                    continue
                w.writerow([stamp, commit, modality, r["origin"], r["check"], r["tool"], metric,
                            round(value, 4) if isinstance(value, float) else value, load])


if __name__ == "__main__":
    main()
