"""Runs the ``curate`` CLI with numbered kill points, for the fault-injection tests.

Started as ``python killhook.py ARGS...`` (ARGS as for ``curate``), or as ``python killhook.py
--serve``: a server that has imported curate once and forks one child per command it reads
(JSON lines on stdin), which saves the 2 s interpreter and torch start-up per kill. Every atomic write of
curate (``curate.io.atomic.atomic_open``, which all artifacts and markers go through) and
every memory-mapped vector flush passes three or one numbered events:

* ``open``   - before the temporary file is created,
* ``written`` - the temporary file is complete but not renamed (a visible ``.tmp-`` file),
* ``renamed`` - the final name exists, later bookkeeping (markers, sidecars) not yet done,
* ``flush``  - embedding vectors were written into ``vectors.npy`` (marker not yet written).

``CURATE_KILL_AT=N`` makes the process SIGKILL itself at event N (a real ``kill -9``: no
cleanup, no ``finally``); ``CURATE_KILL_LOG=FILE`` appends one line per event, so a clean
run tells how many kill points a stage has. ``CURATE_FAIL_AT=N`` instead raises
``OSError(ENOSPC)`` at the N-th ``written`` event (a disk that fills up mid-run).
"""

from __future__ import annotations

import errno
import os
import signal
import sys
from contextlib import contextmanager


def install() -> None:
    import numpy as np

    from curate.io import atomic

    kill_at = int(os.environ.get("CURATE_KILL_AT", "0"))
    fail_at = int(os.environ.get("CURATE_FAIL_AT", "0"))
    log = os.environ.get("CURATE_KILL_LOG")
    count = {"events": 0, "written": 0}

    def event(name: str, where: str = "") -> None:
        count["events"] += 1
        if log:
            with open(log, "a") as fh:
                fh.write(f"{count['events']} {name} {where}\n")
        if count["events"] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    original = atomic.atomic_open

    @contextmanager
    def atomic_open(loc):
        event("open", loc.path)
        with original(loc) as fh:
            yield fh
            event("written", loc.path)
            count["written"] += 1
            if count["written"] == fail_at:
                raise OSError(errno.ENOSPC, "No space left on device (injected)", loc.path)
        event("renamed", loc.path)

    atomic.atomic_open = atomic_open
    flush = np.memmap.flush

    def flush_event(self):
        flush(self)
        event("flush", str(getattr(self, "filename", "")))

    np.memmap.flush = flush_event


def run_child(request: dict) -> None:
    """In a forked child: cwd, environment, output files, hooks, then the CLI; never returns."""
    code = 1
    try:
        os.chdir(request["cwd"])
        os.environ.update(request.get("env", {}))
        for fd, name in ((1, "stdout"), (2, "stderr")):
            out = os.open(request[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(out, fd)
            os.close(out)
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (lives until os._exit)
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        install()
        from curate.cli import main

        main(request["args"])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    """Fork a child per request line; reply ``{"pid"}`` at once and ``{"status"}`` when it ends."""
    import json

    # imported once, shared by every forked child (imports start no threads; the children do the work)
    import curate.cli  # noqa: F401
    import curate.dedup.semantic  # noqa: F401
    import curate.embed.stage  # noqa: F401
    import curate.export.stage  # noqa: F401
    import curate.ingest  # noqa: F401

    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run_child(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"status": code}), flush=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["--serve"]:
        serve()
    else:
        install()
        from curate.cli import main

        main(sys.argv[1:])
