"""curate: GPU-accelerated dataset curation engine.

The Python API is :func:`curate.open` (see ``curate.api``)::

    import curate
    ws = curate.open("ws")
    ws.ingest(["demo-data/images"])
    ws.dedup(method="exact")
    ws.decisions("dedup")  # a pyarrow.Table, one row per manifest id

Errors a user can fix (a bad setting, a missing file) are :class:`curate.CurateError`.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["CurateError", "open", "__version__"]


def __getattr__(name: str) -> Any:
    """``curate.open`` imports the API on first use, so ``import curate`` (and the CLI) stay light."""
    if name == "open":
        from curate.api import open as open_workspace

        return open_workspace
    if name == "CurateError":
        from curate.errors import CurateError

        return CurateError
    raise AttributeError(f"module 'curate' has no attribute {name!r}")


def __dir__() -> list[str]:
    """The public API (imported on first use, so not in the module's namespace before) and what is loaded."""
    return sorted(set(globals()) | set(__all__))
