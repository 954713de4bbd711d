"""The labeling hand-off: a Label Studio labeling config and a short brief next to the export.

``labeling-config.xml`` is a Label Studio config whose object tag is named after the export's
data key (``<Image name="image" value="$image"/>`` or ``<Text name="text" value="$text"/>``,
so predictions' ``to_name`` resolves) and whose single-choice ``Choices`` (named like the
predictions' ``from_name``) are the dataset's label names (manifest labels, the --labeled
file's labels, and every class the predictions have, predicted in this batch or not), XML-escaped.
``LABELING.md`` is made from the data: the label set with counts of already-labeled items (those
in the --labeled file; without one, the items with a manifest label unless every candidate has one)
and example ids, and the batch's strategy, score summary, whether it is the hybrid's TypiClust
warm-up (and why), and (for ``similar``) per-query counts. A labeling
team starts from the one folder. A select run never overwrites an export, config or brief that
another select run wrote, nor a file no select run wrote (``check_owners``), unless ``--force``.

:func:`hand_off` is the whole hand-off of one select run: the batch table (one row per pick in rank
order), its export for the labeling tool and, for Label Studio, the two files above. Every file it
is about to write is checked for its owner and claimed (``state/select/claim-<run-id>.json``)
before any is written, so a run killed halfway still owns what it began to write.
"""

from __future__ import annotations

import posixpath
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pyarrow as pa

from curate.errors import CurateError
from curate.io import atomic
from curate.io.fs import Location, locate
from curate.select import STAGE
from curate.select.exports import ExportOptions, choice_value, data_key, guess_format, write_export

if TYPE_CHECKING:
    from curate.select.pool import Candidates
    from curate.select.round import Picks
    from curate.workspace import Workspace

CONFIG_NAME = "labeling-config.xml"
NOTES_NAME = "LABELING.md"


@dataclass(frozen=True)
class LabelSet:
    """The label names in a stable order, with item counts and a few example ids each."""

    names: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)


def label_set(ids: list[str], labels: list[str | None], extra: list[str] = (), examples: int = 3) -> LabelSet:
    """Counts and the first ``examples`` ids (in order) of every label; ``extra`` names (e.g. predicted
    classes) are added with count 0 when missing. Names sorted like the export's class indices."""
    counts = Counter(lab for lab in labels if lab is not None)
    first: dict[str, list[str]] = {}
    for i, lab in zip(ids, labels):
        if lab is not None and len(first.setdefault(lab, [])) < examples:
            first[lab].append(i)
    names = sorted(set(counts) | set(extra))
    return LabelSet(names, {n: counts.get(n, 0) for n in names}, {n: first.get(n, []) for n in names})


# characters XML 1.0 cannot hold, not even as character references (C0 controls but tab/LF/CR, lone
# surrogates, U+FFFE/U+FFFF)
# Markdown syntax (links, emphasis, code, tables, autolinks): every ASCII punctuation character but
# ``&<>``, which become entities
_MARKDOWN = re.compile(r"([!\"#$%'()*+,\-./:;=?@\[\\\]^_`{|}~])")


def _choice(label: str) -> str:
    """One ``<Choice>``. Label Studio replaces ``$name`` in a choice's ``value`` with the task's data
    field ``name`` (its ``parseValue``): a label with ``$`` is shown with a fullwidth ＄ instead, and
    ``alias`` (what annotations and predictions use, never substituted) keeps the exact label."""
    exact = choice_value(label)
    if "$" not in exact:
        return f"    <Choice value={quoteattr(exact)}/>"
    shown = exact.replace("$", "\uff04")
    return f"    <Choice value={quoteattr(shown)} alias={quoteattr(exact)}/>"


def labeling_config(names: list[str], data_key: str, kind: str, from_name: str = "label") -> str:
    """A Label Studio labeling config (XML) for one image or text per task and one choice."""
    obj = "Text" if kind == "text" else "Image"
    key, control = choice_value(data_key), choice_value(from_name)
    lines = ["<View>", f"  <{obj} name={quoteattr(key)} value={quoteattr('$' + key)}/>"]
    choices = list(dict.fromkeys(choice_value(n) for n in names))
    if choices:
        lines.append(f"  <Choices name={quoteattr(control)} toName={quoteattr(key)} choice=\"single\" "
                     "showInLine=\"true\">")
        lines += [_choice(n) for n in choices]
        lines.append("  </Choices>")
    else:  # no label names known: free-text labels
        lines.append(f"  <TextArea name={quoteattr(control)} toName={quoteattr(key)} maxSubmissions=\"1\"/>")
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def _cell(value: object) -> str:
    """Text for a Markdown table cell, shown as it is and never markup: no link, image, emphasis,
    code, HTML or autolink (punctuation backslash-escaped, ``&<>`` as entities), on one line."""
    text = " ".join(str(value).splitlines())
    return escape(_MARKDOWN.sub(r"\\\1", text))


def _code(value: object) -> str:
    """``value`` as a Markdown code span (shown literally) that no backtick in it can close early,
    safe in a table cell (``|`` escaped, one line)."""
    text = " ".join(str(value).splitlines()).replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _stats(values: np.ndarray) -> str:
    values = values[np.isfinite(values)]
    if not len(values):
        return "none (this strategy has no score)"
    return f"min {values.min():.4f}, median {np.median(values):.4f}, max {values.max():.4f}"


LABELED_FROM = {"file": "listed in the `--labeled` file", "manifest": "with a label in the manifest",
                "given": "none: every candidate has a manifest label, taken as the dataset's own labels",
                "none": "none yet"}


def labeling_notes(batch: pa.Table, labels: LabelSet, export_name: str, data_key: str, kind: str,
                   run_id: str | None = None, warmup: str | None = None, labeled_from: str = "file") -> str:
    """The LABELING.md brief for ``batch`` (the export table, one row per pick in rank order); ``warmup``:
    why the hybrid's batch is TypiClust's warm-up; ``labeled_from``: a key of :data:`LABELED_FROM`."""
    strategy = batch.column("strategy")[0].as_py() if batch.num_rows else "?"
    round_ = batch.column("round")[0].as_py() if batch.num_rows else "?"
    scores = np.array([np.nan if s is None else s for s in batch.column("score").to_pylist()], dtype=np.float64)
    out = [f"# Labeling batch {_code(export_name)}", "",
           f"- **{batch.num_rows:,} items**, {kind}s, strategy {_code(strategy)}, round {_cell(round_)}",
           f"- score: {_stats(scores)}"]
    if run_id is not None:
        out.append(f"- select run {_code(run_id)}")
    if warmup is not None:
        out.append(f"- TypiClust warm-up: {warmup}. The batch starts with the pool's most typical items, one per "
                   "uncovered cluster, not a model's most uncertain ones (score: the typicality, or the "
                   "uncertainty when there are predictions)")
    if "prediction" in batch.column_names:
        with_pred = sum(p is not None for p in batch.column("prediction").to_pylist())
        out.append(f"- {with_pred:,} tasks carry a model prediction (pre-selected choice, with its confidence)")
    out += ["", "## Start", "",
            f"1. Create a Label Studio project; paste `{CONFIG_NAME}` into Settings > Labeling Interface > Code "
            f"(or `POST /api/projects` with `label_config`).",
            f"2. Import {_code(export_name)} (Data Manager > Import, or `POST /api/projects/<id>/import`).",
            f"3. Each task shows one {kind} ({_code('data.' + data_key)}); pick exactly one label."]
    if kind == "image":
        out.append("   Local image paths load when Label Studio serves them: export with `--document-root DIR`, start "
                   "Label Studio with `LOCAL_FILES_SERVING_ENABLED=true LOCAL_FILES_DOCUMENT_ROOT=DIR`, and add a "
                   "Local Files storage with a sub-folder of DIR holding the images to the project "
                   "(Settings > Cloud Storage; don't sync it).")
    if "query" in batch.column_names:
        queries = batch.column("query").to_pylist()
        sims = np.asarray(batch.column("similarity").to_numpy(zero_copy_only=False), dtype=np.float64)
        per: dict[str, list[float]] = {}
        for q, s in zip(queries, sims):
            per.setdefault(q, []).append(s)
        out += ["", "## Queries", "",
                f"Items mined as nearest neighbours of {len(per):,} queries; similarity is the cosine to the query "
                f"({_stats(sims)}).", "",
                "| query | picks | mean similarity | max similarity |", "| --- | ---: | ---: | ---: |"]
        out += [f"| {_cell(q)} | {len(v)} | {np.mean(v):.4f} | {np.max(v):.4f} |"
                for q, v in sorted(per.items(), key=lambda kv: (-len(kv[1]), str(kv[0])))]
    out += ["", "## Label set", ""]
    if labels.names:
        out += [f"{len(labels.names)} labels (the choices of `{CONFIG_NAME}`); counts are items already labeled "
                f"({LABELED_FROM.get(labeled_from, labeled_from)}) with the label.", "",
                "| label | items | example ids |", "| --- | ---: | --- |"]
        out += [f"| {_cell(choice_value(n))} | {labels.counts.get(n, 0):,} | "
                f"{', '.join(_code(i) for i in labels.examples.get(n, [])) or '-'} |"
                for n in labels.names]
    else:
        out.append(f"The dataset has no label names yet: `{CONFIG_NAME}` asks for a free-text label.")
    return "\n".join(out) + "\n"


def handoff_paths(export: Location) -> tuple[Location, Location]:
    """Where ``labeling-config.xml`` and ``LABELING.md`` go: beside ``export``."""
    folder = posixpath.dirname(export.path)
    return (Location(export.fs, posixpath.join(folder, CONFIG_NAME)),
            Location(export.fs, posixpath.join(folder, NOTES_NAME)))


def check_owners(targets: list[Location], runs: list[dict], run_id: str, force: bool = False) -> None:
    """Refuse to overwrite an existing file that another select run wrote, or that no select run
    wrote (the user's own file): ``runs`` (select sidecars, oldest first) record each run's
    ``export`` and ``handoff`` files; the latest one naming a file owns it. The run ``run_id`` may
    rewrite its own files; ``force`` overwrites anything."""
    if force:
        return
    owner: dict[str, str] = {}
    for meta in runs:
        for uri in [meta.get("export")] + list(meta.get("handoff") or []):
            if uri:
                owner[uri] = meta.get("run_id")
    for loc in targets:
        other = owner.get(loc.uri)
        if other == run_id or not loc.exists():
            continue
        who = f"select run {other}" if other is not None else "no select run (an existing file)"
        raise CurateError(f"{loc.uri} was written by {who}; pick another --out folder, or --force to overwrite")


def write_handoff(batch: pa.Table, export: Location, labels: LabelSet, data_key: str, kind: str,
                  from_name: str = "label", run_id: str | None = None, warmup: str | None = None,
                  labeled_from: str = "file") -> tuple[Location, Location]:
    """Write ``labeling-config.xml`` and ``LABELING.md`` next to ``export`` (atomically)."""
    config, notes = handoff_paths(export)
    atomic.write_bytes(config, labeling_config(labels.names, data_key, kind, from_name).encode())
    text = labeling_notes(batch, labels, export.name, data_key, kind, run_id, warmup, labeled_from)
    atomic.write_bytes(notes, text.encode())
    return config, notes


def hand_off(ws: Workspace, run_id: str, config: Any, cand: Candidates, picks: Picks,
             earlier: list[dict]) -> dict[str, Any]:
    """Export the batch of run ``run_id`` to ``config.handoff.out`` (with the labeling files for Label
    Studio); returns the sidecar's ``export`` (URI) and ``handoff`` (URIs), None where nothing was written.
    ``earlier``: the sidecars of the earlier select runs (with the claims, they own the files)."""
    facts: dict[str, Any] = {"export": None, "handoff": None}
    options = config.handoff
    if not options.out:
        return facts
    export = ExportOptions(format=guess_format(options.out, options.format), data_key=options.data_key,
                           document_root=options.document_root)
    probs = cand.pool.probs[picks.pool_rows] if cand.pool.probs is not None else None
    batch = batch_table(cand.manifest, picks.rows, picks.scores, config.strategy, picks.round, probs,
                        cand.class_names, picks.query)
    dest = locate(options.out)
    targets = [dest] + (list(handoff_paths(dest)) if export.format == "labelstudio" else [])
    check_owners(targets, earlier + claims(ws), run_id, force=options.force)  # before writing anything
    claim(ws, run_id, targets)  # a run killed after this point still owns what it began to write
    written = write_export(batch, options.out, export)
    facts["export"] = written.uri
    if export.format == "labelstudio":
        files = labeling_files(batch, written, cand, export, run_id, picks.warmup)
        facts["handoff"] = [loc.uri for loc in files]
    return facts


def batch_table(manifest: pa.Table, picked: np.ndarray, scores: np.ndarray, strategy: str, round_: int,
                probs: np.ndarray | None, class_names: list[str], pick_query: list[str] | None = None) -> pa.Table:
    """The export table: one row per pick in rank order. ``probs``: of the strategy's picks, the last
    ``len(probs)`` (the reviewed keeps before them have no prediction)."""
    take = manifest.take(pa.array(picked, pa.int64()))
    columns = {
        "id": take.column("id"), "source": take.column("source"),
        "score": pa.array(scores, pa.float64(), mask=~np.isfinite(scores)),
        "rank": pa.array(np.arange(1, len(picked) + 1), pa.int64()),
        "strategy": pa.array([strategy] * len(picked), pa.string()),
        "round": pa.array([round_] * len(picked), pa.int64()),
        "kind": take.column("kind"), "text": take.column("text"),
    }
    if probs is not None:
        lead = len(picked) - len(probs)
        confidence = np.concatenate([np.full(lead, np.nan), np.max(probs, axis=1).astype(np.float64)])
        columns["prediction"] = pa.array([None] * lead + [class_names[c] for c in np.argmax(probs, axis=1)],
                                         pa.string())
        columns["confidence"] = pa.array(confidence, pa.float64(), mask=np.isnan(confidence))
    if pick_query is not None:
        columns["query"] = pa.array(pick_query, pa.string())
        columns["similarity"] = pa.array(scores, pa.float64())
    return pa.table(columns)


def labeling_files(batch: pa.Table, export: Location, cand: Candidates, options: ExportOptions,
                   run_id: str | None = None, warmup: str | None = None) -> tuple[Location, Location]:
    """labeling-config.xml + LABELING.md beside a Label Studio export. Choices: every known label name
    (manifest labels, --labeled file labels, every class of the predictions); counts and examples: only
    the already-labeled items (``cand.known``; the --labeled file's label, else the manifest's)."""
    manifest, ok, done = cand.manifest, cand.ok, cand.known
    labeled, file_labels = done.rows, done.labels
    kinds = batch.column("kind").to_pylist() or manifest.column("kind").filter(pa.array(ok)).to_pylist()[:1]
    kind = max(set(kinds), key=kinds.count) if kinds else "image"
    ids = manifest.column("id").to_pylist()
    manifest_labels = manifest.column("label").to_pylist()
    known = {lab for r, lab in enumerate(manifest_labels) if lab is not None and ok[r]}
    known |= set(file_labels.values()) | set(cand.class_names)
    rows = np.flatnonzero(labeled)
    labels = label_set([ids[r] for r in rows], [file_labels.get(int(r), manifest_labels[r]) for r in rows],
                       extra=sorted(known))
    return write_handoff(batch, export, labels, data_key(kind, options), kind, options.from_name, run_id,
                         warmup=warmup, labeled_from=done.source)


def claim(ws: Workspace, run_id: str, targets: list[Location]) -> None:
    """Record, before writing them, the hand-off files run ``run_id`` is about to write."""
    atomic.write_json(ws.state(STAGE).join(f"claim-{run_id}.json"),
                      {"run_id": run_id, "handoff": [t.uri for t in targets], "at": time.time()})


def claims(ws: Workspace) -> list[dict]:
    """Claims of select runs that began writing hand-off files (finished or killed), oldest first."""
    folder = ws.state(STAGE)
    if not folder.exists():
        return []
    names = sorted(p.rsplit("/", 1)[-1] for p in folder.fs.ls(folder.path, detail=False))
    found = [atomic.read_json(folder.join(n)) for n in names if n.startswith("claim-") and n.endswith(".json")]
    return sorted(found, key=lambda c: c.get("at", 0.0))
