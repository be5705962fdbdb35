"""Command-line interface: ``ampczoo {demo,collect,bench,train} ...``.

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
    from ampczoo.benchmarks.demo import DemoConfig, run_demo

    run_demo(
        DemoConfig(
            episodes=args.episodes,
            seed=args.seed,
            solver=args.solver,
            out=args.out,
            video=not args.no_video,
        )
    )
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
    from ampczoo.benchmarks.kuka import add_arguments as add_kuka_arguments

    add_kuka_arguments(bench.add_parser("kuka", help="MPC vs LSM vs DAMPC: the paper's tables"))
    from ampczoo.benchmarks.constraints import add_arguments as add_constraints_arguments

    add_constraints_arguments(
        bench.add_parser(
            "constraints", help="clipping / penalty / DiffOG / residual / LeTO under one bound"
        )
    )
    from ampczoo.benchmarks.threedof import add_arguments as add_threedof_arguments

    add_threedof_arguments(
        bench.add_parser(
            "threedof", help="3-DOF arm: IK-MPC expert vs FFN / LSTM / GRU / Transformer"
        )
    )


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a policy (LSM, DAMPC, LeTO; FFN, LSTM, GRU, "
        "Transformer for ThreeDOF-Reach-v0) or a chunk refiner (DiffOG, "
        "residual) on a demonstration store",
    )
    p.add_argument(
        "policy",
        choices=["lsm", "dampc", "leto", "diffog", "residual", "ffn", "lstm", "gru", "transformer"],
    )
    p.add_argument("--data", required=True, help="Zarr episode store (ampczoo collect)")
    p.add_argument("--out", required=True, help="run folder, e.g. runs/NAME")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--steps", type=int, default=None, help="cap on optimizer steps in total")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument(
        "--cosine",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="warm-up + cosine learning-rate decay",
    )
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument(
        "--ema-decay",
        type=float,
        default=None,
        help="EMA decay (default: 0.995 for dampc, off for lsm; 0 = off)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument(
        "--test-fraction",
        type=float,
        default=0.0,
        help="episodes held out for a final test loss of best/ (never selected on)",
    )
    p.add_argument(
        "--patience",
        type=int,
        default=None,
        help="early stopping: epochs without a better validation loss",
    )
    p.add_argument(
        "--history", type=int, default=None, help="ffn/lstm/gru/transformer: history length H"
    )
    p.add_argument("--device", default=None, help="cuda | cpu (default: cuda if present)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last")
    p.add_argument("--hidden-dim", type=int, default=None, help="MLP width")
    p.add_argument("--num-layers", type=int, default=None, help="MLP hidden layers")
    p.add_argument(
        "--num-train-timesteps", type=int, default=None, help="dampc: diffusion steps N_I (5 or 40)"
    )
    p.add_argument(
        "--mode",
        choices=["dataset", "refine"],
        default=None,
        help="diffog/residual: train on demonstrated chunks (dataset) or on the "
        "chunks of a frozen --base policy (refine)",
    )
    p.add_argument(
        "--base",
        default=None,
        help="diffog/residual refine mode: base policy (zoo name or checkpoint)",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="any other policy config field (VALUE parsed as JSON if possible)",
    )
    p.set_defaults(func=_run_train)


def _policy_overrides(args: argparse.Namespace) -> dict:
    import json

    out = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set expects FIELD=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    for key in ("hidden_dim", "num_layers", "num_train_timesteps", "mode", "base", "history"):
        if getattr(args, key) is not None:
            out[key] = getattr(args, key)
    if "num_train_timesteps" in out and "num_inference_steps" not in out:
        out["num_inference_steps"] = min(out["num_train_timesteps"], 5)
    return out


def _run_train(args: argparse.Namespace) -> int:
    from ampczoo.training.supervised import TrainConfig, train

    cfg = TrainConfig(
        policy=args.policy,
        data=args.data,
        out=args.out,
        epochs=args.epochs,
        max_steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        cosine=args.cosine,
        warmup_steps=args.warmup_steps,
        ema_decay=args.ema_decay,
        seed=args.seed,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        patience=args.patience,
        device=args.device,
        resume=args.resume,
        policy_overrides=_policy_overrides(args),
    )
    print(train(cfg))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ampczoo", description="Imitating MPC and constraining learned robot policies."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_demo(sub)
    _add_collect(sub)
    _add_bench(sub)
    _add_train(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileExistsError, FileNotFoundError) as exc:
        print(f"ampczoo {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = (
            " (finished episodes are stored; rerun with --resume)"
            if args.command == "collect"
            else ""
        )
        print(f"\nampczoo {args.command}: interrupted{hint}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
