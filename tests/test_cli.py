"""The command line: help, one real training run (shared by the module), sampling, evaluation, and
the exact message and exit status of every expected failure."""

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest

from charrnn import __version__
from charrnn.checkpoint import load_checkpoint
from charrnn.cli import cli

from cli_helpers import assert_fails, invoke, usage_error

TEXT = "the quick brown fox jumps over the lazy dog. " * 80  # 3600 characters, 28 distinct
SMALL = ["--set", "max_iters=20", "--set", "eval_every=10", "--set", "hidden_size=16",
         "--set", "num_layers=1", "--set", "batch_size=4", "--set", "seq_length=16"]


def run_subprocess(args, cwd):
    return subprocess.run([sys.executable, "-m", "charrnn", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, encoding="utf-8", timeout=120)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small training run for the whole module: (text file, run directory, train result)."""
    root = tmp_path_factory.mktemp("trained")
    text_file = root / "fox.txt"
    text_file.write_text(TEXT, encoding="utf-8")
    run_dir = root / "run"
    result = invoke(["train", text_file, *SMALL, "--out", run_dir, "--rng-seed", "0", "--json"],
                    catch_exceptions=False)
    return text_file, run_dir, result


# --- help and version -------------------------------------------------------------------------

@pytest.mark.parametrize("command, example", [
    ([], "charrnn train input.txt"),
    (["train"], "charrnn train input.txt --config configs/shakespeare.yaml --set max_iters=500"),
    (["sample"], "charrnn sample --seed h -n 200"),
    (["eval"], "charrnn eval input.txt --json"),
])
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_shows_an_example(command, example, flag):
    result = invoke([*command, flag], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: charrnn {' '.join(command)}".rstrip() + " [OPTIONS]")
    assert "Example:\n" in result.stdout
    assert f"\n      {example}\n" in result.stdout
    assert result.stderr == ""


@pytest.mark.parametrize("command", ["train", "sample", "eval"])
def test_every_option_has_help(command):
    for param in cli.commands[command].params:
        if param.param_type_name == "option":
            assert param.help, f"{command} {param.opts}"


def test_group_help_lists_the_commands():
    out = invoke(["-h"]).stdout
    for name in ("train", "sample", "eval"):
        assert f"\n  {name} " in out


def test_version():
    result = invoke(["--version"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stdout == f"charrnn, version {__version__}\n"


def test_version_in_a_subprocess(tmp_path):
    proc = run_subprocess(["--version"], tmp_path)
    assert proc.returncode == 0
    assert proc.stdout == f"charrnn, version {__version__}\n"
    assert proc.stderr == ""


# --- train ------------------------------------------------------------------------------------

def test_train_json_is_the_only_output(trained):
    _, run_dir, result = trained
    assert result.exit_code == 0
    assert result.stdout.endswith("}\n") and result.stdout.count("\n") == 1
    summary = json.loads(result.stdout)
    assert {"run_dir", "best_val_loss", "iterations"} <= set(summary)
    assert summary["run_dir"] == str(run_dir)
    assert summary["iterations"] == 20
    assert summary["vocab_size"] == len(set(TEXT)) == 28
    assert summary["config"]["hidden_size"] == 16 and summary["config"]["batch_size"] == 4
    assert result.stderr == ""  # --json: no log, no progress bar


def test_train_writes_the_run_directory(trained):
    _, run_dir, result = trained
    assert sorted(p.name for p in run_dir.iterdir()) == ["best.npz", "data.npy", "last.npz",
                                                         "metrics.jsonl"]
    lines = (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["iteration"] for r in records] == [10, 20]
    for r in records:
        assert {"iteration", "train_loss", "val_loss", "seconds"} <= set(r)
        assert 0 < r["val_loss"] < math.log(28) + 0.5
    best = min(records, key=lambda r: r["val_loss"])
    assert json.loads(result.stdout)["best_val_loss"] == best["val_loss"]
    assert load_checkpoint(run_dir / "last.npz").iteration == 20
    assert load_checkpoint(run_dir / "best.npz").iteration == best["iteration"]
    assert load_checkpoint(run_dir).vocab.chars == "".join(sorted(set(TEXT)))


def test_train_logs_to_stderr_without_json(tmp_path):
    text_file = tmp_path / "fox.txt"
    text_file.write_text(TEXT, encoding="utf-8")
    result = invoke(["train", text_file, *SMALL, "--out", tmp_path / "run", "--rng-seed", "0"],
                    catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "iter 10/20  train " in result.stderr and "iter 20/20  train " in result.stderr
    assert result.stderr.splitlines()[-1].startswith("done: 20 iterations in ")


def test_train_same_rng_seed_same_weights(trained, tmp_path):
    text_file, run_dir, _ = trained
    invoke(["train", text_file, *SMALL, "--out", tmp_path / "again", "--rng-seed", "0", "--json"],
           catch_exceptions=False)
    a, b = load_checkpoint(run_dir / "last.npz"), load_checkpoint(tmp_path / "again" / "last.npz")
    for name, p in a.params.items():
        np.testing.assert_array_equal(b.params[name], p, err_msg=name)


def test_train_text_with_a_byte_order_mark(tmp_path):
    text_file = tmp_path / "bom.txt"
    text_file.write_bytes(b"\xef\xbb\xbf" + TEXT.encode("utf-8"))
    result = invoke(["train", text_file, *SMALL, "--out", tmp_path / "run", "--rng-seed", "0"],
                    catch_exceptions=False)
    assert result.exit_code == 0
    assert f"note: {text_file}: removed a UTF-8 byte order mark\n" in result.stderr
    assert "\ufeff" not in load_checkpoint(tmp_path / "run").vocab.chars


# --- sample -----------------------------------------------------------------------------------

def test_sample_with_rng_seed_is_reproducible(trained):
    _, run_dir, _ = trained
    args = ["sample", "--checkpoint", run_dir, "--seed", "q", "-n", "50", "--rng-seed", "1"]
    first, second = invoke(args, catch_exceptions=False), invoke(args, catch_exceptions=False)
    assert first.exit_code == second.exit_code == 0
    assert first.stdout == second.stdout
    assert first.stdout.startswith("q") and first.stdout.endswith("\n")
    assert len(first.stdout) == 1 + 50 + 1
    assert set(first.stdout[:-1]) <= set(TEXT)
    assert first.stderr == ""


def test_sample_other_rng_seed_other_text(trained):
    _, run_dir, _ = trained
    outs = {invoke(["sample", "-c", run_dir, "--seed", "q", "-n", "50", "--rng-seed", s]).stdout
            for s in (1, 2)}
    assert len(outs) == 2


def test_sample_multi_character_seed(trained):
    _, run_dir, _ = trained
    result = invoke(["sample", "-c", run_dir, "--seed", "the ", "-n", "10", "--rng-seed", "1"],
                    catch_exceptions=False)
    assert result.stdout.startswith("the ") and len(result.stdout) == 4 + 10 + 1


def test_sample_greedy_is_deterministic_without_rng_seed(trained):
    _, run_dir, _ = trained
    args = ["sample", "-c", run_dir, "--seed", "t", "-n", "40", "--greedy"]
    first, second = invoke(args, catch_exceptions=False), invoke(args, catch_exceptions=False)
    assert first.exit_code == 0
    assert first.stdout == second.stdout
    assert first.stdout.startswith("t") and len(first.stdout) == 1 + 40 + 1


def test_sample_default_checkpoint_is_the_latest_run(trained, tmp_path, monkeypatch):
    _, run_dir, _ = trained
    shutil.copytree(run_dir, tmp_path / "runs" / "mine")
    monkeypatch.chdir(tmp_path)
    args = ["sample", "--seed", "t", "-n", "30", "--rng-seed", "4"]
    latest = invoke(args, catch_exceptions=False)
    given = invoke([*args, "-c", run_dir], catch_exceptions=False)
    assert latest.stdout == given.stdout
    note = "note: using runs/mine/best.npz (the latest run under ./runs)\n"
    assert latest.stderr == note and given.stderr == ""
    (tmp_path / "t.txt").write_text("the cat", encoding="utf-8")
    scored = invoke(["eval", "t.txt", "--json"], catch_exceptions=False)
    assert scored.stderr == note and json.loads(scored.stdout)["n_chars"] == 6


def test_sample_in_a_subprocess_matches_cli_runner(trained, tmp_path):
    _, run_dir, _ = trained
    args = ["sample", "--checkpoint", run_dir, "--seed", "o", "-n", "50", "--rng-seed", "1"]
    proc = run_subprocess(args, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == invoke(args, catch_exceptions=False).stdout
    assert proc.stdout.startswith("o") and len(proc.stdout) == 52
    assert proc.stderr == ""


# --- eval -------------------------------------------------------------------------------------

def test_eval_json(trained):
    text_file, run_dir, _ = trained
    result = invoke(["eval", text_file, "--checkpoint", run_dir, "--json"], catch_exceptions=False)
    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.count("\n") == 1
    scores = json.loads(result.stdout)
    assert set(scores) == {"loss", "bits_per_char", "perplexity", "n_chars"}
    assert scores["n_chars"] == len(TEXT) - 1
    assert scores["bits_per_char"] == pytest.approx(scores["loss"] / math.log(2), rel=1e-12)
    assert scores["perplexity"] == pytest.approx(math.exp(scores["loss"]), rel=1e-12)
    assert 0 < scores["loss"] < math.log(28) + 0.5


def test_eval_text(trained):
    text_file, run_dir, _ = trained
    scores = json.loads(invoke(["eval", text_file, "-c", run_dir, "--json"]).stdout)
    result = invoke(["eval", text_file, "-c", run_dir], catch_exceptions=False)
    assert result.stdout == (f"{text_file}: loss {scores['loss']:.4f} nats/char, "
                             f"{scores['bits_per_char']:.4f} bits/char, perplexity "
                             f"{scores['perplexity']:.3f}, 3,599 characters\n")


# --- errors: train ----------------------------------------------------------------------------

def test_train_missing_file(tmp_path):
    path = tmp_path / "missing.txt"
    result = invoke(["train", path, "--out", tmp_path / "run"])
    assert_fails(result, 2, usage_error(
        "train", "[OPTIONS] [FILE|DIR]...",
        f"Invalid value for '[FILE|DIR]...': Path '{path}' does not exist."))
    assert not (tmp_path / "run").exists()


def test_train_on_a_directory_without_text(tmp_path):
    """A folder is read as documents, one per file (test_lists.py): one without any text is a
    one-line error, and no run directory is left."""
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "data.bin").write_bytes(b"\x00\x01")
    result = invoke(["train", folder, "--out", tmp_path / "run"])
    assert_fails(result, 1, f"Error: {folder}: no UTF-8 text files found (skipped 1 file that "
                            f"is not UTF-8 text: {folder / 'data.bin'})\n")
    assert not (tmp_path / "run").exists()


def test_train_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"")
    result = invoke(["train", path, *SMALL, "--out", tmp_path / "run"])
    assert_fails(result, 1, f"Error: {path}: the file is empty\n")


def test_train_bom_only_file_is_empty(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf")
    result = invoke(["train", path, *SMALL, "--out", tmp_path / "run"])
    assert_fails(result, 1, f"Error: {path}: the file is empty\n")


def test_train_one_distinct_character(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("aaaa")
    result = invoke(["train", path, *SMALL, "--out", tmp_path / "run"])
    assert_fails(result, 1, f"Error: {path}: the text has only one distinct character ('a'); "
                            "there is nothing to learn\n")


def test_train_invalid_utf8_gives_the_byte_offset(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"hello\xffworld")
    result = invoke(["train", path, *SMALL, "--out", tmp_path / "run"])
    assert_fails(result, 1, f"Error: {path}: invalid UTF-8 at byte offset 5 (byte 0xff); "
                            "charrnn reads UTF-8 text only\n")


def test_train_text_too_short_for_one_batch(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("abcdefghij" * 5)
    result = invoke(["train", path, *SMALL, "--set", "val_frac=0.1", "--out", tmp_path / "run"])
    assert_fails(result, 1, f"Error: {path}: the training text has 45 characters; batch_size 4 x "
                            "seq_length 16 needs at least 65\n")


def test_train_config_with_an_unknown_key(tmp_path):
    text_file, config = tmp_path / "t.txt", tmp_path / "c.yaml"
    text_file.write_text(TEXT)
    config.write_text("hidden_size: 16\nlayers: 2\n")
    result = invoke(["train", text_file, "--config", config, "--out", tmp_path / "run"])
    assert_fails(result, 2, f"Error: {config}: unknown key 'layers'; valid keys: model, "
                            "hidden_size, num_layers, dropout, weight_drop, embed_drop, "
                            "variational, direct_order, direct_size, seq_length, batch_size, "
                            "optimizer, learning_rate, "
                            "momentum, lr_decay, lr_schedule, warmup_iters, lr_floor, ema, "
                            "weight_decay, grad_clip, clip_mode, max_iters, time, eval_every, val_frac, "
                            "completion, vocab, documents, labels, include, threads, shards\n")
    assert not (tmp_path / "run").exists()


def test_train_config_out_of_range(tmp_path):
    text_file, config = tmp_path / "t.txt", tmp_path / "c.yaml"
    text_file.write_text(TEXT)
    config.write_text("dropout: 1.0\n")
    result = invoke(["train", text_file, "--config", config, "--out", tmp_path / "run"])
    assert_fails(result, 2, f"Error: {config}: dropout must be in [0, 1), got 1.0\n")


@pytest.mark.parametrize("item, message", [
    ("hidden_size=abc", "--set: hidden_size='abc' should be int"),
    ("hidden_size=0", "--set: hidden_size must be >= 1, got 0"),
    ("hidden_size", "--set 'hidden_size': expected KEY=VALUE"),
])
def test_train_bad_set(tmp_path, item, message):
    text_file = tmp_path / "t.txt"
    text_file.write_text(TEXT)
    result = invoke(["train", text_file, "--set", item, "--out", tmp_path / "run"])
    assert_fails(result, 2, f"Error: {message}\n")


def test_train_out_is_an_existing_run(trained):
    text_file, run_dir, _ = trained
    before = (run_dir / "last.npz").read_bytes()
    result = invoke(["train", text_file, *SMALL, "--out", run_dir])
    assert_fails(result, 1, f"Error: {run_dir}: already holds a run; choose another --out, or "
                            f"continue it with --resume {run_dir}\n")
    assert (run_dir / "last.npz").read_bytes() == before


def test_train_error_in_a_subprocess(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    proc = run_subprocess(["train", "empty.txt", "--out", "run"], tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == "Error: empty.txt: the file is empty\n"
    assert proc.stdout == ""


# --- errors: sample and eval ------------------------------------------------------------------

def test_sample_seed_not_in_vocabulary(trained):
    _, run_dir, _ = trained
    result = invoke(["sample", "-c", run_dir, "--seed", "Zé", "-n", "5"])
    assert_fails(result, 2, usage_error(
        "sample", "[OPTIONS]", "Invalid value for --seed: seed has characters not in the model's "
                               "vocabulary: 'Z', 'é'"))


def test_sample_zero_chars(trained):
    _, run_dir, _ = trained
    result = invoke(["sample", "-c", run_dir, "-n", "0"])
    assert_fails(result, 2, usage_error(
        "sample", "[OPTIONS]", "Invalid value for '-n' / '--num-chars': 0 is not in the range x>=1."))


def test_sample_temperature_zero(trained):
    _, run_dir, _ = trained
    result = invoke(["sample", "-c", run_dir, "--temperature", "0"])
    assert_fails(result, 2, usage_error(
        "sample", "[OPTIONS]",
        "Invalid value for '-t' / '--temperature': 0.0 is not in the range x>0."))


NO_RUN = ("Error: no trained run found under ./runs; train one with 'charrnn train FILE' or "
          "give --checkpoint\n")


def test_sample_without_any_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_fails(invoke(["sample", "--seed", "a"]), 1, NO_RUN)


def test_eval_without_any_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "t.txt").write_text("hello")
    (tmp_path / "runs" / "empty-run").mkdir(parents=True)  # no checkpoint in it
    assert_fails(invoke(["eval", "t.txt"]), 1, NO_RUN)


def test_sample_missing_checkpoint(tmp_path):
    path = tmp_path / "nope.npz"
    assert_fails(invoke(["sample", "-c", path]), 1,
                 f"Error: {path}: no such checkpoint file or run directory\n")


def test_eval_characters_outside_the_vocabulary(trained, tmp_path):
    _, run_dir, _ = trained
    path = tmp_path / "other.txt"
    path.write_text("The quick brown fox!\n")
    result = invoke(["eval", path, "-c", run_dir, "--json"])
    assert_fails(result, 1,
                 f"Error: {path}: characters not in the vocabulary: '\\n', '!', 'T'\n")


def test_eval_text_of_one_character(trained, tmp_path):
    """Nothing to predict: an error, not NaN (which is not even valid JSON)."""
    _, run_dir, _ = trained
    path = tmp_path / "one.txt"
    path.write_text("t")
    result = invoke(["eval", path, "-c", run_dir, "--json"])
    assert "Traceback" not in result.output + result.stderr
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(f"Error: {path}: ")


def test_sample_truncated_checkpoint_in_a_subprocess(trained, tmp_path):
    _, run_dir, _ = trained
    raw = (run_dir / "best.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(raw[:len(raw) // 2])
    proc = run_subprocess(["sample", "--checkpoint", "cut.npz", "-n", "5"], tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: cut.npz: truncated or corrupted .npz file (")
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_sample_garbage_checkpoint(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"not a checkpoint\n" * 10)
    result = invoke(["sample", "-c", path])
    assert "Traceback" not in result.output + result.stderr
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(f"Error: {path}: ")


def test_sample_npy_file_as_checkpoint(tmp_path):
    path = tmp_path / "weights.npy"
    np.save(path, np.zeros(3, dtype=np.float32))
    result = invoke(["sample", "-c", path])
    assert_fails(result, 1, f"Error: {path}: not a charrnn checkpoint (a single .npy array)\n")
