"""Completion markers: a unit of work is done when its marker holds the same fingerprint.

Artifacts are written first, markers last (both atomically), so a run killed in between
redoes that unit instead of trusting a half-finished one.
"""

from __future__ import annotations

import json
import time
from typing import Any

from curate.io import atomic
from curate.io.fs import Location


def is_done(marker: Location, fingerprint: str, *artifacts: Location) -> bool:
    """True when ``marker`` records ``fingerprint`` and every artifact exists."""
    try:
        recorded = atomic.read_json(marker)
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    return recorded.get("fingerprint") == fingerprint and all(a.exists() for a in artifacts)


def mark_done(marker: Location, fingerprint: str, **info: Any) -> None:
    atomic.write_json(marker, {"fingerprint": fingerprint, "completed_at": time.time(), **info})


def clear(marker: Location) -> None:
    if marker.exists():
        marker.fs.rm(marker.path)
