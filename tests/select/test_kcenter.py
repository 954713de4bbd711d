"""k-center greedy against a naive float64 numpy implementation of the same rule on tiny inputs."""

import numpy as np
import pytest

from curate.select.kcenter import kcenter_greedy


def unit_rows(n, d, seed):
    x = np.random.default_rng(seed).normal(size=(n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def naive_kcenter(x, budget, candidates=None, initial=()):
    """The textbook loop: distances to every center recomputed from scratch for each pick."""
    rows = np.flatnonzero(candidates) if candidates is not None else np.arange(len(x))
    budget = min(budget, len(rows))
    centers = list(initial)

    def dist_to_centers(r):
        return min((1.0 - float(x[r] @ x[c]) for c in centers), default=np.inf)

    if centers:
        first = max(rows, key=lambda r: (dist_to_centers(r), -r))
    else:
        mean = x[rows].mean(axis=0)
        mean /= np.linalg.norm(mean)
        first = min(rows, key=lambda r: (float(x[r] @ mean), r))
    picks, dists = [first], [dist_to_centers(first)]
    centers.append(first)
    while len(picks) < budget:
        left = [r for r in rows if r not in picks]
        best = max(left, key=lambda r: (dist_to_centers(r), -r))
        dists.append(dist_to_centers(best))
        picks.append(best)
        centers.append(best)
    radius = max(dist_to_centers(r) for r in rows) if picks else np.nan
    return np.array(picks), np.array(dists), radius


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_picks_and_radius_equal_the_naive_loop(seed):
    x = unit_rows(40, 8, seed)
    got = kcenter_greedy(x, 7, device="cpu")
    picks, dists, radius = naive_kcenter(x, 7)
    np.testing.assert_array_equal(got.picks, picks)
    assert np.isinf(got.distances[0]) and np.isinf(dists[0])
    np.testing.assert_allclose(got.distances[1:], dists[1:], atol=1e-5)
    assert got.radius == pytest.approx(radius, abs=1e-5)
    assert np.all(np.diff(got.distances[1:]) <= 1e-6)  # greedy distances never grow


def test_initial_centers_and_candidate_mask():
    x = unit_rows(50, 6, 7)
    candidates = np.zeros(50, dtype=bool)
    candidates[10:45] = True
    initial = np.array([0, 3, 47])  # outside the candidates: centers, never picks
    got = kcenter_greedy(x, 6, candidates=candidates, initial=initial, device="cpu")
    picks, dists, radius = naive_kcenter(x, 6, candidates, initial)
    np.testing.assert_array_equal(got.picks, picks)
    np.testing.assert_allclose(got.distances, dists, atol=1e-5)  # first pick: distance to the initial set
    assert got.radius == pytest.approx(radius, abs=1e-5)
    assert candidates[got.picks].all()


def test_duplicates_at_distance_zero_are_not_picked_while_anything_else_is_uncovered():
    base = unit_rows(6, 5, 3)
    x = np.concatenate([base, base[[1, 1, 4]]])  # rows 6, 7 copy row 1; row 8 copies row 4
    got = kcenter_greedy(x, 6, device="cpu")
    picks, _, _ = naive_kcenter(x, 6)
    np.testing.assert_array_equal(got.picks, picks)
    assert len({tuple(np.round(x[p], 6)) for p in got.picks}) == 6  # six different vectors
    assert got.radius == pytest.approx(0.0, abs=1e-6)
    more = kcenter_greedy(x, 8, device="cpu")  # past the distinct count: copies, each once
    assert len(set(more.picks.tolist())) == 8 and set(got.picks) <= set(more.picks)
    np.testing.assert_allclose(more.distances[6:], 0.0, atol=1e-6)


def test_budget_larger_than_the_candidates_takes_them_all_once():
    x = unit_rows(12, 4, 5)
    candidates = np.zeros(12, dtype=bool)
    candidates[[2, 5, 7, 11]] = True
    got = kcenter_greedy(x, 10, candidates=candidates, device="cpu")
    assert sorted(got.picks.tolist()) == [2, 5, 7, 11]
    np.testing.assert_array_equal(got.picks, naive_kcenter(x, 10, candidates)[0])
    assert got.radius == pytest.approx(0.0, abs=1e-6)
    empty = kcenter_greedy(x, 0, device="cpu")
    assert len(empty.picks) == 0 and np.isnan(empty.radius)


def test_fp16_store_gives_the_same_picks_as_fp32():
    x = unit_rows(60, 16, 11)
    x16 = x.astype(np.float16)
    got = kcenter_greedy(x16, 10, device="cpu")
    picks, _, radius = naive_kcenter(x16.astype(np.float64), 10)
    np.testing.assert_array_equal(got.picks, picks)
    assert got.radius == pytest.approx(radius, abs=1e-3)


@pytest.mark.gpu
def test_cuda_picks_equal_cpu_picks():
    x = unit_rows(3000, 64, 13).astype(np.float16)
    cpu = kcenter_greedy(x, 50, device="cpu")
    gpu = kcenter_greedy(x, 50, device="cuda")
    np.testing.assert_array_equal(gpu.picks, cpu.picks)
    assert gpu.radius == pytest.approx(cpu.radius, abs=2e-3)
