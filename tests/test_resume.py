"""Training you can trust: exact resume, --init-from, interruptions, divergence, --dry-run."""

import json
import math
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import charrnn
import charrnn.train as train_module
from charrnn import parallel
from charrnn.checkpoint import load_checkpoint
from charrnn.config import load_config
from charrnn.data import corpus_from_text, load_corpus
from charrnn.train import train

from cli_helpers import invoke

TEXT = "".join(f"line {i}: the cat sat on the mat, {i * 7 % 13} times.\n" for i in range(120))
SMALL = ["hidden_size=12", "num_layers=2", "batch_size=3", "seq_length=10", "eval_every=4",
         "dropout=0.2"]


def _cfg(cell, max_iters, *extra):
    return load_config(sets=[f"model={cell}", *SMALL, f"max_iters={max_iters}", *extra])


@pytest.mark.parametrize("cell, batch", [("rnn", 3), ("lstm", 3), ("gru", 3), ("lstm", 16)],
                         ids=["rnn", "lstm", "gru", "lstm-2-shards"])
def test_stopped_and_resumed_equals_uninterrupted_bit_for_bit(cell, batch, tmp_path,
                                                              monkeypatch):
    """2N iterations straight vs N, then resume for N more: identical parameters and optimizer
    state (with dropout, so the RNG state matters, and a pass boundary inside each half); with
    16 streams each batch is two shards trained in parallel threads."""
    monkeypatch.setattr(parallel, "MIN_SHARD_FLOATS", 8 * 12)   # 8 streams of 12 units a shard
    assert len(parallel.shard_bounds(batch, 12, 2)) == (2 if batch == 16 else 1)
    corpus = corpus_from_text(TEXT[:1500])
    full_dir, half_dir = tmp_path / "full", tmp_path / "half"
    full_dir.mkdir()
    half_dir.mkdir()
    size = f"batch_size={batch}"
    train(corpus, *_cfg(cell, 90, size), full_dir, rng_seed=3, progress=False)
    train(corpus, *_cfg(cell, 45, size), half_dir, rng_seed=3, progress=False)
    half = load_checkpoint(half_dir / "last.npz")
    assert half.iteration == 45
    summary = train(corpus, *_cfg(cell, 90, size), half_dir, progress=False, resume=half,
                    changed=("max_iters",))
    full, resumed = load_checkpoint(full_dir / "last.npz"), load_checkpoint(half_dir / "last.npz")
    assert summary["resumed_from"] == 45 and resumed.iteration == full.iteration == 90
    for name in full.params:
        np.testing.assert_array_equal(resumed.params[name], full.params[name], err_msg=name)
    for name in full.optim_state:
        np.testing.assert_array_equal(resumed.optim_state[name], full.optim_state[name])
    assert resumed.rng_state == full.rng_state
    def evaluations(run_dir):
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
        return [(r["iteration"], r["val_loss"]) for r in map(json.loads, lines)]

    # the same evaluations, plus the one the first half made at its end (iteration 45)
    assert [e for e in evaluations(half_dir) if e[0] != 45] == evaluations(full_dir)


@pytest.mark.parametrize("batch", [3, 16], ids=["one-shard", "2-shards"])
def test_runs_with_the_regularisers_resume_bit_for_bit(batch, tmp_path, monkeypatch):
    """weight_drop, embed_drop, variational dropout and weight_decay on: their masks come from
    the run's generator, so 2N iterations straight equal N, then a resume for N more."""
    monkeypatch.setattr(parallel, "MIN_SHARD_FLOATS", 8 * 12)   # 8 streams of 12 units a shard
    corpus = corpus_from_text(TEXT[:1500])
    extra = (f"batch_size={batch}", "weight_drop=0.3", "embed_drop=0.2", "variational=true",
             "weight_decay=0.05", "optimizer=adam")
    full_dir, half_dir = tmp_path / "full", tmp_path / "half"
    full_dir.mkdir()
    half_dir.mkdir()
    train(corpus, *_cfg("gru", 40, *extra), full_dir, rng_seed=3, progress=False)
    train(corpus, *_cfg("gru", 20, *extra), half_dir, rng_seed=3, progress=False)
    half = load_checkpoint(half_dir / "last.npz")
    assert half.model_cfg.weight_drop == 0.3 and half.train_cfg.weight_decay == 0.05
    train(corpus, *_cfg("gru", 40, *extra), half_dir, progress=False, resume=half,
          changed=("max_iters",))
    full, resumed = load_checkpoint(full_dir / "last.npz"), load_checkpoint(half_dir / "last.npz")
    assert resumed.iteration == full.iteration == 40
    for name in full.params:
        np.testing.assert_array_equal(resumed.params[name], full.params[name], err_msg=name)
    for name in full.optim_state:
        np.testing.assert_array_equal(resumed.optim_state[name], full.optim_state[name])
    assert resumed.rng_state == full.rng_state
    # the levers were on: a run without them ends elsewhere
    plain_dir = tmp_path / "plain"
    plain_dir.mkdir()
    train(corpus, *_cfg("gru", 40, f"batch_size={batch}", "optimizer=adam"), plain_dir,
          rng_seed=3, progress=False)
    plain = load_checkpoint(plain_dir / "last.npz")
    assert not np.array_equal(plain.params["Wh"], full.params["Wh"])


PRODUCTS = "".join(f"{i % 7}{i % 5}@{i % 7 * (i % 5)}.\n" for i in range(150))


def test_completion_runs_resume_bit_for_bit(tmp_path):
    """With a completion setting (chunks with nothing scored among them: seq_length 4) and
    dropout: 2N iterations straight equal N, then a resume for N more."""
    corpus = corpus_from_text(PRODUCTS)
    extra = ("completion=@.", "seq_length=4", "batch_size=3", "optimizer=adam")
    full_dir, half_dir = tmp_path / "full", tmp_path / "half"
    full_dir.mkdir()
    half_dir.mkdir()
    train(corpus, *_cfg("lstm", 60, *extra), full_dir, rng_seed=3, progress=False)
    train(corpus, *_cfg("lstm", 30, *extra), half_dir, rng_seed=3, progress=False)
    half = load_checkpoint(half_dir / "last.npz")
    train(corpus, *_cfg("lstm", 60, *extra), half_dir, progress=False, resume=half,
          changed=("max_iters",))
    full, resumed = load_checkpoint(full_dir / "last.npz"), load_checkpoint(half_dir / "last.npz")
    for name in full.params:
        np.testing.assert_array_equal(resumed.params[name], full.params[name], err_msg=name)
    for name in full.optim_state:
        np.testing.assert_array_equal(resumed.optim_state[name], full.optim_state[name])
    lines = (full_dir / "metrics.jsonl").read_text().splitlines()
    assert all("val_accuracy" in json.loads(line) for line in lines)


# --- going on with another text (--new-text) ---------------------------------------------------

def _fit_products(tmp_path, text, run, **keys):
    import charrnn

    path = tmp_path / f"text-{len(list(tmp_path.glob('text-*')))}.txt"   # a new file each time
    path.write_text(text, encoding="utf-8")
    settings = dict(completion="@.", hidden_size=8, num_layers=1, batch_size=3, seq_length=6,
                    eval_every=5, optimizer="adam", lr_decay=0.9, val_frac=0.2)
    if (run / "last.npz").exists():
        return path, charrnn.fit(path, resume=run, new_text=True, **keys)
    return path, charrnn.fit(path, out=run, rng_seed=2, **settings, **keys)


def test_new_text_carries_the_state_and_reads_the_text_from_its_beginning(tmp_path,
                                                                         monkeypatch):
    first, second = PRODUCTS[:150], PRODUCTS[600:]   # 6 and 14 iterations a pass
    run = tmp_path / "run"
    _fit_products(tmp_path, first, run, max_iters=10)
    before = load_checkpoint(run / "last.npz")
    seen = []
    real = train_module.loss_and_grads

    def recording(params, cell, inputs, targets, state, *args, **kwargs):
        seen.append((inputs.copy(), [s.copy() for layer in state for s in layer]))
        return real(params, cell, inputs, targets, state, *args, **kwargs)

    monkeypatch.setattr(train_module, "loss_and_grads", recording)
    path, summary = _fit_products(tmp_path, second, run, max_iters=17)
    assert summary["iterations"] == 17 and summary["resumed_from"] == 10
    assert summary["changed"] == ["max_iters", "text"]
    # the new text's first chunk (in the run's vocabulary), from a zero state
    batches, _, _, _ = train_module.prepare_data(load_corpus(path, vocab=before.vocab), 0.2, 3, 6,
                                              "@.")
    np.testing.assert_array_equal(seen[0][0], batches.chunk(0)[0])
    assert all(np.all(s == 0) for s in seen[0][1])
    after = load_checkpoint(run / "last.npz")
    assert after.info["text_start"] == 10 and after.info["data_source"] == str(path)
    assert after.info["passes_before"] == 1 and batches.per_pass == 14
    assert np.array_equal(np.load(run / "data.npy"), load_checkpoint(run).vocab.encode(second))
    assert not (run / "data-next.npy").exists()
    # the learning rate: lr_decay counts the pass over the first text
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["learning_rate"] == pytest.approx(2e-3 * 0.9)
    assert before.vocab == after.vocab


def test_a_run_that_switched_texts_resumes_bit_for_bit(tmp_path):
    straight, stopped = tmp_path / "straight", tmp_path / "stopped"
    for run in (straight, stopped):
        _fit_products(tmp_path, PRODUCTS[:600], run, max_iters=8)
    _fit_products(tmp_path, PRODUCTS[600:], straight, max_iters=20)
    _fit_products(tmp_path, PRODUCTS[600:], stopped, max_iters=13)
    import charrnn
    charrnn.fit(resume=stopped, max_iters=20)
    a, b = load_checkpoint(straight / "last.npz"), load_checkpoint(stopped / "last.npz")
    assert a.iteration == b.iteration == 20
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name], err_msg=name)
    for name in a.optim_state:
        np.testing.assert_array_equal(a.optim_state[name], b.optim_state[name])


def test_new_text_outside_the_vocabulary_changes_nothing(tmp_path):
    import charrnn

    run = tmp_path / "run"
    _fit_products(tmp_path, PRODUCTS[:600], run, max_iters=5)
    files = {p.name: p.read_bytes() for p in run.iterdir() if p.name != "lock"}
    with pytest.raises(charrnn.DataError) as e:
        _fit_products(tmp_path, PRODUCTS[600:].replace("3", "x"), run, max_iters=10)
    assert str(e.value) == (f"{tmp_path / 'text-1.txt'}: characters not in the checkpoint's "
                            "vocabulary: 'x'; a resumed run keeps its vocabulary (its optimizer "
                            "state has a row per character): start a new run from its weights "
                            f"with --init-from {run} to grow it")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == files
    with pytest.raises(charrnn.ConfigError) as e:
        charrnn.fit(resume=run, new_text=True, max_iters=10)
    assert str(e.value) == "new_text goes on with file in the run of resume: it needs both"
    with pytest.raises(charrnn.ConfigError) as e:
        charrnn.fit(tmp_path / "text-0.txt", new_text=True, out=tmp_path / "x")
    assert str(e.value) == "new_text goes on with file in the run of resume: it needs both"
    assert isinstance(e.value, charrnn.ArgumentError)


def test_cli_new_text(tmp_path):
    run = tmp_path / "run"
    path, _ = _fit_products(tmp_path, PRODUCTS[:600], run, max_iters=5)
    other = tmp_path / "other.txt"
    other.write_text(PRODUCTS[600:], encoding="utf-8")
    result = invoke(["train", other, "--resume", run, "--new-text", "--set", "max_iters=9",
                     "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["changed"] == ["max_iters", "text"] and summary["iterations"] == 9
    for args in (["train", other, "--new-text"], ["train", "--resume", run, "--new-text"]):
        result = invoke(args)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert result.stderr.endswith("Error: --new-text goes on with FILE in the run of "
                                      "--resume: it needs both\n")
    unseen = tmp_path / "unseen.txt"
    unseen.write_text(PRODUCTS[600:].replace("@", "=").replace("3", "é"), encoding="utf-8")
    result = invoke(["train", unseen, "--resume", run, "--new-text", "--set", "max_iters=12"])
    assert result.exit_code == 1 and "Traceback" not in result.output and result.stdout == ""
    assert result.stderr == (f"Error: {unseen}: characters not in the checkpoint's vocabulary: "
                             "'=', 'é'; a resumed run keeps its vocabulary (its optimizer state "
                             "has a row per character): start a new run from its weights with "
                             f"--init-from {run} to grow it\n")
    assert load_checkpoint(run / "last.npz").iteration == 9


def _sets(*items):
    return [x for item in items for x in ("--set", item)]


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_cli_resume_continues_and_reports_the_change(text_file, tmp_path):
    run = tmp_path / "run"
    first = invoke(["train", text_file, *_sets(*SMALL, "max_iters=8"), "--out", run,
                    "--rng-seed", "1", "--json"], catch_exceptions=False)
    assert first.exit_code == 0, first.stderr
    second = invoke(["train", "--resume", run, *_sets("max_iters=16"), "--json"],
                    catch_exceptions=False)
    assert second.exit_code == 0, second.stderr
    summary = json.loads(second.stdout)
    assert summary["resumed_from"] == 8 and summary["iterations"] == 16
    assert summary["changed"] == ["max_iters"]
    straight = invoke(["train", text_file, *_sets(*SMALL, "max_iters=16"), "--out",
                       tmp_path / "straight", "--rng-seed", "1", "--json"])
    assert straight.exit_code == 0, straight.stderr
    a, b = load_checkpoint(run / "last.npz"), load_checkpoint(tmp_path / "straight" / "last.npz")
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    human = invoke(["train", "--resume", run, *_sets("max_iters=20")])
    assert human.exit_code == 0
    assert "changed on resume: max_iters" in human.stderr
    assert f"resuming {run} at iteration 16; changed: max_iters" in human.stderr


def _trained_run(text_file, tmp_path, iters=8):
    run = tmp_path / "run"
    result = invoke(["train", text_file, *_sets(*SMALL, f"max_iters={iters}"), "--out", run,
                     "--rng-seed", "0", "--json"])
    assert result.exit_code == 0, result.stderr
    return run


def test_resume_refuses_other_text_unsafe_changes_and_nothing_to_do(text_file, tmp_path):
    run = _trained_run(text_file, tmp_path)
    other = tmp_path / "other.txt"
    other.write_text(TEXT.replace("cat", "dog"), encoding="utf-8")
    result = invoke(["train", other, "--resume", run, *_sets("max_iters=20")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.startswith(f"Error: {other}: not the text {run} was trained on (SHA-256 ")
    assert result.stderr.endswith(f"resume with that text, go on with this one with --new-text, "
                                  f"or start a new run with --init-from {run}\n")
    result = invoke(["train", "--resume", run, *_sets("max_iters=20", "hidden_size=32")])
    assert result.exit_code == 2
    assert result.stderr == (f"Error: cannot resume {run} with hidden_size=32: the run has "
                             "hidden_size=12, and only max_iters, learning_rate, eval_every, "
                             "threads, shards, time may change on resume (start a new run with --init-from instead)\n")
    result = invoke(["train", "--resume", run])
    assert result.exit_code == 2
    assert result.stderr == (f"Error: {run} is at iteration 8 and max_iters is 8: nothing to do; "
                             "raise it with --set max_iters=N\n")
    result = invoke(["train", "--resume", run, "--out", tmp_path / "x"])
    assert result.exit_code == 2 and "--resume continues a run in its own directory" in result.stderr
    text_file.unlink()   # the recorded training text is gone
    result = invoke(["train", "--resume", run, *_sets("max_iters=20")])
    assert result.exit_code == 1
    assert result.stderr == (f"Error: {run} was trained on {text_file}, which is no longer "
                             "there; give the text as FILE\n")


def test_init_from_fine_tunes_in_the_checkpoint_vocabulary(text_file, tmp_path):
    run = _trained_run(text_file, tmp_path)
    new_text = tmp_path / "new.txt"
    new_text.write_text(TEXT[:900], encoding="utf-8")
    result = invoke(["train", new_text, "--init-from", run, *_sets("max_iters=4", "eval_every=2",
                     "batch_size=2"), "--out", tmp_path / "tuned", "--json"],
                    catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    tuned, base = load_checkpoint(tmp_path / "tuned"), load_checkpoint(run)
    assert tuned.vocab == base.vocab and tuned.iteration == 4
    assert tuned.model_cfg.hidden_size == 12
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    result = invoke(["train", empty, "--init-from", run, "--out", tmp_path / "bad-run"])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {empty}: the file is empty\n"
    assert not (tmp_path / "bad-run").exists()   # nothing half-made left behind
    result = invoke(["train", new_text, "--init-from", run, *_sets("hidden_size=16")])
    assert result.exit_code == 2
    assert result.stderr == (f"Error: --init-from: hidden_size is 12 in {run}; a run started "
                             "from its weights cannot change it to 16\n")


def _unseen_text(tmp_path):
    """A text with two characters that TEXT lacks: '!' (sorts before every letter, so the old
    characters' ids shift) and 'é' (after them)."""
    path = tmp_path / "new.txt"
    path.write_text(TEXT[:900].replace("cat", "chat!").replace("mat", "maté"), encoding="utf-8")
    return path


def test_init_from_grows_the_vocabulary_for_new_characters(text_file, tmp_path):
    run = _trained_run(text_file, tmp_path)
    new_text, base = _unseen_text(tmp_path), load_checkpoint(run)
    V = len(base.vocab)
    args = ["train", new_text, "--init-from", run, "--rng-seed", "5",
            *_sets("max_iters=4", "eval_every=2", "batch_size=2")]
    result = invoke([*args, "--out", tmp_path / "grown"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    note = (f"--init-from: grew the vocabulary from {V} to {V + 2} characters: '!', 'é' (new "
            "embedding and output rows)")
    assert f"note: {note}\n" in result.stderr
    assert "starting from the weights of the --init-from checkpoint" in result.stderr
    grown = load_checkpoint(tmp_path / "grown")
    assert grown.vocab.chars == "".join(sorted(base.vocab.chars + "!é"))
    assert grown.params["embed"].shape == (V + 2, 12) and grown.params["Why"].shape == (12, V + 2)
    assert all(s.shape[0] == V + 2 for k, s in grown.optim_state.items() if k.endswith("/by"))
    # the same --rng-seed, the same new rows: the same run
    again = invoke([*args, "--out", tmp_path / "again", "--json"], catch_exceptions=False)
    assert json.loads(again.stdout)["notes"] == [note]
    other = load_checkpoint(tmp_path / "again")
    assert all(np.array_equal(grown.params[k], other.params[k]) for k in grown.params)
    # --dry-run says so too
    dry = invoke(["train", new_text, "--init-from", run, "--dry-run", "--json",
                  *_sets("batch_size=2")], catch_exceptions=False)
    report = json.loads(dry.stdout)
    assert report["vocab_size"] == V + 2 and report["notes"][0] == note


def test_init_from_grows_the_vocabulary_in_a_subprocess(text_file, tmp_path):
    run = _trained_run(text_file, tmp_path)
    new_text = _unseen_text(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "charrnn", "train", str(new_text), "--init-from",
                           str(run), "--out", str(tmp_path / "grown"), "--set", "max_iters=2",
                           "--set", "eval_every=2", "--set", "batch_size=2"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    V = len(load_checkpoint(run).vocab)
    assert (f"note: --init-from: grew the vocabulary from {V} to {V + 2} characters: '!', 'é' "
            "(new embedding and output rows)\n") in proc.stderr
    assert proc.stdout == ""
    grown = load_checkpoint(tmp_path / "grown")
    assert "!" in grown.vocab.stoi and "é" in grown.vocab.stoi and grown.iteration == 2


def test_a_nan_is_rolled_back_with_half_the_learning_rate(tmp_path, monkeypatch):
    real = train_module.loss_and_grads
    calls = {"n": 0}

    def flaky(*args, **kwargs):
        calls["n"] += 1
        loss, grads, state = real(*args, **kwargs)
        return (float("nan") if calls["n"] == 7 else loss), grads, state

    monkeypatch.setattr(train_module, "loss_and_grads", flaky)
    lines = []
    summary = train(corpus_from_text(TEXT), *_cfg("lstm", 12), tmp_path, rng_seed=0,
                    progress=False, log=lines.append)
    assert "warning: loss nan at iteration 7: rolled back to iteration 4 and halved the " \
           "learning rate (now x0.5)" in lines
    assert summary["lr_scale"] == 0.5 and summary["iterations"] == 12
    ckpt = load_checkpoint(tmp_path / "last.npz")
    assert ckpt.info["lr_scale"] == 0.5
    assert all(np.isfinite(p).all() for p in ckpt.params.values())


def _diverging_from(call, monkeypatch, loss=1.0e30):
    """Make training diverge on purpose: from the call-th chunk on, every chunk's loss is `loss`
    (finite by default: a model that blew up without a NaN)."""
    real = train_module.loss_and_grads
    calls = {"n": 0}

    def diverging(*args, **kwargs):
        calls["n"] += 1
        got, grads, state = real(*args, **kwargs)
        return (loss if calls["n"] >= call else got), grads, state

    monkeypatch.setattr(train_module, "loss_and_grads", diverging)


@pytest.mark.parametrize("loss", [1.0e30, float("inf")], ids=["finite", "inf"])
def test_persistent_divergence_stops_after_three_rollbacks(text_file, tmp_path, monkeypatch,
                                                           loss):
    _diverging_from(6, monkeypatch, loss)
    run = tmp_path / "run"
    result = invoke(["train", text_file, *_sets(*SMALL, "max_iters=30"), "--out", run,
                     "--rng-seed", "0"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    bound = 2 * math.log(len(set(TEXT)))
    beyond = f", above 2 ln V = {bound:.3g} nats/char" if loss < float("inf") else ""
    shown = f"{loss:.6g}"
    # from the 6th chunk on: iteration 6, then (from iteration 4 again) iteration 5, each time
    assert warnings == [f"warning: loss {shown} at iteration {i}{beyond}: rolled back to "
                        f"iteration 4 and halved the learning rate (now x{scale})"
                        for i, scale in ((6, "0.5"), (5, "0.25"), (5, "0.125"))]
    assert result.stderr.endswith(
        f"Error: training diverged (loss {shown} at iteration 5{beyond}) 3 times in a row after "
        "rolling back and halving the learning rate (now x0.125); lower learning_rate or "
        "grad_clip. The run directory keeps its last good checkpoint, if any\n")
    best = load_checkpoint(run / "best.npz")
    assert best.iteration == 4 and best.info["best_val_loss"] < bound


def test_a_loss_just_above_twice_a_uniform_guess_is_a_divergence(tmp_path, monkeypatch):
    corpus = corpus_from_text(TEXT)
    bound = train_module.divergence_bound(len(corpus.vocab))
    assert bound == pytest.approx(2 * math.log(len(corpus.vocab)))
    real = train_module.loss_and_grads
    calls = {"n": 0}

    def once_above(*args, **kwargs):
        calls["n"] += 1
        got, grads, state = real(*args, **kwargs)
        return (bound * 1.0001 if calls["n"] == 7 else got), grads, state

    monkeypatch.setattr(train_module, "loss_and_grads", once_above)
    lines = []
    summary = train(corpus, *_cfg("lstm", 12), tmp_path, rng_seed=0, progress=False,
                    log=lines.append)
    assert [line for line in lines if line.startswith("warning:")] == [
        f"warning: loss {bound * 1.0001:.6g} at iteration 7, above 2 ln V = {bound:.3g} "
        "nats/char: rolled back to iteration 4 and halved the learning rate (now x0.5)"]
    assert summary["iterations"] == 12 and summary["lr_scale"] == 0.5


def test_a_validation_loss_beyond_the_bound_is_never_saved(tmp_path, monkeypatch):
    """A model whose update made it finite but useless (validation loss far above 2 ln V) is
    rolled back: no metrics row, last.npz or best.npz ever holds it."""
    corpus = corpus_from_text(TEXT)
    real = train_module.evaluate.score_ids
    calls = {"n": 0}

    def blown_up_at_second(*args, **kwargs):
        calls["n"] += 1
        total, n = real(*args, **kwargs)
        return (total * 1e4 if calls["n"] == 2 else total), n

    monkeypatch.setattr(train_module.evaluate, "score_ids", blown_up_at_second)
    lines = []
    summary = train(corpus, *_cfg("gru", 12), tmp_path, rng_seed=0, progress=False,
                    log=lines.append)
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1 and warnings[0].startswith("warning: validation loss ")
    assert warnings[0].endswith(f" at iteration 8, above 2 ln V = {2 * math.log(26):.3g} "
                                "nats/char: rolled back to iteration 4 and halved the learning "
                                "rate (now x0.5)")
    assert len(corpus.vocab) == 26
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [4, 8, 12]
    bound = train_module.divergence_bound(len(corpus.vocab))
    assert all(r["val_loss"] <= bound for r in rows)
    for name in ("last.npz", "best.npz"):
        assert load_checkpoint(tmp_path / name).info["best_val_loss"] <= bound
    assert summary["best_val_loss"] <= bound and summary["lr_scale"] == 0.5


def test_dry_run_reports_sizes_and_time_and_writes_nothing(text_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = invoke(["train", text_file, *_sets(*SMALL, "max_iters=100"), "--dry-run", "--json"],
                    catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    n_val = int(len(TEXT) * 0.05)
    n_train = len(TEXT) - n_val
    L = (n_train - 1) // 3
    assert report["train_batches_per_pass"] == L // 10
    assert report["train_chars"] == 3 * L and report["val_chars"] == n_val
    assert report["chars_per_param"] == round(3 * L / report["num_params"], 3)
    assert report["seconds_per_iter"] > 0
    assert report["seconds_for_max_iters"] == pytest.approx(100 * report["seconds_per_iter"],
                                                            abs=0.1)
    assert not (tmp_path / "runs").exists()
    human = invoke(["train", text_file, *_sets(*SMALL), "--dry-run"])
    assert human.exit_code == 0
    assert f"parameters: {report['num_params']:,} (vocabulary {report['vocab_size']})" in human.stdout
    assert "ms per iteration (measured)" in human.stdout


def test_dry_run_refuses_texts_too_short(tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("abcdefghij" * 10, encoding="utf-8")
    result = invoke(["train", short, *_sets("batch_size=8", "seq_length=20"), "--dry-run"])
    assert result.exit_code == 1
    assert result.stderr == (f"Error: {short}: the training text has 95 characters; batch_size "
                             "8 x seq_length 20 needs at least 161\n")
    result = invoke(["train", short, *_sets("batch_size=1", "seq_length=10", "val_frac=0.01"),
                     "--dry-run"])
    assert result.exit_code == 1
    assert result.stderr == (f"Error: {short}: the validation part (val_frac 0.01) has 1 "
                             "characters; it needs at least 2 (raise val_frac or use a longer "
                             "text)\n")


def test_crlf_text_is_accepted_and_said_in_the_summary(tmp_path):
    path = tmp_path / "dos.txt"
    path.write_bytes(TEXT.replace("\n", "\r\n").encode("utf-8"))
    result = invoke(["train", path, *_sets(*SMALL, "max_iters=4"), "--out", tmp_path / "run"])
    assert result.exit_code == 0, result.stderr
    summary_line = result.stderr.strip().splitlines()[-1]
    assert summary_line.startswith("done: 4 iterations")
    assert summary_line.endswith("; converted 120 CRLF line endings to LF")
    assert "\r" not in load_checkpoint(tmp_path / "run").vocab.chars


def test_output_directory_that_cannot_be_made(text_file, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke(["train", text_file, "--out", blocker / "run"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr == (f"Error: {blocker / 'run'}: cannot write the run directory: "
                             "Not a directory\n")


def _start(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "charrnn", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("sig, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
@pytest.mark.parametrize("size", [(), ("hidden_size=128", "batch_size=64")],
                         ids=["one-shard", "two-shards"])   # 64 x 128: two shards in threads
def test_signal_saves_last_and_says_how_to_resume(text_file, tmp_path, sig, status, size):
    assert len(parallel.shard_bounds(64, 128, 2)) == 2
    run = tmp_path / "run"
    proc = _start(["train", text_file, *_sets(*SMALL, *size, "max_iters=100000", "eval_every=5"),
                   "--out", run], tmp_path)
    _wait_for(run / "last.npz", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert "Traceback" not in err
    last_line = err.strip().splitlines()[-1]
    assert last_line.startswith("Interrupted at iteration ")
    assert last_line.endswith(f": saved {run / 'last.npz'}; resume with: charrnn train --resume "
                              f"{run}")
    stopped = int(last_line.split()[3].rstrip(":"))
    assert load_checkpoint(run / "last.npz").iteration == stopped
    resumed = invoke(["train", "--resume", run, *_sets(f"max_iters={stopped + 3}"), "--json"])
    assert resumed.exit_code == 0, resumed.stderr
    assert json.loads(resumed.stdout)["iterations"] == stopped + 3


@pytest.mark.slow
def test_kill_9_at_random_moments_always_leaves_a_resumable_run(text_file, tmp_path):
    rng = np.random.default_rng(0)
    run = tmp_path / "run"
    # max_iters far out of reach: every attempt is killed while it trains or writes
    args = ["train", text_file, *_sets(*SMALL, "max_iters=1000000", "eval_every=3"), "--out", run]
    reached = 0
    for attempt in range(6):
        proc = _start(args, tmp_path)
        if attempt == 0:
            _wait_for(run / "last.npz", proc)
        time.sleep(rng.uniform(0.05, 1.5))
        proc.kill()
        proc.communicate()   # reap it and close its pipes
        assert proc.returncode == -signal.SIGKILL
        for name in ("last.npz", "best.npz"):
            ckpt = load_checkpoint(run / name)
            assert all(np.isfinite(p).all() for p in ckpt.params.values())
        iteration = load_checkpoint(run / "last.npz").iteration
        assert iteration >= reached   # never behind a checkpoint written before
        reached = iteration
        args = ["train", "--resume", run]
    result = subprocess.run([sys.executable, "-m", "charrnn", *map(str, args), "--set",
                             f"max_iters={reached + 5}", "--json"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["iterations"] == reached + 5


def test_binary_file_is_refused_by_train(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    result = invoke(["train", path, "--out", tmp_path / "run"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr == (f"Error: {path}: looks like a binary file (NUL byte at offset 7); "
                             "charrnn reads UTF-8 text only\n")
    assert not (tmp_path / "run").exists()


def test_a_divergence_before_the_first_checkpoint_rolls_back_to_the_start(tmp_path, monkeypatch):
    """The state to roll back to is on disk, not a copy in memory: a new run's starting state
    (.start.npz) until its first checkpoint, then last.npz; the start file is gone after. Rolled
    back exactly: the run then equals one started at half the learning rate, bit for bit."""
    real = train_module.loss_and_grads
    calls = {"n": 0}
    seen = []

    def nan_at_second(*args, **kwargs):
        calls["n"] += 1
        seen.append(sorted(p.name for p in (tmp_path / "a").iterdir()))
        loss, grads, state = real(*args, **kwargs)
        return (float("nan") if calls["n"] == 2 else loss), grads, state

    monkeypatch.setattr(train_module, "loss_and_grads", nan_at_second)
    lines = []
    corpus = corpus_from_text(TEXT)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    summary = train(corpus, *_cfg("gru", 8), tmp_path / "a", rng_seed=5, progress=False,
                    log=lines.append)
    assert "warning: loss nan at iteration 2: rolled back to iteration 0 and halved the " \
           "learning rate (now x0.5)" in lines
    assert ".start.npz" in seen[0] and "last.npz" not in seen[0]
    assert summary["iterations"] == 8 and not (tmp_path / "a" / ".start.npz").exists()
    monkeypatch.setattr(train_module, "loss_and_grads", real)
    train(corpus, *_cfg("gru", 8, "learning_rate=1.0e-3"), tmp_path / "b", rng_seed=5,
          progress=False)
    a, b = load_checkpoint(tmp_path / "a" / "last.npz"), load_checkpoint(tmp_path / "b" / "last.npz")
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name], err_msg=name)


def test_ema_is_a_moving_average_kept_in_best_and_resumed_exactly(tmp_path):
    """ema=0.5: after each update the average is 0.5 average + 0.5 weights, from the starting
    weights; validation scores it and best.npz holds it; last.npz has both, and a run stopped
    and resumed equals one never stopped."""
    corpus = corpus_from_text(TEXT)
    steps = []
    for k in (1, 2, 3):                 # one iteration at a time, each checkpointed
        run = tmp_path / "steps"
        run.mkdir(exist_ok=True)
        cfg = _cfg("lstm", k, "ema=0.5", "eval_every=1")
        train(corpus, *cfg, run, rng_seed=4, progress=False,
              resume=load_checkpoint(run / "last.npz") if k > 1 else None)
        steps.append(load_checkpoint(run / "last.npz"))
    from charrnn.model import init_params
    start = init_params("lstm", len(corpus.vocab), 12, 2, np.random.default_rng(4))
    last = steps[-1]
    for name, p0 in start.items():
        want = 0.125 * p0 + 0.125 * steps[0].params[name] + 0.25 * steps[1].params[name] \
            + 0.5 * last.params[name]
        np.testing.assert_allclose(last.optim_state[f"ema/{name}"], want, rtol=1e-5, atol=1e-6)
    best = load_checkpoint(tmp_path / "steps" / "best.npz")
    which = best.iteration - 1
    for name in best.params:
        np.testing.assert_array_equal(best.params[name], steps[which].optim_state[f"ema/{name}"])
    straight = tmp_path / "straight"
    straight.mkdir()
    train(corpus, *_cfg("lstm", 3, "ema=0.5", "eval_every=1"), straight, rng_seed=4,
          progress=False)
    other = load_checkpoint(straight / "last.npz")
    for name in last.optim_state:
        np.testing.assert_array_equal(last.optim_state[name], other.optim_state[name])


def test_a_torn_metrics_line_is_cut_off_when_the_run_resumes(tmp_path):
    """A kill during a metrics write leaves a last line without its newline: resuming cuts it
    off (and says so), so the rows appended after it stay whole and `plot` reads them all."""
    text = tmp_path / "t.txt"
    text.write_text(TEXT, encoding="utf-8")
    run = tmp_path / "run"
    charrnn.fit(text, out=run, rng_seed=0, sets=SMALL, max_iters=8)
    metrics = run / "metrics.jsonl"
    whole = metrics.read_bytes()
    metrics.write_bytes(whole + b'{"iteration": 9, "train_lo')        # torn, 26 bytes
    lines = []
    summary = charrnn.fit(resume=run, max_iters=12, log=lines.append)
    note = (f"{metrics}: cut off its last line, which a stopped run left unfinished (26 bytes "
            "without a newline)")
    assert f"note: {note}" in lines and note in summary["notes"]
    rows = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines()]
    assert [r["iteration"] for r in rows] == [4, 8, 12]
    assert metrics.read_bytes().startswith(whole)
    chart = charrnn.plot_runs([run])
    assert chart.notes == () and [r["iteration"] for r in chart.runs[0].records] == [4, 8, 12]
