"""Shared benchmark helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ampczoo.benchmarks.common import single_thread, smoothness


def test_single_thread_restores_the_thread_count_even_on_error():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with pytest.raises(RuntimeError), single_thread():
            assert torch.get_num_threads() == 1
            raise RuntimeError("boom")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_smoothness_metrics():
    a = np.array([[0.0, 0.0], [0.1, 0.0], [0.3, -0.1]])
    m = smoothness(a, dt=0.1, max_delta=np.array([0.15, 0.15]))
    assert np.isclose(m["du max"], (2.0 + 1.0) / 2)
    assert np.isclose(m["viol"], 50.0) and np.isclose(m["viol max"], 0.05)
