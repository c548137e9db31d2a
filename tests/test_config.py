"""Config resolution: defaults < YAML file < --set, and every error naming its source and key."""

import dataclasses
from pathlib import Path

import pytest

from charrnn.config import (PRESETS_DIR, ConfigError, ModelConfig, TrainConfig, load_config,
                            presets, read_yaml, resolve_config)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
VALID_KEYS = ("model, hidden_size, num_layers, dropout, weight_drop, embed_drop, variational, "
              "direct_order, direct_size, "
              "seq_length, batch_size, optimizer, learning_rate, momentum, lr_decay, lr_schedule, "
              "warmup_iters, lr_floor, ema, weight_decay, grad_clip, "
              "clip_mode, max_iters, time, eval_every, val_frac, completion, vocab, documents, labels, include, threads, shards")


@pytest.fixture
def yaml_file(tmp_path):
    """Write YAML text to a file and return its path."""
    def write(text, name="c.yaml"):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path
    return write


def _message(path=None, sets=(), base=None):
    with pytest.raises(ConfigError) as info:
        load_config(path, sets, base=base)
    return str(info.value)


# --- precedence ---------------------------------------------------------------------------------

def test_no_file_no_sets_gives_the_dataclass_defaults():
    assert load_config() == (ModelConfig(), TrainConfig())


def test_yaml_overrides_defaults_and_set_overrides_yaml(yaml_file):
    path = yaml_file("model: rnn\nhidden_size: 64\nlearning_rate: 1.0e-2\n")
    model_cfg, train_cfg = load_config(path, ["hidden_size=32", "batch_size=8"])
    assert model_cfg == ModelConfig(model="rnn", hidden_size=32, num_layers=2, dropout=0.0)
    assert train_cfg == TrainConfig(learning_rate=0.01, batch_size=8)
    assert train_cfg.seq_length == 64  # untouched: the default


def test_the_last_of_repeated_sets_wins():
    model_cfg, _ = load_config(None, ["hidden_size=32", "hidden_size=48"])
    assert model_cfg.hidden_size == 48


def test_set_strips_spaces_around_key_and_value():
    model_cfg, train_cfg = load_config(None, [" hidden_size = 7 ", "optimizer= sgd"])
    assert model_cfg.hidden_size == 7
    assert train_cfg.optimizer == "sgd"


def test_empty_yaml_file_gives_defaults(yaml_file):
    assert load_config(yaml_file("")) == (ModelConfig(), TrainConfig())
    assert load_config(yaml_file("# only a comment\n")) == (ModelConfig(), TrainConfig())


def test_int_given_for_a_float_is_accepted_as_float(yaml_file):
    _, train_cfg = load_config(yaml_file("learning_rate: 1\ngrad_clip: 0\n"))
    assert train_cfg.learning_rate == 1.0 and type(train_cfg.learning_rate) is float
    assert train_cfg.grad_clip == 0.0 and type(train_cfg.grad_clip) is float
    _, train_cfg = load_config(None, ["learning_rate=1"])
    assert train_cfg.learning_rate == 1.0 and type(train_cfg.learning_rate) is float


def test_set_converts_values_to_the_keys_types():
    model_cfg, train_cfg = load_config(None, ["dropout=0.25", "max_iters=5", "clip_mode=value",
                                              "learning_rate=2e-3"])
    assert model_cfg.dropout == 0.25
    assert train_cfg.max_iters == 5 and type(train_cfg.max_iters) is int
    assert train_cfg.clip_mode == "value"
    assert train_cfg.learning_rate == 0.002  # on the command line 2e-3 is a float


# --- unknown keys and wrong types --------------------------------------------------------------

def test_unknown_yaml_key_names_file_and_key_and_lists_valid_keys(yaml_file):
    path = yaml_file("hidden_size: 8\nhiden_size: 16\n")
    assert _message(path) == f"{path}: unknown key 'hiden_size'; valid keys: {VALID_KEYS}"


def test_unknown_key_error_carries_the_key(yaml_file):
    with pytest.raises(ConfigError) as info:
        load_config(yaml_file("foo: 1\n"))
    assert info.value.key == "foo"


@pytest.mark.parametrize("text, message", [
    ('hidden_size: "big"\n', "hidden_size='big' should be int"),
    ("hidden_size: true\n", "hidden_size=True should be int"),
    ("hidden_size: 8.0\n", "hidden_size=8.0 should be int"),
    ("hidden_size:\n", "hidden_size=None should be int"),
    ("model: 3\n", "model=3 should be str"),
    ("learning_rate: 2e-3\n",
     "learning_rate='2e-3' should be float (YAML 1.1 reads 2e-3 as text: write 2.0e-3)"),
    ("dropout: [0.1]\n", "dropout=[0.1] should be float"),
])
def test_wrong_yaml_type_names_file_key_and_type(yaml_file, text, message):
    path = yaml_file(text)
    assert _message(path) == f"{path}: {message}"


def test_yaml_leading_zero_integer_is_refused(yaml_file):
    """STYLE.md section 6: PyYAML reads 010 as 8 (octal), so leading zeros are banned."""
    path = yaml_file("hidden_size: 010\n")
    message = _message(path)
    assert message.startswith(f"{path}: ") and "hidden_size" in message


# --- out-of-range values, with their source ----------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("hidden_size: 0\n", "hidden_size must be >= 1, got 0"),
    ("num_layers: -1\n", "num_layers must be >= 1, got -1"),
    ("dropout: 1.0\n", "dropout must be in [0, 1), got 1.0"),
    ("val_frac: 1.0\n", "val_frac must be in [0, 1), got 1.0"),
    ("optimizer: foo\n", "optimizer must be one of sgd, adagrad, rmsprop, adam; got 'foo'"),
    ("model: transformer\n", "model must be one of rnn, gru, lstm; got 'transformer'"),
    ("learning_rate: 0.0\n", "learning_rate must be > 0, got 0.0"),
    ("learning_rate: .nan\n", "learning_rate must be > 0, got nan"),
    ("lr_decay: 0.0\n", "lr_decay must be in (0, 1], got 0.0"),
    ("grad_clip: -1.0\n", "grad_clip must be >= 0, got -1.0"),
    ("clip_mode: both\n", "clip_mode must be one of value, norm; got 'both'"),
    ("threads: -1\n", "threads must be >= 0, got -1"),
    ("shards: 0\n", "shards must be >= 1, got 0"),
])
def test_out_of_range_yaml_value_names_the_file_and_key(yaml_file, text, message):
    path = yaml_file(text)
    assert _message(path) == f"{path}: {message}"


@pytest.mark.parametrize("item, message", [
    ("hidden_size=0", "--set: hidden_size must be >= 1, got 0"),
    ("dropout=1", "--set: dropout must be in [0, 1), got 1.0"),
    ("val_frac=1.0", "--set: val_frac must be in [0, 1), got 1.0"),
    ("optimizer=foo", "--set: optimizer must be one of sgd, adagrad, rmsprop, adam; got 'foo'"),
    ("momentum=nan", "--set: momentum must be in [0, 1), got nan"),
    ("threads=-2", "--set: threads must be >= 0, got -2"),
    ("shards=0", "--set: shards must be >= 1, got 0"),
    ("shards=two", "--set: shards='two' should be int"),
])
def test_out_of_range_set_value_names_set_and_key(item, message):
    assert _message(None, [item]) == message


def test_threads_0_is_every_core_and_the_default_and_shards_default_to_2():
    """threads caps the cores (0: none, the default); shards, which the numbers depend on,
    keeps the 2 that threads used to give."""
    train = load_config(None, ["threads=0"])[1]
    assert train.threads == 0 and train.shards == 2 and TrainConfig().threads == 0
    assert load_config(None, ["threads=16", "shards=4"])[1] == TrainConfig(threads=16, shards=4)


def test_out_of_range_from_the_file_is_blamed_on_the_file_even_with_other_sets(yaml_file):
    path = yaml_file("dropout: 1.0\n")
    assert _message(path, ["hidden_size=16"]) == f"{path}: dropout must be in [0, 1), got 1.0"


def test_a_set_fixes_an_out_of_range_file_value(yaml_file):
    model_cfg, _ = load_config(yaml_file("hidden_size: 0\n"), ["hidden_size=4"])
    assert model_cfg.hidden_size == 4


def test_out_of_range_base_value_is_blamed_on_defaults():
    assert _message(base={"hidden_size": 0}) == "defaults: hidden_size must be >= 1, got 0"


def test_out_of_range_error_carries_the_key(yaml_file):
    with pytest.raises(ConfigError) as info:
        load_config(yaml_file("val_frac: 1.0\n"))
    assert info.value.key == "val_frac"


# --- malformed files --------------------------------------------------------------------------

def test_yaml_list_at_top_level_is_an_error(yaml_file):
    path = yaml_file("- hidden_size\n- 8\n")
    assert _message(path) == f"{path}: expected a mapping of keys to values at top level, got list"


def test_yaml_scalar_at_top_level_is_an_error(yaml_file):
    path = yaml_file("hello\n")
    assert _message(path) == f"{path}: expected a mapping of keys to values at top level, got str"


def test_yaml_syntax_error_gives_the_line(yaml_file):
    path = yaml_file("hidden_size: 8\nmodel: [rnn\nnum_layers: 2\n")
    message = _message(path)
    assert message.startswith(f"{path}: YAML syntax error at line 3, column ")
    assert message == f"{path}: YAML syntax error at line 3, column 11: expected ',' or ']', but got ':'"


def test_yaml_bad_indentation_gives_the_line(yaml_file):
    path = yaml_file("hidden_size: 8\n  num_layers: 2\n")
    message = _message(path)
    assert message.startswith(f"{path}: YAML syntax error at line 2, column ")


def test_yaml_file_not_utf8_gives_the_byte_offset(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_bytes(b"model: rnn\nhidden_size: \xff\n")
    assert _message(path) == f"{path}: not UTF-8 text (byte offset 24)"


def test_missing_yaml_file(tmp_path):
    path = tmp_path / "nope.yaml"
    assert _message(path) == (f"{path}: no such config file or preset (presets: "
                              f"{', '.join(presets())})")


# --- --set syntax -----------------------------------------------------------------------------

@pytest.mark.parametrize("item", ["hidden_size", "=8", " = 8", ""])
def test_set_without_key_equals_value(item):
    assert _message(None, [item]) == f"--set {item!r}: expected KEY=VALUE"


def test_set_unknown_key_lists_valid_keys():
    message = _message(None, ["hiden_size=8"])
    assert message == f"--set: unknown key 'hiden_size'; valid keys: {VALID_KEYS}"


@pytest.mark.parametrize("item, message", [
    ("hidden_size=abc", "--set: hidden_size='abc' should be int"),
    ("hidden_size=1.5", "--set: hidden_size='1.5' should be int"),
    ("hidden_size=", "--set: hidden_size='' should be int"),
    ("learning_rate=fast", "--set: learning_rate='fast' should be float"),
])
def test_set_value_of_the_wrong_type(item, message):
    assert _message(None, [item]) == message


def test_bad_set_is_reported_even_when_the_file_is_fine(yaml_file):
    assert _message(yaml_file("hidden_size: 8\n"), ["hidden_size=abc"]) == \
        "--set: hidden_size='abc' should be int"


# --- the dataclasses and the shipped configs --------------------------------------------------

@pytest.mark.parametrize("cls", [ModelConfig, TrainConfig])
def test_every_field_has_a_default(cls):
    for f in dataclasses.fields(cls):
        assert (f.default is not dataclasses.MISSING
                or f.default_factory is not dataclasses.MISSING), f"{cls.__name__}.{f.name}"
    cls()  # constructible with no arguments


@pytest.mark.parametrize("cls", [ModelConfig, TrainConfig])
def test_configs_are_frozen(cls):
    cfg = cls()
    name = dataclasses.fields(cls)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(cfg, name, getattr(cfg, name))


def test_model_and_train_fields_do_not_overlap():
    model = {f.name for f in dataclasses.fields(ModelConfig)}
    train = {f.name for f in dataclasses.fields(TrainConfig)}
    assert not model & train


def test_the_repo_has_configs():
    assert len(sorted(CONFIGS.glob("*.yaml"))) >= 1


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_config_loads(path):
    model_cfg, train_cfg = load_config(path)
    assert isinstance(model_cfg, ModelConfig) and isinstance(train_cfg, TrainConfig)


def test_default_yaml_lists_exactly_the_code_defaults():
    assert load_config(CONFIGS / "default.yaml") == (ModelConfig(), TrainConfig())
    listed = set(read_yaml(CONFIGS / "default.yaml"))
    assert listed == {f.name for cls in (ModelConfig, TrainConfig) for f in dataclasses.fields(cls)}


def test_presets_are_found_by_name_and_ship_inside_the_package(tmp_path, monkeypatch):
    assert presets() == sorted(p.stem for p in CONFIGS.glob("*.yaml"))
    assert "shakespeare" in presets() and PRESETS_DIR.parent.name == "charrnn"
    monkeypatch.chdir(tmp_path)                  # no configs/ here
    assert resolve_config("shakespeare") == PRESETS_DIR / "shakespeare.yaml"
    assert resolve_config("shakespeare.yaml") == PRESETS_DIR / "shakespeare.yaml"
    assert load_config("hello") == load_config(PRESETS_DIR / "hello.yaml")
    (tmp_path / "shakespeare").write_text("hidden_size: 8\n")   # a file of that name wins
    assert load_config("shakespeare")[0].hidden_size == 8
    with pytest.raises(ConfigError) as info:
        resolve_config("nonesuch")
    assert str(info.value) == ("nonesuch: no such config file or preset (presets: "
                               f"{', '.join(presets())})")
    with pytest.raises(ConfigError):
        resolve_config("elsewhere/shakespeare.yaml")   # a path, not a preset name


def test_hello_yaml_values():
    model_cfg, train_cfg = load_config(CONFIGS / "hello.yaml")
    assert model_cfg == ModelConfig(model="rnn", hidden_size=10, num_layers=1)
    assert (train_cfg.optimizer, train_cfg.learning_rate, train_cfg.seq_length,
            train_cfg.batch_size, train_cfg.grad_clip, train_cfg.val_frac) == \
        ("sgd", 0.1, 4, 1, 0.0, 0.0)


# --- completion and vocab ----------------------------------------------------------------------

@pytest.mark.parametrize("item, message", [
    ("completion=@", "--set: completion must be two different characters, a separator then an "
                     "end mark (e.g. '@.'), or '' for none; got '@'"),
    ("completion=@@", "--set: completion must be two different characters, a separator then an "
                      "end mark (e.g. '@.'), or '' for none; got '@@'"),
    ("completion=@.x", "--set: completion must be two different characters, a separator then an "
                       "end mark (e.g. '@.'), or '' for none; got '@.x'"),
    ("vocab=aaa", "--set: vocab must hold at least 2 different characters, or be '' for the "
                  "text's own; got 'aaa'"),
])
def test_completion_and_vocab_values_are_checked(item, message):
    assert _message(None, [item]) == message


def test_completion_characters_must_be_in_an_explicit_vocab(yaml_file):
    path = yaml_file('completion: "@."\nvocab: "0123456789@"\n')
    assert _message(path) == f"{path}: completion '@.' has characters that vocab lacks: '.'"
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.key == "completion"


def test_set_takes_completion_and_vocab_as_written_spaces_and_newlines_included(yaml_file):
    _, train_cfg = load_config(None, ["vocab= ab.\n", "completion= ."])
    assert (train_cfg.vocab, train_cfg.completion) == (" ab.\n", " .")
    _, train_cfg = load_config(yaml_file('vocab: " #@.0123456789\\n"\ncompletion: "@."\n'))
    assert (train_cfg.vocab, train_cfg.completion) == (" #@.0123456789\n", "@.")


# --- the regularisers (AWD-LSTM): weight_drop, embed_drop, variational, weight_decay -----------

@pytest.mark.parametrize("text, message", [
    ("weight_drop: 1.5\n", "weight_drop must be in [0, 1), got 1.5"),
    ("weight_drop: 1.0\n", "weight_drop must be in [0, 1), got 1.0"),
    ("embed_drop: -0.1\n", "embed_drop must be in [0, 1), got -0.1"),
    ("weight_decay: -1.0e-4\n", "weight_decay must be >= 0, got -0.0001"),
    ("weight_decay: .nan\n", "weight_decay must be >= 0, got nan"),
    ("variational: 1\n", "variational=1 should be bool"),
    ("weight_drop: 2e-1\n",
     "weight_drop='2e-1' should be float (YAML 1.1 reads 2e-3 as text: write 2.0e-3)"),
])
def test_regulariser_errors_name_the_file_and_key(yaml_file, text, message):
    path = yaml_file(text)
    assert _message(path) == f"{path}: {message}"


def test_regularisers_default_off_and_read_from_yaml_and_set(yaml_file):
    model_cfg, train_cfg = load_config()
    assert (model_cfg.weight_drop, model_cfg.embed_drop, model_cfg.variational,
            train_cfg.weight_decay) == (0.0, 0.0, False, 0.0)
    path = yaml_file("weight_drop: 0.5\nvariational: true\nweight_decay: 0.01\n")
    model_cfg, train_cfg = load_config(path, ["embed_drop=0.1", "weight_decay=0"])
    assert (model_cfg.weight_drop, model_cfg.embed_drop, model_cfg.variational,
            train_cfg.weight_decay) == (0.5, 0.1, True, 0.0)
    assert _message(None, ["weight_drop=1"]) == "--set: weight_drop must be in [0, 1), got 1.0"
    with pytest.raises(ConfigError) as info:
        ModelConfig(embed_drop=1.5)
    assert str(info.value) == "embed_drop must be in [0, 1), got 1.5" and info.value.key == "embed_drop"


def test_set_reads_a_bool_as_yaml_does_not_as_python():
    """bool("false") is True: --set variational=false must give False, and junk an error."""
    assert load_config(None, ["variational=false"])[0].variational is False
    assert load_config(None, ["variational=true"])[0].variational is True
    assert load_config(None, ["variational=1"])[0].variational is True
    assert _message(None, ["variational=maybe"]) == ("--set: variational='maybe' should be bool "
                                                      "(true or false)")
