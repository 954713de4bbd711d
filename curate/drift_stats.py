"""Two-sample statistics for drift detection, on samples (never on whole datasets).

- :func:`ks_test`: Kolmogorov-Smirnov on two 1-D samples (e.g. nearest-neighbour distances);
- :func:`mmd_test`: squared MMD with an RBF kernel (median-heuristic bandwidth) and a
  permutation p-value; the kernel matrix is (m + n)^2 for the two samples only;
- :func:`mass_shift_test`: chi-square between two histograms over the same bins (cluster
  masses) with a permutation p-value, total-variation distance as the effect size, plus
  per-bin two-proportion z-tests.

Permutation p-values are ``(1 + #{permuted >= observed}) / (1 + permutations)``: never 0,
valid for any sample size. All randomness comes from the ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from curate.device import resolve_device


@dataclass(frozen=True)
class TwoSample:
    statistic: float
    p_value: float


def ks_test(a: np.ndarray, b: np.ndarray) -> TwoSample:
    """Two-sided two-sample Kolmogorov-Smirnov test (statistic D in [0, 1])."""
    from scipy.stats import ks_2samp

    result = ks_2samp(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64))
    return TwoSample(float(result.statistic), float(result.pvalue))


def permutation_p(observed: float, permuted: np.ndarray) -> float:
    return float((1 + np.sum(permuted >= observed - 1e-12)) / (1 + len(permuted)))


def mmd_test(x: np.ndarray, y: np.ndarray, permutations: int = 1000, seed: int = 0,
             device: str | torch.device = "auto", chunk: int = 256) -> tuple[TwoSample, float]:
    """Unbiased squared MMD between samples ``x`` [m, d] and ``y`` [n, d], permutation p-value.

    Kernel ``exp(-|a - b|^2 / h)`` with ``h`` the median pairwise squared distance of the
    pooled sample. Returns the test and ``h``. Permutations are evaluated ``chunk`` at a
    time as quadratic forms of the one kernel matrix.
    """
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError("MMD needs at least two rows in each sample")
    dev = resolve_device(device)
    z = torch.from_numpy(np.concatenate([x, y]).astype(np.float32)).to(dev)
    sq = (z * z).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * z @ z.T).clamp_min(0)
    off = ~torch.eye(m + n, dtype=torch.bool, device=dev)
    h = float(torch.median(d2[off]).item()) or 1.0
    k = torch.exp(-d2 / h)
    k.fill_diagonal_(0.0)
    total = float(k.sum().item())

    def stats(assign: torch.Tensor) -> torch.Tensor:  # assign [m + n, p] with 1 for "x"
        ka = k @ assign
        xx = (assign * ka).sum(0)
        xy = ((1 - assign) * ka).sum(0)
        yy = total - xx - 2 * xy
        return xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2 * xy / (m * n)

    base = torch.zeros((m + n, 1), device=dev)
    base[:m] = 1
    observed = float(stats(base)[0].item())
    gen = torch.Generator().manual_seed(seed)
    permuted = []
    for start in range(0, permutations, chunk):
        p = min(chunk, permutations - start)
        order = torch.argsort(torch.rand((p, m + n), generator=gen), dim=1)
        assign = (order < m).to(torch.float32).T.contiguous().to(dev)
        permuted.append(stats(assign).cpu().numpy())
    perm = np.concatenate(permuted) if permuted else np.empty(0)
    return TwoSample(observed, permutation_p(observed, perm)), h


@dataclass(frozen=True)
class MassShift:
    tv: float  # total-variation distance between the two bin distributions (the effect size)
    chi2: float  # Pearson chi-square of the 2 x bins table (the test statistic)
    p_value: float  # permutation p-value of chi2
    ref_counts: np.ndarray
    new_counts: np.ndarray
    bin_p: np.ndarray  # two-sided two-proportion z-test per bin


def _chi2(a: np.ndarray, b: np.ndarray, m: int, n: int) -> np.ndarray:
    """Pearson chi-square of the tables [a; b] (rows of counts, last axis = bins), empty bins skipped."""
    total = a + b
    share = total / (m + n)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = (a - m * share) ** 2 / (m * share) + (b - n * share) ** 2 / (n * share)
    return np.where(total > 0, terms, 0.0).sum(axis=-1)


def mass_shift_test(ref_bins: np.ndarray, new_bins: np.ndarray, n_bins: int, permutations: int = 1000,
                    seed: int = 0, chunk: int = 128) -> MassShift:
    """Did the mass over ``n_bins`` bins move between two samples of bin labels?

    The chi-square statistic weighs a shift into a rare bin (e.g. mass far from every
    reference cluster) by its rarity, where TV would drown it in the noise of the big bins;
    its p-value comes from permuting the pooled labels, so sparse bins are fine.
    """
    from scipy.stats import norm

    ref_bins, new_bins = np.asarray(ref_bins, dtype=np.int64), np.asarray(new_bins, dtype=np.int64)
    m, n = len(ref_bins), len(new_bins)
    ref_counts = np.bincount(ref_bins, minlength=n_bins)
    new_counts = np.bincount(new_bins, minlength=n_bins)
    tv = 0.5 * float(np.abs(ref_counts / m - new_counts / n).sum())
    chi2 = float(_chi2(ref_counts, new_counts, m, n))
    pooled = np.concatenate([ref_bins, new_bins])
    all_counts = ref_counts + new_counts
    rng = np.random.default_rng(seed)
    perm = []
    for start in range(0, permutations, chunk):
        p = min(chunk, permutations - start)
        first = np.argsort(rng.random((p, m + n)), axis=1)[:, :m]
        labels = pooled[first] + n_bins * np.arange(p)[:, None]
        a = np.bincount(labels.ravel(), minlength=p * n_bins).reshape(p, n_bins)
        perm.append(_chi2(a, all_counts[None, :] - a, m, n))
    p_value = permutation_p(chi2, np.concatenate(perm)) if perm else 1.0
    p_all = all_counts / (m + n)
    se = np.sqrt(p_all * (1 - p_all) * (1 / m + 1 / n))
    with np.errstate(divide="ignore", invalid="ignore"):
        zscore = np.where(se > 0, (new_counts / n - ref_counts / m) / se, 0.0)
    return MassShift(tv, chi2, p_value, ref_counts, new_counts, 2 * norm.sf(np.abs(zscore)))
