"""Near-duplicates on real data: curate's semantic, fuzzy and near dedup vs imagededup and datasketch, same run.

Data (built from what installed packages ship; nothing is downloaded), in two splits so that
settings tuned on one can be checked on data they have never seen:

- images: photos cut into non-overlapping tiles (neighbouring tiles of one photo are the hard
  negatives: different pictures that look alike) and scikit-learn's handwritten digits scaled
  up (other scans of the same digit are hard negatives; only scans that correlate below 0.8).
  ``tune``: scikit-image's astronaut, camera, coffee, chelsea, rocket, hubble, brick, moon; digits 0-4.
  ``heldout``: scikit-learn's china and flower, scikit-image's retina, immunohistochemistry,
  motorcycle, coins, grass, gravel, clock; digits 5-9.
- scans (``--modality scans``): 60 scans of each digit, look-alikes included (two scans of one
  digit correlate up to 0.97, as alike as a copy at 8 x 8), every third one copied. ``tune``:
  digits 0-4, ``heldout``: digits 5-9.
- texts: prose paragraphs of docstrings and package descriptions (originals are mutually
  dissimilar), plus short first sentences of docstrings that have a same-template sibling
  ("Return self+value." / "Return self-value.") as hard negatives.
  ``tune``: the standard library and numpy. ``heldout``: scikit-learn, scipy, pyarrow, torch,
  PIL and the long descriptions of installed distributions.

Every original (scans: every third) gets one planted copy; kinds cycle. Images: jpeg50, half, crop90, bright (+25%),
rot5, flip, grey, blur (Gaussian r=1.5), flip+jpeg. Texts: case (upper), drop10 (10% of words),
append (a sentence), swap (halves), typos5 (5% of characters), nopunct (punctuation removed),
drop5+typos2, html-wrapped (a page: head, style, script, paragraphs, inline tags, entities), truncated-75
(cut at a word near 75%), header/footer-wrapped (a site's navigation header and legal footer around it),
markdown-rendered (heading, emphasis, a link, code spans). Manifest order is shuffled, so keeping "the first"
says nothing about originals.

Metrics per method: pair recall (a planted pair ends in one group), removal precision (a removed
item's ``duplicate_of`` is in its planted group), recall per copy kind, and for groups whose copy
is degraded (images: jpeg50, half, crop90, grey, blur, flip+jpeg; texts: case, drop10, typos5,
drop5+typos2, truncated-75) how often the original is the copy kept. Peers get the same treatment: their pairs
are grouped by connected components and the first member of each (manifest order) is kept.

    python benchmarks/bench_neardup.py                 # both splits, about 5 minutes on 2 CPUs
    python benchmarks/bench_neardup.py --split tune --modality images

Edit-robustness matrix (``--matrix``): 26 image and 14 text edit kinds at three strengths each
(``_edit_kinds.py``) applied to originals of three origins per modality (``_matrix_data.py``: photos,
illustrations, scans; prose, code, web pages), every method in the same run; per (kind, strength) recall
and removal precision go to ``results/neardup_matrix.csv``, ``results/neardup_matrix.md`` and
``results/neardup_matrix.png`` (``_matrix_report.py``). The tune origins are photos and prose.

    python benchmarks/bench_neardup.py --matrix                    # all six origins, about 15 minutes on 2 CPUs
    python benchmarks/bench_neardup.py --matrix --origin code web  # some origins only
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import inspect
import io
import json
import os
import platform
import random
import re
import resource
import shutil
import string
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import curate  # noqa: E402

WORK = HERE / "_work" / "neardup"
MATRIX_ORIGINS = ("photos", "illustrations", "scans", "prose", "code", "web")  # as in _matrix_data
IMAGE_KINDS = ("jpeg50", "half", "crop90", "bright", "rot5", "flip", "grey", "blur", "flip+jpeg")
TEXT_KINDS = ("case", "drop10", "append", "swap", "typos5", "nopunct", "drop5+typos2", "html-wrapped", "truncated-75",
              "header/footer-wrapped", "markdown-rendered")
DEGRADED = {"jpeg50", "half", "crop90", "grey", "blur", "flip+jpeg", "case", "drop10", "typos5", "drop5+typos2",
            "truncated-75"}
PHOTOS = {"tune": ("astronaut", "camera", "coffee", "chelsea", "rocket", "hubble_deep_field", "brick", "moon"),
          "heldout": ("sklearn:china", "sklearn:flower", "retina", "immunohistochemistry", "stereo_motorcycle",
                      "coins", "grass", "gravel", "clock")}
DIGITS = {"tune": range(0, 5), "heldout": range(5, 10)}
TEXT_MODULES = {
    "tune": ("builtins", "os", "os.path", "collections", "itertools", "functools", "pathlib", "json", "csv",
             "datetime", "email", "inspect", "random", "io", "re", "string", "textwrap", "argparse", "logging",
             "threading", "subprocess", "shutil", "typing", "dataclasses", "decimal", "fractions", "statistics",
             "zipfile", "tarfile", "socket", "http.client", "urllib.request", "unittest", "sqlite3", "asyncio",
             "numpy", "numpy.linalg", "numpy.random", "numpy.fft", "numpy.ma"),
    "heldout": ("sklearn.linear_model", "sklearn.cluster", "sklearn.decomposition", "sklearn.ensemble",
                "sklearn.preprocessing", "sklearn.metrics", "sklearn.model_selection", "sklearn.neighbors",
                "sklearn.svm", "sklearn.tree", "scipy.optimize", "scipy.stats", "scipy.signal", "scipy.sparse",
                "scipy.spatial", "scipy.interpolate", "scipy.linalg", "pyarrow", "pyarrow.compute",
                "pyarrow.parquet", "torch", "torch.nn", "torch.nn.functional", "PIL.Image", "PIL.ImageOps",
                "skimage.filters", "skimage.transform", "skimage.measure"),
}


# -- images -----------------------------------------------------------------------------------


def _photo(name: str) -> np.ndarray:
    if name.startswith("sklearn:"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(name.split(":")[1] + ".jpg")
    from skimage import data

    arr = getattr(data, name)()
    return arr[0] if isinstance(arr, tuple) else arr  # stereo_motorcycle: (left, right, disparity)


def _tiles(name: str, side: int, limit: int, rng: random.Random) -> list[Image.Image]:
    """Non-overlapping ``side`` tiles of a photo with some structure (flat sky or black space is skipped)."""
    arr = _photo(name)
    img = Image.fromarray(arr).convert("RGB")
    w, h = img.size
    boxes = [(x, y, x + side, y + side) for y in range(0, h - side + 1, side) for x in range(0, w - side + 1, side)]
    out = []
    for box in boxes:
        tile = img.crop(box)
        if np.asarray(tile.convert("L"), dtype=np.float32).std() >= 12.0:
            out.append(tile)
    rng.shuffle(out)
    return out[:limit]


def _digits(classes, per_class: int, most_alike: float = 0.8) -> list[Image.Image]:
    """Scans of each digit whose raw 8 x 8 pixels correlate below ``most_alike`` with each other: two
    scans of one digit often correlate 0.9-0.97 unaligned, as alike as a copy at this resolution."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    out = []
    for d in classes:
        chosen: list[int] = []
        for i in np.flatnonzero(digits.target == d).tolist():
            x = digits.images[i].ravel() - digits.images[i].mean()
            alike = [np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y) + 1e-9) for y in
                     (digits.images[j].ravel() - digits.images[j].mean() for j in chosen)]
            if not alike or max(alike) < most_alike:
                chosen.append(i)
            if len(chosen) == per_class:
                break
        for i in chosen:
            grey = Image.fromarray((np.clip(digits.images[i] / 16.0, 0, 1) * 255).astype(np.uint8), "L")
            out.append(grey.resize((96, 96), Image.BICUBIC).convert("RGB"))
    return out


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def _centre_crop(img: Image.Image, f: float) -> Image.Image:
    w, h = img.size
    cw, ch = round(w * f), round(h * f)
    return img.crop(((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch))


def image_copy(img: Image.Image, kind: str) -> tuple[Image.Image, str]:
    """The planted copy of ``img`` and the format it is saved in."""
    flip = Image.Transpose.FLIP_LEFT_RIGHT
    if kind == "jpeg50":
        return img, "JPEG50"
    if kind == "flip+jpeg":
        return img.transpose(flip), "JPEG50"
    return {
        "half": lambda: img.resize((img.width // 2, img.height // 2), Image.BILINEAR),
        "crop90": lambda: _centre_crop(img, 0.9),
        "bright": lambda: ImageEnhance.Brightness(img).enhance(1.25),
        "rot5": lambda: img.rotate(5, resample=Image.BILINEAR),
        "flip": lambda: img.transpose(flip),
        "grey": lambda: img.convert("L").convert("RGB"),
        "blur": lambda: img.filter(ImageFilter.GaussianBlur(1.5)),
    }[kind](), "PNG"


def build_images(split: str, root: Path, seed: int) -> list[dict]:
    """Write originals and copies under ``root`` (shuffled names); return one record per file."""
    cached = root / f"records-{seed}-v2.json"
    if cached.exists():
        return json.loads(cached.read_text())
    rng = random.Random(seed)
    originals: list[tuple[str, Image.Image]] = []
    for name in PHOTOS[split]:
        originals += [(f"photo:{name}", t) for t in _tiles(name, 128, 9, rng)]
    originals += [("digits", d) for d in _digits(DIGITS[split], 8)]
    return _write_images(originals, 1, root, cached, rng)


def build_scans(split: str, root: Path, seed: int, per_class: int = 60) -> list[dict]:
    """Every scan of the split's digits, look-alikes included (no dissimilarity filter): two scans of
    one digit correlate up to 0.97, so only a verifier that tells a copy from a look-alike scan keeps
    its precision here. Every third scan gets a copy."""
    cached = root / f"records-{seed}-scans.json"
    if cached.exists():
        return json.loads(cached.read_text())
    from sklearn.datasets import load_digits

    rng = random.Random(seed)
    digits = load_digits()
    originals = []
    for d in DIGITS[split]:
        rows = np.flatnonzero(digits.target == d).tolist()
        rng.shuffle(rows)
        for i in rows[:per_class]:
            grey = Image.fromarray((np.clip(digits.images[i] / 16.0, 0, 1) * 255).astype(np.uint8), "L")
            originals.append(("scans", grey.resize((96, 96), Image.BICUBIC).convert("RGB")))
    rng.shuffle(originals)
    return _write_images(originals, 3, root, cached, rng)


def _write_images(originals: list[tuple[str, Image.Image]], copy_every: int, root: Path, cached: Path,
                  rng: random.Random) -> list[dict]:
    records = []
    for i, (source, img) in enumerate(originals):
        records.append({"group": i, "kind": "original", "source": source, "image": img, "format": "PNG"})
        if i % copy_every:
            continue
        kind = IMAGE_KINDS[(i // copy_every) % len(IMAGE_KINDS)]
        copy, fmt = image_copy(img, kind)
        grey = np.array_equal(np.asarray(img.convert("L").convert("RGB")), np.asarray(img))
        records.append({"group": i, "kind": kind, "source": source, "image": copy, "format": fmt,
                        "degraded": kind in DEGRADED and not (kind == "grey" and grey)})  # grey of grey: a copy
    rng.shuffle(records)
    shutil.rmtree(root, ignore_errors=True)
    (root / "img").mkdir(parents=True)
    for k, r in enumerate(records):
        ext = "jpg" if r["format"].startswith("JPEG") else "png"
        path = root / "img" / f"{k:05d}.{ext}"
        if ext == "jpg":
            r.pop("image").save(path, "JPEG", quality=50)
        else:
            r.pop("image").save(path, "PNG")
        r["id"] = f"img/{k:05d}.{ext}"
        r["path"] = str(path)
    cached.write_text(json.dumps(records))
    return records


# -- texts ------------------------------------------------------------------------------------


def _docstrings(module_names) -> list[str]:
    import importlib
    import warnings

    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in module_names:
            try:
                module = importlib.import_module(name)
            except Exception:
                continue
            objects = [module] + [getattr(module, a, None) for a in sorted(dir(module)) if not a.startswith("_")]
            for obj in objects:
                out.append(inspect.getdoc(obj) or "")
                if inspect.isclass(obj):
                    out += [inspect.getdoc(getattr(obj, m, None)) or "" for m in sorted(vars(obj))
                            if not m.startswith("_")]
    return out


def _distribution_texts() -> list[str]:
    from importlib import metadata

    return [d.metadata.get_payload() or "" for d in metadata.distributions()]


_PROSE = re.compile(r"^[A-Z][^\n]*[.!?]$")


def _paragraphs(docs: list[str]) -> list[str]:
    """Prose paragraphs of 200..1200 characters: no code, tables, lists or reST headings."""
    out, seen = [], set()
    for doc in docs:
        for block in re.split(r"\n\s*\n", doc):
            lines = [ln.strip() for ln in block.strip().splitlines()]
            if not lines or any(ln.startswith((">>>", "...", "-", "*", "=", "|", "#", ":", "..", "+")) for ln in lines):
                continue
            text = " ".join(" ".join(lines).split())
            letters = sum(c.isalpha() or c == " " for c in text)
            if 200 <= len(text) <= 1200 and _PROSE.match(text) and letters > 0.9 * len(text) and text not in seen:
                seen.add(text)
                out.append(text)
    return out


def _first_sentences(docs: list[str]) -> list[str]:
    out, seen = [], set()
    for doc in docs:
        first = " ".join(doc.strip().split("\n\n")[0].split())
        if 25 <= len(first) <= 150 and _PROSE.match(first) and first.casefold() not in seen:
            seen.add(first.casefold())
            out.append(first)
    return out


def _mutually_dissimilar(texts: list[str], limit: float = 0.6) -> list[str]:
    """Drop each text whose normalised edit similarity or 5-gram Jaccard with an earlier one reaches ``limit``
    (real docstrings repeat templates; such pairs would be unplanted duplicates)."""
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist

    from curate.dedup.minhash import MinHashConfig, candidate_pairs, jaccard_pairs, signatures

    norm = [t.casefold() for t in texts]
    drop = set()
    block = 256
    for lo in range(0, len(norm), block):  # blocked: no n x n matrix
        sims = cdist(norm[lo:lo + block], norm[:lo + block], scorer=Levenshtein.normalized_similarity,
                     score_cutoff=limit, workers=1)
        for i, j in zip(*np.nonzero(sims >= limit)):
            if lo + i > j:
                drop.add(lo + int(i))
    lsh = MinHashConfig(bands=50, rows=2)
    pairs = candidate_pairs(signatures(texts, lsh), lsh.bands, lsh.rows)
    pairs = pairs[jaccard_pairs(texts, pairs, lsh.ngram) >= 0.3]
    drop |= {int(max(a, b)) for a, b in pairs.tolist()}
    return [t for i, t in enumerate(texts) if i not in drop]


def _template_siblings(sentences: list[str], low: float = 0.75) -> list[str]:
    """Short sentences that have a different sentence of the same template (edit similarity >= ``low``)."""
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist

    norm = [s.casefold() for s in sentences]
    sims = cdist(norm, norm, scorer=Levenshtein.normalized_similarity, score_cutoff=low, workers=1)
    np.fill_diagonal(sims, 0)
    return [s for s, row in zip(sentences, sims) if (row >= low).any()]


def _typos(text: str, rate: float, rng: random.Random) -> str:
    chars = list(text)
    letters = [i for i, c in enumerate(chars) if c.isalpha()]
    for i in rng.sample(letters, max(1, int(rate * len(chars)))):
        chars[i] = rng.choice(string.ascii_lowercase)
    return "".join(chars)


def _drop(text: str, rate: float, rng: random.Random) -> str:
    words = text.split()
    gone = set(rng.sample(range(len(words)), max(1, int(rate * len(words)))))
    return " ".join(w for i, w in enumerate(words) if i not in gone)


APPENDED = ("See the user guide for more details.", "This behaviour may change in a future release.",
            "Added for compatibility with older code.", "Examples are given in the documentation.")


HEADERS = ("Home | Docs | Blog | Pricing | Sign in. Skip to main content. You are reading the archived "
           "documentation; search the knowledge base or browse the categories below.",
           "Menu: Products, Solutions, Resources, Company. Posted in Engineering Notes by the editorial team, "
           "last updated three weeks ago. Reading time: four minutes.",
           "Welcome to the community wiki! This page was imported automatically. Navigation: Main page, Recent "
           "changes, Random article, Help, Donate.")
FOOTERS = ("Copyright 2024 Example Corp. All rights reserved. Privacy | Terms | Cookies | Contact us. Subscribe "
           "to our newsletter for monthly updates.",
           "Was this page helpful? Yes / No. Share on social media. Related articles: getting started, "
           "installation, troubleshooting, release notes.",
           "Content is available under a free licence unless otherwise noted. This page was last edited on 3 May. "
           "About | Disclaimers | Mobile view.")


def _html_page(text: str, rng: random.Random) -> str:
    sentences = re.split(r"(?<=[.!?]) ", text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
    words = sentences[0].split(" ")
    if len(words) > 4:
        k = rng.randrange(1, len(words) - 1)
        words[k] = f"<b>{words[k]}</b>" if rng.random() < 0.5 else f'<a href="/wiki/{words[k]}">{words[k]}</a>'
    sentences[0] = " ".join(words)
    body = "\n".join(f"<p>{s}</p>" for s in sentences)
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Docs</title><style>body {font: 14px sans}"
            "</style><script>window.dataLayer = [];</script></head>\n<body><div class=\"content\">\n" + body
            + "\n</div></body></html>")


def _markdown(text: str, rng: random.Random) -> str:
    sentences = re.split(r"(?<=[.!?]) ", text)
    words = " ".join(sentences[1:]).split(" ") if len(sentences) > 1 else []
    for k in sorted(rng.sample(range(len(words)), min(3, len(words)))):
        style = rng.choice(["**{}**", "*{}*", "`{}`", "[{}](https://example.org/ref)"])
        words[k] = style.format(words[k])
    return "## " + sentences[0] + ("\n\n" + " ".join(words) if words else "")


def text_copy(text: str, kind: str, rng: random.Random) -> str:
    if kind == "case":
        return text.upper()
    if kind == "drop10":
        return _drop(text, 0.10, rng)
    if kind == "append":
        return text + " " + rng.choice(APPENDED)
    if kind == "swap":
        words = text.split()
        return " ".join(words[len(words) // 2:] + words[:len(words) // 2])
    if kind == "typos5":
        return _typos(text, 0.05, rng)
    if kind == "nopunct":
        return text.translate(str.maketrans("", "", string.punctuation))
    if kind == "html-wrapped":
        return _html_page(text, rng)
    if kind == "truncated-75":
        return text[:text.rfind(" ", 0, int(0.75 * len(text)) + 1)]
    if kind == "header/footer-wrapped":
        return rng.choice(HEADERS) + "\n\n" + text + "\n\n" + rng.choice(FOOTERS)
    if kind == "markdown-rendered":
        return _markdown(text, rng)
    return _typos(_drop(text, 0.05, rng), 0.02, rng)


def build_texts(split: str, root: Path, seed: int, originals: int, negatives: int) -> list[dict]:
    cached = root / f"records-{seed}-{originals}-{negatives}-k{len(TEXT_KINDS)}.json"
    if cached.exists():  # building reads every docstring of dozens of modules: minutes on a busy machine
        return json.loads(cached.read_text())
    rng = random.Random(seed)
    docs = _docstrings(TEXT_MODULES[split]) + (_distribution_texts() if split == "heldout" else [])
    paragraphs = _paragraphs(docs)
    rng.shuffle(paragraphs)
    paragraphs = _mutually_dissimilar(paragraphs[:3 * originals])[:originals]
    shorts = _first_sentences(docs)
    rng.shuffle(shorts)
    shorts = [s for s in _template_siblings(shorts[:1500]) if s not in paragraphs][:negatives]
    records = []
    for i, text in enumerate(paragraphs):
        kind = TEXT_KINDS[i % len(TEXT_KINDS)]
        records.append({"group": i, "kind": "original", "source": "paragraph", "text": text})
        records.append({"group": i, "kind": kind, "source": "paragraph", "text": text_copy(text, kind, rng)})
    for j, text in enumerate(shorts):
        records.append({"group": len(paragraphs) + j, "kind": "original", "source": "template-sentence",
                        "text": text})
    rng.shuffle(records)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for k, r in enumerate(records):
        r["id"] = f"t{k:05d}"
    with (root / "texts.jsonl").open("w") as f:
        for r in records:
            f.write(json.dumps({"id": r["id"], "text": r["text"]}) + "\n")
    cached.write_text(json.dumps(records))
    return records


# -- scoring ----------------------------------------------------------------------------------


def evaluate(records: list[dict], removed: dict[str, str]) -> dict:
    """``removed``: id -> the id it duplicates (the kept copy)."""
    group = {r["id"]: r["group"] for r in records}
    kind = {r["id"]: r["kind"] for r in records}
    by_id = {r["id"]: r for r in records}

    def keeper(i: str) -> str:
        seen = 0
        while i in removed and seen < 1000:
            i, seen = removed[i], seen + 1
        return i

    by_group: dict[int, list[str]] = {}
    for r in records:
        by_group.setdefault(r["group"], []).append(r["id"])
    found, total, per_kind, kept_original, degraded = 0, 0, {}, 0, 0
    for members in by_group.values():
        if len(members) < 2:
            continue
        original = next(m for m in members if kind[m] == "original")
        for copy in (m for m in members if m != original):
            hit = keeper(copy) == keeper(original)
            total += 1
            found += hit
            k = per_kind.setdefault(kind[copy], [0, 0])
            k[0] += hit
            k[1] += 1
            if hit and by_id[copy].get("degraded", kind[copy] in DEGRADED):
                degraded += 1
                kept_original += original not in removed
    right = sum(group[a] == group[b] for a, b in removed.items())
    return {"recall": found / max(total, 1), "precision": right / len(removed) if removed else 1.0,
            "removed": len(removed), "false_removals": len(removed) - right,
            "per_kind": {k: v[0] / v[1] for k, v in sorted(per_kind.items())},
            "kept_original": kept_original / degraded if degraded else float("nan"), "degraded_groups": degraded}


def removals_from_pairs(ids: list[str], pairs) -> dict[str, str]:
    """Peers: connected components of their pairs; each keeps its first member (manifest order)."""
    index = {x: k for k, x in enumerate(ids)}
    parent = list(range(len(ids)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        ra, rb = find(index[a]), find(index[b])
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: ids[find(k)] for k, x in enumerate(ids) if find(k) != k}


def dedup(c, method: str, **settings):
    """``curate dedup --method METHOD``, always computed (never a reused earlier run)."""
    from curate.api import stage_and_config
    from curate.runner import run_stage

    stage, config = stage_and_config("dedup", {"method": method, **settings})
    return run_stage(c.ws, stage, config, progress=False, force=True)


def curate_removals(result) -> dict[str, str]:
    return {r["id"]: r["duplicate_of"] for r in result.table.select(["id", "kept", "duplicate_of"]).to_pylist()
            if not r["kept"] and r["duplicate_of"]}


# -- methods ----------------------------------------------------------------------------------


def _imagededup():
    """imagededup's hashing module; its plotting helpers need matplotlib, which hashing never uses."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        class _Stub(types.ModuleType):
            def __getattr__(self, name):
                return None

        for name in ("matplotlib", "matplotlib.gridspec", "matplotlib.pyplot", "matplotlib.figure"):
            sys.modules.setdefault(name, _Stub(name))
    from imagededup.methods import hashing

    return hashing


def run_curate(records: list[dict], root: Path, source: str, model: str, threshold: float) -> tuple[list[dict], object]:
    """A fresh workspace of ``root / source`` embedded with ``model``; curate's semantic, fuzzy and near
    dedup scored on it. Returns the rows and the workspace (the text peer reads its manifest order)."""
    shutil.rmtree(root / "ws", ignore_errors=True)
    c = curate.open(str(root / "ws"))
    c.ingest([str(root / source)])
    c.embed(model, workers=0)
    rows: list[dict] = []
    label = {"perceptual": "perceptual-v2", "minilm": "MiniLM"}[model]
    timed(rows, records, f"curate semantic {label} @{threshold}",
          lambda: curate_removals(dedup(c, "semantic", threshold=(threshold,))))
    timed(rows, records, "curate fuzzy", lambda: curate_removals(dedup(c, "fuzzy")))
    timed(rows, records, "curate near", lambda: curate_removals(dedup(c, "near")))
    return rows, c


def timed(rows: list[dict], records: list[dict], method: str, fn) -> None:
    """Run ``fn`` (-> removals), score it against the planted groups and time it; append a row."""
    t = time.perf_counter()
    removed = fn()
    seconds = time.perf_counter() - t
    rows.append({"method": method, "seconds": seconds, **evaluate(records, removed), "removals": removed})


def run_images(records: list[dict], root: Path, threshold: float) -> list[dict]:
    ids = sorted(r["id"] for r in records)
    rows, _ = run_curate(records, root, "img", "perceptual", threshold)
    try:
        hashing = _imagededup()
    except ImportError as exc:
        print(f"imagededup not available: {exc}")
        return rows
    for name in ("PHash", "DHash", "WHash"):
        def peer(name=name):
            hasher = getattr(hashing, name)(verbose=False)
            enc = {r["id"]: hasher.encode_image(image_file=r["path"]) for r in records}
            dups = hasher.find_duplicates(encoding_map=enc, max_distance_threshold=10)
            return removals_from_pairs(ids, [(a, b) for a, bs in dups.items() for b in bs])
        timed(rows, records, f"imagededup {name} (distance 10)", peer)
    return rows


def run_texts(records: list[dict], root: Path, threshold: float) -> list[dict]:
    def normalise(text: str) -> str:  # datasketch's input: case and whitespace only (no markup removal of ours)
        return " ".join(text.casefold().split())

    rows, c = run_curate(records, root, "texts.jsonl", "minilm", threshold)
    manifest_ids = c.manifest(["id"]).column("id").to_pylist()

    def datasketch_lsh():
        from datasketch import MinHash, MinHashLSH

        lsh = MinHashLSH(threshold=0.7, num_perm=128)
        sketches = {}
        by_id = {r["id"]: r["text"] for r in records}
        for i in manifest_ids:
            t = normalise(by_id[i])
            m = MinHash(num_perm=128)
            m.update_batch([t[k:k + 5].encode() for k in range(max(1, len(t) - 4))])
            lsh.insert(i, m)
            sketches[i] = m
        pairs = [(i, j) for i, m in sketches.items() for j in lsh.query(m) if j != i]
        return removals_from_pairs(manifest_ids, pairs)

    timed(rows, records, "datasketch MinHashLSH (0.7, 5-gram)", datasketch_lsh)
    return rows


# -- main -------------------------------------------------------------------------------------


def run_matrix(args: argparse.Namespace, commit: str) -> None:
    """The edit-robustness matrix: every method on every chosen origin; CSV rows appended as each origin
    ends, the markdown report and plot rewritten from this run's rows at the end."""
    import logging
    import warnings

    import _matrix_data as md
    import _matrix_report as mr

    try:  # imagededup's per-call INFO lines and warnings drown the report
        _imagededup()
        import imagededup.handlers.search.retrieval  # noqa: F401
    except ImportError:
        pass
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("imagededup")]:
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="Parameter num_enc_workers")
    run = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "curate", "benchmarks/*.py"], capture_output=True,
                           text=True, cwd=HERE.parent).stdout.strip()
    commit += "+uncommitted" if dirty else ""  # the code measured is not the commit's
    out_csv = HERE / "results" / "neardup_matrix.csv"
    rows: list[dict] = []
    start = time.perf_counter()
    for origin in args.origin:
        root = WORK / "matrix" / origin
        t = time.perf_counter()
        records = md.build(origin, root, args.originals, args.per_cell, args.seed)
        copies = sum(r["kind"] != "original" for r in records)
        print(f"\n== matrix {origin}: {len(records)} items, {copies} copies (built in {time.perf_counter() - t:.0f}s)")
        if origin in md.IMAGE_ORIGINS:
            method_rows = run_images(records, root, args.image_threshold)
        else:
            method_rows = run_texts(records, root, args.text_threshold)
        for r in method_rows:
            print(f"{r['method']:40s} recall {r['recall']:.3f} precision {r['precision']:.3f} "
                  f"(removed {r['removed']}, wrong {r['false_removals']}) kept-original {r['kept_original']:.2f}"
                  f"  {r['seconds']:.1f}s")
        new = mr.origin_rows(origin, records, method_rows, run, commit)
        mr.append_csv(out_csv, new)
        rows += new
    load = os.getloadavg()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / "
               f"{load[2]:.1f} at the end, peak RSS {rss:.0f} MB, {time.perf_counter() - start:.0f} s, commit {commit}")
    print(f"\nmachine: {machine}")
    header = (f"Edit-robustness matrix, run {run}: {machine}. Seed {args.seed}, {args.originals} originals per "
              f"origin, {args.per_cell} copies per (kind, strength) cell, semantic thresholds "
              f"{args.image_threshold} (images) / {args.text_threshold} (texts).")
    (HERE / "results" / "neardup_matrix.md").write_text(mr.markdown(rows, header))
    mr.plot(rows, HERE / "results" / "neardup_matrix.png", f"bench_neardup --matrix, commit {commit}, {run}")
    print("wrote results/neardup_matrix.{csv,md,png}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split", nargs="+", default=["tune", "heldout"], choices=["tune", "heldout"])
    p.add_argument("--modality", nargs="+", default=["images", "texts"], choices=["images", "scans", "texts"],
                   help="images: photo tiles and dissimilar digit scans; scans: every scan of the digits, "
                        "look-alikes included; texts: paragraphs and template sentences")
    p.add_argument("--texts", type=int, default=250, help="paragraph originals per split (each gets one copy)")
    p.add_argument("--negatives", type=int, default=250, help="template sentences per split (hard negatives)")
    p.add_argument("--image-threshold", type=float, default=0.9, help="semantic dedup threshold (images)")
    p.add_argument("--text-threshold", type=float, default=0.9, help="semantic dedup threshold (texts)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--matrix", action="store_true", help="the edit-robustness matrix instead of the splits")
    p.add_argument("--origin", nargs="+", default=list(MATRIX_ORIGINS), choices=MATRIX_ORIGINS,
                   help="--matrix: origins to run (photos, prose: tune; the others held out)")
    p.add_argument("--originals", type=int, default=60, help="--matrix: originals per origin")
    p.add_argument("--per-cell", type=int, default=4, help="--matrix: copies per (kind, strength) cell")
    args = p.parse_args()
    if args.originals < 2 or args.per_cell < 1:
        p.error("--originals must be at least 2 and --per-cell at least 1")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE.parent).stdout.strip()
    if args.matrix:
        run_matrix(args, commit)
        return
    for split in args.split:
        for modality in args.modality:
            root = WORK / split / modality
            t = time.perf_counter()
            if modality == "images":
                records = build_images(split, root, args.seed)
            elif modality == "scans":
                records = build_scans(split, root, args.seed)
            else:
                records = build_texts(split, root, args.seed, args.texts, args.negatives)
            originals = sum(r["kind"] == "original" for r in records)
            print(f"\n== {split} {modality}: {len(records)} items, {len(records) - originals} planted copies "
                  f"(built in {time.perf_counter() - t:.0f}s)")
            rows = (run_texts(records, root, args.text_threshold) if modality == "texts"
                    else run_images(records, root, args.image_threshold))
            for r in rows:
                kinds = " ".join(f"{k} {v:.2f}" for k, v in r["per_kind"].items())
                print(f"{r['method']:40s} recall {r['recall']:.3f} precision {r['precision']:.3f} "
                      f"(removed {r['removed']}, wrong {r['false_removals']}) kept-original "
                      f"{r['kept_original']:.2f} of {r['degraded_groups']}  {r['seconds']:.1f}s\n    {kinds}")
            _write_csv(split, modality, len(records), rows, commit)
    load = os.getloadavg()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / "
          f"{load[2]:.1f}, peak RSS {rss:.0f} MB, commit {commit}")


def _write_csv(split: str, modality: str, items: int, rows: list[dict], commit: str) -> None:
    """Append one row per method to benchmarks/results/neardup.csv (after each split, so a long run keeps
    what it measured)."""
    load = os.getloadavg()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = HERE / "results" / "neardup.csv"
    new = not out.exists()
    fields = ["timestamp", "commit", "split", "modality", "items", "method", "recall", "precision", "removed",
              "false_removals", "kept_original", "degraded_groups", "seconds", "per_kind", "load1", "peak_rss_mb"]
    stamp = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    with out.open("a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        if new:
            w.writeheader()
        for r in rows:
            w.writerow({"timestamp": stamp, "commit": commit, "split": split, "modality": modality, "items": items,
                        "method": r["method"], "recall": round(r["recall"], 4), "precision": round(r["precision"], 4),
                        "removed": r["removed"], "false_removals": r["false_removals"],
                        "kept_original": round(r["kept_original"], 3), "degraded_groups": r["degraded_groups"],
                        "seconds": round(r["seconds"], 1),
                        "per_kind": json.dumps({k: round(v, 3) for k, v in r["per_kind"].items()}),
                        "load1": round(load[0], 2), "peak_rss_mb": round(rss)})


if __name__ == "__main__":
    main()
