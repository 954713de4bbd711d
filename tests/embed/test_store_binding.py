"""An embedding store is bound to the manifest it covers: after a re-ingest, stages refuse it
until `curate embed` has brought it up to date, and that embeds only the new samples."""

import numpy as np
import pytest

from curate.dedup.semantic import SemanticConfig, semantic_dedup
from curate.embed.stage import EmbedConfig, embed
from curate.embed.store import open_store
from curate.errors import CurateError
from curate.ingest import ingest
from curate.prune.stage import PruneConfig, prune
from curate.workspace import Workspace
from tests.conftest import encode_image, write

EMBED = EmbedConfig(model="perceptual", workers=0, shard_size=8, batch_size=4)
SEMANTIC = SemanticConfig(threshold=(0.95,), clusters=2, save_index=False)


def image_folders(root):
    """A: 12 images (two near copies inside); B: 9 more, one an exact copy of an A image, one corrupt."""
    a, b = root / "a", root / "b"
    for i in range(12):
        write(a / "cls" / f"a{i:02d}.png", encode_image((20, 20), seed=i % 10))  # a10, a11 copy a0, a1
    for i in range(8):
        write(b / "cls" / f"b{i:02d}.png", encode_image((20, 20), seed=100 + i))
    write(b / "cls" / "copy.png", encode_image((20, 20), seed=3))
    write(b / "cls" / "broken.png", b"\x89PNG\r\n\x1a\nnot really")
    return str(a), str(b)


def decisions(result):
    return {r["id"]: (r["kept"], r["reason"], r["duplicate_of"]) for r in result.table.to_pylist()}


def test_reingest_then_embed_embeds_only_new_rows_and_dedup_equals_a_clean_run(tmp_path):
    a, b = image_folders(tmp_path)
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [a], progress=False)
    first = embed(ws, EMBED, progress=False)
    assert first.meta["embedded_now"] == 12 and first.meta["reused_rows"] == 0

    ingest(ws, [a, b], progress=False)  # A + B: 22 rows, one quarantined
    with pytest.raises(CurateError, match=r"earlier manifest.*curate embed -w .* --model perceptual"):
        semantic_dedup(ws, SEMANTIC, progress=False)
    with pytest.raises(CurateError, match="earlier manifest"):
        prune(ws, PruneConfig(fraction=0.5), progress=False)
    with pytest.raises(CurateError, match="earlier manifest"):
        open_store(ws, "perceptual-v2")

    second = embed(ws, EMBED, progress=False)
    # the 9 readable B images need vectors; copy.png has the bytes of a03, so its vector is copied too
    assert second.meta["reused_rows"] == 13 and second.meta["embedded_now"] == 8
    assert second.meta["count"] == 21 and second.meta["embedded"] == 21
    incremental = decisions(semantic_dedup(ws, SEMANTIC, progress=False))

    clean_ws = Workspace(str(tmp_path / "clean"))
    ingest(clean_ws, [a, b], progress=False)
    clean_store = embed(clean_ws, EMBED, progress=False)
    assert clean_store.meta["embedded_now"] == 21
    np.testing.assert_array_equal(open_store(ws, "perceptual-v2").vectors,
                                  open_store(clean_ws, "perceptual-v2").vectors)
    clean = decisions(semantic_dedup(clean_ws, SEMANTIC, progress=False))
    assert incremental == clean
    assert incremental["b/cls/broken.png"][:2] == (False, "quarantined")
    assert incremental["b/cls/copy.png"][1] == "exact-duplicate"


def test_a_model_that_embeds_none_of_the_samples_is_an_error_not_an_empty_store(tmp_path):
    a, _ = image_folders(tmp_path)
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [a], progress=False)
    with pytest.raises(CurateError, match=r"'minilm' embeds text samples; this workspace's ok samples are image 12"):
        embed(ws, EmbedConfig(model="minilm", workers=0), progress=False)
    assert not ws.loc("embeddings").exists()


@pytest.mark.parametrize("bad", [dict(workers=-1), dict(batch_size=0), dict(shard_size=0), dict(precision="fp8"),
                                 dict(model="nonsense")])
def test_bad_settings_touch_nothing_even_with_a_finished_store(tmp_path, bad):
    a, _ = image_folders(tmp_path)
    ws = Workspace(str(tmp_path / "ws"))
    ingest(ws, [a], progress=False)
    embed(ws, EMBED, progress=False)
    before = {p: ws.root.fs.info(p)["mtime"] for p in ws.root.fs.find(ws.root.path)}
    with pytest.raises(CurateError):
        embed(ws, EmbedConfig(**{**EMBED.__dict__, **bad}), progress=False)
    assert {p: ws.root.fs.info(p)["mtime"] for p in ws.root.fs.find(ws.root.path)} == before
    assert open_store(ws, "perceptual-v2").meta["count"] == 12
