"""``curate explain``: one pair's signals, bars and decision, checked against values computed here.

Texts: Jaccard of character 5-grams and the edit similarity are computed by brute force (sets of
substrings, a dynamic-programming Levenshtein distance). Images: the planted flat colours give the
colour difference; the copy similarity, bar and hash distance are recomputed from the files with the
measures' own functions; the embedding cosine from the store's vectors; the decision from the run's table.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest
from PIL import Image, ImageOps

from curate.decisions import latest_run
from curate.dedup import image_verify as iv
from curate.dedup import phash
from curate.dedup.near import NearConfig, NearDedup
from curate.dedup.phash import hamming, image_hash
from curate.embed.stage import EmbedConfig, embed
from curate.ingest import ingest
from curate.io.images import open_image
from curate.io.tables import read_table
from curate.runner import run_stage
from curate.workspace import Workspace
from tests.conftest import run_cli

BASE = ("the river runs slowly past the old mill where children once played in summer and the miller "
        "counted sacks of grain by lamplight while the wheel turned and turned in the dark water below")
COPY = BASE.replace(" by lamplight", "").replace("turned and turned", "turned")
OTHER = ("a train leaves the northern station every morning at six carrying workers and students toward "
         "the coast where the fog lifts late and the gulls wait on every roof for scraps of breakfast")


def grams(text: str, n: int = 5) -> set[str]:
    t = " ".join(text.casefold().split())
    return {t[i:i + n] for i in range(len(t) - n + 1)}


def jaccard(a: str, b: str) -> float:
    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y)


def edit_similarity(a: str, b: str) -> float:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return 1 - prev[-1] / max(len(a), len(b))


def line(out: str, signal: str) -> list[str]:
    """The cells of a signal's row: [score, bar operator, bar, result...]."""
    table = out.split("\ndecision:")[0]
    found = [ln.split() for ln in table.splitlines() if ln.strip().startswith(signal + " ")]
    assert len(found) == 1, out
    return found[0][1:]


@pytest.fixture(scope="module")
def text_ws(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain-text")
    (root / "texts.jsonl").write_text("".join(json.dumps({"id": i, "text": t}) + "\n"
                                              for i, t in (("base", BASE), ("copy", COPY), ("other", OTHER))))
    ws = Workspace(str(root / "ws"))
    ingest(ws, [str(root / "texts.jsonl")], progress=False)
    run_stage(ws, NearDedup(), NearConfig(), progress=False)
    return str(root / "ws")


def test_explain_a_matched_text_pair(text_ws, capsys):
    code, out, err = run_cli(capsys, "explain", "-w", text_ws, "copy", "base")
    assert code == 0, err
    assert float(line(out, "minhash")[0]) == pytest.approx(jaccard(COPY, BASE), abs=1e-4)
    assert line(out, "minhash")[1:3] == [">=", "0.7000"]
    edit = edit_similarity(" ".join(COPY.split()), " ".join(BASE.split()))
    assert float(line(out, "edit")[0]) == pytest.approx(edit, abs=1e-4)
    assert line(out, "edit")[3] == ("met" if edit >= 0.85 else "missed")
    assert line(out, "verified")[1] == "COPY"
    run = latest_run(Workspace(text_ws), "dedup")
    rows = {r["id"]: r for r in run.table.to_pylist()}
    assert rows["copy"]["duplicate_of"] == "base" and rows["base"]["kept"]  # the longer text is kept
    assert "decision: same group" in out
    assert "copy: removed (near-duplicate), duplicate_of base" in out
    assert f"dedup run {run.run_id}, method near" in out


def test_explain_a_rejected_text_pair_and_json(text_ws, capsys):
    code, out, _ = run_cli(capsys, "explain", "-w", text_ws, "base", "other", "--json")
    assert code == 0
    found = json.loads(out)
    signals = {s["signal"]: s for s in found["signals"]}
    assert signals["exact"]["met"] is False
    assert signals["minhash"]["score"] == pytest.approx(jaccard(BASE, OTHER), abs=1e-4)
    assert signals["minhash"]["met"] is False
    assert signals["edit"]["score"] == pytest.approx(edit_similarity(BASE, OTHER), abs=1e-4)
    assert signals["verified"]["met"] is False and found["same_group"] is False
    assert found["decision"]["other"]["kept"] and found["verified_pair"] is None


def encoded(img: Image.Image, fmt: str = "PNG", **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **save)
    return buf.getvalue()


@pytest.fixture(scope="module")
def image_ws(tmp_path_factory):
    from sklearn.datasets import load_sample_images

    china = Image.fromarray(load_sample_images().images[0])
    temple, trees = china.crop((100, 20, 300, 170)), china.crop((450, 120, 640, 270))
    root = tmp_path_factory.mktemp("explain-images")
    folder = root / "img"
    folder.mkdir()
    files = {"temple.png": encoded(temple), "temple-small.jpg": encoded(temple.resize((160, 120)), "JPEG", quality=70),
             "trees.png": encoded(trees), "red.png": encoded(Image.new("RGB", (40, 30), (200, 30, 30))),
             "blue.png": encoded(Image.new("RGB", (40, 30), (200, 30, 120)))}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    ws = Workspace(str(root / "ws"))
    ingest(ws, [str(folder)], progress=False)
    embed(ws, EmbedConfig(model="perceptual", workers=0), progress=False)
    run_stage(ws, NearDedup(), NearConfig(), progress=False)
    return str(root / "ws"), files


def cosine(ws: str, a: str, b: str) -> float:
    folder = f"{ws}/embeddings/perceptual-v2"
    ids = read_table(Workspace(ws).loc("embeddings", "perceptual-v2").join("ids.parquet")).column("id").to_pylist()
    vectors = np.load(f"{folder}/vectors.npy").astype(np.float64)
    va, vb = vectors[ids.index(a)], vectors[ids.index(b)]
    return float(va @ vb / np.linalg.norm(va) / np.linalg.norm(vb))


def test_explain_a_matched_image_pair(image_ws, capsys):
    ws, files = image_ws
    code, out, err = run_cli(capsys, "explain", "-w", ws, "img/temple-small.jpg", "img/temple.png")
    assert code == 0, err
    a, b = (open_image(files[n], min_side=256) for n in ("temple-small.jpg", "temple.png"))
    va, vb = iv.image_view(a), iv.image_view(b)
    bar = iv.pair_bar(iv.copy_floor(a, va), iv.copy_floor(b, vb), 0.92)
    assert line(out, "copy")[:3] == [f"{iv.copy_similarity(va, vb):.4f}", ">=", f"{bar:.4f}"]
    assert line(out, "copy")[3] == "met"
    assert line(out, "canonical")[0] == str((image_hash(a) ^ image_hash(b)).bit_count())
    plain = [phash.window_hashes(img)[0] for img in (a, b)]
    mirrored = [phash.window_hashes(ImageOps.mirror(img))[0] for img in (a, b)]
    assert line(out, "phash")[0] == str(min(hamming(plain[0], plain[1]), hamming(plain[0], mirrored[1]),
                                            hamming(mirrored[0], plain[1])))
    assert float(line(out, "semantic")[0]) == pytest.approx(cosine(ws, "img/temple-small.jpg", "img/temple.png"),
                                                            abs=1e-3)
    assert line(out, "verified")[1] == "COPY"
    assert "img/temple-small.jpg: removed (near-duplicate), duplicate_of img/temple.png" in out
    assert re.search(r"in the run's verified pairs: score \d\.\d{4}, signal \S*phash", out)


def test_explain_a_rejected_image_pair(image_ws, capsys):
    ws, _ = image_ws
    code, out, _ = run_cli(capsys, "explain", "-w", ws, "img/red.png", "img/blue.png")
    assert code == 0
    assert line(out, "featureless")[:4] == [f"{90 / 255:.4f}", "<=", "0.0200", "missed"]  # planted colours
    assert line(out, "verified")[1:4] == ["not", "a", "copy"]
    assert "decision: not in one group" in out and "img/red.png: kept" in out and "img/blue.png: kept" in out
    code, out, _ = run_cli(capsys, "explain", "-w", ws, "img/temple.png", "img/trees.png", "--json")
    signals = {s["signal"]: s for s in json.loads(out)["signals"]}
    assert signals["copy"]["met"] is False and signals["copy"]["score"] < signals["copy"]["bar"]
    assert signals["verified"]["met"] is False


def test_unknown_ids_and_missing_runs_are_one_line_errors(image_ws, capsys, tmp_path):
    ws, _ = image_ws
    code, out, err = run_cli(capsys, "explain", "-w", ws, "img/red.png", "img/nope.png")
    assert code == 2 and err.strip() == "error: unknown id (not in the manifest): 'img/nope.png'"
    code, _, err = run_cli(capsys, "explain", "-w", ws, "img/red.png", "img/red.png")
    assert code == 2 and len(err.strip().splitlines()) == 1
    (tmp_path / "t.jsonl").write_text('{"id": "a", "text": "one"}\n{"id": "b", "text": "two"}\n')
    other = str(tmp_path / "ws")
    run_cli(capsys, "ingest", str(tmp_path / "t.jsonl"), "-w", other, "--no-progress")
    code, _, err = run_cli(capsys, "explain", "-w", other, "a", "b")
    assert code == 2 and "no dedup run" in err and len(err.strip().splitlines()) == 1
