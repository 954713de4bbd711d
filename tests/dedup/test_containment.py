"""Truncated and wrapped copies count by containment, guarded against short quotes and shared boilerplate."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from curate.dedup.containment import MAX_CANDIDATES, ChunkIndex, containment_pairs
from curate.dedup.minhash import batch_shingles, jaccard_pairs, normalise
from curate.dedup.near import NearConfig, NearDedup
from curate.errors import CurateError
from curate.ingest import ingest
from curate.workspace import Workspace
from tests.conftest import write
from tests.dedup.test_near import dedup, paragraphs

HEADER = ("Home | Products | Support | About us | Contact. Welcome to the example.org knowledge base, "
          "where our engineers answer the questions customers ask most often. ")
FOOTER = (" Copyright 2024 Example Organisation. All rights reserved. Privacy policy | Terms of use | "
          "Cookie settings | Sitemap. Follow us on social media for the latest product news.")


def python_containment(a: str, b: str, n: int = 5) -> float:
    """The shorter text's share of 5-grams inside the longer one, with Python sets."""
    sa, sb = ({t[k:k + n] for k in range(len(t) - n + 1)} for t in (normalise(a), normalise(b)))
    small, large = (sa, sb) if len(normalise(a)) <= len(normalise(b)) else (sb, sa)
    return len(small & large) / len(small)


def chunk_candidates(texts: list[str], boilerplate_df: int = 50) -> tuple[set, np.ndarray]:
    index = ChunkIndex(len(texts), 5)
    hashes, offsets = batch_shingles(texts, 5)
    index.add(0, hashes, offsets)
    pairs, boilerplate = index.candidates(np.arange(len(texts)), boilerplate_df)
    return {tuple(p) for p in pairs.tolist()}, boilerplate


def build(tmp_path, rows: list[dict]) -> Workspace:
    src = write(tmp_path / "t.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], progress=False)
    return ws


def removed(result) -> dict[str, str]:
    return {r["id"]: r["duplicate_of"] for r in result.table.to_pylist() if not r["kept"]}


def test_containment_matches_python_sets_without_boilerplate():
    texts = paragraphs(6)
    pairs = [(0, 1), (2, 3), (4, 5)]
    texts = [texts[0], texts[0][: len(texts[0]) * 3 // 5], texts[2], HEADER + texts[2] + FOOTER, texts[4], texts[5]]
    share, content, ratio = containment_pairs(texts, np.array(pairs), 5, np.zeros(0, np.uint64))
    expected = [python_containment(texts[a], texts[b]) for a, b in pairs]
    assert np.allclose(share, expected) and share[0] == share[1] == 1.0 and share[2] < 0.3
    assert 0.55 < ratio[0] < 0.65 and (content > 0).all()


def test_chunk_candidates_propose_truncated_and_wrapped_copies():
    texts = paragraphs(8)
    wrapper = (HEADER + " ".join(reversed(FOOTER.split())), FOOTER + " ".join(reversed(HEADER.split())))
    rows = texts + [texts[0][: len(texts[0]) * 11 // 20], wrapper[0] + " " + texts[1] + " " + wrapper[1]]
    j = jaccard_pairs(rows, np.array([[0, 8], [1, 9]]), 5)
    assert (j <= 0.6).all()  # below the Jaccard bar, where LSH proposes a pair with probability < 0.9
    chunks, boilerplate = chunk_candidates(rows)
    assert {(0, 8), (1, 9)} <= chunks and len(boilerplate) == 0
    assert all(a in (0, 1) for a, _ in chunks)  # unrelated paragraphs share no chunk


def test_candidates_per_text_are_capped():
    base = paragraphs(1)[0]
    rng = random.Random(0)
    words = HEADER.split()
    rows = [base] + [" ".join(rng.sample(words, 8)) + " " + base for _ in range(3 * MAX_CANDIDATES)]
    chunks, _ = chunk_candidates(rows)
    # each text keeps its MAX_CANDIDATES best partners (a pair stays when it is among either end's best)
    assert len(chunks) <= len(rows) * MAX_CANDIDATES < len(rows) * (len(rows) - 1) // 2
    assert all(any(k in p for p in chunks) for k in range(len(rows)))


def test_fuzzy_finds_truncated_and_wrapped_copies(tmp_path):
    texts = sorted(paragraphs(12), key=len, reverse=True)[:10]  # the wrapped ones longer than the wrapper
    rows = [{"id": f"o{i}", "text": t} for i, t in enumerate(texts)]
    rows += [{"id": "c0-truncated", "text": texts[0][: len(texts[0]) * 3 // 5]},
             {"id": "c1-truncated", "text": texts[1][: len(texts[1]) * 3 // 4]},
             {"id": "c2-wrapped", "text": HEADER + texts[2] + FOOTER},
             {"id": "c3-wrapped", "text": "<html><body><nav>" + HEADER + "</nav><main>" + texts[3] + "</main><footer>"
                                          + FOOTER + "</footer></body></html>"}]
    ws = build(tmp_path, rows)
    got = removed(dedup(ws, "fuzzy"))
    pairs = {frozenset(p) for p in got.items()}
    assert pairs == {frozenset(("o0", "c0-truncated")), frozenset(("o1", "c1-truncated")),
                     frozenset(("o2", "c2-wrapped")), frozenset(("o3", "c3-wrapped"))}, got
    off = removed(dedup(ws, "fuzzy", containment=1.0, containment_ratio=1.0))
    assert not {"c0-truncated", "c2-wrapped"} & ({*off} | {*off.values()})  # the containment rule found them


def test_a_short_quote_inside_a_long_text_is_not_a_duplicate(tmp_path):
    texts = paragraphs(5)
    long_text = " ".join(texts[:4])
    quote = min(texts[:4], key=len)  # one of four paragraphs, all of it inside
    assert python_containment(quote, long_text) == 1.0 and len(quote) < 0.3 * len(long_text)
    ws = build(tmp_path, [{"id": "long", "text": long_text}, {"id": "quote", "text": quote},
                          {"id": "other", "text": texts[4]}])
    assert removed(dedup(ws, "fuzzy")) == {} and removed(dedup(ws, "near")) == {}
    assert removed(dedup(ws, "fuzzy", containment_ratio=0.05)) == {"quote": "long"}  # the ratio guard is what holds


def test_a_header_and_footer_many_pages_share_do_not_make_them_duplicates(tmp_path):
    texts = paragraphs(73)
    sentences = sorted({s.strip() for t in texts[:72] for s in t.split(". ") if len(s) > 30}, key=len)
    tiny, rest = sentences[:20], sentences[20:][::-1]  # rest: longest first
    header = HEADER + " ".join(reversed(FOOTER.split()))
    footer = FOOTER + " ".join(reversed(HEADER.split()))
    rows, queue = [], iter(rest)
    for i in range(70):  # pages of one site: the shared header and footer around content of their own
        own = tiny[i // 4] if i % 4 == 0 else ""
        while i % 4 and len(own) < 350:  # long pages: Jaccard with a tiny page below the bar
            own += next(queue) + ". "
        rows.append({"id": f"p{i}", "text": f"{header} {own}. {footer}"})
    original = texts[72]
    rows += [{"id": "article", "text": original}, {"id": "article-page", "text": f"{header} {original} {footer}"}]
    ws = build(tmp_path, rows)
    got = removed(dedup(ws, "fuzzy"))
    # without the boilerplate guard, short pages are "inside" long ones (their Jaccard is below the bar): the
    # guard is what holds them apart
    unguarded = removed(dedup(ws, "fuzzy", boilerplate_df=1000))
    assert len([k for k in unguarded if k.startswith("p")]) >= 5
    assert got == {"article": "article-page"} or got == {"article-page": "article"}, got


@pytest.mark.parametrize("bad,message", [(dict(containment=0.0), "--containment must be in"),
                                         (dict(containment=float("nan")), "--containment must be in"),
                                         (dict(containment_ratio=1.5), "--containment-ratio must be in"),
                                         (dict(containment_chars=0), "--containment-chars must be an integer >= 1"),
                                         (dict(boilerplate_df=0), "--boilerplate-df must be an integer >= 1"),
                                         (dict(boilerplate_df=2.5), "--boilerplate-df must be an integer")])
def test_bad_containment_settings_are_one_line_errors(bad, message):
    with pytest.raises(CurateError, match=message) as err:
        NearDedup().validate(NearConfig(**bad))
    assert "\n" not in str(err.value)


def test_containment_settings_reach_the_cli_and_toml(tmp_path):
    from curate.api import dedup_config

    cfg = dedup_config("fuzzy", {"containment": 0.8, "containment-ratio": 0.6, "containment_chars": 50,
                                 "boilerplate_df": 9})
    assert (cfg.containment, cfg.containment_ratio, cfg.containment_chars, cfg.boilerplate_df) == (0.8, 0.6, 50, 9)
    stage = NearDedup()
    assert "containment" not in stage.settings(NearConfig()) and stage.settings(cfg)["boilerplate_df"] == 9
