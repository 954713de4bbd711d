"""Geometric consensus: is one image a re-framed copy of another (crop, stretch, thumbnail, border)?

The alignment search of :mod:`curate.dedup.phash` covers small changes of scale, rotation and
shift around the centre. Copies that were cropped off-centre, stretched or letterboxed fall outside
it. For those pairs:

1. ORB keypoints of each image (border-trimmed grey, scaled to ``work_side``; at most
   ``max_keypoints``), matched by descriptor with Lowe's ratio test; too few matches end the check
   (the cheap screen: most non-copies stop here).
2. A RANSAC fit of an affine transform; it must be a plausible edit: rotation at most
   ``max_rotation``, anisotropy (aspect change) at most ``max_aspect``, scale within
   ``1 / max_scale .. max_scale``, and ``min_inliers`` inliers.
3. One image must lie inside the other (``min_cover`` of its frame): neighbouring tiles of a photo,
   which share an edge at most, fail here.
4. The container is warped into the frame of the contained image and the two are compared there,
   band-passed at the contained image's own resolution (text stays legible), in a ``cells`` x
   ``cells`` grid: the score is the pooled correlation of all cells but the worst ``overlay_share``
   (a watermark, caption or logo), and 0 when more than that share of the cells changed. Renders of
   one template (the same layout, other text or icons) mostly differ over more than that; other
   scans of one digit hold few keypoints and differ a little everywhere, and the caller compares the
   score with the pair's calibrated bar (:mod:`curate.dedup.image_verify`). Renders that differ in
   under ``overlay_share`` of the area (a swapped icon, a short title and a few short lines) cannot be
   told from an overlaid copy: they match.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from curate.dedup.phash import _blur, band_pass

__all__ = ["ConsensusConfig", "Keypoints", "consensus_similarity", "keypoints"]

ECC_MAX_SHIFT = 4.0  # pixels: a refinement that moves a corner further than this is not trusted
FINE = (0.7, 2.0)  # the fine band (Gaussian sigmas, native pixels) that decides which cells changed


@dataclass(frozen=True)
class ConsensusConfig:
    work_side: int = 256  # keypoints are found on the image scaled to this longer side
    max_keypoints: int = 400
    ratio: float = 0.8  # Lowe's ratio test on descriptor distances
    min_matches: int = 10  # fewer ratio-test matches: not a copy (no fit is tried)
    min_inliers: int = 10
    min_inlier_share: float = 0.25  # of the ratio-test matches
    reprojection: float = 4.0  # RANSAC inlier distance, work pixels
    max_rotation: float = 15.0  # degrees
    max_aspect: float = 1.35  # ratio of the transform's two scales (an aspect change of 25% is 1.25)
    max_scale: float = 2.5  # of the mean scale between the two work images
    min_cover: float = 0.9  # share of the contained image's frame that must lie inside the other
    cells: int = 16  # the comparison grid (cells of at least 4 pixels)
    overlay_share: float = 0.15  # the worst cells left out of the score (overlays up to 10% of the area)
    changed: float = 0.5  # a cell whose squared difference (fine band) is above this times the mean cell's
    # detail is changed; more than overlay_share changed: no copy


@dataclass(frozen=True)
class Keypoints:
    """One image's ORB keypoints in work pixels, their descriptors, and the work scale (work / native)."""

    points: np.ndarray  # [k, 2] float32
    descriptors: np.ndarray | None  # [k, 32] uint8
    scale: float


_ORB: dict[int, cv2.ORB] = {}


def keypoints(grey: np.ndarray, config: ConsensusConfig = ConsensusConfig()) -> Keypoints:
    """ORB keypoints of a grey ``uint8`` image scaled (up or down) to ``work_side`` on its longer side."""
    h, w = grey.shape
    scale = config.work_side / max(1, h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    work = cv2.resize(grey, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    orb = _ORB.get(config.max_keypoints)
    if orb is None:
        orb = _ORB[config.max_keypoints] = cv2.ORB_create(nfeatures=config.max_keypoints, fastThreshold=10,
                                                          edgeThreshold=15, patchSize=15)
    found, desc = orb.detectAndCompute(work, None)
    points = np.array([k.pt for k in found], dtype=np.float32).reshape(-1, 2)
    return Keypoints(points, desc, scale)


def _fit(ka: Keypoints, kb: Keypoints, config: ConsensusConfig) -> np.ndarray | None:
    """The affine map from ``b``'s native pixels to ``a``'s ([2, 3]), or None when there is no
    plausible one."""
    if ka.descriptors is None or kb.descriptors is None or len(ka.points) < 2 or len(kb.points) < 2:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(kb.descriptors, ka.descriptors, k=2)
    good = [m[0] for m in matches if len(m) == 2 and m[0].distance < config.ratio * m[1].distance]
    if len(good) < config.min_matches:
        return None
    src = kb.points[[m.queryIdx for m in good]]
    dst = ka.points[[m.trainIdx for m in good]]
    cv2.setRNGSeed(0)  # deterministic RANSAC
    work, inliers = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=config.reprojection,
                                         maxIters=2000, confidence=0.995)
    if work is None:
        return None
    count = int(inliers.sum())
    if count < config.min_inliers or count < config.min_inlier_share * len(good):
        return None
    linear = work[:, :2]
    if np.linalg.det(linear) <= 0:  # a mirror image: the alignment search's business
        return None
    u, s, vt = np.linalg.svd(linear)
    rotation = np.degrees(np.arctan2(*(u @ vt)[::-1, 0]))
    if abs(rotation) > config.max_rotation or s[0] / s[1] > config.max_aspect:
        return None
    mean = float(np.sqrt(s[0] * s[1]))
    if not 1 / config.max_scale <= mean <= config.max_scale:
        return None
    # native b -> work b -> work a -> native a
    native = np.empty((2, 3))
    native[:, :2] = linear * kb.scale / ka.scale
    native[:, 2] = work[:, 2] / ka.scale
    return native


def _inverse(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(m)


def _cover(m: np.ndarray, inner: tuple[int, int], outer: tuple[int, int], samples: int = 16) -> float:
    """Share of the ``inner`` frame (h, w) that ``m`` maps inside the ``outer`` frame (h, w)."""
    h, w = inner
    y, x = np.meshgrid((np.arange(samples) + 0.5) * h / samples, (np.arange(samples) + 0.5) * w / samples,
                       indexing="ij")
    px = m[0, 0] * x + m[0, 1] * y + m[0, 2]
    py = m[1, 0] * x + m[1, 1] * y + m[1, 2]
    return float(np.mean((px >= 0) & (px <= outer[1]) & (py >= 0) & (py <= outer[0])))


def _refined(contained: np.ndarray, container: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``m`` refined to sub-pixel accuracy by intensity alignment (ECC): keypoint positions are
    quantised by ORB's pyramid, and a pixel off blurs the fine detail the cell check compares. The
    fit is kept as it is when ECC does not converge or moves it by more than ``ECC_MAX_SHIFT`` pixels."""
    warp = m.astype(np.float32).copy()
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 40, 1e-4)
    try:
        _, warp = cv2.findTransformECC(contained.astype(np.float32), container.astype(np.float32), warp,
                                       cv2.MOTION_AFFINE, criteria, None, 3)
    except cv2.error:
        return m
    h, w = contained.shape
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], dtype=np.float64).T
    if np.max(np.abs((warp - m) @ corners)) > ECC_MAX_SHIFT:
        return m
    return warp.astype(np.float64)


def _warped_into(contained: np.ndarray, container: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``container`` sampled in the contained frame (``m``: contained pixels -> container pixels),
    shrunk first where the container is the larger (no aliasing), and the mask of valid pixels."""
    shrink = float(np.sqrt(abs(np.linalg.det(m[:, :2]))))
    if shrink > 1.5:
        h, w = container.shape
        size = (max(1, round(w / shrink)), max(1, round(h / shrink)))
        container = cv2.resize(container, size, interpolation=cv2.INTER_AREA)
        m = m * np.array([[size[0] / w], [size[1] / h]])
    m = _refined(contained, container, m)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    shape = contained.shape
    out = cv2.warpAffine(container.astype(np.float32), m, (shape[1], shape[0]), flags=flags,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=-1.0)
    ones = np.ones(container.shape, dtype=np.float32)
    mask = cv2.warpAffine(ones, m, (shape[1], shape[0]), flags=flags, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0.0) > 0.999
    return out, mask


def _inner_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """The rows and columns where the mask is (nearly) full: ``(top, bottom, left, right)``."""
    rows = np.flatnonzero(mask.mean(axis=1) >= 0.98)
    cols = np.flatnonzero(mask.mean(axis=0) >= 0.98)
    if len(rows) < 8 or len(cols) < 8:
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _grid(shape: tuple[int, int], cells: int) -> tuple[int, int]:
    """Rows and columns of the comparison grid: ``cells`` a side, cells at least 4 pixels."""
    return max(1, min(cells, shape[0] // 4)), max(1, min(cells, shape[1] // 4))


def _cell_sums(a: np.ndarray, b: np.ndarray, cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per grid cell (row-major): the sums of a*b, a*a and b*b."""
    rows, cols = _grid(a.shape, cells)
    ys = np.linspace(0, a.shape[0], rows + 1).round().astype(int)
    xs = np.linspace(0, a.shape[1], cols + 1).round().astype(int)
    sums = [np.add.reduceat(np.add.reduceat(x, ys[:-1], axis=0), xs[:-1], axis=1).ravel()
            for x in (a * b, a * a, b * b)]
    return sums[0], sums[1], sums[2]


def _cell_score(a: np.ndarray, b: np.ndarray, config: ConsensusConfig) -> float:
    """Pooled correlation of two band-passed images of one shape over the grid's cells, the
    ``overlay_share`` of cells where they differ most left out; 0 when more than that share of the
    cells is changed (a cell whose fine-band squared difference is above ``changed`` times the mean
    cell's fine detail)."""
    grid = _grid(a.shape, config.cells)
    fab, faa, fbb = _cell_sums(_fine(a), _fine(b), config.cells)
    difference = faa + fbb - 2 * fab  # a cell's squared difference, against the pair's mean cell detail
    changed = (difference > config.changed * np.mean(faa + fbb)).reshape(grid)
    if np.mean(changed) > config.overlay_share:
        return 0.0
    ab, aa, bb = _cell_sums(band_pass(a), band_pass(b), config.cells)
    diff = aa + bb - 2 * ab  # a cell's share of the pair's squared difference
    keep = np.argsort(diff)[: len(diff) - int(np.floor(config.overlay_share * len(diff)))]
    norm = np.sqrt(aa[keep].sum() * bb[keep].sum())
    return float(np.clip(ab[keep].sum() / norm, 0.0, 1.0)) if norm > 1e-12 else 0.0


def _fine(grey: np.ndarray) -> np.ndarray:
    """Fine detail (difference of Gaussians, ``FINE`` pixels): strokes of text, not just its lines."""
    return _blur(grey, FINE[0]) - _blur(grey, FINE[1])


def consensus_similarity(grey_a: np.ndarray, grey_b: np.ndarray, ka: Keypoints, kb: Keypoints,
                         config: ConsensusConfig = ConsensusConfig()) -> float | None:
    """The similarity of two grey ``uint8`` images (border-trimmed, native pixels) after the affine
    map their keypoints agree on, in ``[0, 1]``; None when no plausible map has one image inside the
    other (then the pair is not a re-framed copy)."""
    m = _fit(ka, kb, config)  # b -> a
    if m is None:
        return None
    inv = _inverse(m)  # a -> b
    cover_b, cover_a = _cover(m, grey_b.shape, grey_a.shape), _cover(inv, grey_a.shape, grey_b.shape)
    if max(cover_a, cover_b) < config.min_cover:
        return None
    if cover_b >= cover_a:  # b lies inside a: compare in b's frame
        contained, container, to_container = grey_b, grey_a, m
    else:
        contained, container, to_container = grey_a, grey_b, inv
    warped, mask = _warped_into(contained, container, to_container)
    box = _inner_box(mask)
    if box is None:
        return None
    top, bottom, left, right = box
    if (bottom - top) * (right - left) < config.min_cover * 0.9 * mask.size:
        return None
    x = contained[top:bottom, left:right].astype(np.float32) / 255.0
    y = warped[top:bottom, left:right] / 255.0
    return _cell_score(x, y, config)
