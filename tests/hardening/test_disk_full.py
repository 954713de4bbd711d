"""A disk that fills up mid-stage: a one-line error (exit 2), nothing corrupted, and once space is
back the same command finishes with the artifacts of an uninterrupted run."""

from __future__ import annotations

import errno
import random

import pytest

from curate.errors import CurateError
from curate.io import atomic
from curate.io.fs import locate
from tests.hardening.faults import cli, no_partial_files
from tests.hardening.flow import STAGES, comparable, made_by, stage_workspace

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("stage", STAGES)
def test_disk_full_mid_stage_is_one_line_and_resumable(flow, stage):
    root, sources, snaps, info = flow
    _, _, writes = info[stage]
    ws_name, ws, args = stage_workspace(flow, stage, "enospc")
    rng = random.Random(100 + STAGES.index(stage))
    failed = 0
    for _ in range(2):  # the disk fills up, some space is freed, it fills up again
        fail_at = rng.randint(1, max(1, writes))
        result = cli(args, root, {"CURATE_FAIL_AT": str(fail_at)})
        if result.returncode == 0:
            continue  # this rerun had fewer writes left than fail_at
        assert result.returncode == 2, result.stderr[-3000:]
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: cannot write "), result.stderr[-3000:]
        assert "No space left on device" in lines[0] and "rerun" in lines[0]
        no_partial_files(ws)
        failed += 1
    assert failed >= 1
    result = cli(args, root)
    assert result.returncode == 0, result.stderr[-3000:]
    expected, got = comparable(root / "ws"), comparable(ws)
    expected = {k: v for k, v in expected.items() if k in got or made_by(k, stage)}
    assert got == expected, sorted(set(got.items()) ^ set(expected.items()))


def test_write_error_keeps_the_previous_file_and_is_still_an_oserror(tmp_path):
    loc = locate(str(tmp_path / "a.json"))
    atomic.write_json(loc, {"v": 1})
    for code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        with pytest.raises(atomic.WriteError) as info, atomic.atomic_open(loc) as fh:
            fh.write(b"half")
            raise OSError(code, "injected")
        assert isinstance(info.value, CurateError) and isinstance(info.value, OSError)
        assert info.value.errno == code and str(info.value).startswith(f"cannot write {loc.uri}: injected")
    assert atomic.read_json(loc) == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]
    with pytest.raises(OSError) as other, atomic.atomic_open(loc) as fh:  # not a disk condition: unchanged
        raise OSError(errno.EIO, "io")
    assert type(other.value) is OSError
