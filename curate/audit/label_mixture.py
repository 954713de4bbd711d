"""The score-gap mixture of the label audit: where "another class beats the given label" stops being model error.

Among labelled items whose model prefers another class, ``u = log p(best other) - log p(given) > 0``.
Two kinds of item land there: items the model gets wrong (their given label is right), whose gap
falls off quickly from 0, and items whose label is wrong, whose gap sits around a typical value
away from 0. The fit is a two-component mixture over ``u``: an exponential (model errors, density
``lam * exp(-lam u)``) and a normal (label errors, ``N(mu, sd^2)``), by EM. The cut ``u*`` is the
smaller gap where the normal's posterior reaches 1/2 (Bayes' rule between the two); every item with
``u >= u*`` is flagged, so the flag never depends on more than the item's own gap (a normal tail
falls faster than an exponential one, so the posterior itself would fall again for huge gaps).
No cut (``u* = inf``) when the mixture has no label-error component: fewer than ``MIN_ITEMS`` gaps,
a normal not to the right of the exponential's mean, or a posterior that never reaches 1/2. On the
three benchmark sets with ground truth, and on their noise-free versions, this gives no cut where
there is no label noise.

The fit reads at most ``MAX_FIT`` gaps (an even stride over the items, so it is the same however the
caller blocks the rows) and takes well under a second.
"""

from __future__ import annotations

import math

import numpy as np

MIN_ITEMS = 20  # fewer disagreeing items: no mixture
MAX_FIT = 200_000  # gaps read by EM (a stride through all of them)
SD_FLOOR = 0.25  # nats: keeps the normal from collapsing on a spike of equal gaps (clipped probabilities)


def fit_gap_mixture(gaps: np.ndarray, *, iters: int = 500, tol: float = 1e-10) -> tuple[float, float, float, float]:
    """EM for ``(1 - w) Exp(lam) + w N(mu, sd^2)`` over positive gaps; returns ``(lam, mu, sd, w)``."""
    u = np.asarray(gaps, dtype=np.float64)
    if u.size > MAX_FIT:
        u = u[:: -(-u.size // MAX_FIT)]
    lam = 1.0 / max(float(np.quantile(u, 0.25)), 1e-3)
    mu = float(np.quantile(u, 0.75))
    sd = max(float(u.std()) / 2.0, SD_FLOOR)
    w, prev = 0.5, -math.inf
    half_log_2pi = 0.5 * math.log(2 * math.pi)
    for _ in range(iters):
        l0 = math.log1p(-w) + math.log(lam) - lam * u
        l1 = math.log(w) - 0.5 * ((u - mu) / sd) ** 2 - math.log(sd) - half_log_2pi
        top = np.maximum(l0, l1)
        ll = top + np.log(np.exp(l0 - top) + np.exp(l1 - top))
        r = np.exp(l1 - ll)  # posterior of the label-error component
        mean_ll = float(ll.mean())
        r_sum = float(r.sum())
        w = min(max(r_sum / u.size, 1e-9), 1 - 1e-9)
        lam = max(u.size - r_sum, 1e-12) / max(float(((1 - r) * u).sum()), 1e-12)
        mu = float((r * u).sum()) / max(r_sum, 1e-12)
        sd = max(math.sqrt(float((r * (u - mu) ** 2).sum()) / max(r_sum, 1e-12)), SD_FLOOR)
        if abs(mean_ll - prev) < tol:
            break
        prev = mean_ll
    return lam, mu, sd, w


def gap_cut(lam: float, mu: float, sd: float, w: float) -> float:
    """The smallest gap where the normal component's posterior reaches 1/2; ``inf`` for none."""
    if not (mu > 1.0 / lam and 0.0 < w < 1.0):
        return math.inf
    # log((1-w) lam) - lam u = log(w / (sd sqrt(2 pi))) - (u - mu)^2 / (2 sd^2): a quadratic in u
    a = -1.0 / (2 * sd * sd)
    b = mu / (sd * sd) + lam
    c = -mu * mu / (2 * sd * sd) + math.log(w) - math.log(sd) - 0.5 * math.log(2 * math.pi)
    c -= math.log1p(-w) + math.log(lam)
    disc = b * b - 4 * a * c
    if disc < 0:
        return math.inf
    root = (-b + math.sqrt(disc)) / (2 * a)  # a < 0: this is the smaller root
    return max(root, 0.0)


def mixture_cut(gaps: np.ndarray) -> float:
    """``u*`` for these positive gaps (``inf``: flag none)."""
    gaps = np.asarray(gaps, dtype=np.float64)
    if gaps.size < MIN_ITEMS or float(gaps.max() - gaps.min()) <= 0:
        return math.inf
    return gap_cut(*fit_gap_mixture(gaps))
