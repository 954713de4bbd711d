"""Optional Triton import and the launch checks every kernel shares.

Triton is optional: CPU-only installs (torch's CPU wheels) do not ship it, and the plain-torch
references are the CPU production path. Triton has no CPU backend; CPU tensors only run in its
interpreter, which Triton switches on for the whole process when ``TRITON_INTERPRET=1`` is set
*before* ``triton.language`` is first imported (its own library functions are decorated then).
"""

from __future__ import annotations

import functools

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


@functools.cache
def bf16_matmul_is_fast(device_type: str = "cpu") -> bool:
    """Whether a bf16 matmul beats fp32 by 1.5x here (CPUs with AVX512-BF16 or AMX: ~2.4x;
    without them bf16 is emulated and slower). Measured once per process, ~20 ms."""
    if device_type != "cpu":
        return device_type == "cuda"
    import time

    a = torch.randn(512, 512)
    timings = {}
    for dtype in (torch.float32, torch.bfloat16):
        x, y = a.to(dtype), a.T.contiguous().to(dtype)
        x @ y
        start = time.perf_counter()
        for _ in range(4):
            x @ y
        timings[dtype] = time.perf_counter() - start
    return timings[torch.bfloat16] * 1.5 < timings[torch.float32]
