"""Optional Triton import and the launch checks every kernel shares.

Triton is optional: CPU-only installs (torch's CPU wheels) do not ship it, and the plain-torch
references are the CPU production path. Triton has no CPU backend; CPU tensors only run in its
interpreter, which Triton switches on for the whole process when ``TRITON_INTERPRET=1`` is set
*before* ``triton.language`` is first imported (its own library functions are decorated then).
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised on CPU-only installs
    triton = None
    tl = None

HAS_TRITON = triton is not None


def interpreting() -> bool:
    """Whether Triton kernels run in the CPU interpreter in this process."""
    if not HAS_TRITON:
        return False
    from triton.runtime.interpreter import InterpretedFunction

    return isinstance(tl.max, InterpretedFunction)


def check_launch(x: torch.Tensor) -> None:
    """Raise a clear error when a Triton kernel cannot run on ``x``'s device."""
    if not HAS_TRITON:
        raise RuntimeError("impl='triton' needs the triton package; use impl='reference' or 'auto'")
    if not x.is_cuda and not interpreting():
        raise RuntimeError(
            f"Triton kernels need a CUDA tensor (got {x.device.type}); to run them on CPU set "
            "TRITON_INTERPRET=1 before triton is first imported (interpreter: slow, for tests)")


def next_pow2(n: int) -> int:
    return 1 << max(0, int(n) - 1).bit_length()
