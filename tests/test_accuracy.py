"""Accuracy on completions (accuracy.py; eval --accuracy; charrnn.score(..., accuracy=True)), on
a model made by hand whose every prediction is known, and greedy decoding in batches against
charrnn.generate one line at a time."""

import json
import math

import numpy as np
import pytest

import charrnn
from charrnn import accuracy
from charrnn.accuracy import greedy_completions
from charrnn.checkpoint import Checkpoint, save_checkpoint
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data import Vocab
from charrnn.model import init_params

from cli_helpers import assert_fails, invoke, usage_error

# The bigram model: the next character depends on the current one alone, as NEXT says. An RNN of
# one layer with no recurrence (Wh = 0), H = V: h = tanh(3 e_id), logits = 10 h Why, Why[i, j] = 1
# for j = NEXT[i]: the character after c gets logit z = 10 tanh(3), every other 0.
NEXT = {"@": "1", "1": "2", "2": ".", ".": "\n", "\n": "a", "a": "b", "b": "@"}
Z = 10 * math.tanh(3.0)
# Teacher-forced, the completions' characters: line 1 '1' '2' '.' all right; line 2 '2' (from '@':
# '1' guessed) wrong, '.' right; line 3 '1' right, '.' (from '1': '2' guessed) wrong. Greedy from
# '@': "12." — line 1's completion; lines 2 and 3 ("2.", "1.") stop at two characters, "12".
TEXT = "1\t1\tab@12.\n2\t1\tab@2.\n1\t1\ta@1.\n"
RIGHT_LOGP = -math.log1p(6 * math.exp(-Z))        # the log-probability of the guessed character
LOSS = -(5 * RIGHT_LOGP + 2 * (RIGHT_LOGP - Z)) / 7  # 5 of the 7 characters guessed


def bigram(completion="@."):
    vocab = Vocab.from_text("".join(NEXT))
    V = len(vocab)
    eye = np.eye(V, dtype=np.float32)
    why = np.zeros((V, V), np.float32)
    for a, b in NEXT.items():
        why[vocab.stoi[a], vocab.stoi[b]] = 10.0
    params = {"embed": 3 * eye, "Wx": eye[None].copy(), "Wh": np.zeros((1, V, V), np.float32),
              "b": np.zeros((1, V), np.float32), "Why": why, "by": np.zeros(V, np.float32)}
    return Checkpoint(params=params, vocab=vocab,
                      model_cfg=ModelConfig(model="rnn", hidden_size=V, num_layers=1),
                      train_cfg=TrainConfig(completion=completion, threads=1))


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "bigram.npz"
    save_checkpoint(path, bigram())
    (tmp_path / "test.txt").write_text(TEXT, encoding="utf-8")
    return path


LEVELS = [{"length": 1, "nesting": 1, "n_chars": 5, "accuracy": 0.8, "correct_chars": 4,
           "exact_match": 0.5, "exact_lines": 1, "n_lines": 2},
          {"length": 2, "nesting": 1, "n_chars": 2, "accuracy": 0.5, "correct_chars": 1,
           "exact_match": 0.0, "exact_lines": 0, "n_lines": 1}]


def test_score_with_accuracy_on_the_hand_made_model():
    scores = charrnn.score(bigram(), TEXT, accuracy=True)
    assert scores.pop("loss") == pytest.approx(LOSS, rel=1e-5)
    assert scores.pop("bits_per_char") == pytest.approx(LOSS / math.log(2), rel=1e-5)
    assert scores.pop("perplexity") == pytest.approx(math.exp(LOSS), rel=1e-5)
    assert scores.pop("logprobs") == pytest.approx([RIGHT_LOGP] * 3 + [RIGHT_LOGP - Z,
                                                   RIGHT_LOGP, RIGHT_LOGP, RIGHT_LOGP - Z],
                                                   abs=1e-5)
    assert scores == {"n_chars": 7, "completion": "@.", "accuracy": 5 / 7, "correct_chars": 5,
                      "exact_match": 1 / 3, "exact_lines": 1, "n_lines": 3, "levels": LEVELS,
                      "skipped": 0}


def test_eval_accuracy_text(model_file):
    path = model_file.parent / "test.txt"
    result = invoke(["eval", "-c", model_file, path, "--accuracy"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        f"{path}: loss {LOSS:.4f} nats/char, {LOSS / math.log(2):.4f} bits/char, perplexity "
        f"{math.exp(LOSS):.3f}, 7 completion characters (after '@', through '.')\n"
        f"{path}: accuracy 71.43 % teacher-forced (5 of 7 characters), exact match 33.33 % "
        "(1 of 3 lines)\n"
        "  L=1 N=1: accuracy 80.00 % teacher-forced (4 of 5 characters), exact match 50.00 % "
        "(1 of 2 lines)\n"
        "  L=2 N=1: accuracy 50.00 % teacher-forced (1 of 2 characters), exact match 0.00 % "
        "(0 of 1 line)\n")


def test_eval_accuracy_json_over_two_files(model_file, tmp_path):
    labelled, plain = tmp_path / "test.txt", tmp_path / "plain.txt"
    plain.write_text("b@12.\nab@2.\n", encoding="utf-8")      # no labels: no levels
    result = invoke(["eval", "-c", model_file, labelled, plain, "--accuracy", "--json"],
                    catch_exceptions=False)
    report = json.loads(result.stdout)
    files = report.pop("files")
    assert files[0]["file"] == str(labelled) and files[0]["levels"] == LEVELS
    assert {k: files[1][k] for k in ("file", "n_chars", "accuracy", "correct_chars",
                                     "exact_match", "exact_lines", "n_lines")} == {
        "file": str(plain), "n_chars": 5, "accuracy": 0.8, "correct_chars": 4,
        "exact_match": 0.5, "exact_lines": 1, "n_lines": 2}
    assert "levels" not in files[1]
    assert report["n_chars"] == 12 and report["correct_chars"] == 9
    assert (report["exact_lines"], report["n_lines"], report["levels"]) == (2, 5, LEVELS)
    text = invoke(["eval", "-c", model_file, labelled, plain, "--accuracy"]).stdout.splitlines()
    assert text[-4:] == [f"total: loss {report['loss']:.4f} nats/char, "
                         f"{report['bits_per_char']:.4f} bits/char, perplexity "
                         f"{report['perplexity']:.3f}, 12 completion characters (after '@', "
                         "through '.')",
                         "total: accuracy 75.00 % teacher-forced (9 of 12 characters), exact "
                         "match 40.00 % (2 of 5 lines)",
                         "  L=1 N=1: accuracy 80.00 % teacher-forced (4 of 5 characters), exact "
                         "match 50.00 % (1 of 2 lines)",
                         "  L=2 N=1: accuracy 50.00 % teacher-forced (1 of 2 characters), exact "
                         "match 0.00 % (0 of 1 line)"]


def test_eval_scores_only_the_completions_and_writes_them_per_char(model_file, tmp_path):
    path, tsv = tmp_path / "test.txt", tmp_path / "c.tsv"
    result = invoke(["eval", "-c", model_file, path, "--per-char", tsv, "--worst", "2",
                     "--json"], catch_exceptions=False)
    report = json.loads(result.stdout)
    assert report["n_chars"] == 7 and report["completion"] == "@."
    rows = [r.split("\t") for r in tsv.read_text().splitlines()[1:]]
    assert [(int(r[1]), r[2]) for r in rows] == [(7, "1"), (8, "2"), (9, "."), (18, "2"),
                                                 (19, "."), (27, "1"), (28, ".")]
    assert [(w["line"], w["column"], w["char"]) for w in report["worst"]] == [(2, 8, "2"),
                                                                              (3, 8, ".")]


def test_accuracy_needs_a_completion_setting(model_file, tmp_path):
    plain = tmp_path / "plain.npz"
    save_checkpoint(plain, bigram(completion=""))
    assert_fails(invoke(["eval", "-c", plain, tmp_path / "test.txt", "--accuracy"]), 2,
                 usage_error("eval", "[OPTIONS] FILE...",
                             f"Invalid value for '--accuracy': {plain} was trained without a "
                             "completion setting (the completion key), and accuracy is "
                             "measured on completions"))
    with pytest.raises(charrnn.ConfigError) as e:
        charrnn.score(charrnn.load(plain), "ab@12.\n", accuracy=True)
    assert str(e.value) == (f"{plain} was trained without a completion setting (the completion "
                            "key), and accuracy is measured on completions")


def test_texts_without_completions_or_with_half_their_labels_are_refused(model_file, tmp_path):
    (tmp_path / "none.txt").write_text("ab\nba\n", encoding="utf-8")
    (tmp_path / "half.txt").write_text("1\t1\tab@12.\nab@2.\n", encoding="utf-8")
    assert_fails(invoke(["eval", "-c", model_file, tmp_path / "none.txt"]), 1,
                 f"Error: {tmp_path / 'none.txt'}: no completion to score: completion '@.' "
                 "scores the characters after '@' up to and including '.', and the text has "
                 "none\n")
    assert_fails(invoke(["eval", "-c", model_file, tmp_path / "half.txt", "--accuracy"]), 1,
                 f"Error: {tmp_path / 'half.txt'}: line 2 has no L<TAB>N<TAB> label, but other "
                 "lines have one (scripts/learning_to_execute.py --labels writes them on every "
                 "line)\n")


def test_batched_greedy_decoding_is_generate_line_by_line(monkeypatch):
    """Prompts of many lengths (one of the separator alone), in batches of 2 and prompt
    chunks of 2 columns, on a random LSTM in float64: the same answers as charrnn.generate
    with greedy=True and stop=('.',) from each prompt alone."""
    monkeypatch.setattr(accuracy, "DECODE_BATCH", 2)
    monkeypatch.setattr(accuracy, "PRIME_CHUNK", 2)
    rng = np.random.default_rng(4)
    vocab = Vocab.from_text("\n.0123@ab")
    params = init_params("lstm", len(vocab), 6, 2, rng, dtype=np.float64)
    for p in params.values():
        p += rng.standard_normal(p.shape) * 0.5
    params["by"][vocab.stoi["."]] += 1.5                      # some answers end early
    model = Checkpoint(params=params, vocab=vocab,
                       model_cfg=ModelConfig(model="lstm", hidden_size=6, num_layers=2),
                       train_cfg=TrainConfig(completion="@.", threads=1))
    prompts = ["\nab@", "@", "\na0b1a2b3@", "\n@", "\n3210ab@", "\nb@", "\nabab0@"]
    caps = [6, 3, 8, 1, 5, 7, 4]
    expected = [charrnn.generate(model, p, cap, greedy=True, stop=(".",))
                for p, cap in zip(prompts, caps)]
    assert any(e.endswith(".") for e in expected) and any(len(e) == c
                                                          for e, c in zip(expected, caps))
    assert greedy_completions(model, prompts, caps) == expected
