"""Prototype (SSP) and cluster-balanced pruning on two planted clusters, expectations by hand:
the prototype of a cluster is the normalised mean of its members."""

import numpy as np
import pytest

from curate.prune.prototypes import interleave, select_per_cluster
from curate.prune.stage import PruneConfig, prune
from tests.prune.test_prune import by_id, workspace


def tilt(axis, towards, deg):
    """Unit vector ``deg`` degrees from e_axis towards e_towards (4 dims)."""
    v = np.zeros(4)
    v[axis], v[towards] = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return v


A = [tilt(0, 2, a) for a in (3, -6, 11, -17, 24, -30)]  # rows 0-5, around e1
B = [tilt(1, 3, a) for a in (5, -12, 20, -28)]  # rows 6-9, around e2


def expected_distances():
    dist = {}
    for rows, members in ((range(0, 6), A), (range(6, 10), B)):
        c = np.mean(members, axis=0)
        c /= np.linalg.norm(c)
        dist.update({r: 1 - float(v @ c) for r, v in zip(rows, members)})
    return dist


def ranked(rows, dist, hard):
    return sorted(rows, key=lambda r: -dist[r] if hard else dist[r])


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    return workspace(tmp_path_factory.mktemp("proto"), [*A, *B])


@pytest.mark.parametrize("keep", ["hard", "easy"])
def test_prototypes_keep_hard_or_easy_in_proportion_to_cluster_size(ws, keep):
    result = prune(ws, PruneConfig(fraction=0.5, strategy="prototypes", keep=keep, clusters=2, device="cpu"))
    got = by_id(result)
    dist = expected_distances()
    # 10 candidates, target 5: cluster A (6) keeps 3, cluster B (4) keeps 2
    want_a = ranked(range(0, 6), dist, keep == "hard")[:3]
    want_b = ranked(range(6, 10), dist, keep == "hard")[:2]
    assert {r["id"] for r in got.values() if r["kept"]} == {f"w{i}" for i in want_a + want_b}
    for i in range(10):
        assert got[f"w{i}"]["score"] == pytest.approx(dist[i], abs=2e-3)
        assert got[f"w{i}"]["reason"] == (None if i in want_a + want_b else "pruned")
    clusters = [got[f"w{i}"]["cluster"] for i in range(10)]
    assert len(set(clusters[:6])) == 1 and len(set(clusters[6:])) == 1 and clusters[0] != clusters[6]
    # rank interleaves clusters by relative position: A at 1/6, 3/6, 5/6 and B at 1/4, 3/4
    by_rank = sorted((got[f"w{i}"]["rank"], i) for i in want_a + want_b)
    assert [i for _, i in by_rank] == [want_a[0], want_b[0], want_a[1], want_b[1], want_a[2]]
    assert result.meta["clusters"] == 2


def test_balanced_gives_equal_shares_and_redistributes_a_small_clusters_shortfall(ws):
    dist = expected_distances()
    equal = by_id(prune(ws, PruneConfig(count=4, strategy="balanced", clusters=2, device="cpu")))
    want = ranked(range(0, 6), dist, True)[:2] + ranked(range(6, 10), dist, True)[:2]
    assert {k for k, r in equal.items() if r["kept"]} == {f"w{i}" for i in want}
    # 9 of 10: an equal share is 4.5, cluster B has only 4, so A keeps 5
    full = by_id(prune(ws, PruneConfig(count=9, strategy="balanced", clusters=2, device="cpu")))
    assert {k for k, r in full.items() if not r["kept"]} == {f"w{ranked(range(0, 6), dist, False)[0]}"}


def test_select_per_cluster_and_interleave_by_hand():
    labels = np.array([0, 0, 0, 1, 1, 2])
    dist = np.array([0.1, 0.3, 0.2, 0.5, 0.4, 0.9])
    picks, quota = select_per_cluster(np.arange(6), labels, dist, 3, "hard", balanced=False)
    assert quota.tolist() == [2, 1, 0]  # 3 x (3, 2, 1) / 6 = 1.5, 1, 0.5 -> largest remainder, earlier first
    assert sorted(picks.tolist()) == [1, 2, 3]
    picks, quota = select_per_cluster(np.arange(6), labels, dist, 3, "easy", balanced=True)
    assert quota.tolist() == [1, 1, 1] and picks.tolist() == [0, 4, 5]
    assert interleave([np.array([7, 8, 9]), np.array([1])]).tolist() == [7, 8, 1, 9]
    assert interleave([np.array([], dtype=np.int64)]).tolist() == []
