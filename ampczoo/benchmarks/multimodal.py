"""``ampczoo bench multimodal``: how multi-modal the KUKA MPC demonstrations are (issue 15).

For ``pairs`` held-out start/target pairs of ``DAMPC-KukaTrackObstacle-v0`` with
``obstacle_placement="between"`` (reset seeds ``seed`` ..), and for every expert cold start
in ``cold_starts``: run the MPC expert's first solve ``runs`` times per pair (expert reset
seeds drawn from (pair seed, run); with ``cold_start="branches"`` the run's seed draws the IK
branch), cluster the open-loop input sequences u (N, 7) of the successful runs
(agglomerative clustering, complete linkage, scikit-learn; distance the RMS over the horizon
of the joint-velocity difference ``||U_a - U_b||_F / sqrt(N)`` [rad/s], cut at
``threshold``) and count the clusters: the distinct modes of that pair.

With ``policies`` (zoo names or checkpoint folders) it also measures each policy's first
action at the pair's start against the modes of the ``branches`` runs: the error to the
*nearest* mode's u_0 and to the modes' mean (what an L2 regressor converges to) [rad/s].

With ``branch_sources`` the ``branches`` cold start is run once per IK seed source of its
branches (``MPCConfig.branch_source``: "dls" = uniform seeds, "ikdiffuser" = samples of the
zoo's ``ikdiffuser-kuka``, both refined by DLS; rows ``branches`` and
``branches (ikdiffuser)``), and each pair also gets the number of distinct IK branches the
seeds find before the cap K (``IK branches``: :func:`ampczoo.experts.ik_branches.ik_branches`
with k = ``MAX_BRANCHES``, the expert's seed and threshold): what the seed source changes.

Writes ``runs/bench-multimodal-<date>/`` (markdown + CSV) and prints the command. Example (the
numbers of docs/results/kuka.md, "Multi-modal demonstrations")::

    ampczoo bench multimodal --pairs 20 --runs 6
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from ampczoo.benchmarks.common import command_line, make_run_dir, write_table

ColdStart = Literal["random", "state", "branches"]
BranchSource = Literal["dls", "ikdiffuser"]
ENV_ID = "DAMPC-KukaTrackObstacle-v0"
#: k of the uncapped branch count (``IK branches`` column): more than any seed set finds.
MAX_BRANCHES = 1000


@dataclass(frozen=True)
class MultimodalBenchConfig:
    """``ampczoo bench multimodal``: distinct MPC modes per start/target pair, and policies'
    first-action error to the nearest mode."""

    pairs: int = 20
    """held-out start/target pairs (env reset seeds seed .. seed+pairs-1)"""
    runs: int = 6
    """first solves per pair and cold start (expert reset seeds from (pair seed, run))"""
    cold_starts: tuple[ColdStart, ...] = ("state", "branches")
    """expert cold starts to compare ("state": the shipped zoo's data; "branches": the
    multi-modal data; "random": the paper's)"""
    reference_branches: int = 3
    """K of the "branches" cold start"""
    branch_sources: tuple[BranchSource, ...] = ("dls",)
    """IK seeds of the "branches" cold start's branches, one row each ("dls": uniform seeds;
    "ikdiffuser": samples of the zoo's ikdiffuser-kuka; ``MPCConfig.branch_source``)"""
    threshold: float = 0.3
    """RMS distance [rad/s] below which two open-loop input sequences are one mode"""
    obstacle_placement: Literal["fixed", "between"] = "between"
    """obstacle placement of the env"""
    solver: Literal["ipopt", "fatrop"] = "ipopt"
    """the expert's NLP solver"""
    policies: tuple[str, ...] = ()
    """zoo names / checkpoint folders whose first action is compared with the modes"""
    seed: int = 50_000
    """reset seed of the first pair (the collections use episode seeds from SeedSequence, not
    these)"""
    out: str = "runs"
    """parent folder of the run folder bench-multimodal-<date>/"""

    def __post_init__(self) -> None:
        for name in ("pairs", "runs", "reference_branches"):
            v = getattr(self, name)
            if isinstance(v, bool) or int(v) != v or v < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {v}")
        if not self.threshold > 0:
            raise ValueError(f"threshold must be > 0 [rad/s], got {self.threshold}")
        if not self.cold_starts:
            raise ValueError("cold_starts must name at least one cold start")
        if self.policies and "branches" not in self.cold_starts:
            raise ValueError("policies are compared with the modes of the 'branches' runs")
        if not self.branch_sources:
            raise ValueError("branch_sources must name at least one source")
        for src in self.branch_sources:
            if src not in ("dls", "ikdiffuser"):
                raise ValueError(f"unknown branch source {src!r}; choose 'dls' or 'ikdiffuser'")

    def expert_labels(self) -> list[tuple[str, ColdStart, BranchSource]]:
        """(row label, cold start, branch source) of every expert compared: one per cold
        start, the "branches" one once per branch source (label ``branches`` for "dls",
        ``branches (<source>)`` otherwise)."""
        out: list[tuple[str, ColdStart, BranchSource]] = []
        for cs in self.cold_starts:
            for src in self.branch_sources if cs == "branches" else ("dls",):
                out.append((branch_label(cs, src), cs, src))
        return out


def branch_label(cold_start: str, source: str) -> str:
    """Row label of an expert: the cold start, with the branch source unless it is "dls"."""
    return cold_start if cold_start != "branches" or source == "dls" else f"branches ({source})"


def count_modes(U: np.ndarray, threshold: float) -> tuple[int, np.ndarray]:
    """Distinct modes of open-loop sequences U (R, N, nu): (number of clusters, labels (R,)).

    Complete-linkage agglomerative clustering (scikit-learn) on the RMS distance
    ``||U_a - U_b||_F / sqrt(N)`` cut at ``threshold``; one sequence is one mode, none is 0."""
    U = np.asarray(U, float)
    if U.ndim != 3:
        raise ValueError(f"U must have shape (R, N, nu), got {U.shape}")
    if len(U) < 2:
        return len(U), np.zeros(len(U), dtype=int)
    from sklearn.cluster import AgglomerativeClustering

    X = U.reshape(len(U), -1) / math.sqrt(U.shape[1])
    model = AgglomerativeClustering(
        n_clusters=None, distance_threshold=threshold, linkage="complete"
    ).fit(X)
    return int(model.n_clusters_), model.labels_


def mode_means(U: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean sequence of every cluster: (M, N, nu) from U (R, N, nu) and labels (R,)."""
    return np.stack([U[labels == c].mean(axis=0) for c in np.unique(labels)])


def first_action_errors(action: np.ndarray, modes: np.ndarray) -> tuple[float, float]:
    """(error to the nearest mode's first input, error to the modes' mean first input)
    [rad/s] of an action (nu,) given modes (M, N, nu)."""
    u0 = modes[:, 0]
    nearest = float(np.min(np.linalg.norm(u0 - action, axis=-1)))
    return nearest, float(np.linalg.norm(u0.mean(axis=0) - action))


def run_seed(pair_seed: int, run: int) -> int:
    """Expert reset seed of run ``run`` of a pair (a 31-bit int from (pair seed, run))."""
    return int(np.random.SeedSequence((pair_seed, run)).generate_state(1)[0] >> 1)


def first_solves(expert, obs: np.ndarray, pair_seed: int, runs: int) -> tuple[np.ndarray, list]:
    """Open-loop sequences (R', N, 7) of the successful first solves of ``runs`` expert
    resets, and the branch index of each (-1 outside the branch mode)."""
    U, branches = [], []
    for r in range(runs):
        expert.reset(seed=run_seed(pair_seed, r))
        sol = expert.solve(obs)
        if sol.success:
            U.append(sol.u)
            branches.append(int(sol.branch))
    return (np.stack(U) if U else np.zeros((0, expert.horizon, 7))), branches


def run_multimodal_benchmark(cfg: MultimodalBenchConfig) -> Path:
    """Run the benchmark; returns the run folder."""
    import gymnasium as gym

    import ampczoo.envs  # noqa: F401  (registers the env ids)
    from ampczoo.experts import MPCConfig, MPCExpert

    out = make_run_dir("bench-multimodal", cfg.out)
    env = gym.make(ENV_ID, control_dt=0.1, obstacle_placement=cfg.obstacle_placement)
    experts = {
        label: MPCExpert(
            MPCConfig(
                obstacle=True,
                solver=cfg.solver,
                cold_start=cs,
                reference_branches=cfg.reference_branches,
                branch_source=src,
            )
        )
        for label, cs, src in cfg.expert_labels()
    }
    policy_label = next((lab for lab, cs, _ in cfg.expert_labels() if cs == "branches"), None)
    policies = {name: _load(name) for name in cfg.policies}
    per_pair, errors = [], {name: [] for name in policies}
    for i in range(cfg.pairs):
        pair_seed = cfg.seed + i
        obs, _ = env.reset(seed=pair_seed)
        row: dict = {"pair seed": pair_seed}
        for cs, expert in experts.items():
            U, branches = first_solves(expert, obs, pair_seed, cfg.runs)
            n, labels = count_modes(U, cfg.threshold)
            row[f"{cs}: solved"] = len(U)
            row[f"{cs}: modes"] = n
            if expert.config.cold_start == "branches":
                row[f"{cs}: branches drawn"] = len(set(branches)) if len(U) else 0
                row[f"{cs}: IK branches"] = count_ik_branches(expert, obs)
            if cs == policy_label and len(U):
                modes = mode_means(U, labels)
                for name, policy in policies.items():
                    policy.reset(seed=pair_seed)
                    act = np.asarray(policy.act(obs), float).reshape(-1)
                    errors[name].append(first_action_errors(act, modes))
        per_pair.append(row)
    env.close()
    md = write_table(per_pair, out, "modes_per_pair", title="Distinct modes per start/target pair")
    md += "\n" + write_table(_summary(per_pair, cfg), out, "modes", title="Distinct modes, summary")
    if policies:
        md += "\n" + write_table(
            _error_rows(errors), out, "first_action", title="First action vs the modes"
        )
    (out / "README.md").write_text(f"Command: `{command_line()}`\n\n{md}")
    print(md)
    print(f"wrote {out}\ncommand: {command_line()}")
    return out


def count_ik_branches(expert, obs: np.ndarray) -> int:
    """Distinct IK branches of the pair's target that the expert's branch seeds find, before
    the cap K (the expert's seed set, source, obstacle and threshold; k = ``MAX_BRANCHES``)."""
    from ampczoo.experts.ik_branches import ik_branches
    from ampczoo.experts.mpc import BRANCH_IK_SEED

    ob, cfg = expert._parse(obs), expert.config
    return len(
        ik_branches(
            ob.target_pos, ob.target_rot, MAX_BRANCHES, np.random.default_rng(BRANCH_IK_SEED),
            q_near=ob.q, obstacle=ob.obstacle, threshold=cfg.branch_threshold,
            source=cfg.branch_source,
        )
    )  # fmt: skip


def _load(name: str):
    from ampczoo.core.registry import load_policy

    return load_policy(name, device="cpu")


def _summary(per_pair: list[dict], cfg: MultimodalBenchConfig) -> list[dict]:
    rows = []
    for cs, _, _ in cfg.expert_labels():
        modes = np.array([r[f"{cs}: modes"] for r in per_pair])
        solved = np.array([r[f"{cs}: solved"] for r in per_pair])
        found = [r[f"{cs}: IK branches"] for r in per_pair if f"{cs}: IK branches" in r]
        rows.append(
            {
                "cold start": cs,
                "pairs": len(per_pair),
                "runs per pair": cfg.runs,
                "solved runs [%]": 100.0 * solved.sum() / (cfg.runs * len(per_pair)),
                "modes mean": float(modes.mean()),
                "modes median": float(np.median(modes)),
                "pairs with >= 2 modes [%]": 100.0 * float(np.mean(modes >= 2)),
                "IK branches found, mean": float(np.mean(found)) if found else float("nan"),
                "threshold [rad/s]": cfg.threshold,
            }
        )
    return rows


def _error_rows(errors: dict[str, list[tuple[float, float]]]) -> list[dict]:
    rows = []
    for name, errs in errors.items():
        e = np.array(errs)
        rows.append(
            {
                "policy": name,
                "pairs": len(e),
                "nearest-mode error mean [rad/s]": float(e[:, 0].mean()),
                "nearest-mode error median [rad/s]": float(np.median(e[:, 0])),
                "error to the modes' mean, mean [rad/s]": float(e[:, 1].mean()),
            }
        )
    return rows
