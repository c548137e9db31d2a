from pathlib import Path

import numpy as np
import pytest

SHAKESPEARE = Path(__file__).resolve().parents[2] / "shared" / "data" / "tinyshakespeare.txt"


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def shakespeare():
    if not SHAKESPEARE.is_file():
        pytest.skip(f"{SHAKESPEARE} not found")
    return SHAKESPEARE
