"""WebDataset ``.tar`` shards: consecutive members sharing a key form one sample.

The sample id is the WebDataset ``__key__`` (member path up to the first dot of its file
name). Members are read from the stream, never extracted, and unsafe members (absolute
paths, ``..``, links, devices) quarantine their sample. A shard that breaks mid-stream
keeps the samples read so far and gets one quarantined row for its unreadable rest.

A sample holds at most one plain image member (``k.jpg``: the payload) and one plain text
member (``k.txt``: the caption, or the payload when there is no image). A further one of
the same key (``k.png`` after ``k.jpg``, ``k.caption`` after ``k.txt``) gets a row of its
own, id = the member name, quarantined as ``invalid-record`` (which one is meant is
ambiguous); nothing is dropped. Members with a longer extension (``k.seg.png``) and
metadata (``cls``, ``json``) are fields of the sample. A label (``cls``) or caption member that
is not UTF-8 quarantines its sample as ``undecodable-text``, as JSONL does such a line: its bytes
never become U+FFFD characters.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from curate.io.fs import Location
from curate.probe import Rejected
from curate.probe.text import decode_text
from curate.readers.base import (
    ReadOptions,
    Row,
    ShardReader,
    Unit,
    as_label,
    image_row,
    normalise_split,
    not_scalar,
    rejected_row,
    shard_units,
    text_row,
    thread_map,
)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")
TEXT_EXTS = ("txt", "text", "caption")
LABEL_EXTS = ("cls", "cls.txt", "label", "class")


@dataclass
class _Sample:
    key: str
    members: dict[str, bytes] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)
    problem: str | None = None
    extras: list[_Sample] = field(default_factory=list)  # members that get rows of their own
    kind: str = "image"
    span: tuple[int, int] | None = None  # (offset, length) of an extra member


class WebDatasetReader(ShardReader):
    name = "webdataset"
    payload_kind = "image"
    version = 5

    def plan(self, loc: Location, opts: ReadOptions, name: str | None = None,
             skip: Sequence[Location] = ()) -> list[Unit]:
        return shard_units(self.name, loc, (".tar",), name, skip)

    def read_shard(self, shard: Location, unit: Unit, opts: ReadOptions) -> Iterator[Row]:
        yield from thread_map(lambda s: self._row(s, shard, opts), self._samples(shard),
                              opts.workers, 64)

    def _samples(self, shard: Location) -> Iterator[_Sample]:
        current: _Sample | None = None
        count = 0
        try:
            with shard.fs.open(shard.path, "rb") as fh, \
                    tarfile.open(fileobj=fh, mode="r|*", tarinfo=_StrictTarInfo) as tar:
                for member in tar:
                    if member.isdir():
                        continue
                    key, ext = split_key(member.name)
                    keyless = not key.rpartition("/")[2]  # ".hidden", "dir/.png": no sample key
                    if keyless:
                        key = member.name
                    if current is None or key != current.key:
                        if current is not None:
                            yield from _with_extras(current)
                            count += 1
                        current = _Sample(key)
                    problem = member_problem(member) or (keyless and (
                        f"invalid-record: tar member {member.name!r} has no sample key (its name starts with a dot)"))
                    if problem:
                        current.problem = current.problem or problem
                        continue
                    if ext in current.members:  # a second x.jpg would silently replace the first
                        current.problem = current.problem or (
                            f"invalid-record: tar member {member.name!r} appears twice in sample {key!r}")
                        continue
                    rival = _rival_payload(current, ext)
                    if rival is not None:  # k.png after k.jpg: its own row, never dropped
                        current.extras.append(_Sample(
                            key=member.name, kind="text" if ext in TEXT_EXTS else "image",
                            span=(member.offset_data, member.size), problem=(
                                f"invalid-record: tar member {member.name!r} is a second payload of "
                                f"sample {key!r}, which already has {current.names[rival]!r}")))
                        continue
                    current.members[ext] = tar.extractfile(member).read()
                    current.names[ext] = member.name
                    current.offsets[ext] = member.offset_data
        except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
            if current is not None:
                current.problem = current.problem or (
                    f"corrupt-shard: sample may be incomplete, tar stream breaks in or after it "
                    f"({exc})")
                yield from _with_extras(current)
                count += 1
                current = None
            yield _Sample(key=f"{shard.name}#unreadable-rest", problem=(
                f"corrupt-shard: tar stream unreadable after {count} samples ({exc})"))
        if current is not None:
            yield from _with_extras(current)

    def _row(self, sample: _Sample, shard: Location, opts: ReadOptions) -> Row:
        row: Row = dict(id=sample.key, source=f"{shard.uri}#{sample.key}", source_kind=self.name,
                        kind=sample.kind)
        if sample.span is not None:
            row.update(offset=sample.span[0], length=sample.span[1])
        meta = _json_meta(sample.members.get("json"))
        label, bad_label = _member_text(sample, LABEL_EXTS)
        sample.problem = sample.problem or bad_label
        meta_label, meta_split = meta.get(opts.fields.label), meta.get(opts.fields.split)
        for role, value in (("label", meta_label), ("split", meta_split)):
            kind = not_scalar(value)
            if kind is not None and not sample.problem:
                sample.problem = (f"invalid-record: the json member's {role} is a {kind}, "
                                  "expected a string or a number")
        row["label"] = as_label(label or (meta_label if not_scalar(meta_label) is None else None))
        row["split"] = normalise_split(meta_split if not_scalar(meta_split) is None else None)
        if sample.problem:
            return rejected_row(sample.problem, **row)
        image_ext = _payload_ext(sample.members, IMAGE_EXTS)
        if image_ext is not None:
            caption, bad_caption = _member_text(sample, TEXT_EXTS)
            if bad_caption:
                return rejected_row(bad_caption, **row)
            row.update(source=f"{shard.uri}#{sample.names[image_ext]}",
                       offset=sample.offsets[image_ext], length=len(sample.members[image_ext]))
            return image_row(sample.members[image_ext], opts.image, text=caption, **row)
        text_ext = _payload_ext(sample.members, TEXT_EXTS)
        if text_ext is not None:
            row["source"] = f"{shard.uri}#{sample.names[text_ext]}"
            try:
                text = decode_text(sample.members[text_ext], opts.text)
            except Rejected as rej:
                return rejected_row(rej.reason, **{**row, "kind": "text"})
            return text_row(text, opts.text, **row)
        exts = ", ".join(sorted(sample.members)) or "none"
        return rejected_row(f"no-payload: no image or text member (members: {exts})", **row)


class _StrictTarInfo(tarfile.TarInfo):
    """Makes a cut, missing or garbled header an error. ``tarfile`` treats one as the end of
    the archive and drops the rest of the shard silently; only a zero block may end it."""

    @classmethod
    def fromtarfile(cls, tar: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tar)
        except (tarfile.EmptyHeaderError, tarfile.TruncatedHeaderError,
                tarfile.InvalidHeaderError) as exc:
            raise tarfile.ReadError(f"no valid tar header at byte {tar.offset}: {exc}") from None


def split_key(name: str) -> tuple[str, str]:
    """``dir/sample.seg.png`` -> (``dir/sample``, ``seg.png``)."""
    folder, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), ext.lower()


def member_problem(member: tarfile.TarInfo) -> str | None:
    name = member.name
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return f"unsafe-path: tar member {name!r} has an absolute path"
    if ".." in name.replace("\\", "/").split("/"):
        return f"unsafe-path: tar member {name!r} leaves the archive root ('..')"
    if member.issym() or member.islnk():
        return f"unsafe-path: tar member {name!r} is a link to {member.linkname!r}"
    if not member.isfile():
        return f"unsafe-path: tar member {name!r} is not a regular file"
    return None


def _with_extras(sample: _Sample) -> Iterator[_Sample]:
    yield sample
    yield from sample.extras


def _rival_payload(sample: _Sample, ext: str) -> str | None:
    """The member extension already holding the payload that a member with ``ext`` would
    compete with: another plain image (``png`` vs ``jpg``), or another plain text when the
    sample has no image (``text`` vs ``txt``); None when ``ext`` is no rival."""
    if ext in IMAGE_EXTS:
        return next((e for e in IMAGE_EXTS if e in sample.members), None)
    if ext in TEXT_EXTS:
        return next((e for e in TEXT_EXTS if e in sample.members), None)
    return None


def _payload_ext(members: dict[str, bytes], exts: tuple[str, ...]) -> str | None:
    """The member extension holding the payload: an exact match in preference order, else
    one whose last part matches (``seg.png``)."""
    exact = next((e for e in exts if e in members), None)
    if exact is not None:
        return exact
    return next((e for e in sorted(members) if e.rsplit(".", 1)[-1] in exts), None)


def _member_text(sample: _Sample, exts: tuple[str, ...]) -> tuple[str | None, str | None]:
    """(text, problem) of the sample's first member among ``exts`` (a label, a caption): its text
    stripped, or None and the ``undecodable-text`` reason JSONL gives a line that is not UTF-8
    (bytes are never replaced by U+FFFD)."""
    ext = next((e for e in exts if e in sample.members), None)
    if ext is None:
        return None, None
    try:
        return sample.members[ext].decode("utf-8-sig").strip(), None
    except UnicodeDecodeError as exc:
        return None, (f"undecodable-text: tar member {sample.names[ext]!r} is not valid UTF-8 at byte "
                      f"{exc.start}")


def _json_meta(raw: bytes | None) -> dict:
    if not raw:
        return {}
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError):
        return {}
    return meta if isinstance(meta, dict) else {}
