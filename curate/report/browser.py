"""Render a report in headless Chromium: a screenshot, or the DOM after its script ran (for checks;
needs ``chromium``).

Runs offline with a throw-away profile: no network, sync, component updates or GPU, so the
picture shows exactly what the self-contained page draws.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from curate.errors import CurateError

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars")


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def screenshot(page: str | Path, png: str | Path, width: int = 1280, height: int = 3000,
               timeout: float = 120.0) -> Path:
    """Open the local file ``page`` and write a ``width`` x ``height`` PNG to ``png``."""
    exe = find_chromium()
    if exe is None:
        raise CurateError("no chromium found (on Debian: apt-get install chromium)")
    page, png = Path(page).resolve(), Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="curate-chromium-") as profile:
        cmd = [exe, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
               f"--window-size={width},{height}", page.as_uri()]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not png.exists():
        raise CurateError(f"chromium failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return png


def dump_dom(page: str | Path, fragment: str = "", timeout: float = 120.0) -> str:
    """The HTML of the local file ``page`` (opened at ``#fragment``) after its scripts ran."""
    exe = find_chromium()
    if exe is None:
        raise CurateError("no chromium found (on Debian: apt-get install chromium)")
    uri = Path(page).resolve().as_uri() + (f"#{fragment}" if fragment else "")
    with tempfile.TemporaryDirectory(prefix="curate-chromium-") as profile:
        done = subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", uri],
                              capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0 or not done.stdout:
        raise CurateError(f"chromium failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return done.stdout
