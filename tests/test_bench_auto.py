"""scripts/bench_auto.py: a charrnn run and the best n-gram of the same split, side by side."""

import importlib.util
import json
from pathlib import Path

import pytest

from charrnn.data import load_corpus, split_train_val

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
_spec = importlib.util.spec_from_file_location("bench_auto", SCRIPTS / "bench_auto.py")
bench_auto = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_auto)
ngram = bench_auto.best_ngram.__globals__

KEYS = ["model=gru", "hidden_size=8", "num_layers=1", "batch_size=2", "seq_length=8",
        "max_iters=3", "eval_every=3", "val_frac=0.2", "threads=1"]


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("the quick brown fox jumps over the lazy dog\n" * 12)
    return path


def test_a_row_is_the_run_beside_the_ngram_of_its_own_split(text, tmp_path, capsys):
    bench_auto.main([str(text), "--json", "--keep", str(tmp_path / "runs"),
                     *[x for k in KEYS for x in ("--set", k)]])
    row = json.loads(capsys.readouterr().out)
    summary_loss = json.loads((tmp_path / "runs" / "0-t" / "metrics.jsonl").read_text()
                              .splitlines()[-1])["val_loss"]
    assert row["best_val_loss"] == pytest.approx(summary_loss)
    assert (row["model"], row["iterations"], row["text"]) == ("gru 1x8", 3, str(text))
    corpus = load_corpus(text)
    train, val = split_train_val(corpus.ids, 0.2)
    expected = ngram["best_ngram"](train, val, len(corpus.vocab))["best"]
    timing = {"seconds"}
    assert row["n_val"] == len(val)
    assert {k: v for k, v in row["ngram"].items() if k not in timing} == \
        {k: v for k, v in expected.items() if k not in timing}
    assert row["difference"] == pytest.approx(row["best_val_loss"] - expected["loss"])
    assert row["wall_seconds"] > 0 and row["peak_mb"] > 0


def test_the_table_names_the_text_and_the_best_ngram(text, capsys):
    bench_auto.main([str(text), *[x for k in KEYS for x in ("--set", k)]])
    header, line = capsys.readouterr().out.splitlines()
    assert header.split()[:3] == ["text", "chars", "model"]
    assert line.startswith("t.txt") and "gru 1x8" in line and ", order " in line


def test_a_failed_run_is_one_line_naming_the_text(text, capsys):
    with pytest.raises(SystemExit) as e:
        bench_auto.main([str(text), "--set", "hidden_size=-1"])
    assert str(e.value).startswith(f"bench_auto: charrnn train {text} exited 2: ")
    assert "hidden_size" in str(e.value)
