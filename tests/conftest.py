import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("CLIP_REPRO_QUIET", "1")


@pytest.fixture(scope="session")
def root() -> Path:
    "The repository root."
    return ROOT
