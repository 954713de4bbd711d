"""Export: shards readable by webdataset / pyarrow / HF datasets, versioning, lineage counts, resume."""

import hashlib
import json
import tarfile

import pyarrow.parquet as pq
import pytest

from curate.cli.export import parse_bytes
from curate.dedup.exact import ExactDedupConfig, exact_dedup
from curate.errors import CurateError
from curate.export.shards import sample_key
from curate.export.stage import ExportConfig, export, exported
from curate.ingest import IngestConfig, ingest
from curate.workspace import Workspace
from tests.conftest import encode_image, write


def image_workspace(tmp_path, fmt="PNG"):
    """7 files: 5 distinct images, 1 byte-identical copy, 1 corrupt; labels cat/dog, splits train/test."""
    root = tmp_path / "src"
    files = {
        "train/cat/a.png": encode_image(seed=1, fmt=fmt), "train/cat/b.png": encode_image(seed=2, fmt=fmt),
        "train/dog/c.png": encode_image(seed=3, fmt=fmt), "test/dog/d.png": encode_image(seed=4, fmt=fmt),
        "test/cat/e.png": encode_image(seed=5, fmt=fmt), "train/dog/copy.png": encode_image(seed=1, fmt=fmt),
        "train/cat/broken.png": encode_image(seed=6, fmt=fmt)[:-30],
    }
    for rel, data in files.items():
        write(root / rel, data)
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(root)], IngestConfig())
    exact_dedup(ws, ExactDedupConfig())
    return ws, files


def tar_members(path):
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def test_webdataset_shards_hold_exactly_the_kept_samples(tmp_path):
    ws, files = image_workspace(tmp_path)
    result = exported(export(ws, ExportConfig(name="pets", shard_size=2, splits=True), progress=False))
    names = sorted(s.name for s in result.shards)
    # train keeps a, b, c (copy and broken removed); test keeps d, e
    assert names == ["pets-test-00000.tar", "pets-train-00000.tar", "pets-train-00001.tar"]
    members = {}
    for name in names:
        members.update(tar_members(result.folder.path + "/" + name))
    images = {k: v for k, v in members.items() if k.endswith(".png")}
    assert len(images) == 5
    for key, data in images.items():
        meta = json.loads(members[key[:-4] + ".json"])
        rel = meta["id"].split("/", 1)[1]
        assert data == files[rel]  # original bytes, untouched
        assert members[key[:-4] + ".cls"] == str(["cat", "dog"].index(meta["label"])).encode()
        assert meta["split"] == rel.split("/")[0]
    assert not any("copy" in k or "broken" in k for k in members)


def test_webdataset_library_and_hf_datasets_read_the_shards(tmp_path):
    webdataset = pytest.importorskip("webdataset")
    datasets = pytest.importorskip("datasets")
    ws, _ = image_workspace(tmp_path)
    result = exported(export(ws, ExportConfig(shard_size=3), progress=False))
    urls = [f"{result.folder.path}/{s.name}" for s in result.shards]
    seen = list(webdataset.WebDataset(urls, shardshuffle=False).decode("pil").to_tuple("png", "cls", "json"))
    assert len(seen) == 5 and all(img.size == (16, 12) for img, _, _ in seen)
    assert sorted(json.loads(m)["label"] if isinstance(m, bytes) else m["label"] for _, _, m in seen) == \
        ["cat", "cat", "cat", "dog", "dog"]
    hf = datasets.load_dataset("webdataset", data_files=urls, split="train", cache_dir=str(tmp_path / "hf"))
    assert len(hf) == 5 and hf[0]["png"].size == (16, 12)


def text_workspace(tmp_path):
    rows = [{"id": f"r{i}", "text": f"sentence number {i}", "label": "ab"[i % 2]} for i in range(9)]
    rows.append({"id": "r-dup", "text": "sentence number 3", "label": "b"})
    write(tmp_path / "t.jsonl", "\n".join(json.dumps(r) for r in rows).encode())
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [str(tmp_path / "t.jsonl")], IngestConfig())
    exact_dedup(ws, ExactDedupConfig())
    return ws


def test_parquet_text_shards_read_by_pyarrow_and_hf_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    ws = text_workspace(tmp_path)
    result = exported(export(ws, ExportConfig(name="t", shard_size=4), progress=False))
    assert result.lineage["format"] == "parquet" and [s.samples for s in result.shards] == [4, 4, 1]
    files = [f"{result.folder.path}/{s.name}" for s in result.shards]
    table = pq.read_table(files)
    assert table.column("id").to_pylist() == [f"r{i}" for i in range(9)]
    assert table.column("text").to_pylist()[3] == "sentence number 3"
    hf = datasets.load_dataset("parquet", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    assert hf.features["label"].names == ["a", "b"]
    assert [hf[i]["label"] for i in range(3)] == [0, 1, 0]


def test_parquet_image_shards_decode_as_hf_images(tmp_path):
    datasets = pytest.importorskip("datasets")
    ws, files = image_workspace(tmp_path)
    result = exported(export(ws, ExportConfig(format="parquet"), progress=False))
    hf = datasets.load_dataset("parquet", data_files=[f"{result.folder.path}/{s.name}" for s in result.shards],
                               split="train", cache_dir=str(tmp_path / "hf"))
    assert len(hf) == 5 and hf[0]["image"].size == (16, 12)
    raw = pq.read_table(f"{result.folder.path}/{result.shards[0].name}").to_pylist()
    assert raw[0]["image"]["bytes"] == files[raw[0]["id"].split("/", 1)[1]]


def test_lineage_accounts_for_every_input(tmp_path):
    ws, _ = image_workspace(tmp_path)
    lineage = exported(export(ws, ExportConfig(), progress=False)).lineage
    stages = lineage["counts"]["stages"]
    assert [s["stage"] for s in stages] == ["ingest", "dedup"]
    assert stages[0] == {"stage": "ingest", "in": 7, "out": 6, "removed": {"truncated-image": 1}}
    assert stages[1]["in"] == 6 and stages[1]["out"] == 5 and stages[1]["removed"] == {"exact-duplicate": 1}
    assert lineage["counts"]["exported"] == 5 and lineage["counts"]["accounted"] is True
    assert lineage["labels"]["before"] == {"cat": 4, "dog": 3} and lineage["labels"]["after"] == {"cat": 3, "dog": 2}
    assert lineage["stages"][0]["decision_file"].endswith(".parquet")
    assert lineage["inputs"]["manifest_rows"] == 7 and lineage["packages"]["pyarrow"]
    samples = pq.read_table(f"{ws.root.path}/exports/curated/{lineage['version']}/samples.parquet").to_pylist()
    fates = {r["id"].split("/", 1)[1]: (r["exported"], r["stage"], r["reason"]) for r in samples}
    assert len(fates) == 7
    assert fates["train/dog/copy.png"] == (False, "dedup", "exact-duplicate")
    assert fates["train/cat/broken.png"][:2] == (False, "ingest")
    assert fates["train/cat/a.png"] == (True, None, None)
    for shard in lineage["shards"]:
        data = (tmp_path / "ws" / "exports" / "curated" / lineage["version"] / shard["name"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == shard["sha256"] and len(data) == shard["bytes"]


def test_same_inputs_same_version_and_changes_make_new_versions(tmp_path):
    ws, _ = image_workspace(tmp_path)
    first = exported(export(ws, ExportConfig(), progress=False))
    again = exported(export(ws, ExportConfig(), progress=False))
    assert again.version == first.version and again.reused
    undeduped = exported(export(ws, ExportConfig(stage=()), progress=False))
    resized = exported(export(ws, ExportConfig(shard_size=1), progress=False))
    assert len({first.version, undeduped.version, resized.version}) == 3
    assert undeduped.lineage["counts"]["exported"] == 6
    versions = sorted(p.name for p in (tmp_path / "ws" / "exports" / "curated").iterdir() if p.is_dir())
    assert versions == sorted({first.version, undeduped.version, resized.version})  # old versions stay
    latest = json.loads((tmp_path / "ws" / "exports" / "curated" / "latest.json").read_text())
    assert latest["version"] == resized.version


def test_resume_rewrites_missing_shards_byte_identically(tmp_path):
    ws, _ = image_workspace(tmp_path)
    first = exported(export(ws, ExportConfig(shard_size=2), progress=False))
    folder = tmp_path / "ws" / "exports" / "curated" / first.version
    before = {p.name: p.read_bytes() for p in folder.glob("*.tar")}
    (folder / "lineage.json").unlink()
    (folder / first.shards[1].name).unlink()
    (folder / ".tmp-deadbeef-curated-all-00002.tar").write_bytes(b"partial")  # a killed writer's leftover
    second = exported(export(ws, ExportConfig(shard_size=2), progress=False))
    assert second.version == first.version and not second.reused
    assert {p.name: p.read_bytes() for p in folder.glob("*.tar")} == before
    assert not list(folder.glob(".tmp-*"))


def test_changed_source_is_an_error_and_leaves_no_shard(tmp_path):
    ws, _ = image_workspace(tmp_path)
    (tmp_path / "src" / "train" / "cat" / "a.png").write_bytes(encode_image(seed=99))
    with pytest.raises(CurateError, match="changed since ingest"):
        exported(export(ws, ExportConfig(), progress=False))
    leftovers = [p for p in (tmp_path / "ws" / "exports").rglob("*") if p.suffix == ".tar" or ".tmp-" in p.name]
    assert leftovers == []


def test_shard_bytes_limit_and_bad_settings(tmp_path):
    ws, _ = image_workspace(tmp_path)
    result = exported(export(ws, ExportConfig(shard_bytes=1), progress=False))  # every sample alone
    assert [s.samples for s in result.shards] == [1] * 5
    for bad in (ExportConfig(shard_size=0), ExportConfig(format="zip"), ExportConfig(name="../x")):
        with pytest.raises(CurateError):
            export(ws, bad)


def test_parse_bytes_and_sample_keys():
    assert parse_bytes("500MB") == 500 * 10**6 and parse_bytes("1GiB") == 2**30 and parse_bytes("42") == 42
    assert parse_bytes("none") is None
    with pytest.raises(CurateError):
        parse_bytes("lots")
    used: set[str] = set()
    assert sample_key("images/a.b/c.jpg", used) == "images/a_b/c_jpg"
    assert sample_key("images/a_b/c_jpg", used) == "images/a_b/c_jpg_1"  # unique after sanitising
    assert sample_key("/../../etc/passwd", used) == "__/__/etc/passwd"


def test_tar_headers_are_deterministic(tmp_path):
    ws, _ = image_workspace(tmp_path)
    result = exported(export(ws, ExportConfig(), progress=False))
    with tarfile.open(f"{result.folder.path}/{result.shards[0].name}") as tar:
        infos = tar.getmembers()
    assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" and m.isreg() for m in infos)
