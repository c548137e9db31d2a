"""`charrnn eval`: several files and stdin, per file and in total, --unk, --worst, --per-char."""

import json
import math
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
         "--set", "num_layers=1", "--set", "batch_size=4", "--set", "seq_length=16"]


def usage_error(message):
    return cli_usage_error("eval", "[OPTIONS] FILE...", message)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A trained run and three texts: the training text, a short one, one with unknown chars."""
    root = tmp_path_factory.mktemp("eval-cli")
    (root / "fox.txt").write_text(TEXT, encoding="utf-8")
    (root / "short.txt").write_text("the lazy fox.\nthe dog\n", encoding="utf-8")
    (root / "odd.txt").write_text("The lazy dog! The End.\n", encoding="utf-8")
    result = invoke(["train", root / "fox.txt", *SMALL, "--out", root / "run", "--rng-seed", "0",
                     "--json"], catch_exceptions=False)
    assert result.exit_code == 0
    return root


def evaluate(files, *args, **kwargs):
    result = invoke(["eval", "-c", files / "run", *args], catch_exceptions=False, **kwargs)
    assert result.exit_code == 0, result.stderr
    return result


def as_json(files, *args, **kwargs):
    return json.loads(evaluate(files, *args, "--json", **kwargs).stdout)


def line(name, r):
    return (f"{name}: loss {r['loss']:.4f} nats/char, {r['bits_per_char']:.4f} bits/char, "
            f"perplexity {r['perplexity']:.3f}, {r['n_chars']:,} characters")


# --- several files ------------------------------------------------------------------------------

def test_several_files_are_reported_each_and_in_total(files):
    fox, short = files / "fox.txt", files / "short.txt"
    a, b = as_json(files, fox), as_json(files, short)
    result = evaluate(files, fox, short)
    total = as_json(files, fox, short)
    assert result.stdout == "\n".join([line(fox, a), line(short, b), line("total", total)]) + "\n"
    assert total["n_chars"] == a["n_chars"] + b["n_chars"] == 2699 + 21
    assert total["loss"] == pytest.approx((a["loss"] * 2699 + b["loss"] * 21) / 2720, rel=1e-12)
    assert total["perplexity"] == pytest.approx(math.exp(total["loss"]), rel=1e-12)


def test_json_of_several_files(files):
    fox, short = files / "fox.txt", files / "short.txt"
    total = as_json(files, fox, short)
    assert set(total) == {"loss", "bits_per_char", "perplexity", "n_chars", "files"}
    assert [f["file"] for f in total["files"]] == [str(fox), str(short)]
    assert total["files"][1] == {"file": str(short), **as_json(files, short)}


def test_one_file_has_no_total_line(files):
    out = evaluate(files, files / "short.txt").stdout
    assert out.count("\n") == 1 and not out.startswith("total")


def test_stdin_is_a_file_named_dash(files):
    from_stdin = as_json(files, "-", input=(files / "short.txt").read_text(encoding="utf-8"))
    assert from_stdin == as_json(files, files / "short.txt")
    both = as_json(files, files / "fox.txt", "-", input="the lazy fox.\nthe dog\n")
    assert [f["file"] for f in both["files"]] == [str(files / "fox.txt"), "-"]
    out = evaluate(files, "-", input="the lazy fox.\nthe dog\n").stdout
    assert out.startswith("<stdin>: loss ")


def test_a_crlf_text_scores_as_its_lf_form(files, tmp_path):
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes((files / "short.txt").read_bytes().replace(b"\n", b"\r\n"))
    assert as_json(files, crlf) == as_json(files, files / "short.txt")


def test_stdin_is_dash_in_json_and_tsv_and_stdin_in_text(files, tmp_path):
    text = "the lazy fox.\nthe dog\n"
    report = as_json(files, "-", "--worst", "2", "--per-char", tmp_path / "c.tsv", input=text)
    assert {w["file"] for w in report["worst"]} == {"-"}
    assert {row[0] for row in read_tsv(tmp_path / "c.tsv")[1]} == {"-"}
    out = evaluate(files, "-", "--worst", "2", input=text).stdout.splitlines()
    assert out[2].split()[1].startswith("<stdin>:") and out[3].split()[1].startswith("<stdin>:")


def test_stdin_twice_is_a_usage_error(files):
    assert_fails(invoke(["eval", "-c", files / "run", "-", "-"], input="the"), 2,
                 usage_error("'-' (stdin) can be given only once"))


def test_no_file_is_a_usage_error(files):
    assert_fails(invoke(["eval", "-c", files / "run"]), 2,
                 usage_error("Missing argument 'FILE...'."))


def test_an_error_in_any_file_names_it_and_prints_nothing(files, tmp_path):
    (tmp_path / "one.txt").write_text("t")
    assert_fails(invoke(["eval", "-c", files / "run", files / "fox.txt", tmp_path / "one.txt"]), 1,
                 f"Error: {tmp_path / 'one.txt'}: the text has 1 character(s); scoring needs at "
                 "least 2 (the first is only context)\n")


# --- characters outside the vocabulary ----------------------------------------------------------

def test_unknown_characters_are_an_error_by_default(files):
    assert_fails(invoke(["eval", "-c", files / "run", files / "odd.txt"]), 1,
                 f"Error: {files / 'odd.txt'}: characters not in the vocabulary: '!', 'E', 'T'\n")


def test_unk_skip_scores_the_rest_and_reports_what_it_skipped(files, tmp_path):
    odd = files / "odd.txt"
    (tmp_path / "kept.txt").write_text("he lazy dog he nd.\n", encoding="utf-8")
    report = as_json(files, odd, "--unk", "skip")
    kept = as_json(files, tmp_path / "kept.txt")
    assert report == {**kept, "skipped": 4, "skipped_chars": ["!", "E", "T"]}
    assert evaluate(files, odd, "--unk", "skip").stdout == (
        f"{line(odd, kept)}; skipped 4 characters not in the vocabulary: '!', 'E', 'T'\n")


def test_unk_skip_over_several_files(files):
    report = as_json(files, files / "short.txt", files / "odd.txt", "--unk", "skip")
    assert (report["skipped"], report["skipped_chars"]) == (4, ["!", "E", "T"])
    assert [(f["skipped"], f["skipped_chars"]) for f in report["files"]] == \
        [(0, []), (4, ["!", "E", "T"])]
    out = evaluate(files, files / "short.txt", files / "odd.txt", "--unk", "skip").stdout
    assert out.splitlines()[0].endswith(" characters")       # nothing skipped: nothing said
    assert out.splitlines()[2].startswith("total: ")
    assert out.splitlines()[2].endswith("; skipped 4 characters not in the vocabulary: '!', 'E', 'T'")


def test_unk_replace_is_not_an_eval_choice(files):
    assert_fails(invoke(["eval", "-c", files / "run", files / "odd.txt", "--unk", "replace"]), 2,
                 usage_error("Invalid value for '--unk': 'replace' is not one of 'error', 'skip'."))


# --- per character ------------------------------------------------------------------------------

def read_tsv(path):
    rows = path.read_text(encoding="utf-8").split("\n")
    assert rows[-1] == ""
    return rows[0], [row.split("\t") for row in rows[1:-1]]


def test_per_char_writes_every_scored_character(files, tmp_path):
    short, tsv = files / "short.txt", tmp_path / "chars.tsv"
    result = evaluate(files, short, "--per-char", tsv)
    assert result.stdout == evaluate(files, short).stdout
    header, rows = read_tsv(tsv)
    assert header == "file\toffset\tchar\tlogprob"
    text = short.read_text(encoding="utf-8")
    assert [int(r[1]) for r in rows] == list(range(1, len(text)))
    assert [r[2] for r in rows] == [c.replace("\n", "\\n") for c in text[1:]]
    assert {r[0] for r in rows} == {str(short)}
    report = as_json(files, short)
    assert -sum(float(r[3]) for r in rows) == pytest.approx(report["loss"] * report["n_chars"],
                                                            abs=1e-4)


def test_per_char_offsets_skip_unknown_characters(files, tmp_path):
    tsv = tmp_path / "chars.tsv"
    evaluate(files, files / "short.txt", files / "odd.txt", "--unk", "skip", "--per-char", tsv)
    _, rows = read_tsv(tsv)
    odd = [r for r in rows if r[0] == str(files / "odd.txt")]
    text = (files / "odd.txt").read_text(encoding="utf-8")
    assert [int(r[1]) for r in odd] == [i for i, c in enumerate(text) if c not in "!ET"][1:]
    assert all(text[int(r[1])] == r[2].replace("\\n", "\n") for r in odd)
    assert len(rows) == 21 + len(odd)


def test_per_char_escapes_tabs_and_backslashes(tmp_path):
    vocab = Vocab.from_text("a\t\\\r\n")
    save_checkpoint(tmp_path / "m.npz", Checkpoint(
        params=init_params("rnn", len(vocab), 4, 1, np.random.default_rng(0)), vocab=vocab,
        model_cfg=ModelConfig(model="rnn", hidden_size=4, num_layers=1), train_cfg=TrainConfig()))
    (tmp_path / "t.txt").write_bytes(b"a\t\\\ra\n")   # a lone CR stays (CRLF would be LF)
    result = invoke(["eval", "-c", tmp_path / "m.npz", tmp_path / "t.txt", "--per-char",
                     tmp_path / "t.tsv"], catch_exceptions=False)
    assert result.exit_code == 0
    _, rows = read_tsv(tmp_path / "t.tsv")
    assert [r[2] for r in rows] == ["\\t", "\\\\", "\\r", "a", "\\n"]


def test_per_char_into_a_missing_directory(files, tmp_path):
    path = tmp_path / "no" / "chars.tsv"
    assert_fails(invoke(["eval", "-c", files / "run", files / "short.txt", "--per-char", path]), 1,
                 f"Error: {path}: cannot write: No such file or directory\n")


# --- the most surprising characters -------------------------------------------------------------

def test_worst_lists_the_k_least_likely_characters(files, tmp_path):
    short, odd = files / "short.txt", files / "odd.txt"
    tsv = tmp_path / "chars.tsv"
    report = as_json(files, short, odd, "--unk", "skip", "--worst", "5", "--per-char", tsv)
    worst = report["worst"]
    _, rows = read_tsv(tsv)
    # plainly: the five lowest rows of the per-character file
    lowest = sorted(rows, key=lambda r: float(r[3]))[:5]
    assert [(w["file"], w["offset"]) for w in worst] == [(r[0], int(r[1])) for r in lowest]
    assert [w["logprob"] for w in worst] == sorted(w["logprob"] for w in worst)
    texts = {str(short): short.read_text(encoding="utf-8"), str(odd): odd.read_text(encoding="utf-8")}
    for w in worst:
        assert set(w) == {"file", "offset", "line", "column", "char", "logprob", "context"}
        text = texts[w["file"]]
        assert text[w["offset"]] == w["char"]
        assert text[:w["offset"]].count("\n") + 1 == w["line"]
        assert w["offset"] - text.rfind("\n", 0, w["offset"]) == w["column"]
        model_view = "".join(c for c in text[:w["offset"]] if c not in "!ET")
        assert model_view.endswith(w["context"]) and len(w["context"]) == min(20, len(model_view))


def test_worst_as_text(files):
    short = files / "short.txt"
    report = as_json(files, short, "--worst", "3")
    out = evaluate(files, short, "--worst", "3").stdout.splitlines()
    assert out[0] == line(short, report)
    assert out[1] == "the 3 most surprising characters:"
    assert out[2:] == [f"  {w['logprob']:8.4f}  {short}:{w['line']}:{w['column']}  "
                       f"{w['context']!r} -> {w['char']!r}" for w in report["worst"]]


def test_worst_more_than_there_are(files):
    report = as_json(files, files / "short.txt", "--worst", "1000")
    assert len(report["worst"]) == 21


# --- subprocess ---------------------------------------------------------------------------------

def test_eval_of_stdin_and_a_file_in_a_subprocess(files, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "charrnn", "eval", "-c", str(files / "run"),
                           str(files / "fox.txt"), "-", "--json"], cwd=tmp_path,
                          input=b"the lazy fox.\nthe dog\n", capture_output=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr == b""
    report = json.loads(proc.stdout)
    assert report == as_json(files, files / "fox.txt", "-", input="the lazy fox.\nthe dog\n")


def test_eval_error_in_a_subprocess(files, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "charrnn", "eval", "-c", str(files / "run"),
                           str(files / "odd.txt")], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr == f"Error: {files / 'odd.txt'}: characters not in the vocabulary: " \
                          "'!', 'E', 'T'\n"


def test_exact_scores_in_one_pass(files):
    """--exact: the whole text in one stream, the state carried throughout; without it, long
    texts are scored in segments with context (here 2,700 characters: two segments)."""
    from charrnn.checkpoint import load_checkpoint
    from charrnn.evaluate import char_logprobs, segment_layout

    assert segment_layout(len(TEXT))[0] == 2
    ckpt = load_checkpoint(files / "run")
    ids = ckpt.vocab.encode(TEXT)
    exact = json.loads(evaluate(files, files / "fox.txt", "--exact", "--json").stdout)
    one_pass = -char_logprobs(ckpt.params, "lstm", ids, streams=1).sum() / (len(TEXT) - 1)
    assert exact["loss"] == pytest.approx(one_pass, rel=1e-9)
    segmented = json.loads(evaluate(files, files / "fox.txt", "--json").stdout)
    assert segmented["n_chars"] == exact["n_chars"] == len(TEXT) - 1
    assert segmented["loss"] == pytest.approx(exact["loss"], abs=0.01)


def test_config_takes_a_preset_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                    # no configs/ folder here
    (tmp_path / "hello.txt").write_text("hello", encoding="utf-8")
    result = invoke(["train", "hello.txt", "--config", "hello", "--set", "max_iters=3",
                     "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    config = json.loads(result.stdout)["config"]
    assert (config["model"], config["hidden_size"], config["seq_length"]) == ("rnn", 10, 4)
    result = invoke(["train", "hello.txt", "--config", "nonesuch"])
    assert_fails(result, 2, "Error: nonesuch: no such config file or preset (presets: default, "
                            "demo, hello, learning-to-execute, min-char-rnn, shakespeare)\n")
