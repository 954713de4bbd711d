"""Texts are shingled and verified without their markup: HTML, Markdown, Unicode forms, quotes, dashes."""

from __future__ import annotations

import json
import random

import pytest

from curate.dedup.minhash import normalised_codepoints
from curate.dedup.text_normalise import normalise, normalise_many
from curate.ingest import ingest
from curate.workspace import Workspace
from tests.conftest import write
from tests.dedup.test_near import dedup, paragraphs

PLAIN = "Return the sum of the values. It is the total, not the mean."


@pytest.mark.parametrize("marked", [
    "<p>Return the <b>sum</b> of the values.</p>\n<p>It is the <em>total</em>, not the mean.</p>",
    "<html><head><style>p {color: red}</style><script>var s = 1;</script></head><body><!-- note -->"
    "<div class='x'><p>Return the <a href=\"/sum\">sum</a> of the values.<br/>It is the total, not the "
    "mean.</p></div></body></html>",
    "Return the <span class=\"k\">sum</span> of the values. It is the total, not the&nbsp;mean.",
    "# Return the sum of the values.\n\nIt is the **total**, not the _mean_.",
    "> Return the [sum](https://example.org/sum) of the values.\n> It is the `total`, not the ~~mean~~.",
    "- Return the sum of the values.\n- It is the *total*, not the mean.\n\n---",
    "```\nReturn the sum of the values.\n```\nIt is the total, not the mean.",
    "RETURN THE SUM OF THE VALUES.\tIt is the total,   not the mean.  ",
    "Return the \uff53\uff55\uff4d of the values.\u00a0It is the total, not the mean\u200b.",
])
def test_marked_up_forms_normalise_to_the_plain_text(marked):
    assert normalise(marked) == normalise(PLAIN) == PLAIN.casefold()


def test_quotes_dashes_and_entities_become_plain_ascii():
    assert normalise("\u201cIt\u2019s\u201d \u2014 a \u2013 b \u2212 c") == normalise('"It\'s" - a - b - c')
    assert normalise("&ldquo;It&rsquo;s&rdquo; &mdash; a") == normalise('"It\'s" - a')
    assert normalise("x &amp; y &lt;b&gt; z") == "x & y <b> z"  # an escaped tag is text, not markup


def test_what_is_not_markup_stays():
    assert normalise("snake_case and __init__ keep inner underscores; 3 < 4 > 2") == \
        "snake_case and init keep inner underscores; 3 < 4 > 2"
    assert normalise("well-known, a-b, 1 + 2 = 3") == "well-known, a-b, 1 + 2 = 3"
    assert normalise("  Hello\t\nWORLD \u3000 \u00df ") == "hello world ss"


@pytest.mark.parametrize("empty", ["", " \n ", "<br/>", "<p></p>", "<script>alert(1)</script>", "<!-- x -->",
                                   "**", "---", "&nbsp;"])
def test_markup_only_texts_are_empty(empty):
    assert normalise(empty) == ""
    cps, lens = normalised_codepoints([empty, "x"])
    assert lens.tolist() == [0, 1]


def test_the_batch_equals_one_at_a_time():
    r = random.Random(1)
    alphabet = ["a", "B", " ", "\n", "<b>", "</p>", "&amp;", "*", "_", "`", "[x](y)", "# ", "\u2019", "\u00df",
                "\ud800", "\U0001f600", "\uff21", "\x1c", "-", "~~", ">"]
    texts = ["".join(r.choice(alphabet) for _ in range(r.randint(0, 30))) for _ in range(300)]
    assert normalise_many(texts) == [normalise(t) for t in texts]
    assert normalise_many([]) == []
    assert normalise("a \ud800 b") == "a \ud800 b"  # lone surrogates pass through


def test_fuzzy_and_near_find_marked_up_copies_and_never_match_empty_texts(tmp_path):
    originals = paragraphs(6)
    copies = {
        "html": lambda t: "<div><p>" + t.replace(". ", ".</p>\n<p>", 2) + "</p></div>",
        "markdown": lambda t: "## " + t.replace(" the ", " **the** ", 3).replace(". ", ".\n\n", 1),
        "typographic": lambda t: t.replace("'", "\u2019").replace(" - ", " \u2014 ").replace(" ", "\u00a0", 5),
    }
    rows, truth = [], {}
    for i, text in enumerate(originals):
        rows.append({"id": f"o{i}", "text": text})
        kind = list(copies)[i % 3]
        rows.append({"id": f"c{i}-{kind}", "text": copies[kind](text)})
        truth[f"c{i}-{kind}"] = f"o{i}"
    rows += [{"id": "e1", "text": "<br/>"}, {"id": "e2", "text": "<br/>"}, {"id": "e3", "text": "<p></p>"}]
    src = write(tmp_path / "t.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode())
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(src)], progress=False)
    for method in ("fuzzy", "near"):
        table = dedup(ws, method).table.to_pylist()
        assert {r["id"] for r in table} == {r["id"] for r in rows}  # every manifest id has a decision
        removed = {r["id"]: r["duplicate_of"] for r in table if not r["kept"]}
        pairs = {frozenset(p) for p in removed.items()}
        assert pairs == {frozenset(p) for p in truth.items()}, (method, removed)
