"""Fixtures shared across the test modules."""
import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's torch work on one thread: timings and float summation order stay stable."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
