"""Class-balance quotas: water-filling by hand, equal shares per label, a target distribution,
and the message when a class has fewer items than its quota."""

import numpy as np
import pytest

from curate.errors import CurateError
from curate.prune.quotas import allocate, class_quotas, parse_distribution
from curate.prune.stage import PruneConfig, prune
from curate.select.kcenter import kcenter_greedy
from tests.prune.test_prune import angle, by_id, workspace


@pytest.mark.parametrize("total,capacity,weights,want", [
    (10, [100, 100, 100], [1, 1, 1], [4, 3, 3]),  # 3.33 each: the leftover unit goes to the first
    (10, [2, 100, 100], [1, 1, 1], [2, 4, 4]),  # first class short by 1.33: the others share it
    (10, [2, 1, 100], [1, 1, 1], [2, 1, 7]),
    (10, [2, 1, 3], [1, 1, 1], [2, 1, 3]),  # not enough anywhere: everything
    (9, [10, 10, 10], [0.5, 0.25, 0.25], [5, 2, 2]),  # 4.5, 2.25, 2.25
    (6, [10, 10, 10], [1, 0, 1], [3, 0, 3]),  # weight 0 gets nothing
    (0, [5, 5], [1, 1], [0, 0]),
])
def test_allocate_by_hand(total, capacity, weights, want):
    got = allocate(total, capacity, weights)
    assert got.tolist() == want
    assert got.sum() == min(total, sum(c for c, w in zip(capacity, weights) if w > 0))


def test_class_quotas_say_which_class_fell_short_and_what_happens():
    rows, messages = class_quotas(9, {"cat": 2, "dog": 6, "fish": 6})
    assert [(r.name, r.available, r.share, r.quota) for r in rows] == [
        ("cat", 2, 3, 2), ("dog", 6, 3, 4), ("fish", 6, 3, 3)]
    assert messages == ["class 'cat' has 2 items, fewer than its quota of 3: all 2 are kept and the shortfall "
                        "of 1 is redistributed to the other classes"]
    rows, messages = class_quotas(8, {"cat": 1, "dog": 2}, {"cat": 0.5, "dog": 0.5})
    assert [r.quota for r in rows] == [1, 2]
    assert "the other classes had room for only 0 more: 5 fewer kept than the target" in messages


def test_parse_distribution():
    assert parse_distribution("cat=1, dog=3") == {"cat": 0.25, "dog": 0.75}
    assert parse_distribution({"a": 2}) == {"a": 1.0}
    with pytest.raises(CurateError, match="CLASS=WEIGHT"):
        parse_distribution("cat")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    # cat: 2 items, dog: 6, fish: 6, spread around the circle
    labels = ["cat"] * 2 + ["dog"] * 6 + ["fish"] * 6
    rng = np.random.default_rng(0)
    degrees = rng.permutation(np.arange(0, 360, 360 / len(labels)))
    vectors = np.array([angle(a) + 0.3 * np.eye(3)[2] * (i % 3) for i, a in enumerate(degrees)])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return workspace(tmp_path_factory.mktemp("quota"), vectors, labels=labels), vectors, labels


def test_equal_quotas_per_label_with_a_short_class(labelled):
    ws, vectors, labels = labelled
    result = prune(ws, PruneConfig(count=9, balance_by="label", device="cpu"))
    got = by_id(result)
    kept = {c: sum(1 for i, lab in enumerate(labels) if lab == c and got[f"w{i}"]["kept"]) for c in set(labels)}
    assert kept == {"cat": 2, "dog": 4, "fish": 3}
    assert any("class 'cat' has 2 items, fewer than its quota of 3" in m for m in result.meta["messages"])
    assert result.meta["by_class"] == {"dog": [6, 4], "fish": [6, 3], "cat": [2, 2]}
    assert {q["class"]: q["kept"] for q in result.meta["quotas"]} == {"cat": 2, "dog": 4, "fish": 3}
    # within a class, k-center greedy over that class alone
    fish = np.array([lab == "fish" for lab in labels])
    ref = kcenter_greedy(vectors.astype(np.float16), 3, candidates=fish, device="cpu")
    assert {i for i in range(len(labels)) if fish[i] and got[f"w{i}"]["kept"]} == set(ref.picks.tolist())


def test_target_distribution_and_classes_left_out(labelled):
    ws, _, labels = labelled
    result = prune(ws, PruneConfig(count=6, target_distribution="cat=0.5,dog=0.5", device="cpu"))
    got = by_id(result)
    kept = [labels[i] for i in range(len(labels)) if got[f"w{i}"]["kept"]]
    assert sorted(kept) == ["cat", "cat", "dog", "dog", "dog", "dog"]  # cat short by 1: dog takes it
    assert any("class 'cat' has 2 items, fewer than its quota of 3" in m for m in result.meta["messages"])
    assert any("classes not in the target distribution keep nothing: 'fish' (6)" in m for m in result.meta["messages"])


def test_prototypes_with_quotas(labelled):
    ws, _, labels = labelled
    result = prune(ws, PruneConfig(count=6, strategy="prototypes", balance_by="label", clusters=3, device="cpu"))
    got = by_id(result)
    kept = sorted(labels[i] for i in range(len(labels)) if got[f"w{i}"]["kept"])
    assert kept == ["cat", "cat", "dog", "dog", "fish", "fish"]
    assert all(got[f"w{i}"]["cluster"] is not None for i in range(len(labels)))


def test_labeled_items_count_towards_their_class_quota(labelled, tmp_path):
    ws, _, labels = labelled
    fish = [i for i, lab in enumerate(labels) if lab == "fish"]
    dog = [i for i, lab in enumerate(labels) if lab == "dog"]
    (tmp_path / "l.txt").write_text(f"w{fish[0]}\nw{dog[0]}\nw{dog[1]}\n")
    result = prune(ws, PruneConfig(count=4, target_distribution="dog=1", labeled=str(tmp_path / "l.txt"),
                                   device="cpu"))
    got = by_id(result)
    kept = sorted(i for i in range(len(labels)) if got[f"w{i}"]["kept"])
    # dog's quota of 4 includes its 2 labeled items: 2 more dogs; the labeled fish stays although fish gets 0
    assert fish[0] in kept and dog[0] in kept and dog[1] in kept
    assert sorted(labels[i] for i in kept) == ["dog"] * 4 + ["fish"]
    assert any("class 'fish' has 1 labeled items, more than its quota of 0" in m for m in result.meta["messages"])
