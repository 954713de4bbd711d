"""MinHash + LSH + exact Jaccard (curate.dedup.minhash): statistics, edits of real text, edges."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

import curate.dedup.minhash as mh
from curate.dedup.minhash import (
    EMPTY,
    MinHashConfig,
    batch_shingles,
    candidate_pairs,
    jaccard_pairs,
    lsh_candidates,
    normalise,
    permutation_params,
    shingle_hashes,
    signatures,
    signatures_of_sets,
)
from curate.errors import CurateError

CONFIG = MinHashConfig()


def minhash_pairs(texts: list[str], config: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
    """The MinHash path of ``--method fuzzy``/``near``: signatures -> LSH candidates -> exact Jaccard at
    least ``config.threshold``; verified pairs ``[k, 2]`` (i < j, sorted) and their Jaccard."""
    cand = candidate_pairs(signatures(texts, config), config.bands, config.rows)
    jac = jaccard_pairs(texts, cand, config.ngram)
    keep = jac >= config.threshold
    return cand[keep], jac[keep]


def set_pairs(jaccard: float, count: int, union: int, seed: int) -> list[np.ndarray]:
    """``count`` pairs of random uint64 "shingle" sets with exactly ``jaccard`` = I / union."""
    rng = np.random.default_rng(seed)
    inter = round(jaccard * union)
    assert inter / union == pytest.approx(jaccard)
    sets = []
    for _ in range(count):
        vals = rng.integers(0, 2**63, size=union, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        rest = union - inter
        sets.append(vals[:inter + rest // 2])
        sets.append(np.concatenate([vals[:inter], vals[inter + rest // 2:]]))
    return sets


def python_shingles(text: str, n: int) -> set[str]:
    t = normalise(text)
    return {t[i:i + n] for i in range(len(t) - n + 1)} if len(t) >= n else ({t} if t else set())


def python_jaccard(a: str, b: str, n: int) -> float:
    sa, sb = python_shingles(a, n), python_shingles(b, n)
    return len(sa & sb) / len(sa | sb) if sa | sb else 0.0


# --------------------------------------------------------------------------------------------
# statistics: MinHash collision rate and the LSH S-curve


@pytest.mark.parametrize("jaccard", [0.2, 0.5, 0.8])
def test_collision_rate_matches_jaccard(jaccard):
    # 200 pairs x 260 permutations = 52,000 positions: the fraction of equal signature values
    # is within 4 binomial sigma of J, and the spread of the per-pair count is binomial
    # (permutations behave as independent: a correlated family would inflate the variance)
    pairs = 200
    sigs = signatures_of_sets(set_pairs(jaccard, pairs, union=300, seed=int(jaccard * 10)), CONFIG)
    equal = sigs[0::2] == sigs[1::2]
    k = CONFIG.num_perm
    sigma = math.sqrt(jaccard * (1 - jaccard) / equal.size)
    assert abs(equal.mean() - jaccard) < 4 * sigma
    per_pair = equal.sum(axis=1)
    assert 0.6 < per_pair.var() / (k * jaccard * (1 - jaccard)) < 1.5


@pytest.mark.parametrize("jaccard", [0.7, 0.8, 0.9])
def test_lsh_s_curve(jaccard):
    # bands=20, rows=13: a pair is a candidate with probability 1 - (1 - J^13)^20, which is
    # 0.177 at J=0.7, 0.677 at 0.8 and 0.997 at 0.9; 400 pairs each, 4 binomial sigma
    pairs = 400
    sigs = signatures_of_sets(set_pairs(jaccard, pairs, union=200, seed=int(jaccard * 100)), CONFIG)
    cand = {tuple(p) for p in candidate_pairs(sigs, CONFIG.bands, CONFIG.rows).tolist()}
    hit = np.mean([(2 * i, 2 * i + 1) in cand for i in range(pairs)])
    p = 1 - (1 - jaccard**CONFIG.rows) ** CONFIG.bands
    assert abs(hit - p) < 4 * math.sqrt(p * (1 - p) / pairs) + 1e-9
    # unrelated sets (J ~ 0) never meet
    assert all(j == i + 1 and i % 2 == 0 for i, j in cand)


def test_lsh_almost_never_proposes_low_jaccard_pairs():
    # J = 0.3: probability 1 - (1 - 0.3^13)^20 ~ 3e-6 per pair
    sigs = signatures_of_sets(set_pairs(0.3, 400, union=200, seed=3), CONFIG)
    assert len(candidate_pairs(sigs, CONFIG.bands, CONFIG.rows)) == 0


# --------------------------------------------------------------------------------------------
# verification


PARAGRAPHS = [
    "The river rose slowly through the night, and by morning the lower fields had become a shallow "
    "brown lake. Farmers who had lived in the valley for decades said they had never seen the water "
    "climb so high in early spring. Along the main road, volunteers stacked sandbags in front of the "
    "bakery, the post office and the old stone church, while children watched from the bridge as "
    "fence posts and broken branches drifted past. By noon the rain had stopped, but the level kept "
    "rising, fed by snow melting in the hills above the town. The mayor asked everyone living near "
    "the bank to move their cars to higher ground and to keep a bag packed in case the evacuation "
    "order came before dark.",
    "Learning a second language as an adult is less a matter of talent than of habit. Most people "
    "who succeed set aside a small amount of time every day rather than a large block once a week, "
    "because memory rewards frequent retrieval far more than long sessions of passive reading. "
    "Listening to short recordings, repeating sentences aloud and writing a few lines in a notebook "
    "each evening all force the brain to recall words it has only half learned. Mistakes are not a "
    "sign of failure but the raw material of progress: every correction tells the learner exactly "
    "where the gap between what they meant and what they said still lies.",
    "Bread is one of the oldest prepared foods, and its basic recipe has changed surprisingly little. "
    "Flour, water, salt and yeast are mixed into a dough, which is kneaded until the gluten forms a "
    "stretchy network able to trap the gas released during fermentation. The dough then rests and "
    "rises, is shaped into loaves, and rests again before it goes into a hot oven. Much of the flavour "
    "comes from time: a slow, cool fermentation lets enzymes break starch into sugars and gives "
    "bacteria the chance to produce the acids that make a sourdough taste sharp. A good crust needs "
    "steam in the first minutes of baking, so many home bakers put a tray of water on the bottom shelf.",
]


def test_verification_removes_lsh_false_positives():
    # rows=1: a pair is a candidate when any one of 20 permutations agrees, probability
    # 1 - (1 - J)^20 (0.9997 at J = 1/3); the exact check drops what is below the threshold
    a = PARAGRAPHS[0] + " " + PARAGRAPHS[1]
    b = PARAGRAPHS[1] + " " + PARAGRAPHS[2]  # shares one paragraph of two: J ~ 1/3
    c = PARAGRAPHS[0].upper()
    texts = [a, b, PARAGRAPHS[0], c]
    loose = MinHashConfig(bands=20, rows=1)
    cand = {tuple(p) for p in candidate_pairs(signatures(texts, loose), loose.bands, loose.rows).tolist()}
    assert (0, 1) in cand and (0, 2) in cand
    jac = jaccard_pairs(texts, np.array([[0, 1], [0, 2], [2, 3]]), loose.ngram)
    assert jac[0] < 0.4 and jac[1] < 0.8 and jac[2] == 1.0
    pairs, jv = minhash_pairs(texts, loose)
    assert pairs.tolist() == [[2, 3]] and jv.tolist() == [1.0]
    assert len(cand) >= 3  # the LSH false positives the check dropped
    # the same pair passes at a threshold below its Jaccard
    low = MinHashConfig(bands=20, rows=1, threshold=0.3)
    assert [0, 1] in minhash_pairs(texts, low)[0].tolist()


# --------------------------------------------------------------------------------------------
# real edits of real text at the defaults (5-grams, 20 x 13, threshold 0.8)


def drop_words(text: str, frac: float, seed: int) -> str:
    r = random.Random(seed)
    return " ".join(w for w in text.split() if r.random() >= frac)


def typos(text: str, frac: float, seed: int) -> str:
    """Replace ``frac`` of the characters (non-space ones) by another lowercase letter."""
    r = random.Random(seed)
    chars = list(text)
    spots = [i for i, ch in enumerate(chars) if not ch.isspace()]
    for i in r.sample(spots, round(frac * len(chars))):
        chars[i] = r.choice("abcdefghijklmnopqrstuvwxyz".replace(chars[i].lower(), ""))
    return "".join(chars)


def swap_halves(text: str) -> str:
    words = text.split()
    half = len(words) // 2
    return " ".join(words[half:] + words[:half])


EDITS = {
    "case": lambda t, i: t.upper(),
    "spacing": lambda t, i: t.replace(" ", "  \n", 20),
    "drop5pct-words": lambda t, i: drop_words(t, 0.05, i),
    "drop10pct-words": lambda t, i: drop_words(t, 0.10, i),
    "appended-sentence": lambda t, i: t + " A short note was added at the end of the text.",
    "swapped-halves": lambda t, i: swap_halves(t),
    "typos2pct-chars": lambda t, i: typos(t, 0.02, i),
    "typos5pct-chars": lambda t, i: typos(t, 0.05, i),
}

# measured exact 5-gram Jaccard of (paragraph i, edited copy) for the three paragraphs
# (682, 627, 667 characters); deterministic: the edits are seeded by the paragraph index
MEASURED = {
    "case": (1.0, 1.0, 1.0),
    "spacing": (1.0, 1.0, 1.0),
    "drop5pct-words": (0.926, 0.854, 0.860),
    "drop10pct-words": (0.882, 0.832, 0.793),
    "appended-sentence": (0.943, 0.939, 0.935),
    "swapped-halves": (0.987, 0.988, 0.987),
    "typos2pct-chars": (0.809, 0.816, 0.820),
    "typos5pct-chars": (0.613, 0.625, 0.609),  # each typo changes up to 5 shingles: never found
}


@pytest.fixture(scope="module")
def edited():
    """All originals and edited copies in one corpus, run through minhash_pairs once."""
    texts, where = list(PARAGRAPHS), {}
    for kind, edit in EDITS.items():
        for i, para in enumerate(PARAGRAPHS):
            where[kind, i] = len(texts)
            texts.append(edit(para, i))
    pairs, jac = minhash_pairs(texts, CONFIG)
    found = {tuple(p): float(j) for p, j in zip(pairs.tolist(), jac.tolist())}
    cand = {tuple(p) for p in candidate_pairs(signatures(texts, CONFIG), CONFIG.bands, CONFIG.rows).tolist()}
    return texts, where, found, cand


@pytest.mark.parametrize("kind", list(EDITS), ids=[
    f"{k}(J={'/'.join(f'{j:.2f}' for j in v)})" for k, v in MEASURED.items()])
def test_real_edits(edited, kind):
    texts, where, found, cand = edited
    for i in range(len(PARAGRAPHS)):
        pair = (i, where[kind, i])
        j = float(jaccard_pairs(texts, np.array([pair]), CONFIG.ngram)[0])
        assert j == pytest.approx(MEASURED[kind][i], abs=0.0015)
        assert j == pytest.approx(python_jaccard(*(texts[x] for x in pair), CONFIG.ngram), abs=1e-6)
        if j < CONFIG.threshold:
            assert pair not in found  # verification: never reported below the threshold
        elif j >= 0.85:
            # LSH candidate probability >= 0.96 at J = 0.85 (>= 0.9996 at 0.93); with seed 0 all are
            assert found[pair] == pytest.approx(j)
        else:
            # 0.8 <= J < 0.85: a candidate with probability 0.68 to 0.96; reported iff proposed
            assert (pair in found) == (pair in cand)
    if kind in ("case", "spacing", "swapped-halves", "appended-sentence", "drop5pct-words"):
        assert all((i, where[kind, i]) in found for i in range(len(PARAGRAPHS)))
    if kind == "typos5pct-chars":
        assert not any((i, where[kind, i]) in found for i in range(len(PARAGRAPHS)))


def test_unrelated_paragraphs_do_not_pair(edited):
    texts, where, found, _ = edited
    groups = {row: i for (_, i), row in where.items()} | {i: i for i in range(len(PARAGRAPHS))}
    assert all(groups[a] == groups[b] for a, b in found)


# --------------------------------------------------------------------------------------------
# signatures: reference, determinism, batching


def reference_signature(text: str, config: MinHashConfig) -> np.ndarray:
    """min over the text's shingle set of (h32 ^ mask) * odd, with the full [shingles, k] matrix."""
    h = shingle_hashes(text, config.ngram)
    if not len(h):
        return np.full(config.num_perm, EMPTY, dtype=np.uint32)
    mask, odd = permutation_params(config)
    return (((h >> np.uint64(32)).astype(np.uint32)[:, None] ^ mask) * odd).min(axis=0)


def corpus(n: int = 40, seed: int = 0) -> list[str]:
    r = random.Random(seed)
    words = " ".join(PARAGRAPHS).split()
    out = []
    for _ in range(n):
        k = r.choice([0, 1, 2, 3, 4, 8, 30, 120])
        out.append(" ".join(r.choice(words) for _ in range(k)) if k else r.choice(["", "  ", "\n"]))
    return out


def test_signatures_match_the_reference_at_any_batch_block_and_thread_count(monkeypatch):
    texts = corpus()
    ref = np.stack([reference_signature(t, CONFIG) for t in texts])
    assert (signatures(texts, CONFIG) == ref).all()
    assert (signatures(texts, CONFIG, batch=3, workers=2) == ref).all()
    assert (signatures(texts, CONFIG, batch=1, workers=1) == ref).all()
    monkeypatch.setattr(mh, "_CHUNK_SHINGLES", 37)  # blocks cut texts: partial minima are folded
    monkeypatch.setattr(mh, "_BATCH_CHARS", 100)
    assert (signatures(texts, CONFIG, batch=5, workers=3) == ref).all()
    assert 1 <= mh.default_workers() <= 8


def test_the_torch_permutation_step_matches_the_reference_bit_for_bit():
    """The device path (run here on the CPU through torch) in small chunks that cut texts, with empty
    texts among them: every value equals the brute-force reference."""
    from curate.dedup.minhash_torch import minhash_on_device

    texts = corpus(seed=2)
    ref = np.stack([reference_signature(t, CONFIG) for t in texts])
    hashes, offsets = mh.batch_shingles(texts, CONFIG.ngram)
    mask, odd = permutation_params(CONFIG)
    mins = minhash_on_device(hashes, offsets, mask, odd, "cpu", chunk=37)
    real = np.diff(offsets) > 0
    assert (mins[~real] == EMPTY).all()
    assert (np.minimum(mins[real], int(EMPTY) - 1).astype(np.uint32) == ref[real]).all()
    out = np.full(ref.shape, EMPTY, dtype=np.uint32)
    mh._on_device(out, hashes, offsets, mask, odd, "cpu")
    assert (out == ref).all()


@pytest.mark.gpu
def test_signatures_on_the_gpu_equal_the_numpy_ones():
    texts = corpus(200, seed=3) + PARAGRAPHS
    assert (signatures(texts, CONFIG, device="cuda") == signatures(texts, CONFIG)).all()


def test_signatures_are_deterministic_per_seed():
    texts = corpus(seed=1)
    a, b = signatures(texts, CONFIG), signatures(texts, CONFIG)
    assert a.dtype == np.uint32 and a.shape == (len(texts), 260)
    assert (a == b).all()
    other = signatures(texts, MinHashConfig(seed=1))
    nonempty = [i for i, t in enumerate(texts) if normalise(t)]
    assert (a[nonempty] != other[nonempty]).mean() > 0.99
    small = signatures(texts, MinHashConfig(bands=4, rows=2))
    assert small.shape == (len(texts), 8)


def test_signatures_of_sets_agree_with_signatures():
    texts = [PARAGRAPHS[0], "abc", ""]
    sets = [shingle_hashes(t, CONFIG.ngram) for t in texts]
    assert (signatures_of_sets(sets, CONFIG) == signatures(texts, CONFIG)).all()


# --------------------------------------------------------------------------------------------
# shingles, empty and short texts


def test_normalise():
    assert normalise("  Hello\t\nWORLD \u3000 ß ") == "hello world ss"
    assert normalise("") == normalise(" \n\t ") == ""


def test_shingle_hashes():
    assert shingle_hashes("", 5).dtype == np.uint64 and len(shingle_hashes("", 5)) == 0
    assert len(shingle_hashes(" \n ", 5)) == 0
    assert len(shingle_hashes("abc", 5)) == 1  # shorter than ngram: the whole text
    assert len(shingle_hashes("abcde", 5)) == 1
    assert len(set(shingle_hashes("abcd", 5)) | set(shingle_hashes("abcde", 5))) == 2
    h = shingle_hashes("Hello   World hello world", 5)
    assert (h == np.unique(h)).all()  # sorted unique
    assert len(h) == len(python_shingles("Hello   World hello world", 5))
    assert (shingle_hashes("HELLO\nworld", 5) == shingle_hashes("hello world", 5)).all()
    assert len(shingle_hashes("aaaaaaaa", 1)) == 1 and len(shingle_hashes("abab", 2)) == 2


def test_batch_shingles_match_python_shingles():
    # the vectorised hash over the concatenated batch: equal n-grams (in any text) hash
    # equal, different ones differ, windows never cross texts; odd characters included
    r = random.Random(0)
    alphabet = [" ", "\t", "\n", "\u3000", "\xa0", "a", "B", "ß", "Σ", "\ud800", "\U0001f600", "\x00", "İ"]
    for _ in range(200):
        texts = ["".join(r.choice(alphabet) for _ in range(r.randint(0, 25))) for _ in range(r.randint(1, 5))]
        n = r.randint(1, 6)
        hashes, offsets = batch_shingles(texts, n)
        seen: dict[str, int] = {}
        for i, t in enumerate(texts):
            nt = normalise(t)
            grams = [nt[k:k + n] for k in range(len(nt) - n + 1)] if len(nt) >= n else ([nt] if nt else [])
            got = hashes[offsets[i]:offsets[i + 1]].tolist()
            assert len(got) == len(grams)
            for g, h in zip(grams, got):
                assert seen.setdefault(g, h) == h
        assert len(set(seen.values())) == len(seen)


def test_empty_texts_never_pair():
    texts = ["", "   ", "\n\t", "some real text here", "Some real  text here"]
    sigs = signatures(texts, CONFIG)
    assert (sigs[:3] == EMPTY).all() and (sigs[3:] != EMPTY).all()
    assert candidate_pairs(sigs, CONFIG.bands, CONFIG.rows).tolist() == [[3, 4]]
    pairs, jac = minhash_pairs(texts, CONFIG)
    assert pairs.tolist() == [[3, 4]] and jac.tolist() == [1.0]
    assert jaccard_pairs(texts, np.array([[0, 1], [0, 3]]), 5).tolist() == [0.0, 0.0]


def test_very_short_texts():
    texts = ["ab", "AB ", "abc", "abcd", "ABCD", "x"]
    pairs, jac = minhash_pairs(texts, CONFIG)
    assert pairs.tolist() == [[0, 1], [3, 4]] and jac.tolist() == [1.0, 1.0]
    assert len(minhash_pairs([], CONFIG)[0]) == 0
    assert minhash_pairs(["only one"], CONFIG)[0].shape == (0, 2)
    assert signatures([], CONFIG).shape == (0, 260)


def test_jaccard_pairs_match_python_sets():
    texts = corpus(60, seed=2) + [PARAGRAPHS[0], drop_words(PARAGRAPHS[0], 0.1, 0)]
    r = random.Random(3)
    pairs = np.array([(r.randrange(len(texts)), r.randrange(len(texts))) for _ in range(300)] + [(60, 61)])
    got = jaccard_pairs(texts, pairs, 3)
    assert got.dtype == np.float32
    want = [python_jaccard(texts[a], texts[b], 3) for a, b in pairs]
    assert np.allclose(got, want, atol=1e-6)
    assert jaccard_pairs(texts, np.zeros((0, 2), np.int64), 5).shape == (0,)


# --------------------------------------------------------------------------------------------
# candidate pairs: shape, order, the big-bucket cap


def test_candidate_pairs_are_unique_sorted_and_ordered():
    rng = np.random.default_rng(0)
    sigs = rng.integers(0, 50, size=(300, 6), dtype=np.uint32)  # 3 bands x 2 rows: many buckets
    pairs = candidate_pairs(sigs, 3, 2)
    assert pairs.dtype == np.int64 and pairs.ndim == 2 and pairs.shape[1] == 2
    assert (pairs[:, 0] < pairs[:, 1]).all()
    keys = [tuple(p) for p in pairs.tolist()]
    assert keys == sorted(set(keys))
    # brute force: a pair shares a band
    want = {(i, j) for i in range(300) for j in range(i + 1, 300)
            if any((sigs[i, 2 * b:2 * b + 2] == sigs[j, 2 * b:2 * b + 2]).all() for b in range(3))}
    assert set(keys) == want
    assert candidate_pairs(np.arange(8, dtype=np.uint32).reshape(2, 4), 2, 2).shape == (0, 2)


def test_big_bucket_pairs_with_its_first_member_only():
    rng = np.random.default_rng(1)
    sigs = rng.integers(0, 2**31, size=(1510, 4), dtype=np.uint32)
    sigs[5:1505] = 7  # one bucket of 1500 rows in both bands
    sigs[1505:1508] = 9  # a bucket of 3
    got = lsh_candidates(sigs, 2, 2)
    assert got.capped_buckets == 2 and got.capped_members == 3000
    pairs = got.pairs.tolist()
    assert pairs[:1499] == [[5, j] for j in range(6, 1505)]
    assert pairs[1499:] == [[1505, 1506], [1505, 1507], [1506, 1507]]
    small_cap = lsh_candidates(sigs, 2, 2, max_bucket=2)
    assert small_cap.capped_buckets == 4
    assert small_cap.pairs.tolist()[-2:] == [[1505, 1506], [1505, 1507]]
    full = lsh_candidates(sigs, 2, 2, max_bucket=1500)
    assert full.capped_buckets == 0 and len(full.pairs) == 1500 * 1499 // 2 + 3


# --------------------------------------------------------------------------------------------
# validation


@pytest.mark.parametrize("field, value", [
    ("ngram", 0), ("ngram", -1), ("ngram", 2.5), ("bands", 0), ("rows", 0), ("threshold", 0.0),
    ("threshold", -0.1), ("threshold", 1.5), ("threshold", float("nan")), ("threshold", True), ("seed", -1),
])
def test_validation_errors_name_the_setting(field, value):
    config = MinHashConfig(**{field: value})
    with pytest.raises(CurateError, match=field) as err:
        config.validate()
    assert "\n" not in str(err.value)
    with pytest.raises(CurateError, match=field):
        signatures(["some text"], config)


def test_valid_edges_and_bad_arguments():
    MinHashConfig(threshold=1.0, ngram=1, bands=1, rows=1).validate()
    with pytest.raises(CurateError, match="bands"):
        candidate_pairs(np.zeros((3, 4), np.uint32), 0, 4)
    with pytest.raises(CurateError, match="bands\\*rows"):
        candidate_pairs(np.zeros((3, 5), np.uint32), 2, 2)
    with pytest.raises(CurateError, match="integers"):
        candidate_pairs(np.zeros((3, 4), np.float32), 2, 2)
    with pytest.raises(CurateError, match="ngram"):
        shingle_hashes("text", 0)
    with pytest.raises(CurateError, match="pairs"):
        jaccard_pairs(["a", "b"], np.array([[0, 2]]), 5)
    with pytest.raises(CurateError, match="batch"):
        signatures(["a"], CONFIG, batch=0)
