"""Which copy `--keep quality` keeps: the original, against planted degraded copies, in pairs and in groups of many.

Data as in ``bench_neardup.py`` (its ``tune`` / ``heldout`` photo tiles and docstring paragraphs; nothing is
downloaded). Each original gets copies of every degraded kind:

- images (128 px photo tiles): thumbnail (half size), JPEG q=30, brightened (+30%), contrast (+40%),
  letterboxed (black bars, 35% taller), watermarked (a caption box over 9% of the area), blurred (Gaussian r=1.5),
  greyscale, centre crop 80%;
- texts (prose paragraphs): truncated to 70%, typos (4% of characters), OCR confusions (``m``->``rn``,
  ``l``->``1``, ``o``->``0``, ``e``->``c``, ``d``->``cl``, ``h``->``b`` at 10%), truncated to 85% + OCR, upper case,
  10% of words dropped.

Setups: ``pair:KIND`` (the original and one copy) and ``all`` (the original and every copy), manifest order
shuffled. Measured: the share of groups whose original ranks first under the fixed key order
(``priority_ranks("quality")``, the rule before the comparison) and under ``compare_copies`` (the rule of
``near``/``fuzzy``), the planted group given as its pairs. And end to end: ``curate dedup --method near`` on
all the copies, the share of originals kept.

    python benchmarks/bench_keep.py                  # both splits, about a minute on 2 CPUs
    python benchmarks/bench_keep.py --split heldout --modality texts
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import bench_neardup as nd  # noqa: E402

import curate  # noqa: E402
from curate.dedup.compare import compare_copies  # noqa: E402
from curate.dedup.keep import priority_ranks  # noqa: E402

WORK = HERE / "_work" / "keep"


def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def _letterbox(img: Image.Image) -> Image.Image:
    out = Image.new("RGB", (img.width, round(img.height * 1.35)), (0, 0, 0))
    out.paste(img, (0, (out.height - img.height) // 2))
    return out


def _watermark(img: Image.Image) -> Image.Image:
    out = img.copy()
    w, h = out.size
    draw = ImageDraw.Draw(out, "RGBA")
    draw.rectangle((w * 0.5, h * 0.75, w * 0.95, h * 0.95), fill=(255, 255, 255, 150))
    draw.text((w * 0.53, h * 0.78), "(c) stock", fill=(0, 0, 0, 255))
    return out


IMAGE_COPIES = {
    "thumbnail": lambda img: _png(img.resize((img.width // 2, img.height // 2), Image.BILINEAR)),
    "jpeg30": lambda img: _jpeg(img, 30),
    "bright": lambda img: _png(ImageEnhance.Brightness(img).enhance(1.3)),
    "contrast": lambda img: _png(ImageEnhance.Contrast(img).enhance(1.4)),
    "letterbox": lambda img: _png(_letterbox(img)),
    "watermark": lambda img: _png(_watermark(img)),
    "blur": lambda img: _png(img.filter(ImageFilter.GaussianBlur(1.5))),
    "grey": lambda img: _png(img.convert("L").convert("RGB")),
    "crop80": lambda img: _png(nd._centre_crop(img, 0.8)),
}

OCR = (("m", "rn"), ("l", "1"), ("o", "0"), ("e", "c"), ("d", "cl"), ("h", "b"))


def _ocr(text: str, rate: float, rng: random.Random) -> str:
    table = dict(OCR)
    return "".join(table[c] if c in table and rng.random() < rate else c for c in text)


def _truncate(text: str, share: float) -> str:
    words = text.split()
    return " ".join(words[:int(len(words) * share)])


TEXT_COPIES = {
    "truncated": lambda t, rng: _truncate(t, 0.7),
    "typos": lambda t, rng: nd._typos(t, 0.04, rng),
    "ocr": lambda t, rng: _ocr(t, 0.10, rng),
    "truncated+ocr": lambda t, rng: _ocr(_truncate(t, 0.85), 0.08, rng),
    "upper": lambda t, rng: t.upper(),
    "drop10": lambda t, rng: nd._drop(t, 0.10, rng),
}


def build_images(split: str, root: Path, seed: int, per_photo: int) -> list[dict]:
    rng = random.Random(seed)
    shutil.rmtree(root, ignore_errors=True)
    (root / "img").mkdir(parents=True)
    items = []
    for name in nd.PHOTOS[split]:
        for tile in nd._tiles(name, 128, per_photo, rng):
            g = len({i["group"] for i in items})
            items.append({"group": g, "kind": "original", "data": _png(tile)})
            grey = np.array_equal(np.asarray(tile.convert("L").convert("RGB")), np.asarray(tile))
            items += [{"group": g, "kind": k, "data": make(tile), "same": k == "grey" and grey}
                      for k, make in IMAGE_COPIES.items()]
    rng.shuffle(items)
    for k, item in enumerate(items):
        ext = "jpg" if item["data"][:2] == b"\xff\xd8" else "png"
        (root / "img" / f"{k:05d}.{ext}").write_bytes(item.pop("data"))
        item["id"] = f"img/{k:05d}.{ext}"
    return items


def build_texts(split: str, root: Path, seed: int, originals: int) -> list[dict]:
    rng = random.Random(seed)
    docs = nd._docstrings(nd.TEXT_MODULES[split]) + (nd._distribution_texts() if split == "heldout" else [])
    paragraphs = nd._paragraphs(docs)
    rng.shuffle(paragraphs)
    paragraphs = nd._mutually_dissimilar(paragraphs[:3 * originals])
    items = []
    for g, text in enumerate(paragraphs[:originals]):
        items.append({"group": g, "kind": "original", "text": text})
        copies = {k: make(text, rng) for k, make in TEXT_COPIES.items()}
        items += [{"group": g, "kind": k, "text": t, "same": t == text} for k, t in copies.items()]
    items += [{"group": -1 - j, "kind": "other", "text": t} for j, t in enumerate(paragraphs[originals:])]
    rng.shuffle(items)
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    with (root / "texts.jsonl").open("w") as f:
        for k, item in enumerate(items):
            item["id"] = f"t{k:05d}"
            f.write(json.dumps({"id": item["id"], "text": item["text"]}) + "\n")
    (root / "records.json").write_text(json.dumps(items))
    return items


def ranking_shares(c, items: list[dict], kinds: tuple[str, ...]) -> dict[str, tuple[float, float, int]]:
    """Per setup: (key order share, comparison share, groups) of originals ranked first."""
    manifest = c.ws.read_manifest()
    row = {i: k for k, i in enumerate(manifest.column("id").to_pylist())}
    n = manifest.num_rows
    key_order = priority_ranks("quality", np.zeros(n), np.arange(n), manifest)
    by_group: dict[int, dict[str, int]] = {}
    for item in items:
        if item["group"] >= 0:
            by_group.setdefault(item["group"], {})[item["kind"]] = row[item["id"]]
            if item.get("same"):  # the original's own pixels or text (grey of a grey photo): either is right
                by_group[item["group"]].setdefault("same", []).append(item["kind"])
    same = {m["original"]: {m["original"], *(m[k] for k in m.get("same", ()))} for m in by_group.values()}
    out = {}
    for setup in [f"pair:{k}" for k in kinds] + ["all"]:
        chosen = [[m["original"], m[setup[5:]]] if setup != "all" else [m["original"], *(m[k] for k in kinds)]
                  for m in by_group.values()]
        a = np.concatenate([[g[0]] * (len(g) - 1) for g in chosen])
        b = np.concatenate([g[1:] for g in chosen])
        compared = compare_copies(manifest, key_order, a, b)
        first = [(min(g, key=lambda r: key_order[r]) in same[g[0]], min(g, key=lambda r: compared[r]) in same[g[0]])
                 for g in chosen]
        out[setup] = (float(np.mean([f[0] for f in first])), float(np.mean([f[1] for f in first])), len(chosen))
    return out


def near_share(c, items: list[dict], compare: bool = True) -> tuple[float, int]:
    """``curate dedup --method near`` over everything: the share of planted originals kept, among the groups
    near found (the original and at least one copy in one verified group). ``compare=False``: the key
    order alone (the comparison step replaced by the identity, as before it existed)."""
    from curate.dedup import near

    step = near.compare_copies
    if not compare:
        near.compare_copies = lambda manifest, ranks, *args, **kwargs: ranks
    try:
        result = nd.dedup(c, "near")
    finally:
        near.compare_copies = step
    rows = {r["id"]: r for r in result.table.to_pylist()}
    originals = {i["group"]: i["id"] for i in items if i["kind"] == "original"}
    kept, found = 0, 0
    for g, oid in originals.items():
        group = rows[oid]["group"]
        copies = [i["id"] for i in items if i["group"] == g and i["kind"] != "original"]
        if group is None or not any(rows[x]["group"] == group for x in copies):
            continue
        found += 1
        same = {i["id"] for i in items if i["group"] == g and i.get("same")}  # the original's own pixels
        kept += rows[oid]["kept"] or rows[oid]["duplicate_of"] in same
    return kept / max(found, 1), found


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--split", nargs="+", default=["tune", "heldout"], choices=["tune", "heldout"])
    p.add_argument("--modality", nargs="+", default=["images", "texts"], choices=["images", "texts"])
    p.add_argument("--tiles", type=int, default=3, help="tiles per photo (each an original with every copy)")
    p.add_argument("--texts", type=int, default=40, help="paragraph originals per split")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    for split in args.split:
        for modality in args.modality:
            root = WORK / split / modality
            t = time.perf_counter()
            if modality == "images":
                items, source, kinds = build_images(split, root, args.seed, args.tiles), "img", tuple(IMAGE_COPIES)
            else:
                items, source = build_texts(split, root, args.seed, args.texts), "texts.jsonl"
                kinds = tuple(TEXT_COPIES)
            shutil.rmtree(root / "ws", ignore_errors=True)
            c = curate.open(str(root / "ws"))
            c.ingest([str(root / source)])
            groups = len({i["group"] for i in items if i["group"] >= 0})
            print(f"\n== {split} {modality}: {groups} originals, {len(items)} items "
                  f"(built in {time.perf_counter() - t:.0f}s)")
            t = time.perf_counter()
            shares = ranking_shares(c, items, kinds)
            print(f"{'setup':24s} {'key order':>10s} {'compare':>10s}   ({time.perf_counter() - t:.1f}s)")
            for setup, (before, after, n) in shares.items():
                print(f"{setup:24s} {before:10.2f} {after:10.2f}   of {n}")
            for compare in (False, True):
                t = time.perf_counter()
                share, found = near_share(c, items, compare)
                print(f"near, end to end, {'compare' if compare else 'key order'}: original kept in {share:.2f} "
                      f"of {found} groups it found ({time.perf_counter() - t:.1f}s)")
    load = os.getloadavg()
    print(f"\nmachine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")


if __name__ == "__main__":
    main()
