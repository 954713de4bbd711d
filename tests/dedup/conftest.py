"""Fixtures shared by the dedup tests."""

from __future__ import annotations

import pytest
from PIL import Image


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    """Non-overlapping crops of the two sample photos (different pictures, all with features)."""
    from sklearn.datasets import load_sample_images

    china, flower = (Image.fromarray(a) for a in load_sample_images().images)
    return {"temple": china.crop((100, 20, 300, 170)), "trees": china.crop((450, 120, 640, 270)),
            "bloom": flower.crop((170, 80, 450, 290)), "lake": china.crop((260, 240, 450, 390))}
