"""Pool `ampczoo bench manipulation` runs of the same initial states (e.g. one run per training
seed) into one success table per task and row: success per run, pooled success with its Wilson
95 % CI, and the paired comparison of each row against the base (the same run's base on the
same initial state; states won / lost, exact McNemar p).

Usage: python scripts/pool_manipulation_runs.py RUN_FOLDER [RUN_FOLDER ...]
(prints a markdown table; results: docs/results/manipulation.md)
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

from scipy.stats import binomtest

from ampczoo.benchmarks.common import wilson_interval


def load(folder: str) -> list[dict]:
    """The episodes of one run folder, each tagged with the folder."""
    episodes = json.loads((Path(folder) / "episodes.json").read_text())["episodes"]
    return [dict(e, run=folder) for e in episodes]


def main(folders: list[str]) -> None:
    episodes = [e for f in folders for e in load(f)]
    by_row: dict[tuple[str, str], dict[tuple[str, str, int], bool]] = defaultdict(dict)
    for e in episodes:
        by_row[(e["task"], e["row"])][(e["run"], e["checkpoint"], e["seed"])] = bool(e["success"])
    print(
        "| task | row | per run [%] | pooled [%] | 95 % CI | n | paired vs base (won / lost, p) |"
    )
    print("|---|---|---|---|---|---|---|")
    for (task, row), results in by_row.items():
        runs = list(dict.fromkeys(k[0] for k in results))
        per_run = [
            100 * sum(v for k, v in results.items() if k[0] == r) / sum(k[0] == r for k in results)
            for r in runs
        ]
        n, k = len(results), sum(results.values())
        lo, hi = wilson_interval(k, n)
        base = by_row.get((task, "base"), {})
        paired = "–"
        if row != "base" and base:
            won = sum(v and not base[key] for key, v in results.items() if key in base)
            lost = sum(base[key] and not v for key, v in results.items() if key in base)
            p = binomtest(won, won + lost).pvalue if won + lost else 1.0
            paired = f"+{won} / −{lost}, p = {p:.2g}"
        print(
            f"| {task} | {row} | {' / '.join(f'{r:.0f}' for r in per_run)} | {100 * k / n:.1f} "
            f"| [{100 * lo:.1f}, {100 * hi:.1f}] | {n} | {paired} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
