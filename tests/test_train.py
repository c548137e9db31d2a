"""Training end to end through the library: the seeds' toys, and min-char-rnn (slow)."""

import json
import math
from pathlib import Path

import pytest

from charrnn.checkpoint import load_checkpoint
from charrnn.config import load_config
from charrnn.data import corpus_from_text, load_corpus
from charrnn.sample import stream_chars

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
    assert "h" + "".join(stream_chars(ckpt, "h", 4, greedy=True)) == "hello"


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


# --- a completion setting ----------------------------------------------------------------------

# lines of equal length, "ab@c.\n" with c = a * b mod 10: a quarter of the text is 50 whole lines
PRODUCTS = "".join(f"{a}{b}@{a * b % 10}.\n" for a, b in
                   ((i * 7 % 10, i * 3 % 10) for i in range(200)))
COMPLETION = ["completion=@.", "hidden_size=16", "num_layers=1", "batch_size=4",
              "seq_length=10", "learning_rate=0.01", "val_frac=0.25"]


def test_validation_scores_the_completions_with_their_accuracy(tmp_path):
    """The validation loss and accuracy are those of `eval` on the held-out lines: only the
    characters after '@', through '.', counted."""
    import charrnn
    from charrnn.train import train

    model_cfg, train_cfg = load_config(sets=[*COMPLETION, "max_iters=20", "eval_every=20"])
    lines = []
    train(_text(PRODUCTS), model_cfg, train_cfg, tmp_path, rng_seed=0, progress=False,
          log=lines.append)
    assert lines[0] == ("completion '@.': the losses count only the characters after '@' up to "
                        "and including '.'")
    record = json.loads((tmp_path / "metrics.jsonl").read_text())
    val_text = PRODUCTS[-300:]
    assert val_text.startswith("0") and val_text.count("\n") == 50
    scores = charrnn.score(charrnn.load(tmp_path / "last.npz"), val_text, accuracy=True)
    assert scores["n_chars"] == 100                     # a digit and '.' per line
    assert record["val_loss"] == pytest.approx(scores["loss"], rel=1e-12)
    assert record["val_accuracy"] == scores["accuracy"]
    assert lines[-1].startswith("iter 20/20  train ") and \
        f"accuracy {100 * scores['accuracy']:.2f} %" in lines[-1]


def test_chunks_with_nothing_to_score_are_no_divergence(tmp_path):
    """Long prompts, short chunks: most chunks score no character (loss 0, zero gradient);
    training goes on without a rollback, and its loss is the mean over the scored ones."""
    from charrnn.train import train

    text = "".join(f"{'x' * 17}@{i % 10}.\n" for i in range(60))
    model_cfg, train_cfg = load_config(sets=[
        "completion=@.", "hidden_size=8", "num_layers=1", "batch_size=1", "seq_length=5",
        "max_iters=40", "eval_every=20", "optimizer=adam"])
    lines = []
    summary = train(_text(text), model_cfg, train_cfg, tmp_path, rng_seed=0, progress=False,
                    log=lines.append)
    assert not any(line.startswith("warning") for line in lines)
    assert summary["lr_scale"] == 1.0 and summary["iterations"] == 40
    records = [json.loads(r) for r in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["train_loss"]) and r["train_loss"] > 0 for r in records)


def test_a_text_without_completions_is_refused(tmp_path):
    from charrnn.data import DataError
    from charrnn.train import train

    model_cfg, train_cfg = load_config(sets=["completion=@.", "batch_size=2", "seq_length=4"])
    with pytest.raises(DataError) as e:
        train(_text("no separator here. none at all.\n" * 4), model_cfg, train_cfg, tmp_path,
              progress=False)
    assert str(e.value) == ("test text: the training part has no completion to score: "
                            "completion '@.' scores the characters after '@' up to and "
                            "including '.'")


def test_the_vocab_key_gives_the_vocabulary(tmp_path):
    import charrnn

    path = tmp_path / "products.txt"
    path.write_text(PRODUCTS, encoding="utf-8")
    keys = dict(completion="@.", hidden_size=8, num_layers=1, batch_size=4, seq_length=10,
                max_iters=2, eval_every=2)
    summary = charrnn.fit(path, out=tmp_path / "run", vocab="\n@.0123456789+-", **keys)
    assert summary["vocab_size"] == 15
    assert charrnn.load(tmp_path / "run").vocab.chars == "\n+-.0123456789@"   # by code point
    with pytest.raises(charrnn.DataError) as e:
        charrnn.fit(path, out=tmp_path / "other", vocab="\n@.12345", **keys)
    assert str(e.value) == (f"{path}: characters not in the vocabulary that the vocab key "
                            "gives: '0', '6', '7', '8', '9'")
    with pytest.raises(charrnn.ConfigError) as e:
        charrnn.fit(path, out=tmp_path / "tuned", init_from=tmp_path / "run",
                    vocab="\n@.0123456789", **keys)
    assert str(e.value) == (f"--init-from: {tmp_path / 'run'} has a vocabulary of its own, "
                            "which a run started from its weights keeps; leave vocab empty or "
                            "give exactly its characters")
    # given exactly, the vocabulary does not grow by a text's new characters
    other = tmp_path / "sums.txt"
    other.write_text(PRODUCTS + "2=2@4.\n", encoding="utf-8")
    with pytest.raises(charrnn.DataError) as e:
        charrnn.fit(other, out=tmp_path / "tuned", init_from=tmp_path / "run",
                    vocab="\n@.0123456789+-", **keys)
    assert str(e.value) == (f"{other}: characters not in the vocabulary that the vocab key gives: "
                            "'='; leave vocab empty to grow the checkpoint's vocabulary")
    assert not (tmp_path / "tuned").exists()
