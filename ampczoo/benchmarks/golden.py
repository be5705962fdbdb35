"""Golden actions of the shipped zoo: do the shipped weights still act as they did?

For every checkpoint of the zoo index (:func:`ampczoo.list_policies`, :func:`ampczoo.zoo_card`)
the first :data:`STEPS` actions from a fixed start are recorded in
``tests/policies/golden/zoo_actions.json`` (:data:`GOLDEN_PATH`, in a source checkout) and
compared by ``tests/policies/test_zoo.py``. What runs, all read from the cards, so a newly
shipped checkpoint with a card is covered without editing this file:

* every checkpoint whose card has no ``base``, in its card's env, made with the card's
  ``env_kwargs`` (the KUKA checkpoints: ``control_dt`` 0.1 s, their demonstrations' period);
* every refiner on the base its card names, entry ``"<base> + <refiner>"``
  (:meth:`ChunkRefiner.wrap`), in the base's env with the base's ``env_kwargs``.

Each entry: CPU, torch on one thread, ``env.reset(seed=0)``, ``policy.reset(seed=0)``, then
:data:`STEPS` steps of ``action = policy.act(obs)``; entries in the order (env id, name), the
refined pairs last. Recorded values differ between CPUs at ~1e-6 (float32 kernels), hence
the tolerance :data:`ATOL` of the comparison::

    python -m ampczoo.benchmarks.golden              # compare only (exit status 1 on a change)
    python -m ampczoo.benchmarks.golden --add        # shipped a checkpoint: record new entries
    python -m ampczoo.benchmarks.golden --write      # retrained on purpose: rewrite them all
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: The golden file of a source checkout (tests are not installed with the package).
GOLDEN_PATH = Path(__file__).resolve().parents[2] / "tests/policies/golden/zoo_actions.json"
#: Actions recorded per entry.
STEPS = 3
#: Largest accepted difference to the recorded actions (actions in the env's units).
ATOL = 1e-4


@dataclass(frozen=True)
class GoldenEntry:
    """One golden row: ``policy`` (zoo name; the base of a refined pair) run in ``env`` made
    with ``env_kwargs``, behind zoo refiner ``refiner`` when not ""."""

    env: str
    policy: str
    refiner: str = ""
    env_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Key in the golden file: the zoo name, or ``"<base> + <refiner>"``."""
        return f"{self.policy} + {self.refiner}" if self.refiner else self.policy


def golden_entries() -> list[GoldenEntry]:
    """Every entry of the zoo index: plain checkpoints by (env, name), then refined pairs."""
    from ampczoo.core.registry import list_policies, zoo_card

    cards = {name: zoo_card(name) for name in list_policies()}
    plain = [
        GoldenEntry(card["env"], name, env_kwargs=dict(card.get("env_kwargs", {})))
        for name, card in cards.items()
        if "base" not in card
    ]
    refined = [
        GoldenEntry(
            cards[card["base"]]["env"],
            card["base"],
            name,
            dict(cards[card["base"]].get("env_kwargs", {})),
        )
        for name, card in cards.items()
        if "base" in card
    ]
    return sorted(plain, key=lambda e: (e.env, e.name)) + sorted(
        refined, key=lambda e: (e.env, e.refiner)
    )


def golden_actions(entry: GoldenEntry, steps: int = STEPS) -> np.ndarray:
    """(steps, action_dim) actions of ``entry`` from env reset seed 0 and policy seed 0."""
    import gymnasium as gym

    import ampczoo  # noqa: F401  (registers the envs)
    from ampczoo.benchmarks.common import single_thread
    from ampczoo.core.registry import load_policy

    with single_thread():
        policy = load_policy(entry.policy, device="cpu")
        if entry.refiner:
            from ampczoo.policies.refiner import ChunkRefiner

            policy = ChunkRefiner.wrap(policy, entry.refiner, device="cpu")
        env = gym.make(entry.env, **entry.env_kwargs)
        try:
            obs, _ = env.reset(seed=0)
            policy.reset(seed=0)
            actions = []
            for _ in range(steps):
                actions.append(policy.act(obs))
                obs, *_ = env.step(actions[-1])
        finally:
            env.close()
    return np.asarray(actions)


def compute_golden(entries: list[GoldenEntry] | None = None) -> dict[str, list]:
    """{entry name: actions as nested lists} of ``entries`` (default: the whole zoo)."""
    entries = golden_entries() if entries is None else entries
    return {e.name: golden_actions(e).tolist() for e in entries}


def read_golden(path: str | Path = GOLDEN_PATH) -> dict[str, list]:
    """The recorded golden actions."""
    return json.loads(Path(path).read_text())


def write_golden(path: str | Path = GOLDEN_PATH, only_missing: bool = False) -> dict[str, list]:
    """Compute the golden actions of the whole zoo and write them to ``path``; with
    ``only_missing`` the entries already recorded there keep their values (a new checkpoint
    adds its entries, the others stay as they are) and only the missing ones are computed."""
    path = Path(path)
    entries = golden_entries()
    recorded = read_golden(path) if only_missing and path.is_file() else {}
    todo = [e for e in entries if e.name not in recorded]
    computed = compute_golden(todo)
    table = {e.name: recorded[e.name] if e.name in recorded else computed[e.name] for e in entries}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(table, indent=1) + "\n")
    return table


def compare_golden(
    recorded: dict[str, list], actual: dict[str, list], atol: float = ATOL
) -> list[str]:
    """One line per difference between ``recorded`` and ``actual`` (entries missing on
    either side, shapes, actions further apart than ``atol``); [] when they agree."""
    problems = [f"{n}: no golden actions recorded" for n in actual if n not in recorded]
    problems += [f"{n}: recorded but no longer in the zoo" for n in recorded if n not in actual]
    for name in (n for n in actual if n in recorded):
        want, got = np.asarray(recorded[name]), np.asarray(actual[name])
        if want.shape != got.shape:
            problems.append(f"{name}: actions of shape {got.shape}, recorded {want.shape}")
        elif not np.allclose(got, want, rtol=0.0, atol=atol):
            err = float(np.max(np.abs(got - want)))
            problems.append(f"{name}: actions differ by up to {err:.3g} (atol {atol})")
    return problems


def main(argv: list[str] | None = None) -> int:
    """``python -m ampczoo.benchmarks.golden [--write | --add] [--path FILE]``."""
    p = argparse.ArgumentParser(
        prog="python -m ampczoo.benchmarks.golden",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="recompute and rewrite every entry")
    mode.add_argument("--add", action="store_true", help="record the entries missing from FILE")
    p.add_argument("--path", type=Path, default=GOLDEN_PATH, help="golden file (JSON)")
    args = p.parse_args(argv)
    if args.write or args.add:
        table = write_golden(args.path, only_missing=args.add)
        print(f"wrote {args.path} ({len(table)} entries)")
        return 0
    problems = compare_golden(read_golden(args.path), compute_golden())
    print("\n".join(problems) or f"all entries of {args.path} reproduced")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
