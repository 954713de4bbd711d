import json

import numpy as np
from PIL import Image

from curate.demo import build_demo
from curate.probe import Rejected
from curate.probe.image import probe_image


def test_demo_ground_truth_is_consistent(tmp_path):
    truth = build_demo(tmp_path / "demo")
    images = tmp_path / "demo" / "images"
    assert json.loads((tmp_path / "demo" / "ground_truth.json").read_text()) == truth
    files = [p for p in images.rglob("*") if p.is_file()]
    assert len(files) == truth["file_count"] == truth["source_count"] + len(truth["exact_copies"]) + \
        len(truth["near_copies"]) + len(truth["corrupt"])
    for item in truth["exact_copies"]:
        assert (images / item["path"]).read_bytes() == (images / item["of"]).read_bytes()
    assert any(i["path"].startswith("test/") and i["of"].startswith("train/") for i in truth["exact_copies"])
    for item in truth["near_copies"]:
        copy, orig = images / item["path"], images / item["of"]
        assert copy.read_bytes() != orig.read_bytes()
        assert copy.parent.name == orig.parent.name  # same digit label
        with Image.open(copy) as a, Image.open(orig) as b:
            small_a = np.asarray(a.convert("L").resize((16, 16)), dtype=float)
            small_b = np.asarray(b.convert("L").resize((16, 16)), dtype=float)
            diff = np.abs(small_a - small_b).mean()
            assert diff < 40, f"{item} is not a near copy (mean abs diff {diff:.1f})"
    for item in truth["corrupt"]:
        try:
            probe_image((images / item["path"]).read_bytes())
        except Rejected:
            continue
        raise AssertionError(f"{item} decodes fine")


def test_demo_is_deterministic(tmp_path):
    a = build_demo(tmp_path / "a")
    b = build_demo(tmp_path / "b")
    assert a == b
    for p in (tmp_path / "a" / "images").rglob("*.jpg"):
        assert p.read_bytes() == (tmp_path / "b" / "images" / p.relative_to(tmp_path / "a" / "images")).read_bytes()
