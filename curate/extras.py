"""Optional dependencies (the extras of ``pyproject.toml``): imported where they are used, and a
missing one is a one-line error naming the extra that installs it, never an ImportError traceback."""

from __future__ import annotations

import importlib
from types import ModuleType

from curate.errors import CurateError


def require(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` for ``what`` (e.g. ``--executor ray``), or raise :class:`CurateError` saying
    ``pip install 'curate[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        why = " ".join(str(exc).split())  # one line, whatever the import said
        raise CurateError(f"{what} needs {module}, which cannot be imported here ({why}): "
                          f"pip install 'curate[{extra}]'") from None


def require_ray(what: str = "--executor ray") -> ModuleType:
    """The ``ray`` module (``curate[ray]``)."""
    return require("ray", "ray", what)
