"""Vector indexing over embedding stores: spherical k-means, blockwise assignment, FAISS kNN.

FAISS is optional wherever torch can do the job (k-means, assignment, exact search); it is
used on the GPU when a FAISS GPU build sees one. Nothing here imports FAISS at import time.
"""

from curate.index.ann import (
    AnnIndex,
    build_index,
    exact_search,
    index_dir,
    load_index,
    range_search,
    save_index,
    search,
)
from curate.index.assign import Assignment, assign, cluster_members, resolve_device
from curate.index.kmeans import KMeansConfig, default_clusters, fit_spherical_kmeans

__all__ = ["AnnIndex", "Assignment", "KMeansConfig", "assign", "build_index", "cluster_members",
           "default_clusters", "exact_search", "fit_spherical_kmeans", "index_dir", "load_index",
           "range_search", "resolve_device", "save_index", "search"]
