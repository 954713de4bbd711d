"""Uncertainty scores of model outputs: least-confidence, margin, entropy, BALD.

Every score is "higher = more uncertain", so every uncertainty strategy is "take the top
``budget`` candidates". Scores are computed blockwise in torch (on the GPU when present):
MC-dropout tensors [N, T, C] can be far larger than the [N] result.

- least-confidence: ``1 - max_c p_c``
- margin:           ``1 - (p_(1) - p_(2))`` (one minus the gap between the two top classes)
- entropy:          ``-sum_c p_c log p_c`` (nats)
- BALD:             ``H(mean_t p_t) - mean_t H(p_t)``: the mutual information between the
                    prediction and the model weights, from T MC-dropout samples (Houlsby 2011).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from curate.device import resolve_device

BLOCK = 65536


def _entropy(p: torch.Tensor) -> torch.Tensor:
    return -(p * torch.log(p.clamp_min(1e-30))).sum(dim=-1)


def _least_confidence(p: torch.Tensor) -> torch.Tensor:
    return 1.0 - p.max(dim=1).values


def _margin(p: torch.Tensor) -> torch.Tensor:
    if p.shape[1] < 2:
        return torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)
    top = p.topk(2, dim=1).values
    return 1.0 - (top[:, 0] - top[:, 1])


def _bald(mc: torch.Tensor) -> torch.Tensor:
    return _entropy(mc.mean(dim=1)) - _entropy(mc).mean(dim=1)


SCORES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "least-confidence": _least_confidence,
    "margin": _margin,
    "entropy": _entropy,
    "bald": _bald,
}


def uncertainty(name: str, values: np.ndarray, device: str | torch.device = "auto", block: int = BLOCK) -> np.ndarray:
    """Per-row score ``name`` of probabilities [N, C] (or MC samples [N, T, C] for ``bald``), float64."""
    fn = SCORES[name]
    dev = resolve_device(device)
    out = np.empty(len(values), dtype=np.float64)
    for lo in range(0, len(values), block):
        part = torch.from_numpy(np.ascontiguousarray(values[lo:lo + block], dtype=np.float64)).to(dev)
        out[lo:lo + len(part)] = fn(part).cpu().numpy()
    return out


def least_confidence(probs: np.ndarray, device: str | torch.device = "auto") -> np.ndarray:
    return uncertainty("least-confidence", probs, device)


def margin(probs: np.ndarray, device: str | torch.device = "auto") -> np.ndarray:
    return uncertainty("margin", probs, device)


def entropy(probs: np.ndarray, device: str | torch.device = "auto") -> np.ndarray:
    return uncertainty("entropy", probs, device)


def bald(mc: np.ndarray, device: str | torch.device = "auto") -> np.ndarray:
    return uncertainty("bald", mc, device)


def top_scores(scores: np.ndarray, candidates: np.ndarray, budget: int) -> np.ndarray:
    """The ``budget`` candidate rows with the highest scores, best first; ties go to the smaller row."""
    rows = np.flatnonzero(candidates)
    order = np.argsort(-scores[rows], kind="stable")
    return rows[order[:budget]]
