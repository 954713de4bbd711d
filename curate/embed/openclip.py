"""open_clip image + text embedder: the production default on GPU nodes.

Spec forms (``SPEC_FORMS``):

- ``openclip:<arch>/<pretrained>``: weights by tag from the open_clip hub cache;
- ``openclip:<arch>@/path/to/checkpoint.pt``: a local state-dict file;
- ``openclip:<arch>``: random weights (tests and benchmarks: the cost is the same).

Preprocessing is the model's own eval transform, so vectors match what the model was
trained to see.

Pretrained weights are looked up in the Hugging Face hub cache first (``HF_HUB_CACHE`` /
``HF_HOME``, read when the model is built) and loaded from there without touching the network.
Only when they are missing is the hub contacted, after a connect probe bounded by
``_PROBE_TIMEOUT_S`` seconds; with ``HF_HUB_OFFLINE`` set, or the hub unreachable, loading fails at
once with a one-line CurateError that names the offline form ``openclip:<arch>@/path/to/checkpoint.pt``.

``open_clip`` (and through it torchvision) is imported only when a model is built, so the registry
stays cheap to import.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from curate.embed.base import Embedder, Runtime
from curate.errors import CurateError
from curate.io.images import open_image

SPEC_FORMS = "openclip:<arch>/<pretrained>, openclip:<arch>@/path/to/checkpoint.pt, openclip:<arch>"
_SPEC = re.compile(r"openclip:(?P<arch>[^/@\s]+)(?:/(?P<tag>[^/@\s]+)|@(?P<ckpt>\S.*))?")
_MB = 1 << 20
_PROBE_TIMEOUT_S = 3.0  # connect (DNS included) to the hub before a download; no answer = offline


@dataclass(frozen=True)
class OpenClipSpec:
    """A parsed spec: an architecture and at most one weight source."""

    arch: str
    pretrained: str | None = None
    checkpoint: str | None = None


def parse_spec(spec: str) -> OpenClipSpec:
    """Split a spec into its parts (syntax only); ``ValueError`` names the accepted forms."""
    m = _SPEC.fullmatch(spec) if isinstance(spec, str) else None
    if m is None:
        raise ValueError(f"bad open_clip spec {spec!r}; use one of: {SPEC_FORMS}")
    return OpenClipSpec(m["arch"], m["tag"], m["ckpt"])


def slug_for(spec: OpenClipSpec) -> str:
    """A folder-safe name: arch + tag, or arch + checkpoint stem + digest of its path and size."""
    if spec.checkpoint:
        path = Path(spec.checkpoint).expanduser().resolve()
        where = f"{path}:{path.stat().st_size if path.is_file() else -1}"
        tag = f"{path.stem}-{hashlib.sha256(where.encode()).hexdigest()[:8]}"
    else:
        tag = spec.pretrained or "random"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"openclip-{spec.arch}-{tag}").strip(".-")


def checkpoint_digest(path: Path) -> str:
    """Size plus a hash of the first and last MiB: cheap for GB files, catches swapped weights."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as f:
        h.update(f.read(_MB))
        if size > _MB:
            f.seek(max(size - _MB, _MB))
            h.update(f.read())
    return f"{size}:{h.hexdigest()[:16]}"


def decode_image(data: bytes) -> Image.Image:
    """Bytes to an upright RGB PIL image as a person sees it (:func:`curate.io.images.open_image`: EXIF
    orientation applied, transparency composited), at full size; ``ValueError`` when they are not a
    readable image."""
    return open_image(data)


class OpenClipEmbedder(Embedder):
    """An open_clip model (both towers) with the model-defined preprocessing."""

    kinds = frozenset({"image", "text"})
    device_decode = True  # JPEGs can be decoded and preprocessed on the device (gpu_image.py)

    def __init__(
        self, arch: str, pretrained: str | None = None, checkpoint: str | Path | None = None, *, spec: str | None = None
    ) -> None:
        import open_clip

        if pretrained and checkpoint:
            raise ValueError("give a pretrained tag or a checkpoint file, not both")
        if arch not in open_clip.list_models():
            raise ValueError(f"unknown open_clip architecture {arch!r} (see open_clip.list_models())")
        if pretrained and pretrained not in open_clip.list_pretrained_tags_by_model(arch):
            tags = ", ".join(open_clip.list_pretrained_tags_by_model(arch)) or "none"
            raise ValueError(f"unknown pretrained tag {pretrained!r} for {arch} (known: {tags})")
        self.arch, self.pretrained = arch, pretrained
        self.checkpoint = Path(checkpoint).expanduser().resolve() if checkpoint else None
        if self.checkpoint and not self.checkpoint.is_file():
            raise ValueError(f"checkpoint file not found: {checkpoint}")
        self.spec = spec or (
            f"openclip:{arch}" + (f"/{pretrained}" if pretrained else f"@{checkpoint}" if checkpoint else "")
        )
        self.slug = slug_for(OpenClipSpec(arch, pretrained, str(self.checkpoint) if self.checkpoint else None))
        self._model, self._preprocess = self._build()
        self.preprocess_cfg = dict(self._model.visual.preprocess_cfg)
        self.dim = _output_dim(self._model, self.preprocess_cfg)
        self.context_length = getattr(self._model, "context_length", None)
        self._tokenizer = None
        self._device_pp = None
        self._digest: str | None = None

    @classmethod
    def from_spec(cls, spec: str) -> OpenClipEmbedder:
        p = parse_spec(spec)
        return cls(p.arch, p.pretrained, p.checkpoint, spec=spec)

    def _build(self) -> tuple[torch.nn.Module, Any]:
        import open_clip

        tag_preprocess: dict[str, Any] = {}
        if self.checkpoint:
            weights = str(self.checkpoint)
        elif self.pretrained:
            # The tag's file, found (or fetched) here so that open_clip never retries a download;
            # the tag's preprocessing (mean, std, interpolation, resize) is what loading by tag applies.
            weights = pretrained_weights(self.arch, self.pretrained, self.spec)
            cfg = open_clip.get_pretrained_cfg(self.arch, self.pretrained)
            tag_preprocess = {f"image_{k}": cfg[k] for k in ("mean", "std", "interpolation", "resize_mode")
                              if cfg.get(k) is not None}
        else:
            weights = None
        # A fixed seed makes the random form reproducible in every process (pickled copies
        # rebuild it); pretrained_text=False keeps it from fetching base text-tower weights.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model, _, preprocess = open_clip.create_model_and_transforms(
                self.arch, pretrained=weights, pretrained_text=False, **tag_preprocess
            )
        return model.eval(), preprocess

    # --- pickling: loader workers need the transforms, not the weights -------------------
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_model=None, _tokenizer=None, _device_pp=None)
        return state

    @property
    def model(self) -> torch.nn.Module:
        """The model, rebuilt on first use in a process that received a pickled copy."""
        if self._model is None:
            self._model, self._preprocess = self._build()
            runtime = getattr(self, "runtime", None)
            if runtime is not None:
                self._model.to(runtime.device)
        return self._model

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            import open_clip

            self._tokenizer = open_clip.get_tokenizer(self.arch)
        return self._tokenizer

    # --- the Embedder contract ------------------------------------------------------------
    def setup(self, runtime: Runtime) -> None:
        super().setup(runtime)
        self.model.to(runtime.device).eval()

    def prepare(self, kind: str, payload: bytes | str) -> Any:
        if kind == "image":
            if not isinstance(payload, (bytes, bytearray, memoryview)):
                raise ValueError(f"image payload must be bytes, got {type(payload).__name__}")
            return self._preprocess(decode_image(bytes(payload)))
        if kind == "text":
            if not isinstance(payload, str):
                raise ValueError(f"text payload must be str, got {type(payload).__name__}")
            return payload
        raise ValueError(f"{self.spec} embeds {sorted(self.kinds)}, not {kind!r}")

    def collate(self, prepared: list[Any]) -> torch.Tensor:
        if prepared and all(isinstance(p, str) for p in prepared):
            return self.tokenizer(list(prepared))
        return torch.stack(prepared)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        runtime = getattr(self, "runtime", None)
        if runtime is None:
            raise RuntimeError("call setup(runtime) before forward()")
        if batch.is_floating_point() and batch.ndim == 4:
            encode = self.model.encode_image
        elif not batch.is_floating_point() and batch.ndim == 2:
            encode = self.model.encode_text
        else:
            raise ValueError(f"expected images [B,3,H,W] or token ids [B,L], got {batch.dtype} {tuple(batch.shape)}")
        low = runtime.dtype != torch.float32
        amp = torch.autocast(runtime.device.type, dtype=runtime.dtype) if low else contextlib.nullcontext()
        with torch.inference_mode(), amp:
            out = encode(batch.to(runtime.device, non_blocking=True))
        return out.float()

    def prepare_on_device(self, payloads: list[bytes]) -> tuple[torch.Tensor, list[int]]:
        """Decode JPEGs and preprocess them on ``runtime.device``; other payloads come back as failed."""
        from curate.embed.gpu_image import DevicePreprocess, prepare_jpegs

        runtime = getattr(self, "runtime", None)
        if runtime is None:
            raise RuntimeError("call setup(runtime) before prepare_on_device()")
        if self._device_pp is None:
            self._device_pp = DevicePreprocess.from_open_clip(self.preprocess_cfg)
        return prepare_jpegs(payloads, self._device_pp, runtime.device)

    def identity(self) -> dict:
        if self.checkpoint and self._digest is None:
            self._digest = checkpoint_digest(self.checkpoint)
        return {
            "spec": self.spec,
            "dim": self.dim,
            "family": "openclip",
            "arch": self.arch,
            "pretrained": self.pretrained,
            "checkpoint": self._digest,
            "preprocess": {k: list(v) if isinstance(v, tuple) else v for k, v in self.preprocess_cfg.items()},
            "context_length": self.context_length,
        }


def _output_dim(model: torch.nn.Module, preprocess_cfg: dict) -> int:
    """Embedding width: the vision tower's ``output_dim``, else measured on a blank image."""
    dim = getattr(model.visual, "output_dim", None)
    if isinstance(dim, int):
        return dim
    size = preprocess_cfg["size"]
    h, w = (size, size) if isinstance(size, int) else size
    with torch.inference_mode():
        return int(model.encode_image(torch.zeros(1, 3, h, w)).shape[-1])


# --- pretrained weights: local cache first, a download only when the hub answers -------------
def hub_cache_dir() -> str:
    """The Hugging Face hub cache, from the environment as it is now (huggingface_hub reads it at import)."""
    env = os.environ.get
    home = env("HF_HOME") or os.path.join(env("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
    path = env("HF_HUB_CACHE") or env("HUGGINGFACE_HUB_CACHE") or os.path.join(home, "hub")
    return os.path.expandvars(os.path.expanduser(path))


def hub_offline() -> bool:
    """True when the user asked for no hub access (``HF_HUB_OFFLINE`` / ``TRANSFORMERS_OFFLINE``)."""
    if any(os.environ.get(k, "").strip().upper() in ("1", "ON", "YES", "TRUE") for k in
           ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


def _hub_files(cfg: dict) -> tuple[str, list[str]]:
    """(repo id, file names to try, safetensors first) of a pretrained cfg's ``hf_hub`` entry, as open_clip does."""
    from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME

    repo, filename = os.path.split(cfg["hf_hub"])
    filename = filename or HF_WEIGHTS_NAME
    names = [filename]
    if filename == HF_WEIGHTS_NAME:
        names.insert(0, HF_SAFE_WEIGHTS_NAME)
    elif filename.endswith((".bin", ".pth")):
        names.insert(0, filename[:-4] + ".safetensors")
    try:
        import safetensors  # noqa: F401
    except ImportError:
        names = [n for n in names if not n.endswith(".safetensors")]
    return repo, names


def cached_weights(cfg: dict) -> str | None:
    """The local file of a pretrained cfg when it is already downloaded, else None (no network)."""
    if cfg.get("file"):
        return cfg["file"] if os.path.isfile(cfg["file"]) else None
    if cfg.get("hf_hub"):
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return None
        repo, names = _hub_files(cfg)
        for name in names:
            found = try_to_load_from_cache(repo, name, cache_dir=hub_cache_dir())
            if isinstance(found, str) and os.path.isfile(found):
                return found
        return None
    if cfg.get("url"):  # open_clip's own url cache; its checksum is verified when open_clip loads it
        path = os.path.join(os.path.expanduser("~/.cache/clip"), os.path.basename(cfg["url"]))
        return path if os.path.isfile(path) else None
    return None


def _probe_target(cfg: dict) -> tuple[str, int]:
    """The host:port a download would connect to first: the HTTPS proxy if one applies, else the server."""
    import urllib.parse
    import urllib.request

    if cfg.get("hf_hub"):
        endpoint = os.environ.get("HF_ENDPOINT") or "https://huggingface.co"
        with contextlib.suppress(ImportError):
            from huggingface_hub import constants

            endpoint = os.environ.get("HF_ENDPOINT") or constants.ENDPOINT
    else:
        endpoint = cfg["url"]
    url = urllib.parse.urlsplit(endpoint)
    host = url.hostname or ""
    proxy = urllib.request.getproxies().get(url.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(host):
        p = urllib.parse.urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        return p.hostname or "", p.port or (443 if p.scheme == "https" else 80)
    return host, url.port or (443 if url.scheme == "https" else 80)


def hub_reachable(host: str, port: int, timeout: float = _PROBE_TIMEOUT_S) -> str | None:
    """None when a TCP connection to host:port opens within ``timeout`` s (name lookup included), else why not."""
    import socket

    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except Exception as exc:  # OSError mostly; whatever it is, the probe says why and never raises
            outcome.append(f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=attempt, daemon=True)  # getaddrinfo has no timeout of its own
    worker.start()
    worker.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def pretrained_weights(arch: str, tag: str, spec: str | None = None) -> str:
    """The local file holding ``arch``/``tag`` weights: the cache, else a download when the hub answers.

    A one-line CurateError at once when the file is not cached and the hub is off (``HF_HUB_OFFLINE``),
    unreachable, or the download fails; it names the offline spec form with a local checkpoint.
    """
    import open_clip

    spec = spec or f"openclip:{arch}/{tag}"
    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        raise ValueError(f"unknown pretrained tag {tag!r} for {arch}")
    found = cached_weights(cfg)
    if found:
        return found
    where = cfg.get("hf_hub") or cfg.get("url") or tag
    alternative = (f"download them where there is network (same cache), or give a local file: "
                   f"openclip:{arch}@/path/to/checkpoint.pt")
    head = (f"cannot load model {spec!r}: its weights ({where.rstrip('/')}) are not in the local cache "
            f"({hub_cache_dir()})")
    if hub_offline():
        raise CurateError(f"{head} and HF_HUB_OFFLINE is set; {alternative}")
    host, port = _probe_target(cfg)
    why = hub_reachable(host, port)
    if why is not None:
        raise CurateError(f"{head} and {host}:{port} is unreachable ({why}); {alternative}")
    from open_clip.pretrained import download_pretrained

    try:
        path = download_pretrained(cfg, cache_dir=hub_cache_dir() if cfg.get("hf_hub") else None)
    except Exception as exc:  # the hub client raises many types (HTTP, connection, checksum)
        detail = " ".join(str(exc).split())[:300]
        raise CurateError(f"{head} and the download failed ({type(exc).__name__}: {detail}); {alternative}") from None
    if not path or not os.path.isfile(path):
        raise CurateError(f"{head} and the download gave no file; {alternative}")
    return path
