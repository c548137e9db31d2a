"""The Python API (charrnn.fit, load, generate, score): the same results as the command line,
typed errors instead of exit codes."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import charrnn

from cli_helpers import invoke

TEXT = "the quick brown fox jumps over the lazy dog. " * 80
KEYS = {"max_iters": 12, "eval_every": 6, "hidden_size": 16, "num_layers": 1, "batch_size": 4,
        "seq_length": 16}


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "fox.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def _cli_sets():
    return [x for k, v in KEYS.items() for x in ("--set", f"{k}={v}")]


def test_fit_returns_what_train_json_prints(text_file, tmp_path):
    summary = charrnn.fit(text_file, out=tmp_path / "api", rng_seed=0, **KEYS)
    result = invoke(["train", text_file, *_cli_sets(), "--out", tmp_path / "cli",
                     "--rng-seed", "0", "--json"], catch_exceptions=False)
    cli = json.loads(result.stdout)
    assert list(summary) == list(cli)
    for key in ("seconds", "chars_per_second", "run_dir"):
        summary.pop(key), cli.pop(key)
    assert summary == cli
    assert summary["iterations"] == 12 and summary["config"]["hidden_size"] == 16


def test_fit_in_the_default_run_dir_then_load_the_latest(text_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = []
    summary = charrnn.fit(text_file, log=lines.append, **KEYS)
    assert summary["run_dir"].startswith("runs/") and summary["run_dir"].endswith("-fox")
    assert any(line.startswith("iter 12/12") for line in lines)
    model = charrnn.load()
    assert model.path == Path(summary["run_dir"]) / "best.npz"
    assert isinstance(model, charrnn.Checkpoint) and model.iteration == 12


def test_fit_resumes_and_refuses_what_the_cli_refuses(text_file, tmp_path):
    run = tmp_path / "run"
    charrnn.fit(text_file, out=run, rng_seed=1, **KEYS)
    more = charrnn.fit(resume=run, max_iters=18)
    assert more["resumed_from"] == 12 and more["iterations"] == 18 and more["changed"] == [
        "max_iters"]
    with pytest.raises(charrnn.ConfigError) as info:
        charrnn.fit(resume=run, hidden_size=32, max_iters=24)
    assert str(info.value).startswith(f"cannot resume {run} with hidden_size=32")
    with pytest.raises(charrnn.ConfigError) as info:
        charrnn.fit(resume=run, out=tmp_path / "other")
    assert str(info.value) == ("resume continues a run in its own directory: it cannot be "
                               "combined with init_from or out")
    with pytest.raises(charrnn.RunError) as info:
        charrnn.fit(text_file, out=run)
    assert str(info.value).startswith(f"{run}: already holds a run")


def test_config_keys_as_arguments_are_checked(text_file, tmp_path):
    with pytest.raises(charrnn.ConfigError) as info:
        charrnn.fit(text_file, out=tmp_path / "r", hiden_size=32)
    assert str(info.value).startswith("unknown config key 'hiden_size'; valid keys: model, ")
    with pytest.raises(charrnn.ConfigError) as info:
        charrnn.fit(text_file, out=tmp_path / "r", hidden_size="32")
    assert str(info.value) == "argument: hidden_size='32' should be int"
    with pytest.raises(charrnn.ConfigError) as info:
        charrnn.fit(text_file, out=tmp_path / "r", dropout=1.5)
    assert str(info.value) == "argument: dropout must be in [0, 1), got 1.5"
    assert not (tmp_path / "r").exists()
    with pytest.raises(charrnn.DataError):
        charrnn.fit(tmp_path / "missing.txt", out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    path = root / "fox.txt"
    path.write_text(TEXT, encoding="utf-8")
    charrnn.fit(path, out=root / "run", rng_seed=0, **KEYS)
    return charrnn.load(root / "run")


def test_generate_is_what_sample_prints(model):
    text = charrnn.generate(model, "the ", 60, temperature=0.8, rng_seed=3)
    assert isinstance(text, str) and len(text) == 60
    result = invoke(["sample", "-c", model.path, "--seed", "the ", "-n", "60", "-t", "0.8",
                     "--rng-seed", "3"], catch_exceptions=False)
    assert result.stdout == "the " + text + "\n"
    many = charrnn.generate(model, "the ", 30, num_samples=3, rng_seed=3, stop=("x",))
    assert len(many) == 3 and all(len(t) <= 30 for t in many)
    assert charrnn.generate(model, num_chars=5, greedy=True) == charrnn.generate(
        model, "\n" if "\n" in model.vocab.stoi else model.vocab.chars[0], 5, top_k=1)
    with pytest.raises(charrnn.DataError):
        charrnn.generate(model, "THE", 5)
    assert len(charrnn.generate(model, "THE ", 5, unk="skip", rng_seed=0)) == 5


def test_score_is_what_eval_reports(model, tmp_path):
    text = TEXT[:700]
    scores = charrnn.score(model, text)
    path = tmp_path / "part.txt"
    path.write_text(text, encoding="utf-8")
    cli = json.loads(invoke(["eval", "-c", model.path, path, "--json"]).stdout)
    assert {k: scores[k] for k in cli} == cli
    assert scores["logprobs"].shape == (699,) and scores["n_chars"] == 699
    assert -scores["logprobs"].sum() == pytest.approx(scores["loss"] * 699, rel=1e-9)
    assert scores["bits_per_char"] == pytest.approx(scores["loss"] / math.log(2))
    skipped = charrnn.score(model, "the QUICK fox", unk="skip")
    assert skipped["skipped"] == 5 and skipped["n_chars"] == len("the  fox") - 1


def test_importing_charrnn_does_not_import_numpy():
    code = "import sys, charrnn; print('numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout == "False\n", out.stderr
    assert np.__name__ == "numpy"


# ---------------------------------------------------------------------------- the one door
# Every command is one call here; these check each call against what its command prints.


def test_sampler_streams_sample_zero_and_says_its_notes(model, tmp_path, monkeypatch):
    generation = charrnn.sampler(model.path, "the QUICK ", 40, unk="replace", stop=("Z!",),
                                 num_samples=2, rng_seed=5)
    assert generation.seed == "the       "          # 5 unknown characters, each a space
    assert generation.notes == (
        "replaced 5 seed characters not in the model's vocabulary with ' ': "
        "'C', 'I', 'K', 'Q', 'U'",
        "--stop 'Z!' can never match: the model cannot generate '!', 'Z'")
    streamed = []
    samples = generation.samples(on_char=streamed.append)
    assert len(samples) == 2 and "".join(streamed) == samples[0].text
    result = invoke(["sample", "-c", model.path, "--seed", "the QUICK ", "-n", "40", "--unk",
                     "replace", "--stop", "Z!", "--num-samples", "2", "--rng-seed", "5"],
                    catch_exceptions=False)
    assert result.stdout == f"the       {samples[0].text}\n---\nthe       {samples[1].text}\n"
    assert result.stderr == "".join(f"note: {n}\n" for n in generation.notes)
    # no model given: the latest run under runs_dir, said first among the notes
    latest = charrnn.sampler(None, "the ", 5, runs_dir=model.path.parent.parent)
    assert latest.notes == (f"using {model.path} (the latest run under "
                            f"{model.path.parent.parent})",)
    with pytest.raises(charrnn.SeedError) as info:
        charrnn.sampler(model, "THE", 5)
    assert info.value.argument == "seed" and str(info.value) == (
        "seed has characters not in the model's vocabulary: 'E', 'H', 'T'")


def test_score_files_is_what_eval_prints(model, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(TEXT[:300], encoding="utf-8")
    b.write_text(TEXT[300:500] + "Q", encoding="utf-8")
    result = charrnn.score_files([a, b], model, unk="skip", worst=3,
                                 per_char=tmp_path / "rows.tsv")
    assert result.names == (str(a), str(b)) and result.notes == ()
    assert [r["n_chars"] for r in result.reports] == [299, 199]
    assert result.total["n_chars"] == 498 and result.total["skipped_chars"] == ["Q"]
    for r, text in zip(result.reports, (TEXT[:300], TEXT[300:500])):
        assert r["loss"] == pytest.approx(charrnn.score(model, text)["loss"], rel=1e-6)
    assert [w["index"] for w in result.worst] and len(result.worst) == 3
    rows = (tmp_path / "rows.tsv").read_text(encoding="utf-8").splitlines()
    assert rows[0] == "file\toffset\tchar\tlogprob" and len(rows) == 1 + 498
    cli = invoke(["eval", a, b, "-c", model.path, "--unk", "skip", "--worst", "3", "--json"],
                 catch_exceptions=False)
    assert json.loads(cli.stdout) == json.loads(json.dumps(result.as_json()))
    with pytest.raises(charrnn.ArgumentError) as info:
        charrnn.score_files(["-", "-"], model)
    assert str(info.value) == "'-' (stdin) can be given only once"
    with pytest.raises(charrnn.ConfigError) as info:
        charrnn.score_files([a], model, accuracy=True)
    assert info.value.key == "completion"


def test_view_and_plot_runs_are_pages_to_write(model, tmp_path):
    text = tmp_path / "t.txt"
    text.write_text(TEXT[:400], encoding="utf-8")
    page = charrnn.view(text, model, length=100, neurons="0:1,0:2")
    assert page.default_name == "viz.html" and page.text.startswith("<!DOCTYPE html>")
    assert [(u.layer, u.index) for u in page.view.units] == [(0, 1), (0, 2)]
    assert len(page.view.shown) == 100
    assert charrnn.write_page(tmp_path / "v.html", page.text) == len(page.text.encode())
    cli = invoke(["viz", text, "-c", model.path, "--length", "100", "--neurons", "0:1,0:2",
                  "-o", "-"], catch_exceptions=False)
    assert cli.stdout == page.text == (tmp_path / "v.html").read_text(encoding="utf-8")
    with pytest.raises(charrnn.ViewError) as info:
        charrnn.view(text, model, start=10_000)
    assert info.value.argument == "start"
    chart = charrnn.plot_runs([model.path.parent], axis="seconds")
    assert chart.default_name == "curves.svg" and chart.text.startswith("<svg")
    assert [r.name for r in chart.runs] == [str(model.path.parent)]
    html = charrnn.plot_runs([model.path.parent], fmt="html")
    assert html.text.startswith("<!DOCTYPE html>") and "<svg" in html.text


def test_the_rules_on_arguments_live_in_one_place(text_file, tmp_path):
    """plan.check_arguments words its errors for the API or the command line."""
    with pytest.raises(charrnn.ArgumentError) as info:
        charrnn.fit(text_file, resume=tmp_path, init_from=tmp_path)
    assert str(info.value) == ("resume continues a run in its own directory: it cannot be "
                               "combined with init_from or out")
    result = invoke(["train", text_file, "--resume", tmp_path, "--dry-run"])
    assert result.exit_code == 2 and result.stderr.endswith(
        "Error: --resume continues a run in its own directory: it cannot be combined with "
        "--init-from, --out or --dry-run\n")
    assert list(tmp_path.iterdir()) == [text_file]      # nothing written by either


def test_presets_are_the_shipped_configs():
    shipped = Path(charrnn.__file__).parent / "configs"
    assert charrnn.presets() == sorted(p.stem for p in shipped.glob("*.yaml"))
    result = invoke(["train", "-h"], catch_exceptions=False)
    assert "".join(", ".join(charrnn.presets()).split()) in "".join(result.stdout.split())


def test_fit_stops_where_on_evaluation_says_and_resumes(text_file, tmp_path):
    """A caller (e.g. a search pruning a trial) can end a run at an evaluation: it ends cleanly
    there, says why, and resumes like any run."""
    seen = []

    def prune_at_six(record):
        seen.append(record)
        return "pruned by the test" if record["iteration"] == 6 else None

    lines = []
    summary = charrnn.fit(text_file, out=tmp_path / "run", rng_seed=0, log=lines.append,
                          on_evaluation=prune_at_six, **dict(KEYS, eval_every=3))
    assert [r["iteration"] for r in seen] == [3, 6] and summary["iterations"] == 6
    assert summary["stopped"] == "pruned by the test"
    assert summary["notes"][-1] == "stopped at iteration 6: pruned by the test"
    assert "stopped at iteration 6: pruned by the test" in lines
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r) for r in rows] == seen
    assert charrnn.load(tmp_path / "run" / "last.npz").iteration == 6
    more = charrnn.fit(resume=tmp_path / "run")
    assert more["iterations"] == 12 and more["stopped"] is None
