"""``near`` vs ``fuzzy`` on many texts: the text path of each stage, same documents, same process.

Documents (cheap to make at 1M: one vectorised draw): about 90 words drawn by the frequency of
the words in the installed packages' docstrings, a sentence mark every 12 words. ``--dup-frac``
of them are planted copies of another document, the kinds cycling: truncated to 75%, wrapped in a
header and footer, wrapped in HTML, 3% typos, a word dropped in ten.

Timed per method (generation is not): ``text_candidates`` (MinHash LSH + containment chunks, one
pass over the shingles) and ``Verifier.text_pairs`` of the candidates (fuzzy: Jaccard and
containment; near: also edit similarity and the swap check). The semantic signal (an embedding
kNN) is not part of this: it needs an embedding store. Also timed: the normalisation alone, with
markup stripping (today) and with the plain casefold + whitespace collapse it replaced.

    python benchmarks/bench_text_scale.py --n 200000
"""

from __future__ import annotations

import argparse
import inspect
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from curate.dedup.candidates import text_candidates  # noqa: E402
from curate.dedup.near import FUZZY_SIGNALS, NearConfig  # noqa: E402
from curate.dedup.text_normalise import normalise_many  # noqa: E402
from curate.dedup.verify import Verifier  # noqa: E402

MODULES = ("os", "collections", "json", "re", "inspect", "argparse", "logging", "typing", "pathlib", "asyncio",
           "numpy", "numpy.linalg", "numpy.random", "pyarrow", "pyarrow.compute", "scipy.stats", "sklearn.cluster")


def vocabulary() -> tuple[np.ndarray, np.ndarray]:
    """The words of the installed packages' docstrings and how often each occurs (a real Zipf law)."""
    import importlib
    import warnings
    from collections import Counter

    counts: Counter = Counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in MODULES:
            try:
                module = importlib.import_module(name)
            except Exception:
                continue
            for attr in dir(module):
                counts.update(w for w in (inspect.getdoc(getattr(module, attr, None)) or "").split()
                              if w.isalpha())
    words = sorted(counts)
    return np.array([w + " " for w in words], dtype=object), np.array([counts[w] for w in words], dtype=np.float64)


def make_docs(n: int, dup_frac: float, seed: int) -> tuple[list[str], np.ndarray]:
    """``n`` documents of about 90 words drawn by docstring word frequency (a sentence mark every 12), the
    last ``dup_frac`` of them planted copies of earlier ones; returns the documents and the planted
    pairs [m, 2] (original, copy)."""
    rng = np.random.default_rng(seed)
    words, freq = vocabulary()
    n_copies = int(n * dup_frac)
    lengths = rng.poisson(90, n - n_copies).clip(20, None)
    picks = words[rng.choice(len(words), int(lengths.sum()), p=freq / freq.sum())]
    picks[11::12] = [w[:-1] + ". " for w in picks[11::12]]
    ends = np.cumsum(lengths)
    docs = ["".join(picks[e - k:e]).capitalize().rstrip() + "." for e, k in zip(ends.tolist(), lengths.tolist())]
    kinds = ("truncated", "wrapped", "html", "typos", "drop")
    wrap = ("Home | Docs | Blog | Sign in. Skip to content. ", " Copyright 2024 Example. All rights reserved.")
    planted = []
    for i in range(n_copies):
        planted.append((int(rng.integers(0, n - n_copies)), len(docs)))
        src = docs[planted[-1][0]]
        kind = kinds[i % len(kinds)]
        if kind == "truncated":
            copy = src[:src.rfind(" ", 0, int(0.75 * len(src)) + 1)]
        elif kind == "wrapped":
            copy = wrap[0] + src + wrap[1]
        elif kind == "html":
            copy = "<html><body><div><p>" + src.replace(". ", ".</p><p>") + "</p></div></body></html>"
        elif kind == "typos":
            chars = list(src)
            for k in rng.integers(0, len(chars), max(1, len(chars) // 33)).tolist():
                chars[k] = "qxz"[k % 3]
            copy = "".join(chars)
        else:
            copy = " ".join(w for k, w in enumerate(src.split()) if k % 10 != 4)
        docs.append(copy)
    return docs, np.array(planted, dtype=np.int64).reshape(-1, 2)


def run(docs: list[str], config: NearConfig, edit: bool, planted: np.ndarray) -> dict:
    rows = np.arange(len(docs))
    c0 = time.process_time()
    t0 = time.perf_counter()
    pairs, boilerplate = text_candidates(docs, rows, config)
    t1 = time.perf_counter()
    verifier = Verifier(["text"] * len(docs), docs, None, config, edit=edit, boilerplate=boilerplate)
    score, passed = verifier.text_pairs(pairs[:, 0], pairs[:, 1]) if len(pairs) else (np.zeros(0), np.zeros(0, bool))
    t2 = time.perf_counter()
    cpu = time.process_time() - c0
    found = np.sort(pairs[passed], axis=1) if len(pairs) else np.zeros((0, 2), np.int64)
    recall = np.isin(planted[:, 0] * len(docs) + planted[:, 1], found[:, 0] * len(docs) + found[:, 1]).mean()
    return {"recall": float(recall), "candidates_s": t1 - t0, "verify_s": t2 - t1, "seconds": t2 - t0, "cpu_s": cpu,
            "candidates": len(pairs), "verified": int(passed.sum()), "boilerplate_chunks": len(boilerplate)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--dup-frac", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    t = time.perf_counter()
    docs, planted = make_docs(args.n, args.dup_frac, args.seed)
    copies = len(planted)
    sizes = np.fromiter(map(len, docs), dtype=np.int64)
    print(f"{len(docs):,} docs (mean {sizes.mean():.0f} chars), {copies:,} planted copies, made in "
          f"{time.perf_counter() - t:.0f} s", flush=True)
    sample = docs[:50_000]
    t = time.perf_counter()
    normalise_many(sample)
    new = time.perf_counter() - t
    t = time.perf_counter()
    [" ".join(d.casefold().split()) for d in sample]
    old = time.perf_counter() - t
    print(f"normalisation: markup-free {len(sample) / new:,.0f} docs/s, casefold+whitespace only "
          f"{len(sample) / old:,.0f} docs/s", flush=True)
    results = {}
    for method, config, edit in (("fuzzy", NearConfig(signals=FUZZY_SIGNALS), False), ("near", NearConfig(), True)):
        results[method] = r = run(docs, config, edit, planted)
        print(f"{method:6s} {r['seconds']:8.1f} s, CPU {r['cpu_s']:.1f} s (candidates {r['candidates_s']:.1f} s, "
              f"verify {r['verify_s']:.1f} s), {r['candidates']:,} candidates, {r['verified']:,} verified, "
              f"{r['boilerplate_chunks']:,} boilerplate chunks, planted-pair recall {r['recall']:.3f}, "
              f"{len(docs) / r['seconds']:,.0f} docs/s", flush=True)
    load = os.getloadavg()
    print(f"near / fuzzy = {results['near']['seconds'] / results['fuzzy']['seconds']:.2f} wall, "
          f"{results['near']['cpu_s'] / results['fuzzy']['cpu_s']:.2f} CPU; machine "
          f"{platform.machine()}, {os.cpu_count()} CPUs, load {load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f}, peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
