"""``ampczoo eval``: shipped policies on short episodes, the JSON it writes, and the clear
refusal of policies that do not fit the env."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import ampczoo
from ampczoo.benchmarks.common import rollout, wilson_interval
from ampczoo.benchmarks.evaluate import EvalConfig, parse_env_kwargs, run_eval
from ampczoo.core.registry import ZOO_DIR
from ampczoo.robots.kuka import SUCCESS_POS, SUCCESS_ROT

THREEDOF, KUKA = "ThreeDOF-Reach-v0", "DAMPC-KukaTrack-v0"
KUKA_OBSTACLE = "DAMPC-KukaTrackObstacle-v0"


def read_info(run: Path) -> dict:
    return json.loads((run / "eval_info.json").read_text())


def test_threedof_zoo_policy(tmp_path):
    cfg = EvalConfig(
        policy="threedof-ffn-h10",
        env=THREEDOF,
        episodes=3,
        seed=5,
        max_episode_steps=15,
        video=False,
        out=str(tmp_path),
    )
    run = run_eval(cfg)
    assert run.parent == tmp_path and run.name.startswith("eval-")
    assert {"eval_info.json", "episodes.json", "error.png", "summary.md"} <= {
        p.name for p in run.iterdir()
    }
    assert not list(run.glob("episode.*"))  # video off
    info = read_info(run)
    agg, per = info["aggregate"], info["per_episode"]
    assert info["env"] == THREEDOF and info["policy"] == "threedof-ffn-h10"
    assert info["policy_kind"] == "zoo" and info["date"] and "command" in info
    assert agg["n_episodes"] == 3 and [p["seed"] for p in per] == [5, 6, 7]
    assert all(p["length"] == 15 and p["truncated"] for p in per)
    assert all(p["final_rot_error_rad"] is None for p in per)  # the 3-DOF env has no rotation
    n_ok = sum(p["success"] for p in per)
    assert agg["n_success"] == n_ok and agg["success_rate"] == pytest.approx(n_ok / 3)
    assert agg["success_ci95"] == pytest.approx(list(wilson_interval(n_ok, 3)))
    assert agg["mean_final_pos_error_m"] == pytest.approx(
        np.mean([p["final_pos_error_m"] for p in per])
    )
    assert agg["act_mean_ms"] > 0
    # the traces agree with the summary, and episode i is the rollout of reset seed seed + i
    traces = json.loads((run / "episodes.json").read_text())["episodes"]
    assert [t["pos_error"][-1] for t in traces] == [p["final_pos_error_m"] for p in per]
    env = gym.make(THREEDOF, max_episode_steps=15)
    direct = rollout(env, ampczoo.load_policy("threedof-ffn-h10", device="cpu"), 6)
    assert direct.final_info["pos_error"] == pytest.approx(per[1]["final_pos_error_m"])
    assert direct.env_success() == per[1]["success"]


def test_kuka_zoo_policy_with_video(tmp_path):
    cfg = EvalConfig(
        policy="lsm-kuka",
        env=KUKA,
        episodes=2,
        control_dt=0.1,
        max_episode_steps=6,
        video=True,
        max_videos=1,
        out=str(tmp_path),
    )
    run = run_eval(cfg)
    info = read_info(run)
    assert info["control_dt"] == pytest.approx(0.1)
    for p in info["per_episode"]:
        assert p["length"] == 6 and p["final_rot_error_rad"] is not None
        inside = p["final_pos_error_m"] < SUCCESS_POS and p["final_rot_error_rad"] < SUCCESS_ROT
        assert p["success"] == inside  # the env's own success
    videos = list(run.glob("episode.*"))
    assert len(videos) == 1 and info["video"] == videos[0].name
    assert videos[0].stat().st_size > 0
    assert info["video_frames"] == 7  # the reset and 6 steps of the first episode only


@pytest.mark.parametrize(
    ("policy", "env", "match"),
    [
        ("threedof-ffn-h10", KUKA, "does not fit"),
        ("lsm-kuka", KUKA_OBSTACLE, "does not fit"),
        ("lsm-kuka", THREEDOF, "does not fit"),
        ("mpc", THREEDOF, "does not fit"),
        ("ikmpc", KUKA, "does not fit"),
        ("no-such-policy", KUKA, "neither a zoo name"),
    ],
)
def test_refuses_policies_that_do_not_fit(tmp_path, policy, env, match):
    cfg = EvalConfig(policy=policy, env=env, episodes=1, video=False, out=str(tmp_path))
    with pytest.raises(ValueError, match=match):
        run_eval(cfg)
    assert not any(tmp_path.iterdir())  # refused before any run folder


@pytest.mark.parametrize(("name", "env"), [("threedof-ffn-h10", KUKA), ("lsm-kuka", KUKA_OBSTACLE)])
def test_refuses_mismatching_sizes_without_a_card(tmp_path, name, env):
    folder = tmp_path / name
    shutil.copytree(ZOO_DIR / name, folder)
    (folder / "card.json").unlink(missing_ok=True)
    cfg = EvalConfig(policy=str(folder), env=env, video=False, out=str(tmp_path / "o"))
    with pytest.raises(ValueError, match="takes observations of shape"):
        run_eval(cfg)
    assert not (tmp_path / "o").exists()


def test_refuses_a_checkpoint_whose_card_names_another_env(tmp_path):
    folder = tmp_path / "ffn"
    shutil.copytree(ZOO_DIR / "threedof-ffn-h10", folder)
    (folder / "card.json").write_text(json.dumps({"env": KUKA}))
    cfg = EvalConfig(policy=str(folder), env=THREEDOF, video=False, out=str(tmp_path / "o"))
    with pytest.raises(ValueError, match="card names env DAMPC-KukaTrack-v0"):
        run_eval(cfg)
    card = {"env": THREEDOF, "env_kwargs": {"control_dt": 0.04}}
    (folder / "card.json").write_text(json.dumps(card))  # the card's env keywords are used
    cfg = EvalConfig(
        policy=str(folder),
        env=THREEDOF,
        episodes=1,
        max_episode_steps=3,
        video=False,
        out=str(tmp_path / "o"),
    )
    info = read_info(run_eval(cfg))
    assert info["policy_kind"] == "checkpoint" and info["control_dt"] == pytest.approx(0.04)


def test_unknown_env_and_bad_config_values():
    with pytest.raises(ValueError, match="DAMPC-KukaTrack-v0"):  # lists ampczoo's env ids
        EvalConfig(policy="lsm-kuka", env="NoSuchEnv-v0")
    for bad in ({"episodes": 0}, {"max_videos": -1}, {"control_dt": 0.0}, {"policy": ""}):
        with pytest.raises(ValueError):
            EvalConfig(**{"policy": "lsm-kuka", "env": KUKA, **bad})
    with pytest.raises(ValueError, match="KEY=VALUE"):
        EvalConfig(policy="lsm-kuka", env=KUKA, env_kwargs=("obstacle",))
    with pytest.raises(ValueError, match="does not accept"):
        run_eval(EvalConfig(policy="lsm-kuka", env=KUKA, env_kwargs=("no_such_kwarg=1",)))


def test_parse_env_kwargs():
    parsed = parse_env_kwargs(("target_region=ood", "episode_seconds=2.5", "obstacle=True"))
    assert parsed == {"target_region": "ood", "episode_seconds": 2.5, "obstacle": True}


def test_sb3_model(tmp_path):
    sb3 = pytest.importorskip("stable_baselines3")
    env = gym.make(THREEDOF)
    sb3.PPO("MlpPolicy", env, n_steps=8, batch_size=8, seed=0).save(tmp_path / "ppo.zip")
    cfg = EvalConfig(
        policy=str(tmp_path / "ppo.zip"),
        env=THREEDOF,
        episodes=2,
        max_episode_steps=4,
        video=False,
        out=str(tmp_path),
    )
    info = read_info(run_eval(cfg))
    assert info["policy_kind"] == "sb3" and info["aggregate"]["n_episodes"] == 2
    with pytest.raises(ValueError, match="observations of shape"):
        run_eval(EvalConfig(policy=cfg.policy, env=KUKA, video=False, out=str(tmp_path)))


def test_chunk_refiner_runs_on_its_cards_base(tmp_path):
    base = ampczoo.zoo_card("diffog-kuka-obstacle").get("base")
    if not base:
        pytest.skip("the refiner's zoo card names no base")
    cfg = EvalConfig(
        policy="diffog-kuka-obstacle",
        env=KUKA_OBSTACLE,
        episodes=1,
        max_episode_steps=3,
        video=False,
        out=str(tmp_path),
    )
    info = read_info(run_eval(cfg))
    assert info["base"] == base and info["per_episode"][0]["length"] == 3
    with pytest.raises(ValueError, match="only for chunk refiners"):
        run_eval(EvalConfig(policy="lsm-kuka", env=KUKA, base=base, out=str(tmp_path)))


# ----------------------------------------------------------------------------- drawn plans
def _kuka_dampc():
    policy = ampczoo.load_policy("dampc-kuka", device="cpu").eval()
    policy.control_dt = 0.1
    return policy


def test_dampc_exposes_its_plan_without_changing_its_actions():
    from ampczoo.core.policy import PlansInputs, planned_inputs

    policy = _kuka_dampc()
    assert isinstance(policy, PlansInputs) and policy.planned_inputs() is None
    env = gym.make(KUKA, control_dt=0.1, max_episode_steps=4)
    plain = rollout(env, policy, 7)
    plans = []

    class Reading:  # reads the plan after every act
        def reset(self, seed=None):
            policy.reset(seed)

        def act(self, obs):
            action = policy.act(obs)
            plans.append(planned_inputs(policy))
            plans[-1][0][:] = 0.0  # a copy: changing it must not reach the policy
            return action

    read = rollout(env, Reading(), 7)
    np.testing.assert_array_equal(read.actions, plain.actions)
    inputs, dt = policy.planned_inputs()
    np.testing.assert_array_equal(inputs, policy.prev_sequence)
    assert dt == policy.config.dt and inputs.shape == (policy.config.horizon, 7)
    np.testing.assert_array_equal(inputs[0], read.actions[-1])  # u_0 is the applied action
    policy.reset()
    assert policy.planned_inputs() is None


def test_chunk_filter_plan_is_its_refined_chunk_at_the_bases_step():
    from ampczoo.wrappers.clipping import ClippingPolicy

    policy = ClippingPolicy(_kuka_dampc(), max_delta=0.05)
    obs, _ = gym.make(KUKA).reset(seed=1)
    policy.reset(seed=1)
    assert policy.planned_inputs() is None
    action = policy.act(obs)
    inputs, dt = policy.planned_inputs()
    np.testing.assert_array_equal(inputs, policy.last_chunk)
    np.testing.assert_array_equal(inputs[0], action)
    assert dt == policy.base.config.dt
    assert np.all(np.abs(np.diff(inputs, axis=0)) <= 0.05 + 1e-12)  # the clipped chunk
    policy.reset()
    assert policy.planned_inputs() is None
    no_plan = ClippingPolicy(lambda o: np.zeros((4, 7)), max_delta=0.05)  # no step known
    no_plan.act(obs)
    assert no_plan.planned_inputs() is None


def test_mpc_plan_rolls_out_to_its_predicted_states():
    from ampczoo.experts import MPCExpert
    from ampczoo.robots.kuka import kuka_chain, planned_ee_path

    expert = MPCExpert(MPCExpert.example_config())
    obs, _ = gym.make(KUKA).reset(seed=2)
    expert.reset(seed=2)
    assert expert.planned_inputs() is None
    expert.act(obs)
    sol = expert.last_solution
    if not sol.success:
        assert expert.planned_inputs() is None
        return
    inputs, dt = expert.planned_inputs()
    np.testing.assert_array_equal(inputs, sol.u)
    path = planned_ee_path(sol.x[0], inputs, dt)
    np.testing.assert_allclose(path, kuka_chain().batch_ee_pose(sol.x)[0], atol=1e-5)


def test_eval_draws_the_plan_in_the_video_only(tmp_path, monkeypatch):
    import ampczoo.benchmarks.evaluate as evaluate

    videos: dict[bool, list[np.ndarray]] = {}
    write_video = evaluate.write_video
    infos = {}
    for draw in (True, False):

        def keep_frames(frames, *args, draw=draw, **kwargs):
            videos[draw] = list(frames)
            return write_video(frames, *args, **kwargs)

        monkeypatch.setattr(evaluate, "write_video", keep_frames)
        cfg = EvalConfig(
            policy="dampc-kuka",
            env=KUKA,
            episodes=2,
            max_episode_steps=3,
            video=True,
            draw_plan=draw,
            out=str(tmp_path / str(draw)),
        )
        infos[draw] = read_info(run_eval(cfg))
    if "video" not in infos[True]:
        pytest.skip("offscreen rendering unavailable")
    timing = {"act_mean_ms", "act_p95_ms", "eval_s"}
    for info in infos.values():
        info["aggregate"] = {k: v for k, v in info["aggregate"].items() if k not in timing}
        info["per_episode"] = [
            {k: v for k, v in p.items() if k not in timing} for p in info["per_episode"]
        ]
    assert infos[True]["aggregate"] == infos[False]["aggregate"]
    assert infos[True]["per_episode"] == infos[False]["per_episode"]
    on, off = videos[True], videos[False]
    assert len(on) == len(off) == 4  # the reset and 3 steps of the first episode
    np.testing.assert_array_equal(on[0], off[0])  # no plan before the first act
    assert all(np.any(a != b) for a, b in zip(on[1:], off[1:], strict=True))
    actions = {
        d: [
            e["action"]
            for e in json.loads(
                (next((tmp_path / str(d)).iterdir()) / "episodes.json").read_text()
            )["episodes"]
        ]
        for d in videos
    }
    assert actions[True] == actions[False]  # bit-identical rollouts
