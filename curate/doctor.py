"""``curate doctor``: what this machine has and what each stage will run on.

Every capability is tried, not assumed: a tiny CUDA tensor op per device, ``faiss.get_num_gpus()``,
one launch of a Triton kernel compared with its torch reference, ``import ray``. The stage plan
uses the same choosers the stages use (``resolve_device``, ``choose_backend``, kernel dispatch),
so it says what ``auto`` will pick here.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import platform
from typing import Any

import torch

from curate import __version__

# package -> distributions that may provide it (the first installed one is reported)
PACKAGES = {
    "torch": ("torch",), "torchvision": ("torchvision",), "open_clip": ("open_clip_torch", "open-clip-torch"),
    "faiss": ("faiss-gpu-cu12", "faiss-gpu", "faiss-cpu", "faiss"), "triton": ("triton",), "ray": ("ray",),
    "pyarrow": ("pyarrow",), "numpy": ("numpy",),
}


def versions() -> dict[str, str | None]:
    """Installed versions (from package metadata: nothing is imported); None when missing."""
    out: dict[str, str | None] = {"curate": __version__, "python": platform.python_version()}
    for name, dists in PACKAGES.items():
        out[name] = None
        for dist in dists:
            try:
                out[name] = md.version(dist)
                break
            except md.PackageNotFoundError:
                continue
    return out


def _try(fn) -> dict[str, Any]:
    """Run one check; an exception becomes ``usable: False`` with the error in one line."""
    try:
        return fn()
    except Exception as exc:  # a doctor reports failures, it does not raise them
        return {"usable": False, "error": f"{type(exc).__name__}: {exc}".splitlines()[0]}


def check_cuda() -> dict[str, Any]:
    if not torch.cuda.is_available():
        return {"usable": False, "devices": [], "error": "torch sees no CUDA device"}
    devices = []
    for i in range(torch.cuda.device_count()):
        ok = (torch.ones(4, device=f"cuda:{i}") * 2).sum().item() == 8.0
        props = torch.cuda.get_device_properties(i)
        free, total = torch.cuda.mem_get_info(i)
        devices.append({"index": i, "name": props.name, "ok": ok, "memory_total_gib": round(total / 2**30, 1),
                        "memory_free_gib": round(free / 2**30, 1), "capability": f"{props.major}.{props.minor}"})
    return {"usable": all(d["ok"] for d in devices), "devices": devices, "cuda_version": torch.version.cuda}


def check_faiss() -> dict[str, Any]:
    from curate.index.kmeans import faiss_gpu_count, import_faiss

    faiss = import_faiss()
    if faiss is None:
        return {"usable": False, "gpus": 0, "error": "faiss is not installed (curate[cpu] or curate[gpu])"}
    return {"usable": True, "gpus": faiss_gpu_count(), "version": getattr(faiss, "__version__", None)}


def check_triton(cuda: bool) -> dict[str, Any]:
    """Triton needs a CUDA device: launch the k-center kernel once and compare with the reference."""
    from curate.kernels._runtime import HAS_TRITON
    from curate.kernels.dispatch import kcenter_update

    if not HAS_TRITON:
        return {"usable": False, "error": "triton is not installed"}
    if not cuda:
        return {"usable": False, "error": "no CUDA device (Triton has no CPU backend)"}
    gen = torch.Generator().manual_seed(0)
    x = torch.nn.functional.normalize(torch.randn(64, 16, generator=gen), dim=1).cuda()
    mind = [torch.full((64,), 2.0, device=x.device) for _ in range(2)]
    got = kcenter_update(x, x[0], mind[0], impl="triton")
    want = kcenter_update(x, x[0], mind[1], impl="reference")
    ok = got[1] == want[1] and torch.allclose(mind[0], mind[1], atol=1e-3)
    return {"usable": bool(ok), **({} if ok else {"error": "Triton kernel result differs from the reference"})}


def check_ray() -> dict[str, Any]:
    ray = importlib.import_module("ray")
    return {"usable": True, "version": getattr(ray, "__version__", None)}


def stage_plan(cuda: bool, faiss: dict, triton: dict) -> dict[str, dict[str, str]]:
    """What ``auto`` runs each stage on here (the stages' own choosers)."""
    from curate.device import resolve_device
    from curate.index.kmeans import KMeansConfig, choose_backend, faiss_gpu_id
    from curate.kernels._runtime import HAS_TRITON

    device = resolve_device("auto") if cuda else torch.device("cpu")
    # dispatch's rule: Triton for CUDA tensors when triton imports (a failed check is flagged)
    kernel = "reference"
    if HAS_TRITON and device.type == "cuda":
        kernel = "triton" if triton.get("usable") else f"triton (check failed: {triton.get('error')})"
    backend = choose_backend(KMeansConfig()) if faiss.get("usable") else "torch"
    if backend == "faiss":
        gpu = faiss_gpu_id("auto")
        kmeans = f"FAISS GPU (device {gpu})" if gpu is not None else "FAISS CPU"
    else:
        kmeans = f"torch ({device.type})"
    decode = ("JPEG on the GPU (torchvision decode_jpeg), PIL for other formats" if device.type == "cuda"
              else "PIL in loader workers")
    return {
        "embed": {"device": str(device), "precision": "fp16" if device.type == "cuda" else "fp32", "decode": decode},
        "dedup": {"device": str(device), "kmeans": kmeans, "kernel": kernel},
        "prune": {"device": str(device), "kcenter_kernel": kernel},
        "export": {"device": "cpu"},
    }


def diagnose() -> dict[str, Any]:
    """Everything ``curate doctor`` reports, as one JSON-able dict."""
    cuda = _try(check_cuda)
    faiss = _try(check_faiss)
    triton = _try(lambda: check_triton(bool(cuda.get("usable"))))
    ray = _try(check_ray)
    return {"versions": versions(), "cuda": cuda, "faiss": faiss, "triton": triton, "ray": ray,
            "stages": stage_plan(bool(cuda.get("usable")), faiss, triton)}


def render(report: dict[str, Any]) -> str:
    """The human-readable report."""
    v = report["versions"]
    lines = ["versions  " + ", ".join(f"{k} {v[k] or '-'}" for k in v)]
    for name in ("cuda", "faiss", "triton", "ray"):
        check = report[name]
        facts = {k: val for k, val in check.items() if k not in ("usable", "error", "devices")}
        detail = ", ".join(f"{k} {val}" for k, val in facts.items())
        state = "yes" if check.get("usable") else f"no ({check.get('error', 'unavailable')})"
        lines.append(f"{name:<9} {state}" + (f"; {detail}" if detail and check.get("usable") else ""))
    for d in report["cuda"].get("devices", []):
        lines.append(f"  gpu {d['index']}  {d['name']}, {d['memory_total_gib']} GiB "
                     f"({d['memory_free_gib']} GiB free), compute {d['capability']}")
    lines.append("stages")
    for stage, plan in report["stages"].items():
        lines.append(f"  {stage:<7} " + ", ".join(f"{k}: {val}" for k, val in plan.items()))
    return "\n".join(lines)
