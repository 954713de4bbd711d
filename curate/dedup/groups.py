"""Duplicate groups and the decision tables built from them, for every method that groups items.

- :func:`components`: union-find over an edge list (knn's similarity graph, near's verified pairs).
- :func:`decision_table`: the table of an embedding run (``semantic``, ``knn``): each threshold's
  removals and duplicate links from :mod:`curate.dedup.rules`, plus the test/val items that
  duplicate train items (leakage).
- :func:`pair_decisions`: the table of a verified-pairs run (``fuzzy``, ``near``): a group is a
  component of verified pairs, and the no-chain rule of :func:`assign` decides within it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.dedup.rules import group_roots
from curate.runner import Output

if TYPE_CHECKING:
    from curate.dedup.scoring import Neighbours
    from curate.dedup.verify import Pairs

REASONS = ("quarantined", "exact-duplicate", "semantic-duplicate")


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Union-find root of every node for the undirected edges (a[i], b[i])."""
    parent = np.arange(n)

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for x, y in zip(a.tolist(), b.tolist()):
        rx, ry = find(x), find(y)
        if rx != ry:
            parent[max(rx, ry)] = min(rx, ry)
    return np.array([find(x) for x in range(n)])


def decision_table(manifest: pa.Table, store: Any, labels: np.ndarray, nb: Neighbours, decisions: dict,
                   thresholds: tuple[float, ...], forced: np.ndarray | None, against_ids: pa.Array | None,
                   against: str | None = None) -> tuple[pa.Table, pa.Table]:
    """The decision table of an embedding run (one row per manifest id) and the leakage pairs.

    Vectorised over rows (Arrow takes, NumPy masks): no Python object per row, so 10M rows fit."""
    n = manifest.num_rows
    mrows = store.manifest_rows
    valid = store.valid
    ids = _plain(manifest.column("id"))
    hashes = _codes(manifest.column("content_hash"))  # one integer per distinct hash, -1: none
    primary = thresholds[0]
    removed, dup_of = decisions[primary]
    roots = group_roots(removed, dup_of)
    forced = np.zeros(len(valid), dtype=bool) if forced is None else forced

    kept = np.zeros(n, dtype=bool)
    kept[mrows] = valid & ~removed
    reason = np.zeros(n, dtype=np.int8)  # index into REASONS; kept rows are masked
    target = np.full(n, -1, dtype=np.int64)  # manifest row (or against id) duplicate_of names
    group = np.full(n, -1, dtype=np.int64)

    # a group is a kept item with at least one duplicate; numbered in manifest order of the keeper
    linked = np.flatnonzero(removed & (dup_of >= 0))
    keepers = np.unique(roots[linked])
    number = np.empty(len(keepers), dtype=np.int64)
    number[np.argsort(mrows[keepers], kind="stable")] = np.arange(len(keepers))
    group[mrows[keepers]] = number

    # exact-duplicate: the group's KEPT item (its root) has the same bytes (duplicate_of points at it,
    # whichever member the chain or component linked the item to); else the linked item itself has
    # the same bytes (a chain through a removed byte twin); else semantic-duplicate
    rows = np.flatnonzero(valid & removed & ~forced)
    m, root, near = mrows[rows], roots[rows], mrows[dup_of[rows]]
    h = hashes[m]
    twin = (h >= 0) & valid[root] & ~removed[root] & (hashes[mrows[root]] == h)
    target[m] = np.where(twin, mrows[root], near)
    reason[m] = np.where(twin | ((h >= 0) & (hashes[near] == h)), 1, 2)
    group[m] = number[np.searchsorted(keepers, root)]

    names = ids
    outside = np.flatnonzero(valid & removed & forced)
    if len(outside):  # duplicates of another workspace: "<against>::<its id>"
        other = pc.binary_join_element_wise(f"{against}::", against_ids.take(pa.array(outside)), "")
        names = pa.concat_arrays([ids, other.cast(ids.type)])
        target[mrows[outside]] = n + np.arange(len(outside))
        reason[mrows[outside]] = 2
    duplicate_of = names.take(pa.array(target, mask=target < 0))

    max_sim = np.full(n, np.nan, dtype=np.float32)
    max_sim[mrows] = np.where(np.isfinite(nb.max_sim), nb.max_sim, np.nan)
    cluster = np.full(n, -1, dtype=np.int64)
    cluster[mrows] = labels
    columns = {
        "id": manifest.column("id"),
        "kept": pa.array(kept),
        "reason": pa.DictionaryArray.from_arrays(pa.array(reason, mask=kept), pa.array(REASONS)).cast(pa.string()),
        "duplicate_of": duplicate_of.cast(pa.string()),
        "group": pa.array(group, pa.int64(), mask=group < 0),
        "max_sim": pa.array(max_sim, pa.float32(), mask=np.isnan(max_sim)),
        "cluster": pa.array(cluster, pa.int64(), mask=cluster < 0),
    }
    for t in thresholds:
        k_t = np.zeros(n, dtype=bool)
        k_t[mrows] = valid & ~decisions[t][0]
        columns[f"kept@{t:g}"] = pa.array(k_t)
    return pa.table(columns), leakage(manifest, mrows, removed, dup_of, nb.max_sim)


def dedup_output(table: pa.Table, leakage: pa.Table, method: str, slug: str, clusters: int,
                 boundary: int) -> Output:
    """What an embedding run returns: its table, its facts, and the leakage pairs when there are some."""
    facts = {"method": method, "model": slug, "clusters": clusters, "boundary_rows": boundary,
             "leakage": len(leakage)}
    return Output(table, facts, {"leakage": leakage} if len(leakage) else {})


def _plain(column: pa.ChunkedArray) -> pa.Array:
    """One Arrow array (no chunks) of a column."""
    return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column


def _codes(column: pa.ChunkedArray) -> np.ndarray:
    """Equal values get equal integer codes; nulls get -1."""
    encoded = _plain(column).dictionary_encode()
    return np.asarray(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False), dtype=np.int64)


def leakage(manifest: pa.Table, mrows: np.ndarray, removed: np.ndarray, dup_of: np.ndarray,
            sims: np.ndarray) -> pa.Table:
    """Pairs (test/val item, train item) that duplicate each other, whichever was kept."""
    schema = pa.schema([("id", pa.string()), ("split", pa.string()), ("train_id", pa.string()),
                        ("similarity", pa.float32())])
    linked = np.flatnonzero(removed & (dup_of >= 0))
    a, b = mrows[linked], mrows[dup_of[linked]]
    split = _plain(manifest.column("split"))

    def role(rows: np.ndarray, values: list[str]) -> np.ndarray:
        hit = pc.is_in(split.take(pa.array(rows)), pa.array(values, split.type)).fill_null(False)
        return np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)

    a_train, b_train, a_held, b_held = role(a, ["train"]), role(b, ["train"]), role(a, ["test", "val"]), \
        role(b, ["test", "val"])
    leak = (a_train & b_held) | (b_train & a_held)
    held = np.where(b_held & a_train, b, a)[leak]  # a removed test/val item or the kept test/val item
    train = np.where(b_held & a_train, a, b)[leak]
    ids = _plain(manifest.column("id"))
    return pa.table({"id": ids.take(pa.array(held)).cast(pa.string()),
                     "split": split.take(pa.array(held)).cast(pa.string()),
                     "train_id": ids.take(pa.array(train)).cast(pa.string()),
                     "similarity": pa.array(sims[linked][leak], pa.float32())}, schema=schema)


Recheck = Callable[[int, int], tuple[float, bool]]  # (keeper, item) -> (score, passed) at the loose bar


def assign(members: list[int], edges: dict[tuple[int, int], tuple[float, str]],
           recheck: Recheck) -> dict[int, tuple[int, float, str]]:
    """Within one component (``members`` in keep order): item -> (keeper, score, signal) for each
    removed item. An item is removed for the first kept member it has a verified pair with; failing
    that, for the keeper of a removed member it has a verified pair with, when it clears the loose
    bar with that keeper itself (``recheck``; so a chain cannot drift: a~b~c removes c for a only
    when a and c are close); failing that it is kept."""
    keepers: list[int] = []
    out: dict[int, tuple[int, float, str]] = {}

    def edge(x: int, y: int):
        return edges.get((min(x, y), max(x, y)))

    for m in members:
        match = next(((k, *edge(k, m)) for k in keepers if edge(k, m) is not None), None)
        if match is None:
            via = dict.fromkeys(out[r][0] for r in out if edge(r, m) is not None)
            for k in list(via)[:8]:  # verified now: bounded, groups are small
                sc, ok = recheck(k, m)
                if ok:
                    match = (k, sc, "transitive")
                    break
        if match is None:
            keepers.append(m)
        else:
            out[m] = match
    return out


def pair_decisions(manifest: pa.Table, ok: np.ndarray, ranks: np.ndarray, pairs: Pairs,
                   recheck: Recheck) -> pa.Table:
    """The decision table of a verified-pairs run: components of the pairs are the groups; within each
    (members in ``ranks`` order) :func:`assign` decides which members are removed and for which kept one."""
    n = manifest.num_rows
    hashes = manifest.column("content_hash").to_pylist()
    ids = manifest.column("id").to_pylist()
    root = components(n, pairs.a, pairs.b)
    in_group = np.zeros(n, dtype=bool)
    in_group[pairs.a] = in_group[pairs.b] = True
    edges = {(x, y): (sc, sig) for x, y, sc, sig in
             zip(pairs.a.tolist(), pairs.b.tolist(), pairs.score.tolist(), pairs.signal)}
    members: dict[int, list[int]] = {}
    for i in np.argsort(ranks, kind="stable").tolist():  # keep order within each component
        if in_group[i]:
            members.setdefault(int(root[i]), []).append(i)
    decided: dict[int, tuple[int, float, str]] = {}
    for group_members in members.values():
        decided.update(assign(group_members, edges, recheck))
    dup_of = np.full(n, -1, dtype=np.int64)
    for i, (k, _, _) in decided.items():
        dup_of[i] = k
    removed = dup_of >= 0
    kept = ok & ~removed
    numbers = {r: g for g, r in enumerate(dict.fromkeys(root[np.flatnonzero(in_group)].tolist()))}
    group = np.array([numbers[int(root[i])] if in_group[i] else -1 for i in range(n)], dtype=np.int64)
    reason: list[str | None] = []
    for i in range(n):
        if not ok[i]:
            reason.append("quarantined")
        elif kept[i]:
            reason.append(None)
        else:
            same = hashes[i] is not None and hashes[i] == hashes[dup_of[i]]
            reason.append("exact-duplicate" if same else "near-duplicate")
    score = np.array([decided[i][1] if i in decided else np.nan for i in range(n)], dtype=np.float32)
    return pa.table({
        "id": manifest.column("id"),
        "kept": pa.array(kept),
        "reason": pa.array(reason, pa.string()),
        "duplicate_of": pa.array([ids[d] if r else None for d, r in zip(dup_of.tolist(), removed)], pa.string()),
        "group": pa.array(group, pa.int64(), mask=group < 0),
        "score": pa.array(score, pa.float32(), mask=~removed),
        "signal": pa.array([decided[i][2] if i in decided else None for i in range(n)], pa.string()),
    })
