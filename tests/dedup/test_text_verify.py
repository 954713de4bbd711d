"""``near``'s swap rule for texts: a pair that swaps words other texts write is a look-alike, a pair
with a typo (a word nobody else writes) is a copy. Expectations are hand-made."""

from __future__ import annotations

import json

import numpy as np

from curate.dedup.near import NearConfig, NearDedup
from curate.dedup.text_verify import SwapCheck, tokens
from curate.ingest import ingest
from curate.runner import run_stage
from curate.workspace import Workspace
from tests.conftest import write

CORPUS = [
    "Get the current event loop policy.",  # 0
    "Set the current event loop policy.",  # 1: a template sibling of 0
    "Set a new value.",  # 2
    "Get a new value.",  # 3
    "We recieve the data from the queue, check every record against its schema and write the good ones "
    "to the output table.",  # 4: a typo of 5 (100+ characters: short texts are matched on Jaccard only)
    "We receive the data from the queue, check every record against its schema and write the good ones "
    "to the output table.",  # 5
    "The data we receive is kept.",  # 6
    "Return self+value.",  # 7
    "Return self-value.",  # 8: differs by one mark that other texts write
    "x - y and x + y",  # 9
    "We recieve the data from the queue, check every record against its schema and write the good ones "
    "to the output table.",  # 10: an exact copy of the typo text
]


def test_tokens_are_words_and_single_marks():
    assert tokens("Return self+value, twice!") == {"return", "self", "+", "value", ",", "twice", "!"}


def test_swaps_of_known_words_are_rejected_and_typos_are_not():
    check = SwapCheck(CORPUS)
    assert check.rejects([(0, 1), (7, 8), (4, 5)]).tolist() == [True, True, False]
    assert check.holders["recieve"] == 1  # its exact copy (10) is the same distinct text
    assert check.holders["set"] == 2 and check.holders["-"] == 2


def test_drops_additions_and_wide_edits_are_not_swaps():
    texts = ["alpha beta gamma delta", "alpha beta gamma", "alpha beta gamma delta epsilon", "one two three four",
             "alpha zeta eta theta", "beta", "gamma", "delta", "zeta", "eta", "theta"]
    check = SwapCheck(texts)
    assert check.swapped(0, 1) is None and check.swapped(0, 2) is None  # one side of the difference is empty
    assert check.swapped(0, 4) is None  # three tokens swapped on each side: more than MAX_SWAPPED
    assert not check.rejects([(0, 1), (0, 2), (0, 4)]).any()


def test_texts_beyond_ascii_are_counted_like_ascii_ones():
    texts = ["Café ouvert le matin.", "Café fermé le matin.", "Le café est fermé.", "Il est tard.",
             "Cafe ouvert le matin.", "Cafe ferme le matin.", "Le cafe est ferme."]
    check = SwapCheck(texts)
    assert check.rejects([(0, 1), (4, 5)]).tolist() == [True, True]
    assert check.holders["fermé"] == 2 and check.holders["ferme"] == 2 and check.holders["ouvert"] == 2


def test_swaps_of_sentence_marks_and_common_words_are_wording():
    filler = [f"Item {i} is on the shelf." for i in range(40)]  # "is", "the", "." are common here
    texts = ["The cold front is over the coast.", "The cold front was over the coast.",
             "Rain lingered over the coast.", "Rain lingered over the coast!", "Return self+value.",
             "Return self-value.", "x - y or x + y", "It was late."] + filler
    check = SwapCheck(texts)
    assert check.rejects([(0, 1), (2, 3), (4, 5)]).tolist() == [False, False, True]


def test_near_removes_the_typo_copy_and_keeps_template_siblings(tmp_path):
    rows = [{"id": f"t{i}", "text": t} for i, t in enumerate(CORPUS[:10])]
    src = write(tmp_path / "t.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], progress=False)
    table = run_stage(ws, NearDedup(), NearConfig(), progress=False).table.to_pylist()
    removed = {r["id"]: r["duplicate_of"] for r in table if not r["kept"]}
    assert removed == {"t4": "t5"}  # the typo copy goes (its original is better spelt); siblings stay
    assert np.isfinite([r["score"] for r in table if r["id"] == "t4"]).all()


def test_a_swap_to_an_unrelated_name_is_rejected_even_when_nobody_else_writes_it():
    base = "Performs the same operation as torch.{}, but all output tensors are freshly created instead of aliasing."
    texts = [base.format("unsqueeze"), base.format("view_as_complex"), base.format("unsqueezze")]
    check = SwapCheck(texts)
    assert check.holders == {}
    assert check.rejects([(0, 1), (0, 2)]).tolist() == [True, False]  # a different name; a misspelling
