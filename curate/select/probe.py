"""A linear probe for users without a model: multinomial logistic regression in torch.

Trained full-batch with L-BFGS on the labeled items' features (embeddings) and labels,
from zero weights, so the fit is deterministic for given inputs (the seed only fixes torch's
global RNG for good measure). Features are centred and scaled (statistics of the pool when given).
The loss is mean cross-entropy + ``l2/2 · |W|²``. Scoring the pool is blockwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from curate.device import resolve_device
from curate.errors import CurateError


@dataclass(frozen=True)
class ProbeConfig:
    l2: float = 1e-3
    max_iter: int = 200
    seed: int = 0
    device: str | torch.device = "auto"


@dataclass(frozen=True)
class Probe:
    weight: np.ndarray  # [d, C]
    bias: np.ndarray  # [C]
    mean: np.ndarray  # [d]
    scale: np.ndarray  # [d]


def train_probe(x: np.ndarray, y: np.ndarray, num_classes: int | None = None,
                config: ProbeConfig = ProbeConfig(), stats_from: np.ndarray | None = None) -> Probe:
    """Fit on features ``x`` [n, d] and integer labels ``y`` [n] (0..C-1).

    ``stats_from``: rows to take the standardisation statistics from (e.g. the whole pool: with
    ten labels, per-dimension spreads of the labeled rows alone are noise); default ``x``.
    """
    y = np.asarray(y, dtype=np.int64)
    if len(y) == 0:
        raise CurateError("the linear probe needs labeled items (with labels) to train on")
    num_classes = int(num_classes if num_classes is not None else y.max() + 1)
    dev = resolve_device(config.device)
    torch.manual_seed(config.seed)
    ref = stats_from if stats_from is not None else x
    if len(ref) > 100_000:  # statistics from a seeded sample: bounded memory on big pools
        ref = ref[np.sort(np.random.default_rng(config.seed).choice(len(ref), 100_000, replace=False))]
    ref = np.asarray(ref, dtype=np.float64)
    mean = torch.from_numpy(ref.mean(axis=0)).to(dev)
    scale = torch.from_numpy(ref.std(axis=0)).to(dev).clamp_min(1e-6) if len(ref) > 1 else torch.ones_like(mean)
    xt = (torch.from_numpy(np.asarray(x, dtype=np.float64)).to(dev) - mean) / scale
    yt = torch.from_numpy(y).to(dev)
    w = torch.zeros((x.shape[1], num_classes), dtype=torch.float64, device=dev, requires_grad=True)
    b = torch.zeros(num_classes, dtype=torch.float64, device=dev, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=config.max_iter, tolerance_grad=1e-9,
                            tolerance_change=1e-10, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w + b, yt) + 0.5 * config.l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return Probe(w.detach().cpu().numpy(), b.detach().cpu().numpy(), mean.cpu().numpy(), scale.cpu().numpy())


def predict_proba(probe: Probe, x: np.ndarray, device: str | torch.device = "auto", block: int = 65536) -> np.ndarray:
    """Class probabilities [n, C] (float32) of rows ``x``, blockwise."""
    dev = resolve_device(device)
    w, b = torch.from_numpy(probe.weight).to(dev), torch.from_numpy(probe.bias).to(dev)
    mean, scale = torch.from_numpy(probe.mean).to(dev), torch.from_numpy(probe.scale).to(dev)
    out = np.empty((len(x), len(probe.bias)), dtype=np.float32)
    for lo in range(0, len(x), block):
        part = torch.from_numpy(np.asarray(x[lo:lo + block], dtype=np.float64)).to(dev)
        out[lo:lo + len(part)] = torch.softmax(((part - mean) / scale) @ w + b, dim=1).cpu().numpy()
    return out
