"""Typed stage inputs: each kind's fingerprint changes exactly when that input changes."""

from __future__ import annotations

import numpy as np
import pytest

from curate.errors import CurateError
from curate.inputs import Manifest, Overrides, Store, Upstream, UserFile, resolve
from curate.overrides import Override, add
from curate.select.idlist import read_ids
from tests.conftest import vector_workspace


class Config:
    model = None
    labeled = None


def _ws(tmp_path, name="ws", n=6, seed=0):
    rng = np.random.default_rng(seed)
    return vector_workspace(tmp_path, name, rng.normal(size=(n, 4)))


def _fp(ws, kinds, config=Config(), stage="prune"):
    return resolve(ws, stage, config, kinds).fingerprints


def test_manifest_fingerprint_follows_the_manifest(tmp_path):
    a, b = _ws(tmp_path, "a"), _ws(tmp_path, "b", n=7)
    assert _fp(a, (Manifest(),)) == _fp(a, (Manifest(),))
    assert _fp(a, (Manifest(),))["manifest"] != _fp(b, (Manifest(),))["manifest"]


def test_store_fingerprint_and_need(tmp_path):
    ws = _ws(tmp_path)
    got = resolve(ws, "prune", Config(), (Store(),))
    assert got.store is not None and got.fingerprints["store"] == got.store.meta["fingerprint"]
    assert resolve(ws, "prune", Config(), (Store(need="never"),)).fingerprints == {"store": None}
    other = _ws(tmp_path, "other", seed=1)
    assert _fp(other, (Store(),))["store"] != got.fingerprints["store"]


def test_store_of_another_workspace_and_first_of_several(tmp_path):
    """drift's reference: a Store named by another config field, in the workspace another field names;
    the report's map: the first store when several are there and nothing says which."""
    from curate.embed.stage import EmbedConfig, embed

    ws, ref = _ws(tmp_path), _ws(tmp_path, "ref", seed=1)

    class TwoSided:
        model = None
        reference = ref.root.path
        reference_model = "precomputed-vectors"

    got = resolve(ws, "drift", TwoSided(), (Store(), Store(option="reference_model", workspace="reference",
                                                            key="reference_store")))
    assert got.values["reference_store"].slug == "precomputed-vectors" and got["reference_store"] is not got.store
    assert got.fingerprints == {"store": got.store.meta["fingerprint"],
                                "reference_store": _fp(ref, (Store(),))["store"]}
    npy = tmp_path / "more" / "another.npy"
    npy.parent.mkdir()
    np.save(npy, np.random.default_rng(2).normal(size=(6, 4)).astype(np.float32))
    embed(ws, EmbedConfig(model=f"precomputed:{npy}", workers=0), progress=False)
    with pytest.raises(CurateError, match="2 embedding stores"):
        resolve(ws, "report", Config(), (Store(need="if-any"),))
    assert resolve(ws, "report", Config(), (Store(need="if-any", first=True),)).store.slug == "precomputed-another"


def test_upstream_fingerprint_is_the_run_ids_and_runs_carry_their_sidecar(tmp_path):
    from curate.dedup.exact import exact_dedup

    ws = _ws(tmp_path)
    assert _fp(ws, (Upstream(("dedup",)),)) == {"upstream": {}}
    run = exact_dedup(ws, progress=False)
    got = resolve(ws, "prune", Config(), (Upstream(("dedup",)),))
    assert got.fingerprints == {"upstream": {"dedup": run.run_id}}
    assert got.runs["dedup"].meta["run_id"] == run.run_id


def test_user_file_fingerprint_is_its_content_not_its_stat(tmp_path):
    ws = _ws(tmp_path)
    ids = tmp_path / "labeled.txt"
    ids.write_text("ws0\nws1\n")
    config = Config()
    config.labeled = str(ids)
    kinds = (UserFile("labeled", parse=read_ids),)
    first = resolve(ws, "prune", config, kinds)
    assert first.files["labeled"] == ["ws0", "ws1"]
    ids.write_text("ws0\nws1\n")  # rewritten, same bytes, new mtime: same fingerprint
    assert _fp(ws, kinds, config) == first.fingerprints
    ids.write_text("ws0\nws2\n")  # same size, other content: another fingerprint
    assert _fp(ws, kinds, config) != first.fingerprints
    assert _fp(ws, kinds, Config()) == {"labeled": None}


def test_user_file_refuses_what_is_not_a_regular_file(tmp_path):
    import os

    ws = _ws(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    config = Config()
    config.labeled = str(fifo)
    with pytest.raises(CurateError, match="not a regular file"):
        resolve(ws, "prune", config, (UserFile("labeled"),))


def test_overrides_fingerprint_only_when_some_are_in_force(tmp_path):
    ws = _ws(tmp_path)
    kinds = (Manifest(), Overrides())
    before = _fp(ws, kinds)
    assert "overrides" not in before  # no review: the run ids of old workspaces stay
    add(ws, [Override("prune", "ws1", "keep", "looks fine")])
    with_keep = _fp(ws, kinds)
    assert with_keep["overrides"] and with_keep["manifest"] == before["manifest"]
    assert _fp(ws, kinds, stage="dedup") == before  # another stage's overrides are not this one's input
    add(ws, [Override("prune", "ws1", "keep", "looks fine")])  # the same decision again: same fingerprint
    assert _fp(ws, kinds) == with_keep
    add(ws, [Override("prune", "ws1", "remove", "blurry")])
    assert _fp(ws, kinds)["overrides"] != with_keep["overrides"]
    add(ws, [Override("prune", "ws1", "forget")])
    assert _fp(ws, kinds) == before


def test_overrides_of_unknown_ids_are_reported_not_applied(tmp_path):
    ws = _ws(tmp_path)
    add(ws, [Override("dedup", "nope", "keep", "gone"), Override("dedup", "ws2", "remove", "bad")])
    got = resolve(ws, "dedup", Config(), (Overrides(),)).overrides
    assert list(got.records) == ["ws2"] and got.unknown == ("nope",)
