"""Every knob of the select strategies is a setting of the command line and of a pipeline file, and does
what its help says, on hand-made pools whose answer is known (both routes give the same run)."""

import json

import numpy as np
import pytest

from curate.cli import main
from curate.decisions import latest_run
from curate.select.stage import picked
from tests.select.test_select_stage import angle, probs_with_margins, workspace


def run(capsys, *args: str) -> tuple[int, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def cli_select(capsys, ws, tmp_path, *args: str):
    """``curate select`` with ``args``; the run it wrote or reused."""
    code, err = run(capsys, "select", "-w", ws.root.path, "--no-progress", "--device", "cpu",
                    "--out", str(tmp_path / "cli.csv"), "--force", *args)
    assert code == 0, err
    return latest_run(ws, "select")


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)


def toml_select(capsys, ws, tmp_path, **settings):
    """``curate run`` on a pipeline file whose ``[select]`` table has ``settings``; the run."""
    table = {"device": "cpu", "out": str(tmp_path / "file.csv"), "force": True, **settings}
    text = f'workspace = "{ws.root.path}"\n[select]\n' + "".join(f"{k} = {toml_value(v)}\n" for k, v in table.items())
    (tmp_path / "p.toml").write_text(text)
    code, err = run(capsys, "run", str(tmp_path / "p.toml"), "--no-progress")
    assert code == 0, err
    return latest_run(ws, "select")


def ids(result) -> list[str]:
    return picked(result)


def both(capsys, ws, tmp_path, cli_args: list[str], **settings):
    """The run of ``cli_args`` on the command line; the pipeline file with ``settings`` gives the same run."""
    by_cli = cli_select(capsys, ws, tmp_path, *cli_args)
    by_file = toml_select(capsys, ws, tmp_path, **settings)
    assert by_file.run_id == by_cli.run_id and ids(by_file) == ids(by_cli)
    return by_cli


def trio_and_blob(tmp_path):
    """w0..w2: a tight trio at 100 degrees; w3..w32: a loose blob of 30 around 0 degrees."""
    rng = np.random.default_rng(0)
    trio = [angle(100) + np.eye(4)[2] * 0.001 * i for i in range(3)]
    blob = [angle(a) + np.eye(4)[3] * 0.01 * i for i, a in enumerate(rng.uniform(-25, 25, 30))]
    return workspace(tmp_path, trio + blob)


def test_knn_sets_how_many_neighbours_typicality_looks_at(tmp_path, capsys):
    """One cluster (budget 1, nothing labeled): the most typical item is the blob's centre when
    typicality looks at 20 neighbours, but one of the trio when it looks at 2 (its two twins)."""
    ws = trio_and_blob(tmp_path)
    default = cli_select(capsys, ws, tmp_path, "--budget", "1")
    assert ids(default)[0] not in {"w0", "w1", "w2"}
    knn = both(capsys, ws, tmp_path, ["--budget", "1", "--knn", "2"], budget=1, knn=2)
    assert ids(knn)[0] in {"w0", "w1", "w2"} and knn.run_id != default.run_id
    typiclust = both(capsys, ws, tmp_path, ["--budget", "1", "--strategy", "typiclust", "--knn", "2"],
                     budget=1, strategy="typiclust", knn=2)
    assert ids(typiclust) == ids(knn)


def test_cap_limits_the_members_of_a_cluster_that_are_scored(tmp_path, capsys):
    """A cluster larger than --cap is a seeded sample of cap members: with --cap 1 each cluster is one
    member, picked with typicality 1 (no neighbour scored); without it the trio's typicality is large."""
    ws = trio_and_blob(tmp_path)
    default = cli_select(capsys, ws, tmp_path, "--budget", "3", "--knn", "2", "--dup-threshold", "off")
    assert all(score > 10 for score in default.table.column("score").drop_null().to_pylist())
    capped = both(capsys, ws, tmp_path, ["--budget", "3", "--knn", "2", "--cap", "1", "--dup-threshold", "off"],
                  budget=3, knn=2, cap=1, dup_threshold="off")
    assert len(ids(capped)) == 3 and capped.table.column("score").drop_null().to_pylist() == [1.0, 1.0, 1.0]
    whole = cli_select(capsys, ws, tmp_path, "--budget", "3", "--knn", "2", "--cap", "33", "--dup-threshold", "off")
    assert ids(whole) == ids(default) and whole.run_id != default.run_id


def outlier_pool(tmp_path):
    """w0 (labeled) at 0 degrees, a tight blob w1..w12 at 60 degrees, a lone outlier w13 at 180 degrees."""
    vectors = [angle(0)] + [angle(60) + np.eye(4)[2] * 0.01 * i for i in range(12)] + [angle(180)]
    ws = workspace(tmp_path, vectors)
    (tmp_path / "labeled.txt").write_text("w0\n")
    return ws, ["--labeled", str(tmp_path / "labeled.txt"), "--typical-per-class", "0", "--dup-threshold", "off",
                "--preselect", "20"]  # every candidate in the first tranche


def test_density_keeps_k_center_off_outliers_and_0_turns_it_off(tmp_path, capsys):
    ws, args = outlier_pool(tmp_path)
    default = cli_select(capsys, ws, tmp_path, "--budget", "1", *args)
    assert ids(default)[0] != "w13"  # the farthest item is an outlier: typicality keeps k-center off it
    plain = both(capsys, ws, tmp_path, ["--budget", "1", "--density", "0", *args], budget=1, density=0.0,
                 labeled=str(tmp_path / "labeled.txt"), typical_per_class=0.0, dup_threshold="off", preselect=20.0)
    assert ids(plain) == ["w13"]  # plain k-center: the farthest from the labeled item


def test_power_weighs_uncertainty_against_distance(tmp_path, capsys):
    """Labeled w0 at 0 degrees; w1 at 60 degrees, a coin flip for the model (uncertainty 1); w2 at 120
    degrees, uncertainty 0.5; w3..w5 near w0, confident. Power 1: 0.5 x 1.5 beats 1 x 0.5 (w2);
    power 4: 1 x 0.5 beats 0.0625 x 1.5 (w1)."""
    ws = workspace(tmp_path, [angle(0), angle(60), angle(120), angle(5), angle(8), angle(11)])
    np.save(tmp_path / "p.npy", probs_with_margins([0.0, 0.0, 0.5, 0.98, 0.98, 0.98]))
    (tmp_path / "labeled.txt").write_text("w0\n")
    common = dict(predictions=str(tmp_path / "p.npy"), labeled=str(tmp_path / "labeled.txt"), typical_per_class=0.0,
                  dup_threshold="off", density=0.0)
    args = ["--predictions", common["predictions"], "--labeled", common["labeled"], "--typical-per-class", "0",
            "--dup-threshold", "off", "--density", "0"]
    assert ids(cli_select(capsys, ws, tmp_path, "--budget", "1", *args)) == ["w2"]
    assert ids(both(capsys, ws, tmp_path, ["--budget", "1", "--power", "4", *args], budget=1, power=4.0,
                    **common)) == ["w1"]


def test_class_aware_warm_up_gives_a_rare_class_its_share(tmp_path, capsys):
    """Three classes in separate blobs, one rare (10 of 210); a confident model; 2 labels of each common
    class. The class-aware warm-up evens out the predicted classes; class-blind TypiClust (largest
    clusters first) gives the rare class about its pool share."""
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(3, 16))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = np.repeat(np.arange(3), [100, 100, 10])
    x = centres[y] * 3 + rng.normal(size=(len(y), 16))
    ws = workspace(tmp_path, list(x / np.linalg.norm(x, axis=1, keepdims=True)))
    probs = np.full((len(y), 3), 0.05, dtype=np.float32)
    probs[np.arange(len(y)), y] = 0.9
    np.save(tmp_path / "p.npy", probs)
    (tmp_path / "labeled.txt").write_text("w0\nw1\nw100\nw101\n")
    args = ["--budget", "12", "--predictions", str(tmp_path / "p.npy"), "--labeled", str(tmp_path / "labeled.txt"),
            "--typical-per-class", "50", "--density", "0"]
    rare = {f"w{i}" for i in range(200, 210)}
    blind = cli_select(capsys, ws, tmp_path, *args)
    aware = both(capsys, ws, tmp_path, [*args, "--class-aware"], budget=12, predictions=str(tmp_path / "p.npy"),
                 labeled=str(tmp_path / "labeled.txt"), typical_per_class=50.0, density=0.0, class_aware=True)
    assert len(rare & set(ids(blind))) <= 2
    assert len(rare & set(ids(aware))) >= 4 and aware.run_id != blind.run_id


def test_upstream_names_the_stages_whose_removals_select_follows(tmp_path, capsys):
    ws = workspace(tmp_path, [angle(i * 15.0) for i in range(10)])
    code, err = run(capsys, "prune", "-w", ws.root.path, "--count", "4", "--no-progress", "--device", "cpu")
    assert code == 0, err
    pruned = {r["id"] for r in latest_run(ws, "prune").table.to_pylist() if not r["kept"]}
    assert len(pruned) == 6
    default = cli_select(capsys, ws, tmp_path, "--budget", "10", "--strategy", "random")
    assert set(ids(default)) >= pruned  # no dedup run: select picks from every item
    both_stages = both(capsys, ws, tmp_path, ["--budget", "10", "--strategy", "random", "--upstream", "dedup",
                                              "--upstream", "prune"],
                       budget=10, strategy="random", upstream=["dedup", "prune"])
    assert set(ids(both_stages)) == {f"w{i}" for i in range(10)} - pruned
    reasons = {r["id"]: r["reason"] for r in both_stages.table.to_pylist()}
    assert {reasons[i] for i in pruned} == {"prune: pruned"}


@pytest.mark.parametrize("args, message", [
    (["--knn", "0"], "--knn must be positive, got 0"),
    (["--cap", "-1"], "--cap must be positive, got -1"),
    (["--density", "-0.5"], "--density must be 0 or more, got -0.5"),
    (["--power", "nan"], "--power must be 0 or more, got nan"),
    (["--upstream", "prun"], "--upstream 'prun' is no stage whose removals select follows"),
    (["--upstream", "select"], "--upstream 'select' is no stage whose removals select follows"),
])
def test_knob_values_that_cannot_work_are_one_line_errors(tmp_path, capsys, args, message):
    ws = workspace(tmp_path, [angle(i * 15.0) for i in range(4)])
    code, err = run(capsys, "select", "-w", ws.root.path, "--budget", "1", "--out", str(tmp_path / "b.csv"), *args)
    assert code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, err


def test_knobs_at_their_defaults_keep_the_run_id(tmp_path, capsys):
    """The knobs that reached the command line later enter the run id only when set: runs made before
    are reused, and spelling out a default changes nothing."""
    ws = trio_and_blob(tmp_path)
    plain = cli_select(capsys, ws, tmp_path, "--budget", "2")
    spelled = cli_select(capsys, ws, tmp_path, "--budget", "2", "--knn", "20", "--cap", "4096", "--density", "1",
                         "--power", "1", "--upstream", "dedup")
    assert spelled.run_id == plain.run_id and spelled.reused
    assert set(plain.meta["config"]["batch"]) >= {"knn", "cap", "density", "class_aware", "power"}  # all recorded
