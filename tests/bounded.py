"""Run the CLI in a child process that can neither hang nor eat the machine's memory: it is killed
past a wall-clock timeout or a resident-memory cap, and the test fails saying which."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_curate(*args: str, timeout: float = 120, max_rss_mb: float = 2048, cwd: str | None = None) -> Finished:
    """``python -m curate ARGS``; fails the test (AssertionError) if it runs past ``timeout`` seconds or
    its resident memory passes ``max_rss_mb`` (polled every 20 ms)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:  # no pipe to fill up
        proc = subprocess.Popen([sys.executable, "-m", "curate", *args], stdout=out, stderr=err, text=True,
                                cwd=cwd, env=env)
        began, problem = time.monotonic(), None
        while proc.poll() is None:
            if time.monotonic() - began > timeout:
                problem = f"still running after {timeout:g} s (hangs)"
            elif _rss_mb(proc.pid) > max_rss_mb:
                problem = f"resident memory over {max_rss_mb:g} MB (unbounded read)"
            if problem:
                proc.kill()
                proc.wait()
                raise AssertionError(f"curate {' '.join(args)}: {problem}")
            time.sleep(0.02)
        out.seek(0)
        err.seek(0)
        return Finished(proc.returncode, out.read(), err.read())
