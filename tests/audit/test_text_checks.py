"""Text checks: each planted defect is flagged and its clean look-alike is not; None and empty texts never raise."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest

from curate.audit import text_checks
from curate.audit.text_checks import TEXT_CHECKS, TextCheckConfig, flags, text_check_scores

PROSE = [
    "The standard library offers a wide range of facilities. It contains built-in modules, written in C, that "
    "provide access to system functionality such as file input and output that would otherwise be "
    "inaccessible to programmers, as well as modules written in Python that provide standardized solutions "
    "for many problems that occur in everyday programming.",
    "A generator is a function that returns an iterator. It looks like a normal function except that it "
    "contains yield expressions for producing a series of values usable in a for loop or that can be "
    "retrieved one at a time with the next function. Each yield temporarily suspends processing, "
    "remembering the location execution state.",
    "Garbage collection is the process of freeing memory when it is not used anymore. Python performs "
    "garbage collection via reference counting and a cyclic garbage collector that is able to detect and "
    "break reference cycles. The garbage collector can be controlled using the gc module from programs.",
    "An object is hashable if it has a hash value which never changes during its lifetime and can be "
    "compared to other objects. Hashable objects which compare equal must have the same hash value, which "
    "makes an object usable as a dictionary key and a set member, because these data structures use it.",
]
CODE_AND_MATHS = (
    "Compute the polynomial p(x) = 3x^2 - 2x + 1 for every x in the array and return its roots.\n\n"
    ">>> import numpy as np\n>>> p = np.poly1d([3, -2, 1])\n>>> p(np.arange(4))\narray([ 1,  2,  9, 22])\n"
    ">>> [round(r.real, 3) for r in p.r]  # complex roots\n[0.333, 0.333]\n\n"
    "The discriminant b^2 - 4ac = 4 - 12 = -8 < 0, so both roots are complex: x = (1 ± i√2) / 3. "
    "For a matrix A ∈ ℝ^{n×n}, ‖A‖₂ = σ_max(A) and det(A) = ∏ λ_i.\n"
    "def f(x: float) -> float:\n    return 3 * x ** 2 - 2 * x + 1  # O(1)\n"
)
POEM = (
    "The tide comes in across the sand,\nthe gulls are circling low,\nI hold the lantern in my hand\n"
    "and wait for you to go.\n\nOh, the sea, the sea, the endless sea.\n\n"
    "The boats are resting in the bay,\nthe nets are hung to dry,\nthe children running home from play\n"
    "beneath a copper sky.\n\nOh, the sea, the sea, the endless sea.\n\n"
    "The winter wind will find the door,\nthe fire will burn down slow,\nand I will hear you on the shore\n"
    "as I heard you long ago.\n\nOh, the sea, the sea, the endless sea.\n"
)


def _flag(texts, check, config=None, **kw):
    s = text_check_scores(texts, config, checks=[check], **kw)
    return flags(s, config)[check].tolist()


def test_none_and_empty_never_raise():
    texts = [None, "", "   \n\t", "\x00\x01", "ok"]
    s = text_check_scores(texts)
    for name, values in s.items():
        assert len(values) == len(texts), name
    assert flags(s)["too-short"].tolist() == [True, True, True, True, True]
    assert not flags(s)["repetitive"].any() and not flags(s)["boilerplate"][:3].any()


def test_too_short_and_too_long():
    cjk = "機械学習はデータから規則性を学び予測や判断を行う技術であり多くの分野で使われている。"
    assert _flag(["Hello world", "one two three four five", PROSE[0], cjk], "too-short") == [True, True, False, False]
    huge = "word " * 105_000
    assert _flag([huge, PROSE[0] * 50, "x" * 1_000_000], "too-long") == [True, False, True]


def test_repetitive_flags_loops_not_a_refrain_or_a_numpy_docstring():
    line_20 = PROSE[0] + "\n" + "\n".join(["Click the button below to continue."] * 20)
    phrase_loop = PROSE[1] + " " + " ".join(["and then it happened again"] * 30)
    char_loop = PROSE[2] + " " + "ha" * 300
    doubled = PROSE[3] + "\n\n" + PROSE[3]
    numpy_doc = ("Sum of array elements over a given axis.\n\nParameters\n----------\na : array_like\n"
                 "    Elements to sum.\naxis : None or int or tuple of ints, optional\n    Axis or axes along "
                 "which a sum is performed.\ndtype : dtype, optional\n    The type of the returned array.\n\n"
                 "Returns\n-------\nsum_along_axis : ndarray\n    An array with the same shape as a.\n\n"
                 "Examples\n--------\n>>> np.sum([0.5, 1.5])\n2.0\n>>> np.sum([[0, 1], [0, 5]], axis=0)\n"
                 "array([0, 6])\n>>> np.sum([[0, 1], [0, 5]], axis=1)\narray([1, 5])\n")
    got = _flag([line_20, phrase_loop, char_loop, doubled, POEM, numpy_doc, *PROSE], "repetitive")
    assert got == [True, True, True, True, False, False, False, False, False, False]


def test_garbled_flags_mojibake_and_junk_not_code_maths_or_accents():
    typographic = "\u201cIt\u2019s a caf\u00e9 na\u00efve r\u00e9sum\u00e9\u201d \u2013 " + PROSE[0]
    mojibake = typographic.encode("utf-8").decode("cp1252", errors="replace")
    rng = random.Random(0)
    binary = PROSE[1][:150] + bytes(rng.getrandbits(8) for _ in range(300)).decode("latin-1") + PROSE[1][150:]
    replaced = " ".join(w + "\u00e9" for w in PROSE[2].split()).encode("latin-1").decode("utf-8", "replace")
    russian = "Ключевое слово может представлять собой регулярное выражение или точное искомое слово для поиска"
    cp1251 = russian.encode("cp1251").decode("latin-1")
    french = ("L'été dernier, nous avons visité un château près de la forêt où les élèves étudiaient "
              "l'histoire médiévale et la géographie française avec enthousiasme.")
    got = _flag([mojibake, binary, replaced, cp1251, CODE_AND_MATHS, typographic, french, russian], "garbled")
    assert got == [True, True, True, True, False, False, False, False]


NAV = ["Home | About us | Products | Blog | Contact", "We use cookies to improve your experience on our site.",
       "Accept all cookies", "Privacy Policy | Terms of Use | Sitemap",
       "Copyright 2024 Example Media. All rights reserved.", "Subscribe to our newsletter for weekly updates"]


def test_boilerplate_flags_shared_and_web_boilerplate_not_a_cookie_recipe():
    site = [f"Article {i}\n" + "\n".join(NAV[:3]) + "\n" + PROSE[i % 4][:120] + "\n" + "\n".join(NAV[3:])
            for i in range(8)]
    lorem = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt."
    js = "JavaScript must be enabled to use this site. Please enable JavaScript and reload the page."
    recipe = ("Chocolate chip cookies are easy to bake at home. Cream the butter and sugar, beat in the eggs, "
              "fold in the flour and the chips, and bake the cookies for ten minutes until golden.\n"
              "Let the cookies cool on a rack before you eat them.")
    long_mention = PROSE[0] + "\n" + PROSE[1] + "\n" + PROSE[2] + "\nSee the terms of use for details."
    got = _flag([*site, lorem, js, recipe, long_mention, *PROSE], "boilerplate")
    assert got == [True] * 8 + [True, True, False, False, False, False, False, False]


def test_boilerplate_counts_lines_shared_across_the_dataset():
    footer = "Posted in Uncategorized by the editorial team of the Gazette"
    texts = [f"{p}\n{footer}\nFiled under local news and weather today" for p in ("Rain", "Sun", "Wind", "Fog")]
    assert _flag(texts, "boilerplate", boilerplate_min_docs=3) == [True] * 4
    assert _flag(texts, "boilerplate", boilerplate_min_docs=5) == [False] * 4


def test_language_flags_the_minority_language_or_the_configured_one():
    pytest.importorskip("py3langid")
    german = ("Das Schlüsselwort ist gewöhnlich ein regulärer Ausdruck und hat den gleichen Effekt. Es kann "
              "außerdem nach einer bestimmten Zeichenkette gesucht werden, wenn die Datenbank aktualisiert ist.")
    badges = ("[![CI](https://img.shields.io/github/workflow/ci.svg)](https://github.com/x/y) "
              "[![PyPI](https://img.shields.io/pypi/v/y)](https://pypi.org/project/y) " + PROSE[1])
    texts = [*PROSE, CODE_AND_MATHS, badges, german, "too short"]
    s = text_check_scores(texts, checks=["language"])
    assert flags(s)["language"].tolist() == [False] * 6 + [True, False]
    assert np.isnan(s["language"][-1]) and s["lang"][6] == "de"
    german_first = flags(text_check_scores(texts, TextCheckConfig(languages=("de",)), checks=["language"]))
    assert german_first["language"].tolist() == [True] * 6 + [False, False]


def test_language_is_skipped_with_one_line_when_py3langid_is_missing(monkeypatch, caplog):
    monkeypatch.setattr(text_checks, "language_available", lambda: False)
    with caplog.at_level(logging.WARNING, logger="curate.audit.text_checks"):
        s = text_check_scores(PROSE)
    assert "language" not in s and set(TEXT_CHECKS) - {"language"} <= set(s)
    assert [r.getMessage().count("\n") for r in caplog.records] == [0]
    assert "py3langid" in caplog.records[0].getMessage()


def test_flags_follow_the_config_and_nan_is_never_flagged():
    s = {"garbled": np.array([0.2, 0.7, np.nan], np.float32), "language": np.array([np.nan, 0.9, 0.1], np.float32)}
    assert flags(s)["garbled"].tolist() == [False, True, False]
    assert flags(s, TextCheckConfig(garbled=0.1))["garbled"].tolist() == [True, True, False]
    assert flags(s)["language"].tolist() == [False, True, False]


def test_chunks_give_the_same_scores(monkeypatch):
    texts = [*PROSE, POEM, CODE_AND_MATHS, PROSE[0] + " " + " ".join(["again and again"] * 40)] * 3
    whole = text_check_scores(texts, checks=["repetitive"])["repetitive"]
    monkeypatch.setattr(text_checks, "CHUNK", 4)
    np.testing.assert_array_equal(whole, text_check_scores(texts, checks=["repetitive"])["repetitive"])
