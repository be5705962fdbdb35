"""The generated CLI: every command's flags and help come from its config dataclass, the
trainable policy types from the registry (a type registered here shows up with no other edit),
bad input exits with status 2 and a message, ``python -m ampczoo`` works."""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import inspect
import re
import subprocess
import sys
import typing
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import ampczoo
from ampczoo import cli
from ampczoo.benchmarks.constraints import ConstraintsBenchConfig
from ampczoo.benchmarks.demo import DemoConfig
from ampczoo.benchmarks.envs import EnvBenchConfig
from ampczoo.benchmarks.ik import IKBenchConfig
from ampczoo.benchmarks.kuka import METHOD_KEYS, KukaBenchConfig, MethodKey
from ampczoo.benchmarks.manipulation import ManipulationBenchConfig
from ampczoo.benchmarks.mpc import MPCBenchConfig
from ampczoo.benchmarks.speed import SpeedBenchConfig
from ampczoo.benchmarks.threedof import ExpertSolver, ThreeDOFBenchConfig
from ampczoo.core import registry
from ampczoo.core.checkpoint import PolicyConfig, PretrainedPolicy, check_obs
from ampczoo.data.collect import CollectConfig
from ampczoo.data.collect import Solver as CollectSolver
from ampczoo.data.store import Episode, EpisodeStore
from ampczoo.training.supervised import TrainConfig, trainable_policy_types

BOX = str.maketrans({c: " " for c in "│╭╮╰╯─"})
COMMAND_CONFIGS = [
    (["demo"], DemoConfig),
    (["collect"], CollectConfig),
    (["bench", "mpc"], MPCBenchConfig),
    (["bench", "kuka"], KukaBenchConfig),
    (["bench", "constraints"], ConstraintsBenchConfig),
    (["bench", "threedof"], ThreeDOFBenchConfig),
    (["bench", "speed"], SpeedBenchConfig),
    (["bench", "envs"], EnvBenchConfig),
    (["bench", "ik"], IKBenchConfig),
    (["bench", "manipulation"], ManipulationBenchConfig),
]
EVAL_MODULE = "ampczoo.benchmarks.evaluate"
TRAINABLE = trainable_policy_types()


# ----------------------------------------------------------------------------- a toy type
@dataclasses.dataclass(frozen=True)
class ToyConfig(PolicyConfig):
    """Config of the toy policy registered by these tests."""

    type: str = "toy-cli"
    obs_dim: int = 16
    """size of the flat observation"""
    horizon: int = 3
    """length N of the predicted input sequence [steps]"""
    width: int = 8
    """hidden units of the toy's single hidden layer"""

    def __post_init__(self) -> None:
        if self.width <= 0:
            raise ValueError(f"width must be > 0, got {self.width}")


class ToyPolicy(PretrainedPolicy):
    """Toy sequence regressor of the CLI tests. Nothing else."""

    name = "toy-cli"
    config_class = ToyConfig

    def __init__(self, config: ToyConfig | None = None):
        super().__init__(config or ToyConfig())
        c = self.config
        self.net = nn.Sequential(
            nn.Linear(c.obs_dim, c.width), nn.Tanh(), nn.Linear(c.width, c.horizon * 7)
        )

    def set_normalization(self, stats: dict) -> None:
        """The toy learns in raw units."""

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        pred = self.net(batch["obs"]).view(len(batch["obs"]), self.config.horizon, 7)
        return torch.mean((pred - batch["u_seq"]) ** 2), {}

    @torch.no_grad()
    def act(self, obs: Any) -> np.ndarray:
        arr, batched = check_obs(obs, self.config.obs_dim)
        u0 = self.net(torch.from_numpy(arr)).view(len(arr), -1, 7)[:, 0].numpy()
        return u0 if batched else u0[0]

    def reset(self, seed: int | None = None) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class UndocumentedToyConfig(ToyConfig):
    """A toy config with a field that has no docstring (the help check must catch it)."""

    type: str = "toy-undocumented"
    depth: int = 2


class UndocumentedToyPolicy(ToyPolicy):
    """The toy policy with :class:`UndocumentedToyConfig`."""

    name = "toy-undocumented"
    config_class = UndocumentedToyConfig


@pytest.fixture
def toy_type(monkeypatch) -> str:
    """``toy-cli`` registered for this test only (removed again by monkeypatch)."""
    entry = f"{ToyPolicy.__module__}:{ToyPolicy.__qualname__}"
    monkeypatch.setitem(registry.POLICY_TYPES, "toy-cli", entry)
    registry.register_policy("toy-cli", ToyPolicy)
    return "toy-cli"


# ----------------------------------------------------------------------------- helpers
def attribute_docstrings(cls: type) -> dict[str, str]:
    """Field name -> the ``\"\"\"docstring\"\"\"`` right under it in the class body (and
    its dataclass bases), whitespace collapsed."""
    docs: dict[str, str] = {}
    for klass in reversed([k for k in cls.__mro__ if dataclasses.is_dataclass(k)]):
        body = ast.parse(inspect.getsource(klass).strip()).body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
            ):
                docs[node.target.id] = " ".join(nxt.value.value.split())  # type: ignore[union-attr]
    return docs


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def run_help(args: list[str], capsys, monkeypatch) -> str:
    """``ampczoo ARGS --help`` -> its text with box borders dropped, whitespace collapsed."""
    monkeypatch.setenv("COLUMNS", "200")
    assert cli.main([*args, "--help"]) == 0
    return " ".join(capsys.readouterr().out.translate(BOX).split())


def assert_fields_documented(cls: type, text: str, skip: tuple[str, ...] = ()) -> None:
    docs = attribute_docstrings(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        assert docs.get(f.name), f"{cls.__name__}.{f.name} has no docstring"
        assert flag(f.name) in text, f.name
        assert docs[f.name] in text, f"help of {f.name!r} missing"


def policy_flag_help(args: list[str], capsys, monkeypatch) -> dict[str, str]:
    """``--policy.*`` flag -> its help text in ``ampczoo ARGS --help``, without the
    ``(default: ...)`` that tyro appends: a field without a docstring renders as the flag and
    its metavar followed by nothing but ``(default: ...)`` (or ``(required)``)."""
    monkeypatch.setenv("COLUMNS", "200")
    assert cli.main([*args, "--help"]) == 0
    helps: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in capsys.readouterr().out.splitlines():
        line = raw.strip().strip("│╭╮╰╯").strip()
        if line.startswith("--policy."):  # "--policy.x METAVAR  help" (help may wrap below)
            flag_and_help = re.split(r"\s{2,}", line, maxsplit=1)
            current = helps.setdefault(line.split()[0].rstrip(","), flag_and_help[1:])
        elif line.startswith(("--", "─")) or not line or raw.lstrip().startswith("╰"):
            current = None
        elif current is not None:
            current.append(line)
    suffix = re.compile(r"\s*\((default: .*|required)\)$")
    return {name: suffix.sub("", " ".join(parts)).strip() for name, parts in helps.items()}


def tiny_store(path, obs_dim: int = 6, horizon: int = 3):
    rng = np.random.default_rng(0)
    episodes = []
    for e in range(4):
        obs = rng.normal(size=(10, obs_dim)).astype(np.float32)
        u = np.repeat(np.tanh(obs[:, None, :1]), 7, axis=2).repeat(horizon, axis=1)
        episodes.append(Episode(e, e, 10, data={"obs": obs, "u_seq": u.astype(np.float32)}))
    EpisodeStore(path).add_episodes(episodes)
    return path


# ----------------------------------------------------------------------------- help
@pytest.mark.parametrize("args,config_class", COMMAND_CONFIGS, ids=lambda a: str(a))
def test_help_lists_every_config_field_with_its_docstring(args, config_class, capsys, monkeypatch):
    text = run_help(args, capsys, monkeypatch)
    assert f"usage: ampczoo {' '.join(args)}" in text
    assert_fields_documented(config_class, text)


def test_literal_fields_show_their_choices(capsys, monkeypatch):
    text = run_help(["bench", "kuka"], capsys, monkeypatch)
    assert "{obstacle,free}" in text and "ddpm40-g-es" in text
    assert "--quick, --no-quick" in text and "--cuda, --no-cuda" in text
    text = run_help(["collect"], capsys, monkeypatch)
    assert "{process,ray}" in text and "--compile, --no-compile" in text


def test_train_help_lists_trainable_types_from_the_registry(capsys, monkeypatch):
    text = run_help(["train"], capsys, monkeypatch)
    for name in ("lsm", "dampc", "leto", "diffog", "residual", "ffn", "lstm", "gru"):
        assert f" {name} " in text
    assert " mpc " not in text and " ikmpc " not in text  # experts are not trained


def test_train_policy_help_has_train_and_policy_flags(capsys, monkeypatch):
    text = run_help(["train", "lsm"], capsys, monkeypatch)
    assert_fields_documented(TrainConfig, text, skip=("policy", "policy_overrides"))
    assert "--policy.hidden-dim" in text and "--policy.num-layers" in text
    assert "--policy.type" not in text and "--policy-overrides" not in text


def test_registered_toy_type_appears_with_no_other_edit(toy_type, capsys, monkeypatch):
    text = run_help(["train"], capsys, monkeypatch)
    assert "toy-cli Toy sequence regressor of the CLI tests" in text
    text = run_help(["train", toy_type], capsys, monkeypatch)
    assert "--policy.width INT hidden units of the toy's single hidden layer (default: 8)" in text


def test_toy_type_trains_from_the_cli_with_only_the_changed_fields(toy_type, tmp_path):
    store = tiny_store(tmp_path / "d.zarr", obs_dim=6)
    args = ["--data", str(store), "--out", str(tmp_path / "run"), "--epochs", "1"]
    args += ["--batch-size", "8", "--val-fraction", "0.25", "--policy.width", "5"]
    cfg = cli.train_config(toy_type, args)
    assert cfg.policy == toy_type and cfg.policy_overrides == {"width": 5}
    assert cli.main(["train", toy_type, *args]) == 0
    policy = ampczoo.load_policy(tmp_path / "run" / "best", device="cpu")
    assert isinstance(policy, ToyPolicy)
    assert (policy.config.width, policy.config.obs_dim) == (5, 6)  # obs_dim from the data
    assert policy.act(np.zeros(6)).shape == (7,)


def test_train_overrides_are_the_changed_fields_and_derived_ones():
    cfg = cli.train_config("dampc", ["--data", "d.zarr", "--policy.num-train-timesteps", "40"])
    assert cfg.policy_overrides == {"num_train_timesteps": 40, "num_inference_steps": 5}
    cfg = cli.train_config("dampc", ["--data", "d.zarr", "--policy.num-train-timesteps", "2"])
    assert cfg.policy_overrides == {"num_train_timesteps": 2, "num_inference_steps": 2}
    args = [
        "--data",
        "d",
        "--policy.num-train-timesteps",
        "40",
        "--policy.num-inference-steps",
        "8",
    ]
    assert cli.train_config("dampc", args).policy_overrides["num_inference_steps"] == 8
    cfg = cli.train_config("lsm", ["--data", "d.zarr", "--max-steps", "7", "--no-cosine"])
    assert cfg.policy_overrides == {} and (cfg.max_steps, cfg.cosine) == (7, False)
    cfg = cli.train_config("gru", ["--data", "d.zarr", "--policy.history", "3"])
    assert cfg.policy_overrides == {"history": 3}


# ----------------------------------------------------------------------------- parsing
def test_parsed_configs():
    assert cli.parse_config(DemoConfig, ["--no-video", "--episodes", "2"]) == DemoConfig(
        episodes=2, video=False
    )
    mpc = cli.parse_config(MPCBenchConfig, ["--quick", "--compile-modes", "True", "False"])
    assert (mpc.episodes, mpc.optima_pairs, mpc.guesses) == (5, 1, 8)
    assert mpc.compile_modes == (True, False)
    kuka = cli.parse_config(KukaBenchConfig, ["--envs", "obstacle", "free", "--methods", "lsm"])
    assert kuka.envs == ("obstacle", "free") and kuka.methods == ("lsm",)
    threedof = cli.parse_config(ThreeDOFBenchConfig, ["--quick", "--ablation", "1=a", "3=b"])
    assert (threedof.episodes, threedof.ood_episodes, threedof.ablation) == (30, 20, ("1=a", "3=b"))
    constraints = cli.parse_config(ConstraintsBenchConfig, ["--bases", "--tables", "main"])
    assert constraints.bases == () and constraints.tables == ("main",)


def test_literal_choices_match_what_they_name():
    from ampczoo.experts import ikmpc, mpc

    assert typing.get_args(MethodKey) == METHOD_KEYS
    assert typing.get_args(ExpertSolver) == ikmpc.SOLVERS
    assert set(typing.get_args(CollectSolver)) == set(mpc.SOLVERS) | set(ikmpc.SOLVERS)
    from ampczoo.nn import diffusion, features, normalization, qp
    from ampczoo.policies import dampc, diffog, leto, lsm, recurrent, refiner

    validated = [
        (lsm.LSMConfig, "obs_features", features.OBS_FEATURES),
        (lsm.LSMConfig, "action_normalization", normalization.ACTION_NORMALIZATIONS),
        (dampc.DAMPCConfig, "obs_features", features.OBS_FEATURES),
        (dampc.DAMPCConfig, "action_normalization", normalization.ACTION_NORMALIZATIONS),
        (dampc.DAMPCConfig, "sampler", diffusion.SAMPLERS),
        (dampc.DAMPCConfig, "selection", dampc.SELECTIONS),
        (leto.LeTOConfig, "obs_features", features.OBS_FEATURES),
        (leto.LeTOConfig, "backend", qp.BACKENDS),
        (recurrent.RecurrentConfig, "type", tuple(recurrent.CELLS)),
        (recurrent.RecurrentConfig, "recurrent_mode", recurrent.RECURRENT_MODES),
        (refiner.RefinerConfig, "mode", refiner.MODES),
        (diffog.DiffOGConfig, "q_mode", diffog.Q_MODES),
        (diffog.DiffOGConfig, "backend", qp.BACKENDS),
        (mpc.MPCConfig, "formulation", mpc.FORMULATIONS),
        (mpc.MPCConfig, "cold_start", mpc.COLD_STARTS),
    ]
    for config_class, name, choices in validated:
        literal = typing.get_type_hints(config_class)[name]
        assert set(typing.get_args(literal)) == set(choices), (config_class.__name__, name)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "args,message",
    [
        (["bench", "mpc", "--episodes", "0"], "ampczoo bench mpc: error: episodes must be >= 1"),
        (
            ["bench", "manipulation", "--base", "Robomimic-Lift-v0"],
            "ampczoo bench manipulation: error: base entries are TASK=SPEC",
        ),
        (["collect", "--workers", "0"], "ampczoo collect: error: workers must be a positive"),
        (["train", "lsm", "--data", "d.zarr", "--epochs", "0"], "ampczoo train: error: epochs"),
        (["nope"], "unknown command 'nope'; choose from ['demo', 'collect', 'train'"),
        (["bench", "nope"], "unknown benchmark 'nope'; choose from ['mpc', 'kuka'"),
        (["train", "nope"], "unknown policy type 'nope'; choose from ['dampc'"),
        (["train", "mpc"], "'mpc' is not a trainable policy type (an expert?)"),
        (["data", "nope"], "unknown command 'nope'; choose from ['import-robomimic'"),
        (
            ["data", "import-robomimic", "missing.hdf5", "x.zarr"],
            "ampczoo data import-robomimic: error: no file missing.hdf5",
        ),
        (
            ["data", "export-robomimic", "missing.zarr", "x.hdf5"],
            "ampczoo data export-robomimic: error: missing.zarr is not an episode store",
        ),
    ],
)
def test_invalid_input_exits_2_with_a_message(args, message, capsys):
    assert cli.main(args) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["collect", "--episodes", "many"],
        ["bench", "kuka", "--envs", "moon"],
        ["demo", "--solver", "cplex"],
        ["train", "lsm", "--data", "d", "--policy.hidden-dim", "wide"],
        ["train", "lsm", "--data", "d", "--no-such-flag"],
        ["train", "lsm"],  # --data is required
    ],
)
def test_malformed_flags_exit_2(args, capsys):
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "ampczoo" in err and len(err.strip()) > 20


def test_run_errors_are_reported_not_raised(tmp_path, capsys):
    missing = tmp_path / "missing.zarr"
    assert cli.main(["train", "lsm", "--data", str(missing), "--out", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err.startswith("ampczoo train: error: ")


def test_ctrl_c_in_collect_prints_the_resume_hint(monkeypatch, capsys, tmp_path):
    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run_collect", interrupted)
    assert cli.main(["collect", "--out", str(tmp_path / "s.zarr")]) == 130
    assert "interrupted (finished episodes are stored; rerun with --resume)" in (
        capsys.readouterr().err
    )


# ----------------------------------------------------------------------------- entry points
def test_python_dash_m_ampczoo_help_is_fast_and_light():
    proc = subprocess.run(
        [sys.executable, "-m", "ampczoo", "--help"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    for command in ("demo", "collect", "train", "bench", "data", "eval"):
        assert f"\n  {command} " in proc.stdout
    code = "import sys; from ampczoo.cli import main; main(['--help']); print(sorted(sys.modules))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    loaded = proc.stdout.splitlines()[-1]
    assert "'torch'" not in loaded and "'tyro'" not in loaded


def test_no_command_prints_usage_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "usage: ampczoo" in capsys.readouterr().out


def test_eval_is_wired_lazily(capsys, monkeypatch):
    if importlib.util.find_spec(EVAL_MODULE) is None:
        assert cli.main(["eval", "--help"]) == 2
        assert "not available" in capsys.readouterr().err
        return
    module = importlib.import_module(EVAL_MODULE)
    text = run_help(["eval"], capsys, monkeypatch)
    assert_fields_documented(module.EvalConfig, text)


@pytest.mark.parametrize("policy", TRAINABLE)
def test_every_trainable_type_has_a_flag_per_config_field(policy, capsys, monkeypatch):
    text = run_help(["train", policy], capsys, monkeypatch)
    for f in dataclasses.fields(registry.config_class(policy)):
        if f.name != "type":
            assert "--policy." + f.name.replace("_", "-") in text, f.name


@pytest.mark.parametrize("policy", TRAINABLE)
def test_every_policy_flag_has_help_text(policy, capsys, monkeypatch):
    helps = policy_flag_help(["train", policy], capsys, monkeypatch)
    fields = [f.name for f in dataclasses.fields(registry.config_class(policy)) if f.name != "type"]
    assert sorted(helps) == sorted("--policy." + name.replace("_", "-") for name in fields)
    assert not [name for name, text in helps.items() if not text], "flags without help"


def test_undocumented_policy_field_is_a_flag_without_help(monkeypatch, capsys):
    entry = f"{UndocumentedToyPolicy.__module__}:{UndocumentedToyPolicy.__qualname__}"
    monkeypatch.setitem(registry.POLICY_TYPES, UndocumentedToyPolicy.name, entry)
    helps = policy_flag_help(["train", UndocumentedToyPolicy.name], capsys, monkeypatch)
    assert helps["--policy.depth"] == ""
    assert helps["--policy.width"] == "hidden units of the toy's single hidden layer"


# ----------------------------------------------------------------------------- data
@pytest.mark.parametrize(
    "sub,config_name,positional",
    [
        ("import-robomimic", "ImportRobomimicConfig", ("file", "out")),
        ("export-robomimic", "ExportRobomimicConfig", ("store", "file")),
    ],
)
def test_data_commands_take_positional_paths_and_document_every_field(
    sub, config_name, positional, capsys, monkeypatch
):
    from ampczoo.data import robomimic

    cls = getattr(robomimic, config_name)
    assert cli.DATA_COMMANDS[sub].config == f"ampczoo.data.robomimic:{config_name}"
    text = run_help(["data", sub], capsys, monkeypatch)
    usage = f"usage: ampczoo data {sub} [-h] {' '.join(p.upper() for p in positional)}"
    assert usage in text
    assert_fields_documented(cls, text, skip=positional)
    docs = attribute_docstrings(cls)
    assert all(docs[name] in text for name in positional)
    args = ["a", "b"] + (["--obs-keys", "object", "x"] if sub == "import-robomimic" else [])
    cfg = cli.parse_config(cls, args, positional=positional)
    assert (getattr(cfg, positional[0]), getattr(cfg, positional[1])) == ("a", "b")
    if sub == "import-robomimic":
        assert cfg.obs_keys == ("object", "x") and cfg.env is None
