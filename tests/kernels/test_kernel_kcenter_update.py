"""kcenter_update: reference vs a numpy loop, Triton (interpreted) vs reference, ties, in-place."""

import numpy as np
import pytest
import torch

from curate.kernels.kcenter_update import kcenter_update_reference, kcenter_update_triton
from tests.kernels.conftest import TOL, unit_rows

SHAPES = [(1, 64), (7, 3), (33, 1), (70, 512), (300, 64)]


def numpy_step(x: torch.Tensor, c: torch.Tensor, mind: np.ndarray) -> tuple[np.ndarray, int, float]:
    xs, cs = x.double().numpy(), c.double().numpy()
    out = mind.astype(np.float64).copy()
    for i in range(len(xs)):
        out[i] = min(out[i], 1.0 - float(np.dot(xs[i], cs)))
    i = int(np.argmax(out))
    return out, i, out[i]


def start_mind(n: int, seed: int) -> torch.Tensor:
    mind = torch.rand(n, generator=torch.Generator().manual_seed(seed)) * 2
    mind[::3] = float("inf")  # never updated yet
    return mind


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("n", "d"), SHAPES)
def test_reference_matches_numpy_loop(n, d, dtype):
    x = unit_rows(n, d, seed=n, dtype=dtype)
    c = x[n // 2].float()
    mind = start_mind(n, n)
    want, want_i, want_v = numpy_step(x, c, mind.numpy())
    got, i, v = kcenter_update_reference(x, c, mind, block=16)
    assert got is mind  # updated in place
    np.testing.assert_allclose(got.numpy(), want, **TOL[torch.float32])
    assert i == want_i and v == pytest.approx(want_v, abs=1e-5)


def test_reference_greedy_picks_match_numpy():
    """Five k-center picks in a row pick the same rows as the numpy loop."""
    x = unit_rows(200, 16, seed=9, dups=0.0)
    mind = torch.full((200,), float("inf"))
    ref = np.full(200, np.inf)
    pick = pick_ref = 0
    for _ in range(5):
        mind, pick, _ = kcenter_update_reference(x, x[pick], mind)
        ref, pick_ref, _ = numpy_step(x, x[pick_ref], ref)
        assert pick == pick_ref


def test_ties_go_to_the_smallest_row():
    x = torch.zeros(6, 4)
    x[:, 0] = 1.0
    mind = torch.tensor([0.25, 0.5, 0.75, 0.75, 0.5, 0.75])
    c = torch.tensor([0.0, 1.0, 0.0, 0.0])  # orthogonal: distance 1 > mind, so mind keeps its ties
    _, i, v = kcenter_update_reference(x, c, mind.clone())
    assert (i, v) == (2, 0.75)


@pytest.mark.interpreted
def test_triton_ties_across_blocks():
    x = torch.zeros(6, 4)
    x[:, 0] = 1.0
    mind = torch.tensor([0.25, 0.5, 0.75, 0.75, 0.5, 0.75])
    c = torch.tensor([0.0, 1.0, 0.0, 0.0])
    _, i, v = kcenter_update_triton(x, c, mind, block_n=2)  # the tied rows 2, 3, 5 sit in blocks 1 and 2
    assert (i, v) == (2, 0.75)


@pytest.mark.interpreted
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("n", "d"), SHAPES)
def test_triton_matches_reference(n, d, dtype):
    x = unit_rows(n, d, seed=n + 1, dtype=dtype)
    c = x[0].float()
    mind = start_mind(n, n + 1)
    want, want_i, want_v = kcenter_update_reference(x, c, mind.clone())
    got, i, v = kcenter_update_triton(x, c, mind, block_n=32, block_d=64)
    assert got is mind
    torch.testing.assert_close(got, want, **TOL[dtype])
    assert v == pytest.approx(want_v, abs=TOL[dtype]["atol"])
    assert i == want_i or abs(float(want[i]) - want_v) <= TOL[dtype]["atol"]


def test_shape_and_dtype_checks():
    x = unit_rows(4, 3)
    with pytest.raises(ValueError):
        kcenter_update_reference(x, torch.zeros(4), torch.zeros(4))
    with pytest.raises(TypeError):
        kcenter_update_reference(x, torch.zeros(3), torch.zeros(4, dtype=torch.float64))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_triton_on_gpu_matches_reference(dtype):
    x = unit_rows(100_003, 512, seed=3, dtype=dtype, dups=0.0).cuda()
    mind = torch.full((x.shape[0],), float("inf"), device=x.device)
    want = mind.clone()
    for pick in (0, 17, 99_999):
        want, want_i, want_v = kcenter_update_reference(x, x[pick], want)
        mind, i, v = kcenter_update_triton(x, x[pick], mind)
        torch.testing.assert_close(mind, want, **TOL[dtype])
        assert i == want_i or abs(float(want[i]) - want_v) <= TOL[dtype]["atol"]
