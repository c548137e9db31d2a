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


@pytest.fixture(autouse=True)
def _private_peers(monkeypatch, tmp_path_factory):
    """Each test's charrnn processes register among peers of their own (cores.py): runs of the
    user's on this machine, or another test's leftovers, never change a test's core count."""
    from charrnn import cores

    directory = tmp_path_factory.mktemp("peers")
    monkeypatch.setattr(cores, "peers_dir", lambda: directory)


@pytest.fixture
def cpus(monkeypatch):
    """Set how many CPUs this process may run on, whatever this machine has: cpus(2)."""
    from charrnn import cores

    def set_cpus(n):
        monkeypatch.setattr(cores, "available_cpus", lambda: n)
        monkeypatch.setattr(cores, "env_threads", lambda environ=None: None)
    return set_cpus


# charrnn tune's tests (test_tune*.py): a made-up text and a small search space
@pytest.fixture
def text(tmp_path):
    from tune_helpers import write_text

    return write_text(tmp_path / "words.txt")


@pytest.fixture
def space(tmp_path):
    from tune_helpers import write_space

    return write_space(tmp_path / "space.yaml")
