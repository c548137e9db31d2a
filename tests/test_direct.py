"""Direct features (direct.py): hashed n-gram rows added to the logits, RNNME's direct connections."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from charrnn import direct
from charrnn.checkpoint import load_checkpoint
from charrnn.cli import cli
from charrnn.config import load_config
from charrnn.data import Batches, Vocab, corpus_from_text
from charrnn.errors import ConfigError
from charrnn.layers import softmax_cross_entropy
from charrnn.model import (backward, forward, grow_vocab, init_params, loss_and_grads,
                           param_shapes, zero_state)
from charrnn.parallel import InTurn, loss_and_grads as sharded_loss_and_grads
from charrnn.sample import Stepper
from charrnn.train import train

from gradcheck import numerical_grad, rel_error

V, END, ORDER, B = 6, 0, 3, 13
MASK = 2**64 - 1


def _row(codes, k, buckets):
    """The row of table k for the codes (c(x_t), c(x_{t-1}), ...), in Python integers: the
    formula of docs/model.md, written out."""
    h = 0
    for c in codes[:k]:
        h = (h * 0x100000001B3 + c) & MASK
    mixed = ((h ^ (k * 0x9E3779B97F4A7C15 & MASK)) * 0xBF58476D1CE4E5B9) & MASK
    return (mixed >> 32) % buckets


def test_rows_are_the_documented_hash_of_the_last_characters():
    ids = np.array([[4, 1, 5, 2]]).T                 # (T, N) = (4, 1), one stream
    context = np.array([[3, 2]])                     # the two ids before the chunk
    rows = direct.rows(ids, context, ORDER, B)
    seen = [3, 2, 4, 1, 5, 2]
    for t in range(4):
        back = [seen[2 + t - j] + 1 for j in range(ORDER)]   # c(x_t), c(x_{t-1}), ...
        assert rows[t, 0].tolist() == [_row(back, k, B) for k in (1, 2, 3)]
    # no context: the characters before the chunk hash as absent (code 0)
    alone = direct.rows(ids, None, ORDER, B)
    assert alone[0, 0].tolist() == [_row([5, 0, 0], k, B) for k in (1, 2, 3)]
    assert alone[1, 0].tolist() == [_row([2, 5, 0], k, B) for k in (1, 2, 3)]
    np.testing.assert_array_equal(alone[2:], rows[2:])


def test_a_context_never_reaches_back_past_the_end_mark():
    """In a model of documents the characters before the end mark that starts a document hash
    as absent: its rows are those of the document read alone."""
    ids = np.array([[4, 1, END, 5, 2]]).T
    rows = direct.rows(ids, np.array([[3, 2]]), ORDER, B, end=END)
    alone = direct.rows(ids[2:], None, ORDER, B, end=END)
    np.testing.assert_array_equal(rows[2:], alone)
    assert rows[2, 0].tolist() == [_row([END + 1, 0, 0], k, B) for k in (1, 2, 3)]
    # without end, the context runs on through the end mark
    assert direct.rows(ids, np.array([[3, 2]]), ORDER, B)[3, 0, 2] == _row([6, 1, 2], 3, B)


def test_context_of_and_the_batches_context():
    ids = np.arange(12).reshape(2, 6)
    np.testing.assert_array_equal(direct.context_of(ids, 0, 2), [[-1, -1], [-1, -1]])
    np.testing.assert_array_equal(direct.context_of(ids, 1, 2), [[-1, 0], [-1, 6]])
    np.testing.assert_array_equal(direct.context_of(ids, 4, 2), [[2, 3], [8, 9]])
    assert direct.context_of(ids, 4, 0).shape == (2, 0)
    text_ids = np.arange(25) % 7
    batches = Batches(text_ids, 2, 3)                 # streams of 12: 4 chunks a pass
    assert batches.context(5, 0) is None
    np.testing.assert_array_equal(batches.context(0, 2), [[-1, -1], [-1, -1]])
    np.testing.assert_array_equal(batches.context(4, 2), [[-1, -1], [-1, -1]])  # a new pass
    inputs, _, _ = batches.chunk(1)
    previous, _, _ = batches.chunk(0)
    np.testing.assert_array_equal(batches.context(1, 2), previous[:, 1:])
    assert inputs.shape == (2, 3)


def _model(cell, rng, dtype=np.float64):
    params = init_params(cell, V, 4, 2, rng, dtype=dtype, direct_order=ORDER, direct_size=B)
    for p in params.values():   # every parameter non-zero, the tables included
        p += (rng.standard_normal(p.shape) * 0.3).astype(dtype)
    return params


def test_the_tables_are_a_parameter_that_starts_at_zero(rng):
    assert param_shapes("gru", V, 4, 2, direct_order=ORDER, direct_size=B)["Wd"] == (ORDER, B, V)
    params = init_params("gru", V, 4, 2, rng, direct_order=ORDER, direct_size=B)
    assert params["Wd"].dtype == np.float32 and not params["Wd"].any()
    plain = init_params("gru", V, 4, 2, np.random.default_rng(0))
    same = init_params("gru", V, 4, 2, np.random.default_rng(0), direct_order=2, direct_size=5)
    for name, p in plain.items():      # the same random draws as a model without them
        np.testing.assert_array_equal(same[name], p)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_model_with_direct_features_matches_numerical(cell, rng):
    params = _model(cell, rng)
    ids = rng.integers(0, V, (2, 7))
    ids[0, 3] = END
    targets = rng.integers(0, V, ids.shape)
    context = np.array([[2, 5], [-1, 4]])
    state = [tuple(rng.standard_normal(s.shape) for s in layer)
             for layer in zero_state(cell, 2, 2, 4, np.float64)]

    def objective(p):
        logits, _, _ = forward(p, cell, ids, state, end=END, context=context)
        return np.array(softmax_cross_entropy(logits, targets.T.reshape(-1))[0] / 2)

    logits, _, cache = forward(params, cell, ids, state, end=END, context=context)
    _, _, dlogits = softmax_cross_entropy(logits, targets.T.reshape(-1), 0.5)
    grads, _ = backward(params, cell, dlogits, cache)
    assert list(grads) == list(params)
    for name, value in params.items():
        numeric = numerical_grad(lambda v: objective({**params, name: v}), value, np.array(1.0))
        assert rel_error(grads[name], numeric) < 1e-6, name


def test_logits_backward_adds_a_row_read_twice(rng):
    Wd = rng.standard_normal((2, 3, V))
    rows = np.array([[[1, 2]], [[1, 0]]])           # (T, N, K): row 1 of table 0 read twice
    dlogits = rng.standard_normal((2, V))
    dWd = direct.logits_backward(dlogits, rows, Wd.shape)
    np.testing.assert_allclose(dWd[0, 1], dlogits[0] + dlogits[1])
    np.testing.assert_allclose(dWd[1, 2], dlogits[0])
    np.testing.assert_allclose(dWd[1, 0], dlogits[1])
    assert not dWd[0, [0, 2]].any() and not dWd[1, 1].any()
    np.testing.assert_allclose(direct.logits_forward(Wd, rows),
                               [Wd[0, 1] + Wd[1, 2], Wd[0, 1] + Wd[1, 0]])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_chunks_with_their_context_give_the_whole_sequence(cell, rng):
    params = _model(cell, rng)
    ids = rng.integers(0, V, (3, 9))
    state = zero_state(cell, 2, 3, 4, np.float64)
    whole, _, _ = forward(params, cell, ids, state)
    parts, carried = [], state
    for lo in range(0, 9, 4):
        logits, carried, _ = forward(params, cell, ids[:, lo:lo + 4], carried,
                                     context=direct.context_of(ids, lo, ORDER - 1))
        parts.append(logits.reshape(-1, 3, V))
    np.testing.assert_allclose(np.concatenate(parts).reshape(-1, V), whole, rtol=1e-12)


def test_a_document_scores_as_if_read_alone(rng):
    params = _model("gru", rng)
    ids = rng.integers(1, V, (1, 8))
    ids[0, 4] = END
    logits, _, _ = forward(params, "gru", ids, zero_state("gru", 2, 1, 4, np.float64), end=END,
                           context=np.array([[3, 1]]))
    alone, _, _ = forward(params, "gru", ids[:, 4:], zero_state("gru", 2, 1, 4, np.float64),
                          end=END)
    np.testing.assert_allclose(logits[4:], alone, rtol=1e-12)


@pytest.mark.parametrize("cell, N", [("lstm", 1), ("gru", 3), ("rnn", 2)])
def test_the_stepper_adds_the_same_rows_as_the_forward_pass(cell, N, rng):
    params = {k: v.astype(np.float32) for k, v in _model(cell, rng).items()}
    ids = rng.integers(1, V, (N, 6))     # (the Stepper draws within one document)
    logits, _, _ = forward(params, cell, ids, zero_state(cell, 2, N, 4), end=END)
    stepper = Stepper(params, cell, N, end=END)
    for t in range(6):
        np.testing.assert_allclose(stepper.step(ids[:, t].astype(np.intp)),
                                   logits.reshape(6, N, V)[t], rtol=1e-4, atol=1e-5)


def test_shards_with_direct_features_add_up(rng):
    params = {k: v.astype(np.float32) for k, v in _model("gru", rng).items()}
    ids = rng.integers(0, V, (4, 9))
    targets = rng.integers(0, V, ids.shape)
    context = rng.integers(-1, V, (4, ORDER - 1))
    state = zero_state("gru", 2, 4, 4)
    shards = InTurn()
    shards.threads = 2
    with pytest.MonkeyPatch.context() as m:   # two shards even for this small model
        m.setattr("charrnn.parallel.MIN_SHARD_FLOATS", 1)
        loss2, grads2, _ = sharded_loss_and_grads(params, "gru", ids, targets, state,
                                                  shards=shards, context=context)
    loss, grads, _ = loss_and_grads(params, "gru", ids, targets, state, context=context)
    assert abs(loss2 - loss) < 1e-6
    np.testing.assert_allclose(grads2["Wd"], grads["Wd"], rtol=1e-4, atol=1e-6)


def test_a_grown_vocabulary_starts_the_tables_again(rng):
    old, new = Vocab.from_text("abc"), Vocab.from_text("abcd")
    params = init_params("gru", 3, 4, 1, rng, direct_order=2, direct_size=5)
    params["Wd"] += 1.0
    grown = grow_vocab(params, old, new, rng)
    assert grown["Wd"].shape == (2, 5, 4) and not grown["Wd"].any()


@pytest.mark.parametrize("key, value, message", [
    ("direct_order", -1, "direct_order must be >= 0, got -1"),
    ("direct_size", 0, "direct_size must be >= 1, got 0"),
])
def test_config_errors(key, value, message):
    with pytest.raises(ConfigError) as e:
        load_config(sets=[f"{key}={value}"])
    assert str(e.value) == f"--set: {message}"


TEXT = "".join(f"row {i}: the fox ran {i * 7 % 13} laps.\n" for i in range(80))
SMALL = ["model=gru", "hidden_size=12", "num_layers=1", "batch_size=3", "seq_length=10",
         "eval_every=5", "direct_order=3", "direct_size=64", "dropout=0.1"]


def test_a_run_with_direct_features_resumes_bit_for_bit(tmp_path):
    corpus = corpus_from_text(TEXT)
    full, half = tmp_path / "full", tmp_path / "half"
    full.mkdir()
    half.mkdir()
    train(corpus, *load_config(sets=SMALL + ["max_iters=40"]), full, rng_seed=1, progress=False)
    train(corpus, *load_config(sets=SMALL + ["max_iters=20"]), half, rng_seed=1, progress=False)
    train(corpus, *load_config(sets=SMALL + ["max_iters=40"]), half, progress=False,
          resume=load_checkpoint(half / "last.npz"), changed=("max_iters",))
    a, b = load_checkpoint(full / "last.npz"), load_checkpoint(half / "last.npz")
    assert a.params["Wd"].shape == (3, 64, len(corpus.vocab)) and a.params["Wd"].any()
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name], err_msg=name)
    for name in a.optim_state:
        np.testing.assert_array_equal(a.optim_state[name], b.optim_state[name], err_msg=name)


def test_the_commands_with_direct_features(tmp_path):
    text = tmp_path / "fox.txt"
    text.write_text(TEXT)
    run = tmp_path / "run"
    sets = [arg for key in SMALL for arg in ("--set", key)]
    trained = subprocess.run([sys.executable, "-m", "charrnn", "train", str(text), "--out",
                              str(run), *sets, "--set", "max_iters=30", "--json"],
                             capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr
    runner = CliRunner()
    sample = runner.invoke(cli, ["sample", "-c", str(run), "--seed", "row", "-n", "40",
                                 "--rng-seed", "0", "--json"], catch_exceptions=False)
    assert sample.exit_code == 0
    assert len(json.loads(sample.stdout)["text"]) == 40
    scored = runner.invoke(cli, ["eval", "-c", str(run), str(text), "--json"],
                           catch_exceptions=False)
    assert scored.exit_code == 0 and json.loads(scored.stdout)["n_chars"] == len(TEXT) - 1
    shown = runner.invoke(cli, ["viz", "-c", str(run), str(text), "--length", "300",
                                "-o", str(tmp_path / "v.html")], catch_exceptions=False)
    assert shown.exit_code == 0 and (tmp_path / "v.html").exists()
    for name, kind in (("m.html", "a page"), ("m.onnx", "ONNX")):
        refused = runner.invoke(cli, ["export", str(run), "-o", str(tmp_path / name)])
        assert refused.exit_code == 1
        assert refused.stderr == (f"Error: {run / 'best.npz'}: a model with direct features "
                                  f"(direct_order 3) cannot be exported as {kind} yet (it has no "
                                  "hashed tables); export it as .npz\n")
        assert not (tmp_path / name).exists()
