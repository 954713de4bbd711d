"""Optional Triton import and the launch checks every kernel shares.

Triton is optional: CPU-only installs (torch's CPU wheels) do not ship it, and the plain-torch
references are the CPU production path. Triton has no CPU backend; CPU tensors only run in its
interpreter, which Triton switches on for the whole process when ``TRITON_INTERPRET=1`` is set
*before* ``triton.language`` is first imported (its own library functions are decorated then).
"""

from __future__ import annotations

import functools
import os

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
    """Whether bf16 matmuls run natively here: CUDA, or a CPU with AVX512-BF16 or AMX-BF16
    (about 2.4x fp32 on 2 Zen 4 cores; without them torch emulates bf16, slower than fp32).

    Read from the CPU flags, not timed, so a machine always takes the same path and gives the
    same numbers. Set ``CURATE_BF16=0`` (or ``1``) to override."""
    forced = os.environ.get("CURATE_BF16")
    if forced in ("0", "1"):
        return forced == "1"
    if device_type != "cpu":
        return device_type == "cuda"
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:  # not Linux: stay on fp32
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
