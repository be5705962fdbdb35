"""Command-line interface: ``ampczoo {demo,collect,bench} ...``.

Each sub-command imports its heavy modules lazily so ``ampczoo --help`` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the MPC expert on both KUKA envs; table, plot, video")
    p.add_argument("--episodes", type=int, default=3, help="episodes per env")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--solver", default="ipopt", choices=["ipopt", "fatrop"])
    p.add_argument("--out", default="runs", help="parent folder of the run folder")
    p.add_argument("--no-video", action="store_true", help="skip the MP4/GIF")
    p.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from ampczoo.benchmarks.demo import run_demo

    run_demo(episodes=args.episodes, seed=args.seed, solver=args.solver, out_root=args.out,
             video=not args.no_video)
    return 0


def _add_collect(sub: argparse._SubParsersAction) -> None:
    from ampczoo.data.collect import add_collect_arguments

    p = sub.add_parser("collect", help="collect MPC demonstrations into a Zarr store")
    add_collect_arguments(p)
    p.set_defaults(func=_run_collect)


def _run_collect(args: argparse.Namespace) -> int:
    from ampczoo.data.collect import collect, config_from_args

    report = collect(config_from_args(args))
    print(report)
    return 0 if not getattr(report, "errors", None) else 1


def _add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks that write tables and plots into runs/")
    bench = p.add_subparsers(dest="bench", required=True)
    from ampczoo.benchmarks.mpc import add_arguments

    add_arguments(bench.add_parser("mpc", help="closed-loop MPC expert benchmark"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ampczoo", description="Imitating MPC and constraining learned robot policies.")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demo(sub)
    _add_collect(sub)
    _add_bench(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"ampczoo {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
