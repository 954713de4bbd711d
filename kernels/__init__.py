"""GPU kernels of curate, installed as ``curate.kernels``.

One op per file: a Triton kernel, a plain-torch reference beside it, and a dispatcher
that picks Triton on CUDA and the reference elsewhere. The ops land with the semantic
dedup issue; this package exists so the import path is fixed from the start.
"""
