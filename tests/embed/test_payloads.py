"""PayloadFetcher reads the files a manifest names through the user-file helper: a source replaced by a
FIFO (or grown past the size cap) after ingest fails that sample (an OSError) at once, never blocks or fills memory."""

from __future__ import annotations

import contextlib
import os
import threading
import time

import pytest

from curate.embed.payloads import PayloadFetcher
from curate.io.fs import UserFileError


def test_a_payload_file_replaced_by_a_fifo_or_a_larger_file_fails_its_sample(tmp_path, monkeypatch):
    import curate.embed.payloads as payloads

    monkeypatch.setattr(payloads, "CAP_PAYLOAD", 100)
    (tmp_path / "big.png").write_bytes(b"x" * 101)
    fifo = tmp_path / "x.png"
    os.mkfifo(fifo)

    def unblock() -> None:  # if a regression opens the FIFO: EOF after 5 s instead of a hang
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    timer = threading.Timer(5, unblock)
    timer.daemon = True
    timer.start()
    fetcher = PayloadFetcher()
    began = time.monotonic()
    try:
        cases = ((fifo, "unsafe-path: a named pipe (FIFO), not a regular file; not read"),
                 (tmp_path / "big.png", "file-too-large: 101 bytes, over the cap of 100 bytes; not read"))
        for source, reason in cases:
            row = {"kind": "image", "source_kind": "imagefolder", "source": str(source)}
            with pytest.raises(OSError) as err:
                fetcher.fetch(row)
            assert isinstance(err.value, UserFileError) and err.value.reason == reason
    finally:
        timer.cancel()
    assert time.monotonic() - began < 5
