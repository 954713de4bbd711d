"""The text outlier check's character model: against a brute-force count, and on planted junk."""

from __future__ import annotations

import base64
import math
import random
from collections import Counter

import numpy as np
import pytest

from curate.audit.text_outlier import perplexities, text_outlier_scores
from curate.dedup.minhash import normalise

SENTENCE = ("the data model returns a list of values for each item in the table when the index is given and "
            "it raises an error if the key is missing from the file so that users can read write and update "
            "records with a simple call which keeps the code short and easy to test on any machine")
WORDS = SENTENCE.split(" ")


def prose(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        sentences = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."
                     for _ in range(rng.randint(3, 6))]
        out.append(" ".join(sentences))
    return out


def brute_perplexity(texts: list[str], ngram: int, alpha: float, buckets: int) -> list[float]:
    """Exact n-gram counts (no hashing): equal to the hashed model when no two n-grams share a bucket."""
    grams = []
    for t in texts:
        s = normalise(t)
        grams.append([s[i:i + ngram] for i in range(len(s) - ngram + 1)] if len(s) >= ngram else ([s] if s else []))
    counts = Counter(g for gs in grams for g in gs)
    total = sum(counts.values())
    return [(-sum(math.log((counts[g] + alpha) / (total + alpha * buckets)) for g in gs) / len(gs)) if gs else math.nan
            for gs in grams]


def test_perplexity_matches_a_brute_force_count():
    texts = ["Hello world, hello World!", "abc", "", "the cat sat on the mat", "  The  cat\tsat  "]
    got = perplexities(texts, ngram=4, buckets=1 << 22, alpha=0.5)
    want = brute_perplexity(texts, 4, 0.5, 1 << 22)
    np.testing.assert_allclose(got, want, rtol=1e-9)  # NaN where both are NaN
    assert np.isnan(got[2])


def test_planted_junk_is_flagged_and_prose_is_not():
    rng = random.Random(0)
    clean = prose(rng, 120)
    junk = [
        base64.b64encode(bytes(rng.getrandbits(8) for _ in range(400))).decode(),
        " ".join("".join(rng.choice("bcdfghjklmnpqrstvwxz") for _ in range(rng.randint(3, 8))) for _ in range(50)),
        "\n".join(",".join(f"{rng.uniform(-1e3, 1e3):.3f}" for _ in range(6)) for _ in range(10)),
        " ".join("".join(rng.choice("абвгдеёжзийклмнопрстуфхцчшщыэюя") for _ in range(rng.randint(3, 9)))
                 for _ in range(40)),
    ]
    scores = text_outlier_scores(clean + junk)
    assert (scores[len(clean):] >= 0.5).all(), scores[len(clean):]
    assert (scores[:len(clean)] >= 0.5).mean() <= 0.02


def test_a_cluster_of_alike_junk_is_still_flagged():
    """Ten base64 blobs among 100 texts: each is the others' nearest neighbour (a kNN distance misses them),
    but their characters are still unlike the dataset's."""
    rng = random.Random(1)
    clean = prose(rng, 100)
    blobs = [base64.b64encode(bytes(rng.getrandbits(8) for _ in range(300))).decode() for _ in range(10)]
    scores = text_outlier_scores(clean + blobs)
    assert (scores[len(clean):] >= 0.5).all()
    assert (scores[:len(clean)] >= 0.5).sum() <= 2


def test_empty_texts_are_not_judged():
    scores = text_outlier_scores(["", None, "   "] + prose(random.Random(2), 10))
    assert np.isnan(scores[:3]).all() and np.isfinite(scores[3:]).all()
    assert np.isnan(text_outlier_scores(["only", "two"])).all()  # too few texts to have a scale


@pytest.mark.parametrize("block", [1, 3, 4096])
def test_blocks_do_not_change_the_scores(block):
    texts = prose(random.Random(3), 12) + ["zzqx vbnm"]
    np.testing.assert_allclose(perplexities(texts, block=block), perplexities(texts), rtol=1e-12)


def test_the_stage_judges_text_outliers_without_a_store(tmp_path):
    """A text workspace with no embedding store: ``outlier`` still runs for texts, from the character model."""
    import json

    from curate.audit.stage import AuditConfig, audit
    from curate.ingest import IngestConfig, ingest
    from curate.workspace import Workspace

    rng = random.Random(4)
    texts = prose(rng, 60) + [base64.b64encode(bytes(rng.getrandbits(8) for _ in range(300))).decode()]
    path = tmp_path / "texts.jsonl"
    path.write_text("".join(json.dumps({"id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(texts)))
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(path)], IngestConfig())
    result = audit(ws, AuditConfig(), progress=False)
    table = result.table
    assert "outlier" in table.column_names and "outlier" in result.meta["checks"]
    issues = dict(zip(table.column("id").to_pylist(), table.column("issues").to_pylist()))
    flagged = sorted(i for i, found in issues.items() if "outlier" in found)
    assert flagged == ["t60"], flagged
