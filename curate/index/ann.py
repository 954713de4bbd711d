"""A saved FAISS index over an embedding store, for kNN / range search and incremental dedup.

A new batch is deduplicated against an existing workspace by searching that workspace's
index instead of re-clustering everything, and the ``knn`` dedup method turns range-search
pairs above a threshold into duplicate groups. The metric is the inner product (cosine for
the store's unit vectors). Below ``flat_limit`` rows the index is exact (``IndexFlatIP``, fp32:
FAISS's flat search and range search run as BLAS matrix products only on fp32 storage); above it
is IVF whose coarse quantizer reuses the dedup k-means centroids when given. IVF stores the
vectors as fp16 by default (``IndexIVFScalarQuantizer`` QT_fp16 on the raw vectors, not the
residuals): half the size of IVF-Flat and lossless for the fp16 embedding store; ``storage="fp32"``
keeps IVF-Flat. When the caller already knows each row's nearest centroid (the dedup stage
assigned every row), ``assignments`` adds the rows straight into those lists with
``IndexIVF.add_core`` instead of searching the quantizer again.
FAISS runs on the GPU when a FAISS GPU build sees one; indexes are saved from a CPU copy.

Index positions are not store rows (invalid rows are left out), so every index carries
``rows``: the store row of each entry, and searches return store rows.

``index/<slug>/`` holds ``rows.npy``, ``faiss.index`` and ``index.json`` (kind, storage, count,
dim, nlist, nprobe, ...; indexes saved before ``storage`` existed are fp32); each is written
atomically and ``index.json`` last, after removing the old one, so a reader finds a complete,
consistent index or none. FAISS files are self-describing, so the format number is unchanged.

:func:`exact_search` is a pure-torch exact kNN for small pools that needs no FAISS.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from curate.errors import CurateError
from curate.index.assign import resolve_device
from curate.index.kmeans import (
    KMeansConfig,
    faiss_gpu_id,
    fit_spherical_kmeans,
    gpu_resources,
    import_faiss,
    require_faiss,
)
from curate.index.pages import release
from curate.io import atomic
from curate.io.fs import Location, locate
from curate.vectors import blocks
from curate.workspace import Workspace

INDEX_FORMAT = 1
FLAT_LIMIT = 200_000
KINDS = ("auto", "flat", "ivf")
STORAGES = ("fp16", "fp32")
GPU_MAX_K = 2048  # FAISS GPU k-selection limit


@dataclass(frozen=True)
class AnnIndex:
    """A FAISS index (CPU or GPU) plus the store row of each of its entries."""

    index: Any
    rows: np.ndarray  # int64 [count]
    kind: str  # flat | ivf
    dim: int
    nlist: int | None = None
    nprobe: int | None = None
    storage: str = "fp32"  # how the index holds its vectors: fp32 | fp16

    @property
    def count(self) -> int:
        return len(self.rows)

    @property
    def on_gpu(self) -> bool:
        return _is_gpu(self.index)


def index_dir(ws: Workspace, slug: str) -> Location:
    return ws.loc("index", slug)


def default_nprobe(nlist: int) -> int:
    """Cells visited per query: 1/32 of the lists, at least 16 (all when fewer)."""
    return max(1, min(nlist, max(16, nlist // 32)))


# --------------------------------------------------------------------------- helpers


def _is_gpu(index: Any) -> bool:
    faiss = import_faiss()
    return faiss is not None and hasattr(faiss, "GpuIndex") and isinstance(index, faiss.GpuIndex)


def _to_cpu(index: Any) -> Any:
    return require_faiss().index_gpu_to_cpu(index) if _is_gpu(index) else index


def _to_gpu(index: Any, gpu: int) -> Any:
    return require_faiss().index_cpu_to_gpu(gpu_resources(gpu), gpu, index)


def _set_nprobe(index: Any, nprobe: int) -> None:
    faiss = require_faiss()
    if _is_gpu(index):
        faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", nprobe)
    else:
        faiss.extract_index_ivf(index).nprobe = nprobe


def _bytes_per_value(storage: str) -> int:
    return 2 if storage == "fp16" else 4


def _fits_on_gpu(nbytes: int, gpu: int) -> bool:
    """Leave the index on the CPU when its vectors would take over half the free GPU memory."""
    if not torch.cuda.is_available():
        return True  # cannot tell; FAISS will raise if it does not fit
    free, _ = torch.cuda.mem_get_info(gpu)
    return nbytes <= free // 2


def _query_block(queries: np.ndarray, start: int, stop: int) -> np.ndarray:
    return np.ascontiguousarray(queries[start:stop], dtype=np.float32)


def _map_rows(index: AnnIndex, ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids, dtype=np.int64)
    return np.where(ids >= 0, index.rows[np.clip(ids, 0, None)], -1) if index.count else np.full_like(ids, -1)


# --------------------------------------------------------------------------- build


def build_index(vectors: np.ndarray, valid: np.ndarray | None = None, kind: str = "auto",
                centroids: np.ndarray | None = None, nprobe: int | None = None, device: str | torch.device = "auto",
                block: int = 65536, flat_limit: int = FLAT_LIMIT,
                kmeans: KMeansConfig = KMeansConfig(), assignments: np.ndarray | None = None,
                storage: str = "fp16") -> AnnIndex:
    """Index the valid rows of ``vectors`` (memory-mapped fp16 [N, d] is fine: read blockwise).

    ``kind="auto"`` is flat below ``flat_limit`` valid rows, else IVF. An IVF index uses
    ``centroids`` [nlist, d] as its coarse quantizer, or fits them with ``kmeans`` (sample,
    seed) when none are given; ``nprobe`` defaults to :func:`default_nprobe`. ``storage``
    (fp16 | fp32) is how IVF holds the vectors; a flat index is always fp32.

    ``assignments`` (int [N], with ``centroids``): the list (centroid id) of every row, e.g. the
    dedup stage's k-means labels; invalid rows' values are ignored. IVF rows then go straight
    into those lists, skipping the N x nlist quantizer search (a FAISS GPU index re-assigns).
    """
    faiss = require_faiss()
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r} (choose from {', '.join(KINDS)})")
    if storage not in STORAGES:
        raise ValueError(f"unknown index storage {storage!r} (choose from {', '.join(STORAGES)})")
    n, d = vectors.shape
    valid = np.ones(n, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    rows = np.flatnonzero(valid).astype(np.int64)
    if assignments is not None:
        assignments = np.asarray(assignments)
        if assignments.shape != (n,) or not np.issubdtype(assignments.dtype, np.integer):
            raise ValueError(f"assignments must be integers of shape ({n},), got {assignments.dtype} "
                             f"{assignments.shape}")
        if centroids is None:
            raise ValueError("assignments need the centroids they refer to")
    if kind == "auto":
        kind = "flat" if len(rows) < flat_limit else "ivf"
    nlist = lists = None
    if kind == "flat":
        storage = "fp32"
        cpu_index = faiss.IndexFlatIP(d)
    else:
        if centroids is None:
            if not len(rows):
                raise CurateError("an IVF index needs at least one valid embedding (or centroids)")
            centroids = fit_spherical_kmeans(vectors, valid, replace(kmeans, device=device))
        centroids = np.ascontiguousarray(centroids, dtype=np.float32)
        if centroids.ndim != 2 or centroids.shape[1] != d:
            raise ValueError(f"centroids of shape {centroids.shape} do not match vectors of dimension {d}")
        nlist = centroids.shape[0]
        if assignments is not None:
            lists = assignments[rows].astype(np.int64)
            if len(lists) and (lists.min() < 0 or lists.max() >= nlist):
                raise ValueError(f"assignments of valid rows must lie in [0, {nlist}), got "
                                 f"[{lists.min()}, {lists.max()}]")
        cpu_index = _ivf(faiss, centroids, storage)
        nprobe = default_nprobe(nlist) if nprobe is None else max(1, min(int(nprobe), nlist))
    gpu = faiss_gpu_id(device)
    index = cpu_index
    if gpu is not None and _fits_on_gpu(len(rows) * d * _bytes_per_value(storage), gpu):
        index = _to_gpu(cpu_index, gpu)
    if nlist is not None:
        _set_nprobe(index, nprobe)
    for start, x in blocks(vectors, rows, block=block):  # contiguous fp32, as FAISS takes it
        if lists is not None and not _is_gpu(index):
            ids = np.ascontiguousarray(lists[start:start + block])
            index.add_core(len(x), faiss.swig_ptr(x), None, faiss.swig_ptr(ids))
        else:
            index.add(x)
        release(vectors)
    return AnnIndex(index, rows, kind, d, nlist, nprobe if nlist is not None else None, storage)


def _ivf(faiss: Any, centroids: np.ndarray, storage: str) -> Any:
    """An empty, trained CPU IVF index whose coarse quantizer holds exactly ``centroids``."""
    nlist, d = centroids.shape
    quantizer = faiss.IndexFlatIP(d)
    quantizer.add(centroids)
    if storage == "fp32":
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.is_trained = True
    else:
        index = faiss.IndexIVFScalarQuantizer(quantizer, d, nlist, faiss.ScalarQuantizer.QT_fp16,
                                              faiss.METRIC_INNER_PRODUCT)
        index.by_residual = False  # fp16 of the raw fp16-store vectors is exact; no quantizer search to add
        # Only the (trivial) fp16 scalar quantizer trains: a quantizer already holding nlist
        # vectors is left alone by FAISS, which the check below makes sure of.
        index.train(centroids)
        if quantizer.ntotal != nlist or not index.is_trained:
            raise RuntimeError("FAISS retrained the IVF coarse quantizer")
    return index  # FAISS's python wrapper keeps a reference to the quantizer


# --------------------------------------------------------------------------- save / load


def _folder(folder: Location | str) -> Location:
    return folder if isinstance(folder, Location) else locate(str(folder))


def save_index(index: AnnIndex, folder: Location | str, meta: dict | None = None) -> dict:
    """Write ``rows.npy``, ``faiss.index`` then ``index.json`` (with ``meta`` merged in) atomically.

    The old ``index.json`` is removed first: a save killed half-way leaves no index rather
    than a new ``faiss.index`` described by an old ``index.json``. Returns the written meta.
    """
    faiss = require_faiss()
    loc = _folder(folder)
    marker = loc.join("index.json")
    if marker.exists():
        marker.fs.rm(marker.path)
    with atomic.atomic_open(loc.join("rows.npy")) as fh:
        np.save(fh, np.asarray(index.rows, dtype=np.int64))
    with atomic.atomic_open(loc.join("faiss.index")) as fh:
        writer = faiss.PyCallbackIOWriter(fh.write)
        faiss.write_index(_to_cpu(index.index), writer)
        del writer  # flushes FAISS's buffer into fh
    info = dict(meta or {})
    info.update({"format": INDEX_FORMAT, "kind": index.kind, "storage": index.storage, "count": index.count,
                 "dim": index.dim,
                 "nlist": index.nlist, "nprobe": index.nprobe, "metric": "inner_product",
                 "rows": "rows.npy", "faiss_version": getattr(faiss, "__version__", None)})
    atomic.write_json(marker, info)
    return info


def read_meta(folder: Location | str) -> dict:
    loc = _folder(folder)
    if not loc.join("index.json").exists():
        raise CurateError(f"no finished index in {loc.uri} (build one first)")
    meta = atomic.read_json(loc.join("index.json"))
    if meta.get("format") != INDEX_FORMAT:
        raise CurateError(f"the index in {loc.uri} has format {meta.get('format')}, this curate reads "
                          f"format {INDEX_FORMAT}: rebuild it")
    return meta


def load_index(folder: Location | str, device: str | torch.device = "auto") -> AnnIndex:
    """Open a saved index (on the FAISS GPU when there is one and it fits)."""
    faiss = require_faiss()
    loc = _folder(folder)
    meta = read_meta(loc)
    with loc.join(meta["rows"]).fs.open(loc.join(meta["rows"]).path, "rb") as fh:
        rows = np.load(fh)
    idx_loc = loc.join("faiss.index")
    if idx_loc.is_local:
        index = faiss.read_index(idx_loc.path)
    else:
        with idx_loc.fs.open(idx_loc.path, "rb") as fh:
            index = faiss.read_index(faiss.PyCallbackIOReader(fh.read))
    if not (index.ntotal == len(rows) == meta["count"]) or index.d != meta["dim"]:
        raise CurateError(f"the index in {loc.uri} is inconsistent (entries {index.ntotal}, rows {len(rows)}, "
                          f"meta count {meta['count']}): rebuild it")
    storage = meta.get("storage", "fp32")  # indexes saved before fp16 storage existed are fp32
    gpu = faiss_gpu_id(device)
    if gpu is not None and _fits_on_gpu(index.ntotal * index.d * _bytes_per_value(storage), gpu):
        index = _to_gpu(index, gpu)
    if meta["kind"] == "ivf" and meta.get("nprobe"):
        _set_nprobe(index, int(meta["nprobe"]))
    return AnnIndex(index, rows.astype(np.int64, copy=False), meta["kind"], int(meta["dim"]),
                    meta.get("nlist"), meta.get("nprobe"), storage)


# --------------------------------------------------------------------------- search


def search(index: AnnIndex, queries: np.ndarray, k: int, block: int = 16384) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most similar entries of each query: (sims float32 [Q, k], store rows int64 [Q, k]).

    Descending by similarity; missing neighbours (k above the count) have row -1, sim -inf.
    """
    faiss_index = index.index
    if index.on_gpu and k > GPU_MAX_K:
        faiss_index = _to_cpu(faiss_index)
    q = queries.shape[0]
    sims = np.empty((q, k), dtype=np.float32)
    rows = np.empty((q, k), dtype=np.int64)
    for start in range(0, q, block):
        stop = min(q, start + block)
        s, i = faiss_index.search(_query_block(queries, start, stop), k)
        sims[start:stop] = np.where(i >= 0, s, -np.inf)
        rows[start:stop] = _map_rows(index, i)
    return sims, rows


def range_search(index: AnnIndex, queries: np.ndarray, threshold: float,
                 block: int = 16384) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All entries with similarity strictly above ``threshold``, CSR-style.

    Query ``i``'s hits are ``rows[lims[i]:lims[i + 1]]`` with ``sims`` alongside, sorted by
    similarity descending (ties by row). IVF indexes only look in ``nprobe`` cells. GPU
    indexes have no range search in FAISS: it runs on a CPU copy.
    """
    faiss_index = _to_cpu(index.index)
    q = queries.shape[0]
    counts = np.zeros(q, dtype=np.int64)
    sims_parts, rows_parts = [], []
    for start in range(0, q, block):
        stop = min(q, start + block)
        lims, s, i = faiss_index.range_search(_query_block(queries, start, stop), float(threshold))
        lims = lims.astype(np.int64)
        per = np.diff(lims)
        owner = np.repeat(np.arange(stop - start), per)
        r = _map_rows(index, i)
        order = np.lexsort((r, -s, owner))
        counts[start:stop] = per
        sims_parts.append(s[order].astype(np.float32, copy=False))
        rows_parts.append(r[order])
    lims = np.zeros(q + 1, dtype=np.int64)
    np.cumsum(counts, out=lims[1:])
    sims = np.concatenate(sims_parts) if sims_parts else np.empty(0, dtype=np.float32)
    rows = np.concatenate(rows_parts) if rows_parts else np.empty(0, dtype=np.int64)
    return lims, sims, rows


def exact_search(base: np.ndarray, queries: np.ndarray, k: int, valid: np.ndarray | None = None,
                 block: int = 4096, device: str | torch.device = "auto",
                 cache_bytes: int = 1 << 30) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner-product search in torch, blockwise (no FAISS needed).

    Returns (sims float32 [Q, k], base rows int64 [Q, k]), descending; invalid base rows
    are never returned and missing neighbours have row -1, sim -inf. The base is kept on
    the device as fp32 when it takes at most ``cache_bytes``, else streamed per query block.
    """
    dev = resolve_device(device)
    n, d = base.shape
    q = queries.shape[0]
    sims = np.full((q, k), -np.inf, dtype=np.float32)
    rows = np.full((q, k), -1, dtype=np.int64)
    if n == 0 or q == 0 or k == 0:
        return sims, rows
    mask = None if valid is None else torch.from_numpy(~np.asarray(valid, dtype=bool)).to(dev)
    cached = None  # the whole base as one fp32 block on the device (a view when it is already that)
    if n * d * 4 <= cache_bytes:
        _, cached = next(blocks(base, range(n), dev, block=n))
    with torch.inference_mode():
        for qs, xq in blocks(queries, range(q), dev, block=block):
            qe = qs + len(xq)
            best_s = torch.full((qe - qs, 0), -torch.inf, device=dev)
            best_i = torch.empty((qe - qs, 0), dtype=torch.int64, device=dev)
            for bs, xb in blocks(cached if cached is not None else base, range(n), dev, block=block):
                be = bs + len(xb)
                s = xq @ xb.T
                if mask is not None:
                    s.masked_fill_(mask[bs:be][None, :], -torch.inf)
                cand_s = torch.cat([best_s, s], dim=1)
                cand_i = torch.cat([best_i, torch.arange(bs, be, device=dev).expand(qe - qs, -1)], dim=1)
                best_s, pos = torch.topk(cand_s, min(k, cand_s.shape[1]), dim=1)
                best_i = torch.gather(cand_i, 1, pos)
            got = best_s.shape[1]
            s_np = best_s.cpu().numpy()
            i_np = best_i.cpu().numpy()
            sims[qs:qe, :got] = s_np
            rows[qs:qe, :got] = np.where(np.isfinite(s_np), i_np, -1)
    return sims, rows
