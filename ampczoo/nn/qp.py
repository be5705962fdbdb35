"""Batched differentiable quadratic programs and the trajectory-optimisation matrices of
LeTO / DiffOG.

The QP (batch B, n variables, m two-sided inequality rows)::

    z* = argmin_z  1/2 z^T Q z + p^T z   s.t.  l <= G z <= u

is solved by :func:`solve_qp` with one of two backends, both differentiable w.r.t. every
input:

* ``"proxsuite"`` (default): ProxSuite's ``proxsuite.torch.qplayer.QPFunction`` (dense
  ProxQP, KKT-based backward pass). ProxSuite works on CPU float64 numpy copies, so inputs
  on another device or dtype are moved there and the solution is moved back (differentiably).
* ``"cvxpylayers"``: a cvxpylayers ``CvxpyLayer`` (diffcp). The cost is written as
  1/2 ||L^T z||^2 + p^T z with L = cholesky(Q) so that the problem is DPP; one layer per
  problem size is built and cached. Infinite bounds are replaced by +-1e6.

Forward-only solves (no gradient needed) first try each problem's unconstrained minimiser
-Q^-1 p (batched Cholesky): when it satisfies every row it is the solution (all multipliers
zero) and no QP solver runs (:data:`UNCONSTRAINED_SOLVES` counts both outcomes). The others
call ProxQP directly, without its Ruiz preconditioner (about half the time at n = 112, same
solution to 1e-10); a solve that misses the constraints is repeated with the preconditioner.

Every shared (unbatched) matrix is expanded to the batch before the call, so no backend
averages a shared parameter's gradient over the batch (a qpth pitfall). Guards: non-finite
inputs, ``l > u`` and solutions that violate the constraints by more than ``feas_tol``
(infeasible problem or failed solve) raise ValueError; non-finite gradients are replaced by
zeros and counted in :data:`NAN_GRADIENTS`.

Matrix builders (sequence of T steps of D-dimensional actions, flattened time-major,
``z = [a_0, a_1, ..., a_{T-1}]``): :func:`selection_matrix` S (D_c x D_a),
:func:`block_diag_repeat` blkdiag(S, ..., S), :func:`diff_matrix` A_diff (finite difference
over dt) and :func:`integration_matrix` A_inte (positions from velocities).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

BACKENDS = ("proxsuite", "cvxpylayers")
#: Number of non-finite gradient entries replaced by zero since import (per backend).
NAN_GRADIENTS: dict[str, int] = {b: 0 for b in BACKENDS}
_INF = 1e6  # stand-in for infinite bounds in the cvxpylayers backend
#: Forward-only solves: an unconstrained minimiser within this of every bound is the solution.
INACTIVE_TOL = 1e-12
#: Forward-only solves since import: answered by the unconstrained minimiser / sent to ProxQP.
UNCONSTRAINED_SOLVES: dict[str, int] = {"skipped": 0, "proxqp": 0}
_CVX_LAYERS: dict[tuple[int, int], Any] = {}
#: A backend's solve: (Q, p, G, lower, upper) batched CPU float64 tensors -> z* (B, n).
QPSolver = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor
]


# ----------------------------------------------------------------------------- builders
def selection_matrix(
    action_dim: int, dims: Sequence[int] | None = None, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """S (D_c, D_a): rows pick the continuous action dimensions ``dims`` (default: all).
    E.g. a 7-joint arm plus gripper: ``selection_matrix(8, range(7))``."""
    if action_dim <= 0:
        raise ValueError(f"action_dim must be > 0, got {action_dim}")
    dims = list(range(action_dim)) if dims is None else [int(d) for d in dims]
    if not dims or len(set(dims)) != len(dims) or min(dims) < 0 or max(dims) >= action_dim:
        raise ValueError(f"dims must be distinct indices in [0, {action_dim}), got {dims}")
    S = torch.zeros(len(dims), action_dim, dtype=dtype)
    S[torch.arange(len(dims)), torch.tensor(dims)] = 1.0
    return S


def block_diag_repeat(M: torch.Tensor, T: int) -> torch.Tensor:
    """blkdiag(M, ..., M) with T copies: (T*r, T*c)."""
    if T <= 0:
        raise ValueError(f"T must be > 0, got {T}")
    return torch.kron(torch.eye(T, dtype=M.dtype, device=M.device), M)


def diff_matrix(
    T: int,
    D: int,
    dt: float = 1.0,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """A_diff ((T-1)*D, T*D): row block k is (c_{k+1} - c_k) / dt (paper Eq. 3)."""
    if T < 2:
        return torch.zeros(0, T * D, dtype=dtype)
    first = torch.zeros(T - 1, T, dtype=dtype)
    idx = torch.arange(T - 1)
    first[idx, idx], first[idx, idx + 1] = -1.0, 1.0
    return torch.kron(first, torch.eye(D, dtype=dtype)) / dt


def integration_matrix(
    T: int,
    D: int,
    dt: float,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """A_inte ((T-1)*D, T*D): row block i-1 (i = 1..T-1) is dt * (v_0 + ... + v_{i-1}), so
    positions p_{t+i} = p_t + (A_inte v)_i (LeTO Eq. 3)."""
    if T < 2:
        return torch.zeros(0, T * D, dtype=dtype)
    lower = torch.tril(torch.ones(T - 1, T, dtype=dtype))
    return torch.kron(lower, torch.eye(D, dtype=dtype)) * dt


def check_bounds(lower: torch.Tensor, upper: torch.Tensor, what: str = "bounds") -> None:
    """ValueError when any lower bound exceeds its upper bound or a bound is NaN."""
    if torch.isnan(lower).any() or torch.isnan(upper).any():
        raise ValueError(f"{what}: NaN bound")
    bad = lower > upper
    if bad.any():
        i = tuple(int(v) for v in torch.nonzero(bad)[0])
        raise ValueError(
            f"{what}: infeasible, lower {float(lower[i]):.6g} > upper "
            f"{float(upper[i]):.6g} at index {i}"
        )


# ----------------------------------------------------------------------------- solve
def solve_qp(
    Q: torch.Tensor,
    p: torch.Tensor,
    G: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    backend: str = "proxsuite",
    feas_tol: float = 1e-6,
    workspace: ProxQPWorkspace | None = None,
    check_inputs: bool = True,
) -> torch.Tensor:
    """Batched differentiable QP: min 1/2 z^T Q z + p^T z s.t. lower <= G z <= upper.

    Q (B, n, n) or (n, n) symmetric positive definite; p (B, n); G (B, m, n) or (m, n);
    lower / upper (B, m) or (m,) (+-inf allowed). Q is symmetrised (Q + Q^T) / 2.
    workspace: forward-only ProxSuite solves reuse its solvers, warm-started from its
    previous solve (see :class:`ProxQPWorkspace`); None: a fresh solver per problem.
    check_inputs: False skips the input checks (shapes, finite values, lower <= upper) and
    the symmetrisation for a caller that has made its inputs so already (DiffOG's
    receding-horizon refine: the same shapes every call, bounds and chunk validated, Q
    symmetric by construction); the solution is still checked.
    Returns z* (B, n) in p's dtype/device.
    Raises ValueError on non-finite inputs, lower > upper, or a solution violating the
    constraints by more than ``feas_tol`` (infeasible or failed)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if p.ndim != 2:
        raise ValueError(f"p must be (B, n), got {tuple(p.shape)}")
    B, n = p.shape
    Q, G = _expand(Q, B, 3, "Q"), _expand(G, B, 3, "G")
    lower, upper = _expand(lower, B, 2, "lower"), _expand(upper, B, 2, "upper")
    if check_inputs:
        _check_inputs(Q, p, G, lower, upper)
        Q = 0.5 * (Q + Q.transpose(1, 2))  # gradients w.r.t. Q are symmetric in every backend
    needs_grad = torch.is_grad_enabled() and any(t.requires_grad for t in (Q, p, G, lower, upper))
    solver: QPSolver
    if backend == "proxsuite" and not needs_grad:
        # same solver and settings, no autograd machinery
        def solver(
            Q: torch.Tensor, p: torch.Tensor, G: torch.Tensor, lo: torch.Tensor, up: torch.Tensor
        ) -> torch.Tensor:
            return _solve_proxsuite_nograd(Q, p, G, lo, up, workspace=workspace)

    else:
        solver = _solve_proxsuite if backend == "proxsuite" else _solve_cvxpylayers
    Q64, p64, G64, lower64, upper64 = (
        _guard(t.to("cpu", torch.float64), backend) for t in (Q, p, G, lower, upper)
    )
    z = solver(Q64, p64, G64, lower64, upper64)
    if not torch.isfinite(z).all():
        raise ValueError(f"QP solver ({backend}) returned NaN/inf")
    _check_solution(z.detach(), G64.detach(), lower64.detach(), upper64.detach(), feas_tol, backend)
    return z.to(p.device, p.dtype)


def _check_inputs(
    Q: torch.Tensor, p: torch.Tensor, G: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor
) -> None:
    """ValueError unless the batched QP inputs have matching shapes, Q, p and G are finite
    and lower <= upper."""
    B, n = p.shape
    if (
        Q.shape[1:] != (n, n)
        or G.shape[2] != n
        or lower.shape != (B, G.shape[1])
        or upper.shape != lower.shape
    ):
        raise ValueError(
            f"QP shapes do not match: Q {tuple(Q.shape)}, p {tuple(p.shape)}, "
            f"G {tuple(G.shape)}, bounds {tuple(lower.shape)}"
        )
    for name, t in (("Q", Q), ("p", p), ("G", G)):
        if not torch.isfinite(t).all():
            raise ValueError(f"QP input {name} contains NaN/inf")
    check_bounds(lower, upper, "QP bounds")


def _expand(t: torch.Tensor, B: int, ndim: int, name: str) -> torch.Tensor:
    if t.ndim == ndim - 1:
        return t.unsqueeze(0).expand(B, *t.shape)
    if t.ndim != ndim or t.shape[0] != B:
        raise ValueError(
            f"{name} must have {ndim - 1} dims or a leading batch of {B}, got {tuple(t.shape)}"
        )
    return t


def _guard(t: torch.Tensor, backend: str) -> torch.Tensor:
    """Identity whose gradient has non-finite entries replaced by 0 (counted)."""
    if t.requires_grad:

        def hook(g: torch.Tensor) -> torch.Tensor:
            bad = ~torch.isfinite(g)
            if bad.any():
                NAN_GRADIENTS[backend] += int(bad.sum())
                warnings.warn(
                    f"{backend} QP: {int(bad.sum())} non-finite gradient entries set to 0",
                    RuntimeWarning,
                    stacklevel=2,
                )
                return torch.where(bad, torch.zeros_like(g), g)
            return g

        t = t.clone()
        t.register_hook(hook)
    return t


def _check_solution(
    z: torch.Tensor,
    G: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    tol: float,
    backend: str,
) -> None:
    Gz = torch.bmm(G, z.unsqueeze(-1)).squeeze(-1)
    viol = torch.maximum(lower - Gz, Gz - upper).clamp_min(0.0)
    if viol.numel() and float(viol.max()) > tol:
        b = int(viol.max(dim=1).values.argmax())
        raise ValueError(
            f"QP ({backend}) infeasible or not solved: constraint violation "
            f"{float(viol.max()):.3g} > {tol:g} (batch element {b})"
        )


def _solve_proxsuite(
    Q: torch.Tensor, p: torch.Tensor, G: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor
) -> torch.Tensor:
    from proxsuite.torch.qplayer import QPFunction

    empty = torch.empty(0, dtype=torch.float64)
    fn = QPFunction(eps=1e-10, maxIter=2000, eps_backward=1e-10, omp_parallel=False)
    z, _, _ = fn(Q, p, empty, empty, G, lower, upper)
    return z


def _solve_proxsuite_nograd(
    Q: torch.Tensor,
    p: torch.Tensor,
    G: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    tol: float = 1e-6,
    workspace: ProxQPWorkspace | None = None,
) -> torch.Tensor:
    """Forward-only solves (inference). Each problem first gets its unconstrained minimiser
    z = -Q^-1 p (batched Cholesky): when it satisfies every row to ``INACTIVE_TOL`` it is
    the QP's solution (KKT with zero multipliers) and ProxQP is skipped. The others go to
    ProxQP with the settings of :func:`_solve_proxsuite` (through ``workspace`` when given),
    without its preconditioner unless that solve misses the constraints by more than
    ``tol`` (then a fresh solver with it)."""
    z = _unconstrained_minimisers(Q, p)
    Gz = torch.bmm(G, z.unsqueeze(-1)).squeeze(-1)
    inside = ((Gz >= lower - INACTIVE_TOL) & (Gz <= upper + INACTIVE_TOL)).all(dim=1)
    inside &= torch.isfinite(z).all(dim=1)
    todo = torch.nonzero(~inside).flatten().tolist()
    UNCONSTRAINED_SOLVES["skipped"] += len(z) - len(todo)
    UNCONSTRAINED_SOLVES["proxqp"] += len(todo)
    Qn, pn, Gn, ln, un = (t.detach().numpy() for t in (Q, p, G, lower, upper))
    for i in todo:
        if workspace is None:
            x = _proxqp(Qn[i], pn[i], Gn[i], ln[i], un[i], precondition=False)
        else:
            x = workspace.solve(Qn[i], pn[i], Gn[i], ln[i], un[i])
        Gx = Gn[i] @ x
        if (ln[i] - Gx).max(initial=0.0) > tol or (Gx - un[i]).max(initial=0.0) > tol:
            if workspace is not None:
                workspace.clear()  # no warm start from a failed solve
            x = _proxqp(Qn[i], pn[i], Gn[i], ln[i], un[i], precondition=True)
        z[i] = torch.from_numpy(x)
    return z


def _unconstrained_minimisers(Q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """-Q^-1 p per batch element (B, n); NaN where Q is not positive definite."""
    L, info = torch.linalg.cholesky_ex(Q)
    z = torch.cholesky_solve(-p.unsqueeze(-1), L).squeeze(-1)
    if bool(info.any()):
        z[info > 0] = float("nan")
    return z


def _dense_proxqp(n: int, m: int) -> Any:
    """A dense ProxQP solver for n variables and m inequality rows, with the settings of
    every solve here (eps_abs 1e-10, 2000 iterations, rho 5e-5)."""
    import proxsuite

    solver = proxsuite.proxqp.dense.QP(n, 0, m)
    solver.settings.eps_abs, solver.settings.max_iter = 1e-10, 2000
    solver.settings.default_rho = solver.settings.refactor_rho_threshold = 5e-5
    return solver


def _proxqp(Q, p, G, lower, upper, precondition: bool) -> Any:
    """One dense ProxQP solve (numpy float64) -> x (n,)."""
    solver = _dense_proxqp(Q.shape[0], G.shape[0])
    _init(solver, Q, p, G, lower, upper, precondition)
    solver.solve()
    return solver.results.x


def _init(solver: Any, Q: Any, p: Any, G: Any, lower: Any, upper: Any, precondition: bool) -> None:
    """Load the problem min 1/2 x^T Q x + p^T x s.t. lower <= G x <= upper into ``solver``."""
    solver.init(
        H=Q,
        g=p,
        A=None,
        b=None,
        C=G,
        l=lower,
        u=upper,
        rho=5e-5,
        compute_preconditioner=precondition,
    )


class ProxQPWorkspace:
    """Dense ProxQP solvers kept across forward-only solves, one per problem shape (n, m):
    ``init`` on the first solve, then ``update`` (same settings, no preconditioner) and
    ``solve`` warm-started from the previous solve's primal and dual result
    (``WARM_START_WITH_PREVIOUS_RESULT``). For a receding-horizon refiner the previous solve
    is the previous chunk's: fewer iterations, the same solution to the solver's tolerance
    (eps_abs 1e-10; tests/nn/test_qp.py compares with fresh solves). Not thread-safe: one
    per runner. A copy or a pickle starts empty."""

    def __init__(self) -> None:
        self._solvers: dict[tuple[int, int], Any] = {}

    def clear(self) -> None:
        """Forget the solvers (the next solve of each shape starts cold)."""
        self._solvers.clear()

    def solve(self, Q: Any, p: Any, G: Any, lower: Any, upper: Any) -> Any:
        """min 1/2 x^T Q x + p^T x s.t. lower <= G x <= upper (numpy float64) -> x (n,)."""
        import proxsuite

        key = (Q.shape[0], G.shape[0])
        solver = self._solvers.get(key)
        if solver is None:
            solver = _dense_proxqp(*key)
            solver.settings.initial_guess = (
                proxsuite.proxqp.InitialGuess.WARM_START_WITH_PREVIOUS_RESULT
            )
            _init(solver, Q, p, G, lower, upper, precondition=False)
            self._solvers[key] = solver
        else:
            solver.update(
                H=Q, g=p, A=None, b=None, C=G, l=lower, u=upper, update_preconditioner=False
            )
        solver.solve()
        return solver.results.x.copy()

    def __deepcopy__(self, memo: dict[int, Any]) -> ProxQPWorkspace:
        return ProxQPWorkspace()

    def __getstate__(self) -> dict[str, Any]:
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._solvers = {}


def _cvx_layer(n: int, m: int) -> Any:
    if (n, m) not in _CVX_LAYERS:
        import cvxpy as cp
        from cvxpylayers.torch import CvxpyLayer

        z = cp.Variable(n)
        Lt, p = cp.Parameter((n, n)), cp.Parameter(n)
        G, lo, up = cp.Parameter((m, n)), cp.Parameter(m), cp.Parameter(m)
        prob = cp.Problem(
            cp.Minimize(0.5 * cp.sum_squares(Lt @ z) + p @ z), [G @ z >= lo, G @ z <= up]
        )
        _CVX_LAYERS[(n, m)] = CvxpyLayer(prob, parameters=[Lt, p, G, lo, up], variables=[z])
    return _CVX_LAYERS[(n, m)]


def _solve_cvxpylayers(
    Q: torch.Tensor, p: torch.Tensor, G: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor
) -> torch.Tensor:
    L, info = torch.linalg.cholesky_ex(Q)
    if bool((info > 0).any()):
        raise ValueError("QP (cvxpylayers): Q is not positive definite")
    layer = _cvx_layer(p.shape[1], G.shape[1])
    (z,) = layer(
        L.transpose(1, 2),
        p,
        G,
        lower.clamp(-_INF, _INF),
        upper.clamp(-_INF, _INF),
        solver_args={"eps": 1e-10},
    )
    return z
