"""The ``quality`` keep policy (the best copy of a duplicate group survives) and the
exact-duplicate reason rule of the dedup decision table. Orders are worked out by hand."""

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from curate.dedup.exact import ExactDedupConfig
from curate.dedup.keep import parse_policy, priority_ranks
from curate.dedup.knn import KnnConfig, KnnDedup
from curate.dedup.quality import image_sharpness, sharpness, text_keys
from curate.dedup.semantic import SemanticConfig, semantic_dedup
from curate.embed.payloads import PayloadFetcher
from curate.embed.stage import EmbedConfig, embed
from curate.errors import CurateError
from curate.ingest import IngestConfig, ingest
from curate.manifest import to_table
from curate.runner import run_stage
from curate.workspace import Workspace
from tests.conftest import vector_workspace


def angle(deg, d=3):
    v = np.zeros(d)
    v[0], v[1] = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return v


def manifest_of(rows):
    return to_table([{"id": f"r{i}", "source": "s", "source_kind": "t", "status": "ok", **r}
                     for i, r in enumerate(rows)])


def order(ranks, rows=None):
    """Manifest rows (or the given labels) best first."""
    rows = np.arange(len(ranks)) if rows is None else np.asarray(rows)
    return rows[np.argsort(ranks)].tolist()


def quality(manifest, rows=None, sharp=None):
    rows = np.arange(manifest.num_rows) if rows is None else np.asarray(rows)
    return priority_ranks("quality", np.zeros(len(rows)), rows, manifest, sharpness=sharp)


IMAGES = [
    {"kind": "image", "width": 100, "height": 100, "bytes": 10_000},  # 0: 10k px, 1.0 B/px
    {"kind": "image", "width": 200, "height": 100, "bytes": 5_000},   # 1: 20k px, 0.25 B/px: most pixels
    {"kind": "image", "width": 100, "height": 100, "bytes": 20_000},  # 2: 10k px, 2.0 B/px
    {"kind": "image", "width": 100, "height": 100, "bytes": 10_000},  # 3: as 0
    {"kind": "image", "width": 50, "height": 200, "bytes": 10_000},   # 4: 10k px, 1.0 B/px: as 0
    {"kind": "image", "width": None, "height": 100, "bytes": 90_000},  # 5: size unknown: last
]


def test_images_rank_by_pixels_then_bytes_per_pixel_then_manifest_order():
    assert order(quality(manifest_of(IMAGES))) == [1, 2, 0, 3, 4, 5]


def test_sharpness_breaks_ties_of_pixels_and_bytes_per_pixel_unknown_last():
    sharp = np.array([np.nan, 1.0, 0.5, 5.0, 9.0, 99.0])
    # 0, 3, 4 tie on pixels and B/px: 4 (9.0) > 3 (5.0) > 0 (unknown); sharpness never beats pixels/bytes
    assert order(quality(manifest_of(IMAGES), sharp=sharp)) == [1, 2, 4, 3, 0, 5]
    equal = np.array([7.0, 1.0, 0.5, 7.0, 7.0, np.nan])  # equal sharpness: manifest order
    assert order(quality(manifest_of(IMAGES), sharp=equal)) == [1, 2, 0, 3, 4, 5]


def test_ranks_follow_the_store_rows_and_sharpness_is_indexed_by_manifest_row():
    manifest = manifest_of(IMAGES)
    rows = np.array([4, 0, 3])  # store rows -> manifest rows, not in manifest order
    sharp = np.full(manifest.num_rows, np.nan)
    sharp[3] = 2.0
    ranks = quality(manifest, rows, sharp)
    assert ranks.tolist() == [2, 1, 0]  # manifest row 3 (sharpness known) first, then 0, then 4
    assert quality(manifest, rows).tolist() == [2, 0, 1]  # no sharpness: manifest order 0, 3, 4


TEXTS = [
    {"kind": "text", "text": "the cat  sat"},               # 0: "the cat sat": 11 chars, 3 words
    {"kind": "text", "text": "the the the"},                # 1: 11 chars, 1 distinct word
    {"kind": "text", "text": "  a cat sat on the mat\n"},   # 2: "a cat sat on the mat": 20 chars
    {"kind": "text", "text": "The Cat Sat"},                # 3: 11 chars, 3 words: ties 0
    {"kind": "text", "text": "abc"},                        # 4: 3 chars, 1 word
    {"kind": "text", "text": "x" + " " * 20 + "y"},         # 5: "x y": 3 chars (22 raw), 2 words
    {"kind": "text", "text": "THE the The cat"},            # 6: 15 chars, 2 distinct words (case-folded)
    {"kind": "text", "text": None},                         # 7: no text: last
]


def test_texts_rank_by_normalised_length_then_unique_words_then_distinct_words_then_manifest_order():
    # 4 "abc" and 5 "x y" tie on length; "abc" has one word no other text has, "x y" two: 4 first
    assert order(quality(manifest_of(TEXTS))) == [2, 6, 0, 3, 1, 4, 5, 7]


def test_texts_keep_the_original_over_a_typo_copy_and_an_all_caps_copy():
    original = "Return the number of items in the queue, or zero when it is empty."
    typo = "Return the numbxr of items in the qeeue, or zero when it is empty."  # same length
    others = [{"kind": "text", "text": t} for t in ("The number of queue items.", "Return zero when empty.")]
    for copy in (typo, original.upper()):
        for rows in ([original, copy], [copy, original]):  # either manifest order
            ranks = quality(manifest_of([{"kind": "text", "text": t} for t in rows] + others))
            assert rows[int(np.argmin(ranks[:2]))] == original, copy


def test_spelling_keys_match_the_python_definition():
    import random

    import pyarrow as pa

    from curate.dedup.quality import spelling_keys

    rng = random.Random(1)
    parts = ["a", "B", "cat", "Cat", " ", "\n", "é", "É", "ß", "xy", "Zq"]
    texts = [None, "", " "] + ["".join(rng.choice(parts) for _ in range(rng.randint(0, 10))) for _ in range(500)]
    unique, capitals = spelling_keys(pa.array(texts))
    words = [set(t.casefold().split()) if t is not None else set() for t in texts]
    for i, t in enumerate(texts):
        if t is None:
            assert np.isnan(unique[i]) and np.isnan(capitals[i])
            continue
        alone = sum(all(w not in words[j] for j in range(len(texts)) if j != i) for w in words[i])
        assert unique[i] == alone, t
        assert capitals[i] == pytest.approx(sum(c.isupper() for c in t) / max(len(t), 1)), t


def test_text_keys_match_the_python_definition_on_ascii_and_unicode_texts():
    import random

    import pyarrow as pa

    rng = random.Random(0)  # whitespace runs at both ends, \x1c (whitespace to str.split), case, ß, NBSP
    parts = ["a", "B", "b", "A", " ", "  ", "\t", "\n", "\x1c", "é", "É", "ß", "SS", "ss", "\u2028", "\xa0", "Word"]
    texts = [None, "", "   "] + ["".join(rng.choice(parts) for _ in range(rng.randint(0, 12))) for _ in range(2000)]
    length, distinct = text_keys(pa.array(texts))
    for t, got_length, got_distinct in zip(texts, length, distinct):
        if t is None:
            assert np.isnan(got_length) and np.isnan(got_distinct)
        else:
            assert (got_length, got_distinct) == (len(" ".join(t.split())), len(set(t.casefold().split()))), t


def test_mixed_kinds_rank_within_their_own_kind():
    rows = [IMAGES[0], TEXTS[4], IMAGES[1], TEXTS[2], TEXTS[0]]
    ranks = quality(manifest_of(rows))
    # images: 2 before 0; texts: 3 before 4 before 1
    assert ranks[2] < ranks[0] and ranks[3] < ranks[4] < ranks[1]
    # across kinds: place within the kind (image 2: 0/2, image 0: 1/2; texts 0/3, 1/3, 2/3), then manifest order
    assert order(ranks) == [2, 3, 4, 0, 1]


def test_policy_errors_and_defaults():
    assert parse_policy("quality") == ("quality", None, False)
    manifest = manifest_of(IMAGES)
    with pytest.raises(CurateError, match="needs the manifest"):
        priority_ranks("quality", np.zeros(2), np.arange(2))
    with pytest.raises(CurateError, match="sharpness has 2 values"):
        quality(manifest, sharp=np.zeros(2))
    with pytest.raises(CurateError, match="use quality, hard"):
        parse_policy("best")
    assert SemanticConfig().keep == KnnConfig().keep == "quality"
    assert ExactDedupConfig().keep == "first"


def noise(size=(64, 48), seed=0):
    arr = np.random.default_rng(seed).integers(0, 255, size=(size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(arr, "RGB")


def test_sharpness_is_higher_for_the_sharper_copy_and_leaves_the_image_alone():
    img = noise((300, 200))
    blurred = img.filter(ImageFilter.GaussianBlur(2))
    assert sharpness(img) > 2 * sharpness(blurred) > 0
    assert img.size == (300, 200) and img.mode == "RGB"  # measured on its own grey thumbnail
    assert sharpness(Image.new("L", (50, 50), 128)) == 0.0  # flat: no edges
    assert np.isnan(sharpness(Image.new("RGB", (2, 40))))  # too small to measure


def png(img):
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def jpeg(img, quality):
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def image_workspace(tmp_path, files, vectors):
    """An image-folder workspace whose embeddings are ``vectors[file name]`` exactly."""
    folder = tmp_path / "images"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(folder)], IngestConfig())
    ids = ws.read_manifest(["id"]).column("id").to_pylist()
    npy = tmp_path / "vectors.npy"
    np.save(npy, np.asarray([next(v for n, v in vectors.items() if i.endswith(n)) for i in ids], np.float32))
    embed(ws, EmbedConfig(model=f"precomputed:{npy}", workers=0), progress=False)
    return ws, ids


def decisions(result):
    return {r["id"]: r for r in result.run.table.to_pylist()}


def test_semantic_dedup_keeps_the_original_image_over_smaller_and_recompressed_copies(tmp_path):
    original = noise((64, 48))
    files = {  # the degraded copies come first in manifest order
        "a_small.png": png(original.resize((32, 24))),          # fewer pixels
        "b_jpeg.jpg": jpeg(original, 30),                        # same pixels, fewer bytes per pixel
        "c_original.png": png(original),
        "d_blurred.png": png(original.filter(ImageFilter.GaussianBlur(1.5))),
        "e_other.png": png(noise(seed=1)),
    }
    vectors = {"a_small.png": angle(0.5), "b_jpeg.jpg": angle(1), "c_original.png": angle(0),
               "d_blurred.png": angle(0.7), "e_other.png": angle(90)}
    ws, ids = image_workspace(tmp_path, files, vectors)
    name = {i: next(n for n in files if i.endswith(n)) for i in ids}
    got = {name[i]: r for i, r in decisions(semantic_dedup(ws, SemanticConfig(threshold=(0.99,), clusters=1))).items()}
    assert got["c_original.png"]["kept"] and got["e_other.png"]["kept"]
    original_id = next(i for i in ids if name[i] == "c_original.png")
    for copy in ("a_small.png", "b_jpeg.jpg", "d_blurred.png"):
        assert not got[copy]["kept"] and got[copy]["duplicate_of"] == original_id
        assert got[copy]["reason"] == "semantic-duplicate"
    assert got["c_original.png"]["group"] == got["a_small.png"]["group"] is not None
    knn = {name[i]: r for i, r in decisions(run_stage(ws, KnnDedup(), KnnConfig(threshold=(0.99,)))).items()}
    assert [n for n, r in knn.items() if r["kept"]] == ["c_original.png", "e_other.png"]

    # sharpness, for the rows asked only (e.g. group members), through the payload fetcher
    manifest = ws.read_manifest()
    row = {name[i]: m for m, i in enumerate(ids)}
    asked = [row["c_original.png"], row["d_blurred.png"]]
    sharp = image_sharpness(np.array(asked), manifest, PayloadFetcher().fetch)
    assert sharp.shape == (manifest.num_rows,)
    assert sharp[row["c_original.png"]] > sharp[row["d_blurred.png"]] > 0
    assert np.isnan(np.delete(sharp, asked)).all()
    assert np.array_equal(image_sharpness(np.array(asked), manifest), sharp, equal_nan=True)  # default fetcher
    broken = image_sharpness(np.array(asked), manifest, lambda r: b"not an image")
    assert np.isnan(broken).all()  # unreadable: unknown, no error


def test_semantic_dedup_keeps_the_most_complete_text(tmp_path):
    texts = ["the quick brown fox", "the quick brown fox jumps over the lazy dog",
             "the  quick brown fox jumps over the lazy", "an unrelated sentence about something else"]
    ws = vector_workspace(tmp_path, "w", [angle(0.5), angle(0), angle(1), angle(90)], texts)
    got = decisions(semantic_dedup(ws, SemanticConfig(threshold=(0.99,), clusters=1)))
    assert [got[f"w{i}"]["kept"] for i in range(4)] == [False, True, False, True]
    assert got["w0"]["duplicate_of"] == got["w2"]["duplicate_of"] == "w1"
    knn = decisions(run_stage(ws, KnnDedup(), KnnConfig(threshold=(0.99,))))
    assert [knn[f"w{i}"]["kept"] for i in range(4)] == [False, True, False, True]


def test_exact_duplicate_points_at_the_kept_byte_twin_of_its_group(tmp_path):
    # all texts tie on quality (10 chars, the same 2 words): priority is manifest order w0, w1, w2.
    # --chain: w1 ~ w0 (cos 5deg) and w2 ~ w1 (cos 5deg, better than w2 ~ w0 at cos 10deg), so the
    # chain links w2 to the removed w1; w2's bytes equal the KEPT w0 of its group: exact-duplicate of w0
    ws = vector_workspace(tmp_path, "w", [angle(0), angle(5), angle(10)], ["alpha beta", "beta alpha", "alpha beta"])
    got = decisions(semantic_dedup(ws, SemanticConfig(threshold=(0.99,), clusters=1, chain=True)))
    assert [got[f"w{i}"]["kept"] for i in range(3)] == [True, False, False]
    assert (got["w1"]["reason"], got["w1"]["duplicate_of"]) == ("semantic-duplicate", "w0")
    assert (got["w2"]["reason"], got["w2"]["duplicate_of"]) == ("exact-duplicate", "w0")
    assert got["w0"]["group"] == got["w1"]["group"] == got["w2"]["group"] == 0


def test_a_chain_through_a_removed_byte_twin_stays_exact(tmp_path):
    # w2 is a byte copy of w1, which is removed; the kept w0 differs: still exact, of w1 (all tie on quality)
    ws = vector_workspace(tmp_path, "w", [angle(0), angle(5), angle(10)], ["alpha beta", "beta alpha", "beta alpha"])
    got = decisions(semantic_dedup(ws, SemanticConfig(threshold=(0.99,), clusters=1, chain=True)))
    assert [got[f"w{i}"]["kept"] for i in range(3)] == [True, False, False]
    assert (got["w2"]["reason"], got["w2"]["duplicate_of"]) == ("exact-duplicate", "w1")


def test_byte_copies_are_exact_duplicates_whatever_the_keep_policy(tmp_path):
    texts = ["same words here", "a longer near copy of same words", "same words here"]
    ws = vector_workspace(tmp_path, "w", [angle(0), angle(0.5), angle(0)], texts)
    for keep in ("quality", "hard", "easy", "random"):
        got = decisions(semantic_dedup(ws, SemanticConfig(threshold=(0.99,), clusters=1, keep=keep, seed=1)))
        kept = [i for i in range(3) if got[f"w{i}"]["kept"]]
        assert len(kept) == 1
        for i in {0, 2} - set(kept):
            twin = ({0, 2} - {i}).pop()
            want = ("exact-duplicate", f"w{twin}") if twin in kept else ("semantic-duplicate", f"w{kept[0]}")
            assert (got[f"w{i}"]["reason"], got[f"w{i}"]["duplicate_of"]) == want, keep
        if keep == "quality":
            assert kept == [1]


def test_spelling_keys_above_the_vocabulary_sample_use_the_sample(monkeypatch):
    """Past VOCABULARY_TEXTS texts a word is "alone" when no sampled text but its own holds it;
    chunked splitting gives the same answer as the definition."""
    import pyarrow as pa

    from curate.dedup import quality

    monkeypatch.setattr(quality, "VOCABULARY_TEXTS", 40)
    monkeypatch.setattr(quality, "CHUNK_TEXTS", 7)
    rng = np.random.default_rng(4)
    vocab = ["cat", "dog", "Bird", "fish", "é", "cow", "teh", "hte"]
    texts = [" ".join(rng.choice(vocab, size=rng.integers(0, 5))) for _ in range(100)] + [None]
    unique, capitals = quality.spelling_keys(pa.array(texts), seed=3)
    sample = set(np.random.default_rng(3).choice(len(texts), 40, replace=False).tolist())
    words = [set(t.casefold().split()) if t is not None else set() for t in texts]
    for i, t in enumerate(texts):
        if t is None:
            assert np.isnan(unique[i])
            continue
        alone = sum(all(w not in words[j] for j in sample if j != i) for w in words[i])
        assert unique[i] == alone, (i, t)
