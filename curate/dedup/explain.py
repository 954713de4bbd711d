"""Why two items did or did not match: every signal's score and bar, and the dedup run's decision.

:func:`explain_pair` measures one pair of manifest ids with the functions the ``fuzzy``/``near`` run
used (:mod:`curate.dedup.candidates`, :class:`curate.dedup.verify.Verifier`,
:func:`curate.dedup.image_verify.pair_bar`), under the settings of the workspace's latest dedup run
(the defaults of ``near`` when that run used another method), and reads what the run decided for
both ids from its decision table (and whether the pair is among its verified pairs). Signals:

- ``exact``: identical bytes (content hashes recorded at ingest);
- texts: ``minhash``, the character n-gram Jaccard against ``--jaccard`` (``SHORT_JACCARD`` for
  short texts) and whether the LSH bands propose the pair; ``edit`` (``near`` only), the normalised
  edit similarity against ``--edit-similarity``;
- images: ``phash``, the Hamming distance of the perceptual hashes against ``--hamming``;
  ``featureless`` when an image is featureless (:mod:`curate.dedup.featureless`): the mean colours'
  difference against ``COLOUR_TOLERANCE``; ``copy``, the aligned copy similarity against the pair's
  calibrated bar;
- ``semantic``: the cosine of the two embeddings, when a store holds both, against
  ``--candidate-threshold`` (``near``) or the run's ``--threshold`` (``semantic``, ``knn``);
- ``verified``: the verifier's verdict (what ``fuzzy``/``near`` decide a pair by).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rapidfuzz.distance import Levenshtein

from curate.decisions import DecisionRun, latest_run
from curate.dedup import candidates, featureless
from curate.dedup.candidates import AGREE_BITS, CANON_COSINE, WINDOW_HAMMING
from curate.dedup.image_verify import copy_similarity, pair_bar
from curate.dedup.minhash import jaccard_pairs, normalise
from curate.dedup.near import NearConfig
from curate.dedup.phash import hamming, popcount
from curate.dedup.pictures import Pictures
from curate.dedup.signatures import image_signatures
from curate.dedup.verify import EDIT_MIN_CHARS, SHORT_JACCARD, Verifier
from curate.errors import CurateError
from curate.io.tables import read_table
from curate.manifest import OK
from curate.runner import progress_bar
from curate.workspace import Workspace

HASH_SIGNALS = ("phash", "canonical", "window")  # candidate proposals in differing bits, not verified measures

__all__ = ["Explanation", "SignalScore", "explain_pair"]

COLUMNS = ["id", "status", "kind", "text", "content_hash", "bytes", "width", "height", "source", "source_kind",
           "offset", "length", "format"]  # what near reads of the manifest


@dataclass(frozen=True)
class SignalScore:
    """One signal's score against its bar: ``met`` is ``score >= bar`` (``<=`` for distances)."""

    signal: str
    score: float | None  # None: not measured (note says why)
    bar: float | None
    met: bool | None
    higher_is_closer: bool = True
    note: str = ""


@dataclass(frozen=True)
class Explanation:
    """A pair's signals and the run's decision for both ids (``decision``: id -> its table row)."""

    ids: tuple[str, str]
    kinds: tuple[str | None, str | None]
    run_id: str
    method: str
    signals: list[SignalScore]
    decision: dict[str, dict[str, Any]]
    same_group: bool
    verified_pair: dict[str, Any] | None  # the pair's row in the run's verified pairs, if there
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def explain_pair(ws: Workspace, id_a: str, id_b: str, run_id: str | None = None) -> Explanation:
    """Every signal of the pair (``id_a``, ``id_b``) and the latest (or ``run_id``) dedup run's decision.
    Unknown ids, the same id twice or no dedup run are one-line errors."""
    ws.require_manifest()
    manifest = ws.read_manifest(COLUMNS)
    rows = _rows(manifest.column("id"), (id_a, id_b))
    run = latest_run(ws, "dedup", run_id)
    if run is None:
        raise CurateError(f"{ws.root.uri} has no dedup run yet: run `curate dedup -w {ws.root.uri} --method near`")
    method = str(run.meta.get("method", "?"))
    config = _near_config(run)
    ra, rb = rows
    kinds = manifest.column("kind").to_pylist()
    status = manifest.column("status").to_pylist()
    texts = manifest.column("text").to_pylist()
    signals: list[SignalScore] = []
    hashes = manifest.column("content_hash").take(pa.array([ra, rb])).to_pylist()
    same_bytes = hashes[0] is not None and hashes[0] == hashes[1]
    signals.append(SignalScore("exact", 1.0 if same_bytes else 0.0, 1.0, same_bytes,
                               note="identical bytes" if same_bytes else "different bytes"))
    unusable = [i for i, r in zip((id_a, id_b), rows) if status[r] != OK]
    if unusable:
        note = f"quarantined at ingest: {', '.join(unusable)} (never a duplicate)"
        signals.append(SignalScore("verified", None, None, False, note=note))
    elif kinds[ra] != kinds[rb]:
        signals.append(SignalScore("verified", None, None, False, note=f"different kinds ({kinds[ra]}, {kinds[rb]})"))
    else:
        pictures = Pictures(manifest, bar=lambda **kw: progress_bar(False, **kw))
        verifier = Verifier(kinds, texts, pictures, config, edit=method != "fuzzy")
        if kinds[ra] == "text":
            signals += _text_signals(texts, ra, rb, config, edit=method != "fuzzy")
        elif kinds[ra] == "image":
            signals += _image_signals(pictures, ra, rb, config)
        signals += _semantic_signal(ws, run, method, config, rows, manifest.num_rows)
        score, passed = verifier.score(ra, rb)
        if same_bytes and "exact" in config.signals:
            score, passed = 1.0, True  # identical bytes always pass (curate.dedup.verify.verify)
        copy = next((s.score for s in signals if s.signal == "copy"), None)
        screened = not passed and copy is not None and abs(copy - score) > 1e-6
        signals.append(SignalScore("verified", float(score), None, bool(passed),
                                   note=_verdict_note(signals, bool(passed), screened, method)))
    decision = _decisions(run, (id_a, id_b))
    groups = [decision[i].get("group") for i in (id_a, id_b)]
    same_group = groups[0] is not None and groups[0] == groups[1]
    settings = {k: getattr(config, k) for k in ("jaccard", "edit_similarity", "image_similarity", "hamming",
                                                "candidate_threshold")}
    return Explanation((id_a, id_b), (kinds[ra], kinds[rb]), run.run_id, method, signals, decision, same_group,
                       _verified_pair(ws, run, id_a, id_b), settings)


def _verdict_note(signals: list[SignalScore], passed: bool, screened: bool, method: str) -> str:
    if method not in ("fuzzy", "near"):
        return f"near's verifier; this {method} run did not verify pairs"
    if screened:
        return "coarse alignment score: far below the bar, not searched finely"
    measured = [s for s in signals if s.signal not in ("exact", "semantic", *HASH_SIGNALS) and s.met is not None]
    if not passed and any(s.met for s in measured):
        return "a measure passes, but a guard of the verifier rejects the pair (e.g. a swap of words other texts write)"
    return ""


def _rows(ids: pa.ChunkedArray, wanted: tuple[str, str]) -> tuple[int, int]:
    if wanted[0] == wanted[1]:
        raise CurateError(f"give two different ids, not {wanted[0]!r} twice")
    found = pc.index_in(pa.array(list(wanted), ids.type), value_set=ids).to_pylist()
    missing = [w for w, r in zip(wanted, found) if r is None]
    if missing:
        raise CurateError(f"unknown id{'s' if len(missing) > 1 else ''} (not in the manifest): "
                          + ", ".join(repr(m) for m in missing))
    return int(found[0]), int(found[1])


def _near_config(run: DecisionRun) -> NearConfig:
    """The run's own settings when it was fuzzy/near, else near's defaults."""
    saved = run.meta.get("config", {})
    if run.meta.get("method") not in ("fuzzy", "near"):
        return NearConfig()
    names = {f.name for f in fields(NearConfig)}
    given = {k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items() if k in names}
    return NearConfig(**given)


def _text_signals(texts: list, ra: int, rb: int, config: NearConfig, edit: bool) -> list[SignalScore]:
    a, b = texts[ra] or "", texts[rb] or ""
    jac = float(jaccard_pairs(texts, np.array([[ra, rb]], dtype=np.int64), config.ngram)[0])
    short = min(len(normalise(a)), len(normalise(b))) < EDIT_MIN_CHARS
    bar = max(config.jaccard, SHORT_JACCARD) if short else config.jaccard
    proposed = len(candidates.minhash_candidates(texts, np.array([ra, rb], dtype=np.int64), config, workers=1)) > 0
    note = (f"{config.ngram}-gram Jaccard; LSH {config.bands}x{config.rows} "
            + ("proposes the pair" if proposed else "does not propose the pair")
            + (f"; short text (< {EDIT_MIN_CHARS} chars)" if short else ""))
    out = [SignalScore("minhash", jac, bar, jac >= bar - 1e-6, note=note)]
    if edit:
        if short:
            out.append(SignalScore("edit", None, config.edit_similarity, None, note="not used for short texts"))
        else:
            sim = float(Levenshtein.normalized_similarity(normalise(a), normalise(b)))
            out.append(SignalScore("edit", sim, config.edit_similarity, sim >= config.edit_similarity,
                                   note="normalised edit similarity"))
    return out


def _image_signals(pictures: Pictures, ra: int, rb: int, config: NearConfig) -> list[SignalScore]:
    both = np.array([ra, rb], dtype=np.int64)
    sig = image_signatures(pictures, both, workers=1)
    if not sig.have.all():
        bad = " and ".join(str(pictures.manifest.column("id")[int(r)]) for r, h in zip(both, sig.have) if not h)
        return [SignalScore("phash", None, config.hamming, None, higher_is_closer=False,
                            note=f"{bad} cannot be decoded (never a duplicate)")]
    (pa_, pb), (ma, mb) = sig.plain.tolist(), sig.mirror.tolist()
    plain = min(hamming(pa_, pb), hamming(pa_, mb), hamming(ma, pb))
    canonical = hamming(int(sig.canonical[0]), int(sig.canonical[1]))
    cosine = float(sig.coefficients[0] @ sig.coefficients[1])
    agrees = plain <= AGREE_BITS or cosine >= CANON_COSINE
    window = int(min(popcount(sig.windows[0, 0] ^ sig.windows[1]).min(),
                     popcount(sig.windows[1, 0] ^ sig.windows[0]).min()))
    bar = min(config.hamming, WINDOW_HAMMING)
    out = [SignalScore("phash", float(plain), float(config.hamming), plain <= config.hamming, higher_is_closer=False,
                       note="bits of the 64-bit DCT hashes of the border-trimmed images (one maybe mirrored) "
                            "that differ"),
           SignalScore("canonical", float(canonical), float(config.hamming), canonical <= config.hamming and agrees,
                       higher_is_closer=False,
                       note=f"bits of the rotation- and mirror-tolerant hash; counts only with the DCT hashes within "
                            f"{AGREE_BITS} bits or coefficient cosine >= {CANON_COSINE} (here {cosine:.3f})"),
           SignalScore("window", float(window), float(bar), window <= bar, higher_is_closer=False,
                       note="bits between one trimmed image's hash and the other's or one of its windows' "
                            "(crops, letterboxes)")]
    ua, ub = pictures.uniformity(ra), pictures.uniformity(rb)
    flat = featureless.featureless_pair(ua, ub)
    if flat is not None:
        difference = float(np.max(np.abs(np.subtract(ua.colour, ub.colour))))
        which = " and ".join(n for n, u in (("first", ua), ("second", ub)) if u.featureless)
        note = (f"{which} featureless (spread {ua.spread:.4f}, {ub.spread:.4f} < {featureless.FEATURELESS_SPREAD}): "
                "a copy only of its own colour")
        out.append(SignalScore("featureless", difference, featureless.COLOUR_TOLERANCE, flat[1],
                               higher_is_closer=False, note=note))
        return out
    va, vb = pictures.view(ra), pictures.view(rb)
    bar = pair_bar(pictures.floor(ra), pictures.floor(rb), config.image_similarity)
    sim = copy_similarity(va, vb)
    out.append(SignalScore("copy", sim, bar, sim >= bar, note=f"aligned copy similarity; bar from the copy floors "
                           f"{pictures.floor(ra):.4f}, {pictures.floor(rb):.4f} and --image-similarity "
                           f"{config.image_similarity}"))
    return out


def _semantic_signal(ws: Workspace, run: DecisionRun, method: str, config: NearConfig, rows: tuple[int, int],
                     n: int) -> list[SignalScore]:
    from curate.inputs import Store, open_store_input

    model = run.meta.get("model") or run.meta.get("config", {}).get("model")
    try:
        store = open_store_input(ws, Store(need="if-any"), model, {})
    except CurateError as exc:
        return [SignalScore("semantic", None, None, None, note=str(exc))]
    if store is None:
        return []
    at = store.store_rows(n)[list(rows)]
    threshold = run.meta.get("config", {}).get("threshold")
    bar = float(threshold[0]) if method in ("semantic", "knn") and threshold else config.candidate_threshold
    if (at < 0).any():
        return [SignalScore("semantic", None, bar, None, note=f"not both embedded in {store.slug}")]
    vectors = store.gather(at)
    cosine = float(vectors[0] @ vectors[1])
    if method in ("semantic", "knn"):
        what = "the run's decision threshold"
    elif "semantic" in config.signals:
        what = f"candidate bar; each item's {config.knn} nearest"
    else:
        what = "not a signal of this run"
    return [SignalScore("semantic", cosine, bar, cosine >= bar, note=f"cosine in {store.slug} ({what})")]


def _decisions(run: DecisionRun, ids: tuple[str, str]) -> dict[str, dict[str, Any]]:
    table = run.table
    wanted = ("kept", "reason", "duplicate_of", "group", "score", "signal", "max_sim")
    cols = [c for c in wanted if c in table.column_names]
    at = pc.index_in(pa.array(list(ids), table.column("id").type), value_set=table.column("id")).to_pylist()
    out = {}
    for i, r in zip(ids, at):
        out[i] = {} if r is None else {c: table.column(c)[r].as_py() for c in cols}
    return out


def _verified_pair(ws: Workspace, run: DecisionRun, id_a: str, id_b: str) -> dict[str, Any] | None:
    loc = ws.decisions("dedup").join(f"{run.run_id}-pairs.parquet")
    if not loc.exists():
        return None
    pairs = read_table(loc)
    a, b = pairs.column("a"), pairs.column("b")
    hit = pc.or_(pc.and_(pc.equal(a, id_a), pc.equal(b, id_b)), pc.and_(pc.equal(a, id_b), pc.equal(b, id_a)))
    found = pairs.filter(hit).to_pylist()
    return found[0] if found else None
