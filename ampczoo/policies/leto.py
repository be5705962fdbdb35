"""LeTO: an LSTM policy whose head is a differentiable trajectory-optimisation QP (Xu & She;
paper Eq. 5-10, §III-D; the issue's facts from the authors' code).

Encoder: e_t, h_{t+1} = LSTM(obs features_t, h_t), e_t in R^{T_p D_y}. DTO layer on the
normalised chunk y (T_p x D_y, actions divided by the joint-range scale, flattened)::

    y* = argmin 1/2 y^T (L L^T + eps I + alpha S^T A_diff^T A_diff S) y - tanh(e_t)^T y
    s.t.  p_lower <= p_t + A_inte (scale * S y) <= p_upper     (integrated positions, steps 1..T_p)
          p_lower <= p_{t+T_p} + k * scale * c_{T_p-1} <= p_upper  (terminal braking, optional)
          -v_bound <= S y <= v_bound                             (velocity, normalised)
          -a_bound <= A_diff S y <= a_bound                      (per-step change, normalised)
          -a_bound <= c_0 - c_{-1} <= a_bound                    (deployment: last executed)

L (lower triangular, one for the batch) is learned; the linear term is -tanh(e_t) (authors'
code). Positions p_t are read from the observation (``position_index``; for the KUKA envs the
joint positions, bounds = the URDF joint limits): the QP is feasible whenever p_t is inside its
bounds (Remark 1), otherwise ValueError. Training: windows of T_s consecutive samples through
the LSTM (the training loop samples windows for ``sequence_length`` > 1), MSE to the
demonstrated chunks. Deployment: receding horizon executing T_a actions per plan, hidden state
reset every T_s steps; if the continuity row makes a plan infeasible it is dropped for that
step and counted in ``n_continuity_dropped``.

Manipulation suites (robomimic, Meta-World, Push-T; DiffOG Table VII, LeTO Table I): the
trainer takes the suite's settings from the store's env id (:meth:`LeTOPolicy.config_from_data`,
the command line wins): S = every action dim but the gripper, a_bound = the DiffOG Table IX
bound (robomimic 0.1, the LeTO paper's), the suite's action normalisation (robomimic "unit":
its delta actions already lie in [-1, 1]), no position rows (the LeTO paper: "we do not apply
any position constraints" in simulation) and "raw" observation features. A config that cannot
work on a store (positions outside their bounds, "unit" actions outside [-1, 1]) is refused
with a ValueError when the trainer hands it the data's statistics.

Terminal braking (``terminal_braking``, our addition; the paper has no terminal condition):
with T_p = 6 and the change bound a plan may approach a position bound faster than the next
plan can brake, so the continuity row became infeasible next to joint limits (57 of 5 000
steps in our first benchmark). The row ``p_{t+T_p} + k scale c_{T_p-1}`` with
k = dt max(v_bound / a_bound - 1, 1) keeps a braking distance in reserve: with exact
integration the shifted previous plan, extended by one braking step, satisfies every row of
the next problem, so the DTO problem is recursively feasible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from ampczoo.core.checkpoint import PolicyConfig, PretrainedPolicy, check_obs
from ampczoo.core.onnx import GraphModule, GraphRunner, OnnxGraph
from ampczoo.nn import qp
from ampczoo.nn.features import ObservationInput, check_obs_features, unrolled_solves
from ampczoo.nn.normalization import Normalizer, action_scale
from ampczoo.wrappers.presets import SCALE_MODES, suite_preset

#: KUKA LBR iiwa 14 joint limits [rad] of the shipped URDF (tests check them).
KUKA_LOWER = (-2.96706, -2.0944, -2.96706, -2.0944, -2.96706, -2.0944, -3.05433)
KUKA_UPPER = (2.96706, 2.0944, 2.96706, 2.0944, 2.96706, 2.0944, 3.05433)


@dataclass(frozen=True)
class LeTOConfig(PolicyConfig):
    """LeTO configuration: an LSTM encoder with a differentiable trajectory-optimisation QP
    head (Xu & She; paper Eq. 5-10, see the module docstring for the QP)."""

    type: str = "leto"
    obs_dim: int = 20
    """flat observation size (set by the trainer from the data)"""
    horizon: int = 20
    """stored sequence length N of the training data [steps] (set by the trainer)"""
    obs_features: Literal["kinematic", "raw"] = "kinematic"
    """network input: "kinematic" or "raw" (as LSM, see :mod:`ampczoo.nn.features`)"""
    chunk_len: int = 6
    """T_p, length of the planned chunk [steps]"""
    seq_len: int = 12
    """T_s, training window and hidden-state refresh period [steps]"""
    exec_steps: int = 1
    """T_a, actions executed per plan"""
    action_dim: int = 7
    """D_y, action size"""
    dims: tuple[int, ...] | None = None
    """constrained action dimensions, the selection matrix S (None = all)"""
    hidden_dim: int = 256
    """hidden size of the LSTM"""
    num_layers: int = 2
    """number of stacked LSTM layers"""
    alpha: float = 1.0
    """smoothing weight alpha of the QP (the alpha S^T A_diff^T A_diff S term)"""
    eps: float = 1e-4
    """eps of the QP matrix L L^T + eps I"""
    l_init: float = 1.0
    """initial L = l_init I. The unconstrained output is y = Q^-1 tanh(e) with Q >= L L^T, so
    at l_init = 1 a chunk needs |tanh(e)| >= |y| and the saturated velocities of the
    demonstrations (|y| = 1) are out of reach; a smaller l_init leaves tanh room (see
    docs/results/kuka.md, LeTO on the KUKA task)"""
    accel_bound: float = 0.1
    """a_bound, per-step change bound (normalised units)"""
    vel_bound: float = 1.0
    """v_bound, bound of |S y| (normalised units)"""
    dt: float = 0.1
    """step of the chunk, used to integrate the positions [s]"""
    scale_mode: Literal["max_abs", "min_max", "unit"] = "max_abs"
    """action normalisation y = u / scale: "max_abs" = per-dim max |u_j| of the train split
    (the KUKA joint range), "min_max" = half the data range per dim, "unit" = none (robomimic:
    actions already in [-1, 1], bounds raw as in the LeTO / DiffOG papers)"""
    position_index: int | None = 0
    """first observation index of the positions of the selected dims (None = no position
    constraints; the manipulation suites)"""
    position_lower: tuple[float, ...] | None = KUKA_LOWER
    """lower position bounds of the selected dims, (D_c,) [rad] (the KUKA joint limits)"""
    position_upper: tuple[float, ...] | None = KUKA_UPPER
    """upper position bounds of the selected dims, (D_c,) [rad] (the KUKA joint limits)"""
    terminal_braking: bool = True
    """add the terminal braking rows that keep the QP recursively feasible (our addition; see
    the module docstring)"""
    backend: Literal["proxsuite", "cvxpylayers"] = "proxsuite"
    """QP backend (see :mod:`ampczoo.nn.qp`)"""

    def __post_init__(self) -> None:
        for name in (
            "obs_dim",
            "horizon",
            "chunk_len",
            "seq_len",
            "exec_steps",
            "action_dim",
            "hidden_dim",
            "num_layers",
        ):
            value = getattr(self, name)
            if not isinstance(value, int | np.integer) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        check_obs_features(self.obs_features, self.obs_dim)
        if self.chunk_len > self.horizon or self.exec_steps > self.chunk_len:
            raise ValueError("need exec_steps <= chunk_len <= horizon")
        if not (
            self.alpha >= 0
            and self.eps > 0
            and self.l_init > 0
            and self.accel_bound > 0
            and self.vel_bound > 0
            and self.dt > 0
        ):
            raise ValueError("need alpha >= 0 and eps, l_init, accel_bound, vel_bound, dt > 0")
        if self.backend not in qp.BACKENDS:
            raise ValueError(f"backend must be one of {qp.BACKENDS}")
        if self.scale_mode not in SCALE_MODES:
            raise ValueError(f"scale_mode must be one of {SCALE_MODES}, got {self.scale_mode!r}")
        n_c = self.action_dim if self.dims is None else len(self.dims)
        qp.selection_matrix(self.action_dim, self.dims)  # validates dims
        if self.position_index is not None:
            lo, hi = self.position_lower, self.position_upper
            if lo is None or hi is None or len(lo) != n_c or len(hi) != n_c:
                raise ValueError(f"position_lower/upper need {n_c} values each")
            if any(a >= b for a, b in zip(lo, hi, strict=True)):
                raise ValueError("position_lower must be < position_upper")
            if self.position_index + n_c > self.obs_dim:
                raise ValueError("position_index + D_c exceeds obs_dim")


class LeTOPolicy(PretrainedPolicy):
    """LSTM + DTO layer; ``act(obs)`` runs it receding-horizon (see the module docstring)."""

    name = "leto"
    config_class = LeTOConfig
    batched: ClassVar[bool] = False  # recurrent deployment: one observation per act
    config: LeTOConfig

    def __init__(self, config: LeTOConfig | None = None):
        super().__init__(config or LeTOConfig())
        c = self.config
        n = c.chunk_len * c.action_dim
        self.normalizer = Normalizer(c.obs_dim, c.horizon, c.action_dim)
        self.obs_input = ObservationInput(c.obs_dim, c.obs_features)
        self.inp = nn.Linear(self.obs_input.dim, c.hidden_dim)
        self.lstm = nn.LSTM(c.hidden_dim, c.hidden_dim, c.num_layers, batch_first=True)
        self.out = nn.Linear(c.hidden_dim, n)
        self.L = nn.Parameter(c.l_init * torch.eye(n))
        self.register_buffer("action_scale", torch.ones(c.action_dim))
        S1 = qp.selection_matrix(c.action_dim, c.dims)
        self.dc = S1.shape[0]
        S = qp.block_diag_repeat(S1, c.chunk_len)
        self.register_buffer("S", S, persistent=False)
        self.register_buffer("D", qp.diff_matrix(c.chunk_len, self.dc) @ S, persistent=False)
        # positions after each of the T_p planned steps: p_{t+k+1} - p_t = dt sum_{j<=k} v_j
        A_inte = qp.integration_matrix(c.chunk_len + 1, self.dc, c.dt)[:, : c.chunk_len * self.dc]
        self.register_buffer("A_inte", A_inte, persistent=False)
        #: plans whose continuity row was dropped (infeasible), over the policy's lifetime
        self.n_continuity_dropped = 0
        self.reset()

    @classmethod
    def example_config(cls) -> LeTOConfig:
        """A 1 x 16 LSTM planning 3-step chunks (tests and docs)."""
        return LeTOConfig(horizon=4, chunk_len=3, seq_len=4, hidden_dim=16, num_layers=1)

    @property
    def sequence_length(self) -> int:
        """T_s: the training loop feeds windows of this many consecutive samples."""
        return self.config.seq_len

    @staticmethod
    def dataset_kwargs(fields: dict[str, Any]) -> dict[str, Any]:
        """The training windows' chunks: T_p = ``chunk_len`` actions from stores of per-step
        actions (stores of planned sequences u_seq keep their stored length N)."""
        return {"history": 0, "action_horizon": int(fields["chunk_len"])}

    @classmethod
    def config_from_data(cls, fields: dict[str, Any], attrs: dict[str, Any]) -> dict[str, Any]:
        """Config fields the trainer takes from the data (before the command line's): for a
        store of a manipulation suite (``suite_preset`` of its env id) S = all dims but the
        gripper, a_bound = the suite's bound, its action normalisation, no position rows,
        "raw" observation features; {} for other stores (the KUKA defaults)."""
        env_id = attrs.get("env")
        preset = suite_preset(env_id) if isinstance(env_id, str) else None
        action_dim = fields.get("action_dim")
        if preset is None or not isinstance(action_dim, int):
            return {}
        return {
            "dims": preset.dims(action_dim),
            "accel_bound": preset.bound,
            "scale_mode": preset.scale_mode,
            "dt": preset.dt,
            "position_index": None,
            "position_lower": None,
            "position_upper": None,
            "obs_features": "raw",
        }

    # ------------------------------------------------------------------ normalisation
    def set_normalization(self, stats: dict[str, dict[str, np.ndarray]]) -> None:
        """Observation z-scores and the action scale of ``config.scale_mode`` from the train
        split's statistics; ValueError when the config cannot work on this data (see
        :meth:`check_data`)."""
        self.check_data(stats)
        self.normalizer.set_stats(stats, "joint_range")
        u = stats["u_seq"]
        D = self.config.action_dim
        lo = np.asarray(u["min"], dtype=np.float64).reshape(-1, D).min(0)
        hi = np.asarray(u["max"], dtype=np.float64).reshape(-1, D).max(0)
        if self.config.scale_mode == "max_abs":
            scale = np.asarray(action_scale(u, "joint_range")[1])[0]
        elif self.config.scale_mode == "min_max":
            scale = np.maximum((hi - lo) / 2.0, 1e-6)
        else:
            scale = np.ones(D)
        self.action_scale.copy_(torch.as_tensor(scale, dtype=torch.float32))

    def check_data(self, stats: dict[str, dict[str, np.ndarray]]) -> None:
        """ValueError naming why this config cannot work on data with statistics ``stats``
        ({"obs", "u_seq"} each with "min" and "max"): observed positions (``position_index``)
        outside the position bounds (the DTO problem would be infeasible, or would bound
        something that is not a position: manipulation stores need position_index None), or
        "unit" actions outside the velocity bound."""
        c = self.config
        D = c.action_dim
        u_max = np.abs(np.concatenate([stats["u_seq"]["min"], stats["u_seq"]["max"]]))
        u_max = u_max.reshape(-1, D).max(0)
        if c.scale_mode == "unit":
            dims = self.selected_dims()
            if np.any(u_max[dims] > c.vel_bound + 1e-6):
                raise ValueError(
                    f"scale_mode 'unit' bounds the raw actions by vel_bound {c.vel_bound}, but "
                    f"the data's max |u| per dim is {np.round(u_max, 4).tolist()}: use "
                    "scale_mode 'max_abs' or 'min_max' for actions not normalised to [-1, 1]"
                )
        if c.position_index is None:
            return
        i, n = c.position_index, self.dc
        o_lo = np.asarray(stats["obs"]["min"], dtype=np.float64)[i : i + n]
        o_hi = np.asarray(stats["obs"]["max"], dtype=np.float64)[i : i + n]
        lo, hi = np.asarray(c.position_lower), np.asarray(c.position_upper)
        if np.any(o_lo < lo - 1e-5) or np.any(o_hi > hi + 1e-5):
            raise ValueError(
                f"observations [{i}:{i + n}] of the data range over [{np.round(o_lo, 3).tolist()}, "
                f"{np.round(o_hi, 3).tolist()}], outside position_lower/upper: they are not the "
                "bounded positions (the DTO problem would be infeasible); set position_index "
                "to the positions' first index, or None for no position rows (manipulation "
                "suites)"
            )

    # ------------------------------------------------------------------ model
    def encode(self, obs: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        """obs (B, T, obs_dim) raw -> (e (B, T, n), LSTM state)."""
        B, T, _ = obs.shape
        flat = obs.reshape(B * T, -1)
        x = self.inp(self.obs_input(flat, self.normalizer.obs(flat))).view(B, T, -1)
        h, state = self.lstm(torch.relu(x), state)
        return self.out(h), state

    def dto(
        self,
        e: torch.Tensor,
        obs: torch.Tensor,
        prev: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """DTO layer: e (M, n), obs (M, obs_dim) raw, prev (M, D_c) normalised last executed
        action or None -> normalised chunks y (M, T_p, D_a)."""
        c, M = self.config, len(e)
        G, lo, hi = self.constraint_rows(obs, prev)
        p = -torch.tanh(e).double()
        y = qp.solve_qp(self.qp_matrix().expand(M, -1, -1), p, G, lo, hi, backend=c.backend)
        return y.to(e.dtype).view(M, c.chunk_len, c.action_dim)

    def qp_matrix(self) -> torch.Tensor:
        """The DTO problem's Hessian (n, n), float64: L L^T + eps I + alpha S^T A_diff^T
        A_diff S (one for every sample)."""
        c = self.config
        Lt = torch.tril(self.L).double()
        n = Lt.shape[0]
        Q = Lt @ Lt.T + c.eps * torch.eye(n, dtype=torch.float64, device=Lt.device)
        return Q + c.alpha * self.D.T @ self.D

    def constraint_rows(
        self, obs: torch.Tensor, prev: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The DTO problem's constraints lo <= G y <= hi for observations obs (M, obs_dim)
        raw and the normalised last executed action prev (M, D_c) or None: G (rows, n),
        lo / hi (M, rows), float64 (velocity, per-step change, positions, continuity)."""
        c, M, dev = self.config, len(obs), obs.device
        rows = [(self.S, c.vel_bound), (self.D, c.accel_bound)]
        G = torch.cat([r[0] for r in rows])
        hi = torch.cat(
            [
                torch.full((r[0].shape[0],), float(r[1]), dtype=torch.float64, device=dev)
                for r in rows
            ]
        ).expand(M, -1)
        lo = -hi
        if c.position_index is not None:
            G_pos, p_lo, p_hi = self.position_rows(obs)
            G, lo, hi = torch.cat([G, G_pos]), torch.cat([lo, p_lo], 1), torch.cat([hi, p_hi], 1)
        if prev is not None:
            G = torch.cat([self.S[: self.dc], G])
            lo = torch.cat([prev.double() - c.accel_bound, lo], 1)
            hi = torch.cat([prev.double() + c.accel_bound, hi], 1)
        return G, lo, hi

    def position_rows(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(G_pos (rows, n), lower (M, rows), upper (M, rows)) of p_t + A_inte (scale S y),
        steps 1..T_p, plus the terminal braking rows; ValueError when a current position is
        outside its bounds (infeasible, Remark 1)."""
        c = self.config
        scale = self.action_scale.double()[torch.as_tensor(self.selected_dims())]
        velocity = torch.diag(scale.repeat(c.chunk_len)) @ self.S  # raw selected velocities
        G = self.A_inte @ velocity
        if c.terminal_braking:
            k = c.dt * max(c.vel_bound / c.accel_bound - 1.0, 1.0)
            G = torch.cat([G, G[-self.dc :] + k * velocity[-self.dc :]])
        pos = obs[:, c.position_index : c.position_index + self.dc].double()
        lo = torch.tensor(c.position_lower, dtype=torch.float64, device=obs.device)
        hi = torch.tensor(c.position_upper, dtype=torch.float64, device=obs.device)
        if bool(((pos < lo - 1e-5) | (pos > hi + 1e-5)).any()):
            raise ValueError(
                "LeTO: current position outside the position bounds (the DTO problem is infeasible)"
            )
        pos = torch.minimum(torch.maximum(pos, lo), hi)  # float32 round-off at a bound
        reps = G.shape[0] // self.dc
        return G, (lo - pos).repeat(1, reps), (hi - pos).repeat(1, reps)

    def selected_dims(self) -> list[int]:
        return (
            list(range(self.config.action_dim))
            if self.config.dims is None
            else list(self.config.dims)
        )

    # ------------------------------------------------------------------ training
    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """batch {"obs": (B, T_s, obs_dim), "u_seq": (B, T_s, N, D_y)} (or without the T_s
        axis) -> MSE between the DTO output and the demonstrated chunk (normalised)."""
        obs, u = batch["obs"], batch["u_seq"]
        if obs.ndim == 2:
            obs, u = obs[:, None], u[:, None]
        c = self.config
        e, _ = self.encode(obs)
        B, T = obs.shape[:2]
        y = self.dto(e.reshape(B * T, -1), obs.reshape(B * T, -1))
        target = u[:, :, : c.chunk_len].reshape(B * T, c.chunk_len, -1) / self.action_scale
        loss = torch.mean((y - target) ** 2)
        return loss, {"mse": float(loss.detach())}

    # ------------------------------------------------------------------ deployment
    def reset(self, seed: int | None = None) -> None:
        """Clear the LSTM state, the plan and the last executed action."""
        self._state: Any = None
        self._steps = 0
        self._planned: list[np.ndarray] = []
        self.prev_action: np.ndarray | None = None

    def act_chunk(self, obs: Any) -> np.ndarray:
        """Plan for one observation (D,) -> chunk (T_p, D_y) raw; advances the LSTM state
        (reset every T_s steps) and uses the continuity constraint to the last executed
        action."""
        return self._plan(obs, self._encode_torch)

    def _encode_torch(self, o: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """o (1, obs_dim) raw, LSTM state -> (e (1, n), next state) with the torch modules."""
        e, state = self.encode(o[:, None], state)
        return e[:, 0], state

    @torch.no_grad()
    def _plan(
        self, obs: Any, encode: Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]
    ) -> np.ndarray:
        """:meth:`act_chunk` with the encoder step ``encode`` (torch or the ONNX graph)."""
        arr, batched = check_obs(obs, self.config.obs_dim)
        if batched:
            raise ValueError("LeTO deployment is recurrent: pass one observation (D,)")
        if self._steps % self.config.seq_len == 0:
            self._state = None
        o = torch.from_numpy(arr).to(self.device)
        e, self._state = encode(o, self._state)
        self._steps += 1
        scale = self.action_scale
        prev = None
        if self.prev_action is not None:
            prev = torch.as_tensor(self.prev_action, dtype=torch.float32, device=self.device)
            prev = (prev / scale)[self.selected_dims()][None]
        try:
            y = self.dto(e, o, prev)
        except ValueError:
            if prev is None:
                raise
            self.n_continuity_dropped += 1
            y = self.dto(e, o, None)
        return (y[0] * scale).double().cpu().numpy()

    def act(self, obs: Any) -> np.ndarray:
        """Receding horizon: re-plan every T_a steps, execute the plan's next action (D_y,).
        Every observation is validated (ValueError), also between re-plans."""
        return self._act(obs, self.act_chunk)

    def _act(self, obs: Any, act_chunk: Callable[[Any], np.ndarray]) -> np.ndarray:
        if check_obs(obs, self.config.obs_dim)[1]:
            raise ValueError("LeTO deployment is recurrent: pass one observation (D,)")
        if not self._planned:
            chunk = act_chunk(obs)
            self._planned = list(chunk[: self.config.exec_steps])
        action = self._planned.pop(0)
        self.prev_action = action
        return action.copy()

    # ------------------------------------------------------------------ ONNX
    def onnx_graph(self) -> OnnxGraph:
        """One encoder step: obs (B, obs_dim) raw, h (layers, B, H), c (layers, B, H) the
        LSTM state -> e (B, n) the QP's linear-term input, h_next, c_next: features,
        normalisation, input layer, LSTM, output layer. The DTO layer (a QP whose bounds
        depend on the observed positions and the last executed action) is solved in Python
        by ProxSuite, as DiffOG's: it is not a graph."""

        def graph(obs, h, c):  # type: ignore[no-untyped-def]
            with unrolled_solves(self):
                e, (h_next, c_next) = self.encode(obs[:, None], (h, c))
            return e[:, 0], h_next, c_next

        c = self.config
        state = torch.zeros(c.num_layers, 2, c.hidden_dim)
        example = (self.normalizer.obs_mean.expand(2, -1).clone(), state, state.clone())
        axes = {name: {0: "B"} for name in ("obs", "e")}
        axes.update({name: {1: "B"} for name in ("h", "c", "h_next", "c_next")})
        names = (["obs", "h", "c"], ["e", "h_next", "c_next"])
        return OnnxGraph(GraphModule(self, graph), example, *names, axes)

    def act_chunk_onnx(self, run: GraphRunner, obs: Any) -> np.ndarray:
        """:meth:`act_chunk` with the encoder step of :meth:`onnx_graph` run by ``run``."""

        def encode(o: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
            c = self.config
            if state is None:
                zeros = np.zeros((c.num_layers, len(o), c.hidden_dim), np.float32)
                state = (zeros, zeros)
            e, h, cell = run({"obs": o.cpu().numpy(), "h": state[0], "c": state[1]})
            return torch.from_numpy(e).to(self.device), (h, cell)

        return self._plan(obs, encode)

    def act_onnx(self, run: GraphRunner, obs: Any) -> np.ndarray:
        """:meth:`act` with the encoder step of :meth:`onnx_graph` run by ``run``."""
        return self._act(obs, lambda o: self.act_chunk_onnx(run, o))
