"""Loading and validating the model outputs and the labeled set that selectors work from.

Predictions (``--predictions``) come in one of two shapes:

- **Parquet** with an ``id`` column (manifest ids, any order, any subset) and list columns:
  ``probs`` | ``probabilities`` | ``logits`` [C]; optionally ``mc`` | ``mc_samples`` [T][C]
  (MC-dropout samples) and ``features`` | ``penultimate`` | ``embedding`` [d];
- **.npy / .npz** arrays whose rows are the manifest's ``ok`` rows in manifest order (the rows
  ``curate ingest`` did not quarantine). A .npy is [N, C] (probabilities or logits) or
  [N, T, C] (MC samples); a .npz holds ``probs`` or ``logits``, optional ``mc``, ``features``
  and ``ids`` (when present, rows are matched by id instead of position).

Logits are detected, not declared: when any value is negative or a row does not sum to 1
(± 1e-3), softmax is applied to the whole array. MC samples without ``probs`` give
``probs = mean over T``. Wrong row counts, NaN/inf, unknown or repeated ids, and class
counts that disagree are a :class:`CurateError` (one line).

The labeled set (``--labeled``) is a text file with one id per line, or CSV / Parquet with
an ``id`` column and optionally ``label``. Both must be regular files under a size cap
(:func:`curate.io.fs.check_user_file`): a FIFO or ``/dev/zero`` is a one-line error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from curate.errors import CurateError
from curate.io.fs import CAP_ID_LIST, CAP_PREDICTIONS, check_user_file, locate, open_user_file, read_user_file

PROB_COLUMNS = ("probs", "probabilities", "logits")
MC_COLUMNS = ("mc", "mc_samples")
FEATURE_COLUMNS = ("features", "penultimate", "embedding")


@dataclass(frozen=True)
class Predictions:
    """Model outputs for some manifest rows (``rows``, ascending)."""

    rows: np.ndarray  # int64 manifest rows
    probs: np.ndarray  # [n, C] float32
    mc: np.ndarray | None  # [n, T, C] float32 probabilities
    features: np.ndarray | None  # [n, d] float32


def to_probabilities(values: np.ndarray, what: str) -> np.ndarray:
    """Probabilities along the last axis; logits (negatives, or rows not summing to 1) get softmax."""
    values = np.asarray(values, dtype=np.float32)
    if not np.isfinite(values).all():
        raise CurateError(f"{what} contain NaN or infinite values")
    if values.size and (values.min() < 0 or np.abs(values.sum(axis=-1) - 1.0).max() > 1e-3):
        shifted = values - values.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        values = e / e.sum(axis=-1, keepdims=True)
    return values


def _finite(values: np.ndarray | None, what: str) -> np.ndarray | None:
    if values is None:
        return None
    values = np.asarray(values, dtype=np.float32)
    if not np.isfinite(values).all():
        raise CurateError(f"{what} contain NaN or infinite values")
    return values


def _list_column(table: pa.Table, names: tuple[str, ...], path: str, dims: int) -> np.ndarray | None:
    """The first present column of ``names`` as a float32 array of ``dims`` dims (lists of equal length),
    converted through Arrow's flat buffers (no Python objects per value)."""
    import pyarrow.compute as pc

    name = next((n for n in names if n in table.column_names), None)
    if name is None:
        return None
    arr = table.column(name).combine_chunks()
    if arr.null_count:
        raise CurateError(f"{path}: column {name!r} has null rows")
    shape = [len(arr)]
    for _ in range(dims - 1):
        if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)
                or pa.types.is_fixed_size_list(arr.type)):
            raise CurateError(f"{path}: column {name!r} should hold {dims - 1}-level lists of numbers")
        lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
        if len(lengths) and (lengths != lengths[0]).any():
            raise CurateError(f"{path}: column {name!r} has rows of different lengths")
        shape.append(int(lengths[0]) if len(lengths) else 0)
        arr = arr.flatten()
    if not (pa.types.is_floating(arr.type) or pa.types.is_integer(arr.type)):
        raise CurateError(f"{path}: column {name!r} should hold {dims - 1}-level lists of numbers")
    return arr.to_numpy(zero_copy_only=False).astype(np.float32).reshape(shape)


def _read_any(path: str) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None, list | None]:
    """(probs-or-logits, mc, features, ids or None) from a .npy / .npz / Parquet file."""
    loc = locate(path)
    if not loc.exists():
        raise CurateError(f"predictions file {path} does not exist")
    check_user_file(loc, what="--predictions", max_bytes=CAP_PREDICTIONS)
    lower = loc.path.lower()
    if lower.endswith(".npy") or lower.endswith(".npz"):
        with open_user_file(loc, what="--predictions", max_bytes=CAP_PREDICTIONS) as fh:
            data = np.load(fh, allow_pickle=False)
            if isinstance(data, np.ndarray):
                if data.ndim == 3:
                    return None, data, None, None
                if data.ndim != 2:
                    raise CurateError(f"{path}: expected [N, C] or [N, T, C], got shape {data.shape}")
                return data, None, None, None
            keys = set(data.files)
            probs = data["probs"] if "probs" in keys else data["logits"] if "logits" in keys else None
            ids = [str(i) for i in data["ids"]] if "ids" in keys else None
            return (probs, data["mc"] if "mc" in keys else None,
                    data["features"] if "features" in keys else None, ids)
    from curate.io.tables import read_table

    table = read_table(loc)
    if "id" not in table.column_names:
        raise CurateError(f"{path}: predictions Parquet needs an `id` column")
    return (_list_column(table, PROB_COLUMNS, path, 2), _list_column(table, MC_COLUMNS, path, 3),
            _list_column(table, FEATURE_COLUMNS, path, 2), [str(i) for i in table.column("id").to_pylist()])


def _rows_of(ids: list[str], index: dict[str, int], what: str) -> np.ndarray:
    rows = np.fromiter((index.get(i, -1) for i in ids), dtype=np.int64, count=len(ids))
    if (rows < 0).any():
        unknown = [i for i, r in zip(ids, rows) if r < 0]
        raise CurateError(f"{what}: {len(unknown)} ids are not in the manifest (e.g. {unknown[0]!r})")
    if len(np.unique(rows)) != len(rows):
        raise CurateError(f"{what}: some ids appear more than once")
    return rows


def load_predictions(path: str, manifest_ids: list[str], ok: np.ndarray) -> Predictions:
    """Read, validate and align predictions with the manifest (see the module docstring)."""
    probs, mc, features, ids = _read_any(path)
    if probs is None and mc is None:
        raise CurateError(f"{path}: no probabilities or logits (columns {', '.join(PROB_COLUMNS)}, or MC samples)")
    n = len(probs) if probs is not None else len(mc)
    for name, arr in (("MC samples", mc), ("features", features)):
        if arr is not None and len(arr) != n:
            raise CurateError(f"{path}: {name} have {len(arr)} rows, probabilities {n}")
    if ids is None:
        ok_rows = np.flatnonzero(ok)
        if n != len(ok_rows):
            raise CurateError(f"{path}: {n} rows, but the manifest has {len(ok_rows)} ok rows (arrays are aligned "
                              f"with the ok rows in manifest order)")
        rows = ok_rows.astype(np.int64)
    else:
        if len(ids) != n:
            raise CurateError(f"{path}: {len(ids)} ids for {n} rows")
        rows = _rows_of(ids, {i: r for r, i in enumerate(manifest_ids)}, path)
    mc = to_probabilities(mc, f"{path}: MC samples") if mc is not None else None
    probs = to_probabilities(probs, f"{path}: probabilities") if probs is not None else mc.mean(axis=1)
    if mc is not None and mc.shape[2] != probs.shape[1]:
        raise CurateError(f"{path}: MC samples have {mc.shape[2]} classes, probabilities {probs.shape[1]}")
    features = _finite(features, f"{path}: features")
    order = np.argsort(rows, kind="stable")
    return Predictions(rows[order], probs[order], mc[order] if mc is not None else None,
                       features[order] if features is not None else None)


def load_labeled(path: str, manifest_ids: list[str]) -> tuple[np.ndarray, list[str | None]]:
    """(manifest rows, labels or None per row) of the ids in a labeled-set file."""
    loc = locate(path)
    if not loc.exists():
        raise CurateError(f"labeled file {path} does not exist")
    check_user_file(loc, what="--labeled", max_bytes=CAP_ID_LIST)
    lower = loc.path.lower()
    labels: list | None = None
    if lower.endswith((".parquet", ".csv", ".tsv")):
        if lower.endswith(".parquet"):
            from curate.io.tables import read_table

            table = read_table(loc)
        else:
            import pyarrow.csv as pacsv

            with open_user_file(loc, what="--labeled", max_bytes=CAP_ID_LIST) as fh:
                table = pacsv.read_csv(fh, parse_options=pacsv.ParseOptions(delimiter="\t" if lower.endswith(".tsv")
                                                                            else ","),
                                       convert_options=pacsv.ConvertOptions(strings_can_be_null=True,
                                                                            column_types={"id": pa.string(),
                                                                                          "label": pa.string()}))
        if "id" not in table.column_names:
            raise CurateError(f"{path}: the labeled table needs an `id` column")
        ids = [str(i) for i in table.column("id").to_pylist()]
        if "label" in table.column_names:
            labels = [None if v is None else str(v) for v in table.column("label").to_pylist()]
    else:
        text = read_user_file(loc, what="--labeled", max_bytes=CAP_ID_LIST).decode("utf-8")
        ids = [line.strip() for line in text.splitlines() if line.strip()]
    rows = _rows_of(ids, {i: r for r, i in enumerate(manifest_ids)}, path)
    return rows, labels if labels is not None else [None] * len(rows)
