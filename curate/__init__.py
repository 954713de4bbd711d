"""curate: GPU-accelerated dataset curation engine.

The Python API is :func:`curate.open` (see ``curate.api``)::

    import curate
    ws = curate.open("ws")
    ws.ingest(["demo-data/images"])
    ws.dedup(method="exact")
    ws.decisions("dedup")  # a pyarrow.Table, one row per manifest id
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["open", "__version__"]


def __getattr__(name: str) -> Any:
    """``curate.open`` imports the API on first use, so ``import curate`` (and the CLI) stay light."""
    if name == "open":
        from curate.api import open as open_workspace

        return open_workspace
    raise AttributeError(f"module 'curate' has no attribute {name!r}")
