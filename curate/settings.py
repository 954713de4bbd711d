"""Stage settings from one source: the config dataclasses.

The CLI, the pipeline file and the Python API all build configs here, by the same names:
a setting is named like its CLI option (``shard-size`` or ``shard_size``, ``threshold``).
A config may group settings in nested configs (``SelectConfig.batch``); flat names reach them
too, so the CLI stays flat and a pipeline file may use either form.
Unknown names list the valid ones; wrong types, missing required settings and values a
stage rejects are one-line errors that never show Python internals.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from curate.errors import CurateError


def build_config(cls: type, data: dict, where: str, also: tuple[str, ...] = (), **fixed: Any) -> Any:
    """Instantiate the frozen config ``cls`` from settings (TOML table or keywords), checking names and shapes.

    ``also``: keys the table takes besides the config's fields (taken out before this call, e.g. the
    ``folder`` of ``[demo]``), listed among the valid ones when a key is unknown."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    names = [f.name for f in fields]
    data = _route(cls, hints, {str(k).replace("-", "_"): v for k, v in data.items()})
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise CurateError(f"[{where}]: unknown setting(s) {', '.join(unknown)}; valid: {', '.join([*also, *names])}")
    values = dict(fixed)
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = build_config(hint, value, f"{where}.{name}")
        elif _wants_tuple(hint):
            _check_items(hint, value, f"{where}.{name}")
            value = _as_tuple(value) if isinstance(value, (list, tuple, dict)) else (value,)
        else:
            _check_scalar(hint, value, f"{where}.{name}")
        values[name] = value
    missing = [f.name for f in fields if f.name not in values
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise CurateError(f"[{where}] needs {', '.join(f'`{m}`' for m in missing)}")
    try:
        config = cls(**values)
    except (TypeError, ValueError) as exc:
        raise CurateError(f"[{where}]: {exc}") from exc
    _check_device(config, where)
    return config


def _check_device(config: Any, where: str) -> None:
    """A ``device`` setting is checked where it is given (spelling, and that the GPU exists here), so a
    wrong one stops the command or the pipeline file before any stage runs."""
    if "device" not in {f.name for f in dataclasses.fields(config)}:
        return
    from curate.device import check_config_device  # imports torch: only for configs that have a device

    try:
        check_config_device(config)
    except CurateError as exc:
        raise CurateError(f"[{where}] {exc}") from None


def _route(cls: type, hints: dict, data: dict) -> dict:
    """Flat settings (as the CLI has them) that name a field of a nested config go into its table."""
    nested = {f.name: hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])}
    if not nested:
        return data
    own = {f.name for f in dataclasses.fields(cls)}
    out = {k: (dict(v) if k in nested and isinstance(v, dict) else v) for k, v in data.items()}
    for key, value in data.items():
        if key in own:
            continue
        homes = [name for name, sub in nested.items() if key in {f.name for f in dataclasses.fields(sub)}]
        if len(homes) == 1:
            out.pop(key)
            out.setdefault(homes[0], {})[key] = value
    return out


def all_fields(cls: type) -> dict[str, Any]:
    """Every setting a config takes, flat (nested configs' fields included): name -> default or MISSING."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            out.update(all_fields(hints[f.name]))
        elif f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
        else:
            out[f.name] = dataclasses.MISSING
    return out


def _wants_tuple(hint: Any) -> bool:
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    return any(typing.get_origin(h) is tuple for h in options)


def _as_tuple(value: Any) -> Any:
    """Arrays become tuples and tables become (key, value) pairs, recursively."""
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(v) for v in value)
    if isinstance(value, dict):
        return tuple((k, _as_tuple(v)) for k, v in value.items())
    return value


_SCALARS = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}
_NAMES = {int: ("an integer", "integers"), float: ("a number", "numbers"), str: ("a string", "strings"),
          bool: ("true or false", "booleans")}


def _check_items(hint: Any, value: Any, where: str) -> None:
    """Each item of a ``tuple[X, ...]`` setting (``threshold = [0.9, 0.8]``) must be an X, as a lone value must."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    shapes = [typing.get_args(o) for o in options if typing.get_origin(o) is tuple]
    items = [args[0] for args in shapes if len(args) == 2 and args[1] is Ellipsis and args[0] in _SCALARS]
    if len(items) != 1:
        return  # a tuple of pairs or of mixed types: the stage checks it
    item = items[0]
    given = list(value) if isinstance(value, (list, tuple)) else [value]
    if any(isinstance(v, bool) and item is not bool or not isinstance(v, _SCALARS[item]) for v in given):
        stage, key = where.split(".", 1)
        one, many = _NAMES[item]
        raise CurateError(f"[{stage}] {key} must be {one} or a list of {many}, not {value!r}")


def _check_scalar(hint: Any, value: Any, where: str) -> None:
    """Reject e.g. a string where a number is expected, before the stage trips over it."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    if not all(o in _SCALARS or o is type(None) for o in options):
        return  # not a plain scalar field: the stage checks it
    accepted = tuple(t for o in options if o in _SCALARS for t in _SCALARS[o])
    if value is None and type(None) in options:
        return
    if isinstance(value, bool) and bool not in accepted or not isinstance(value, accepted):
        names = " or ".join(getattr(o, "__name__", str(o)) for o in options if o is not type(None))
        raise CurateError(f"[{where.split('.')[0]}] {where.split('.', 1)[1]} must be {names}, not {value!r}")
