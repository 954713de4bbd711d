"""``--model st:<folder>``: a user's own text model folder, embedded offline.

A tiny random BERT with a WordPiece vocabulary is written into a plain Hugging Face folder
and, through sentence-transformers, into a sentence-transformers folder whose pooling is
switched to the CLS token (so the test sees that the folder's own pipeline is honoured).
The embed stage's vectors must equal ``SentenceTransformer(folder).encode`` on the same
texts, with every socket connection refused while curate loads and embeds.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import sys

import numpy as np
import pytest

from curate.errors import CurateError

HAVE_ST = importlib.util.find_spec("sentence_transformers") is not None
needs_st = pytest.mark.skipif(not HAVE_ST, reason="pip install 'curate[text]'")

WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "man", "is", "playing", "guitar", "market", "fell",
         "sharply", "today", "child", "reads", "book", "in", "library", "someone", "plays", "an", "acoustic",
         "stock", "prices", "dropped", "this", "morning", "and", "of", "to", "it"]
TEXTS = [
    "The cat sat on the mat.",
    "A man is playing a guitar.",
    "Someone plays an acoustic guitar in the library and the child reads a book.",
    "Stock prices dropped sharply this morning.",
    "dog",
    "The market fell. " * 40,  # past the tiny model's 64-token window
    "Ünïcödé zzz qqq: unknown pieces",
    "a b c d e f",
]


def _block_network(*args, **kwargs):
    raise AssertionError("the st: family must not touch the network")


def _tiny_folders(root) -> tuple[str, str]:
    """(plain Hugging Face folder, sentence-transformers folder with CLS pooling)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    hf = root / "tiny-hf"
    hf.mkdir()
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", ":", *WORDS, *letters,
             *(f"##{c}" for c in letters)]
    (hf / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(hf / "vocab.txt"), do_lower_case=True, model_max_length=64)
    tokenizer.save_pretrained(str(hf))
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).eval().save_pretrained(str(hf))

    st = root / "tiny-st"
    SentenceTransformer(str(hf), device="cpu", local_files_only=True).save(str(st))
    pooling = st / "1_Pooling" / "config.json"
    cfg = json.loads(pooling.read_text())
    cfg.update(pooling_mode_mean_tokens=False, pooling_mode_cls_token=True)
    pooling.write_text(json.dumps(cfg))
    return str(hf), str(st)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    if not HAVE_ST:
        pytest.skip("pip install 'curate[text]'")
    return _tiny_folders(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def text_ws(tmp_path_factory):
    from curate.ingest import IngestConfig, ingest
    from curate.workspace import Workspace

    root = tmp_path_factory.mktemp("ws")
    src = root / "t.jsonl"
    src.write_text("".join(json.dumps({"id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(TEXTS)))
    ws = Workspace(str(root / "ws"))
    ingest(ws, [str(src)], IngestConfig(), progress=False)
    return ws


def _reference(folder: str) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(folder, device="cpu", local_files_only=True).encode(
        TEXTS, normalize_embeddings=True, convert_to_numpy=True)


@needs_st
@pytest.mark.slow
@pytest.mark.parametrize("which", [0, 1], ids=["huggingface-folder", "sentence-transformers-folder"])
def test_embed_stage_matches_sentence_transformers_offline(folders, text_ws, which, monkeypatch):
    from curate.embed.stage import EmbedConfig, embed
    from curate.embed.store import open_store

    folder = folders[which]
    monkeypatch.setattr(socket.socket, "connect", _block_network)
    result = embed(text_ws, EmbedConfig(model=f"st:{folder}", device="cpu", batch_size=3, workers=2),
                   progress=False)
    monkeypatch.undo()
    assert result.meta["embedded"] == len(TEXTS) and result.meta["failed"] == 0
    store = open_store(text_ws, result.meta["slug"])
    assert store.ids == [f"t{i}" for i in range(len(TEXTS))]
    ours = store.vectors.astype(np.float32)
    reference = _reference(folder)
    assert ours.shape == reference.shape == (len(TEXTS), 32)
    cosine = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.999, cosine
    # and the texts are really told apart (a constant vector would pass the cosine check for one text only)
    assert (ours @ ours.T)[np.triu_indices(len(TEXTS), 1)].min() < 0.99


@needs_st
@pytest.mark.slow
def test_two_folders_differ_and_the_store_follows_the_weights(folders, tmp_path):
    from curate.embed.local_text import LocalTextEmbedder

    hf, st = (LocalTextEmbedder(f) for f in folders)
    assert hf.slug != st.slug and hf.identity() != st.identity()
    assert hf.dim == st.dim == 32 and hf.kinds == {"text"}
    copy = shutil.copytree(folders[0], tmp_path / "copy")
    before = LocalTextEmbedder(copy).identity()
    weights = copy / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert LocalTextEmbedder(copy).identity()["files"] != before["files"]


@needs_st
@pytest.mark.slow
def test_length_sorted_batches_equal_batch_size_one(folders):
    from curate.embed.base import resolve_runtime
    from curate.embed.local_text import LocalTextEmbedder
    from curate.embed.runner import LoaderSettings, embed_rows

    emb = LocalTextEmbedder(folders[0])
    emb.setup(resolve_runtime("cpu", "fp32"))
    rows = [{"kind": "text", "text": t} for t in TEXTS]
    sorted_batches, failed = embed_rows(emb, rows, LoaderSettings(batch_size=4, text_tokens=200))
    one_by_one, failed_one = embed_rows(emb, rows, LoaderSettings(batch_size=1))
    assert failed == failed_one == {}
    np.testing.assert_allclose(sorted_batches.astype(np.float32), one_by_one.astype(np.float32), atol=2e-3)


def test_missing_folder_is_one_clear_error(tmp_path):
    from curate.embed.registry import load_embedder

    with pytest.raises(CurateError, match="no model folder at"):
        load_embedder(f"st:{tmp_path / 'nope'}")
    with pytest.raises(CurateError, match="needs a folder"):
        load_embedder("st:")
    with pytest.raises(CurateError, match="not a model folder"):
        load_embedder(f"st:{tmp_path}")


def test_missing_library_names_the_extra(tmp_path, monkeypatch):
    from curate.embed.registry import load_embedder

    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(CurateError, match=r"pip install 'curate\[text\]'"):
        load_embedder(f"st:{tmp_path}")


def test_stage_accepts_the_family(tmp_path):
    from curate.embed.stage import Embed, EmbedConfig

    Embed().validate(EmbedConfig(model=f"st:{tmp_path}"))  # the folder is checked when the model loads
    with pytest.raises(CurateError, match="st:"):
        Embed().validate(EmbedConfig(model="sentence:x"))
