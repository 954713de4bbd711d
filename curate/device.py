"""Device selection shared by every stage: ``auto`` means CUDA when torch sees a GPU.

:func:`check_device` is the one check of a ``--device`` value (CLI option, pipeline-file key,
API keyword): a spelling curate does not take, or a CUDA device this machine does not have, is
a one-line error before a stage touches the workspace (torch would fail later, mid-stage, with
a traceback).
"""

from __future__ import annotations

import re

import torch

from curate.errors import CurateError

DEVICE_CHOICES = "auto, cpu, cuda or cuda:N"
_SPELLING = re.compile(r"(auto|cpu|cuda(:\d+)?)")


def check_device(device: object, *, here: bool = True) -> str:
    """``device`` when it is ``auto``, ``cpu``, ``cuda`` or ``cuda:N`` (and, with ``here``, a CUDA
    device this machine has); else a :class:`CurateError` naming what is expected.

    ``here=False`` checks the spelling only: work sent to a Ray cluster runs on other machines."""
    if not isinstance(device, str) or not _SPELLING.fullmatch(device):
        raise CurateError(f"device must be {DEVICE_CHOICES}, not {device!r}")
    if here and device.startswith("cuda"):
        _check_cuda(device)
    return device


def check_config_device(config: object) -> None:
    """Check the ``device`` setting of a stage config, if it has one (spelling only for ``executor="ray"``,
    whose workers pick their own devices). Called where configs are built and again where a stage starts."""
    if "device" in getattr(config, "__dataclass_fields__", {}):
        check_device(config.device, here=getattr(config, "executor", "local") != "ray")


def _check_cuda(device: str) -> None:
    """A CUDA device must exist here: torch sees a GPU, and ``cuda:N`` is one of them."""
    if not torch.cuda.is_available():
        raise CurateError(f"device {device!r}: torch sees no CUDA GPU on this machine; use --device cpu or auto")
    index = int(device.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise CurateError(f"device {device!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The one resolver: ``auto`` is CUDA when torch sees a GPU, else CPU; ``cpu``, ``cuda`` and ``cuda:N``
    are passed to torch, any other spelling is a :class:`CurateError`; a ``torch.device`` comes back as it
    is. A stage resolves its device once (``RunContext.device``) and hands the ``torch.device`` down, so
    the helpers' own calls (kept for direct callers) change nothing in a run. Whether a CUDA device is
    here was checked when the config was built (:func:`check_config_device`): a Ray driver may name a
    GPU only its workers have."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(check_device(device, here=False))
