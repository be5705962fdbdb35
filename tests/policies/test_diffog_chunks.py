"""DiffOG on Diffusion Policy chunks: the layout check at wrap time, T_a executed actions with
the continuity row on the chunk's current row, time-varying bounds and the magnitude bound of
Table X in the same QP (every output within 1e-6 of its bounds), the scale modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import tiny_diffusion_policy

from ampczoo.policies.diffog import DiffOG, DiffOGConfig
from ampczoo.policies.diffusion_policy import DiffusionPolicy
from ampczoo.wrappers.chunk import BoundSchedule

S = (0, 1, 2, 3, 4, 5)
SMALL = dict(embed_dim=16, num_heads=2, num_layers=1, ff_dim=16, dropout=0.0)


def tiny_dp(action_dim: int = 7) -> DiffusionPolicy:
    return tiny_diffusion_policy(action_dim).eval()


def refiner_config(**kw) -> DiffOGConfig:
    base = dict(horizon=8, chunk_len=8, chunk_offset=1, action_dim=7, dims=S, q_mode="static")
    base.update(SMALL)
    return DiffOGConfig(**{**base, **kw})


def test_wrap_refuses_a_refiner_that_does_not_fit_the_base():
    dp = tiny_dp()
    with pytest.raises(ValueError, match=r"8 rows.*row 1.*chunk_len 16"):
        DiffOG.wrap(dp, refiner_config(horizon=16, chunk_len=16))
    with pytest.raises(ValueError, match=r"row 1.*chunk_offset 0"):
        DiffOG.wrap(dp, refiner_config(chunk_offset=0))
    with pytest.raises(ValueError, match=r"7 dimensions.*in 6"):
        DiffOG.wrap(dp, refiner_config(action_dim=6, dims=(0, 1)))
    with pytest.raises(ValueError, match=r"T_a=8.*T_p=8"):
        DiffOG.wrap(dp, refiner_config(), execute_steps=8)
    for bad in (
        dict(chunk_offset=8),
        dict(max_abs=0.0),
        dict(max_abs=-1.0),
        dict(scale_mode="z"),
        dict(bound=0.0),
        dict(bound=-0.1),
    ):
        with pytest.raises(ValueError):
            refiner_config(**bad)


def test_diffog_on_a_diffusion_policy_executes_t_a_within_the_bounds():
    dp = tiny_dp()
    calls = []
    inner = dp.sample
    dp.sample = lambda h, i=None: calls.append(1) or inner(h, i)  # type: ignore
    pol = DiffOG.wrap(dp, refiner_config(q_mode="static", bound=0.05))
    assert pol.execute_steps == 4
    obs = np.random.default_rng(0).normal(size=(12, 4))
    pol.reset(seed=0)
    actions = np.array([pol.act(o) for o in obs])
    assert len(calls) == 3
    change = np.abs(np.diff(actions[:, list(S)], axis=0))
    assert change.max() <= 0.05 + 1e-6  # inside chunks and across them (continuity row)
    # the executed actions are rows 1..4 of the refined full chunk
    chunk = pol.last_chunk
    np.testing.assert_allclose(actions[8:12], chunk[:4])


@pytest.mark.parametrize("q_mode", ["static", "transformer"])
def test_every_qp_output_is_within_its_bounds(q_mode):
    """Time-varying bounds per row (Table VIII), the continuity row on row 1, and the
    magnitude bound of Table X: all hold to 1e-6 on jumpy chunks."""
    torch.manual_seed(0)
    m = DiffOG(refiner_config(q_mode=q_mode, max_abs=0.5)).eval()
    if q_mode == "transformer":
        torch.nn.init.normal_(m.q_encoder.head.weight, std=0.05)
    rows = BoundSchedule((0.05, 0.1, 0.2, 0.3), phase_steps=2).rows(0, 8, offset=1)
    rng = np.random.default_rng(0)
    for _ in range(5):
        chunk = rng.uniform(-1.0, 1.0, size=(8, 7)) + 2.0 * rng.choice([-1.0, 1.0], size=7)
        prev = np.concatenate([rng.uniform(-0.5, 0.5, 6), [1.0]])
        y = m.refine(chunk, prev, bound=rows[:, None], continuity_row=1)[:, list(S)]
        d = np.abs(np.diff(y, axis=0))
        assert np.all(d <= rows[1:, None] + 1e-6)
        assert np.all(np.abs(y[1] - prev[list(S)]) <= rows[1] + 1e-6)
        assert np.abs(y).max() <= 0.5 + 1e-6
        assert np.abs(y).max() >= 0.5 - 1e-3  # the magnitude bound is active, not slack


def test_magnitude_bound_trains_through_the_qp():
    torch.manual_seed(0)
    m = DiffOG(refiner_config(q_mode="transformer", max_abs=0.3))
    a = torch.rand(2, 8, 7) * 2 - 1
    y = m.refine_normalized(a)
    assert y[..., list(S)].abs().max() <= 0.3 + 1e-5
    ((y - a) ** 2).mean().backward()
    assert m.q_encoder.head.weight.grad is not None
    assert torch.isfinite(m.q_encoder.head.weight.grad).all()


@pytest.mark.parametrize(
    "mode, expected", [("max_abs", [3.0, 1.0]), ("min_max", [2.0, 0.5]), ("unit", [1.0, 1.0])]
)
def test_scale_modes(mode, expected):
    m = DiffOG(DiffOGConfig(action_dim=2, chunk_len=2, horizon=2, scale_mode=mode, **SMALL))
    lo, hi = np.array([[-1.0, 0.0], [-3.0, 0.0]]), np.array([[1.0, 1.0], [1.0, 0.5]])
    m.set_normalization({"u_seq": {"min": lo, "max": hi}})
    np.testing.assert_allclose(m.action_scale.numpy(), expected)


def test_make_constrained_diffog_takes_the_table_x_magnitude_bound():
    from ampczoo.policies.constrained import make_constrained

    dp = tiny_dp()
    pol = make_constrained(
        "diffog",
        dp,
        "Robomimic-Lift-v0",
        checkpoint=refiner_config(),
        max_abs=0.2,
        bound_schedule="table8",
    )
    assert pol.refiner.config.max_abs == 0.2 and pol.bound_schedule is not None
    obs = np.random.default_rng(2).normal(size=(6, 4))
    pol.reset(seed=0)
    actions = np.array([pol.act(o) for o in obs])
    assert np.abs(actions[:, list(S)]).max() <= 0.2 + 1e-6
    assert np.abs(np.diff(actions[:, list(S)], axis=0)).max() <= 0.05 + 1e-6  # phase 1
    with pytest.raises(ValueError):
        make_constrained(
            "diffog", dp, "Robomimic-Lift-v0", checkpoint=refiner_config(), max_abs=-1.0
        )
