"""Helpers of the fault-injection tests: a small dataset, the CLI under kill points, artifact digests."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

HOOK = Path(__file__).with_name("killhook.py")
TMP_MARK = ".tmp-"


def picture(seed: int, size: int = 24) -> Image.Image:
    """A smooth random picture (distinct per seed, stable under re-encoding)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, size=(4, 4, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((size, size), Image.BILINEAR)


def encoded(img: Image.Image, fmt: str = "PNG", **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def small_dataset(root: Path, n: int = 48) -> list[str]:
    """An image folder (train/test, 3 labels, exact and near copies, one corrupt file) and a
    WebDataset shard; returns the ingest sources. Sized so a stage runs in about a second."""
    folder = root / "images"
    for i in range(n):
        split, label = ("train", "test")[i % 4 == 3], f"c{i % 3}"
        path = folder / split / label / f"{i:03d}.{'jpg' if i % 2 else 'png'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encoded(picture(i), "JPEG" if i % 2 else "PNG", **({"quality": 90} if i % 2 else {})))
    for i in range(0, n, 8):  # exact and near copies
        src = folder / ("train", "test")[i % 4 == 3] / f"c{i % 3}" / f"{i:03d}.png"
        (src.parent / f"{i:03d}-copy.png").write_bytes(src.read_bytes())
        (src.parent / f"{i:03d}-near.jpg").write_bytes(encoded(picture(i), "JPEG", quality=70))
    (folder / "train" / "c0" / "broken.jpg").write_bytes(encoded(picture(999), "JPEG")[:200])
    shard = root / "shards" / "part-0000.tar"
    shard.parent.mkdir(parents=True, exist_ok=True)
    shard.write_bytes(tar_bytes([m for i in range(12) for m in (
        (f"s{i:03d}.png", encoded(picture(500 + i % 9))), (f"s{i:03d}.cls", str(i % 3).encode()))]))
    return [str(folder), str(shard)]


class Server:
    """``killhook.py --serve``: runs curate commands in forked children (no start-up per run)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(HOOK), "--serve"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd="/")
        self.count = 0

    def start(self, args: list[str], cwd: Path, env: dict | None = None) -> tuple[int, Path]:
        self.count += 1
        out = Path(cwd) / f".run-{self.count}"
        request = {"args": args, "cwd": str(cwd), "env": env or {}, "stdout": f"{out}.out", "stderr": f"{out}.err"}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())["pid"], out

    def wait(self, out: Path) -> subprocess.CompletedProcess:
        code = json.loads(self.proc.stdout.readline())["status"]
        texts = []
        for ext in (".out", ".err"):
            path = Path(f"{out}{ext}")
            texts.append(path.read_text(errors="replace") if path.exists() else "")
            path.unlink(missing_ok=True)
        return subprocess.CompletedProcess([], code, *texts)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


_SERVER: list[Server] = []


def server() -> Server:
    if not _SERVER or _SERVER[0].proc.poll() is not None:
        _SERVER[:] = [Server()]
    return _SERVER[0]


def cli(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """``curate ARGS`` in a forked child (no kill unless ``env`` asks for one)."""
    srv = server()
    _, out = srv.start(args, cwd, env)
    return srv.wait(out)


def count_events(args: list[str], cwd: Path) -> tuple[int, float, int]:
    """Run to completion, counting kill points; returns (events, seconds, completed writes)."""
    log = cwd / f"events-{time.monotonic_ns()}.log"
    start = time.perf_counter()
    result = cli(args, cwd, {"CURATE_KILL_LOG": str(log)})
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-3000:]
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return len(lines), seconds, sum(line.split()[1] == "written" for line in lines)


def kill_at_event(args: list[str], cwd: Path, n: int) -> bool:
    """Run with a SIGKILL at event ``n``; True when it was killed (False: it finished first)."""
    result = cli(args, cwd, {"CURATE_KILL_AT": str(n)})
    if result.returncode == 0:
        return False
    assert result.returncode == -signal.SIGKILL, result.stderr[-3000:]
    return True


def kill_after(args: list[str], cwd: Path, delay: float) -> bool:
    """Start the command and SIGKILL it ``delay`` seconds later (unless it finished)."""
    srv = server()
    pid, out = srv.start(args, cwd)
    time.sleep(delay)
    with contextlib.suppress(ProcessLookupError):  # it finished first
        os.kill(pid, signal.SIGKILL)
    result = srv.wait(out)
    assert result.returncode in (0, -signal.SIGKILL), result.stderr[-3000:]
    return result.returncode != 0


def kill_rounds(args: list[str], cwd: Path, events: int, seconds: float, seed: int, at_events: int = 3,
                after_delay: int = 1, check=None) -> list[str]:
    """Kill the same command repeatedly in one workspace: at seeded random event numbers, then
    after seeded random delays; ``check(cwd)`` runs after each kill. Returns what happened.

    A rerun resumes, so it has fewer events left: each next kill point is drawn from what is
    left of the clean run's ``events`` after the earlier kills.
    """
    rng = random.Random(seed)
    left, happened = events, []
    for _ in range(at_events):
        n = rng.randint(1, max(1, left))
        killed = kill_at_event(args, cwd, n)
        happened.append(f"event@{n}/{left}:{'killed' if killed else 'finished'}")
        left = max(1, left - n + 2)
        if check is not None:
            check(cwd)
    for _ in range(after_delay):
        delay = rng.uniform(0.05, 0.6) * seconds
        killed = kill_after(args, cwd, delay)
        happened.append(f"delay@{delay:.3f}s:{'killed' if killed else 'finished'}")
        if check is not None:
            check(cwd)
    return happened


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def final_files(root: Path) -> list[Path]:
    """Files under ``root`` with a final name (not a temporary of a writer)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and TMP_MARK not in p.name)


def temporaries(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if TMP_MARK in p.name)


def no_partial_files(ws: Path) -> None:
    """Every artifact under a final name is complete: Parquet opens, JSON parses, tars list,
    .npy headers match their size."""
    import pyarrow.parquet as pq

    for path in final_files(ws):
        if path.suffix == ".parquet":
            pq.read_table(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".tar":
            with tarfile.open(path) as tar:
                assert tar.getnames(), path
        elif path.suffix == ".npy":
            np.load(path, mmap_mode="r")


def latest(folder: Path) -> Path | None:
    """The newest decision table of a stage folder (by its sidecar's run id)."""
    tables = [p for p in folder.glob("*.parquet") if TMP_MARK not in p.name and "-leakage" not in p.name]
    return max(tables, key=lambda p: p.stat().st_mtime_ns) if tables else None
