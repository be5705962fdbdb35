"""The differentiable QP layer and the trajectory-optimisation matrix builders."""

from __future__ import annotations

import pytest
import torch

from ampczoo.nn import qp

F64 = torch.float64


def _random_qp(B: int = 2, n: int = 5, m: int = 4, bound: float = 0.3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(B, n, n, generator=g, dtype=F64)
    Q = A @ A.transpose(1, 2) + torch.eye(n, dtype=F64)
    p = torch.randn(B, n, generator=g, dtype=F64)
    G = torch.randn(m, n, generator=g, dtype=F64)
    return Q, p, G, -bound * torch.ones(m, dtype=F64), bound * torch.ones(m, dtype=F64)


def test_builders_shapes_and_values():
    S = qp.selection_matrix(4, [0, 2])
    assert torch.equal(
        S @ torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=F64), torch.tensor([1.0, 3.0], dtype=F64)
    )
    c = torch.arange(6, dtype=F64) ** 2  # T = 3 steps of D = 2: (0,1), (4,9), (16,25)
    D = qp.diff_matrix(3, 2, dt=0.5)
    assert D.shape == (4, 6)
    assert torch.allclose(D @ c, torch.tensor([8.0, 16.0, 24.0, 32.0], dtype=F64))
    A = qp.integration_matrix(3, 2, dt=0.5)
    assert torch.allclose(A @ c, torch.tensor([0.0, 0.5, 2.0, 5.0], dtype=F64))
    Sb = qp.block_diag_repeat(S, 3)
    assert Sb.shape == (6, 12) and torch.equal(Sb[2:4, 4:8], S)
    with pytest.raises(ValueError, match="distinct"):
        qp.selection_matrix(3, [0, 0])
    with pytest.raises(ValueError, match="distinct"):
        qp.selection_matrix(3, [3])


@pytest.mark.parametrize("backend", qp.BACKENDS)
def test_inactive_bounds_give_closed_form(backend):
    Q, p, G, _, _ = _random_qp()
    inf = torch.full((G.shape[0],), 1e3, dtype=F64)
    z = qp.solve_qp(Q, p, G, -inf, inf, backend=backend)
    closed = -torch.linalg.solve(Q, p.unsqueeze(-1)).squeeze(-1)
    assert torch.allclose(z, closed, atol=1e-6)


@pytest.mark.parametrize("backend", qp.BACKENDS)
def test_active_bounds_are_respected_and_backends_agree(backend):
    Q, p, G, lo, up = _random_qp(bound=0.05)
    z = qp.solve_qp(Q, p, G, lo, up, backend=backend)
    Gz = z @ G.T
    assert (Gz <= up + 1e-6).all() and (Gz >= lo - 1e-6).all()
    assert torch.isclose(Gz.abs().max(), torch.tensor(0.05, dtype=F64), atol=1e-6)  # active
    other = qp.solve_qp(Q, p, G, lo, up, backend="proxsuite")
    assert torch.allclose(z, other, atol=1e-5)


@pytest.mark.parametrize("backend", qp.BACKENDS)
def test_gradcheck_double_precision(backend):
    Q, p, G, lo, up = _random_qp(B=2, n=4, m=3)
    inputs = tuple(t.clone().requires_grad_() for t in (Q, p, G, lo, up))

    def f(Q, p, G, lo, up):
        return qp.solve_qp(Q, p, G, lo, up, backend=backend)

    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-3)


def test_float32_and_shared_matrices_keep_dtype():
    Q, p, G, lo, up = _random_qp()
    z = qp.solve_qp(Q[0].float(), p.float(), G.float(), lo.float(), up.float())
    assert z.dtype == torch.float32 and z.shape == p.shape


def test_infeasible_and_bad_inputs_raise():
    Q, p, G, lo, up = _random_qp()
    with pytest.raises(ValueError, match="infeasible, lower"):
        qp.solve_qp(Q, p, G, up, lo)
    # consistent bounds but contradictory rows: z_0 >= 1 and z_0 <= -1
    G2 = torch.zeros(2, 5, dtype=F64)
    G2[:, 0] = 1.0
    lo2, up2 = torch.tensor([1.0, -5.0], dtype=F64), torch.tensor([5.0, -1.0], dtype=F64)
    with pytest.raises(ValueError, match="infeasible or not solved"):
        qp.solve_qp(Q, p, G2, lo2, up2)
    bad = p.clone()
    bad[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        qp.solve_qp(Q, bad, G, lo, up)
    with pytest.raises(ValueError, match="backend"):
        qp.solve_qp(Q, p, G, lo, up, backend="qpth")
    with pytest.raises(ValueError, match="shapes"):
        qp.solve_qp(Q, p, G[:, :3], lo, up)


def test_inference_path_equals_autograd_path():
    Q, p, G, lo, up = _random_qp(bound=0.05)
    with torch.no_grad():
        fast = qp.solve_qp(Q, p, G, lo, up)
    slow = qp.solve_qp(Q.clone().requires_grad_(), p, G, lo, up)
    assert torch.allclose(fast, slow.detach(), atol=1e-8)


def test_forward_only_solve_matches_the_differentiable_one():
    """Inference path (no preconditioner, no autograd) == QPFunction's solution."""
    Q, p, G, lo, up = _random_qp(B=3, n=8, m=6, bound=0.1, seed=4)
    with torch.no_grad():
        fast = qp.solve_qp(Q, p, G, lo, up)
    ref = qp.solve_qp(Q, p.clone().requires_grad_(), G, lo, up).detach()
    assert torch.allclose(fast, ref, atol=1e-8)
    assert int(((G @ ref.T).abs() >= 0.1 - 1e-7).sum()) > 0  # some bounds are active


def test_forward_only_solve_skips_proxqp_only_when_the_bounds_are_inactive():
    """A batch mixing an inactive problem (wide bounds) and active ones: the inactive one is
    answered by its unconstrained minimiser, the others by ProxQP; all equal QPFunction's."""
    Q, p, G, lo, up = _random_qp(B=3, n=8, m=6, bound=0.1, seed=4)
    lo, up = lo.expand(3, -1).clone(), up.expand(3, -1).clone()
    lo[1], up[1] = -1e3, 1e3
    before = dict(qp.UNCONSTRAINED_SOLVES)
    with torch.no_grad():
        fast = qp.solve_qp(Q, p, G, lo, up)
    assert qp.UNCONSTRAINED_SOLVES["skipped"] - before["skipped"] == 1
    assert qp.UNCONSTRAINED_SOLVES["proxqp"] - before["proxqp"] == 2
    closed = -torch.linalg.solve(Q[1], p[1])
    assert torch.allclose(fast[1], closed, atol=1e-12)
    ref = qp.solve_qp(Q, p.clone().requires_grad_(), G, lo, up).detach()
    assert torch.allclose(fast, ref, atol=1e-8)


def test_workspace_warm_started_solves_equal_fresh_ones():
    """A sequence of related QPs (a drifting linear term, as consecutive chunks give) solved
    through one ProxQPWorkspace (init once, update + warm start) equals fresh solves; a
    problem of another shape gets its own solver; copies and pickles start empty."""
    import copy
    import pickle

    Q, p, G, lo, up = _random_qp(B=1, n=12, m=10, bound=0.05, seed=5)
    workspace = qp.ProxQPWorkspace()
    g = torch.Generator().manual_seed(6)
    with torch.no_grad():
        for _ in range(6):
            p = p + 0.1 * torch.randn(p.shape, generator=g, dtype=F64)
            before = qp.UNCONSTRAINED_SOLVES["proxqp"]
            warm = qp.solve_qp(Q, p, G, lo, up, workspace=workspace)
            assert qp.UNCONSTRAINED_SOLVES["proxqp"] == before + 1  # active bounds
            fresh = qp.solve_qp(Q, p, G, lo, up)
            assert torch.allclose(warm, fresh, atol=1e-8, rtol=0)
        assert len(workspace._solvers) == 1
        other = _random_qp(B=1, n=12, m=4, bound=0.05, seed=7)
        assert torch.allclose(
            qp.solve_qp(*other, workspace=workspace), qp.solve_qp(*other), atol=1e-8, rtol=0
        )
    assert len(workspace._solvers) == 2
    assert not copy.deepcopy(workspace)._solvers
    assert not pickle.loads(pickle.dumps(workspace))._solvers
    workspace.clear()
    assert not workspace._solvers
