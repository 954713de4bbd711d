"""Parquet files: one row per sample, payload in an image column (bytes, a Hugging Face
``{bytes, path}`` struct, or a path relative to the file) or in a text column. A path is read
only if it names a regular file of at most ``CAP_PAYLOAD`` bytes (a FIFO, a device such as
``/dev/zero`` or a folder is an ``unsafe-path`` row, a larger file ``file-too-large``).

Optional columns: id, label, split, and an embedding column whose vectors are checked
(present, finite, one dimension per file) so ``precomputed:`` embeddings can trust them.
A text column must hold strings, and id, label and split columns strings or numbers: any
other type (a list, a struct, bytes) is a one-line error when planning, never a false
reason per row and never a value silently turned into a string.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import CurateError
from curate.io.fs import CAP_PAYLOAD, Location, UserFileError, locate, read_user_file
from curate.io.tables import open_parquet
from curate.readers.base import (
    ReadOptions,
    Row,
    ShardReader,
    Unit,
    as_label,
    id_prefix,
    image_row,
    normalise_split,
    rejected_row,
    shard_units,
    text_row,
    thread_map,
)

BATCH_ROWS = 1024


class ParquetReader(ShardReader):
    name = "parquet"
    version = 4

    def plan(self, loc: Location, opts: ReadOptions, name: str | None = None,
             skip: Sequence[Location] = ()) -> list[Unit]:
        units = shard_units(self.name, loc, (".parquet", ".pq"), name, skip)
        for unit in units:
            if len(unit.items) > 1:  # not a regular file: never opened
                continue
            shard = locate(unit.uri)
            try:
                schema = open_parquet(shard).schema_arrow
            except (OSError, pa.ArrowException):
                continue  # unreadable files are quarantined when read
            payload_role(schema, opts, unit.uri)
        return units

    def read_shard(self, shard: Location, unit: Unit, opts: ReadOptions) -> Iterator[Row]:
        fields = opts.fields
        position = 0
        prefix = id_prefix(unit)
        try:
            with open_parquet(shard) as pf:
                role = payload_role(pf.schema_arrow, opts, unit.uri)
                payload = fields.image if role.startswith("image") else fields.text
                wanted = [payload, fields.id, fields.label, fields.split]
                columns = [c for c in dict.fromkeys(wanted) if c and c in pf.schema_arrow.names]
                if fields.embedding:
                    columns.append(fields.embedding)
                dim: list[int] = []
                workers = opts.workers if role.startswith("image") else 1  # text is GIL-bound
                for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=columns):
                    problems = [None] * batch.num_rows
                    if fields.embedding:  # checked in one vectorised pass, never turned into Python floats
                        problems = embedding_problems(batch.column(fields.embedding), dim)
                        batch = batch.drop_columns([fields.embedding])
                    args = [(position + i, r, problems[i]) for i, r in enumerate(batch.to_pylist())]
                    position += len(args)
                    yield from thread_map(lambda a: self._row(*a, role, shard, prefix, opts), args,
                                          workers, BATCH_ROWS)
        except (OSError, pa.ArrowException, CurateError) as exc:
            yield rejected_row(f"corrupt-shard: Parquet file unreadable after {position} rows "
                               f"({exc})", id=f"{id_prefix(unit)}#unreadable-rest", source=unit.uri,
                               source_kind=self.name, kind="text")

    def _row(self, index: int, rec: dict, problem: str | None, role: str, shard: Location, prefix: str,
             opts: ReadOptions) -> Row:
        f = opts.fields
        rid = rec.get(f.id)
        row: Row = dict(id=str(rid) if rid not in (None, "") else f"{prefix}:{index}",
                        source=f"{shard.uri}#row={index}", source_kind=self.name,
                        label=as_label(rec.get(f.label)), split=normalise_split(rec.get(f.split)),
                        kind="text" if role == "text" else "image")
        if problem:
            return rejected_row(problem, **row)
        value = rec.get(f.image if row["kind"] == "image" else f.text)
        if role == "text":
            if not isinstance(value, str):
                return rejected_row(f"missing-field: {f.text!r} is empty", **row)
            return text_row(value, opts.text, **row)
        if role == "image-struct" and isinstance(value, dict):
            value = value.get("bytes") or value.get("path")
        if isinstance(value, str) and "\x00" in value:
            return rejected_row(f"unsafe-path: path {value!r} holds a NUL character", **row)
        if isinstance(value, str):
            path = value if "://" in value or value.startswith("/") else posixpath.join(
                posixpath.dirname(shard.path), value)
            if path is not value and not _inside(path, posixpath.dirname(shard.path), shard.is_local):
                return rejected_row(f"unsafe-path: relative path {value!r} leaves the folder of the "
                                    "Parquet file", **row)
            try:  # one bad path (unknown protocol, missing file, a FIFO, /dev/zero) must not end the file
                target = locate(path) if "://" in value else Location(shard.fs, path)
                row["source"] = target.uri
                value = read_user_file(target, what="image path", max_bytes=CAP_PAYLOAD)
            except UserFileError as exc:
                return rejected_row(exc.reason, **row)
            except (OSError, CurateError) as exc:
                return rejected_row(f"read-error: {exc}", **row)
        if not isinstance(value, bytes):
            return rejected_row(f"missing-field: {f.image!r} is empty", **row)
        return image_row(value, opts.image, **row)


def _inside(path: str, folder: str, local: bool) -> bool:
    """A relative path column may name files under the Parquet file's folder, nothing else
    (absolute paths and URLs are explicit and allowed); local symlinks are resolved."""
    if local:
        path, folder = os.path.realpath(path), os.path.realpath(folder)
    folder = posixpath.normpath(folder)
    return posixpath.normpath(path).startswith(folder.rstrip("/") + "/")


def payload_role(schema: pa.Schema, opts: ReadOptions, uri: str) -> str:
    """``image-bytes``, ``image-struct``, ``image-path`` or ``text``; misuse is an error."""
    f = opts.fields
    if f.embedding:
        _check_embedding_column(schema, f.embedding, uri)
    for role, name in (("id", f.id), ("label", f.label), ("split", f.split)):
        if name in schema.names and not _scalar_type(schema.field(name).type):
            raise CurateError(f"{uri}: {role} column {name!r} has type {schema.field(name).type}; "
                              f"expected a string or a number (pick another column with --{role}-field, "
                              f"or none with --{role}-field '')")
    if f.image in schema.names:
        t = schema.field(f.image).type
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            return "image-bytes"
        if pa.types.is_struct(t) and t.get_field_index("bytes") >= 0:
            return "image-struct"
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return "image-path"
        raise CurateError(f"{uri}: image column {f.image!r} has type {t}; expected bytes, "
                          "a {bytes, path} struct or a path string")
    if f.text in schema.names:
        t = schema.field(f.text).type
        if not (_string_type(t) or pa.types.is_null(t)):
            raise CurateError(f"{uri}: text column {f.text!r} has type {t}; expected a string "
                              "(use --text-field to pick another column)")
        return "text"
    if f.embedding:
        raise CurateError(f"{uri}: an embedding column needs a payload column too "
                          f"(image {f.image!r} or text {f.text!r})")
    raise CurateError(f"{uri}: no image column {f.image!r} and no text column {f.text!r} "
                      f"(columns: {', '.join(schema.names)}); use --image-field or --text-field")


def _string_type(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or (
        hasattr(pa.types, "is_string_view") and pa.types.is_string_view(t))


def _scalar_type(t: pa.DataType) -> bool:
    """Types whose values read as one string or number (ids, labels, splits)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    return (_string_type(t) or pa.types.is_integer(t) or pa.types.is_floating(t)
            or pa.types.is_boolean(t) or pa.types.is_null(t) or pa.types.is_decimal(t))


def _check_embedding_column(schema: pa.Schema, name: str, uri: str) -> None:
    """The embedding column must exist and hold lists of numbers (else every row fails)."""
    if name not in schema.names:
        raise CurateError(f"{uri}: no embedding column {name!r} "
                          f"(columns: {', '.join(schema.names)}); use --embedding-field")
    t = schema.field(name).type
    if not (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) \
            or not (pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type)):
        raise CurateError(f"{uri}: embedding column {name!r} has type {t}; "
                          "expected a list of numbers")


def list_layout(column: pa.Array) -> tuple[Any, Any]:
    """``(lengths, values)`` of a list column as numpy: each row's length (0 for a null list) and
    the values of the non-null lists in row order (a null value as NaN). Handles slices and
    fixed-size lists."""
    import numpy as np

    if pa.types.is_fixed_size_list(column.type):
        lengths = np.full(len(column), column.type.list_size, dtype=np.int64)
    else:
        lengths = np.diff(column.offsets.to_numpy()).astype(np.int64)
    if column.null_count:
        lengths[column.is_null().to_numpy(zero_copy_only=False)] = 0
    values = pc.list_flatten(column)
    numbers = (values.to_numpy(zero_copy_only=False) if values.null_count == 0
               else pc.fill_null(values.cast(pa.float64()), float("nan")).to_numpy(zero_copy_only=False))
    return lengths, numbers


def embedding_problems(column: pa.Array, dim: list[int]) -> list[str | None]:
    """The reason to quarantine each vector of a list column, or None; one vectorised pass.

    ``dim`` holds the file's dimension: empty until the first usable vector sets it (so it
    is the dimension of the file's first usable vector, in row order)."""
    import numpy as np

    n = len(column)
    lengths, numbers = list_layout(column)
    present = lengths > 0
    width = lengths[present]
    bad_value, nonzero = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    if len(width) and (width == width[0]).all():  # the usual case: one length, a reshape
        block = numbers.reshape(-1, int(width[0]))
        bad_value[present] = ~np.isfinite(block).all(axis=1)
        nonzero[present] = (block != 0).any(axis=1)
    elif len(width):
        parents = np.repeat(np.arange(n), lengths)
        bad_value = np.bincount(parents, weights=~np.isfinite(numbers), minlength=n) > 0
        nonzero = np.bincount(parents, weights=numbers != 0, minlength=n) > 0
    missing = lengths == 0
    usable = ~missing & ~bad_value & nonzero
    if not dim and usable.any():
        dim.append(int(lengths[np.argmax(usable)]))
    ragged = usable & (lengths != dim[0]) if dim else np.zeros(n, dtype=bool)
    problems: list[str | None] = [None] * n
    for i in np.flatnonzero(~usable | ragged):
        problems[i] = ("invalid-embedding: missing" if missing[i]
                       else "invalid-embedding: contains NaN, Inf or null" if bad_value[i]
                       else "invalid-embedding: all zeros (a zero vector has no direction)" if not nonzero[i]
                       else f"invalid-embedding: dimension {lengths[i]}, expected {dim[0]}")
    return problems
