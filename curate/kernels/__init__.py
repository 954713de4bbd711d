"""GPU kernels of curate, installed as ``curate.kernels``.

One op per file, each a Triton kernel with a plain-torch reference beside it (the reference is
the CPU production path): ``max_sim_earlier`` (SemDeDup core), ``kcenter_update`` (k-center
greedy step) and ``topk_cosine`` (blockwise kNN). ``curate.kernels.dispatch`` picks Triton on
CUDA tensors and the reference elsewhere. Importing this package imports neither triton nor
the ops, so callers (and tests) control when triton is first imported.
"""
