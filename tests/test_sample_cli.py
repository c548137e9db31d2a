"""`charrnn sample`: every option through CliRunner, and the reproducibility, pipe and terminal
behaviour as subprocesses."""

import json
import os
import pty
import select
import subprocess
import sys

import numpy as np
import pytest

from charrnn.checkpoint import Checkpoint, save_checkpoint
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data import Vocab
from charrnn.model import init_params

from cli_helpers import assert_fails, invoke, usage_error as cli_usage_error

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 60   # 2700 characters, 29 distinct
SMALL = ["--set", "max_iters=30", "--set", "eval_every=30", "--set", "hidden_size=16",
         "--set", "num_layers=2", "--set", "batch_size=4", "--set", "seq_length=16"]


def usage_error(message):
    return cli_usage_error("sample", "[OPTIONS]", message)


def run_subprocess(args, cwd, **kwargs):
    return subprocess.run([sys.executable, "-m", "charrnn", *map(str, args)], cwd=cwd,
                          capture_output=True, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample-cli")
    (root / "fox.txt").write_text(TEXT, encoding="utf-8")
    result = invoke(["train", root / "fox.txt", *SMALL, "--out", root / "run", "--rng-seed", "0",
                     "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    return root / "run"


def sample(run_dir, *args, **kwargs):
    result = invoke(["sample", "-c", run_dir, *args], catch_exceptions=False, **kwargs)
    assert result.exit_code == 0, result.stderr
    return result


def text_of(run_dir, *args):
    return sample(run_dir, *args).stdout


# --- choosing characters ------------------------------------------------------------------------

def test_top_k_one_is_greedy(run_dir):
    greedy = text_of(run_dir, "--seed", "the ", "-n", "80", "--greedy")
    assert greedy.startswith("the ") and len(greedy) == 4 + 80 + 1
    assert text_of(run_dir, "--seed", "the ", "-n", "80", "--top-k", "1", "--rng-seed", "3") == greedy


def test_a_tiny_top_p_is_greedy(run_dir):
    """The smallest nucleus is the single most likely character."""
    assert text_of(run_dir, "--seed", "o", "-n", "60", "--top-p", "0.001", "--rng-seed", "5") == \
        text_of(run_dir, "--seed", "o", "-n", "60", "--greedy")


def test_top_p_one_is_plain_sampling_with_the_same_rng_seed(run_dir):
    plain = text_of(run_dir, "--seed", "q", "-n", "120", "--rng-seed", "7")
    assert text_of(run_dir, "--seed", "q", "-n", "120", "--rng-seed", "7", "--top-p", "1.0") == plain
    assert plain != text_of(run_dir, "--seed", "q", "-n", "120", "--rng-seed", "8")


def test_top_k_and_top_p_change_plain_sampling_but_stay_reproducible(run_dir):
    args = ["--seed", "q", "-n", "200", "--rng-seed", "7", "-t", "1.5"]
    plain = text_of(run_dir, *args)
    for extra in (["--top-k", "3"], ["--top-p", "0.6"]):
        once = text_of(run_dir, *args, *extra)
        assert once != plain and once == text_of(run_dir, *args, *extra)
        assert set(once[:-1]) <= set(TEXT)


# --- stop strings -------------------------------------------------------------------------------

def cut_at_first_stop(seed, generated, stops):
    """Plain reference: seed + generated up to the first stop string that ends in generated."""
    full = seed + generated
    for end in range(len(seed) + 1, len(full) + 1):
        if any(full[:end].endswith(s) for s in stops):
            return full[:end]
    return full


@pytest.mark.parametrize("stops", [[(20, 1)], [(30, 2), (12, 3)], [(45, 3)], [(70, 2), "\n"]])
def test_stop_ends_right_after_the_first_occurrence(run_dir, stops):
    args = ["--seed", "the ", "-n", "150", "--rng-seed", "2"]
    free = text_of(run_dir, *args)[:-1]
    # stop strings taken from the free text at (start, length), so that they occur
    stops = [s if isinstance(s, str) else free[4 + s[0]:4 + s[0] + s[1]] for s in stops]
    stopped = text_of(run_dir, *args, *[x for s in stops for x in ("--stop", s)])
    assert stopped == cut_at_first_stop("the ", free[4:], stops) + "\n"
    assert len(stopped) < len(free) + 1 and stopped[:-1].endswith(tuple(stops))


def test_a_stop_string_may_begin_in_the_seed(run_dir):
    args = ["--seed", "the lazy", "-n", "30", "--greedy"]
    free = text_of(run_dir, *args)
    stop = "zy" + free[8:10]
    assert text_of(run_dir, *args, "--stop", stop) == free[:10] + "\n"
    # inside the seed alone it does not stop anything
    assert text_of(run_dir, *args, "--stop", "lazy") == cut_at_first_stop("the lazy", free[8:-1],
                                                                          ["lazy"]) + "\n"


def test_a_stop_string_the_model_cannot_generate_is_noted(run_dir):
    args = ["--seed", "the", "-n", "40", "--rng-seed", "4"]
    result = sample(run_dir, *args, "--stop", "Z!")
    assert result.stdout == text_of(run_dir, *args)
    assert result.stderr == "note: --stop 'Z!' can never match: the model cannot generate '!', 'Z'\n"


def test_empty_stop_string_is_a_usage_error(run_dir):
    assert_fails(invoke(["sample", "-c", run_dir, "--stop", ""]), 2,
                 usage_error("Invalid value for --stop: a stop string cannot be empty"))



def test_many_samples_of_a_wider_model_in_two_shards_as_a_subprocess(tmp_path):
    """64 samples of 128 units are two shards of 32 (parallel.py): in threads where OpenBLAS
    allows, and the output is what it would be one after the other."""
    from charrnn.parallel import shard_bounds

    assert TrainConfig().shards == 2 and len(shard_bounds(64, 128, 2)) == 2
    path = tmp_path / "wide.npz"
    vocab = Vocab.from_text("abcdefgh \n")
    params = init_params("lstm", len(vocab), 128, 2, np.random.default_rng(0))
    params["Why"] *= 30   # distinct logits, so that greedy picks are not near ties
    save_checkpoint(path, Checkpoint(params=params, vocab=vocab,
                                     model_cfg=ModelConfig(hidden_size=128, num_layers=2),
                                     train_cfg=TrainConfig()))
    args = ["sample", "-c", path, "--seed", "ab", "-n", "40", "--num-samples", "64"]
    first = run_subprocess([*args, "--rng-seed", "5", "--json"], tmp_path)
    assert first.returncode == 0, first.stderr
    texts = [json.loads(line)["text"] for line in first.stdout.decode().splitlines()]
    assert len(texts) == 64 and len(set(texts)) > 32 and all(len(t) == 40 for t in texts)
    again = run_subprocess([*args, "--rng-seed", "5", "--json"], tmp_path)
    assert again.stdout == first.stdout
    greedy = run_subprocess([*args, "--greedy"], tmp_path).stdout.decode()
    one = run_subprocess([*args[:-2], "--greedy"], tmp_path).stdout.decode()
    assert greedy[:-1].split("\n---\n") == [one[:-1]] * 64

# --- several samples ----------------------------------------------------------------------------

def test_num_samples_prints_each_sample_after_a_separator_line(run_dir):
    out = text_of(run_dir, "--seed", "the", "-n", "50", "--num-samples", "4", "--rng-seed", "9")
    samples = out[:-1].split("\n---\n")
    assert len(samples) == 4 and len(set(samples)) == 4
    assert all(s.startswith("the") and len(s) == 3 + 50 for s in samples)
    assert out == text_of(run_dir, "--seed", "the", "-n", "50", "--num-samples", "4",
                          "--rng-seed", "9")


def test_separator_is_the_line_between_samples(run_dir):
    args = ["--seed", "the", "-n", "20", "--num-samples", "3", "--rng-seed", "9"]
    assert text_of(run_dir, *args, "--separator", "=====") == \
        text_of(run_dir, *args).replace("\n---\n", "\n=====\n")
    assert text_of(run_dir, *args, "--separator", "").count("\n\n") >= 2


def test_num_samples_with_stop_ends_each_sample_on_its_own(run_dir):
    args = ["--seed", "the ", "-n", "60", "--num-samples", "5", "--rng-seed", "3", "--greedy"]
    free = text_of(run_dir, *args)[:-1].split("\n---\n")
    stopped = text_of(run_dir, *args, "--stop", "o")[:-1].split("\n---\n")
    assert stopped == [cut_at_first_stop("the ", f[4:], ["o"]) for f in free]


def test_num_samples_as_json(run_dir):
    args = ["--seed", "the", "-n", "30", "--num-samples", "3", "--rng-seed", "11"]
    lines = text_of(run_dir, *args, "--json").splitlines()
    objects = [json.loads(line) for line in lines]
    texts = text_of(run_dir, *args)[:-1].split("\n---\n")
    assert [o["seed"] + o["text"] for o in objects] == texts


# --- JSON ---------------------------------------------------------------------------------------

def test_json_has_the_text_and_a_log_probability_per_character(run_dir):
    result = sample(run_dir, "--seed", "the", "-n", "40", "--rng-seed", "1", "--json",
                    "--stop", "fox")
    obj = json.loads(result.stdout)
    assert result.stdout.count("\n") == 1 and result.stderr == ""
    assert set(obj) == {"seed", "text", "stop", "logprobs"}
    assert obj["seed"] == "the"
    assert len(obj["logprobs"]) == len(obj["text"]) and all(lp <= 0 for lp in obj["logprobs"])
    assert obj["stop"] in ("fox", None) and obj["text"].endswith("fox") == (obj["stop"] == "fox")
    plain = text_of(run_dir, "--seed", "the", "-n", "40", "--rng-seed", "1", "--stop", "fox")
    assert obj["seed"] + obj["text"] + "\n" == plain


def test_json_logprobs_are_what_eval_scores(run_dir, tmp_path):
    """The log-probability of each generated character is the model's, as `eval --per-char` finds
    it on the same text (temperature and top-k only change what is drawn)."""
    obj = json.loads(text_of(run_dir, "--seed", "the", "-n", "60", "--rng-seed", "2", "--json",
                             "-t", "0.7", "--top-k", "5"))
    (tmp_path / "s.txt").write_text(obj["seed"] + obj["text"], encoding="utf-8")
    invoke(["eval", tmp_path / "s.txt", "-c", run_dir, "--per-char", tmp_path / "s.tsv"],
           catch_exceptions=False)
    rows = (tmp_path / "s.tsv").read_text(encoding="utf-8").splitlines()[1:]
    scored = [float(row.split("\t")[3]) for row in rows][len(obj["seed"]) - 1:]
    np.testing.assert_allclose(obj["logprobs"], scored, atol=2e-4)


# --- seeds --------------------------------------------------------------------------------------

def test_seed_file_with_newlines(run_dir, tmp_path):
    prompt = tmp_path / "prompt.txt"
    prompt.write_text("the lazy dog.\nthe quick", encoding="utf-8")
    out = text_of(run_dir, "--seed-file", prompt, "-n", "25", "--rng-seed", "6")
    assert out.startswith("the lazy dog.\nthe quick") and len(out) == 23 + 25 + 1
    assert out == text_of(run_dir, "--seed", "the lazy dog.\nthe quick", "-n", "25",
                          "--rng-seed", "6")


def test_seed_file_from_stdin(run_dir):
    out = sample(run_dir, "--seed-file", "-", "-n", "25", "--rng-seed", "6",
                 input="the lazy dog.\nthe quick").stdout
    assert out == text_of(run_dir, "--seed", "the lazy dog.\nthe quick", "-n", "25",
                          "--rng-seed", "6")


def test_seed_and_seed_file_together_is_a_usage_error(run_dir, tmp_path):
    (tmp_path / "p.txt").write_text("the")
    assert_fails(invoke(["sample", "-c", run_dir, "--seed", "a", "--seed-file", tmp_path / "p.txt"]),
                 2, usage_error("--seed and --seed-file cannot be used together"))


def test_empty_seed_file(run_dir, tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    assert_fails(invoke(["sample", "-c", run_dir, "--seed-file", tmp_path / "empty.txt"]), 1,
                 f"Error: {tmp_path / 'empty.txt'}: the file is empty\n")


def test_unknown_seed_characters_in_a_seed_file_are_listed(run_dir, tmp_path):
    (tmp_path / "p.txt").write_text("The End!\n", encoding="utf-8")
    assert_fails(invoke(["sample", "-c", run_dir, "--seed-file", tmp_path / "p.txt"]), 2,
                 usage_error("Invalid value for --seed-file: seed has characters not in the "
                             "model's vocabulary: '!', 'E', 'T'"))


def test_unk_skip_leaves_unknown_seed_characters_out(run_dir):
    result = sample(run_dir, "--seed", "The lazy dog!", "-n", "20", "--rng-seed", "3",
                    "--unk", "skip")
    assert result.stdout == text_of(run_dir, "--seed", "he lazy dog", "-n", "20", "--rng-seed", "3")
    assert result.stderr == ("note: skipped 2 seed characters not in the model's vocabulary: "
                             "'!', 'T'\n")


def test_unk_replace_puts_a_space_in_their_place(run_dir):
    result = sample(run_dir, "--seed", "The lazy dog!", "-n", "20", "--rng-seed", "3",
                    "--unk", "replace")
    assert result.stdout == text_of(run_dir, "--seed", " he lazy dog ", "-n", "20",
                                    "--rng-seed", "3")
    assert result.stderr == ("note: replaced 2 seed characters not in the model's vocabulary "
                             "with ' ': '!', 'T'\n")


def test_unk_skip_with_nothing_left(run_dir):
    assert_fails(invoke(["sample", "-c", run_dir, "--seed", "TZ!", "--unk", "skip"]), 2,
                 usage_error("Invalid value for --seed: the seed has no character in the model's "
                             "vocabulary: '!', 'T', 'Z'"))


# --- usage errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--greedy", "--top-k", "3"], "--greedy always takes the most likely character; it cannot "
                                   "be combined with --top-k or --top-p"),
    (["--greedy", "--top-p", "0.5"], "--greedy always takes the most likely character; it cannot "
                                     "be combined with --top-k or --top-p"),
    (["--top-k", "0"], "Invalid value for '--top-k': 0 is not in the range x>=1."),
    (["--top-p", "0"], "Invalid value for '--top-p': 0.0 is not in the range 0<x<=1."),
    (["--top-p", "1.5"], "Invalid value for '--top-p': 1.5 is not in the range 0<x<=1."),
    (["--num-samples", "0"], "Invalid value for '--num-samples': 0 is not in the range x>=1."),
    (["--unk", "drop"], "Invalid value for '--unk': 'drop' is not one of 'error', 'skip', "
                        "'replace'."),
])
def test_bad_option_values(run_dir, args, message):
    assert_fails(invoke(["sample", "-c", run_dir, *args]), 2, usage_error(message))


# --- subprocesses -------------------------------------------------------------------------------

def test_same_rng_seed_same_bytes_in_two_processes(run_dir, tmp_path):
    args = ["sample", "-c", run_dir, "--seed", "the", "-n", "300", "--rng-seed", "42", "-t", "0.9",
            "--top-k", "10", "--top-p", "0.95", "--num-samples", "3", "--stop", "dog"]
    first, second = run_subprocess(args, tmp_path), run_subprocess(args, tmp_path)
    assert first.returncode == second.returncode == 0 and first.stderr == b""
    assert first.stdout == second.stdout
    assert first.stdout.decode("utf-8") == invoke(args, catch_exceptions=False).stdout
    json_args = [*args, "--json"]
    assert run_subprocess(json_args, tmp_path).stdout == run_subprocess(json_args, tmp_path).stdout


def test_top_k_one_is_greedy_in_a_subprocess(run_dir, tmp_path):
    base = ["sample", "-c", run_dir, "--seed", "the", "-n", "100"]
    greedy = run_subprocess([*base, "--greedy"], tmp_path)
    top1 = run_subprocess([*base, "--top-k", "1"], tmp_path)
    assert greedy.returncode == top1.returncode == 0
    assert greedy.stdout == top1.stdout and greedy.stdout.startswith(b"the")


def test_seed_file_from_stdin_in_a_subprocess(run_dir, tmp_path):
    proc = run_subprocess(["sample", "-c", run_dir, "--seed-file", "-", "-n", "10", "--greedy"],
                          tmp_path, input=b"the lazy\n")
    assert proc.returncode == 0 and proc.stderr == b""
    assert proc.stdout == text_of(run_dir, "--seed", "the lazy\n", "-n", "10", "--greedy").encode()


def test_unknown_seed_in_a_subprocess(run_dir, tmp_path):
    proc = run_subprocess(["sample", "-c", run_dir, "--seed", "Zoé"], tmp_path)
    assert proc.returncode == 2 and proc.stdout == b""
    assert proc.stderr.decode("utf-8") == usage_error(
        "Invalid value for --seed: seed has characters not in the model's vocabulary: 'Z', 'é'")


def test_a_closed_pipe_ends_quietly(run_dir, tmp_path):
    """`charrnn sample -n 1000000 | head -c 10`: the reader goes away; exit status 0, no message."""
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", "sample", "-c", str(run_dir),
                             "-n", "1000000", "--rng-seed", "0"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = proc.stdout.read(10)
    proc.stdout.close()
    with proc.stderr:
        stderr = proc.stderr.read()
    assert proc.wait(timeout=120) == 0
    assert len(head) == 10 and stderr == b""


@pytest.fixture(scope="module")
def newline_free_model(tmp_path_factory):
    """An untrained model whose vocabulary has no newline, so a terminal's line buffering never
    flushes its output: only the per-character flush does."""
    path = tmp_path_factory.mktemp("tty") / "model.npz"
    vocab = Vocab.from_text("abcdefgh ")
    params = init_params("lstm", len(vocab), 8, 1, np.random.default_rng(0))
    save_checkpoint(path, Checkpoint(params=params, vocab=vocab,
                                     model_cfg=ModelConfig(hidden_size=8, num_layers=1),
                                     train_cfg=TrainConfig()))
    return path


@pytest.mark.skipif(not hasattr(pty, "openpty"), reason="needs a pseudo-terminal")
def test_on_a_terminal_characters_arrive_while_sampling_goes_on(newline_free_model, tmp_path):
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "charrnn", "sample", "-c",
                             str(newline_free_model), "--seed", "a", "-n", "10000000"],
                            cwd=tmp_path, stdout=slave, stderr=subprocess.DEVNULL)
    os.close(slave)
    try:
        ready, _, _ = select.select([master], [], [], 60)
        first = os.read(master, 65536) if ready else b""
        # a block-buffered stream would show nothing before 8 KiB; the process is still running
        assert 0 < len(first) < 8192 and proc.poll() is None
        assert first.startswith(b"a") and set(first) <= set(b"abcdefgh ")
    finally:
        proc.kill()
        proc.wait(timeout=60)
        os.close(master)
