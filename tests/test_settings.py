"""Settings from one source: CLI options carry the config dataclasses' names and defaults; the
pipeline file and the Python API take the same names; errors never show Python internals."""

import dataclasses
import re

import pytest

from curate.cli import cli
from curate.dedup.exact import ExactDedupConfig
from curate.dedup.knn import KnnConfig
from curate.dedup.near import NearConfig
from curate.dedup.semantic import SemanticConfig
from curate.embed.stage import EmbedConfig
from curate.errors import CurateError
from curate.export.stage import ExportConfig
from curate.ingest import IngestConfig, ingest_config
from curate.prune.stage import PruneConfig
from curate.select.stage import SelectConfig
from curate.settings import all_fields, build_config

# the CLI options that are not config fields (where the run goes, how it is shown, parsed forms)
NOT_SETTINGS = {"workspace", "progress", "wait", "method", "help", "glob_",
                "label_issues"}  # select --label-issues: export the audit's label issues instead of a strategy
COPY_PATH = {"dedup", "prune"}  # their --out is a copy of the decision table, not a setting of the run
# config fields with no CLI option, on purpose (tuning knobs for the pipeline file and the API)
FILE_ONLY = {
    "dedup": {"sample", "iterations", "neighbours", "batch_rows"},
    "ingest": {"sources", "read", "rows_per_part"},
}


def defaults(cls) -> dict:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


REQUIRED = {"embed": set(), "prune": set(), "dedup": set(), "select": {"budget", "out"}}


def options(name: str) -> dict:
    command = cli.get_command(None, name)
    skip = NOT_SETTINGS | ({"out"} if name in COPY_PATH else set())
    return {p.name: p.default for p in command.params if p.name not in skip}


def same(a, b) -> bool:
    def norm(v):
        return tuple(v) if isinstance(v, (list, tuple)) else v

    return norm(a) == norm(b)


@pytest.mark.parametrize("name,cls", [("embed", EmbedConfig), ("prune", PruneConfig), ("select", SelectConfig)])
def test_cli_options_are_config_fields_with_the_same_defaults(name, cls):
    fields = {k: v for k, v in all_fields(cls).items() if v is not dataclasses.MISSING}
    opts, names = options(name), set(all_fields(cls))
    assert set(opts) - names == set(), f"`curate {name}` options that are no {cls.__name__} field"
    assert names - set(opts) == FILE_ONLY.get(name, set())
    for key, value in opts.items():
        if name == "select" and key == "class_quota":
            continue  # CLASS=N strings on the command line, (class, n) pairs in the config
        if key in REQUIRED[name]:
            continue  # no default on either side
        assert same(value, fields[key]), f"--{key.replace('_', '-')}: CLI {value!r} != config {fields[key]!r}"


DEDUP_CONFIGS = (SemanticConfig, KnnConfig, ExactDedupConfig, NearConfig)  # fuzzy: a NearConfig


def test_every_dedup_option_belongs_to_a_method_with_the_same_default():
    """`curate dedup` passes only the options given on the command line to the chosen method's config
    (one that method does not take is an error), so each option must be a field of some method and
    show that method's default."""
    opts = options("dedup")
    fields = {cls: defaults(cls) for cls in DEDUP_CONFIGS}
    for key, value in opts.items():
        owners = [cls for cls in DEDUP_CONFIGS if key in fields[cls]]
        assert owners, f"--{key.replace('_', '-')} is no field of any dedup method's config"
        if key == "keep":
            owners = [c for c in owners if c is not ExactDedupConfig]  # exact keeps the first copy, always
        for cls in owners:
            assert same(value, fields[cls][key]), f"--{key}: CLI {value!r} != {cls.__name__} {fields[cls][key]!r}"
    semantic_only = set(fields[SemanticConfig]) - set(opts)
    assert semantic_only == FILE_ONLY["dedup"]


def test_a_dedup_option_the_method_does_not_take_is_one_line(tmp_path):
    from click.testing import CliRunner

    src = tmp_path / "t.jsonl"
    src.write_text('{"id": "a", "text": "x"}\n')
    ws = str(tmp_path / "ws")
    assert CliRunner().invoke(cli, ["ingest", str(src), "-w", ws]).exit_code == 0
    from curate.cli import main

    with pytest.raises(SystemExit) as done:
        main(["dedup", "-w", ws, "--method", "exact", "--clusters", "4"])
    assert done.value.code == 2


def test_export_options_match_the_config():
    from curate.cli.export import parse_bytes

    opts, fields = options("export"), defaults(ExportConfig)
    assert set(opts) == set(fields)
    for key, value in opts.items():
        expected = fields[key]
        got = parse_bytes(value) if key == "shard_bytes" else (() if key == "run" else value)
        assert same(got, expected), key


def test_ingest_options_build_the_default_config():
    from curate.cli import ingest as cli_ingest
    from curate.readers import READERS

    opts = options("ingest")
    assert set(opts) - {"sources"} == {"kind", "id_field", "text_field", "image_field", "label_field", "split_field",
                                       "embedding_field", "max_pixels", "check", "max_text_bytes", "workers",
                                       "files_per_unit", "rehash"}
    opts.pop("sources")
    assert ingest_config(opts) == IngestConfig()
    assert set(cli_ingest.READER_NAMES) == set(READERS)


def test_pipeline_and_api_take_cli_names_and_explain_mistakes():
    assert build_config(SemanticConfig, {"threshold": [0.9, 0.95], "save-index": False}, "dedup") == \
        SemanticConfig(threshold=(0.9, 0.95), save_index=False)
    assert ingest_config({"max-pixels": 5, "check": "header", "id-field": "key"}).read.image.max_pixels == 5
    with pytest.raises(CurateError, match=r"unknown setting\(s\) thresholds; valid: threshold"):
        build_config(SemanticConfig, {"thresholds": [0.9]}, "dedup")
    with pytest.raises(CurateError, match=r"^\[select\] needs `budget`$"):
        build_config(SelectConfig, {}, "select")
    nested = build_config(SelectConfig, {"budget": 3, "dup-threshold": 0.5, "out": "b.json",
                                         "batch": {"preselect": 4.0}}, "select")
    assert (nested.batch.dup_threshold, nested.batch.preselect, nested.handoff.out) == (0.5, 4.0, "b.json")
    with pytest.raises(CurateError, match="must be int"):
        build_config(PruneConfig, {"count": "ten"}, "prune")


def test_list_settings_check_every_item_and_numbers_refuse_booleans():
    for value in ([0.9, "a"], True, [0.9, True], "0.9", {"a": 0.9}, [[0.9]]):
        with pytest.raises(CurateError, match=r"^\[dedup\] threshold must be a number or a list of numbers, not "):
            build_config(SemanticConfig, {"threshold": value}, "dedup")
    assert build_config(SemanticConfig, {"threshold": 1}, "dedup").threshold == (1,)
    assert build_config(KnnConfig, {"threshold": [0.8, 0.9]}, "dedup").threshold == (0.8, 0.9)
    with pytest.raises(CurateError, match=r"^\[export\] stage must be a string or a list of strings, not"):
        build_config(ExportConfig, {"stage": ["dedup", 3]}, "export")
    for key, value in (("jaccard", True), ("bands", True), ("bands", 2.5), ("ngram", "5"), ("seed", None)):
        with pytest.raises(CurateError, match=rf"^\[dedup\] {key} must be (float|int), not {value!r}$"):
            build_config(NearConfig, {key: value}, "dedup")


def run_file(tmp_path, capsys, text: str) -> tuple[int, str]:
    """``curate run`` on a pipeline file (in this process): (exit status, stderr)."""
    from curate.cli import main

    toml = tmp_path / "p.toml"
    toml.write_text(f'workspace = "{tmp_path / "ws"}"\n{text}\n')
    try:
        main(["run", str(toml), "--no-progress"])
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("table, message", [
    ('threshold = [0.9, "a"]',
     r"\[dedup --method semantic\] threshold must be a number or a list of numbers, not \[0.9, 'a'\]"),
    ("threshold = true", r"\[dedup --method semantic\] threshold must be a number or a list of numbers, not True"),
    ('method = "fuzzy"\njaccard = true', r"\[dedup --method fuzzy\] jaccard must be float, not True"),
    ('method = "near"\nbands = "25"', r"\[dedup --method near\] bands must be int, not '25'"),
    ('methd = "fuzzy"\njaccard = 0.8', r"\[dedup\]: unknown setting\(s\) methd; valid: method, threshold, .*jaccard.*"),
    ("jaccard = 0.8", r"\[dedup\]: method = 'semantic' \(the default\) does not take jaccard .* set method = "
                      r"'fuzzy' or 'near' for them"),
    ('method = "exact"\nthreshold = 0.9', r"\[dedup\]: method = 'exact' does not take threshold \(it takes keep\).*"),
])
def test_pipeline_file_type_errors_and_unknown_keys_are_one_line(tmp_path, capsys, table, message):
    code, err = run_file(tmp_path, capsys, f"[dedup]\n{table}")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert re.fullmatch(f"error: {message}\n", err), err
    assert not (tmp_path / "ws").exists()


def test_a_misspelled_method_key_is_the_only_error(tmp_path, capsys):
    code, err = run_file(tmp_path, capsys, '[dedup]\nmethd = "fuzzy"\njaccard = 0.8\nbands = 30')
    flagged = err.split(";")[0]
    assert code == 2 and flagged == "error: [dedup]: unknown setting(s) methd", err  # not jaccard nor bands
    valid = err.split("valid: ")[1].strip().split(", ")
    every = {name for cls in (SemanticConfig, ExactDedupConfig, KnnConfig, NearConfig)
             for name in all_fields(cls)}
    assert valid[0] == "method" and set(valid) == every | {"method"}
