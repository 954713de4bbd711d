"""Fuzzy (MinHash) dedup of texts: the path ``--method fuzzy`` runs vs datasketch, same documents, same run.

Data: ``--n`` synthetic English-like documents of about 1 KB (sentences of Zipf-distributed
pseudo-words, capitalised and punctuated), generated deterministically from ``--seed``.
``--dup-frac`` of them (10%) are planted near copies of another document: a few words
dropped or replaced, sometimes a changed case or an appended sentence. Ground truth is the
planted pairs whose exact 5-gram Jaccard (Python sets over the normalised text) is at least
``--threshold``; recall is measured on those.

Implementations (each in a fresh process, so peak RSS belongs to it; generation is not timed):

- ``curate``:     what the fuzzy stage runs on texts: ``curate.dedup.candidates.minhash_candidates``
                  (default signature threads: usable CPUs less one, so 1 on 2 CPUs; LSH 20 x 13),
                  then ``curate.dedup.verify.Verifier.text_pairs`` (exact Jaccard of every
                  candidate; texts under 100 characters need 0.85). Its peak RSS includes the
                  modules the stage imports (torch among them);
- ``curate-wN``:  the same with ``workers=N`` (``--impls curate curate-w2 datasketch``);
- ``curate-gpu``: the same with the permutation step on ``--device`` (default ``cuda``);
- ``datasketch``: ``MinHash(num_perm=260).update_batch`` over the same normalised 5-char
                  shingles, ``MinHashLSH(threshold=0.8, num_perm=260).insert`` for every
                  document, then ``query`` for every document to list its candidate pairs
                  (datasketch verifies nothing: its pairs are LSH candidates).

Reported: docs/s, seconds, peak RSS of the timed part (the kernel's high-water mark, reset once
the documents are loaded, so it counts the documents held in memory; the peak while loading is
reported as "before the timed part"), pairs found, recall of the planted pairs, and the docs/s
ratio. The documents are generated once per ``--n``/``--dup-frac``/``--seed`` and kept under
``benchmarks/_work/minhash-docs/`` (1M documents take 20-30 minutes to generate).

    python benchmarks/bench_minhash.py --n 20000
    python benchmarks/bench_minhash.py --n 100000
    python benchmarks/bench_minhash.py --n 1000000 --datasketch-n 100000

``--datasketch-n M`` runs datasketch on the first ``M`` documents only (its full 1M run takes
about 40 minutes on 2 CPUs): its docs/s is then extrapolated per document (datasketch's cost
per document is flat in N: one sketch and one LSH insert/query each) and its recall is measured
on the planted pairs that lie within those ``M`` documents.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from curate.dedup.candidates import minhash_candidates  # noqa: E402
from curate.dedup.minhash import normalise  # noqa: E402
from curate.dedup.near import FUZZY_SIGNALS, NearConfig  # noqa: E402
from curate.dedup.verify import Verifier  # noqa: E402

LETTERS = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
LETTER_P = np.array([12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0,
                     1.9, 1.5, 1.0, 0.8, 0.15, 0.15, 0.1, 0.07])


def make_docs(n: int, dup_frac: float, seed: int) -> tuple[list[str], np.ndarray]:
    """``n`` documents of about 1 KB and the planted pairs [m, 2] (original, copy) by index."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.poisson(5, 30000), 1, 14)
    letters = "".join(rng.choice(LETTERS, size=int(lengths.sum()), p=LETTER_P / LETTER_P.sum()))
    ends = np.cumsum(lengths)
    vocab = [letters[e - k:e] for e, k in zip(ends.tolist(), lengths.tolist())]
    n_dup = int(n * dup_frac)
    n_base = n - n_dup

    def sentence(words: list[str]) -> str:
        return " ".join(words).capitalize() + str(rng.choice([".", ".", ".", "?", "!"]))

    def document() -> list[str]:
        words = [vocab[i] for i in ((rng.zipf(1.2, 300) - 1) % len(vocab)).tolist()]
        cuts = np.cumsum(rng.integers(6, 20, 40)).tolist()
        sents, size, prev = [], 0, 0
        for cut in cuts:
            sents.append(sentence(words[prev:cut]))
            size += len(sents[-1]) + 1
            prev = cut
            if size >= 1000 or cut >= len(words):
                break
        return sents

    base = [document() for _ in range(n_base)]
    docs = [" ".join(s) for s in base]
    originals = rng.integers(0, n_base, n_dup)
    for o in originals:
        words = " ".join(base[o]).split(" ")
        edit = rng.random(len(words))
        out = []
        for w, e in zip(words, edit):
            if e < 0.015:  # drop
                continue
            out.append(vocab[rng.integers(len(vocab))] if e < 0.03 else w)  # replace
        text = " ".join(out)
        kind = rng.random()
        if kind < 0.2:
            text = text.upper()
        elif kind < 0.4:
            text = text + " " + sentence([vocab[i] for i in rng.integers(0, len(vocab), 12).tolist()])
        elif kind < 0.5:
            text = text.replace(". ", ".\n\n")
        docs.append(text)
    # shuffle so copies are not all at the end
    perm = rng.permutation(n)
    where = np.empty(n, dtype=np.int64)
    where[perm] = np.arange(n)
    docs = [docs[i] for i in perm]
    planted = np.stack([where[originals], where[np.arange(n_base, n)]], axis=1)
    planted.sort(axis=1)
    return docs, planted


def shingle_set(text: str, k: int) -> set[str]:
    t = normalise(text)
    return {t[i:i + k] for i in range(len(t) - k + 1)} if len(t) >= k else ({t} if t else set())


def run_curate(docs: list[str], args, workers: int | None = None, device: str = "cpu") -> dict:
    """The texts' part of a ``--method fuzzy`` run: MinHash candidates, then the stage's verification."""
    config = NearConfig(signals=FUZZY_SIGNALS, jaccard=args.threshold, ngram=args.ngram, bands=args.bands,
                        rows=args.rows, device=device)
    t = time.perf_counter()
    c = time.process_time()
    cand = minhash_candidates(docs, np.arange(len(docs)), config, workers=workers)
    _, passed = Verifier(["text"] * len(docs), docs, None, config, edit=False).text_pairs(cand[:, 0], cand[:, 1])
    return {"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c,
            "pairs": cand[passed].tolist(), "candidates": len(cand), "lsh": f"{args.bands}x{args.rows}"}


def run_datasketch(docs: list[str], args) -> dict:
    from datasketch import MinHash, MinHashLSH

    t = time.perf_counter()
    c = time.process_time()
    k = args.ngram
    lsh = MinHashLSH(threshold=args.threshold, num_perm=args.bands * args.rows)
    sketches = []
    for i, doc in enumerate(docs):
        m = MinHash(num_perm=args.bands * args.rows)
        m.update_batch([s.encode("utf-8") for s in shingle_set(doc, k)])
        lsh.insert(i, m)
        sketches.append(m)
    pairs = set()
    for i, m in enumerate(sketches):
        for j in lsh.query(m):
            if j != i:
                pairs.add((min(i, j), max(i, j)))
    return {"seconds": time.perf_counter() - t, "cpu_seconds": time.process_time() - c,
            "pairs": sorted(pairs), "candidates": len(pairs), "lsh": f"{lsh.b}x{lsh.r}"}


def cached_docs(n: int, dup_frac: float, seed: int) -> tuple[list[str], np.ndarray]:
    """``make_docs``, kept under benchmarks/_work (generating 1M documents takes 20-30 minutes)."""
    path = HERE / "_work" / "minhash-docs" / f"n{n}-d{dup_frac}-s{seed}.pkl"
    if path.exists():
        with path.open("rb") as f:
            return pickle.load(f)
    docs, planted = make_docs(n, dup_frac, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_suffix(".part").open("wb") as f:
        pickle.dump((docs, planted), f, protocol=pickle.HIGHEST_PROTOCOL)
    path.with_suffix(".part").rename(path)
    return docs, planted


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (Linux), so the peak reported is the timed part's own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(impl: str, args) -> None:
    docs, _ = cached_docs(args.n, args.dup_frac, args.seed)
    before = _peak_rss_mb()
    _reset_peak_rss()
    if impl == "datasketch":
        result = run_datasketch(docs[:args.datasketch_n] if args.datasketch_n else docs, args)
    elif impl == "curate-gpu":  # the permutation step on the GPU (curate/dedup/minhash_torch.py)
        import torch

        torch.zeros(1, device=args.device)  # the device is set up before the timed part
        result = run_curate(docs, args, device=args.device)
    else:
        result = run_curate(docs, args, workers=int(impl[len("curate-w"):]) if impl.startswith("curate-w") else None)
    result["peak_rss_mb"] = _peak_rss_mb()
    result["rss_before_mb"] = before
    Path(args.result).write_text(json.dumps(result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--dup-frac", type=float, default=0.1)
    p.add_argument("--threshold", type=float, default=0.8)
    p.add_argument("--ngram", type=int, default=5)
    p.add_argument("--bands", type=int, default=20)
    p.add_argument("--rows", type=int, default=13)
    p.add_argument("--impls", nargs="+", default=["curate", "datasketch"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--datasketch-n", type=int, default=0, help="run datasketch on the first N docs only")
    p.add_argument("--device", default="cuda", help="torch device of the curate-gpu implementation")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child, args)
        return

    t = time.perf_counter()
    docs, planted = cached_docs(args.n, args.dup_frac, args.seed)
    sizes = np.array([len(d) for d in docs])
    jac = []
    for a, b in planted:
        sa, sb = shingle_set(docs[a], args.ngram), shingle_set(docs[b], args.ngram)
        jac.append(len(sa & sb) / len(sa | sb))
    jac = np.array(jac)
    truth = {tuple(x) for x in planted[jac >= args.threshold].tolist()}
    print(f"{args.n:,} docs (mean {sizes.mean():.0f} chars), {len(planted):,} planted near copies, "
          f"{len(truth):,} of them at Jaccard >= {args.threshold} (planted Jaccard quartiles "
          f"{np.percentile(jac, 25):.3f} / {np.median(jac):.3f} / {np.percentile(jac, 75):.3f}); "
          f"generated or loaded in {time.perf_counter() - t:.1f}s")
    del docs

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for impl in args.impls:
            out = Path(tmp) / f"{impl}.json"
            subprocess.run([sys.executable, __file__, *sys.argv[1:], "--child", impl, "--result", str(out)],
                           check=True)
            r = json.loads(out.read_text())
            found = {tuple(x) for x in r.pop("pairs")}
            n_run = min(args.datasketch_n or args.n, args.n) if impl == "datasketch" else args.n
            expected = truth if n_run == args.n else {t for t in truth if t[1] < n_run}
            r["n"] = n_run
            r["found"] = len(found)
            r["recall"] = len(expected & found) / max(len(expected), 1)
            r["docs_per_s"] = n_run / r["seconds"]
            results[impl] = r
            print(f"{impl:10s} {n_run:,} docs: {r['seconds']:7.1f}s ({r['cpu_seconds']:.1f}s cpu), "
                  f"{r['docs_per_s']:8.0f} docs/s, peak RSS {r['peak_rss_mb']:.0f} MB "
                  f"(before the timed part {r['rss_before_mb']:.0f} MB), LSH {r['lsh']}, "
                  f"candidates {r['candidates']:,}, pairs {r['found']:,}, recall {r['recall']:.4f}")
    for impl in results:
        if impl.startswith("curate") and "datasketch" in results:
            ratio = results[impl]["docs_per_s"] / results["datasketch"]["docs_per_s"]
            print(f"docs/s ratio {impl}/datasketch: {ratio:.1f}x")
    load = os.getloadavg()
    _write_csv(args, results, load)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}, Python {platform.python_version()}, "
          f"numpy {np.__version__}")


def _write_csv(args, results: dict, load: tuple) -> None:
    """One row per implementation appended to benchmarks/results/minhash.csv."""
    import csv

    path = HERE / "results" / "minhash.csv"
    fields = ["n_total", "impl", "n", "seconds", "docs_per_s", "ratio_vs_datasketch", "peak_rss_mb", "rss_before_mb",
              "candidates", "found", "recall", "lsh", "load1"]
    new = not path.exists()
    path.parent.mkdir(exist_ok=True)
    with path.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new:
            w.writeheader()
        base = results.get("datasketch", {}).get("docs_per_s")
        for impl, r in results.items():
            w.writerow({"n_total": args.n, "impl": impl, "n": r["n"], "seconds": round(r["seconds"], 2),
                        "docs_per_s": round(r["docs_per_s"]),
                        "ratio_vs_datasketch": round(r["docs_per_s"] / base, 2) if base else "",
                        "peak_rss_mb": round(r["peak_rss_mb"]), "rss_before_mb": round(r["rss_before_mb"]),
                        "candidates": r["candidates"], "found": r["found"], "recall": round(r["recall"], 4),
                        "lsh": r["lsh"], "load1": round(load[0], 2)})


if __name__ == "__main__":
    main()
