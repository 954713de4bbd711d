"""`--method fuzzy` and `--method near`: candidates from every signal, each pair verified, no-chain
removal in keep-priority order; planted copies of real text (Python's own documentation) and images."""

from __future__ import annotations

import io
import json
import random

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

import curate
from curate.dedup.near import FUZZY_SIGNALS, NearConfig, NearDedup
from curate.errors import CurateError
from curate.ingest import ingest
from curate.workspace import Workspace
from tests.conftest import write


def paragraphs(n: int) -> list[str]:
    """Real English paragraphs: the standard library's own docstrings, distinct and long enough."""
    import argparse
    import collections
    import csv
    import datetime
    import email
    import functools
    import inspect
    import itertools
    import json as json_module
    import logging
    import pathlib
    import shutil
    import textwrap
    import threading

    out = []
    # (modules after ``io`` only add paragraphs: the first ones stay what earlier tests were written on)
    for module in (functools, itertools, collections, pathlib, csv, json_module, datetime, textwrap, email,
                   inspect, random, io, argparse, logging, shutil, threading):
        for name in sorted(dir(module)):
            doc = inspect.getdoc(getattr(module, name, None)) or ""
            text = " ".join(doc.split())
            if 300 <= len(text) <= 1200 and text not in out and not text.startswith("str(object"):
                out.append(text)
    return out[:n]


def typos(text: str, rate: float, rng: random.Random) -> str:
    chars = list(text)
    for i in rng.sample(range(len(chars)), int(rate * len(chars))):
        chars[i] = rng.choice("abcdefghijklmnopqrstuvwxyz")
    return "".join(chars)


def copies(text: str, rng: random.Random) -> dict[str, str]:
    words = text.split()
    dropped = [w for i, w in enumerate(words) if i % 10 != 3]
    half = len(words) // 2
    return {"case": text.upper(), "drop": " ".join(dropped),
            "append": text + " This sentence was appended to the copy.",
            "swap": " ".join(words[half:] + words[:half]), "typos": typos(text, 0.03, rng)}


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    root = tmp_path_factory.mktemp("near-texts")
    rng = random.Random(0)
    originals = paragraphs(12)
    assert len(originals) == 12
    rows, truth = [], {}
    for i, text in enumerate(originals):
        rows.append({"id": f"o{i}", "text": text})
    for i, text in enumerate(originals[:6]):
        for kind, copy in copies(text, rng).items():
            rows.append({"id": f"c{i}-{kind}", "text": copy})
            truth[f"c{i}-{kind}"] = f"o{i}"
    rows.append({"id": "exact", "text": originals[7]})  # a byte copy
    truth["exact"] = "o7"
    src = write(root / "t.jsonl", b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    ws = Workspace(str(root / "ws"))
    ingest(ws, [str(src)], progress=False)
    return ws, truth


def dedup(ws: Workspace, method: str, **settings):
    """``curate.open(ws).dedup(method=..., **settings)``: the public API, as a user calls it."""
    return curate.open(ws.root.path).dedup(method=method, **settings)


def found(result) -> dict[str, str]:
    return {r["id"]: r["duplicate_of"] for r in result.table.to_pylist() if not r["kept"]}


def planted_group(sample_id: str, truth: dict[str, str]) -> str:
    return truth.get(sample_id, sample_id)


def check_groups(result, truth: dict[str, str], missable: tuple[str, ...] = ()) -> None:
    """Each removed item duplicates an item of its own planted group; each group keeps one item, plus
    copies of the ``missable`` kinds that were not found. (With an appended sentence the copy is the most
    complete text, so --keep quality keeps it over the original: which member survives is quality's call.)"""
    rows = result.table.to_pylist()
    for r in rows:
        if not r["kept"]:
            assert planted_group(r["id"], truth) == planted_group(r["duplicate_of"], truth), r
    kept: dict[str, list[str]] = {}
    for r in rows:
        if r["kept"]:
            kept.setdefault(planted_group(r["id"], truth), []).append(r["id"])
    for group, members in kept.items():
        extra = [m for m in members if m.rsplit("-", 1)[-1] not in missable]
        assert len(extra) == 1, (group, members)


def test_fuzzy_finds_lexical_copies_keeps_the_originals_and_records_the_signal(texts):
    ws, truth = texts
    result = dedup(ws, "fuzzy")
    check_groups(result, truth, missable=("typos",))
    rows = {r["id"]: r for r in result.table.to_pylist()}
    assert rows["exact"]["reason"] == "exact-duplicate" and "exact" in rows["exact"]["signal"]
    assert rows["c0-case"]["reason"] == "near-duplicate" and rows["c0-case"]["signal"] == "minhash"
    assert rows["c0-case"]["score"] >= 0.8 and rows["c0-case"]["duplicate_of"] == "c0-append"
    # quality keeps the complete original over a case, drop or swap copy, and the longer appended copy over it
    assert all(rows[f"o{i}"]["kept"] for i in range(6, 12)) and not any(rows[f"o{i}"]["kept"] for i in range(6))
    assert all(rows[f"c{i}-append"]["kept"] for i in range(6))
    pairs = pq.read_table(ws.decisions("dedup").join(f"{result.run_id}-pairs.parquet").path).to_pylist()
    assert {("o0", "c0-case"), ("o0", "c0-append")} <= {(p["a"], p["b"]) for p in pairs}
    assert result.meta["verified_by_signal"]["minhash"] >= 4 * 6


def test_near_also_finds_typos_through_edit_similarity(texts):
    ws, truth = texts
    result = dedup(ws, "near")
    check_groups(result, truth)  # every planted copy, the typo copies included, and nothing else
    assert sum(not r["kept"] for r in result.table.to_pylist()) == len(truth)


def test_groups_are_components_of_verified_pairs_each_keeping_its_best_member(tmp_path):
    base = " ".join(f"word{i}" for i in range(120))
    middle = base.replace("word60", "other60").replace("word61", "other61")
    far = middle.replace("word30", "x").replace("word90", "y").replace("word10", "z")
    unrelated = " ".join(f"term{i}" for i in range(120))
    src = write(tmp_path / "t.jsonl", "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in
                                              (("a", base), ("b", middle), ("c", far), ("d", unrelated))).encode())
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], progress=False)
    from curate.dedup.minhash import jaccard_pairs

    j = jaccard_pairs([base, middle, far], np.array([[0, 1], [1, 2], [0, 2]]), 5)
    threshold = float(min(j[0], j[1]))  # a~b and b~c are verified, a and c are not
    assert j[2] < threshold
    result = dedup(ws, "fuzzy", jaccard=threshold, keep="column:bytes:desc", bands=60, rows=2)
    rows = {r["id"]: r for r in result.table.to_pylist()}
    keeper = min("abc", key=lambda i: (-len({"a": base, "b": middle, "c": far}[i].encode()), i))
    assert [rows[i]["kept"] for i in "abcd"].count(True) == 2 and rows["d"]["kept"]
    assert rows[keeper]["kept"] and all(rows[i]["duplicate_of"] == keeper for i in "abc" if i != keeper)
    assert rows["a"]["group"] == rows["b"]["group"] == rows["c"]["group"] != rows["d"]["group"]
    assert rows["d"]["group"] is None


def image_bytes(img: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def test_fuzzy_finds_flipped_and_reencoded_images_and_keeps_the_larger_original(tmp_path):
    from skimage import data

    pictures = {"astronaut": data.astronaut(), "coffee": data.coffee(), "chelsea": data.chelsea()}
    root = tmp_path / "imgs" / "x"
    for name, arr in pictures.items():
        img = Image.fromarray(arr).resize((160, 160))
        write(root / f"{name}.png", image_bytes(img))
        write(root / f"{name}-flip.png", image_bytes(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
        write(root / f"{name}-small.jpg", image_bytes(img.resize((80, 80)), "JPEG", quality=60))
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(tmp_path / "imgs")], progress=False)
    got = found(dedup(ws, "fuzzy"))
    expected = {f"imgs/x/{n}-{k}.{e}": f"imgs/x/{n}.png" for n in pictures for k, e in (("flip", "png"),
                                                                                       ("small", "jpg"))}
    # the flipped copy has as many pixels as the original: either may be kept, the pair is what counts
    for copy, original in expected.items():
        assert copy in got or original in got, copy
    assert all(k.split("/")[-1].split("-")[0].split(".")[0] == v.split("/")[-1].split("-")[0].split(".")[0]
               for k, v in got.items()), got
    assert len(got) == 6


@pytest.mark.parametrize("bad,message", [(dict(jaccard=0.0), "--jaccard"), (dict(jaccard=float("nan")), "--jaccard"),
                                         (dict(ngram=0), "--ngram"), (dict(hamming=65), "--hamming"),
                                         (dict(keep="hard"), "needs cluster centroids")])
def test_bad_settings_are_one_line(texts, bad, message):
    ws, _ = texts
    with pytest.raises(CurateError, match=message):
        dedup(ws, "fuzzy", **bad)


def test_fuzzy_is_near_without_the_semantic_signal_and_keeps_its_run_ids():
    from curate.api import check_dedup_keys, dedup_config

    stage, fuzzy, near = NearDedup(), dedup_config("fuzzy", {}), dedup_config("near", {})
    assert fuzzy == NearConfig(signals=FUZZY_SIGNALS) and near == NearConfig() and "semantic" not in FUZZY_SIGNALS
    # the run id hashes prefix and settings: exactly what the two configs of old gave, so run ids (and the
    # export versions that name them) stay the same
    old_fuzzy = {"jaccard": 0.7, "ngram": 5, "bands": 25, "rows": 5, "image_similarity": 0.92, "hamming": 12,
                 "keep": "quality", "seed": 0, "device": "auto"}
    assert (stage.prefix(fuzzy), stage.settings(fuzzy)) == ("fuzzy", old_fuzzy)
    assert (stage.prefix(near), stage.settings(near)) == ("near", {**old_fuzzy, "edit_similarity": 0.85,
                                                                   "candidate_threshold": 0.8, "knn": 10,
                                                                   "model": None})
    assert [type(k).__name__ for k in stage.inputs(fuzzy)] == ["Manifest", "Overrides"]  # fuzzy reads no store
    assert [type(k).__name__ for k in stage.inputs(near)] == ["Manifest", "Store", "Overrides"]
    other = dedup_config("near", {"signals": ["semantic", "exact"]})  # any order: one run id
    assert stage.prefix(other) == "near" and stage.settings(other)["signals"] == ["exact", "semantic"]
    with pytest.raises(CurateError, match=r"^\[dedup --method fuzzy\]: unknown setting\(s\) edit_similarity; "
                                          r"valid: jaccard, ngram, bands, rows, image_similarity, hamming, "
                                          r"containment, containment_ratio, containment_chars, boilerplate_df, keep, "):
        dedup_config("fuzzy", {"edit_similarity": 0.9})
    with pytest.raises(CurateError, match=r"method = 'fuzzy' does not take signals .*set method = 'near'"):
        check_dedup_keys("fuzzy", {"signals": ["exact"]})
    for bad, message in ((dict(signals=("exact", "bogus")), "signals must be some of exact, minhash, phash, semantic"),
                         (dict(signals=()), "signals must be"), (dict(signals=("exact", "exact")), "signals must be"),
                         (dict(signals=FUZZY_SIGNALS, knn=5), "--knn: near only")):
        with pytest.raises(CurateError, match=message):
            stage.validate(NearConfig(**bad))


def test_signals_choose_the_candidates(texts):
    ws, truth = texts
    result = dedup(ws, "near", signals=["exact", "semantic"])  # no store here: the byte copy only
    assert found(result) == {"exact": "o7"} and result.run_id.startswith("near-")
    assert result.run_id != dedup(ws, "near").run_id
    assert result.meta["candidates_by_signal"] == {"exact": 1, "minhash": 0, "phash": 0, "semantic": 0}


def test_a_run_with_the_old_source_column_is_recomputed_with_signal(texts):
    ws, _ = texts
    first = dedup(ws, "fuzzy")
    path = first.path.path
    pq.write_table(first.table.rename_columns(["source" if c == "signal" else c for c in first.table.column_names]),
                   path)  # as a run written before the rename
    again = dedup(ws, "fuzzy")
    assert again.run_id == first.run_id and not again.reused and again.table.equals(first.table)
    assert dedup(ws, "fuzzy").reused


def test_cli_prints_the_pairs_by_signal(texts):
    from click.testing import CliRunner

    from curate.cli import cli

    ws, _ = texts
    out = CliRunner().invoke(cli, ["dedup", "-w", ws.root.path, "--method", "fuzzy", "--no-progress"])
    assert out.exit_code == 0, out.output
    assert out.output.startswith("dedup (fuzzy): ")
    assert "candidates" in out.output and "exact 1/1" in out.output and "minhash " in out.output


def test_a_chain_that_drifts_keeps_its_far_end(tmp_path):
    """a~b~c~d, each step verified, but d is beyond the loose bar (2 * bar - 1) of the keeper a: kept."""
    from curate.dedup.minhash import jaccard_pairs

    words = [f"word{i}" for i in range(150)]
    a = " ".join(words)
    steps = [a]
    for k in range(3):  # each step shortens 12 more words: bytes a > b > c > d
        w = list(steps[-1].split())
        for i in range(k * 40 + 2, k * 40 + 38, 3):
            w[i] = "x"
        steps.append(" ".join(w))
    j = jaccard_pairs(steps, np.array([[0, 1], [1, 2], [2, 3], [0, 2], [0, 3], [1, 3]]), 5)
    bar = float(min(j[:3]))
    assert j[4] < 2 * bar - 1 and j[3] >= 2 * bar - 1 and j[3] < bar and j[5] < bar  # the chain as intended
    src = write(tmp_path / "t.jsonl", "".join(json.dumps({"id": i, "text": t}) + "\n"
                                              for i, t in zip("abcd", steps)).encode())
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], progress=False)
    # containment 1: the chain is of Jaccard steps (d's shingles are 0.8 inside a's, the loose containment bar)
    result = dedup(ws, "fuzzy", jaccard=bar, keep="column:bytes:desc", bands=60, rows=2, containment=1.0)
    rows = {r["id"]: r for r in result.table.to_pylist()}
    assert rows["a"]["kept"] and rows["d"]["kept"]
    assert rows["b"]["duplicate_of"] == "a" and rows["c"]["duplicate_of"] == "a"
    assert rows["c"]["signal"] == "transitive" and rows["b"]["signal"] == "minhash"
    assert rows["a"]["group"] == rows["d"]["group"]  # one component, two kept members


def test_near_does_not_match_short_template_sentences_by_edit_similarity(tmp_path):
    from rapidfuzz.distance import Levenshtein

    from curate.dedup.minhash import jaccard_pairs
    from curate.dedup.verify import EDIT_MIN_CHARS

    short = ["Return the number of items in the queue.", "Return the number of items in the stack."]
    assert Levenshtein.normalized_similarity(*short) >= NearConfig().edit_similarity
    assert max(map(len, short)) < EDIT_MIN_CHARS
    long_text = paragraphs(1)[0]
    rng = random.Random(3)
    texts = {"s1": short[0], "s2": short[1], "long": long_text, "long-typos": typos(long_text, 0.05, rng)}
    src = write(tmp_path / "t.jsonl", "".join(json.dumps({"id": i, "text": t}) + "\n"
                                              for i, t in texts.items()).encode())
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], progress=False)
    got = found(dedup(ws, "near", bands=60, rows=2))
    assert got == {"long-typos": "long"}  # the typo copy by edit similarity; the two sentences both kept
    assert jaccard_pairs(short, np.array([[0, 1]]), 5)[0] >= NearConfig().jaccard - 1e-6  # but not for Jaccard


def _cli(capsys, *args: str) -> tuple[int, str]:
    """Run the ``curate`` entry point in this process: (exit status, stderr)."""
    from curate.cli import main

    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    (["--bands", "100000"], "--bands must be an integer in [1, 1024], not 100000"),
    (["--rows", "100000"], "--rows must be an integer in [1, 64], not 100000"),
    (["--rows", "0"], "--rows must be an integer in [1, 64], not 0"),
    (["--bands", "100", "--rows", "20"], "--bands x --rows must be at most 1024 MinHash permutations, not "
                                         "100 x 20 = 2,000"),
])
@pytest.mark.parametrize("method", ["fuzzy", "near"])
def test_minhash_bands_and_rows_have_upper_bounds(texts, capsys, tmp_path, method, options, message):
    import time

    ws, _ = texts
    runs = ws.loc("decisions", "dedup")
    before = sorted(runs.fs.ls(runs.path, detail=False)) if runs.exists() else []
    start = time.perf_counter()
    code, err = _cli(capsys, "dedup", "-w", ws.root.path, "--method", method, *options)
    assert (code, err) == (2, f"error: {message}\n")
    assert time.perf_counter() - start < 30  # refused at once: 100,000 bands used to run for minutes
    assert (sorted(runs.fs.ls(runs.path, detail=False)) if runs.exists() else []) == before
    key = dict(zip(options[::2], options[1::2]))
    toml = write(tmp_path / "p.toml", (f'workspace = "{ws.root.path}"\n[dedup]\nmethod = "{method}"\n' + "".join(
        f"{k.lstrip('-')} = {v}\n" for k, v in key.items())).encode())
    assert _cli(capsys, "run", str(toml), "--no-progress") == (2, f"error: {message}\n")


def test_minhash_bounds_are_inclusive_and_in_the_help():
    from click.testing import CliRunner

    from curate.cli import cli
    from curate.dedup.minhash import MAX_BANDS, MAX_PERMUTATIONS, MAX_ROWS, MinHashConfig, check_lsh

    for bands, rows in ((MAX_BANDS, 1), (1, MAX_ROWS), (32, 32), (25, 5)):
        check_lsh(bands, rows)
        MinHashConfig(bands=bands, rows=rows).validate()
    with pytest.raises(CurateError, match="minhash bands x minhash rows must be at most 1024"):
        MinHashConfig(bands=33, rows=32).validate()
    help_text = " ".join(CliRunner().invoke(cli, ["dedup", "--help"]).output.split())
    assert f"at most {MAX_BANDS}" in help_text and f"at most {MAX_ROWS}" in help_text
    assert f"bands x rows at most {MAX_PERMUTATIONS}" in help_text
