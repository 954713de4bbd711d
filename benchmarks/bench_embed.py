"""Embedding throughput and peak memory: curate's engine vs the way popular peers do it.

Data: ``--images`` JPEGs (``--size`` px, smooth noise, quality 90) in WebDataset tar shards,
ingested into a fresh workspace (generated once under ``--work``).

Implementations, measured in the same run on the same data and model:

- ``curate``:   ``curate.embed.stage.embed`` (``--executor local``): loader workers read
                bytes by recorded byte range; on CUDA JPEGs are decoded on the GPU in batches
                (``torchvision.io.decode_jpeg(device=...)``), resized/normalised there, model
                in fp16; on CPU PIL decode + model transform in loader workers;
- ``baseline``: a torch DataLoader over the tar members with PIL decode + the model's own
                transform in workers, model in fp16 on the same device (CPU: fp32), vectors
                L2-normalised and saved as fp16 .npy - the loop most peers ship.

Reported: images/s, ratio curate/baseline, peak RSS, peak device memory, and for a model
on CUDA the fraction of the model-FLOP ceiling (measured forward FLOPs per image x
images/s over the device's dense fp16 peak).

    python benchmarks/bench_embed.py --model openclip:ViT-B-32 --images 20000 --size 256   # GPU node
    python benchmarks/bench_embed.py --model perceptual --images 5000 --size 64           # CPU target
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

# dense fp16/bf16 tensor-core peaks (FLOP/s) by device name fragment
PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12}


def make_shards(folder: Path, count: int, size: int, per_shard: int = 1000, seed: int = 0) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for start in range(0, count, per_shard):
        with tarfile.open(tmp / f"shard-{start // per_shard:05d}.tar", "w") as tar:
            for i in range(start, min(count, start + per_shard)):
                coarse = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
                img = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BILINEAR), dtype=np.int16)
                img = (img + rng.integers(-10, 11, size=img.shape, dtype=np.int16)).clip(0, 255).astype(np.uint8)
                buf = io.BytesIO()
                Image.fromarray(img).save(buf, "JPEG", quality=90)
                info = tarfile.TarInfo(f"{i:08d}.jpg")
                info.size = buf.tell()
                buf.seek(0)
                tar.addfile(info, buf)
    os.replace(tmp, folder)


def run_curate(ws_path: str, args) -> dict:
    from curate.embed.stage import EmbedConfig, embed
    from curate.workspace import Workspace

    cfg = EmbedConfig(model=args.model, device=args.device, precision=args.precision,
                      batch_size=args.batch_size, workers=args.workers, shard_size=args.shard_size)
    t = time.perf_counter()
    result = embed(Workspace(ws_path), cfg, progress=False)
    return {"seconds": time.perf_counter() - t, "n": result.meta["embedded"], "device": result.meta["device"]}


def run_baseline(ws_path: str, args) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch.utils.data import DataLoader, Dataset

    from curate.embed.base import resolve_runtime
    from curate.embed.payloads import PayloadFetcher
    from curate.embed.registry import load_embedder
    from curate.workspace import Workspace

    ws = Workspace(ws_path)
    rows = [r for r in ws.read_manifest().to_pylist() if r["status"] == "ok"]
    embedder = load_embedder(args.model, ws)
    runtime = resolve_runtime(args.device, args.precision)
    embedder.setup(runtime)

    class Images(Dataset):  # PIL decode + model transform in workers: the common peer loop
        fetcher = None

        def __len__(self):
            return len(rows)

        def __getitem__(self, i):
            if Images.fetcher is None:
                Images.fetcher = PayloadFetcher()
            return embedder.prepare("image", Images.fetcher.fetch(rows[i]))

    loader = DataLoader(Images(), batch_size=args.batch_size, num_workers=args.workers,
                        pin_memory=runtime.device.type == "cuda")
    out = np.zeros((len(rows), embedder.dim), dtype=np.float16)
    t = time.perf_counter()
    pos = 0
    with torch.inference_mode():
        for batch in loader:
            vectors = F.normalize(embedder.forward(batch).float(), dim=1)
            out[pos:pos + len(vectors)] = vectors.half().cpu().numpy()
            pos += len(vectors)
    np.save(Path(ws_path) / "baseline.npy", out)
    return {"seconds": time.perf_counter() - t, "n": pos, "device": runtime.device.type}


def flops_per_image(args) -> float | None:
    """Forward FLOPs of one image through the model (torch's FLOP counter), if it has one."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from curate.embed.base import resolve_runtime
    from curate.embed.registry import load_embedder

    if not args.model.startswith("openclip:"):
        return None
    embedder = load_embedder(args.model)
    embedder.setup(resolve_runtime("cpu", "fp32"))
    size = embedder.preprocess_cfg["size"]
    h, w = (size, size) if isinstance(size, int) else size
    # grad enabled on purpose: under inference mode attention takes a fused fast path whose
    # FLOPs the counter does not see (5.9 instead of 8.7 GFLOPs for ViT-B-32)
    with FlopCounterMode(display=False) as counter:
        embedder._model.encode_image(torch.zeros(1, 3, h, w))
    return float(counter.get_total_flops())


def child(impl: str, ws_path: str, args) -> None:
    """Run one implementation in this (fresh) process and print a JSON line."""
    import torch

    fn = run_curate if impl == "curate" else run_baseline
    result = fn(ws_path, args)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["peak_device_mb"] = (torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else 0.0
    result["device_name"] = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    print("RESULT " + json.dumps(result))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="perceptual")
    p.add_argument("--images", type=int, default=5000)
    p.add_argument("--size", type=int, default=64, help="image side in pixels")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="fp16")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--shard-size", type=int, default=16384)
    p.add_argument("--work", default=str(HERE / "_work"))
    p.add_argument("--csv", default=str(HERE / "results" / "embed.csv"))
    p.add_argument("--child", nargs=2, metavar=("IMPL", "WS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args)
        return

    work = Path(args.work)
    shards = work / "data" / f"jpeg-tars-{args.images}-{args.size}px"
    if not shards.exists():
        make_shards(shards, args.images, args.size)
    from curate.ingest import IngestConfig, ingest
    from curate.workspace import Workspace

    results = {}
    for impl in ("baseline", "curate"):
        ws_path = work / "ws-embed" / impl
        shutil.rmtree(ws_path, ignore_errors=True)
        ingest(Workspace(str(ws_path)), [str(shards)], IngestConfig())
        cmd = [sys.executable, __file__, "--child", impl, str(ws_path)] + [
            a for a in sys.argv[1:] if a != "--child"]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
        results[impl] = json.loads(line[len("RESULT "):])
        r = results[impl]
        r["items_per_s"] = r["n"] / r["seconds"]
        print(f"{impl:9s} {r['n']:,} images in {r['seconds']:.2f}s = {r['items_per_s']:,.0f}/s on "
              f"{r['device_name']} ({r['device']}); peak RSS {r['peak_rss_mb']:.0f} MB, "
              f"device {r['peak_device_mb']:.0f} MB")
    ratio = results["curate"]["items_per_s"] / results["baseline"]["items_per_s"]
    print(f"ratio curate/baseline: {ratio:.2f}x")
    ceiling = None
    flops = flops_per_image(args) if results["curate"]["device"] == "cuda" else None
    peak = next((v for k, v in PEAK_FLOPS.items() if k in results["curate"]["device_name"]), None)
    if flops and peak:
        ceiling = results["curate"]["items_per_s"] * flops / peak
        print(f"model-FLOP ceiling: {peak / flops:,.0f} images/s; reached {ceiling:.1%}")
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    new = not Path(args.csv).exists()
    with open(args.csv, "a", newline="") as fh:
        w = csv.writer(fh)
        if new:
            w.writerow(["benchmark", "impl", "model", "n", "size_px", "batch_size", "workers", "precision",
                        "seconds", "items_per_s", "ratio_vs_baseline", "peak_rss_mb", "peak_device_mb",
                        "flop_ceiling_fraction", "device", "device_name", "timestamp"])
        for impl, r in results.items():
            w.writerow(["embed", impl, args.model, r["n"], args.size, args.batch_size, args.workers,
                        args.precision, f"{r['seconds']:.3f}", f"{r['items_per_s']:.1f}",
                        f"{r['items_per_s'] / results['baseline']['items_per_s']:.3f}",
                        f"{r['peak_rss_mb']:.0f}", f"{r['peak_device_mb']:.0f}",
                        "" if ceiling is None or impl != "curate" else f"{ceiling:.4f}",
                        r["device"], r["device_name"], dt.datetime.now(dt.timezone.utc).isoformat()])


if __name__ == "__main__":
    main()
