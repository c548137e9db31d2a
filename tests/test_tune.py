"""charrnn tune in one process (search.py, api.tune, the command): the space file and its errors,
trials as normal runs with trial.json, pruning, best.yaml as a config that trains the best
trial again, --show, joining a study, the storage's errors, and plotting a tune directory.
The races of several workers are in test_tune_workers.py, PostgreSQL in test_tune_postgres.py."""

import json
import math
import subprocess
import sys

import pytest

import charrnn
from charrnn import search
from charrnn.config import FIELDS, load_config, read_yaml
from cli_helpers import assert_fails, invoke, usage_error
from tune_helpers import FIXED, ROOT, tune_args, write_space, write_text

USAGE = "[OPTIONS] [FILE]"


# ----------------------------------------------------------------------------- the space

def test_a_space_file_maps_keys_to_choices_and_ranges(tmp_path):
    path = write_space(tmp_path / "s.yaml", "model: [gru, lstm]\n"
                       "dropout: [0, 0.25]\n"                       # ints of a float key: floats
                       "learning_rate: {low: 1.0e-3, high: 1.0e-2, log: true}\n"
                       "num_layers: {low: 1, high: 3}\n"
                       "hidden_size: {low: 64, high: 256, step: 64}\n")
    assert search.read_space(path) == {
        "model": {"choices": ["gru", "lstm"]},
        "dropout": {"choices": [0.0, 0.25]},
        "learning_rate": {"low": 1.0e-3, "high": 1.0e-2, "log": True, "step": None},
        "num_layers": {"low": 1, "high": 3, "log": False, "step": None},
        "hidden_size": {"low": 64, "high": 256, "log": False, "step": 64}}
    assert type(search.read_space(path)["dropout"]["choices"][0]) is float


def test_the_default_space_is_around_charrns_choices_and_valid(tmp_path):
    space = search.read_space()
    assert set(space) == {"model", "hidden_size", "num_layers", "dropout", "learning_rate",
                          "seq_length"}
    assert "gru" in space["model"]["choices"] and 256 in space["hidden_size"]["choices"]
    assert space["dropout"]["high"] == 0.3
    path = tmp_path / "default.yaml"     # the same space, written as a user would
    path.write_text("\n".join(f"{k}: {json.dumps(v['choices'])}" if "choices" in v else
                              f"{k}: {{low: {search._yaml_scalar(v['low'])}, high: "
                              f"{search._yaml_scalar(v['high'])}, log: {str(v['log']).lower()}}}"
                              for k, v in space.items()))
    assert search.read_space(path) == space


BAD_SPACES = [
    ("hidden_sise: [8]\n",
     "unknown key 'hidden_sise'; valid keys: " + ", ".join(FIELDS)),
    ("hidden_size: [8, wide]\n", "hidden_size='wide' should be int"),
    ("learning_rate: {low: 1e-3, high: 1.0e-2}\n",
     "learning_rate='1e-3' should be float (YAML 1.1 reads 2e-3 as text: write 2.0e-3)"),
    ("learning_rate: {low: 1.0e-2, high: 1.0e-3}\n",
     "learning_rate: an empty range: low 0.01 is not below high 0.001"),
    ("num_layers: {low: 2, high: 2}\n", "num_layers: an empty range: low 2 is not below high 2"),
    ("dropout: [0.1, 1.5]\n", "dropout must be in [0, 1), got 1.5"),
    ("hidden_size: {low: 0, high: 8}\n", "hidden_size must be >= 1, got 0"),
    ("model: {low: 1, high: 2}\n", "model is text: give a list of choices, not a range"),
    ("hidden_size: 128\n", "hidden_size should be a list of choices ([128, 256]) or a range "
                           "({low: 1.0e-3, high: 1.0e-2}), got 128"),
    ("hidden_size: []\n", "hidden_size should be a list of choices ([128, 256]) or a range "
                          "({low: 1.0e-3, high: 1.0e-2}), got []"),
    ("learning_rate: {low: 1.0e-3, hi: 1.0e-2}\n",
     "learning_rate: a range has low and high, and may have log or step; unknown: hi"),
    ("learning_rate: {low: 0.0, high: 1.0e-2, log: true}\n",
     "learning_rate must be > 0, got 0.0"),
    ("dropout: {low: 0.0, high: 0.5, log: true}\n",
     "dropout: a log range needs low > 0, got 0.0"),
    ("hidden_size: {low: 8, high: 30, step: 8}\n",
     "hidden_size: step should be > 0, divide high - low, and not go with log; got 8"),
    ("time: [10s, 20s]\n", "time is each trial's budget (--time-per-trial), not a setting to search"),
    ("", "no keys: a search space maps config keys to a list of choices or a range"),
]


@pytest.mark.parametrize("content, message", BAD_SPACES, ids=[m[:30] for _, m in BAD_SPACES])
def test_a_bad_space_is_one_line_naming_the_file_and_key(tmp_path, text, content, message):
    path = write_space(tmp_path / "space.yaml", content)
    with pytest.raises(charrnn.ConfigError) as e:
        search.read_space(path)
    assert str(e.value) == f"{path}: {message}"
    result = invoke(tune_args(text, path, tmp_path / "out", 2))
    assert_fails(result, 2, f"Error: {path}: {message}\n")
    assert not (tmp_path / "out").exists()          # refused before anything is written


def test_a_tune_needs_each_trials_length(tmp_path, text, space):
    message = ("charrnn tune needs each trial's length: --time-per-trial (e.g. 30s), or max_iters "
               "(--set max_iters=500)")
    result = invoke(tune_args(text, space, tmp_path / "out", 2, fixed=("model=gru",)))
    assert_fails(result, 2, f"Error: {message}\n")


def test_a_bad_time_per_trial_or_fixed_key_is_refused_up_front(tmp_path, text, space):
    result = invoke(tune_args(text, space, tmp_path / "out", 2, "--time-per-trial", "soon"))
    assert_fails(result, 2, usage_error("tune", USAGE, "Invalid value for --time-per-trial: must "
                                        "be a duration such as 30s, 10m or 1.5h, got 'soon'"))
    result = invoke(tune_args(text, space, tmp_path / "out", 2, fixed=FIXED + ("dropout=2.0",)))
    assert_fails(result, 2, "Error: --set: dropout must be in [0, 1), got 2.0\n")


# ----------------------------------------------------------------------------- a tune

def test_a_tune_runs_n_trials_each_a_run_with_its_trial_json(tmp_path, text, space):
    lines = []
    result = charrnn.tune(text, trials=4, space=space, out=tmp_path / "t", sets=FIXED,
                          rng_seed=0, log=lines.append)
    assert len(result.trials) == 4 and result.study == "t"
    assert sum(result.counts().values()) == 4 and result.counts()["FAIL"] == 0
    ranked = [t["value"] for t in result.trials if t["state"] == "COMPLETE"]
    assert ranked == sorted(ranked) and result.best["value"] == ranked[0]
    for t in result.trials:
        saved = json.loads((tmp_path / "t" / f"trial-{t['number']:04d}" / "trial.json").read_text())
        assert saved == {"study": "t", **t}
        assert set(t["params"]) == {"hidden_size", "learning_rate"}
        assert 8 <= t["params"]["hidden_size"] <= 16 and 1e-3 <= t["params"]["learning_rate"] <= 5e-2
        summary = charrnn.load(t["run_dir"])          # a normal run directory
        assert summary.model_cfg.hidden_size == t["params"]["hidden_size"]
    assert lines[0] == f"study 't' made in {tmp_path / 't' / 'study.journal'}"
    assert any(line.startswith("trial 0: iter 10/10") for line in lines)
    assert not list((tmp_path / "t" / "workers").iterdir())   # the worker's lock went with it


def test_best_yaml_trains_the_best_trial_again(tmp_path, text, space):
    result = charrnn.tune(text, trials=3, space=space, out=tmp_path / "t", sets=FIXED,
                          rng_seed=0, pruner="none")
    best = result.best
    assert result.best_config == tmp_path / "t" / "best.yaml"
    assert read_yaml(result.best_config) == best["config"]
    header = result.best_config.read_text().splitlines()[:2]
    assert header == [f"# charrnn tune: the best of 3 trials of study 't': trial {best['number']}, "
                      f"best validation loss {best['value']:.4f} nats/char",
                      f"# train with it: charrnn train words.txt --config {result.best_config}"]
    trained = charrnn.load(best["run_dir"])
    assert load_config(result.best_config) == (trained.model_cfg, trained.train_cfg)
    again = charrnn.fit(text, config=result.best_config, out=tmp_path / "again", rng_seed=0)
    assert again["best_val_loss"] == best["value"]      # the same run, bit for bit


@pytest.mark.parametrize("value", [1e-05, 0.002, 3.0, 100, "gru", "a\nb \"c\"", "@."])
def test_best_yaml_writes_values_that_read_back_the_same(tmp_path, value):
    path = tmp_path / "x.yaml"
    path.write_text(f"x: {search._yaml_scalar(value)}\n")
    assert read_yaml(path) == {"x": value}


def test_a_trial_behind_the_others_is_pruned_and_says_so(tmp_path, text):
    space = write_space(tmp_path / "s.yaml", "learning_rate: [1.0e-4, 5.0e-2]\n")
    # a seed whose draws give the pruner something to do (trials with one rate are identical)
    result = charrnn.tune(text, trials=6, space=space, out=tmp_path / "t", sets=FIXED, rng_seed=2)
    states = {t["number"]: (t["state"], t["params"]["learning_rate"]) for t in result.trials}
    assert states == {0: ("COMPLETE", 5e-2), 1: ("COMPLETE", 5e-2), 2: ("COMPLETE", 1e-4),
                      3: ("PRUNED", 1e-4), 4: ("PRUNED", 1e-4), 5: ("COMPLETE", 5e-2)}
    pruned = next(t for t in result.trials if t["number"] == 3)
    assert pruned["reason"] == "pruned: behind the other trials at evaluation 2 (iteration 2)"
    assert pruned["iterations"] == 2 and math.isfinite(pruned["value"])
    rows = (tmp_path / "t" / "trial-0003" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["iteration"] for r in rows] == [1, 2]
    assert json.loads((tmp_path / "t" / "trial-0003" / "trial.json").read_text())["state"] == "PRUNED"
    again = charrnn.tune(text, trials=6, space=space, out=tmp_path / "u", sets=FIXED, rng_seed=2)
    assert [t["params"] for t in again.trials] == [t["params"] for t in result.trials]


def test_successive_halving_prunes_the_trials_behind(tmp_path, text):
    space = write_space(tmp_path / "s.yaml", "learning_rate: [1.0e-4, 5.0e-2]\n")
    result = charrnn.tune(text, trials=6, space=space, out=tmp_path / "t", sets=FIXED, rng_seed=2,
                          pruner="halving")
    states = {t["number"]: (t["state"], t["params"]["learning_rate"]) for t in result.trials}
    assert states == {0: ("COMPLETE", 5e-2), 1: ("COMPLETE", 5e-2), 2: ("PRUNED", 1e-4),
                      3: ("PRUNED", 1e-4), 4: ("PRUNED", 1e-4), 5: ("COMPLETE", 5e-2)}


def test_a_time_per_trial_sizes_the_evaluations_to_the_budget(tmp_path, text, space):
    result = charrnn.tune(text, trials=2, space=space, out=tmp_path / "t", time_per_trial="1s",
                          sets=("model=gru", "num_layers=1", "seq_length=16", "threads=1"),
                          rng_seed=0, pruner="none")
    for t in result.trials:
        assert t["state"] == "COMPLETE" and t["seconds"] < 1.5
        run = charrnn.load(t["run_dir"])
        assert run.train_cfg.time == "1s"
        evaluations = (tmp_path / "t" / f"trial-{t['number']:04d}" / "metrics.jsonl").read_text()
        assert 5 <= len(evaluations.splitlines()) <= 12     # about EVALUATIONS, whatever the speed


def test_the_same_command_again_goes_on_to_more_trials_or_does_nothing(tmp_path, text, space):
    args = dict(space=space, out=tmp_path / "t", sets=FIXED, rng_seed=0)
    charrnn.tune(text, trials=2, **args)
    lines = []
    result = charrnn.tune(text, trials=3, log=lines.append, **args)
    assert sorted(t["number"] for t in result.trials) == [0, 1, 2]
    assert lines[0] == (f"joining study 't' in {tmp_path / 't' / 'study.journal'}: 2 trials so "
                        "far, the same space, keys and text")
    assert len(charrnn.tune(text, trials=2, **args).trials) == 3      # has them: nothing to do


# ----------------------------------------------------------------------------- the command

def test_the_command_prints_the_trials_ranked_and_show_prints_them_again(tmp_path, text, space):
    out = tmp_path / "t"
    result = invoke(tune_args(text, space, out, 3, "--rng-seed", "0", "--json"),
                    catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"study", "storage", "out", "counts", "trials", "best", "best_config"}
    assert report["storage"] == str(out / "study.journal") and len(report["trials"]) == 3
    assert result.stderr == ""
    shown = invoke(["tune", "--show", out], catch_exceptions=False)
    lines = shown.stdout.splitlines()
    counts = ", ".join(f"{n} {w}" for n, w in ((report["counts"]["COMPLETE"], "complete"),
                                               (report["counts"]["PRUNED"], "pruned")) if n)
    assert lines[0] == f"study 't' ({out / 'study.journal'}): 3 trials: {counts}"
    assert lines[1] == "rank  trial  state     value (nats/char)  seconds  params"
    first = report["trials"][0]
    assert lines[2].startswith(f"   1  {first['number']:5d}  COMPLETE  {first['value']:17.4f}")
    assert lines[2].endswith(f"hidden_size={first['params']['hidden_size']}, "
                             f"learning_rate={first['params']['learning_rate']:.4g}")
    assert lines[-1] == (f"best: trial {first['number']}, validation loss {first['value']:.4f} "
                         f"nats/char; its settings: {out / 'best.yaml'} (charrnn train FILE "
                         f"--config {out / 'best.yaml'})")
    as_json = invoke(["tune", "--show", out, "--json"], catch_exceptions=False)
    assert json.loads(as_json.stdout) == report


def test_show_of_a_directory_or_study_that_does_not_exist(tmp_path, text, space):
    missing = tmp_path / "nowhere"
    assert_fails(invoke(["tune", "--show", missing]), 1,
                 f"Error: {missing}: no such tune directory\n")
    assert_fails(invoke(["tune", "--show", tmp_path]), 1,
                 f"Error: {tmp_path}: not a tune directory (no study.journal in it); for a study "
                 "in a database, give its --storage\n")
    charrnn.tune(text, trials=1, space=space, out=tmp_path / "t", sets=FIXED, study="mine")
    assert_fails(invoke(["tune", "--show", tmp_path / "t", "--study", "yours"]), 1,
                 f"Error: {tmp_path / 't' / 'study.journal'}: no study named 'yours'; studies "
                 "there: mine\n")
    shown = invoke(["tune", "--show", tmp_path / "t"], catch_exceptions=False)
    assert shown.stdout.startswith("study 'mine' (")        # a journal's only study


def test_show_reads_only_and_file_is_needed_to_tune(tmp_path, text):
    assert_fails(invoke(["tune", "--show", tmp_path, text, "--trials", "3"]), 2,
                 usage_error("tune", USAGE, "--show only reads a tune's trials: it cannot be "
                             "combined with FILE, --trials"))
    assert_fails(invoke(["tune", "--trials", "3"]), 2,
                 usage_error("tune", USAGE, "FILE is needed: the text the trials train on (or "
                             "--show DIR to see a tune's trials)"))


def test_a_tune_with_another_space_keys_or_text_is_refused(tmp_path, text, space):
    out = tmp_path / "t"
    charrnn.tune(text, trials=1, space=space, out=out, sets=FIXED)
    journal = out / "study.journal"
    other = write_space(tmp_path / "other.yaml", "hidden_size: [8, 32]\n"
                        "learning_rate: {low: 1.0e-3, high: 5.0e-2, log: true}\n")
    assert_fails(invoke(tune_args(text, other, out, 2)), 1,
                 f"Error: {journal}: study 't' was made with another search space (hidden_size: "
                 "{\"choices\": [8, 12, 16]} there, {\"choices\": [8, 32]} here); run the same "
                 "tune to join it, or give another --out or --study\n")
    assert_fails(invoke(tune_args(text, space, out, 2, fixed=FIXED[1:] + ("max_iters=20",))), 1,
                 f"Error: {journal}: study 't' was made with other fixed keys (max_iters: 10 "
                 "there, 20 here); run the same tune to join it, or give another --out or "
                 "--study\n")
    another = write_text(tmp_path / "words.txt.2", seed=1)
    sha = charrnn.load(out / "trial-0000").info["data_sha256"]
    result = invoke(tune_args(another, space, out, 2))
    assert result.exit_code == 1 and result.stderr.startswith(
        f"Error: {journal}: study 't' was made with another text (words.txt, SHA-256 "
        f"{sha[:16]}...; this one is ")
    assert len(charrnn.tune_results(out).trials) == 1      # nothing was added


def test_a_tune_directory_holds_one_studys_trials(tmp_path, text, space):
    out = tmp_path / "t"
    charrnn.tune(text, trials=1, space=space, out=out, sets=FIXED)
    assert_fails(invoke(tune_args(text, space, out, 2, "--study", "other")), 1,
                 f"Error: {out}: holds the trials of study 't'; give study 'other' another --out "
                 "(or --study t to join that one)\n")


def test_a_storage_that_cannot_be_reached_is_one_line_without_its_password(tmp_path, text, space):
    pytest.importorskip("psycopg2")
    import socket

    with socket.socket() as s:        # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://charrnn:secret@127.0.0.1:{port}/charrnn"
    result = invoke(tune_args(text, space, tmp_path / "t", 2, "--storage", url))
    assert_fails(result, 1, f"Error: postgresql://charrnn:***@127.0.0.1:{port}/charrnn: cannot "
                            f"open the study storage: connection to server at \"127.0.0.1\", "
                            f"port {port} failed: Connection refused\n")
    assert "secret" not in result.stderr


def test_a_database_without_a_lock_for_the_count_is_refused(tmp_path, text, space):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    assert_fails(invoke(tune_args(text, space, tmp_path / "t", 2, "--storage", url)), 1,
                 f"Error: {url}: charrnn tune keeps a study's count of trials exact with a lock "
                 "it takes on a journal file (the default) or a PostgreSQL database; use one of "
                 "those\n")


def test_without_optuna_a_tune_says_which_extra_to_install(tmp_path, text, space, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)      # as if it were not installed
    with pytest.raises(charrnn.TuneError) as e:
        charrnn.tune(text, trials=1, space=space, out=tmp_path / "t", sets=FIXED)
    assert str(e.value) == "charrnn tune needs Optuna: pip install charrnn[tune]"


def test_charrnn_and_its_help_do_not_import_optuna():
    code = ("import sys, charrnn, charrnn.cli\n"
            "from click.testing import CliRunner\n"
            "for args in (['--help'], ['tune', '--help']):\n"
            "    assert CliRunner().invoke(charrnn.cli.cli, args).exit_code == 0\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('optuna', 'sqlalchemy')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# ----------------------------------------------------------------------------- plotting a tune

def test_plot_draws_the_trials_of_a_tune_directory(tmp_path, text, space):
    result = charrnn.tune(text, trials=3, space=space, out=tmp_path / "t", sets=FIXED,
                          rng_seed=0, pruner="none")
    (tmp_path / "t" / "trial-0003").mkdir()               # a trial yet to evaluate
    (tmp_path / "t" / "trial-0003" / "trial.json").write_text("{}")
    page = charrnn.plot_runs([tmp_path / "t"])
    assert [run.name for run in page.runs] == [str(tmp_path / "t" / f"trial-{n:04d}")
                                               for n in range(3)]
    assert page.notes == (f"{tmp_path / 't'}: 1 of its 4 trials have no evaluation yet (left "
                          "out)",)
    labels = [f"hidden_size={t['params']['hidden_size']}" for t in result.trials]
    assert all(label in page.text for label in labels)
    by_glob = invoke(["plot", *sorted((tmp_path / "t").glob("trial-000[0-2]")), "-o",
                      tmp_path / "c.svg"], catch_exceptions=False)
    assert by_glob.exit_code == 0 and (tmp_path / "c.svg").read_text() == page.text
