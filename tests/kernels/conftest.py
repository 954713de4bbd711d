"""Kernel tests: the Triton interpreter switch, brute-force oracles and per-dtype tolerances.

Triton reads ``TRITON_INTERPRET`` when ``triton.language`` is first imported (its library
functions are decorated then), so it is set here, at import, when there is no GPU. In a full
test run something else (open_clip, the dedup stage) has usually imported triton already: then
the ``interpreted`` tests are skipped here and ``test_interpreted_in_subprocess`` runs them in a
fresh interpreter instead, so they always run exactly once.
"""

import os

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from curate.kernels._runtime import HAS_TRITON, interpreting  # noqa: E402

IN_PROCESS = HAS_TRITON and interpreting()

# Kernel vs reference, per input dtype. Both accumulate in fp32 and fp16 products are exact in fp32,
# so only the summation order differs; fp16 allows for GPU tensor-core accumulation.
TOL = {torch.float32: {"atol": 1e-5, "rtol": 1e-5}, torch.float16: {"atol": 2e-3, "rtol": 2e-3}}


def pytest_configure(config):
    config.addinivalue_line("markers", "interpreted: a Triton kernel run on CPU tensors by the Triton interpreter")


def pytest_collection_modifyitems(config, items):
    if IN_PROCESS:
        return
    why = ("triton is not installed" if not HAS_TRITON else
           "triton was imported before TRITON_INTERPRET=1; test_interpreted_in_subprocess runs these")
    for item in items:
        if "interpreted" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=why))


def unit_rows(n: int, d: int, seed: int = 0, dtype=torch.float32, dups: float = 0.2) -> torch.Tensor:
    """Random L2-normalised rows, about ``dups`` of them near-copies of an earlier row."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    for i in range(1, n if dups > 0 else 0):
        if torch.rand(1, generator=g).item() < dups:
            j = int(torch.randint(0, i, (1,), generator=g))
            x[i] = x[j] + 0.05 * torch.randn(d, generator=g, dtype=torch.float64)
    return torch.nn.functional.normalize(x, dim=1).to(dtype)


def brute_max_sim_earlier(x: torch.Tensor, bounds) -> tuple[np.ndarray, np.ndarray]:
    """Full n x n in float64 with the segment mask; ties to the smallest j."""
    xs = x.double().numpy()
    n = len(xs)
    sims = xs @ xs.T
    i, j = np.arange(n)[:, None], np.arange(n)[None, :]
    seg = np.full(n, -1)
    for s, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        seg[a:b] = s
    allowed = (j < i) & (seg[:, None] == seg[None, :]) & (seg[:, None] >= 0)
    sims = np.where(allowed, sims, -np.inf)
    arg = np.argmax(sims, axis=1)  # first maximum
    best = sims[np.arange(n), arg]
    return best, np.where(np.isfinite(best), arg, -1)


def assert_max_sim_close(x, bounds, got, want, tol) -> None:
    """Values within ``tol``; an argmax may differ only where both rows score the max within ``tol``."""
    (v1, i1), (v2, i2) = [(np.asarray(v, dtype=np.float64), np.asarray(i)) for v, i in (got, want)]
    assert np.array_equal(np.isfinite(v1), np.isfinite(v2))
    fin = np.isfinite(v2)
    np.testing.assert_allclose(v1[fin], v2[fin], **tol)
    assert np.array_equal(i1[~fin], np.full((~fin).sum(), -1)) and np.array_equal(i2[~fin], i1[~fin])
    xs = x.double().numpy()
    bounds = np.asarray(bounds)
    for r in np.flatnonzero(i1 != i2):
        start = bounds[np.searchsorted(bounds, r, side="right") - 1]
        for j in (i1[r], i2[r]):
            assert start <= j < r
            assert abs(float(xs[r] @ xs[j]) - v2[r]) <= tol["atol"] + tol["rtol"] * abs(v2[r]) + 1e-6
