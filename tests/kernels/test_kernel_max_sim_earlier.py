"""max_sim_earlier: reference vs brute force, Triton (interpreted) vs reference, ties, edge cases."""

import numpy as np
import pytest
import torch

from curate.kernels.max_sim_earlier import (
    BF16_SCREEN_EPS,
    LONG_SEGMENT,
    max_sim_earlier_reference,
    max_sim_earlier_screened,
    max_sim_earlier_triton,
)
from tests.kernels.conftest import TOL, assert_max_sim_close, brute_max_sim_earlier, unit_rows

# (n, offsets): empty and single-row segments, lengths that are not multiples of any block,
# rows outside every segment.
SEGMENTS = {
    1: [[0, 1]],
    7: [[0, 7], [2, 5], [0, 0, 1, 1, 7]],
    33: [[0, 33], [0, 3, 3, 33]],
    70: [[0, 0, 1, 33, 33, 70], [0, 70]],
}


def ragged(n_segments: int, max_len: int, seed: int) -> list[int]:
    lengths = np.random.default_rng(seed).integers(0, max_len + 1, n_segments)
    return [0, *np.cumsum(lengths).tolist()]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("d", [1, 3, 64, 512])
@pytest.mark.parametrize("n", sorted(SEGMENTS))
@pytest.mark.parametrize("block", [16, 4096])
def test_reference_matches_brute_force(n, d, dtype, block):
    x = unit_rows(n, d, seed=n * d, dtype=dtype)
    for bounds in SEGMENTS[n]:
        got = max_sim_earlier_reference(x, torch.tensor(bounds), block=block)
        assert got[0].dtype == torch.float32 and got[1].dtype == torch.int64
        assert_max_sim_close(x, bounds, [t.numpy() for t in got], brute_max_sim_earlier(x, bounds), TOL[torch.float32])


@pytest.mark.parametrize("block", [32, 100, 4096])
def test_reference_many_ragged_segments(block):
    """Hundreds of segments of 0..150 rows (batched by length, padded) and a few long ones."""
    bounds = ragged(300, 40, seed=1)
    bounds += (bounds[-1] + np.cumsum([150, 1, 0, 97])).tolist()
    x = unit_rows(bounds[-1], 24, seed=2)
    got = max_sim_earlier_reference(x, torch.tensor(bounds), block=block)
    assert_max_sim_close(x, bounds, [t.numpy() for t in got], brute_max_sim_earlier(x, bounds), TOL[torch.float32])


def test_reference_long_segment_in_chunks_fp16():
    """A segment far longer than ``block``: key chunks merged in order, fp16 converted per chunk."""
    x = unit_rows(700, 40, seed=3, dtype=torch.float16)
    bounds = [0, 5, 700]
    got = max_sim_earlier_reference(x, torch.tensor(bounds), block=128)
    assert_max_sim_close(x, bounds, [t.numpy() for t in got], brute_max_sim_earlier(x, bounds), TOL[torch.float32])


@pytest.mark.parametrize("block", [1000, 4096])
def test_reference_long_segment_wide_query_blocks(block):
    """Over 2048 rows: 256-row query blocks, with and without key chunks (block < length)."""
    bounds = [0, 2200, 2203, 2300]
    x = unit_rows(bounds[-1], 8, seed=8)
    got = max_sim_earlier_reference(x, torch.tensor(bounds), block=block)
    assert_max_sim_close(x, bounds, [t.numpy() for t in got], brute_max_sim_earlier(x, bounds), TOL[torch.float32])


def tie_rows() -> torch.Tensor:
    """Rows whose products are exact in fp16 and fp32 (entries 0 or +-0.5), so ties are exact ties."""
    v = torch.tensor([0.5, 0.5, 0.5, 0.5, 0, 0, 0, 0])
    w = torch.tensor([0.5, -0.5, 0.5, -0.5, 0, 0, 0, 0])
    u = torch.tensor([0, 0, 0, 0, 0.5, 0.5, 0.5, 0.5])
    pattern = [u, v, w, v, u, v] + [w] * 14 + [v, u, v]  # v at 1, 3, 5, 20, 22; u at 0, 4, 21
    return torch.stack(pattern)


def expected_ties():
    # row -> (max_sim, argmax): the earliest copy wins every exact tie
    return {0: (-np.inf, -1), 1: (0.0, 0), 2: (0.0, 0), 3: (1.0, 1), 4: (1.0, 0), 5: (1.0, 1),
            6: (1.0, 2), 19: (1.0, 2), 20: (1.0, 1), 21: (1.0, 0), 22: (1.0, 1)}


def check_ties(sims, arg):
    for row, (value, j) in expected_ties().items():
        assert (float(sims[row]), int(arg[row])) == (value, j), row


@pytest.mark.parametrize("block", [16, 4096])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_reference_ties_smallest_j(dtype, block):
    check_ties(*max_sim_earlier_reference(tie_rows().to(dtype), torch.tensor([0, 23]), block=block))


def test_reference_validates_segments():
    x = unit_rows(5, 4)
    with pytest.raises(ValueError):
        max_sim_earlier_reference(x, torch.tensor([0, 6]))
    with pytest.raises(ValueError):
        max_sim_earlier_reference(x, torch.tensor([0, 3, 2, 5]))
    with pytest.raises(ValueError):
        max_sim_earlier_reference(x[0], torch.tensor([0, 1]))
    sims, arg = max_sim_earlier_reference(x, torch.tensor([], dtype=torch.int64))
    assert torch.isinf(sims).all() and (arg == -1).all()


@pytest.mark.interpreted
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("n", "d"), [(1, 64), (7, 3), (33, 1), (70, 64), (70, 512)])
def test_triton_matches_reference(n, d, dtype):
    x = unit_rows(n, d, seed=n + d, dtype=dtype)
    for bounds in SEGMENTS[n]:
        seg = torch.tensor(bounds)
        got = max_sim_earlier_triton(x, seg, block_m=16, block_n=16, block_d=64)
        want = max_sim_earlier_reference(x, seg)
        assert_max_sim_close(x, bounds, [t.numpy() for t in got], [t.numpy() for t in want], TOL[dtype])


@pytest.mark.interpreted
def test_triton_many_segments_one_launch():
    bounds = ragged(40, 12, seed=4) + [0]
    bounds[-1] = bounds[-2] + 45  # one segment spanning three query tiles
    x = unit_rows(bounds[-1], 16, seed=5)
    seg = torch.tensor(bounds)
    got = max_sim_earlier_triton(x, seg, block_m=16, block_n=16)
    assert_max_sim_close(x, bounds, [t.numpy() for t in got], [t.numpy() for t in max_sim_earlier_reference(x, seg)],
                         TOL[torch.float32])


@pytest.mark.interpreted
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_triton_ties_smallest_j(dtype):
    """Ties inside a key tile and across key tiles (16-row tiles: rows 1 and 20 are in different ones)."""
    check_ties(*max_sim_earlier_triton(tie_rows().to(dtype), torch.tensor([0, 23]), block_m=16, block_n=16))


def test_triton_refuses_cpu_without_interpreter(monkeypatch):
    import curate.kernels._runtime as runtime

    monkeypatch.setattr(runtime, "interpreting", lambda: False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        max_sim_earlier_triton(unit_rows(4, 8), torch.tensor([0, 4]))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_triton_on_gpu_matches_reference(dtype):
    bounds = ragged(200, 300, seed=6) + [0]
    bounds[-1] = bounds[-2] + 3000
    x = unit_rows(bounds[-1], 512, seed=7, dtype=dtype).cuda()
    seg = torch.tensor(bounds, device=x.device)
    got = max_sim_earlier_triton(x, seg)
    want = max_sim_earlier_reference(x, seg)
    assert_max_sim_close(x.cpu(), bounds, [t.cpu().numpy() for t in got], [t.cpu().numpy() for t in want], TOL[dtype])
    check_ties(*max_sim_earlier_triton(tie_rows().to(dtype).cuda(), torch.tensor([0, 23]).cuda()))


# ---------------------------------------------------------------- bf16 screen + exact rescoring


@pytest.mark.parametrize("d", [3, 64, 512])
def test_bf16_reference_is_within_the_screen_bound(d):
    bounds = ragged(12, 60, seed=d)
    x = unit_rows(bounds[-1], d, seed=d, dups=0.3)
    got = max_sim_earlier_reference(x, torch.tensor(bounds), block=32, compute_dtype=torch.bfloat16)
    want = brute_max_sim_earlier(x, bounds)
    fin = np.isfinite(want[0])
    assert np.array_equal(np.isfinite(got[0].numpy()), fin)
    assert np.abs(got[0].numpy()[fin] - want[0][fin]).max() <= BF16_SCREEN_EPS


@pytest.mark.parametrize("exact_above", [-1.0, 0.5, 0.9, 2.0])
@pytest.mark.parametrize("dups", [0.2, 0.95])  # 0.95: most segments are redone whole in fp32
@pytest.mark.parametrize("long", [False, True])  # True: segments past LONG_SEGMENT, screened one by one
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])  # fp16: a gathered store batch
def test_screened_is_exact_from_the_floor_up(exact_above, dups, long, dtype):
    bounds = ragged(15, 80, seed=int(dups * 100))
    if long:
        bounds += (bounds[-1] + np.cumsum([LONG_SEGMENT + 1, 3, 2 * LONG_SEGMENT + 37])).tolist()
    x = unit_rows(bounds[-1], 64, seed=7, dups=dups, dtype=dtype)
    (v, i), (bv, bi) = [tuple(map(np.asarray, r)) for r in (
        max_sim_earlier_screened(x, torch.tensor(bounds), exact_above, block=16), brute_max_sim_earlier(x, bounds))]
    high = bv >= exact_above
    np.testing.assert_allclose(v[high], bv[high], atol=1e-5)
    xs = x.double().numpy()
    for r in np.flatnonzero(high & (i != bi)):  # a different argmax only on an exact tie
        assert abs(float(xs[r] @ xs[i[r]]) - bv[r]) <= 1e-5
    low = ~high & np.isfinite(bv)
    assert np.all(v[low] < exact_above)
    assert np.all(np.abs(v[low] - bv[low]) <= BF16_SCREEN_EPS)
    assert np.array_equal(np.isfinite(v), np.isfinite(bv)) and np.all(i[~np.isfinite(bv)] == -1)


def test_dispatch_screens_only_when_asked(monkeypatch):
    from curate.kernels import dispatch

    calls = []
    monkeypatch.setattr(dispatch, "max_sim_earlier_screened", lambda x, s, t: calls.append(t) or ("screened",))
    monkeypatch.setattr(dispatch, "bf16_matmul_is_fast", lambda device_type: True)
    x = unit_rows(9, 5, seed=1)
    assert dispatch.max_sim_earlier(x, torch.tensor([0, 9]), exact_above=0.9) == ("screened",) and calls == [0.9]
    assert len(dispatch.max_sim_earlier(x, torch.tensor([0, 9]))[0]) == 9
    monkeypatch.setattr(dispatch, "bf16_matmul_is_fast", lambda device_type: False)
    assert len(dispatch.max_sim_earlier(x, torch.tensor([0, 9]), exact_above=0.9)[0]) == 9
