"""Content and fingerprint hashing (xxh3-128: fast, stable across platforms)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import xxhash


def content_hash(data: bytes) -> str:
    """Hex digest identifying a payload's exact bytes (used for exact dedup)."""
    return xxhash.xxh3_128_hexdigest(data)


def fingerprint(obj: Any) -> str:
    """Stable hex digest of a JSON-serialisable object (config, file stats, versions)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_jsonable)
    return xxhash.xxh3_128_hexdigest(blob.encode())


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)
