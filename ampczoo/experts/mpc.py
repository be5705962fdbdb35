"""Nonlinear MPC expert for SE(3) end-effector setpoint tracking of the 7-DOF KUKA (paper V-A).

State ``q`` (7,) joint positions [rad], input ``u`` (7,) joint velocities [rad/s], Euler
dynamics ``q_{k+1} = q_k + dt * u_k``. Two formulations (:class:`MPCConfig.formulation`):

``"steady_state"`` (default) -- artificial steady-state reference ``q^s`` (u^s = 0)::

    min  sum_{k<N} ||q_k - q^s||^2_Q + ||u_k||^2_R  +  d_y(y_d, h(q^s))
    s.t. q_0 = x_t, q_{k+1} = q_k + dt u_k, q_N = q^s, constraints on q_k, u_k, q^s.

(The paper's literal virtual trajectory with a free start is degenerate -- ``q^s = x_t`` is
always feasible and the loop need not converge -- so it is not implemented literally.)

``"virtual_trajectory"`` -- virtual trajectory ``q^s_0 = x_t``, ``q^s_{k+1} = q^s_k + dt
u^s_k``, stationary at the end (u^s_N = 0, i.e. ``q_N = q^s_N`` is the terminal equality)::

    min  sum_{k<N} ||q_k - q^s_k||^2_Q + ||u_k - u^s_k||^2_R
         + (1/N) sum_{k=1}^{N-1} d_y(y_d, h(q^s_k)) + d_y(y_d, h(q^s_N)).

The averaged output error along the virtual trajectory pulls every virtual state toward the
target, which is what makes the closed loop converge; the full-weight terminal term fixes
the reference ``x_ref = q^s_N``. All constraints also hold on the virtual states.

Output error: ``d_y = w_pos ||p_d - p(q)||^2 + w_rot theta^2``, ``theta = atan2(sqrt(|v|^2 +
eps), (tr(E) - 1) / 2)``, ``v = vee(E - E^T) / 2``, ``E = R_d^T R(q)``, eps = 1e-10 (keeps the
derivative finite at theta = 0 at the price of a 1e-5 rad bias).

Constraints: joint limits on every q_k, q^s; ``|u| <= VELOCITY_LIMIT``; self collision
``||c_i - c_j||^2 >= (r_i + r_j)^2`` for every pair of ``kuka_collision_model().pairs``;
floor ``z(c_i) - r_i >= 0``; optional obstacle ``||c_i - o||^2 >= (r_i + r_o)^2`` (Eq. 17) for
all spheres, at every k = 1..N (and every virtual state); each radius sum is enlarged by
``CONSTRAINT_MARGIN`` = 1 mm so that solver tolerance never produces a contact. Sphere
centres come from
:meth:`SerialChain.sphere_centres` with CasADi symbols.

NLP layout (both solvers): stage-wise ``w = [X_0, U_0, X_1, U_1, ..., X_N]`` with the augmented
state ``X_k = [q_k; q^s_k]`` (nx = 14; in the steady-state formulation ``q^s_{k+1} = q^s_k``),
``U_k = u_k`` (7) or ``[u_k; u^s_k]`` (14). Constraint rows per stage: dynamics gap
``X_{k+1} - F(X_k, U_k)`` first, then the stage's path constraints (stage 0: ``q_0 - x_t = 0``
[and ``q^s_0 - x_t = 0``]; stage N: ``q_N - q^s_N = 0``), exactly as fatrop's manual
structure detection expects. Parameters ``p = [x_t (7), p_d (3), vec(R_d) (9, column-major),
obstacle centre (3), obstacle radius (1)]`` so one compiled problem serves every episode.

Measured (2-core shared CPU, load ~2, 10 closed loops x 30 steps, kinematic plant, N = 20):
warm solve mean/p95 [ms]: IPOPT 12.9/23.9, IPOPT compiled 9.6/15.7, fatrop 8.0/14.6, fatrop
compiled 6.6/10.0; cold (random guess) 65 / 47 / 33 / 29 ms. The virtual-trajectory
formulation converges too but needs 2-4x more iterations (warm IPOPT about 55 ms).
Solver tuning (warm mu_init 1e-5 fatrop / 1e-6 IPOPT, MUMPS without MC64/auto scaling,
-O3 -march=native), replayed noisy-collection solves, same machine, old -> new: fatrop
9.1 -> 7.4 ms mean (11.5 -> 8.9 iterations), IPOPT 27.8 -> 15.7 ms (10.5 -> 7.3 iterations);
solutions agree within the solver tolerance (max |du| vs tol=1e-10 unchanged, ~2.5e-3).

Compiled mode writes the NLP oracle functions to C, builds them with ``gcc -O3 -march=native
-shared`` (:data:`CFLAGS`) and caches the library in ``$AMPCZOO_CACHE`` (default
``~/.cache/ampczoo/mpc/``) keyed by a hash of the problem definition, the flags and the CPU;
concurrent builders write a temp file and rename atomically.

Closed-loop success, solve times per solver / compile mode and the number of local optima are
measured by ``ampczoo bench mpc`` (:mod:`ampczoo.benchmarks.mpc`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ampczoo.core.policy import Policy
from ampczoo.robots.kuka import (
    FLOOR_Z,
    OBS_DIM,
    OBS_DIM_OBSTACLE,
    SELF_COLLISION_MARGIN,
    VELOCITY_LIMIT,
    KukaObservation,
    kuka_chain,
    kuka_collision_model,
    parse_observation,
)

NQ = 7
NP = 23  # x_t (7) + p_d (3) + R_d (9) + obstacle centre (3) + radius (1)
THETA_EPS = 1e-10
#: Extra clearance [m] the MPC keeps on every collision constraint, so that an active
#: constraint met only to the solver's tolerance is never a contact in the simulator.
CONSTRAINT_MARGIN = 1e-3
HSL_SOLVERS = ("ma27", "ma57", "ma77", "ma86", "ma97")
SOLVERS = ("ipopt", "fatrop")
FORMULATIONS = ("steady_state", "virtual_trajectory")
COLD_STARTS = ("random", "state", "branches")
_CACHE_VERSION = "2"
#: C compiler flags of the compiled NLP functions (part of the cache key). No -ffast-math:
#: it would change the numerics. -march=native measured ~6% faster warm solves than -O2
#: (fatrop, same iterates up to 1e-12); the library is then CPU-specific, so the CPU's
#: identity is part of the cache key.
CFLAGS = ("-O3", "-march=native")


def _cpu_id() -> str:
    """Identity of this CPU (model + feature flags) for the cache key of -march=native code."""
    import platform

    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
        keep = sorted({ln for ln in info if ln.startswith(("model name", "flags"))})
        return hashlib.sha256("\n".join(keep).encode()).hexdigest()[:16]
    except OSError:
        return f"{platform.machine()}-{platform.processor()}"


#: Seed of the IK seeds of ``cold_start="branches"`` (the branch set is a function of the
#: start/target pair only; the episode's seed draws which branch).
BRANCH_IK_SEED = 0

# Initial barrier parameter of warm-started solves (the shifted previous solution is close to
# the optimum; a smaller mu saves iterations without changing the converged solution).
WARM_MU_INIT_IPOPT = 1e-6
WARM_MU_INIT_FATROP = 1e-5


@dataclass(frozen=True)
class MPCConfig:
    """Configuration of :class:`MPCExpert`, the KUKA tracking MPC of the paper (see the module
    docstring for the problem)."""

    horizon: int = 20
    """prediction horizon N [steps]"""
    dt: float = 0.1
    """Euler step of the prediction model [s]"""
    q_weight: float = 1.0
    """Q = q_weight * I on ``q_k - q^s_k`` [1/rad^2]"""
    r_weight: float = 0.1
    """R = r_weight * I on ``u_k - u^s_k`` [s^2/rad^2]"""
    w_pos: float = 1000.0
    """weight of the squared position error [1/m^2]"""
    w_rot: float = 100.0
    """weight of the squared geodesic rotation error [1/rad^2]"""
    formulation: Literal["steady_state", "virtual_trajectory"] = "steady_state"
    """"steady_state" or "virtual_trajectory" (see the module docstring)"""
    solver: str = "ipopt"
    """NLP solver: "ipopt" or "fatrop" (both through CasADi)"""
    linear_solver: str = "mumps"
    """IPOPT linear solver ("mumps"; HSL solvers are refused: not in this build)"""
    compile: bool = True
    """build (and cache) C code of the NLP functions"""
    max_iter: int = 200
    """solver iteration limit"""
    tol: float = 1e-6
    """solver convergence tolerance"""
    obstacle: bool = False
    """build the obstacle constraints (for the obstacle env; the observation must then carry
    the obstacle)"""
    seed: int | None = None
    """seed of the random initial guesses (None = OS entropy)"""
    cold_start: Literal["random", "state", "branches"] = "random"
    """initial guess of a solve without warm start (the first after ``reset`` or after a
    failure): "random" (paper: u ~ U(+-limit), artificial reference ~ U(joint limits), i.e.
    any IK solution of the target, a continuum of modes), "state" (u = 0, every q and the
    artificial reference at x_t: the local solution nearest the current configuration, still
    multi-modal through noise and obstacles) or "branches" (the artificial reference is one of
    ``reference_branches`` distinct IK solutions of the target, drawn per episode from the
    reset seed: discrete multi-modality by construction, see
    :mod:`ampczoo.experts.ik_branches`; the drawn index is ``MPCSolution.branch``)"""
    reference_branches: int = 3
    """K, the number of distinct IK branches of ``cold_start="branches"`` (>= 1)"""
    branch_source: Literal["dls", "ikdiffuser"] = "dls"
    """IK seeds of the branches: "dls" (uniform seeds, damped least squares) or "ikdiffuser"
    (IKDiffuser samples refined by DLS)"""
    branch_threshold: float = 1.0
    """joint distance [rad] below which two IK solutions are one branch"""

    def __post_init__(self) -> None:
        if self.cold_start not in COLD_STARTS:
            raise ValueError(f"unknown cold_start {self.cold_start!r}; choose {COLD_STARTS}")
        _validate_branches(self)
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; choose from {SOLVERS}")
        if self.formulation not in FORMULATIONS:
            raise ValueError(f"unknown formulation {self.formulation!r}; choose {FORMULATIONS}")
        if self.linear_solver.lower() in HSL_SOLVERS:
            raise ValueError(
                f"linear_solver {self.linear_solver!r} needs the HSL library, which "
                "is not in this IPOPT build (it would silently return garbage); "
                "use 'mumps'"
            )
        if int(self.horizon) != self.horizon or self.horizon <= 0:
            raise ValueError(f"horizon must be a positive integer, got {self.horizon}")
        for name in ("dt", "q_weight", "r_weight", "tol"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("w_pos", "w_rot"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.w_pos + self.w_rot > 0:
            raise ValueError("w_pos + w_rot must be > 0 (the output error would vanish)")
        if int(self.max_iter) != self.max_iter or self.max_iter <= 0:
            raise ValueError(f"max_iter must be a positive integer, got {self.max_iter}")


def _validate_branches(cfg: MPCConfig) -> None:
    """ValueError on a bad ``reference_branches`` / ``branch_source`` / ``branch_threshold``."""
    from ampczoo.experts.ik_branches import BRANCH_SOURCES

    k = cfg.reference_branches
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"reference_branches (branch count K) must be an integer >= 1, got {k}")
    if cfg.branch_source not in BRANCH_SOURCES:
        raise ValueError(f"unknown branch_source {cfg.branch_source!r}; choose {BRANCH_SOURCES}")
    if not cfg.branch_threshold > 0:
        raise ValueError(f"branch_threshold must be > 0 [rad], got {cfg.branch_threshold}")


@dataclass
class MPCSolution:
    """One MPC solve. u: (N, 7) [rad/s]; x: (N+1, 7) [rad] with x[0] = x_t; x_ref: (7,) the
    artificial reference (q^s, or q^s_N) [rad]; cost: objective value; output_error: d_y at the
    reference (w_pos ||e_p||^2 + w_rot theta^2, the cost term); output_error_avg: the same as
    the paper's *weighted average*, d_y / (w_pos + w_rot) (the quantity the data pipeline
    thresholds at 0.01); status: solver return status; success: solver converged and all
    values are finite; iterations: solver iterations; solve_time: wall time of the solver
    call [s]. On failure u and x_ref are zeros, x repeats x_t and the errors are inf (never
    NaN)."""

    u: np.ndarray
    x: np.ndarray
    x_ref: np.ndarray
    cost: float
    output_error: float
    status: str
    success: bool
    iterations: int
    solve_time: float
    output_error_avg: float = float("inf")
    raw: dict = field(default_factory=dict, repr=False)
    branch: int = -1
    """the episode's IK branch index (``cold_start="branches"``; -1 otherwise)"""


# ----------------------------------------------------------------------------- symbolic model
def _output_error(
    ca: Any, chain: Any, q: Any, p_d: Any, R_d: Any, w_pos: float, w_rot: float
) -> Any:
    """d_y(y_d, h(q)) as a CasADi expression."""
    p, R = chain.ee_pose(q, backend=ca)
    E = ca.mtimes(R_d.T, R)
    v = 0.5 * ca.vertcat(E[2, 1] - E[1, 2], E[0, 2] - E[2, 0], E[1, 0] - E[0, 1])
    theta = ca.atan2(ca.sqrt(ca.sumsqr(v) + THETA_EPS), 0.5 * (ca.trace(E) - 1.0))
    return w_pos * ca.sumsqr(p_d - p) + w_rot * theta**2


def _collision_rows(
    ca: Any, chain: Any, model: Any, q: Any, obst_c: Any | None, obst_r: Any | None
) -> Any:
    """Smooth collision constraints (all must be >= 0) for one configuration."""
    centres = chain.sphere_centres(q, backend=ca)
    r = model.radii
    rows = []
    for i, j in model.pairs:
        d = centres[i] - centres[j]
        rows.append(ca.sumsqr(d) - (r[i] + r[j] + SELF_COLLISION_MARGIN + CONSTRAINT_MARGIN) ** 2)
    for i in model.floor:
        rows.append(centres[i][2] - r[i] - FLOOR_Z - CONSTRAINT_MARGIN)
    if obst_c is not None:
        for i, c in enumerate(centres):
            rows.append(ca.sumsqr(c - obst_c) - (r[i] + obst_r + CONSTRAINT_MARGIN) ** 2)
    return ca.vertcat(*rows)


class _Layout:
    """Index bookkeeping of the stage-wise decision vector and constraint rows."""

    def __init__(self, N: int, nu: int, ng_path: list[int]):
        self.N, self.nx, self.nu = N, 2 * NQ, nu
        self.x_off = [k * (self.nx + nu) for k in range(N + 1)]
        self.n_w = N * (self.nx + nu) + self.nx
        self.g_rows: list[np.ndarray] = []
        off = 0
        for k in range(N + 1):
            n = (self.nx if k < N else 0) + ng_path[k]
            self.g_rows.append(np.arange(off, off + n))
            off += n
        self.n_g = off
        self.ng_path = ng_path

    def w_blocks(self, k: int) -> np.ndarray:
        """Indices of stage k's variables (X_k, U_k)."""
        n = self.nx + (self.nu if k < self.N else 0)
        return np.arange(self.x_off[k], self.x_off[k] + n)

    def unpack(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """w -> q (N+1, 7), q^s (N+1, 7), u (N, 7), u^s (N, 7) (zeros in steady state)."""
        X = np.stack([w[o : o + self.nx] for o in self.x_off])
        U = np.stack([w[o + self.nx : o + self.nx + self.nu] for o in self.x_off[:-1]])
        us = U[:, NQ:] if self.nu > NQ else np.zeros((self.N, NQ))
        return X[:, :NQ], X[:, NQ:], U[:, :NQ], us

    def pack(self, q: np.ndarray, qs: np.ndarray, u: np.ndarray, us: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`unpack`."""
        w = np.zeros(self.n_w)
        for k, o in enumerate(self.x_off):
            w[o : o + NQ], w[o + NQ : o + self.nx] = q[k], qs[k]
            if k < self.N:
                w[o + self.nx : o + self.nx + NQ] = u[k]
                if self.nu > NQ:
                    w[o + self.nx + NQ : o + self.nx + self.nu] = us[k]
        return w


def _build_nlp(cfg: MPCConfig) -> tuple[dict, _Layout, np.ndarray, np.ndarray, Any]:
    """Symbolic NLP {x, p, f, g}, layout, lbg, ubg, and a casadi Function for d_y."""
    import casadi as ca

    chain, model = kuka_chain(), kuka_collision_model()
    N, dt, virtual = cfg.horizon, cfg.dt, cfg.formulation == "virtual_trajectory"
    nu = 2 * NQ if virtual else NQ
    P = ca.SX.sym("p", NP)
    x_t, p_d, R_d = P[0:7], P[7:10], ca.reshape(P[10:19], 3, 3)
    obst_c, obst_r = (P[19:22], P[22]) if cfg.obstacle else (None, None)
    X = [ca.SX.sym(f"X{k}", 2 * NQ) for k in range(N + 1)]
    U = [ca.SX.sym(f"U{k}", nu) for k in range(N)]
    qsym = ca.SX.sym("q", NQ)
    dy_fun = ca.Function(
        "d_y", [qsym, P], [_output_error(ca, chain, qsym, p_d, R_d, cfg.w_pos, cfg.w_rot)]
    )
    coll_fun = ca.Function(
        "coll", [qsym, P], [_collision_rows(ca, chain, model, qsym, obst_c, obst_r)]
    )
    n_coll = coll_fun.size1_out(0)
    f, g, lbg, ubg, ng_path = 0, [], [], [], []
    for k in range(N + 1):
        q, qs = X[k][:NQ], X[k][NQ:]
        path, plb = [], []
        if k < N:
            u = U[k][:NQ]
            us = U[k][NQ:] if virtual else ca.DM.zeros(NQ)
            f += cfg.q_weight * ca.sumsqr(q - qs) + cfg.r_weight * ca.sumsqr(u - us)
            g.append(X[k + 1] - ca.vertcat(q + dt * u, qs + dt * us))
            lbg.append(np.zeros(2 * NQ))
        if k == 0:
            path += [q - x_t] + ([qs - x_t] if virtual else [])
            plb += [np.zeros(NQ)] * (2 if virtual else 1)
        else:
            path.append(coll_fun(q, P))
            plb.append(np.zeros(n_coll))
            if virtual and k < N:
                path.append(coll_fun(qs, P))
                plb.append(np.zeros(n_coll))
                f += dy_fun(qs, P) / N
        if k == N:
            path.append(q - qs)
            plb.append(np.zeros(NQ))
            f += dy_fun(qs, P)
        g += path
        lbg += plb
        ng_path.append(int(sum(len(b) for b in plb)))
    layout = _Layout(N, nu, ng_path)
    w = ca.vertcat(*[ca.vertcat(X[k], U[k]) if k < N else X[k] for k in range(N + 1)])
    lbg = np.concatenate(lbg)
    ubg = lbg.copy()
    eq = _equality_mask(layout, virtual)
    ubg[~eq] = np.inf
    return {"x": w, "p": P, "f": f, "g": ca.vertcat(*g)}, layout, lbg, ubg, dy_fun


def _equality_mask(layout: _Layout, virtual: bool) -> np.ndarray:
    """True for equality rows (gaps, initial state, terminal), False for collision rows."""
    eq = np.zeros(layout.n_g, dtype=bool)
    nx = layout.nx
    for k, rows in enumerate(layout.g_rows):
        if k < layout.N:
            eq[rows[:nx]] = True
        if k == 0:
            eq[rows[nx:]] = True
        if k == layout.N:
            eq[rows[-NQ:]] = True
    del virtual
    return eq


def _bounds(layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """Simple bounds: joint limits on q_k and q^s_k, velocity limits on u_k (and u^s_k)."""
    chain = kuka_chain()
    lo, hi = np.full(layout.n_w, -np.inf), np.full(layout.n_w, np.inf)
    for k, o in enumerate(layout.x_off):
        lo[o : o + layout.nx], hi[o : o + layout.nx] = (
            np.tile(chain.lower, 2),
            np.tile(chain.upper, 2),
        )
        if k < layout.N:
            lo[o + layout.nx : o + layout.nx + layout.nu] = -VELOCITY_LIMIT
            hi[o + layout.nx : o + layout.nx + layout.nu] = VELOCITY_LIMIT
    return lo, hi


# ----------------------------------------------------------------------------- compilation
def cache_dir() -> Path:
    """Directory of the compiled NLP libraries ($AMPCZOO_CACHE or ~/.cache/ampczoo/mpc)."""
    root = os.environ.get("AMPCZOO_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "ampczoo" / "mpc"


def problem_hash(cfg: MPCConfig) -> str:
    """Hash of everything that changes the generated code."""
    import casadi as ca

    from ampczoo.robots.kinematics import KUKA_URDF

    key = (
        _CACHE_VERSION,
        CFLAGS,
        _cpu_id(),
        cfg.formulation,
        cfg.horizon,
        cfg.dt,
        cfg.q_weight,
        cfg.r_weight,
        cfg.w_pos,
        cfg.w_rot,
        cfg.obstacle,
        cfg.solver,
        ca.__version__,
        hashlib.sha256(KUKA_URDF.read_bytes()).hexdigest(),
        THETA_EPS,
        SELF_COLLISION_MARGIN,
        CONSTRAINT_MARGIN,
        FLOOR_Z,
        kuka_collision_model().pairs.tobytes().hex(),
    )
    return hashlib.sha256(repr(key).encode()).hexdigest()[:16]


def compiled_library(cfg: MPCConfig, solver_fn: Any) -> Path:
    """Path of the cached shared library of ``solver_fn``'s NLP functions (built if missing)."""
    out = cache_dir() / f"mpc_{cfg.solver}_{problem_hash(cfg)}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        src = Path(tmp) / "nlp.c"
        name = f"ampczoo_mpc_{os.getpid()}_{os.urandom(4).hex()}.c"  # casadi writes to cwd
        solver_fn.generate_dependencies(name, {"with_header": False})
        os.replace(name, src)
        so = Path(tmp) / "nlp.so"
        subprocess.run(
            ["gcc", *CFLAGS, "-fPIC", "-shared", str(src), "-o", str(so), "-lm"],
            check=True,
            capture_output=True,
        )
        os.replace(so, out)  # atomic: a concurrent builder just overwrites an equal file
    return out


# ----------------------------------------------------------------------------- the problem
class _Problem:
    """A built NLP: the solver function, bounds and helpers."""

    def __init__(self, cfg: MPCConfig):
        import casadi as ca

        self.cfg = cfg
        nlp, self.layout, self.lbg, self.ubg, self.dy_fun = _build_nlp(cfg)
        self.lbx, self.ubx = _bounds(self.layout)
        self.solver_name = cfg.solver
        opts = self._options(warm=False)
        self.solver = ca.nlpsol("mpc", cfg.solver, nlp, opts)
        if cfg.compile:
            lib = str(compiled_library(cfg, self.solver))
            self.solver = ca.nlpsol("mpc", cfg.solver, lib, opts)
            self._source: Any = lib
        else:
            self._source = nlp
        self._warm_solver: Any = None

    def _options(self, warm: bool) -> dict:
        cfg, L = self.cfg, self.layout
        if cfg.solver == "ipopt":
            ip = {
                "print_level": 0,
                "sb": "yes",
                "max_iter": int(cfg.max_iter),
                "tol": cfg.tol,
                "linear_solver": cfg.linear_solver,
            }
            if cfg.linear_solver.lower() == "mumps":
                # MUMPS' default MC64 permuting scaling + automatic scaling cost ~25% of a
                # solve on this small, well-scaled KKT system; identical iterates without.
                ip.update({"mumps_permuting_scaling": 0, "mumps_scaling": 0})
            if warm:
                ip.update({"warm_start_init_point": "yes", "mu_init": WARM_MU_INIT_IPOPT})
                for k in (
                    "bound_push",
                    "mult_bound_push",
                    "bound_frac",
                    "slack_bound_push",
                    "slack_bound_frac",
                ):
                    ip[f"warm_start_{k}"] = 1e-9
            return {"ipopt": ip, "print_time": False, "error_on_fail": False}
        fat = {"print_level": 0, "max_iter": int(cfg.max_iter), "tol": cfg.tol}
        if warm:
            fat["mu_init"] = WARM_MU_INIT_FATROP
        return {
            "structure_detection": "manual",
            "N": L.N,
            "nx": [L.nx] * (L.N + 1),
            "nu": [L.nu] * L.N + [0],
            "ng": L.ng_path,
            "fatrop": fat,
            "print_time": False,
            "error_on_fail": False,
            "expand": False,
        }

    def solver_for(self, warm: bool) -> Any:
        """The solver instance (warm-start options differ, so there are two)."""
        import casadi as ca

        if not warm:
            return self.solver
        if self._warm_solver is None:
            self._warm_solver = ca.nlpsol(
                "mpc_warm", self.cfg.solver, self._source, self._options(warm=True)
            )
        return self._warm_solver


_PROBLEMS: dict[MPCConfig, _Problem] = {}


def _problem(cfg: MPCConfig) -> _Problem:
    """Built problems are shared between experts with the same definition (seed excluded)."""
    from dataclasses import replace

    key = replace(cfg, seed=None, reference_branches=1, branch_source="dls", branch_threshold=1.0)
    if key not in _PROBLEMS:
        _PROBLEMS[key] = _Problem(key)
    return _PROBLEMS[key]


def make_params(ob: KukaObservation) -> np.ndarray:
    """NLP parameter vector (23,) of a parsed observation."""
    p = np.zeros(NP)
    p[0:7], p[7:10] = ob.q, ob.target_pos
    p[10:19] = np.asarray(ob.target_rot, float).reshape(-1, order="F")
    if ob.obstacle is not None:
        p[19:22], p[22] = ob.obstacle.centre, ob.obstacle.radius
    return p


# ----------------------------------------------------------------------------- the expert
class MPCExpert(Policy):
    """The MPC expert: ``act(obs)`` returns the first input of the optimal sequence.

    After a failed solve the warm start is dropped, so the next solve is a cold start.

    The first solve after :meth:`reset` is a cold start (``config.cold_start``: by default a
    uniformly random initial guess, which is what makes the paper's data multi-modal; "state"
    starts at the current configuration); later solves warm-start from the previous
    solution shifted by one step. On a failed solve :meth:`act` returns zero velocity (the
    safe action: the robot holds its position) and increments ``n_failures``.
    """

    name = "mpc"
    config_class = MPCConfig
    #: ``act`` takes one observation at a time (a batch is a ValueError).
    batched = False

    def __init__(self, config: MPCConfig | None = None):
        self.config = config or MPCConfig()
        self._prob = _problem(self.config)
        self.rng = np.random.default_rng(self.config.seed)
        self.n_failures = 0
        self.last_solution: MPCSolution | None = None
        self._warm: dict | None = None
        #: ``cold_start="branches"``: the episode's branch index and its reference (7,) [rad]
        self.branch, self._branch_ref = -1, None

    @classmethod
    def for_env(cls, env_or_obs_dim: Any, **overrides: Any) -> MPCExpert:
        """Expert matching an env (or its observation size): obstacle on for 20-dim obs."""
        dim = env_or_obs_dim
        if not isinstance(dim, int | np.integer):
            dim = int(np.prod(env_or_obs_dim.observation_space.shape))
        if dim not in (OBS_DIM, OBS_DIM_OBSTACLE):
            raise ValueError(f"not a KUKA tracking observation size: {dim}")
        overrides.setdefault("obstacle", dim == OBS_DIM_OBSTACLE)
        return cls(MPCConfig(**overrides))

    @classmethod
    def example_config(cls) -> MPCConfig:
        """A 5-step problem without C code generation (builds in a second; tests, docs)."""
        return MPCConfig(horizon=5, compile=False)

    @property
    def horizon(self) -> int:
        return self.config.horizon

    @property
    def obs_dim(self) -> int:
        """Size of the KUKA observation it takes (20 with the obstacle, 16 without)."""
        return OBS_DIM_OBSTACLE if self.config.obstacle else OBS_DIM

    @property
    def action_dim(self) -> int:
        """7 joint velocities [rad/s]."""
        return NQ

    def reset(self, seed: int | None = None) -> None:
        """Forget the warm start (next solve uses a random guess) and the last solution;
        reseed if ``seed`` given."""
        self._warm = None
        self.last_solution = None
        self.branch, self._branch_ref = -1, None
        if seed is not None:
            self.rng = np.random.default_rng(seed)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """obs (16,) or (20,) -> u_0 (7,) [rad/s]; zeros if the solve failed."""
        sol = self.solve(obs)
        if not sol.success:
            self.n_failures += 1
            return np.zeros(NQ)
        return sol.u[0].copy()

    def planned_inputs(self) -> tuple[np.ndarray, float] | None:
        """The optimal inputs (N, 7) [rad/s] of the last solve and ``config.dt`` [s] (a copy of
        ``last_solution.u``; their Euler rollout from x_t is the predicted states
        ``last_solution.x``, the problem's dynamics constraint); None before the first solve
        after :meth:`reset` or after a failed one (:class:`~ampczoo.core.policy.PlansInputs`)."""
        sol = self.last_solution
        if sol is None or not sol.success:
            return None
        return sol.u.copy(), float(self.config.dt)

    # ------------------------------------------------------------------ solving
    def _parse(self, obs: np.ndarray) -> KukaObservation:
        ob = parse_observation(obs)
        if (ob.obstacle is not None) != self.config.obstacle:
            raise ValueError(
                f"observation {'has' if ob.obstacle else 'lacks'} an obstacle but "
                f"MPCConfig.obstacle={self.config.obstacle}"
            )
        return ob

    def solve(self, obs: np.ndarray, initial_guess: Any = None) -> MPCSolution:
        """Solve the MPC problem for a flat observation.

        initial_guess: None (warm start if available, else random), "random", "warm", an
        input sequence (N, 7) [rad/s], or a dict with ``u`` (N, 7) and optionally ``x_ref``
        (7,) [rad] (states are then the rollout of u from x_t, clipped to the joint limits;
        x_ref defaults to its end). Array guesses are cold starts (no duals).

        With ``cold_start="state"``, a failed state cold start is retried once from a random
        guess (fatrop fails repeatedly from some local guesses where a random one succeeds);
        the returned solve_time covers both attempts.

        With ``cold_start="branches"`` a cold solve pins the artificial reference to the
        episode's IK branch (the reference *is* the branch; later warm solves free it), from
        u = 0; a failure is retried unpinned from the same guess, then pinned from the straight
        line x_t -> branch (solve_time covers all attempts; an unpinned success may settle in
        another mode, its ``branch`` is still the drawn one). fatrop fails the retries of about
        one cold start in ten here (a failed solve seems to leave it in a bad state); IPOPT
        solved all 30 of a check, so collect branch data with IPOPT."""
        cold = initial_guess is None and self._warm is None
        if cold and self.config.cold_start == "branches":
            return self._solve_branch(obs)
        sol = self._solve(obs, initial_guess)
        if cold and not sol.success and self.config.cold_start == "state":
            first_time = sol.solve_time
            sol = self._solve(obs, "random")
            sol.solve_time += first_time
        return sol

    def _solve_branch(self, obs: np.ndarray) -> MPCSolution:
        """Cold solve of ``cold_start="branches"`` (see :meth:`solve`)."""
        ob = self._parse(obs)
        guess = self._branch_guess(ob)
        line = self._branch_line_guess(ob.q)
        elapsed = 0.0
        for attempt, pin in ((guess, True), (guess, False), (line, True)):
            sol = self._solve(obs, attempt, pin_ref=self._branch_ref if pin else None)
            elapsed += sol.solve_time
            if sol.success:
                break
        sol.solve_time = elapsed
        return sol

    def _solve(
        self, obs: np.ndarray, initial_guess: Any, pin_ref: np.ndarray | None = None
    ) -> MPCSolution:
        """One solver call; ``pin_ref`` (7,) [rad] fixes the artificial reference q^s_N."""
        ob = self._parse(obs)
        p = make_params(ob)
        w0, lam_x, lam_g, warm = self._initial_guess(ob.q, initial_guess)
        prob = self._prob
        solver = prob.solver_for(warm)
        lbx, ubx = prob.lbx, prob.ubx
        if pin_ref is not None:
            o = prob.layout.x_off[-1] + NQ
            lbx, ubx = lbx.copy(), ubx.copy()
            lbx[o : o + NQ] = ubx[o : o + NQ] = pin_ref
        args = {
            "x0": w0,
            "p": p,
            "lbx": lbx,
            "ubx": ubx,
            "lbg": prob.lbg,
            "ubg": prob.ubg,
        }
        if warm and lam_x is not None:
            args.update(lam_x0=lam_x, lam_g0=lam_g)
        t0 = time.perf_counter()
        try:
            res = solver(**args)
            stats = solver.stats()
        except RuntimeError as exc:  # casadi raises on evaluation errors
            res, stats = None, {"return_status": f"exception: {exc}"}
        elapsed = time.perf_counter() - t0
        sol = self._make_solution(ob, p, res, stats, elapsed)
        sol.branch = self.branch
        self.last_solution = sol
        return sol

    def _make_solution(
        self, ob: KukaObservation, p: np.ndarray, res: Any, stats: dict, elapsed: float
    ) -> MPCSolution:
        L = self._prob.layout
        status = stats.get("return_status", "unknown")
        if not isinstance(status, str):  # fatrop reports an integer flag (0 = success)
            status = f"fatrop_flag_{status}"
        iters = int(stats.get("iter_count", 0) or 0)
        ok = res is not None and bool(stats.get("success", False))
        if res is not None:
            w = np.asarray(res["x"]).ravel()
            lam_x, lam_g = np.asarray(res["lam_x"]).ravel(), np.asarray(res["lam_g"]).ravel()
            f = float(res["f"])
            ok = ok and all(np.all(np.isfinite(a)) for a in (w, lam_x, lam_g)) and np.isfinite(f)
        if not ok:
            self._warm = None
            N = L.N
            return MPCSolution(
                np.zeros((N, NQ)),
                np.tile(ob.q, (N + 1, 1)),
                np.zeros(NQ),
                float("inf"),
                float("inf"),
                status,
                False,
                iters,
                elapsed,
            )
        q, qs, u, _ = L.unpack(w)
        self._warm = {"w": w, "lam_x": lam_x, "lam_g": lam_g}
        x_ref = qs[-1].copy()
        dy = float(self._prob.dy_fun(x_ref, p))
        return MPCSolution(
            u.copy(),
            q.copy(),
            x_ref,
            f,
            dy,
            status,
            True,
            iters,
            elapsed,
            output_error_avg=dy / (self.config.w_pos + self.config.w_rot),
            raw={"w": w, "qs": qs},
        )

    # ------------------------------------------------------------------ initial guesses
    def _initial_guess(self, x_t: np.ndarray, guess: Any) -> tuple[np.ndarray, Any, Any, bool]:
        """Primal guess, duals and whether the warm-start options apply."""
        if isinstance(guess, np.ndarray):
            guess = {"u": guess}
        if isinstance(guess, dict):
            return self._guess_from_arrays(x_t, guess), None, None, False
        if guess not in (None, "random", "warm"):
            raise ValueError(
                f"initial_guess must be None, 'random', 'warm', an (N, 7) array "
                f"or a dict, got {guess!r}"
            )
        if guess == "warm" and self._warm is None:
            raise ValueError("no warm start available (first solve after reset or a failure)")
        if guess == "random" or (self._warm is None and self.config.cold_start == "random"):
            return self._random_guess(x_t), None, None, False
        if self._warm is None:  # cold_start == "state"
            zeros = np.zeros((self.config.horizon, NQ))
            return self._guess_from_arrays(x_t, {"u": zeros, "x_ref": x_t}), None, None, False
        return (*self._shifted_warm(x_t), True)

    def _branch_guess(self, ob: KukaObservation) -> dict:
        """Cold start of ``cold_start="branches"``: the episode's IK branch (the branch set of
        the start/target pair is computed at the first solve after reset from IK seeds of
        :data:`BRANCH_IK_SEED`, so every run of a pair sees the same K branches; the index is
        drawn from ``rng``, i.e. the reset seed; both then kept) as the artificial reference;
        u = 0 and every q at x_t (a straight-line guess towards the branch crosses collisions
        and IPOPT/fatrop then often report local infeasibility)."""
        if self._branch_ref is None:
            from ampczoo.experts.ik_branches import ik_branches

            cfg = self.config
            k = int(self.rng.integers(cfg.reference_branches))
            ik_rng = np.random.default_rng(BRANCH_IK_SEED)  # same branch set every run
            branches = ik_branches(
                ob.target_pos, ob.target_rot, cfg.reference_branches, ik_rng, q_near=ob.q,
                obstacle=ob.obstacle, threshold=cfg.branch_threshold, source=cfg.branch_source,
            )  # fmt: skip
            self.branch = k % len(branches)
            self._branch_ref = branches[self.branch]
        return {"u": np.zeros((self.config.horizon, NQ)), "x_ref": self._branch_ref}

    def _branch_line_guess(self, x_t: np.ndarray) -> dict:
        """Constant velocity x_t -> the episode's branch (clipped to the limits), branch as the
        reference: the retry of a failed branch cold start."""
        assert self._branch_ref is not None
        N, dt = self.config.horizon, self.config.dt
        u = np.clip((self._branch_ref - x_t) / (N * dt), -VELOCITY_LIMIT, VELOCITY_LIMIT)
        return {"u": np.tile(u, (N, 1)), "x_ref": self._branch_ref}

    def _random_guess(self, x_t: np.ndarray) -> np.ndarray:
        """u ~ U(+-limit), q^s ~ U(joint limits), q_k linearly interpolated x_t -> q^s."""
        L, chain, N = self._prob.layout, kuka_chain(), self.config.horizon
        u = self.rng.uniform(-VELOCITY_LIMIT, VELOCITY_LIMIT, size=(N, NQ))
        qs_end = self.rng.uniform(chain.lower, chain.upper)
        s = np.linspace(0.0, 1.0, N + 1)[:, None]
        q = x_t + s * (qs_end - x_t)
        if L.nu > NQ:  # virtual trajectory: it starts at x_t too
            return L.pack(q, q, u, u)
        return L.pack(q, np.tile(qs_end, (N + 1, 1)), u, np.zeros_like(u))

    def _guess_from_arrays(self, x_t: np.ndarray, guess: dict) -> np.ndarray:
        L, N, dt = self._prob.layout, self.config.horizon, self.config.dt
        u = np.asarray(guess["u"], float).reshape(N, NQ)
        q = np.vstack([x_t, x_t + dt * np.cumsum(u, axis=0)])
        q = np.clip(q, kuka_chain().lower, kuka_chain().upper)
        x_ref = np.asarray(guess.get("x_ref", q[-1]), float).reshape(NQ)
        if L.nu > NQ:
            return L.pack(q, q, u, u)
        return L.pack(q, np.tile(x_ref, (N + 1, 1)), u, np.zeros_like(u))

    def _shifted_warm(self, x_t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Previous primal/duals shifted by one stage (last stage repeated); X_0's q = x_t."""
        L, prev = self._prob.layout, self._warm
        w, lx, lg = prev["w"].copy(), prev["lam_x"].copy(), prev["lam_g"].copy()
        for k in range(L.N):
            src_w, dst_w = L.w_blocks(k + 1), L.w_blocks(k)
            n = min(len(src_w), len(dst_w))
            w[dst_w[:n]], lx[dst_w[:n]] = prev["w"][src_w[:n]], prev["lam_x"][src_w[:n]]
            src_g, dst_g = L.g_rows[k + 1], L.g_rows[k]
            if len(src_g) == len(dst_g):
                lg[dst_g] = prev["lam_g"][src_g]
        w[L.x_off[0] : L.x_off[0] + NQ] = x_t
        if L.nu > NQ:
            w[L.x_off[0] + NQ : L.x_off[0] + 2 * NQ] = x_t
        return np.clip(w, self._prob.lbx, self._prob.ubx), lx, lg

    # ------------------------------------------------------------------ cost of given inputs
    def cost(self, obs: np.ndarray, u_seq: np.ndarray) -> float:
        """MPC cost of an input sequence u_seq (N, 7) [rad/s]; see :meth:`cost_batch`."""
        return float(self.cost_batch(obs, np.asarray(u_seq, float)[None])[0])

    def cost_batch(self, obs: np.ndarray, U: np.ndarray) -> np.ndarray:
        """Steady-state MPC objective of L input sequences U (L, N, 7) -> (L,).

        The states are rolled out from x_t with the Euler model, the reference is taken as the
        end of the rollout (q^s = x_N, which satisfies the terminal equality), so the value is
        ``sum_k ||x_k - x_N||^2_Q + ||u_k||^2_R + d_y(y_d, h(x_N))``. Constraints (limits,
        collisions) are not included: check them separately. Inputs are not clipped."""
        ob = self._parse(obs)
        cfg = self.config
        U = np.asarray(U, float)
        if U.ndim != 3 or U.shape[1:] != (cfg.horizon, NQ):
            raise ValueError(f"U must have shape (L, {cfg.horizon}, {NQ}), got {U.shape}")
        X = ob.q + cfg.dt * np.cumsum(U, axis=1)  # x_1..x_N
        X = np.concatenate([np.broadcast_to(ob.q, (len(U), 1, NQ)), X], axis=1)
        xs = X[:, -1]
        stage = cfg.q_weight * np.sum((X[:, :-1] - xs[:, None]) ** 2, axis=(1, 2))
        stage += cfg.r_weight * np.sum(U**2, axis=(1, 2))
        return stage + output_error_batch(xs, ob.target_pos, ob.target_rot, cfg.w_pos, cfg.w_rot)


def output_error_batch(
    qs: np.ndarray, p_d: np.ndarray, R_d: np.ndarray, w_pos: float, w_rot: float
) -> np.ndarray:
    """Numpy d_y for configurations qs (L, 7) -> (L,), same formula as the NLP."""
    p, R = kuka_chain().batch_ee_pose(qs)
    E = np.asarray(R_d).T[None] @ R
    v = 0.5 * np.stack(
        [E[:, 2, 1] - E[:, 1, 2], E[:, 0, 2] - E[:, 2, 0], E[:, 1, 0] - E[:, 0, 1]], axis=-1
    )
    tr = np.trace(E, axis1=1, axis2=2)
    theta = np.arctan2(np.sqrt(np.sum(v**2, axis=-1) + THETA_EPS), 0.5 * (tr - 1.0))
    return w_pos * np.sum((p - p_d) ** 2, axis=-1) + w_rot * theta**2


def symbolic_sphere_function() -> Any:
    """CasADi Function q (7,) -> (S, 3) sphere centres, the FK used inside the NLP."""
    import casadi as ca

    q = ca.SX.sym("q", NQ)
    c = kuka_chain().sphere_centres(q, backend=ca)
    p, R = kuka_chain().ee_pose(q, backend=ca)
    return ca.Function("fk", [q], [ca.horzcat(*c).T, p, R])
