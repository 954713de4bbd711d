"""topk_cosine: blockwise reference vs torch.topk of the full matrix; self-exclusion, padding, ties."""

import numpy as np
import pytest
import torch

from curate.kernels.topk_cosine import topk_cosine_reference
from tests.kernels.conftest import TOL, unit_rows


def full_topk(q, b, k, exclude=None):
    sims = q.double() @ b.double().T
    if exclude is not None:
        sims[torch.arange(len(q)), exclude] = -float("inf")
    return sims.topk(min(k, b.shape[0]), dim=1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("m", "n", "d"), [(1, 1, 1), (7, 33, 3), (33, 70, 64), (20, 257, 512)])
@pytest.mark.parametrize("k", [1, 5])
@pytest.mark.parametrize("block", [16, 16384])
def test_matches_full_topk(m, n, d, k, block, dtype):
    q, b = unit_rows(m, d, seed=1, dtype=dtype), unit_rows(n, d, seed=2, dtype=dtype)
    sims, idx = topk_cosine_reference(q, b, k, block=block)
    assert sims.shape == idx.shape == (m, k) and sims.dtype == torch.float32 and idx.dtype == torch.int64
    want_s, want_i = full_topk(q, b, k)
    kk = want_s.shape[1]
    np.testing.assert_allclose(sims[:, :kk].numpy(), want_s.numpy(), **TOL[torch.float32])
    assert torch.equal(idx[:, :kk], want_i)  # random data: no ties
    assert torch.isinf(sims[:, kk:]).all() and (idx[:, kk:] == -1).all()  # k > n: padded


@pytest.mark.parametrize("block", [8, 16384])
def test_exclude_self(block):
    b = unit_rows(50, 16, seed=3)
    off, m = 20, 13
    sims, idx = topk_cosine_reference(b[off:off + m], b, 4, exclude_self=True, offset=off, block=block)
    own = torch.arange(off, off + m)
    assert not (idx == own[:, None]).any()
    want_s, want_i = full_topk(b[off:off + m], b, 4, exclude=own)
    np.testing.assert_allclose(sims.numpy(), want_s.numpy(), **TOL[torch.float32])
    assert torch.equal(idx, want_i)


def test_exclude_self_leaves_nothing():
    b = unit_rows(3, 4, seed=4)
    sims, idx = topk_cosine_reference(b, b, 3, exclude_self=True)
    assert torch.isinf(sims[:, 2]).all() and (idx[:, 2] == -1).all()
    assert ((idx[:, :2] >= 0) & (idx[:, :2] != torch.arange(3)[:, None])).all()


@pytest.mark.parametrize("block", [2, 16384])
def test_ties_ordered_by_base_row(block):
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = v[[1, 0, 1, 0, 0, 1]]  # copies of v0 at rows 1, 3, 4
    sims, idx = topk_cosine_reference(v[:1], b, 3, block=block)
    assert sims.tolist() == [[1.0, 1.0, 1.0]] and idx.tolist() == [[1, 3, 4]]


def test_argument_checks():
    b = unit_rows(5, 4)
    with pytest.raises(ValueError):
        topk_cosine_reference(b, b, 0)
    with pytest.raises(ValueError):
        topk_cosine_reference(b[:, :3], b, 1)
    with pytest.raises(ValueError):
        topk_cosine_reference(b[:3], b, 1, exclude_self=True, offset=3)


@pytest.mark.gpu
def test_reference_on_gpu_matches_cpu():
    q, b = unit_rows(300, 512, seed=5, dtype=torch.float16), unit_rows(20_000, 512, seed=6, dtype=torch.float16)
    want_s, want_i = topk_cosine_reference(q, b, 10)
    sims, idx = topk_cosine_reference(q.cuda(), b.cuda(), 10, block=4096)
    torch.testing.assert_close(sims.cpu(), want_s, **TOL[torch.float16])
