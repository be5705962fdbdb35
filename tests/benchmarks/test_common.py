"""Shared benchmark helpers."""

from __future__ import annotations

import pytest
import torch

from ampczoo.benchmarks.common import single_thread


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
