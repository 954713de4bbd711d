"""Images by manifest row, decoded on demand, for ``fuzzy``/``near``: the decode cache.

The hashing pass decodes each image once; verification decodes an image again to build its
:class:`~curate.dedup.image_verify.ImageView` (about 330 KB) and its
:class:`~curate.dedup.featureless.Uniformity` (the last ``views`` are kept: pairs are verified in
an order that keeps an image's pairs close, see :func:`curate.dedup.verify.locality_order`) and,
for pairs that pass the coarse screen, measures its copy floor (kept, a float) from the same decoded
picture (the last ``IMAGES`` decoded are kept: a pair's floors follow its views).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image

from curate.dedup.featureless import Uniformity, uniformity
from curate.dedup.image_verify import ImageView, copy_floor, image_view
from curate.dedup.quality import image_sharpness
from curate.embed.payloads import PayloadFetcher
from curate.io.images import open_image

IMAGES = 16  # decoded pictures kept for the copy floors of the pair being verified (about 200 KB each)


def decode_payload(data: bytes | None, max_side: int = 256) -> Image.Image | None:
    """An encoded image as a person sees it (:func:`curate.io.images.open_image`: upright, transparency
    composited, a JPEG decoded at a reduced scale), at most ``max_side`` a side; None when it cannot be
    decoded (it is then never a duplicate)."""
    if data is None:
        return None
    try:
        img = open_image(data, min_side=max_side)
        img.thumbnail((max_side, max_side))
        return img
    except Exception:
        return None


class Pictures:
    """``bar``: a progress bar factory (``RunContext.bar``) for the hashing pass."""

    def __init__(self, manifest: pa.Table, bar: Callable[..., Any], max_side: int = 256, views: int = 2048) -> None:
        self.manifest, self.bar, self.max_side = manifest, bar, max_side
        self.views: OrderedDict[int, tuple[ImageView, Uniformity] | None] = OrderedDict()
        self.floors: dict[int, float] = {}
        self.images: OrderedDict[int, Image.Image | None] = OrderedDict()
        self.limit = views
        self.fetcher = PayloadFetcher()
        self.decodes = 0  # images decoded for this run, worker processes included (the run's facts report it)

    def decode(self, row: int) -> Image.Image | None:
        """A row's image as a person sees it (:func:`decode_payload`), at most ``max_side`` a side; None
        when unreadable."""
        self.decodes += 1
        return decode_payload(self.payload(row), self.max_side)

    def payload(self, row: int) -> bytes | None:
        """A row's encoded image (None when it cannot be read)."""
        record = {name: self.manifest.column(name)[row].as_py() for name in self.manifest.column_names}
        try:
            data = self.fetcher.fetch(record)
        except Exception:  # unreadable now: it cannot be verified, so it is never a duplicate
            return None
        return data if isinstance(data, bytes) else None

    def view(self, row: int) -> ImageView | None:
        """The view of a row's image (None when it cannot be decoded), cached."""
        seen = self._seen(row)
        return None if seen is None else seen[0]

    def uniformity(self, row: int) -> Uniformity | None:
        """The mean colour and spread of a row's image (None when it cannot be decoded), cached with its view:
        :mod:`curate.dedup.featureless` decides the pairs of featureless images from them."""
        seen = self._seen(row)
        return None if seen is None else seen[1]

    def _seen(self, row: int) -> tuple[ImageView, Uniformity] | None:
        if row in self.views:
            self.views.move_to_end(row)
            return self.views[row]
        img = self._image(row)
        seen = None if img is None else (image_view(img), uniformity(img))
        self.views[row] = seen
        if len(self.views) > self.limit:
            self.views.popitem(last=False)
        return seen

    def floor(self, row: int) -> float:
        """The copy floor of a row's image (:func:`~curate.dedup.image_verify.copy_floor`), cached."""
        if row not in self.floors:
            view = self.view(row)
            img = None if view is None else self._image(row)
            self.floors[row] = 1.0 if view is None or img is None else copy_floor(img, view)
        return self.floors[row]

    def _image(self, row: int) -> Image.Image | None:
        """:meth:`decode`, the last ``IMAGES`` kept (a view and then its floor decode the image once)."""
        if row in self.images:
            self.images.move_to_end(row)
            return self.images[row]
        img = self.images[row] = self.decode(row)
        if len(self.images) > IMAGES:
            self.images.popitem(last=False)
        return img

    def sharpness(self, rows: np.ndarray) -> np.ndarray:
        """Per manifest row (NaN elsewhere): the sharpness of the image rows among ``rows``."""
        return image_sharpness(rows, self.manifest, self.fetcher.fetch)
