"""The contract every registered env keeps, as reusable checks (the tests run them over
:func:`ampczoo.envs.env_ids`; run them on your own env before registering it).

* :func:`check_gymnasium` / :func:`check_sb3`: Gymnasium's and stable-baselines3's env
  checkers, failing on any warning except their style recommendations (a normalised,
  symmetric, float32 action space: ours are physical units in float64);
* :func:`check_seeded_determinism`: the same seed gives the same observations, rewards,
  flags and infos over a few steps; different seeds give different initial observations;
* :func:`check_invalid_actions`: NaN, ±inf and mis-shaped actions raise ``ValueError`` and
  change nothing (the episode continues as if they had not been sent);
* :func:`check_render`: where ``render_mode="rgb_array"`` is offered, ``render()`` returns a
  non-blank (H, W, 3) uint8 frame headless (set ``MUJOCO_GL`` to ``egl`` / ``osmesa``).

Every check takes an env id (and keyword arguments for ``gym.make``) and raises
``AssertionError`` naming the broken rule. :func:`check_env_contract` runs them all.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

#: Warnings of the env checkers that are advice, not errors (matched in the message).
ALLOWED_WARNINGS = (
    "recommend using a symmetric and normalized",
    "recommend you to use a symmetric and normalized",
    "recommend using np.float32",
)


def _fail(message: str) -> None:
    raise AssertionError(message)


@contextmanager
def _no_warnings(checker: str, env_id: str) -> Iterator[None]:
    """Fail on any warning raised inside, except :data:`ALLOWED_WARNINGS`."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    bad = [str(w.message) for w in caught]
    bad = [m for m in bad if not any(ok in m for ok in ALLOWED_WARNINGS)]
    if bad:
        _fail(f"{env_id}: {checker} warned: {bad}")


def check_gymnasium(env_id: str, **make_kwargs: Any) -> None:
    """Gymnasium's ``check_env`` on the unwrapped env (render modes: :func:`check_render`)."""
    from gymnasium.utils.env_checker import check_env

    env = gym.make(env_id, **make_kwargs)
    try:
        with _no_warnings("gymnasium.utils.env_checker.check_env", env_id):
            check_env(env.unwrapped, skip_render_check=True)
    finally:
        env.close()


def check_sb3(env_id: str, **make_kwargs: Any) -> None:
    """stable-baselines3's ``check_env`` (needs stable-baselines3: ``pip install
    ampczoo[rl]``)."""
    from stable_baselines3.common.env_checker import check_env

    env = gym.make(env_id, **make_kwargs)
    try:
        with _no_warnings("stable_baselines3 check_env", env_id):
            check_env(env, warn=True)
    finally:
        env.close()


def same(a: Any, b: Any) -> bool:
    """Exact equality of observations / infos: nested dicts, tuples, lists, arrays, scalars
    (NaN equals NaN)."""
    if isinstance(a, dict) or isinstance(b, dict):
        return (
            isinstance(a, dict)
            and isinstance(b, dict)
            and a.keys() == b.keys()
            and all(same(a[k], b[k]) for k in a)
        )
    if isinstance(a, tuple | list) or isinstance(b, tuple | list):
        return (
            isinstance(a, tuple | list)
            and isinstance(b, tuple | list)
            and len(a) == len(b)
            and all(same(x, y) for x, y in zip(a, b, strict=True))
        )
    x, y = np.asarray(a), np.asarray(b)
    if x.shape != y.shape or x.dtype != y.dtype:
        return False
    if np.issubdtype(x.dtype, np.inexact):
        return bool(np.array_equal(x, y, equal_nan=True))
    return bool(np.array_equal(x, y))


def _actions(space: spaces.Space, steps: int, seed: int) -> list[Any]:
    space.seed(seed)
    return [space.sample() for _ in range(steps)]


def _rollout(env: gym.Env, seed: int, actions: list[Any]) -> list[tuple]:
    """[(obs, info)] of the reset, then (obs, reward, terminated, truncated, info) per step
    (stops at the end of the episode)."""
    out: list[tuple] = [env.reset(seed=seed)]
    for action in actions:
        out.append(env.step(action))
        if out[-1][2] or out[-1][3]:
            break
    return out


def check_seeded_determinism(
    env_id: str, steps: int = 5, seeds: tuple[int, int] = (0, 1), **make_kwargs: Any
) -> None:
    """Two envs reset with ``seeds[0]`` and given the same ``steps`` actions return equal
    observations, rewards, flags and infos; ``seeds[1]`` gives another initial
    observation. The second rollout reuses the first env (a reset with a seed must not
    depend on what happened before)."""
    a, b = gym.make(env_id, **make_kwargs), gym.make(env_id, **make_kwargs)
    try:
        actions = _actions(a.action_space, steps, seed=seeds[0])
        _rollout(a, seeds[1], actions)  # some history first
        first, second = _rollout(a, seeds[0], actions), _rollout(b, seeds[0], actions)
        names = ("obs", "reward", "terminated", "truncated", "info")
        for t, (x, y) in enumerate(zip(first, second, strict=True)):
            for name, u, v in zip(("obs", "info") if t == 0 else names, x, y, strict=True):
                if not same(u, v):
                    when = "reset" if t == 0 else f"step {t}"
                    _fail(f"{env_id}: same seed {seeds[0]}, different {name} at {when}")
        if len(first) != len(second):
            _fail(f"{env_id}: same seed {seeds[0]}, episodes of different length")
        other, _ = b.reset(seed=seeds[1])
        if same(first[0][0], other):
            _fail(f"{env_id}: seeds {seeds[0]} and {seeds[1]} give the same initial observation")
    finally:
        a.close()
        b.close()


def invalid_actions(space: spaces.Space) -> dict[str, Any]:
    """Actions the env must refuse, by name: NaN, +inf, -inf, mis-shaped ones (one entry
    too few or too many, an extra batch axis, a scalar) and non-numbers (None, text).
    Empty for non-Box spaces."""
    if not isinstance(space, spaces.Box) or not np.issubdtype(space.dtype, np.floating):
        return {}
    shape = space.shape
    valid = np.zeros(shape, space.dtype)
    cases: dict[str, Any] = {}
    for name, value in (("nan", np.nan), ("+inf", np.inf), ("-inf", -np.inf)):
        bad = valid.copy()
        bad.flat[0] = value
        cases[name] = bad
    if shape:
        cases["too short"] = np.zeros((*shape[:-1], shape[-1] - 1), space.dtype)
        cases["too long"] = np.zeros((*shape[:-1], shape[-1] + 1), space.dtype)
    cases["batch axis"] = np.zeros((1, *shape), space.dtype)
    if shape:
        cases["scalar"] = np.zeros((), space.dtype)
    cases["None"] = None
    cases["text"] = "forward"
    return cases


def check_invalid_actions(env_id: str, seed: int = 0, **make_kwargs: Any) -> None:
    """Every action of :func:`invalid_actions` raises ``ValueError`` from ``step`` and loses
    nothing: the next valid step returns exactly what it returns in an env that never saw
    the invalid actions."""
    ref, env = gym.make(env_id, **make_kwargs), gym.make(env_id, **make_kwargs)
    try:
        bad = invalid_actions(env.action_space)
        if not bad:
            return
        first, second = _actions(env.action_space, 2, seed=seed)
        for e in (ref, env):
            e.reset(seed=seed)
            e.step(first)
        for name, action in bad.items():
            try:
                env.step(action)
            except ValueError:
                continue
            except Exception as exc:  # noqa: BLE001 - the contract names the exception type
                _fail(f"{env_id}: {name} action raised {type(exc).__name__}, not ValueError")
            _fail(f"{env_id}: {name} action {action!r} was accepted")
        expected, got = ref.step(second), env.step(second)
        names = ("obs", "reward", "terminated", "truncated", "info")
        for name, u, v in zip(names, expected, got, strict=True):
            if not same(u, v):
                _fail(f"{env_id}: a rejected action changed the env ({name} differs afterwards)")
    finally:
        ref.close()
        env.close()


def render_modes(env_id: str, **make_kwargs: Any) -> list[str]:
    """``metadata["render_modes"]`` of the env (read from its class when the entry point is
    one; made and closed otherwise)."""
    from gymnasium.envs.registration import load_env_creator

    entry_point = gym.spec(env_id).entry_point
    creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    metadata = getattr(creator, "metadata", None)
    if not isinstance(metadata, dict):
        env = gym.make(env_id, **make_kwargs)
        metadata = env.metadata
        env.close()
    return list(metadata.get("render_modes", []))


#: (width, height) [px] the render check asks for through ``gym.make(..., width=, height=)``.
RENDER_CHECK_SIZE = (128, 96)


def _check_frame(env_id: str, frame: Any) -> None:
    width, height = RENDER_CHECK_SIZE
    ok = (
        isinstance(frame, np.ndarray)
        and frame.dtype == np.uint8
        and frame.shape == (height, width, 3)
    )
    if not ok:
        got = getattr(frame, "shape", None), getattr(frame, "dtype", type(frame))
        _fail(
            f"{env_id}: render() must return a ({height}, {width}, 3) uint8 array for "
            f"width={width}, height={height}, got {got}"
        )
    if frame.min() == frame.max():
        _fail(f"{env_id}: render() returned a blank frame (no offscreen GL?)")


def check_render(env_id: str, **make_kwargs: Any) -> None:
    """With ``render_mode="rgb_array"`` (if the env offers it) and Gymnasium's ``width`` /
    ``height`` keywords (:data:`RENDER_CHECK_SIZE`): ``render()`` after reset and after a step
    returns a non-blank (height, width, 3) uint8 array. Nothing to check otherwise."""
    from gymnasium.utils.passive_env_checker import env_render_passive_checker

    if "rgb_array" not in render_modes(env_id, **make_kwargs):
        return
    width, height = RENDER_CHECK_SIZE
    try:
        env = gym.make(env_id, render_mode="rgb_array", width=width, height=height, **make_kwargs)
    except TypeError as exc:
        _fail(f"{env_id}: does not take Gymnasium's width= / height= render keywords ({exc})")
    try:
        env.reset(seed=0)
        with _no_warnings("gymnasium's render checker", env_id):
            env_render_passive_checker(env)
        frames: list[Any] = [env.render()]
        env.action_space.seed(0)
        env.step(env.action_space.sample())
        frames.append(env.render())
        for frame in frames:
            _check_frame(env_id, frame)
    finally:
        env.close()


#: name -> check, in the order :func:`check_env_contract` runs them.
CHECKS: dict[str, Callable[..., None]] = {
    "gymnasium": check_gymnasium,
    "sb3": check_sb3,
    "seeded_determinism": check_seeded_determinism,
    "invalid_actions": check_invalid_actions,
    "render": check_render,
}


def check_env_contract(env_id: str, **make_kwargs: Any) -> None:
    """Run every check of :data:`CHECKS` on ``env_id``."""
    for check in CHECKS.values():
        check(env_id, **make_kwargs)
