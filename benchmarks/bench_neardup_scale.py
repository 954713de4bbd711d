"""``near`` at scale: curate's ``dedup --method near`` vs imagededup PHash on N real-sized JPEGs, 2 cores.

Data (built offline from what installed packages ship, cached and seeded under
``_work/neardup_scale/N/img``): random crops (30-100% of each side), rescales (long side 400-600 px),
flips and colour jitter of scikit-image's and scikit-learn's sample photos, JPEG quality 85-95, so
every file is a different picture; plus about 5% planted edited copies of them (``jpeg`` re-encode at
quality 60-75, ``resize`` to 50-80%, ``crop`` of 5-10%, ``bright`` +-15-25%). Random crops of one
photo can overlap: pairs found beyond the planted ones are counted, not scored.

Each tool runs in its own child process under ``taskset -c 0,1`` with ``OMP_NUM_THREADS=2`` (and
imagededup with 2 workers); ``/usr/bin/time`` gives its wall time, CPU time and peak RSS (the
largest of the process tree). curate: ``curate ingest`` and ``curate dedup --method near`` timed
apart; no embedding store is built, so near's semantic signal is off (``NearConfig.signals`` names
it, but it only runs when a store exists). The dedup child counts image decodes
(``curate.io.images.decode_image`` and ``Pictures.decode``) and, with ``--profile``, writes a
cProfile of the dedup to ``_work/neardup_scale/N/near.prof`` and prints the top functions.
imagededup: ``PHash.encode_images`` + ``find_duplicates(max_distance_threshold=10)``.

Recall: a planted (original, copy) pair counts as found when both end in one connected component of
the tool's pairs (curate: its verified pairs; imagededup: its duplicate lists).

    nice -n 10 python benchmarks/bench_neardup_scale.py --n 10000
    nice -n 10 python benchmarks/bench_neardup_scale.py --n 2000 --profile
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORK = HERE / "_work" / "neardup_scale"
RESULTS = HERE / "results" / "neardup_scale.csv"
EDITS = ("jpeg", "resize", "crop", "bright")
COPY_SHARE = 0.05
SKIMAGE_PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "hubble_deep_field", "brick", "moon",
                  "retina", "immunohistochemistry", "stereo_motorcycle", "coins", "grass", "gravel", "clock",
                  "page", "text", "horse", "cat", "colorwheel")


# -- data -------------------------------------------------------------------------------------


def photos() -> list[Image.Image]:
    """Every sample photo the installed packages ship (those needing a download are skipped)."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    out = []
    for name in SKIMAGE_PHOTOS:
        try:
            arr = getattr(skimage.data, name)()
        except Exception:
            continue
        if isinstance(arr, tuple):  # stereo_motorcycle: (left, right, disparity)
            arr = arr[0]
        arr = np.asarray(arr)
        if arr.dtype != np.uint8:
            arr = (255 * (arr.astype(np.float64) / max(arr.max(), 1))).astype(np.uint8)
        out.append(Image.fromarray(arr).convert("RGB"))
    out += [Image.fromarray(a).convert("RGB") for a in load_sample_images().images]
    return out


def original(base: Image.Image, rng: random.Random) -> Image.Image:
    """A different picture of ``base``: crop, rescale to a long side of 400-600 px, flip, colour jitter."""
    w, h = base.size
    cw, ch = int(w * rng.uniform(0.3, 1.0)), int(h * rng.uniform(0.3, 1.0))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = base.crop((x, y, x + cw, y + ch))
    long = rng.randint(400, 600)
    scale = long / max(img.size)
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))), Image.BILINEAR)
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.7, 1.3))
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.5, 1.5))
    if rng.random() < 0.5:  # a colour cast
        arr = np.asarray(img, dtype=np.float32) * np.array([rng.uniform(0.85, 1.15) for _ in range(3)])
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    return img


def collage(bases: list[Image.Image], rng: random.Random) -> Image.Image:
    """A picture of its own (``--data collage``): a crop of one sample photo as the background, 2-4
    patches cut from other photos pasted over it (each 20-45% of the side, anywhere), a few filled
    shapes, rescaled to a long side of 400-600 px and colour-jittered. Two collages share at most a
    patch, so the candidate graph stays as sparse as a real collection's, where crops of 23 photos
    (``--data crops``) grow denser with N."""
    from PIL import ImageDraw

    canvas = original(rng.choice(bases), rng)
    w, h = canvas.size
    for _ in range(rng.randint(2, 4)):
        patch = rng.choice(bases)
        pw, ph = max(8, int(w * rng.uniform(0.2, 0.45))), max(8, int(h * rng.uniform(0.2, 0.45)))
        sx, sy = rng.randint(0, max(0, patch.width - pw)), rng.randint(0, max(0, patch.height - ph))
        piece = patch.crop((sx, sy, sx + pw, sy + ph))
        canvas.paste(piece, (rng.randint(0, w - pw), rng.randint(0, h - ph)))
    draw = ImageDraw.Draw(canvas)
    for _ in range(rng.randint(1, 3)):
        x0, y0 = rng.randint(0, w - 2), rng.randint(0, h - 2)
        box = (x0, y0, min(w - 1, x0 + rng.randint(w // 10, w // 3)), min(h - 1, y0 + rng.randint(h // 10, h // 3)))
        fill = tuple(rng.randint(0, 255) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    return canvas


def _build_part(args: tuple) -> list:
    """One worker's share of :func:`build`: originals ``start..stop`` (and their planted copies)."""
    img_dir, data, seed, start, stop, copies = args
    bases = photos()
    planted = []
    for i in range(start, stop):
        rng = random.Random(seed * 1_000_003 + i)
        base = rng.choice(bases)
        img = collage(bases, rng) if data == "collage" else original(base, rng)
        stem = f"o{i:06d}"
        img.save(Path(img_dir) / f"{stem}.jpg", quality=rng.randint(85, 95))
        if i < copies:
            kind = EDITS[i % len(EDITS)]
            copy, quality = edited(img, kind, rng)
            copy.save(Path(img_dir) / f"c{i:06d}.jpg", quality=quality)
            planted.append((stem, f"c{i:06d}", kind))
    return planted


def edited(img: Image.Image, kind: str, rng: random.Random) -> tuple[Image.Image, int]:
    """A planted copy of ``img`` and the JPEG quality to save it at."""
    if kind == "jpeg":
        return img, rng.randint(60, 75)
    if kind == "resize":
        f = rng.uniform(0.5, 0.8)
        return img.resize((round(img.width * f), round(img.height * f)), Image.BICUBIC), rng.randint(85, 95)
    if kind == "crop":
        f = rng.uniform(0.05, 0.10)
        dx, dy = int(img.width * f), int(img.height * f)
        x, y = rng.randint(0, dx), rng.randint(0, dy)
        return img.crop((x, y, img.width - (dx - x), img.height - (dy - y))), rng.randint(85, 95)
    sign = rng.choice((-1, 1))
    return ImageEnhance.Brightness(img).enhance(1 + sign * rng.uniform(0.15, 0.25)), rng.randint(85, 95)


def build(n: int, seed: int, data: str = "crops", workers: int = 1) -> tuple[Path, list[tuple[str, str, str]]]:
    """N JPEGs (about 5% planted copies) in ``WORK/N/img`` (``WORK/collage-N/img`` for collages),
    cached; returns the folder and the planted (original, copy, edit) file stems. ``crops`` keeps the
    sequence of the first runs (one generator); ``collage`` seeds each image apart, so ``workers``
    processes build it."""
    folder = WORK / (str(n) if data == "crops" else f"{data}-{n}")
    img_dir, truth_file = folder / "img", folder / "planted.json"
    if truth_file.exists():
        return img_dir, [tuple(t) for t in json.loads(truth_file.read_text())]
    shutil.rmtree(img_dir, ignore_errors=True)
    img_dir.mkdir(parents=True)
    copies = round(n * COPY_SHARE)
    t = time.perf_counter()
    if data == "collage":
        from concurrent.futures import ProcessPoolExecutor

        chunk = 500
        parts = [(str(img_dir), data, seed, s, min(n - copies, s + chunk), copies)
                 for s in range(0, n - copies, chunk)]
        planted = []
        with ProcessPoolExecutor(workers) as pool:
            for k, part in enumerate(pool.map(_build_part, parts)):
                planted += part
                print(f"  built {min(n - copies, (k + 1) * chunk)} originals, {time.perf_counter() - t:.0f} s",
                      flush=True)
        truth_file.write_text(json.dumps(planted))
        return img_dir, planted
    rng = random.Random(seed)
    bases = photos()
    planted = []
    for i in range(n - copies):
        img = original(rng.choice(bases), rng)
        stem = f"o{i:06d}"
        img.save(img_dir / f"{stem}.jpg", quality=rng.randint(85, 95))
        if i < copies:
            kind = EDITS[i % len(EDITS)]
            copy, quality = edited(img, kind, rng)
            copy.save(img_dir / f"c{i:06d}.jpg", quality=quality)
            planted.append((stem, f"c{i:06d}", kind))
        if i % 1000 == 999:
            print(f"  built {i + 1 + min(i + 1, copies)} images, {time.perf_counter() - t:.0f} s", flush=True)
    truth_file.write_text(json.dumps(planted))
    return img_dir, planted


# -- children -----------------------------------------------------------------------------------


def pinned(cmd: list[str], out: Path) -> dict:
    """Run ``cmd`` on cores 0 and 1 under /usr/bin/time; its wall, CPU and peak RSS (MiB, process tree)."""
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2",
           "NUMBA_NUM_THREADS": "2", "PYTHONPATH": str(ROOT), "CURATE_PROGRESS": "0"}
    stats = out.with_suffix(".time")
    full = ["/usr/bin/time", "-o", str(stats), "-f", "%e %U %S %M", "taskset", "-c", "0,1", *cmd]
    t = time.perf_counter()
    proc = subprocess.run(full, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    e, u, s, m = stats.read_text().split()[-4:]
    return {"wall_s": round(wall, 1), "cpu_s": round(float(u) + float(s), 1), "peak_rss_mib": round(int(m) / 1024),
            "stdout": proc.stdout}


def child_dedup(ws: str, out: str, profile: bool) -> None:
    """In the child: ``curate dedup --method near`` with decode counters (and cProfile), pairs to ``out``."""
    import curate
    import curate.io.images as images
    from curate.api import stage_and_config
    from curate.dedup import pictures as pictures_mod
    from curate.dedup import verify as verify_mod
    from curate.dedup.near import NearConfig
    from curate.runner import run_stage

    counts = {"decode_image": 0}
    seconds: dict[str, float] = {}
    decode_image = images.decode_image

    def counted_decode_image(*a, **k):
        counts["decode_image"] += 1
        return decode_image(*a, **k)

    images.decode_image = counted_decode_image

    def timed(owner, name: str, label: str) -> None:  # count and time every call of owner.name
        fn = getattr(owner, name)
        counts[label], seconds[label] = 0, 0.0

        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                counts[label] += 1
                seconds[label] += time.perf_counter() - t

        setattr(owner, name, wrapper)

    timed(pictures_mod.Pictures, "decode", "Pictures.decode")
    rows_seen: set[int] = set()
    seen = pictures_mod.Pictures._seen

    def tracked_seen(self, row):  # which rows get a view: views made beyond these are remade after eviction
        rows_seen.add(row)
        return seen(self, row)

    pictures_mod.Pictures._seen = tracked_seen
    for name in ("image_hash", "image_view", "uniformity", "copy_floor", "image_sharpness"):
        if hasattr(pictures_mod, name):
            timed(pictures_mod, name, name)
    for name in ("coarse_similarity", "copy_similarity", "featureless_pair"):
        if hasattr(verify_mod, name):
            timed(verify_mod, name, name)
    stage, config = stage_and_config("dedup", {"method": "near"})
    counts["rows_with_view"] = 0
    ws_obj = curate.open(ws).ws

    def run():
        return run_stage(ws_obj, stage, config, progress=False, force=True)

    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        result = prof.runcall(run)
        prof.dump_stats(str(Path(out).with_suffix(".prof")))
        pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    else:
        result = run()
    counts["rows_with_view"] = len(rows_seen)
    table = result.table.select(["id", "kept", "duplicate_of"]).to_pylist()
    import pyarrow.parquet as pq

    pairs_file = next(Path(ws).glob(f"decisions/dedup/{result.run_id}-pairs.parquet"))

    pairs = pq.read_table(pairs_file, columns=["a", "b"]).to_pylist()
    Path(out).write_text(json.dumps({"pairs": [(p["a"], p["b"]) for p in pairs], "counts": counts,
                                     "seconds": {k: round(v, 1) for k, v in seconds.items()},
                                     "signals": list(NearConfig().signals), "laps": result.meta.get("seconds"),
                                     "stage_s": result.meta.get("total_seconds"),
                                     "candidates": result.meta.get("candidates"),
                                     "image_decodes": result.meta.get("image_decodes"),
                                     "removed": sum(1 for r in table if not r["kept"])}, default=str))


def child_phash(img_dir: str, out: str) -> None:
    """In the child: imagededup PHash encode + find_duplicates (distance 10), 2 workers; pairs to ``out``."""
    from imagededup.methods import PHash

    hasher = PHash(verbose=False)
    t = time.perf_counter()
    enc = hasher.encode_images(image_dir=img_dir, num_enc_workers=2)
    encode_s = time.perf_counter() - t
    dups = hasher.find_duplicates(encoding_map=enc, max_distance_threshold=10, num_enc_workers=2, num_dist_workers=2)
    pairs = [(Path(a).stem, Path(b).stem) for a, bs in dups.items() for b in bs if a < b]
    Path(out).write_text(json.dumps({"pairs": pairs, "encode_s": round(encode_s, 1),
                                     "find_s": round(time.perf_counter() - t - encode_s, 1)}))


# -- scoring ------------------------------------------------------------------------------------


def recall(pairs: list[tuple[str, str]], planted: list[tuple[str, str, str]]) -> tuple[float, dict, int]:
    """Share of planted pairs in one component of ``pairs``; per edit kind; pairs that are not planted."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        parent[find(a)] = find(b)
    hit = {k: [0, 0] for k in EDITS}
    for o, c, kind in planted:
        hit[kind][1] += 1
        hit[kind][0] += find(o) == find(c)
    found = sum(h for h, _ in hit.values())
    truth = {frozenset((o, c)) for o, c, _ in planted}
    extra = sum(frozenset(p) not in truth for p in pairs)
    return found / max(1, len(planted)), {k: round(h / max(1, t), 3) for k, (h, t) in hit.items()}, extra


def stem_of(item_id: str) -> str:
    return Path(item_id).stem


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, nargs="+", default=[10000], help="number of images (each a cached data set)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", choices=["crops", "collage"], default="crops",
                   help="crops: random crops of the 23 sample photos (denser with N); collage: pictures of their own")
    p.add_argument("--build-workers", type=int, default=2, help="processes that build collage data")
    p.add_argument("--build-only", action="store_true", help="build (cache) the data and stop")
    p.add_argument("--profile", action="store_true", help="cProfile the near dedup (slower; timings then inflated)")
    p.add_argument("--skip", nargs="*", default=[], choices=["phash", "curate"], help="tools not to run")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "dedup":
            child_dedup(rest[0], rest[1], rest[2] == "1")
        else:
            child_phash(rest[0], rest[1])
        return
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    rows = []
    for n in args.n:
        img_dir, planted = build(n, args.seed, args.data, args.build_workers)
        tag = n if args.data == "crops" else f"{args.data}-{n}"
        if args.build_only:
            print(f"N={n}: {img_dir}, {len(planted)} planted copies")
            continue
        folder = img_dir.parent
        load = round(os.getloadavg()[0], 2)
        print(f"N={n}: {len(planted)} planted copies; load {load}", flush=True)
        if "curate" not in args.skip:
            ws = folder / "ws"
            shutil.rmtree(ws, ignore_errors=True)
            ingest = pinned([sys.executable, "-m", "curate", "ingest", "-w", str(ws), "--no-progress", str(img_dir)],
                            folder / "ingest.out")
            out = folder / "near.json"
            near = pinned([sys.executable, str(Path(__file__).resolve()), "--child", "dedup", str(ws), str(out),
                           "1" if args.profile else "0"], out)
            if args.profile:
                (folder / "near-profile.txt").write_text(near["stdout"])
                print(near["stdout"][:12000])
            res = json.loads(out.read_text())
            rec, per_kind, extra = recall([(stem_of(a), stem_of(b)) for a, b in res["pairs"]], planted)
            # the stage counts its decodes, worker processes included (the counter here sees this process only);
            # the keep order's looks at group members (compare_images) come on top, in this process
            decodes = (res.get("image_decodes") or 0) + res["counts"]["decode_image"] - res["counts"]["Pictures.decode"]
            print(f"  curate ingest {ingest['wall_s']} s; near {near['wall_s']} s, calls {res['counts']}, "
                  f"seconds {res['seconds']}, "
                  f"signals {res['signals']}, "
                  f"{res['candidates']} candidates, stage {res['stage_s']} s, laps {res['laps']}", flush=True)
            rows.append({"tool": "curate ingest", "n": tag, **{k: v for k, v in ingest.items() if k != "stdout"}})
            rows.append({"tool": "curate near" + (" (profiled)" if args.profile else ""), "n": tag,
                         **{k: v for k, v in near.items() if k != "stdout"}, "recall": round(rec, 3),
                         "per_kind": per_kind, "pairs": len(res["pairs"]), "extra_pairs": extra,
                         "decodes": decodes,
                         "decodes_per_image": round(decodes / n, 2),
                         "note": f"stage {res['stage_s']} s: {res['laps']}; {res['candidates']} candidates; "
                                 f"calls {res['counts']}; seconds {res['seconds']}"})
        if "phash" not in args.skip:
            out = folder / "phash.json"
            ph = pinned([sys.executable, str(Path(__file__).resolve()), "--child", "phash", str(img_dir), str(out)],
                        out)
            res = json.loads(out.read_text())
            rec, per_kind, extra = recall(res["pairs"], planted)
            rows.append({"tool": "imagededup PHash", "n": tag, **{k: v for k, v in ph.items() if k != "stdout"},
                         "recall": round(rec, 3), "per_kind": per_kind, "pairs": len(res["pairs"]),
                         "extra_pairs": extra, "note": f"encode {res['encode_s']} s, find {res['find_s']} s"})
        for r in rows:
            r.setdefault("load", load)
    near = {r["n"]: r for r in rows if r["tool"].startswith("curate near")}
    ph = {r["n"]: r for r in rows if r["tool"] == "imagededup PHash"}
    for n in near:
        if n in ph:
            near[n]["ratio_vs_phash"] = round(near[n]["wall_s"] / ph[n]["wall_s"], 2)
    print(f"\n{machine}; cores 0,1 (taskset), OMP_NUM_THREADS=2")
    cols = ["tool", "n", "wall_s", "cpu_s", "peak_rss_mib", "recall", "pairs", "extra_pairs", "decodes_per_image",
            "ratio_vs_phash", "load"]
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(str(r.get(c, "")) for c in cols), r.get("per_kind", ""), r.get("note", ""))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=ROOT).stdout.strip()
    RESULTS.parent.mkdir(exist_ok=True)
    new = not RESULTS.exists()
    with RESULTS.open("a", newline="") as f:
        w = csv.writer(f)
        if new:
            w.writerow(["date", "commit", "machine", *cols, "per_kind", "note"])
        for r in rows:
            w.writerow([dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), commit, machine,
                        *(r.get(c, "") for c in cols), json.dumps(r.get("per_kind", "")), r.get("note", "")])


if __name__ == "__main__":
    main()
