import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("CLIP_REPRO_QUIET", "1")


@pytest.fixture(scope="session")
def root() -> Path:
    "The repository root."
    return ROOT


@pytest.fixture(scope="module")
def one_torch_thread():
    "One torch thread for a module of small-tensor tests, restored afterwards so other modules are unaffected."
    import torch
    old = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
