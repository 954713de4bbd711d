"""`curate audit` on a small image workspace with planted defects: the table, undecodable images, quarantined rows,
label conflicts, and prune/export --drop."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image, ImageFilter

from curate.audit import image_checks
from curate.audit.stage import AuditConfig, all_checks, audit
from curate.cli import main
from curate.decisions import latest_run
from curate.errors import CurateError
from curate.workspace import Workspace
from tests.conftest import write

BASE = ["id", "kept", "reason", "label_score", "label_issue", "suggested_label", "issues"]
LOOSE = (("blurry", 0.4),)  # the planted blur scores ~0.55, the sharp images ~0.03


def blocks(seed: int, blur: float = 0, scale: float = 1.0, size: int = 128) -> bytes:
    """Random 16 px colour blocks: sharp edges, plenty of structure, mid tones."""
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(40, 220, size=(size // 16, size // 16, 3), dtype=np.uint8))
    img = img.resize((size, size), Image.NEAREST)
    if blur:
        img = img.filter(ImageFilter.GaussianBlur(blur))
    arr = (np.asarray(img).astype(np.float32) * scale).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """imgs/{cat,dog}/: 6 sharp images, a blurry and a dark one, a corrupt file (quarantined at ingest), one
    replaced by garbage after ingest (undecodable now), and dog/copy.png = cat/a0.png (a dedup group with
    two labels). Ingested, embedded (perceptual) and exact-deduplicated."""
    from curate.dedup.exact import exact_dedup
    from curate.embed.stage import EmbedConfig, embed
    from curate.ingest import IngestConfig, ingest

    root = tmp_path_factory.mktemp("audit-images")
    imgs = root / "imgs"
    for i in range(3):
        write(imgs / "cat" / f"a{i}.png", blocks(i))
        write(imgs / "dog" / f"b{i}.png", blocks(10 + i))
    write(imgs / "cat" / "blurry.png", blocks(20, blur=3))
    write(imgs / "dog" / "dark.png", blocks(21, scale=0.12))
    write(imgs / "cat" / "broken.png", b"\x89PNG\r\n\x1a\n not an image")
    write(imgs / "dog" / "gone.png", blocks(22))
    write(imgs / "dog" / "copy.png", blocks(0))
    ws = Workspace(str(root / "ws"))
    ingest(ws, [str(imgs)], IngestConfig())
    embed(ws, EmbedConfig(model="perceptual", workers=0), progress=False)
    exact_dedup(ws, progress=False)
    (imgs / "dog" / "gone.png").write_bytes(b"changed since ingest: no longer an image")
    return root / "ws"


@pytest.fixture
def ws(base, tmp_path):
    shutil.copytree(base, tmp_path / "ws")
    return Workspace(str(tmp_path / "ws"))


def _row(table, sid):
    return table.slice(table.column("id").to_pylist().index(sid), 1).to_pylist()[0]


def test_table_covers_every_manifest_id_with_the_exact_columns(ws, monkeypatch):
    decoded = []
    real = image_checks.decode_features
    monkeypatch.setattr(image_checks, "decode_features", lambda data, *a: decoded.append(1) or real(data, *a))
    result = audit(ws, AuditConfig(thresholds=LOOSE), progress=False)
    table = result.table
    manifest = ws.read_manifest(["id", "status"])
    assert table.column("id").equals(manifest.column("id"))
    checks = [c for c in all_checks() if c in image_checks.IMAGE_CHECKS or c in ("undecodable", "outlier",
                                                                                  "label-conflict")]
    assert table.column_names == BASE + checks
    assert len(decoded) == manifest.column("status").to_pylist().count("ok")  # each ok image once, no more
    assert str(table.schema.field("issues").type) == "list<item: string>"
    assert all(str(table.schema.field(c).type) == "float" for c in checks)

    blurry, dark = _row(table, "imgs/cat/blurry.png"), _row(table, "imgs/dog/dark.png")
    assert "blurry" in blurry["issues"] and "dark" in dark["issues"]
    sharp = _row(table, "imgs/dog/b1.png")
    assert sharp["issues"] == [] and sharp["blurry"] < 0.2 and sharp["kept"] and sharp["reason"] is None

    gone = _row(table, "imgs/dog/gone.png")  # unreadable now: flagged, never a crash
    assert gone["undecodable"] == 1.0 and gone["issues"] == ["undecodable"] and gone["blurry"] is None
    assert gone["kept"]  # nothing is dropped by default

    broken = _row(table, "imgs/cat/broken.png")  # quarantined at ingest: carried, not audited
    assert not broken["kept"] and broken["reason"].startswith("quarantined: ")
    assert broken["issues"] == [] and broken["undecodable"] is None and broken["label_score"] is None

    for sid in ("imgs/cat/a0.png", "imgs/dog/copy.png"):  # one dedup group, labels cat and dog
        assert _row(table, sid)["label-conflict"] == 1.0 and "label-conflict" in _row(table, sid)["issues"]
    assert sum(v == 1.0 for v in table.column("label-conflict").to_pylist()) == 2

    assert result.meta["label_source"] == "knn" and table.column("label_score").null_count == 1  # broken
    assert result.counts == {"kept": table.num_rows - 1, "quarantined": 1}


def test_audit_drop_and_the_command_line(ws, tmp_path, capsys):
    out = tmp_path / "audit.csv"
    code = _cli(["audit", "-w", str(ws.root.path), "--drop", "blurry,undecodable", "--threshold", "blurry=0.4",
                 "--out", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0
    assert "blurry" in text and "1 flagged" in text and "label issues" in text and "  run      audit-" in text
    assert "dropped  2 (blurry 1, undecodable 1)" in text and out.exists()
    table = latest_run(ws, "audit").table
    assert _row(table, "imgs/cat/blurry.png")["reason"] == "blurry"
    assert _row(table, "imgs/dog/gone.png")["reason"] == "undecodable"
    with pytest.raises(CurateError, match="not a check"):
        audit(ws, AuditConfig(drop=("blury",)), progress=False)


def test_prune_and_export_drop_what_the_audit_flagged(ws, tmp_path):
    from curate.export.stage import Export, ExportConfig, export
    from curate.prune.stage import Prune, PruneConfig, prune

    before = prune(ws, PruneConfig(fraction=1.0), progress=False)  # no audit run yet, no --drop
    assert "drop" not in Prune().settings(PruneConfig(fraction=1.0))  # same settings, same run ids as before
    assert "drop" not in Export().settings(ExportConfig())
    assert before.meta["inputs"]["upstream"].keys() == {"dedup"}
    with pytest.raises(CurateError, match="needs an audit run"):
        prune(ws, PruneConfig(fraction=1.0, drop=("blurry",)), progress=False)

    audit(ws, AuditConfig(thresholds=LOOSE), progress=False)
    same = prune(ws, PruneConfig(fraction=1.0), progress=False)  # the audit drops nothing by default
    assert same.table.column("kept").equals(before.table.column("kept"))
    dropped = prune(ws, PruneConfig(fraction=1.0, drop=("blurry", "undecodable")), progress=False)
    reasons = dict(zip(dropped.table.column("id").to_pylist(), dropped.table.column("reason").to_pylist()))
    assert reasons["imgs/cat/blurry.png"] == "audit: blurry"
    assert reasons["imgs/dog/gone.png"] == "audit: undecodable"
    assert reasons["imgs/dog/copy.png"] == "dedup: exact-duplicate"  # the first stage that removed it
    assert sum(dropped.table.column("kept").to_pylist()) == sum(same.table.column("kept").to_pylist()) - 2
    with pytest.raises(CurateError, match="no such check"):
        prune(ws, PruneConfig(fraction=1.0, drop=("too-short",)), progress=False)

    # gone.png changed since ingest: export would refuse it, so the audit's undecodable flag leaves it out
    done = export(ws, ExportConfig(stage=("dedup",), drop=("dark", "undecodable"), out=str(tmp_path / "out")),
                  progress=False)
    gone = dict(zip(done.table.column("id").to_pylist(), done.table.column("reason").to_pylist()))
    assert gone["imgs/dog/dark.png"] == "audit: dark" and gone["imgs/dog/gone.png"] == "audit: undecodable"
    assert done.meta["exported"] == 7  # 10 ok - copy.png (dedup) - dark - gone
    assert [s["stage"] for s in done.meta["funnel"]] == ["ingest", "dedup", "audit"]


def _cli(args):
    try:
        main(args)
    except SystemExit as exc:
        return exc.code
    return 0


def test_report_has_an_audit_section_worst_first_and_label_issues(ws, tmp_path):
    from curate.report.build import ReportConfig, build_report

    build_report(ws, ReportConfig(out=str(tmp_path / "r.html"), max_points=0))
    assert 'id="audit"' not in (tmp_path / "r.html").read_text()  # no audit run, no section
    audit(ws, AuditConfig(thresholds=LOOSE), progress=False)
    build_report(ws, ReportConfig(out=str(tmp_path / "r2.html"), max_points=0))
    html = (tmp_path / "r2.html").read_text()
    section = html[html.index('<section id="audit">'):]
    section = section[:section.index("</section>")]
    assert '<a href="#audit">Audit</a>' in html
    for check in ("blurry", "dark", "undecodable", "label-conflict"):
        assert f'id="audit-{check}"' in section
    assert 'id="audit-tiny"' not in section  # nothing flagged: no block
    blurry = section[section.index('id="audit-blurry"'):]
    assert "imgs/cat/blurry.png" in blurry[:blurry.index("</div></div>") + 12] and "data:image/jpeg" in blurry
    table = latest_run(ws, "audit").table
    issues = [i for i, flag in enumerate(table.column("label_issue").to_pylist()) if flag]
    assert f"Label issues: {len(issues)}" in section
    for row in issues:
        given, suggested = table.column("id")[row].as_py(), table.column("suggested_label")[row].as_py()
        assert f'data-row="{row}"' in section and given in section and f"<td>{suggested}</td>" in section
