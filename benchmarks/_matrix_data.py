"""Originals of the edit-robustness matrix, three origins per modality, built offline, and their edited copies.

Images (short side >= 240 px, so a 1/6 downscale keeps 40 px):
- ``photos``: 256 px tiles of scikit-image's and scikit-learn's sample photos (neighbouring tiles of one
  photo are the hard negatives);
- ``illustrations``: charts (matplotlib: line, bar, scatter, pie; random data and titles) and app
  screenshots (PIL: one window template, different text, colours and widgets); renders of one template
  are the hard negatives;
- ``scans``: form pages of scikit-learn's handwritten digits in black or blue ink on tinted paper, with a
  shared printed header, a slight skew and scanner noise (same form, different digits: hard negatives).

Texts:
- ``prose``: docstring paragraphs of the standard library and numpy (the paragraphs of bench_neardup's tune split);
- ``code``: source of functions of installed modules (pure-Python standard library and scikit-learn);
- ``web``: HTML pages of one site template (shared nav and footer) around paragraphs of scikit-learn,
  scipy and installed packages' descriptions.

Copies: every (kind, strength) cell gets ``per_cell`` copies of different originals, drawn in a seeded
rotation (copy ``m`` is cell ``order[m % cells]`` of original ``m % originals``), so each original
carries a few copies of different kinds. Where an edit leaves an original unchanged (greyscale of a grey
photo, synonyms in a text without listed words), the next original in turn takes that copy.
"""

from __future__ import annotations

import inspect
import json
import random
import shutil
import textwrap
from pathlib import Path

import numpy as np
from _edit_kinds import IMAGE_EDITS, STRENGTHS, TEXT_EDITS, font
from PIL import Image, ImageDraw, ImageOps

IMAGE_ORIGINS = ("photos", "illustrations", "scans")
TEXT_ORIGINS = ("prose", "code", "web")
DATA_VERSION = 3  # part of the cache key: bump when an origin or edit changes
TUNE_ORIGINS = ("photos", "prose")  # what bench_neardup's defaults were set on; the others are held out
DEGRADED_EDITS = {"jpeg", "downscale", "thumbnail", "png2jpeg+resize", "crop-centre", "crop-offcentre", "letterbox",
                  "pillarbox", "border", "blur", "noise", "watermark", "caption", "logo", "crop+bright", "box+scale",
                  "mark+stretch", "typos", "ocr", "word-drop", "truncate", "boilerplate"}
PHOTO_NAMES = ("astronaut", "camera", "coffee", "chelsea", "rocket", "hubble_deep_field", "brick", "moon",
               "sklearn:china", "sklearn:flower", "retina", "immunohistochemistry", "stereo_motorcycle", "grass",
               "gravel")
CODE_MODULES = ("textwrap", "shutil", "argparse", "difflib", "json.decoder", "json.encoder", "csv", "inspect",
                "pathlib", "ipaddress", "statistics", "fractions", "tarfile", "zipfile", "calendar", "pprint",
                "configparser", "email.utils", "http.cookies", "urllib.parse", "tokenize", "string", "gettext",
                "sklearn.utils.validation", "sklearn.model_selection._split", "sklearn.metrics._classification")
WEB_MODULES = ("sklearn.linear_model", "sklearn.cluster", "sklearn.decomposition", "sklearn.ensemble",
               "sklearn.preprocessing", "sklearn.metrics", "scipy.optimize", "scipy.stats", "scipy.signal",
               "scipy.sparse", "scipy.interpolate")


# -- image origins ----------------------------------------------------------------------------


def _photos(n: int, rng: random.Random) -> list[Image.Image]:
    import bench_neardup as bn

    per_photo = 12  # small photos give 1-4 tiles, large ones (hubble, retina) more
    tiles = [t for name in PHOTO_NAMES for t in bn._tiles(name, 256, per_photo, rng)]
    rng.shuffle(tiles)
    return tiles[:n]


WORDS = ("report", "invoice", "settings", "profile", "upload", "export", "weekly", "sales", "users", "backup",
         "server", "status", "orders", "draft", "archive", "search", "filter", "account", "billing", "team",
         "project", "deploy", "metrics", "alerts", "inbox", "calendar", "notes", "tasks", "review", "share")


def _chart(rng: random.Random) -> Image.Image:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    nprng = np.random.default_rng(rng.randrange(2**32))
    fig, ax = plt.subplots(figsize=(3.2, 2.4), dpi=100)
    kind = rng.choice(("line", "bar", "scatter", "pie"))
    if kind == "line":
        for _ in range(rng.randint(1, 3)):
            ax.plot(np.cumsum(nprng.normal(0, 1, 30)), lw=rng.choice((1, 2)))
    elif kind == "bar":
        k = rng.randint(3, 8)
        ax.bar(range(k), nprng.uniform(1, 10, k), color=[tuple(nprng.uniform(0, 1, 3)) for _ in range(k)])
    elif kind == "scatter":
        ax.scatter(nprng.normal(0, 1, 60), nprng.normal(0, 1, 60), s=nprng.uniform(5, 60, 60),
                   c=nprng.uniform(0, 1, 60), cmap=rng.choice(("viridis", "plasma", "coolwarm")))
    else:
        ax.pie(nprng.uniform(1, 5, rng.randint(3, 6)))
    ax.set_title(" ".join(rng.sample(WORDS, 2)).title(), fontsize=9)
    fig.tight_layout()
    fig.canvas.draw()
    img = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())).convert("RGB")
    plt.close(fig)
    return img


def _screenshot(rng: random.Random) -> Image.Image:
    """An app window: title bar, sidebar, a table of text rows and buttons (one template, new content)."""
    w, h = 320, 240
    accent = tuple(rng.randrange(40, 220) for _ in range(3))
    img = Image.new("RGB", (w, h), (245, 245, 245))
    d = ImageDraw.Draw(img)
    d.rectangle((0, 0, w, 22), fill=accent)
    d.text((8, 4), " ".join(rng.sample(WORDS, 2)).title(), font=font(12), fill=(255, 255, 255))
    side = rng.choice((60, 70, 80))
    d.rectangle((0, 23, side, h), fill=(225, 228, 232))
    for k in range(rng.randint(4, 8)):
        d.text((6, 30 + 18 * k), rng.choice(WORDS), font=font(10), fill=(60, 60, 60))
    for k in range(rng.randint(5, 9)):
        y = 32 + 20 * k
        d.rectangle((side + 8, y, w - 8, y + 16), fill=(255, 255, 255) if k % 2 else (236, 240, 244))
        d.text((side + 12, y + 2), f"{rng.choice(WORDS)} {rng.randint(1, 9999)}", font=font(10), fill=(20, 20, 20))
        d.text((w - 60, y + 2), f"{rng.uniform(0, 999):.1f}", font=font(10), fill=(20, 20, 120))
    bx = rng.randint(side + 8, w - 90)
    d.rounded_rectangle((bx, h - 28, bx + 70, h - 8), 5, fill=accent)
    d.text((bx + 10, h - 25), rng.choice(("Save", "Export", "Apply", "Send")), font=font(11), fill=(255, 255, 255))
    return img


def _illustrations(n: int, rng: random.Random) -> list[Image.Image]:
    return [_chart(rng) if k % 2 == 0 else _screenshot(rng) for k in range(n)]


def _scans(n: int, rng: random.Random) -> list[Image.Image]:
    """Form pages of 3 x 4 handwritten digits under one printed header, skewed and noisy like a scan."""
    from sklearn.datasets import load_digits

    digits = load_digits().images
    pages = []
    for _ in range(n):
        page = Image.new("L", (320, 256), rng.randint(228, 248))
        d = ImageDraw.Draw(page)
        d.text((10, 6), "FORM 12-B  ·  Digit entry sheet", font=font(12), fill=30)
        d.text((220, 6), f"No. {rng.randint(1000, 9999)}", font=font(12), fill=30)
        for row in range(3):
            for col in range(4):
                x, y = 12 + 76 * col, 30 + 74 * row
                d.rectangle((x, y, x + 70, y + 70), outline=90)
                glyph = digits[rng.randrange(len(digits))]
                ink = Image.fromarray((255 - np.clip(glyph / 16.0, 0, 1) * 225).astype(np.uint8), "L")
                ink = ink.resize((62, 62), Image.BICUBIC)
                page.paste(ink, (x + 4, y + 4), Image.fromarray(np.clip(glyph / 16.0 * 255, 0, 255).astype(np.uint8))
                           .resize((62, 62), Image.BICUBIC))
        page = page.rotate(rng.uniform(-1.0, 1.0), Image.BICUBIC, fillcolor=240)
        arr = np.asarray(page, dtype=np.float32) + np.random.default_rng(rng.randrange(2**32)).normal(0, 3, (256, 320))
        paper = (rng.randint(245, 255), rng.randint(238, 250), rng.randint(220, 240))  # tinted paper,
        ink = rng.choice(((10, 10, 20), (20, 30, 90), (40, 40, 40)))  # black or blue ink
        pages.append(ImageOps.colorize(Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)), ink, paper))
    return pages


# -- text origins -----------------------------------------------------------------------------


def _prose(n: int, rng: random.Random) -> list[str]:
    import bench_neardup as bn

    paragraphs = bn._paragraphs(bn._docstrings(bn.TEXT_MODULES["tune"]))
    rng.shuffle(paragraphs)
    return bn._mutually_dissimilar(paragraphs[: 3 * n])[:n]


def _code(n: int, rng: random.Random) -> list[str]:
    import importlib
    import warnings

    import bench_neardup as bn

    out, seen = [], set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in CODE_MODULES:
            try:
                module = importlib.import_module(name)
            except Exception:
                continue
            for attr in sorted(vars(module)):
                fn = getattr(module, attr)
                if not inspect.isfunction(fn) or getattr(fn, "__module__", None) != module.__name__:
                    continue
                try:
                    src = textwrap.dedent(inspect.getsource(fn)).strip()
                except (OSError, TypeError):
                    continue
                if 300 <= len(src) <= 1500 and src not in seen and src.count("\n") >= 5:
                    seen.add(src)
                    out.append(src)
    rng.shuffle(out)
    return bn._mutually_dissimilar(out[: 3 * n])[:n]


SITE_HEAD = ('<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title} | PyDocs Hub</title>'
             '<link rel="stylesheet" href="/static/site.css"></head><body><header class="site"><a href="/">PyDocs Hub'
             '</a><nav><a href="/guides">Guides</a> <a href="/api">API</a> <a href="/blog">Blog</a> '
             '<a href="/about">About</a></nav></header><main><h1>{title}</h1>\n')
SITE_FOOT = ('\n</main><footer><p>&copy; 2024 PyDocs Hub &middot; <a href="/privacy">Privacy</a> &middot; '
             '<a href="/terms">Terms</a></p></footer></body></html>')


def _web(n: int, rng: random.Random) -> list[str]:
    import bench_neardup as bn

    docs = bn._docstrings(WEB_MODULES) + bn._distribution_texts()
    paragraphs = bn._paragraphs(docs)
    rng.shuffle(paragraphs)
    paragraphs = bn._mutually_dissimilar(paragraphs[: 3 * n])[:n]
    pages = []
    for text in paragraphs:
        words = text.replace("&", "&amp;").replace("<", "&lt;").split(" ")
        for i in rng.sample(range(len(words)), max(1, len(words) // 15)):
            words[i] = f'<a href="/api/{words[i].strip(".,;:").lower()}">{words[i]}</a>'
        title = " ".join(text.split(" ")[:4]).strip(".,;:")
        pages.append(SITE_HEAD.format(title=title) + "<p>" + " ".join(words) + "</p>" + SITE_FOOT)
    return pages


BUILDERS = {"photos": _photos, "illustrations": _illustrations, "scans": _scans,
            "prose": _prose, "code": _code, "web": _web}


def _changing_copy(originals: list, g: int, edit, level: int, seed: str) -> tuple[int, object]:
    """The copy of original ``g``, or where the edit leaves it unchanged, of the next original it changes."""
    for step in range(len(originals)):
        k = (g + step) % len(originals)
        copy = edit(originals[k], level, random.Random(seed))
        if not _unchanged(originals[k], copy):
            return k, copy
    return g, edit(originals[g], level, random.Random(seed))


def _unchanged(original, copy) -> bool:
    if isinstance(original, str):
        return original == copy
    return original.size == copy.size and np.array_equal(np.asarray(original), np.asarray(copy.convert("RGB")))


# -- matrix -----------------------------------------------------------------------------------


def cells(modality: str) -> list[tuple[str, int]]:
    edits = IMAGE_EDITS if modality == "images" else TEXT_EDITS
    return [(kind, level) for kind in edits for level in range(len(STRENGTHS))]


def assignments(n_originals: int, modality: str, per_cell: int, seed: int) -> list[tuple[int, str, int]]:
    """(original, kind, level) of every copy: each cell ``per_cell`` times, originals in rotation."""
    order = cells(modality)
    random.Random(f"order-{seed}-{modality}").shuffle(order)
    return [(m % n_originals, *order[m % len(order)]) for m in range(per_cell * len(order))]


def build(origin: str, root: Path, n: int, per_cell: int, seed: int) -> list[dict]:
    """Write the originals and copies of ``origin`` under ``root`` (shuffled names); one record per item.
    Cached per (seed, n, per_cell): the same arguments give the same files."""
    modality = "images" if origin in IMAGE_ORIGINS else "texts"
    cached = root / f"records-v{DATA_VERSION}-{seed}-{n}-{per_cell}.json"
    if cached.exists():
        return json.loads(cached.read_text())
    rng = random.Random(f"{origin}-{seed}")
    originals = BUILDERS[origin](n, rng)
    if len(originals) < n:
        print(f"  {origin}: only {len(originals)} originals (asked for {n})")
    edits = IMAGE_EDITS if modality == "images" else TEXT_EDITS
    records = [{"group": g, "kind": "original", "edit": "original", "level": -1, "item": x}
               for g, x in enumerate(originals)]
    for m, (g, kind, level) in enumerate(assignments(len(originals), modality, per_cell, seed)):
        g, copy = _changing_copy(originals, g, edits[kind][1], level, f"{origin}-{seed}-{m}")
        records.append({"group": g, "kind": f"{kind}@{STRENGTHS[level]}", "edit": kind, "level": level,
                        "item": copy, "degraded": kind in DEGRADED_EDITS})
    random.Random(f"shuffle-{origin}-{seed}").shuffle(records)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    for k, r in enumerate(records):
        r["origin"] = origin
        if modality == "images":
            (root / "img").mkdir(exist_ok=True)
            path = root / "img" / f"{k:05d}.png"
            r.pop("item").save(path, "PNG")
            r["id"], r["path"] = f"img/{k:05d}.png", str(path)
        else:
            r["id"], r["text"] = f"t{k:05d}", r.pop("item")
    if modality == "texts":
        with (root / "texts.jsonl").open("w") as f:
            for r in records:
                f.write(json.dumps({"id": r["id"], "text": r["text"]}) + "\n")
    cached.write_text(json.dumps(records))
    return records
