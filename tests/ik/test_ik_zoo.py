"""The shipped IKDiffuser models (ampczoo/zoo/ikdiffuser-<robot>): load offline, golden samples,
held-out median error bound, card. Entries are written by ``python -m ampczoo.ik.evaluate``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import ampczoo
from ampczoo.ik import IKDiffuser, list_ik_models
from ampczoo.ik.diffuser import ZOO_DIR
from ampczoo.ik.evaluate import GOLDEN_PATH, held_out_errors

SHIPPED = list_ik_models()
GOLDEN = json.loads(GOLDEN_PATH.read_text()) if GOLDEN_PATH.is_file() else {}
ATOL = 1e-4  # float32 kernels differ between CPUs at ~1e-6


def test_ik_models_are_shipped_with_golden_entries_and_kept_out_of_the_policy_index():
    assert {"ikdiffuser-panda", "ikdiffuser-kuka"} <= set(SHIPPED)
    assert set(SHIPPED) == set(GOLDEN)
    assert not set(SHIPPED) & set(ampczoo.list_policies())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_gives_its_golden_samples(name):
    torch.set_num_threads(1)
    model = IKDiffuser.from_pretrained(name)
    entry = GOLDEN[name]
    q = model.sample(np.array(entry["poses"]), 2, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(q.numpy(), np.array(entry["q"]), atol=ATOL)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_error_within_its_bound_and_card(name):
    torch.set_num_threads(1)
    model = IKDiffuser.from_pretrained(name)
    errors = held_out_errors(model)
    assert errors["position_mm"] <= GOLDEN[name]["position_mm_bound"], errors
    assert errors["angle_deg"] <= GOLDEN[name]["angle_deg_bound"], errors
    card = json.loads((ZOO_DIR / name / "card.json").read_text())
    assert card["robot"] == model.robot.name and card["model"] == "ikdiffuser"
    assert card["size_bytes"] == (ZOO_DIR / name / "model.safetensors").stat().st_size < 6e6
    assert card["parameters"] == model.num_parameters()
    assert card["result"]["position_mm"] == pytest.approx(errors["position_mm"], rel=0.05)
