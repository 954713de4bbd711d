"""One entry point per op: Triton on CUDA tensors when triton imports, the torch reference otherwise.

``impl="auto"`` decides from the input tensor's device (``x.is_cuda``), never from a device
name; ``"reference"`` and ``"triton"`` force a path (``"triton"`` on CPU tensors needs the
Triton interpreter: ``TRITON_INTERPRET=1`` set before triton is first imported; tests only).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from ._runtime import HAS_TRITON, bf16_matmul_is_fast
from .kcenter_update import kcenter_update_reference, kcenter_update_triton
from .max_sim_earlier import max_sim_earlier_reference, max_sim_earlier_screened, max_sim_earlier_triton
from .topk_cosine import topk_cosine_reference

Impl = Literal["auto", "reference", "triton"]

# op -> (reference, Triton kernel or None when the op has none)
OPS: dict[str, tuple[Callable, Callable | None]] = {
    "max_sim_earlier": (max_sim_earlier_reference, max_sim_earlier_triton),
    "kcenter_update": (kcenter_update_reference, kcenter_update_triton),
    "topk_cosine": (topk_cosine_reference, None),
}


def resolve(op: str, impl: Impl, x: torch.Tensor) -> Callable:
    """The implementation of ``op`` that ``impl`` selects for inputs like ``x``."""
    reference, kernel = OPS[op]
    if impl == "auto":
        return kernel if kernel is not None and HAS_TRITON and x.is_cuda else reference
    if impl == "reference":
        return reference
    if impl == "triton":
        if kernel is None:
            raise ValueError(f"{op} has no Triton kernel (see curate.kernels.{op}); use impl='reference'")
        return kernel
    raise ValueError(f"impl must be 'auto', 'reference' or 'triton', got {impl!r}")


def max_sim_earlier(x: torch.Tensor, segments: torch.Tensor, impl: Impl = "auto",
                    exact_above: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, max similarity to an earlier row of its segment and that row; see ``max_sim_earlier``.

    ``exact_above``: the caller only needs exact values from this similarity up (a dedup
    threshold). On a CPU with fast bf16 matmuls the reference then runs as a bf16 screen plus
    exact fp32 rescoring (``max_sim_earlier_screened``); rows below it are within 1/64.
    """
    fn = resolve("max_sim_earlier", impl, x)
    if fn is max_sim_earlier_reference and exact_above is not None and bf16_matmul_is_fast(x.device.type):
        return max_sim_earlier_screened(x, segments, exact_above)
    return fn(x, segments)


def kcenter_update(x: torch.Tensor, c: torch.Tensor, mind: torch.Tensor,
                   impl: Impl = "auto") -> tuple[torch.Tensor, int, float]:
    """``mind = min(mind, 1 - x @ c)`` in place, plus its argmax and max; see ``kcenter_update``."""
    return resolve("kcenter_update", impl, x)(x, c, mind)


def topk_cosine(q: torch.Tensor, b: torch.Tensor, k: int, *, exclude_self: bool = False, offset: int = 0,
                impl: Impl = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k cosine neighbours of ``q`` in ``b``, blockwise; see ``topk_cosine``."""
    return resolve("topk_cosine", impl, q)(q, b, k, exclude_self=exclude_self, offset=offset)
