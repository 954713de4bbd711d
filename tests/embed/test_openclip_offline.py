"""`--model openclip:<arch>/<tag>` without network: fail fast and name the offline forms."""

from __future__ import annotations

import pytest

from curate.errors import CurateError

# --- r. `--model openclip:<arch>/<tag>` without network: fail fast, name the offline form -------

OPENCLIP_SPEC = "openclip:ViT-B-32/laion2b_s34b_b79k"


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache; any real connection or download fails the test."""
    import socket

    import open_clip.factory
    import open_clip.pretrained

    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))

    def no_network(*args, **kwargs):
        raise AssertionError("the test touched the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", no_network)
    monkeypatch.setattr(open_clip.pretrained, "hf_hub_download", no_network)
    monkeypatch.setattr(open_clip.factory, "download_pretrained", no_network)
    return tmp_path / "hf" / "hub"


def _load_fails_fast(spec=OPENCLIP_SPEC):
    import time

    from curate.embed.registry import load_embedder

    start = time.monotonic()
    with pytest.raises(CurateError) as info:
        load_embedder(spec)
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "\n" not in message and "openclip:ViT-B-32@/path/to/checkpoint.pt" in message
    return message


def test_openclip_pretrained_offline_fails_fast_naming_the_checkpoint_form(empty_hub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = _load_fails_fast()
    assert "HF_HUB_OFFLINE" in message and str(empty_hub) in message


def test_openclip_pretrained_unreachable_hub_fails_fast_without_offline_flag(empty_hub, monkeypatch):
    import socket

    import huggingface_hub.constants

    from curate.embed import openclip

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for var in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    tried = []

    def refused(address, timeout=None, **kwargs):
        tried.append((address, timeout))
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr(socket, "create_connection", refused)
    assert "huggingface.co:443 is unreachable" in _load_fails_fast()
    assert tried == [(("huggingface.co", 443), openclip._PROBE_TIMEOUT_S)]

    # a name lookup that hangs (no timeout of its own) is cut at the probe timeout
    import time

    def hangs(*args, **kwargs):
        time.sleep(1.5)
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "create_connection", hangs)
    monkeypatch.setattr(openclip, "hub_reachable",
                        lambda host, port, timeout=0.3, _f=openclip.hub_reachable: _f(host, port, timeout))
    assert "no answer within 0.3 s" in _load_fails_fast()

    # the hub answers but the download breaks: one line, no retries from here
    class Conn:
        def close(self):
            pass

    def broken(cfg, cache_dir=None):
        raise ConnectionError("Connection reset by peer")

    import open_clip.pretrained

    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: Conn())
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", broken)
    assert "download failed (ConnectionError: Connection reset by peer)" in _load_fails_fast()


def test_openclip_pretrained_found_in_the_hub_cache_without_network(empty_hub, monkeypatch):
    from curate.embed.openclip import pretrained_weights

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # even online, a cached file is used as is
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = empty_hub / "models--laion--CLIP-ViT-B-32-laion2B-s34B-b79K"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    weights = repo / "snapshots" / commit / "open_clip_model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"weights")
    assert pretrained_weights("ViT-B-32", "laion2b_s34b_b79k") == str(weights)
