"""The zoo index: every shipped checkpoint's card, ``list_policies(env=..., model=...)``,
malformed cards refused, and the card a training run writes."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import ampczoo
from ampczoo.core import registry
from ampczoo.core.card import CARD_NAME, command_line, read_card, validate_card
from ampczoo.core.checkpoint import read_config

SHIPPED = ampczoo.list_policies()
AMPCZOO_ENVS = sorted(
    env_id for env_id, spec in gym.registry.items() if str(spec.entry_point).startswith("ampczoo.")
)
REPO = Path(__file__).resolve().parents[2]


def test_the_zoo_is_not_empty():
    assert len(SHIPPED) >= 11 and "dampc-kuka-obstacle" in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_card_is_valid_and_true(name):
    """env registered, model = config.json's type, size and parameter count of the files,
    a result on a results page (or a note saying why there is none), a base of the env."""
    card = ampczoo.zoo_card(name)
    folder = registry.ZOO_DIR / name
    assert card["env"] in gym.registry
    assert card["model"] == read_config(folder)["type"]
    assert card["size_bytes"] == (folder / "model.safetensors").stat().st_size
    policy = ampczoo.load_policy(name, device="cpu")
    assert card["parameters"] == policy.num_parameters()
    assert (
        policy.config.obs_dim
        == gym.spec(card["env"]).make(**card.get("env_kwargs", {})).observation_space.shape[0]
    )
    assert card["data"]["path"] and card["command"]
    result = card["result"]
    assert result is not None, "a shipped checkpoint records its measured result"
    if result["success_rate"] is None:
        assert "note" in result or "note" in card
    else:
        lo, hi = result["ci95"]
        assert lo <= result["success_rate"] <= hi and result["episodes"] > 0
    if (REPO / "docs").is_dir():  # source checkout: the results page exists
        assert (REPO / result["page"]).is_file(), result["page"]
    if "base" in card:
        assert ampczoo.zoo_card(card["base"])["env"] == card["env"]


@pytest.mark.parametrize("name", SHIPPED)
def test_refiner_types_name_their_base(name):
    from ampczoo.policies.refiner import ChunkRefiner

    card = ampczoo.zoo_card(name)
    is_refiner = issubclass(registry.policy_class(card["model"]), ChunkRefiner)
    assert ("base" in card) == is_refiner


def test_list_policies_by_env_partitions_the_zoo():
    by_env = {env_id: ampczoo.list_policies(env=env_id) for env_id in AMPCZOO_ENVS}
    for env_id, names in by_env.items():
        assert names == sorted(n for n in SHIPPED if ampczoo.zoo_card(n)["env"] == env_id)
    listed = [n for names in by_env.values() for n in names]
    assert sorted(listed) == SHIPPED  # each checkpoint under exactly one env
    assert by_env["ThreeDOF-Reach-v0"] == [
        "residual-sac-threedof",
        "threedof-ffn-h10",
        "threedof-gru-h10",
        "threedof-lstm-h10",
        "threedof-transformer-h10",
    ]
    assert {"dampc-kuka", "lsm-kuka"} <= set(by_env["DAMPC-KukaTrack-v0"])


def test_list_policies_filters_by_model():
    kuka = "DAMPC-KukaTrackObstacle-v0"
    dampc = ampczoo.list_policies(env=kuka, model="dampc")
    assert {"dampc-kuka-obstacle", "dampc40-kuka-obstacle"} <= set(dampc)
    assert all(ampczoo.zoo_card(n)["model"] == "dampc" for n in dampc)
    assert ampczoo.list_policies(model="gru") == ["threedof-gru-h10"]


def test_list_policies_env_without_zoo_is_empty_unknown_env_or_model_raises():
    assert ampczoo.list_policies(env="CartPole-v1") == []  # registered, nothing shipped
    with pytest.raises(ValueError, match="not a registered Gymnasium env id"):
        ampczoo.list_policies(env="DAMPC-KukaTrak-v0")  # typo
    with pytest.raises(ValueError, match="unknown policy type"):
        ampczoo.list_policies(model="dampcc")


# ----------------------------------------------------------------------------- malformed
@pytest.fixture
def toy_zoo(tmp_path, monkeypatch):
    """A zoo of three checkpoint folders (config.json only) with valid cards, a refiner and
    its base among them; returns a writer of one checkpoint's card."""
    for name in ("lsm-kuka-obstacle", "dampc-kuka-obstacle", "diffog-kuka-obstacle"):
        (tmp_path / name).mkdir()
        shutil.copy(registry.ZOO_DIR / name / "config.json", tmp_path / name)
        shutil.copy(registry.ZOO_DIR / name / CARD_NAME, tmp_path / name)
    monkeypatch.setattr(registry, "ZOO_DIR", tmp_path)

    def write(name: str, **changes):
        card = json.loads((tmp_path / name / CARD_NAME).read_text())
        for key, value in changes.items():
            if value is _DELETE:
                card.pop(key)
            else:
                card[key] = value
        (tmp_path / name / CARD_NAME).write_text(json.dumps(card))

    return write


_DELETE = object()
RESULT = {
    "success_rate": 50.0,
    "ci95": [40.0, 60.0],
    "episodes": 100,
    "date": "2026-11-22",
    "benchmark": "ampczoo bench kuka",
    "page": "docs/results/kuka.md",
}


def test_toy_zoo_cards_are_valid(toy_zoo):
    assert registry.list_policies() == [
        "dampc-kuka-obstacle",
        "diffog-kuka-obstacle",
        "lsm-kuka-obstacle",
    ]
    assert registry.list_policies(env="DAMPC-KukaTrackObstacle-v0", model="lsm") == [
        "lsm-kuka-obstacle"
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"env": _DELETE}, "missing field 'env'"),
        ({"env": "Nope-v0"}, "not a registered Gymnasium env id"),
        ({"env": None}, "env must name a registered env id"),
        ({"model": "dampc"}, "!= config.json type 'lsm'"),
        ({"model": 3}, "model must be str"),
        ({"sucess_rate": 50}, "unknown field 'sucess_rate'"),
        ({"data": "data/x.zarr"}, "data must be dict"),
        ({"data": {"episodes": 3}}, "missing field 'data.path'"),
        ({"date": "22.11.2026"}, "date must be YYYY-MM-DD"),
        ({"size_bytes": -1}, "size_bytes must be > 0"),
        ({"demo": "yes"}, "demo must be bool"),
        ({"selection": "final"}, "selection must be one of"),
        ({"base": "lsm-kuka-obstacle"}, "is not another zoo checkpoint"),
        ({"base": "dampc-kuka"}, "is not another zoo checkpoint"),
        ({"result": {**RESULT, "success_rate": 70.0}}, "outside result.ci95"),
        ({"result": {**RESULT, "success_rate": 150.0, "ci95": [40.0, 160.0]}}, "[0, 100]"),
        ({"result": {**RESULT, "ci95": [60.0, 40.0]}}, "0 <= lo <= hi <= 100"),
        ({"result": {**RESULT, "ci95": None}}, "ci95 is required"),
        ({"result": {**RESULT, "page": "README.md"}}, "docs/results/<bench>.md"),
        ({"result": {**RESULT, "episodes": None}}, "needs result.episodes"),
        ({"result": {**RESULT, "success_rate": True}}, "success_rate must be"),
        ({"result": {**RESULT, "success_rate": None, "ci95": None}, "note": _DELETE}, "note"),
        ({"result": {**RESULT, "success_rate": None}}, "ci95 must be null"),
    ],
)
def test_malformed_card_is_refused(toy_zoo, changes, message):
    toy_zoo("lsm-kuka-obstacle", **changes)
    with pytest.raises(ValueError, match="malformed card") as err:
        registry.zoo_card("lsm-kuka-obstacle")
    assert message in str(err.value)
    with pytest.raises(ValueError):  # the index does not skip it silently
        registry.list_policies(env="DAMPC-KukaTrackObstacle-v0")
    registry.zoo_card("diffog-kuka-obstacle")  # the other card is still read


def test_refiner_base_must_be_a_shipped_checkpoint_of_its_env(toy_zoo):
    assert registry.zoo_card("diffog-kuka-obstacle")["base"] == "dampc-kuka-obstacle"
    toy_zoo("dampc-kuka-obstacle", env="DAMPC-KukaTrack-v0")
    with pytest.raises(ValueError, match="is not a zoo checkpoint of 'DAMPC-KukaTrackObstacle"):
        registry.zoo_card("diffog-kuka-obstacle")
    shutil.rmtree(registry.ZOO_DIR / "dampc-kuka-obstacle")
    with pytest.raises(ValueError, match="is not another zoo checkpoint"):
        registry.zoo_card("diffog-kuka-obstacle")


def test_missing_or_corrupt_card_and_unknown_name(toy_zoo):
    card_file = registry.ZOO_DIR / "lsm-kuka-obstacle" / CARD_NAME
    card_file.write_text("{not json")
    with pytest.raises(ValueError, match="corrupt JSON"):
        registry.zoo_card("lsm-kuka-obstacle")
    card_file.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must be a JSON object"):
        registry.zoo_card("lsm-kuka-obstacle")
    card_file.unlink()
    with pytest.raises(ValueError, match="no card.json"):
        registry.zoo_card("lsm-kuka-obstacle")
    with pytest.raises(ValueError, match="not a zoo policy"):
        registry.zoo_card("no-such-checkpoint")


def test_null_success_rate_with_a_note_is_valid():
    card = ampczoo.zoo_card("lsm-kuka")
    card = {**card, "result": {**card["result"], "success_rate": None, "ci95": None}}
    assert validate_card(card) is card  # the card's own note says why
    card.pop("note")
    with pytest.raises(ValueError, match="needs a note"):
        validate_card(card)


def test_command_line_names_no_folder_of_this_machine():
    package = Path(ampczoo.__file__).parent
    assert command_line([str(package / "__main__.py"), "train", "a b"]) == (
        "python -m ampczoo train 'a b'"
    )
    assert command_line([str(package / "cli.py"), "demo"]) == "python -m ampczoo.cli demo"
    assert command_line(["/opt/x/.venv/bin/ampczoo", "bench"]) == "ampczoo bench"
    assert command_line([".venv/bin/ampczoo", "bench"]) == "ampczoo bench"
    assert command_line(["scripts/run.py", "--x"]) == "scripts/run.py --x"


# ----------------------------------------------------------------------------- training
def test_training_run_writes_a_card(tmp_path):
    from ampczoo.data.store import Episode, EpisodeStore
    from ampczoo.training.supervised import TrainConfig, train

    data = tmp_path / "toy.zarr"
    store = EpisodeStore(data)
    rng = np.random.default_rng(0)
    episodes = []
    for e in range(5):
        obs = rng.normal(size=(12, 16)).astype(np.float32)
        u = np.repeat(np.tanh(obs[:, None, :7]), 3, axis=1).astype(np.float32)
        episodes.append(Episode(e, e, 12, data={"obs": obs, "u_seq": u}))
    store.add_episodes(episodes)
    kwargs = {"control_dt": 0.1, "obstacle_placement": "between", "simulation": "kinematic"}
    store.update_attrs({"env": "DAMPC-KukaTrack-v0", "env_kwargs": kwargs})
    out = tmp_path / "run"
    cfg = TrainConfig(
        policy="lsm",
        data=str(data),
        out=str(out),
        epochs=1,
        batch_size=16,
        warmup_steps=1,
        val_fraction=0.2,
        policy_overrides={"hidden_dim": 8, "num_layers": 1},
    )
    train(cfg)
    for selection in ("last", "best"):
        card = read_card(out / selection)
        assert card is not None, f"{selection}/ has no card"
        assert card["env"] == "DAMPC-KukaTrack-v0" and card["model"] == "lsm"
        # the scenario travels with the checkpoint; how the collection simulated does not
        assert card["env_kwargs"] == {"control_dt": 0.1, "obstacle_placement": "between"}
        assert card["data"] == {"path": str(data), "command": None, "episodes": 5, "samples": 60}
        assert card["command"] and card["result"] is None
        assert card["date"] == datetime.date.today().isoformat()
        assert card["selection"] == selection
        policy = ampczoo.load_policy(out / selection, device="cpu")  # card.json is ignored
        assert card["parameters"] == policy.num_parameters()
