"""Drift detection: planted Gaussian clusters on the sphere (precomputed embeddings) and the
demo digits with the perceptual embedder; same-distribution batches pass, shifted ones are flagged."""

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from curate.cli import cli
from curate.drift import DriftConfig, drift, drift_arrays
from curate.drift_stats import mass_shift_test, mmd_test
from curate.embed.stage import EmbedConfig, embed
from curate.errors import CurateError
from curate.ingest import IngestConfig, ingest
from curate.workspace import Workspace
from tests.conftest import write

D = 16
FAST = DriftConfig(sample=400, permutations=500, mmd_sample=400, device="cpu")


def centers(k=8, seed=123):
    c = np.random.default_rng(seed).normal(size=(k, D))
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def mixture(n, weights, rng, spread=0.2, cents=None):
    """Unit vectors around planted centres; returns (vectors, centre of each row)."""
    cents = centers() if cents is None else cents
    w = np.asarray(weights, dtype=float)
    which = rng.choice(len(w), size=n, p=w / w.sum())
    x = cents[which] + spread * rng.normal(size=(n, D))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), which


def workspace(tmp_path, name, vectors, file_name="vectors.npy"):
    rows = [{"id": f"{name}-{i}", "text": f"{name} {i}"} for i in range(len(vectors))]
    src = write(tmp_path / f"{name}.jsonl", b"".join(json.dumps(r).encode() + b"\n" for r in rows))
    ws = Workspace(str(tmp_path / name))
    ingest(ws, [str(src)], IngestConfig())
    npy = tmp_path / f"{name}-vectors" / file_name  # same file name: same store slug in every workspace
    npy.parent.mkdir()
    np.save(npy, vectors)
    embed(ws, EmbedConfig(model=f"precomputed:{npy}", workers=0), progress=False)
    return ws


SIX = [1, 1, 1, 1, 1, 1, 0, 0]  # reference: six of the eight centres, equal mass


@pytest.fixture
def planted(tmp_path):
    rng = np.random.default_rng(0)
    ref, _ = mixture(1000, SIX, rng)
    same, _ = mixture(500, SIX, rng)
    newclass, which_new = mixture(500, [1, 1, 1, 1, 1, 1, 1.2, 0], rng)  # ~17% from centre 6, unseen in REF
    moved, _ = mixture(500, [5, 1, 1, 1, 1, 1, 0, 0], rng)  # centre 0: 1/6 -> 1/2 of the mass
    spaces = {name: workspace(tmp_path, name, v) for name, v in
              (("ref", ref), ("same", same), ("newclass", newclass), ("moved", moved))}
    return spaces, which_new


def test_same_distribution_passes_and_shifts_are_flagged(planted):
    spaces, which_new = planted
    same = drift(spaces["same"], spaces["ref"], FAST)
    assert not same.drifted and not any(t.drifted for t in same.tests)
    assert [t.name for t in same.tests] == ["nn-distance", "cluster-mass", "mmd"]
    assert all(t.p_value > FAST.alpha / 3 for t in same.tests)

    new = drift(spaces["newclass"], spaces["ref"], FAST)
    assert new.drifted
    by_name = {t.name: t for t in new.tests}
    assert by_name["nn-distance"].drifted and by_name["mmd"].drifted
    # the unseen class lies beyond REF's 99th-percentile distance: it is the "appeared" mass
    planted_share = float(np.mean(which_new == 6))
    assert new.appeared.new_fraction == pytest.approx(planted_share, abs=0.06)
    assert new.appeared.ref_fraction < 0.05 and new.appeared.p_value < 1e-6
    new_ids = {f"newclass-{i}" for i in np.flatnonzero(which_new == 6)}
    assert new.appeared.examples and set(new.appeared.examples) <= new_ids

    moved = drift(spaces["moved"], spaces["ref"], FAST)
    by_name = {t.name: t for t in moved.tests}
    assert moved.drifted and by_name["cluster-mass"].drifted and by_name["cluster-mass"].effect > 0.2
    top = moved.grown(1)[0]  # the cluster that grew is the one around centre 0
    assert top.new_fraction == pytest.approx(0.5, abs=0.08) and top.ref_fraction == pytest.approx(1 / 6, abs=0.06)
    ref_vectors = np.load(spaces["ref"].root.path + "/embeddings/precomputed-vectors/vectors.npy")
    for example in top.examples:
        row = int(example.split("-")[1])
        assert int(np.argmax(centers() @ ref_vectors[row])) == 0
    assert all(c.shift < 0 for c in moved.shrunk())


def test_false_alarm_rate_and_power_across_seeds():
    """alpha = 0.01 over the whole check: at most one false alarm in 8 same-distribution
    batches, and at least 7 of 8 batches with a ~14% unseen class are flagged."""
    false_alarms, detected = 0, 0
    for seed in range(8):
        rng = np.random.default_rng(1000 + seed)
        ref, _ = mixture(600, SIX, rng)
        same, _ = mixture(300, SIX, rng)
        shifted, _ = mixture(300, [1, 1, 1, 1, 1, 1, 1, 0], rng)
        ones = np.ones(600, dtype=bool)
        config = DriftConfig(sample=300, permutations=600, mmd_sample=300, device="cpu", seed=seed)
        false_alarms += drift_arrays(same, ones[:300], ref, ones, config).drifted
        detected += drift_arrays(shifted, ones[:300], ref, ones, config).drifted
    assert false_alarms <= 1
    assert detected >= 7


def test_deterministic_for_a_seed(planted):
    spaces, _ = planted
    a = drift(spaces["moved"], spaces["ref"], FAST).to_json()
    b = drift(spaces["moved"], spaces["ref"], FAST).to_json()
    assert a == b
    c = json.loads(drift(spaces["moved"], spaces["ref"], DriftConfig(**{**FAST.__dict__, "seed": 7})).to_json())
    assert c["drifted"] and c["config"]["seed"] == 7


def test_model_mismatch_and_bad_input_are_clear_errors(tmp_path):
    rng = np.random.default_rng(0)
    a = workspace(tmp_path, "a", mixture(50, SIX, rng)[0], "one.npy")
    b = workspace(tmp_path, "b", np.ascontiguousarray(mixture(50, SIX, rng)[0][:, :8]), "two.npy")
    # differently named precomputed stores are compared when their dimensions match (tests/test_drift_stores.py)
    with pytest.raises(CurateError, match="dimension: NEW precomputed-one has 16-d vectors, REF precomputed-two 8-d"):
        drift(a, b, FAST)
    with pytest.raises(CurateError, match="has no embeddings 'nope'"):
        drift(a, b, DriftConfig(model="nope"))
    with pytest.raises(CurateError, match="dimension"):
        drift(a, b, DriftConfig(model="precomputed-one", reference_model="precomputed-two"))
    with pytest.raises(CurateError, match="dimension"):
        x = np.ones((10, 4), np.float32) / 2
        drift_arrays(x, np.ones(10, bool), np.ones((10, 8), np.float32), np.ones(10, bool))
    result = CliRunner().invoke(cli, ["drift", "-w", a.root.path, "-r", b.root.path])
    assert result.exit_code != 0 and isinstance(result.exception, CurateError)


def test_mmd_matches_a_brute_force_formula():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(20, 5)), rng.normal(size=(15, 5)) + 0.5
    test, h = mmd_test(x, y, permutations=200, seed=0, device="cpu")
    z = np.concatenate([x, y])
    d2 = ((z[:, None] - z[None]) ** 2).sum(-1)
    assert h == pytest.approx(np.median(d2[~np.eye(35, dtype=bool)]), rel=1e-4)
    k = np.exp(-d2 / h)
    kxx, kyy, kxy = k[:20, :20], k[20:, 20:], k[:20, 20:]
    expected = ((kxx.sum() - np.trace(kxx)) / (20 * 19) + (kyy.sum() - np.trace(kyy)) / (15 * 14)
                - 2 * kxy.mean())
    assert test.statistic == pytest.approx(expected, rel=1e-4, abs=1e-6)
    assert test.p_value < 0.05  # a 0.5 shift in every coordinate


def test_mass_shift_total_variation_by_hand():
    ref = np.array([0] * 50 + [1] * 50)
    new = np.array([0] * 80 + [1] * 10 + [2] * 10)
    shift = mass_shift_test(ref, new, 3, permutations=300, seed=0)
    assert shift.tv == pytest.approx(0.5 * (0.3 + 0.4 + 0.1))
    assert list(shift.ref_counts) == [50, 50, 0] and list(shift.new_counts) == [80, 10, 10]
    assert shift.p_value < 0.01 and shift.bin_p[0] < 0.01
    null = mass_shift_test(ref, ref.copy(), 2, permutations=300, seed=0)
    assert null.tv == 0 and null.p_value == 1.0


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Demo digits split by file number: REF = digits 0-7 (even numbers), SAME = 0-7 (odd),
    NEW = digits 8-9 (odd numbers), each embedded with the perceptual embedder."""
    from curate.demo import build_demo

    top = tmp_path_factory.mktemp("digits")
    build_demo(top / "demo")
    files = sorted(p for p in (top / "demo" / "images").rglob("*") if p.is_file() and int(p.stem) < 9000)
    spaces = {}
    for name, keep in (("ref", lambda d, n: d < 8 and n % 2 == 0), ("same", lambda d, n: d < 8 and n % 2 == 1),
                       ("new", lambda d, n: d >= 8 and n % 2 == 1)):
        for p in files:
            if keep(int(p.parent.name), int(p.stem)):
                (top / name / p.parent.name).mkdir(parents=True, exist_ok=True)
                shutil.copy(p, top / name / p.parent.name / p.name)
        ws = Workspace(str(top / f"{name}-ws"))
        ingest(ws, [str(top / name)], IngestConfig())
        embed(ws, EmbedConfig(model="perceptual", workers=0), progress=False)
        spaces[name] = ws
    return spaces, top


def test_demo_digits_new_classes_gate_the_cli(digits):
    spaces, top = digits
    ref = spaces["ref"].root.path
    same = CliRunner().invoke(cli, ["drift", "-w", spaces["same"].root.path, "-r", ref])
    assert same.exit_code == 0, same.output
    assert "no drift" in same.output and "nn-distance" in same.output and "appeared" in same.output
    out = top / "drift.json"
    new = CliRunner().invoke(cli, ["drift", "-w", spaces["new"].root.path, "-r", ref, "--out", str(out)])
    assert new.exit_code == 1, new.output
    assert "DRIFT" in new.output
    report = json.loads(out.read_text())
    assert report["drifted"] and report["model"] == "perceptual-v2"
    tests = {t["name"]: t for t in report["tests"]}
    assert tests["nn-distance"]["drifted"] and tests["nn-distance"]["statistic"] > 0.2
    assert tests["nn-distance"]["detail"]["new_median"] > tests["nn-distance"]["detail"]["ref_median"]


def test_a_sample_of_the_reference_itself_is_not_drift_and_a_shift_still_is():
    """Overlap used to break the nearest-neighbour test (NEW rows found themselves in REF at distance
    0: p = 0, DRIFT). Over 20 batches each: overlapping samples, disjoint samples, planted shifts."""
    alarms = {"overlapping": 0, "disjoint": 0, "shifted": 0}
    for seed in range(20):
        rng = np.random.default_rng(2000 + seed)
        pool, _ = mixture(900, SIX, rng)
        ref = pool[:600]
        overlapping = ref[rng.choice(600, size=300, replace=False)]
        disjoint = pool[600:]
        shifted, _ = mixture(300, [1, 1, 1, 1, 1, 1, 1, 0], rng)
        ones = np.ones(600, dtype=bool)
        config = DriftConfig(sample=300, permutations=400, mmd_sample=200, device="cpu", seed=seed)
        for name, new in (("overlapping", overlapping), ("disjoint", disjoint), ("shifted", shifted)):
            alarms[name] += drift_arrays(new, ones[:300], ref, ones, config).drifted
    print(alarms)
    assert alarms["overlapping"] <= 1 and alarms["disjoint"] <= 1  # <= 5% false alarms
    assert alarms["shifted"] >= 19  # >= 95% of planted shifts found
