"""The labeling batch as a file a labeling tool imports: Label Studio JSON, CSV or Parquet.

Every format lists ``id``, ``source``, ``score``, ``rank`` (plus ``strategy``, ``round``,
``kind``, when the model made predictions ``prediction`` and ``confidence``, and for the
``similar`` strategy ``query`` and ``similarity``: which query mined the item, and its cosine).

Label Studio (its documented import format): a JSON list of tasks::

    {"data": {"image": "<uri>", "id": "<sample id>"},  # or {"text": "<the text>", ...}
     "meta": {"id", "score", "rank", "strategy", "round"[, "query", "similarity"]},
     "predictions": [{"model_version": "...", "score": 0.83,
                      "result": [{"from_name": "label", "to_name": "image", "type": "choices",
                                  "value": {"choices": ["cat"]}}]}]}   # only with predictions

The data key is ``data_key`` (default ``image`` for images, ``text`` for texts); the sample id
is also in ``data`` (``id``, or ``sample_id`` when the data key is ``id``) so that a Label
Studio export of the annotations carries it back. An image's
reference is its manifest ``source``; with ``document_root`` a local file becomes Label
Studio's local-storage URL ``/data/local-files/?d=<path relative to the root>``. Files are
written atomically. ``handoff.py`` writes the matching labeling config next to the file.
"""

from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass
from urllib.parse import quote

import pyarrow as pa

from curate.errors import CurateError
from curate.io import atomic
from curate.io.fs import Location, locate

FORMATS = ("labelstudio", "csv", "parquet")

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def choice_value(label: str) -> str:
    """A label as the config's choice (and the predictions naming it) carry it: characters XML 1.0
    cannot hold become U+FFFD; everything else is kept exactly."""
    return _NOT_XML.sub("\ufffd", str(label))


@dataclass(frozen=True)
class ExportOptions:
    format: str = "labelstudio"
    data_key: str | None = None  # None: image / text by kind
    document_root: str | None = None  # local-files root of the Label Studio server
    model_version: str = "curate"
    from_name: str = "label"  # the Choices control's name in the labeling config (handoff.py)


SUFFIXES = {".json": "labelstudio", ".csv": "csv", ".parquet": "parquet"}


def guess_format(out: str, fmt: str | None) -> str:
    """The explicit format, else the one the suffix of ``out`` names (.json -> labelstudio, .csv,
    .parquet); any other suffix is a one-line error (Label Studio JSON in ``picks.txt`` would fool
    whoever opens it)."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise CurateError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")
        return fmt
    suffix = os.path.splitext(out.rstrip("/").rsplit("/", 1)[-1])[1].lower()
    if suffix not in SUFFIXES:
        what = repr(suffix) if suffix else "(none)"
        raise CurateError(f"--out {out}: unknown export suffix {what}; use .json (Label Studio), .csv or .parquet, "
                          "or name the format with --format")
    return SUFFIXES[suffix]


def reference(source: str, document_root: str | None) -> str:
    """What Label Studio should load for an image: the URI, or a local-files URL under the root."""
    if document_root is None or "://" in source or "#" in source:
        return source
    root = os.path.abspath(document_root)
    path = os.path.abspath(source)
    if os.path.commonpath([root, path]) != root:
        raise CurateError(f"{source} is not under --document-root {document_root}")
    return "/data/local-files/?d=" + quote(os.path.relpath(path, root).replace(os.sep, "/"), safe="/")


def data_key(kind: str, options: ExportOptions) -> str:
    """The task data key of an item of ``kind``: ``options.data_key``, else ``text`` / ``image``."""
    return options.data_key or ("text" if kind == "text" else "image")


def labelstudio_tasks(batch: pa.Table, options: ExportOptions = ExportOptions()) -> list[dict]:
    """Label Studio tasks, one per row of ``batch`` (see the module docstring), in rank order."""
    tasks = []
    has_pred = "prediction" in batch.column_names
    meta_keys = ("id", "score", "rank", "strategy", "round") + tuple(
        k for k in ("query", "similarity") if k in batch.column_names)
    for row in batch.to_pylist():
        key = data_key(row["kind"], options)
        value = row.get("text") if row["kind"] == "text" else reference(row["source"], options.document_root)
        data = {key: value if value is not None else row["source"]}
        data["sample_id" if key == "id" else "id"] = row["id"]
        task = {"data": data,
                "meta": {k: row[k] for k in meta_keys}}
        if has_pred and row["prediction"] is not None:
            task["predictions"] = [{
                "model_version": options.model_version,
                "score": row["confidence"],
                "result": [{"from_name": options.from_name, "to_name": key, "type": "choices",
                            "value": {"choices": [choice_value(row["prediction"])]}}],
            }]
        tasks.append(task)
    return tasks


def write_export(batch: pa.Table, out: str, options: ExportOptions = ExportOptions()) -> Location:
    """Write ``batch`` to ``out`` in ``options.format``, atomically."""
    dest = locate(out)
    fmt = options.format
    columns = [c for c in batch.column_names if c != "text"] if fmt != "labelstudio" else None
    if fmt == "labelstudio":
        data = json.dumps(labelstudio_tasks(batch, options), indent=1, allow_nan=False, default=float)
        atomic.write_bytes(dest, (data + "\n").encode())
    elif fmt == "csv":
        import pyarrow.csv as pacsv

        buf = io.BytesIO()
        pacsv.write_csv(batch.select(columns), buf)
        atomic.write_bytes(dest, buf.getvalue())
    elif fmt == "parquet":
        atomic.write_parquet(dest, batch.select(columns))
    else:
        raise CurateError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")
    return dest
