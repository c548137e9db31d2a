"""What charrnn chooses for the keys a new run leaves open (auto.py): the speeds are made up
here (seconds_per_char_at), whatever this machine does."""

import json

import pytest

import charrnn
import charrnn.plan as plan_module
from charrnn import auto

from cli_helpers import invoke

TEXT = "".join(f"line {i}: the cat sat on the mat, {i * 7 % 13} times.\n" for i in range(120))


def _speed(seconds_per_char):
    """A timer that says the reference width trains at this speed, and records its calls."""
    calls = []

    def seconds_per_char_at(model, N, T):
        calls.append((model.get("hidden_size"), N, T))
        return seconds_per_char
    seconds_per_char_at.calls = calls
    return seconds_per_char_at


def test_given_model_and_length_leave_nothing_to_choose():
    timer = _speed(1e-5)
    assert auto.choose(10 ** 6, 65, {"hidden_size": 64, "max_iters": 9}, timer) == ({}, "")
    assert auto.choose(10 ** 6, 65, {"model": "rnn"}, timer, budget=60.0) == ({}, "")
    assert timer.calls == []                     # and nothing was timed


def test_the_width_follows_the_characters_the_budget_reads():
    """The widest width that reads CHARS_PER_PARAM characters per parameter in the budget and
    has at most PARAMS_PER_CHAR parameters per training character."""
    V, n = 65, 10 ** 8                           # a long text: the budget decides
    for reference in (1e-7, 1e-6, 1e-5, 1e-4):
        choices, _ = auto.choose(n, V, {}, _speed(reference), budget=600.0)
        H = choices["hidden_size"]
        per_char = lambda w: reference * auto.gru_flops(w, V) / auto.gru_flops(256, V)  # noqa
        fits = lambda w: 600.0 / per_char(w) >= auto.CHARS_PER_PARAM * auto.gru_params(w, V)  # noqa
        assert fits(H) or H == auto.WIDTHS[0]
        assert all(not fits(w) for w in auto.WIDTHS if w > H)
    small, _ = auto.choose(10 ** 8, V, {}, _speed(1e-4), budget=600.0)
    large, _ = auto.choose(10 ** 8, V, {}, _speed(1e-7), budget=600.0)
    assert small["hidden_size"] < large["hidden_size"]      # a faster machine: a wider model


def test_a_short_text_gets_a_small_model_dropout_and_a_short_budget():
    timer = _speed(1e-7)                         # fast: the text's length decides
    choices, said = auto.choose(100_000, 80, {}, timer)
    n_train = int(100_000 * 0.95)
    assert auto.gru_params(choices["hidden_size"], 80) <= auto.PARAMS_PER_CHAR * n_train
    assert choices["dropout"] == auto.MAX_DROPOUT and choices["model"] == "gru"
    assert choices["time"] == f"{round(max(auto.MIN_BUDGET, 50 * n_train * 1e-7 * auto.gru_flops(choices['hidden_size'], 80) / auto.gru_flops(256, 80)))}s"  # noqa: E501
    assert (choices["lr_schedule"], choices["warmup_iters"]) == ("cosine", auto.WARMUP_ITERS)
    assert said.startswith("chose val_frac=0.05, model=gru, num_layers=2, hidden_size=")
    assert said.endswith(" for 100,000 characters")
    assert timer.calls == [(256, 64, 100)]


def test_a_long_text_holds_out_at_most_val_chars():
    choices, _ = auto.choose(10 ** 8, 65, {}, _speed(1e-6))
    assert choices["val_frac"] == auto.VAL_CHARS / 10 ** 8
    assert "val_frac" not in auto.choose(10 ** 8, 65, {"val_frac": 0.1}, _speed(1e-6))[0]


def test_a_long_text_gets_the_time_of_a_pass_at_most_an_hour_and_says_so():
    V = 65
    per_char = lambda ref, w: ref * auto.gru_flops(w, V) / auto.gru_flops(256, V)  # noqa: E731
    # one pass of 3 x 10^7 characters at this speed takes between 10 minutes and an hour
    choices, said = auto.choose(3 * 10 ** 7, V, {}, _speed(5e-5))
    H, n_train = choices["hidden_size"], int(3 * 10 ** 7 * (1 - choices["val_frac"]))
    one_pass = n_train * per_char(5e-5, H)
    assert auto.DEFAULT_BUDGET < one_pass < auto.LONG_BUDGET
    assert choices["time"] == f"{round(one_pass)}s"
    assert said.endswith(f" for 30,000,000 characters; a long text: {round(one_pass / 60)} "
                         "minutes planned, to read it about 1 times; give --time (e.g. --time "
                         "10m) for less, or stop it with Ctrl-C, which keeps the best checkpoint")
    # longer than LONG_BUDGET (50 minutes): LONG_BUDGET
    choices, said = auto.choose(10 ** 8, V, {}, _speed(1e-5))
    assert choices["time"] == f"{round(auto.LONG_BUDGET)}s"
    assert f"a long text: {round(auto.LONG_BUDGET / 60)} minutes planned" in said
    # a pass shorter than 10 minutes: the default budget, and nothing said
    choices, said = auto.choose(10 ** 8, V, {}, _speed(1e-7))
    assert choices["time"] == "600s" and "long text" not in said


@pytest.mark.parametrize("n_chars, shape", [(10 ** 6, (64, 100)), (2_000, (4, 100)),
                                            (200, (1, 47)), (3, (1, 1))])
def test_a_short_text_trains_fewer_streams_and_shorter_chunks(n_chars, shape):
    choices, _ = auto.choose(n_chars, 30, {}, _speed(1e-6))
    assert (choices["batch_size"], choices["seq_length"]) == shape
    n_train = int(n_chars * 0.95)
    assert shape[0] * shape[1] * 4 < n_train or shape == (1, 1)    # four chunks a stream


def test_user_keys_are_never_changed(monkeypatch):
    choices, _ = auto.choose(10 ** 6, 65, {"learning_rate": 0.01, "dropout": 0.1,
                                           "eval_every": 7}, _speed(1e-6))
    assert not {"learning_rate", "lr_schedule", "dropout", "hidden_size", "eval_every"} & set(
        choices)
    assert "time" in choices                     # the length was left open


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


def test_the_plain_command_says_what_it_chose_and_keeps_it(text_file, tmp_path, monkeypatch):
    """`charrnn train FILE` with nothing else: the choices are said and are the run's config
    (the budget here made short on purpose)."""
    monkeypatch.setattr(auto, "DEFAULT_BUDGET", 1.0)
    monkeypatch.setattr(auto, "MIN_BUDGET", 1.0)
    real = auto.choose

    def measured_at(n, V, given, timer, budget=None):
        return real(n, V, given, lambda model, N, T: 1e-4, budget)
    monkeypatch.setattr(plan_module.auto, "choose", measured_at)
    result = invoke(["train", text_file, "--out", tmp_path / "run", "--json"],
                    catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    chosen, = [n for n in summary["notes"] if n.startswith("chose ")]
    assert chosen.endswith(f" for {len(TEXT):,} characters")
    for item in chosen[len("chose "):].rsplit(" for ", 1)[0].split(", "):
        key, value = item.split("=", 1)
        assert str(summary["config"][key]) == value, key
    assert summary["config"]["model"] == "gru" and summary["config"]["time"] == "1s"
    human = invoke(["train", text_file, "--out", tmp_path / "run2"], catch_exceptions=False)
    assert f"note: {chosen}\n" in human.stderr
    report = charrnn.dry_run(text_file)
    assert chosen in report["notes"]


def test_a_given_max_iters_sets_the_evaluations_not_the_budget():
    """With max_iters given and the model left open, about EVALUATIONS evaluations in those
    iterations (not in the default budget's, which would put the only one at the end)."""
    choices, said = auto.choose(10 ** 6, 65, {"max_iters": 100}, _speed(1e-6))
    assert choices["eval_every"] == 100 // auto.EVALUATIONS and "time" not in choices
    assert "eval_every=10" in said
    choices, _ = auto.choose(10 ** 6, 65, {"max_iters": 5}, _speed(1e-6))
    assert choices["eval_every"] == 1


def test_a_long_enough_text_gets_direct_features_unless_given():
    n = int(auto.DIRECT_MIN_CHARS / 0.95) + 100           # training characters above the line
    choices, said = auto.choose(n, 65, {}, _speed(1e-6))
    assert (choices["direct_order"], choices["direct_size"]) == (auto.DIRECT_ORDER,
                                                                 auto.DIRECT_SIZE)
    assert f"direct_order={auto.DIRECT_ORDER}, direct_size={auto.DIRECT_SIZE}" in said
    short, _ = auto.choose(100_000, 65, {}, _speed(1e-6))
    assert "direct_order" not in short
    given, _ = auto.choose(n, 65, {"direct_order": 2}, _speed(1e-6))
    assert "direct_order" not in given and "direct_size" not in given
    assert given["model"] == "gru"                         # the model is still chosen
