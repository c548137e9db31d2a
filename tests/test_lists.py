"""Documents end to end: `charrnn train LIST --lines` (and folders, labels), then sample, eval,
resume, as a user runs them (click's CliRunner, and a subprocess)."""

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import charrnn
from charrnn.checkpoint import load_checkpoint
from charrnn.cli import cli
from charrnn.documents import END

TINY = ["--set", "hidden_size=16", "--set", "num_layers=1", "--set", "batch_size=4",
        "--set", "seq_length=8", "--set", "eval_every=20", "--rng-seed", "0"]


def invoke(args):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def words(n=240, seed=0):
    """Made-up words of a small language: syllables, 2 to 4 of them."""
    rng = np.random.default_rng(seed)
    syllables = ["ka", "lo", "mi", "ne", "ru", "ta", "si", "po"]
    return sorted({"".join(rng.choice(syllables, rng.integers(2, 5))) for _ in range(n)})


@pytest.fixture
def word_list(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("\n".join(words()) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def list_run(word_list, tmp_path):
    run = tmp_path / "run"
    result = invoke(["train", word_list, "--lines", "--out", run, "--set", "max_iters=60",
                     *TINY])
    assert result.exit_code == 0, result.output
    return run


def test_a_list_trains_as_documents(list_run, word_list):
    ckpt = load_checkpoint(list_run / "last.npz")
    assert ckpt.train_cfg.documents == "lines"
    assert END in ckpt.vocab.chars and "\n" not in ckpt.vocab.chars   # lines end with the mark
    ids = np.load(list_run / "data.npy")
    n_words = len(words())
    assert int((ids == ckpt.end).sum()) == n_words + 1                 # END w END w ... END
    val_start = ckpt.info["val_start"]
    assert ids[val_start] == ckpt.end
    held_out = int((ids[val_start:] == ckpt.end).sum()) - 1
    assert held_out == round(0.05 * n_words)                          # whole documents


def test_sample_prints_whole_new_lines(list_run):
    result = invoke(["sample", "-c", list_run, "--num-samples", "7", "--rng-seed", "1"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 7 and all(END not in line for line in lines)


def test_sample_json_gives_text_logprob_and_novelty(list_run):
    result = invoke(["sample", "-c", list_run, "--num-samples", "5", "--json",
                     "--rng-seed", "2"])
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(rows) == 5
    known = set(words())
    for row in rows:
        assert set(row) == {"text", "logprob", "novel", "complete", "label"}
        assert row["logprob"] < 0
        assert row["novel"] == (row["text"] not in known) or not row["complete"]


def test_novel_draws_only_new_documents(list_run):
    result = invoke(["sample", "-c", list_run, "--num-samples", "6", "--novel", "--json",
                     "--rng-seed", "3"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    known = set(words())
    assert len(rows) == 6 and all(r["novel"] and r["text"] not in known for r in rows)
    assert len({r["text"] for r in rows}) == 6


def test_novel_gives_up_on_a_model_that_only_repeats(list_run):
    """Greedy drawing gives the same document every time: --novel cannot find 3 new ones."""
    result = CliRunner().invoke(cli, ["sample", "-c", str(list_run), "--num-samples", "3",
                                      "--novel", "--greedy"])
    assert result.exit_code == 1
    greedy = json.loads(invoke(["sample", "-c", list_run, "--greedy", "--json"]).stdout)
    found = 1 if greedy["novel"] else 0          # the same document every time, kept once
    assert (f"Error: found {found} of 3 new documents in 150 draws; the model mostly repeats "
            "its training documents or ends them at once (train it longer, or raise the "
            "temperature)") in result.output


def test_an_empty_document_is_drawn_again(list_run, monkeypatch):
    """A draw whose first character is the end mark is no document: it is drawn again, and
    counts as a draw."""
    from charrnn import sample_docs
    from charrnn.sample import Sample

    real, calls = sample_docs.generate_samples, []

    def first_empty(ckpt, seed, cfg, rng, logprobs):
        calls.append(cfg.num_samples)
        if len(calls) == 1:
            return [Sample(END, END, np.array([-0.5]))] * cfg.num_samples
        return real(ckpt, seed, cfg, rng, logprobs=logprobs)

    monkeypatch.setattr(sample_docs, "generate_samples", first_empty)
    texts = charrnn.generate(str(list_run), num_samples=2, rng_seed=0)
    assert len(calls) == 2 and len(texts) == 2 and all(texts)


def test_eval_counts_the_end_marks(list_run, tmp_path):
    test = tmp_path / "test.txt"
    test.write_text("kalo\nmine\n\nruta\n", encoding="utf-8")
    report = json.loads(invoke(["eval", "-c", list_run, test, "--json"]).stdout)
    assert report["documents"] == 3
    assert report["n_chars"] == 4 + 4 + 4 + 3          # characters and one end mark each
    api = charrnn.score(str(list_run / "best.npz"), "kalo\nmine\nruta\n")
    assert api["n_chars"] == 15 and abs(api["loss"] - report["loss"]) < 1e-9


def test_sample_options_for_documents_on_a_stream_model(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("hello world\n" * 40, encoding="utf-8")
    run = tmp_path / "stream"
    assert invoke(["train", text, "--out", run, "--set", "max_iters=5", *TINY]).exit_code == 0
    result = CliRunner().invoke(cli, ["sample", "-c", str(run), "--novel"])
    assert result.exit_code == 2
    assert ("--label and --novel are for a model of documents (trained with --lines or on "
            "files); this model reads one stream") in result.output


def test_a_list_model_learns_to_end_its_words(tmp_path):
    """The "hello" toy for lists: two words, and greedy drawing from the start state writes one
    of them and stops at its end mark."""
    path = tmp_path / "two.txt"
    path.write_text("hello\nworld\n" * 30, encoding="utf-8")
    run = tmp_path / "two"
    result = invoke(["train", path, "--lines", "--out", run, "--set", "max_iters=150",
                     "--set", "val_frac=0", "--set", "learning_rate=0.02", *TINY])
    assert result.exit_code == 0
    for prefix in ("h", "w"):
        out = invoke(["sample", "-c", run, "--seed", prefix, "--greedy", "--json"]).stdout
        row = json.loads(out)
        assert row["text"] == {"h": "hello", "w": "world"}[prefix] and row["complete"]


def test_a_document_longer_than_a_chunk_carries_its_state(tmp_path):
    """Lines of 16 characters read 4 at a time: the state carries from chunk to chunk inside a
    document (it is reset only where one starts), so the model learns the whole line."""
    path = tmp_path / "long.txt"
    path.write_text("abcdefghijklmnop\nqrstuvwxyzABCDEF\n" * 30, encoding="utf-8")
    run = tmp_path / "long"
    result = invoke(["train", path, "--lines", "--out", run, "--set", "max_iters=200",
                     "--set", "val_frac=0", "--set", "learning_rate=0.02", *TINY,
                     "--set", "seq_length=4"])
    assert result.exit_code == 0
    row = json.loads(invoke(["sample", "-c", run, "--seed", "q", "--greedy", "--json"]).stdout)
    assert row["text"] == "qrstuvwxyzABCDEF" and row["complete"]


def labelled(tmp_path):
    path = tmp_path / "labelled.txt"
    rows = [f"a\t{w}" for w in words(120, 1)] + [f"b\t{w.upper()}" for w in words(120, 2)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_labels_condition_sampling_and_eval(tmp_path):
    path = labelled(tmp_path)
    run = tmp_path / "lab"
    result = invoke(["train", path, "--lines", "--labels", "--out", run,
                     "--set", "max_iters=80", *TINY])
    assert result.exit_code == 0
    ckpt = load_checkpoint(run / "last.npz")
    assert ckpt.labels == ("a", "b") and ckpt.params["Wv"].shape == (1, 2, 64)
    unknown = CliRunner().invoke(cli, ["sample", "-c", str(run), "--label", "c"])
    assert unknown.exit_code == 1
    assert "Error: unknown label 'c'; the model's labels: a, b" in unknown.output
    missing = CliRunner().invoke(cli, ["sample", "-c", str(run)])
    assert missing.exit_code == 1
    assert "the model was trained with labels; choose one with --label: a, b" in missing.output
    report = json.loads(invoke(["eval", "-c", run, path, "--json"]).stdout)
    assert set(report["labels"]) == {"a", "b"}
    per = report["labels"]
    total = per["a"]["loss"] * per["a"]["n_chars"] + per["b"]["loss"] * per["b"]["n_chars"]
    assert per["a"]["n_chars"] + per["b"]["n_chars"] == report["n_chars"]
    assert abs(total / report["n_chars"] - report["loss"]) < 1e-9


def test_a_line_without_a_label_names_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_text("a\tkalo\nmine\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["train", str(path), "--lines", "--labels",
                                      "--out", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert f"{path}:2: no label" in result.output
    assert not (tmp_path / "r").exists()


def test_a_folder_trains_on_its_files(tmp_path):
    folder = tmp_path / "src"
    (folder / "sub").mkdir(parents=True)
    for k, w in enumerate(words(30, 4)):
        (folder / ("sub" if k % 2 else ".") / f"f{k}.txt").write_text(w * 3 + "\n")
    (folder / "image.bin").write_bytes(b"\x00\x01\x02")
    run = tmp_path / "run"
    result = invoke(["train", folder, "--out", run, "--set", "max_iters=10", *TINY])
    assert result.exit_code == 0
    assert "image.bin" in result.stderr and "not UTF-8 text" in result.stderr
    assert load_checkpoint(run / "last.npz").train_cfg.documents == "files"


def test_stream_with_several_files_is_refused(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("kalo\n")
    b.write_text("mine\n")
    result = CliRunner().invoke(cli, ["train", str(a), str(b), "--set", "documents=stream"])
    assert result.exit_code == 2
    assert "documents stream reads one text" in result.output


@pytest.mark.parametrize("labels", [False, True], ids=["lines", "labelled"])
def test_a_resumed_list_run_ends_as_one_never_stopped(labels, word_list, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    common = [labelled(tmp_path) if labels else word_list, "--lines", *TINY,
              "--set", "eval_every=10", "--set", "dropout=0.1"] + (["--labels"] if labels else [])
    assert invoke(["train", *common, "--out", whole, "--set", "max_iters=30"]).exit_code == 0
    assert invoke(["train", *common, "--out", parts, "--set", "max_iters=20"]).exit_code == 0
    result = invoke(["train", "--resume", parts, "--set", "max_iters=30"])
    assert result.exit_code == 0, result.output
    a, b = load_checkpoint(whole / "last.npz"), load_checkpoint(parts / "last.npz")
    for name in a.params:
        np.testing.assert_array_equal(a.params[name], b.params[name])


def test_subprocess_lines_and_sample(word_list, tmp_path):
    run = tmp_path / "run"
    train = subprocess.run([sys.executable, "-m", "charrnn", "train", str(word_list), "--lines",
                            "--out", str(run), "--set", "max_iters=20", *TINY, "--json"],
                           capture_output=True, text=True)
    assert train.returncode == 0, train.stderr
    assert json.loads(train.stdout)["iterations"] == 20
    sample = subprocess.run([sys.executable, "-m", "charrnn", "sample", "-c", str(run),
                             "--num-samples", "3", "--rng-seed", "0"],
                            capture_output=True, text=True)
    assert sample.returncode == 0 and len(sample.stdout.splitlines()) == 3


def test_export_of_a_model_of_documents(list_run, tmp_path):
    page = CliRunner().invoke(cli, ["export", str(list_run), "-o", str(tmp_path / "m.html")])
    assert page.exit_code == 1
    assert (f"Error: {list_run / 'best.npz'}: a model of documents cannot be exported as a page "
            "yet (the page writes one stream); export it as .onnx or .npz") in page.output
    assert not (tmp_path / "m.html").exists()
    weights = invoke(["export", list_run, "-o", tmp_path / "m.npz"])
    assert weights.exit_code == 0
    again = load_checkpoint(tmp_path / "m.npz")
    assert again.train_cfg.documents == "lines" and again.end is not None


def test_viz_reads_a_list_as_its_documents(list_run, word_list, tmp_path):
    """A model of lines reads the list's newlines as end marks (not unknown characters), each
    line from the start state."""
    result = invoke(["viz", word_list, "-c", list_run, "-o", tmp_path / "v.html"])
    assert result.exit_code == 0, result.output
    page = charrnn.view(str(word_list), str(list_run))
    trace = page.view.trace
    assert np.isfinite(trace.logprob[0])          # the first word, predicted from the start
    assert np.all(np.isfinite(trace.logprob))


def test_lines_without_a_newline_train_as_one_document(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text("kalominetarusipo" * 20, encoding="utf-8")
    run = tmp_path / "one"
    result = invoke(["train", path, "--lines", "--out", run, "--set", "max_iters=10", *TINY])
    assert result.exit_code == 0, result.output
    assert f"note: {path}: has no newline: read as one document\n" in result.stderr
    assert (f"note: {path}: has 1 document: none held out (whole documents are); validation "
            "scores the training text\n") in result.stderr


def test_sample_notes_for_a_model_of_documents(list_run):
    """--stop does nothing on documents (each ends at its end mark), and a prefix's unknown
    characters are skipped with a note, as a seed's."""
    result = invoke(["sample", "-c", list_run, "--stop", "a", "--seed", "kZ", "--unk", "skip",
                     "--rng-seed", "0"])
    assert result.exit_code == 0
    assert "note: --stop is not used on a model of documents: each ends at its end mark\n" \
        in result.stderr
    assert "note: skipped seed characters not in the model's vocabulary: 'Z'\n" in result.stderr
    assert result.stdout.startswith("k")


def test_files_with_labels_take_their_folders_name(tmp_path):
    """Files with labels: a file's label is its folder's name, in training and in eval."""
    root = tmp_path / "kinds"
    for kind, seed in (("north", 5), ("south", 6)):
        (root / kind).mkdir(parents=True)
        for k, w in enumerate(words(12, seed)):
            (root / kind / f"{k}.txt").write_text((w + " ") * 4 + "\n", encoding="utf-8")
    run = tmp_path / "run"
    result = invoke(["train", root, "--labels", "--out", run, "--set", "max_iters=10", *TINY])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(run / "last.npz").labels == ("north", "south")
    report = json.loads(invoke(["eval", "-c", run, root / "south" / "0.txt", "--json"]).stdout)
    assert list(report["labels"]) == ["south"] and report["documents"] == 1
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "x.txt").write_text("kalo\n", encoding="utf-8")
    unknown = CliRunner().invoke(cli, ["eval", "-c", str(run), str(other / "x.txt")])
    assert unknown.exit_code == 1
    assert (f"Error: {other / 'x.txt'}: unknown label 'elsewhere'; the model's labels: north, "
            "south") in unknown.output


def test_a_list_run_resumed_with_its_text_checks_it(word_list, tmp_path):
    """--resume RUN FILE: the same list goes on; a changed one is refused (SHA-256), the run
    left as it was."""
    run = tmp_path / "run"
    assert invoke(["train", word_list, "--lines", "--out", run, "--set", "max_iters=10",
                   *TINY]).exit_code == 0
    assert invoke(["train", word_list, "--resume", run, "--set", "max_iters=20"]).exit_code == 0
    assert load_checkpoint(run / "last.npz").iteration == 20
    word_list.write_text("kalo\nmine\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["train", str(word_list), "--resume", str(run),
                                      "--set", "max_iters=30"])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {word_list}: not the text {run} was trained on "
                                    "(SHA-256 ")
    assert f"start a new run with --init-from {run}\n" in result.output
    assert load_checkpoint(run / "last.npz").iteration == 20
