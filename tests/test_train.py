"""Training end to end through the library: the seeds' toys, and min-char-rnn (slow)."""

import json
import math
from pathlib import Path

import pytest

from charrnn.checkpoint import load_checkpoint
from charrnn.config import load_config
from charrnn.data import corpus_from_text, load_corpus
from charrnn.sample import generate

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _text(s):
    return corpus_from_text(s, "test text")


def test_hello_toy(tmp_path):
    """configs/hello.yaml: the chunk loss (summed over its 4 characters, as min-char-rnn reports
    it) falls from about 4 ln 4 = 5.5 to below 0.25 in 100 SGD steps; greedy decoding from 'h'
    gives back 'hello'."""
    from charrnn.train import train

    model_cfg, train_cfg = load_config(CONFIGS / "hello.yaml")
    summary = train(_text("hello"), model_cfg, train_cfg, tmp_path, rng_seed=0, progress=False)
    T = train_cfg.seq_length
    assert summary["initial_train_loss"] * T == pytest.approx(4 * math.log(4), abs=0.3)
    assert summary["final_train_loss"] * T < 0.25
    ckpt = load_checkpoint(tmp_path)
    assert "h" + "".join(generate(ckpt, "h", 4, greedy=True)) == "hello"


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_a_short_corpus_is_overfit(cell, tmp_path):
    from charrnn.train import train

    model_cfg, train_cfg = load_config(sets=[
        f"model={cell}", "hidden_size=32", "num_layers=1", "batch_size=1", "seq_length=19",
        "learning_rate=0.01", "max_iters=300", "eval_every=300", "val_frac=0.0"])
    summary = train(_text("the quick brown fox."), model_cfg, train_cfg, tmp_path, rng_seed=1,
                    progress=False)
    assert summary["final_train_loss"] < 0.1
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["iteration"] for line in lines] == [300]


@pytest.mark.slow
def test_min_char_rnn_on_tinyshakespeare(shakespeare, tmp_path):
    """configs/min-char-rnn.yaml: loss per character from ln 65 = 4.17 to below 2.4 within
    20,000 iterations, as Karpathy's min-char-rnn."""
    from charrnn.train import train

    model_cfg, train_cfg = load_config(CONFIGS / "min-char-rnn.yaml")
    summary = train(load_corpus(shakespeare), model_cfg, train_cfg, tmp_path, rng_seed=0,
                    progress=False)
    assert summary["initial_train_loss"] == pytest.approx(math.log(65), abs=0.1)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["iteration"] == 20_000
    assert records[-1]["train_loss"] < 2.4  # mean over iterations 18,001 .. 20,000
    assert summary["best_val_loss"] < 2.4
