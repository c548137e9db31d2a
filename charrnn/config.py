"""Configuration: defaults in code, then a YAML file, then --set KEY=VALUE overrides.

Keys are flat (the names char-rnn and torch-rnn users know) and split over two frozen dataclasses,
ModelConfig (what the weights are) and TrainConfig (how they are trained). Every error is a
ConfigError naming the key and where its value came from.
"""

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError


@dataclass(frozen=True)
class ModelConfig:
    model: str = "lstm"          # cell: rnn (tanh) | lstm | gru
    hidden_size: int = 128       # H: units per layer (also the embedding width)
    num_layers: int = 2          # L: stacked recurrent layers
    dropout: float = 0.0         # probability of zeroing a unit of each layer's output, training only
    weight_drop: float = 0.0     # DropConnect: probability of zeroing each recurrent weight (Wh),
                                 # one mask per chunk for all streams, training only; in [0, 1)
    embed_drop: float = 0.0      # probability of zeroing a character's whole embedding row, one
                                 # mask per chunk, training only; in [0, 1)
    variational: bool = False    # dropout's masks locked across a chunk's steps (one per layer and
                                 # stream) instead of fresh at each step
    direct_order: int = 0        # n: hashed features of the last 1 .. n characters added to the
                                 # logits (RNNME's direct connections, direct.py); 0: none
    direct_size: int = 16384     # B: rows of each order's hashed table (n x B x V weights)

    def __post_init__(self):
        from .layers import GATES      # here, not above: listing presets needs no NumPy

        _choice(self, "model", tuple(GATES))
        _at_least(self, "hidden_size", 1)
        _at_least(self, "num_layers", 1)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}", "dropout")
        for key in ("weight_drop", "embed_drop"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"{key} must be in [0, 1), got {getattr(self, key)}", key)
        _at_least(self, "direct_order", 0)
        _at_least(self, "direct_size", 1)


@dataclass(frozen=True)
class TrainConfig:
    seq_length: int = 64         # T: characters per chunk (truncated-BPTT length)
    batch_size: int = 32         # N: parallel streams per chunk
    optimizer: str = "adam"      # sgd | adagrad | rmsprop | adam
    learning_rate: float = 2.0e-3  # step size (adam's, sgd's, ...)
    momentum: float = 0.0        # sgd only: heavy-ball momentum, 0 for none
    lr_decay: float = 1.0        # learning rate multiplied by this after each pass over the data
    lr_schedule: str = "constant"  # constant | cosine: from learning_rate down to lr_floor times
                                 # it at max_iters (the planned end of a --time run)
    warmup_iters: int = 0        # the rate rises linearly from learning_rate / warmup_iters
    lr_floor: float = 0.1        # cosine: the rate at the end, as a fraction of learning_rate
    ema: float = 0.0             # validate (and keep in best.npz) a moving average of the weights,
                                 # updated each iteration with this decay, in [0, 1); 0: off
    weight_decay: float = 0.0    # decoupled weight decay (AdamW): p -= learning rate x this x p
                                 # before each update, for the weights (not the biases); >= 0
    grad_clip: float = 5.0       # clip threshold; 0 turns clipping off
    clip_mode: str = "norm"      # value: each element to +-grad_clip; norm: the global L2 norm
    max_iters: int = 2000        # training iterations (chunks); with time, set by the plan
    time: str = ""               # a time budget, e.g. 30s, 10m, 1.5h: the run plans max_iters to
                                 # end on its own within it; "" for none
    eval_every: int = 200        # iterations between validation evaluations and checkpoints
    val_frac: float = 0.05       # the last fraction of the text held out for validation; 0: none,
                                 # evaluations then score the training text (for toys)
    completion: str = ""         # a separator and an end mark, e.g. "@.": the loss (training,
                                 # validation, eval) counts only the characters after a separator
                                 # up to and including the end mark; "": every character
    vocab: str = ""              # the vocabulary, given explicitly (its characters, in any order;
                                 # kept sorted by code point); "": the text's own characters
    documents: str = "stream"    # how the text is read: stream (one text, the state carried
                                 # throughout) | lines (each line a document) | files (each file
                                 # a document): each document starts from the start state and
                                 # ends with an end mark the model learns to predict
    labels: bool = False         # documents with labels (lines: a leading LABEL<TAB>; files: the
                                 # folder they lie in); the model conditions on them
    include: str = ""            # folders: read only files whose name matches one of these
                                 # comma-separated patterns (e.g. "*.py,*.md"); "": every file
    threads: int = 0             # the most cores a run computes on, OpenBLAS's threads included:
                                 # 0 for every core it may use (cores.py), n for at most n; never
                                 # changes the numbers
    shards: int = 2              # each batch cut into at most this many shards of streams, run at
                                 # once where there are cores (parallel.py), each of at least
                                 # 4096 streams x hidden_size; also for validation, eval and
                                 # sample --num-samples; the numbers depend on it

    @property
    def include_patterns(self):
        """The include key's patterns, a tuple (empty: every file)."""
        return tuple(p.strip() for p in self.include.split(",") if p.strip())

    @property
    def budget_seconds(self):
        """The time budget in seconds (parse_duration of time), or None without one."""
        return parse_duration(self.time) if self.time else None

    def __post_init__(self):
        from .optim import OPTIMIZERS, SCHEDULES   # as ModelConfig imports GATES

        for key in ("seq_length", "batch_size", "max_iters", "eval_every", "shards"):
            _at_least(self, key, 1)
        _at_least(self, "warmup_iters", 0)
        _at_least(self, "threads", 0)
        _choice(self, "optimizer", OPTIMIZERS)
        _choice(self, "lr_schedule", SCHEDULES)
        if not 0.0 <= self.ema < 1.0:
            raise ConfigError(f"ema must be in [0, 1), got {self.ema}", "ema")
        if not 0.0 <= self.lr_floor <= 1.0:
            raise ConfigError(f"lr_floor must be in [0, 1], got {self.lr_floor}", "lr_floor")
        if self.time:
            parse_duration(self.time)   # ConfigError if it is not one
        _choice(self, "clip_mode", ("value", "norm"))
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}", "learning_rate")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}", "momentum")
        if not 0.0 < self.lr_decay <= 1.0:
            raise ConfigError(f"lr_decay must be in (0, 1], got {self.lr_decay}", "lr_decay")
        if not self.weight_decay >= 0:
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay}", "weight_decay")
        if not self.grad_clip >= 0:
            raise ConfigError(f"grad_clip must be >= 0, got {self.grad_clip}", "grad_clip")
        if not 0.0 <= self.val_frac < 1.0:
            raise ConfigError(f"val_frac must be in [0, 1), got {self.val_frac}", "val_frac")
        if self.completion and (len(self.completion) != 2
                                or self.completion[0] == self.completion[1]):
            raise ConfigError("completion must be two different characters, a separator then an "
                              f"end mark (e.g. '@.'), or '' for none; got {self.completion!r}",
                              "completion")
        if self.vocab and len(set(self.vocab)) < 2:
            raise ConfigError("vocab must hold at least 2 different characters, or be '' for the "
                              f"text's own; got {self.vocab!r}", "vocab")
        _choice(self, "documents", ("stream", "lines", "files"))
        if self.labels and self.documents == "stream":
            raise ConfigError("labels belong to documents: set documents to lines or files "
                              "(--lines) to read labels", "labels")
        if self.completion and self.documents != "stream":
            raise ConfigError("completion scores parts of one stream; documents end with an "
                              "end mark of their own: use one or the other", "completion")
        lacking = sorted(set(self.completion) - set(self.vocab)) if self.vocab else []
        if lacking:
            raise ConfigError(f"completion {self.completion!r} has characters that vocab lacks: "
                              f"{', '.join(map(repr, lacking))}", "completion")


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text, key="time"):
    """Seconds in a duration written 30s, 10m or 1.5h (a positive number and a unit)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh])\s*", str(text))
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"{key} must be a duration such as 30s, 10m or 1.5h, got {text!r}", key)
    return float(match.group(1)) * _UNITS[match.group(2)]


def _at_least(cfg, key, low):
    if getattr(cfg, key) < low:
        raise ConfigError(f"{key} must be >= {low}, got {getattr(cfg, key)}", key)


def _choice(cfg, key, choices):
    if getattr(cfg, key) not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}; got {getattr(cfg, key)!r}",
                          key)


FIELDS = {f.name: f for cls in (ModelConfig, TrainConfig) for f in dataclasses.fields(cls)}


def _check_type(key, value, source):
    want = type(FIELDS[key].default)
    if want is float and type(value) is int:
        return float(value)
    if type(value) is not want:  # also rejects True for an int and '2e-3' for a float
        hint = ""
        if want is float and isinstance(value, str):
            hint = " (YAML 1.1 reads 2e-3 as text: write 2.0e-3)"
        raise ConfigError(f"{source}: {key}={value!r} should be {want.__name__}{hint}", key)
    return value


# keys whose --set value is taken exactly as written: spaces and newlines are characters there
VERBATIM = ("completion", "vocab")


BOOLS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False,
         "1": True, "0": False}


def _parse_set(item):
    """'key=value' from --set, the value converted to the key's type (and stripped of spaces
    around it, but for VERBATIM keys)."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected KEY=VALUE")
    if key not in FIELDS:
        raise ConfigError(f"--set: unknown key {key!r}; valid keys: {', '.join(FIELDS)}", key)
    want = type(FIELDS[key].default)
    if want is bool:   # bool("false") is True: read it as YAML writes it
        value = BOOLS.get(text.strip().lower())
        if value is None:
            raise ConfigError(f"--set: {key}={text!r} should be bool (true or false)", key)
        return key, value
    try:
        return key, want(text if key in VERBATIM else text.strip())
    except ValueError:
        raise ConfigError(f"--set: {key}={text!r} should be {want.__name__}", key) from None


def _refuse_leading_zeros(path, text):
    """YAML 1.1 reads 010 as 8 (octal): refuse top-level integers written with a leading zero."""
    import yaml

    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(node, yaml.MappingNode):
        return
    for key, value in node.value:
        if value.tag == "tag:yaml.org,2002:int" and re.fullmatch(r"[-+]?0[0-9_]+", value.value):
            raise ConfigError(f"{path}: {key.value}={value.value} (line {value.start_mark.line + 1}) "
                              "has a leading zero, which YAML 1.1 reads as octal; write "
                              f"{int(value.value.replace('_', ''))}", key.value)


PRESETS_DIR = Path(__file__).resolve().parent / "configs"   # shipped inside the package


def presets():
    """The names of the shipped config presets (charrnn/configs/<name>.yaml), sorted."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def resolve_config(name):
    """A config file's path: name itself if it is a file, else the preset of that name (with or
    without .yaml). ConfigError naming the presets if it is neither."""
    path = Path(name)
    if path.is_file():
        return path
    preset = PRESETS_DIR / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
    if path.parent == Path(".") and preset.is_file():
        return preset
    raise ConfigError(f"{name}: no such config file or preset (presets: {', '.join(presets())})")


def read_yaml(path):
    """The mapping in a YAML config file ({} for an empty file)."""
    import yaml     # here, not above: `charrnn --help` lists the presets without reading YAML

    try:
        text = Path(path).read_text(encoding="utf-8")
        raw = yaml.safe_load(text)
        _refuse_leading_zeros(path, text)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte offset {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise ConfigError(f"{path}: YAML syntax error{where}: {problem}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at top level, "
                          f"got {type(raw).__name__}")
    return raw


@dataclass(frozen=True)
class Layers:
    """A run's config as the user gave it, read and checked once: the YAML file's keys, then
    --set's, then the arguments' (the Python API's keyword arguments), each layer a
    (source, {key: value}) pair with every key known and every value of its key's type.
    resolve() stacks them on the defaults into the two configs; what charrnn chooses (auto.py)
    goes on top, for keys that no layer gives.

        defaults (or base) < YAML < --set < arguments < charrnn's choices
    """
    layers: tuple = ()

    @classmethod
    def read(cls, path=None, sets=(), overrides=None):
        layers = []
        if path is not None:
            path = resolve_config(path)
            raw = read_yaml(path)
            for key in raw:
                if key not in FIELDS:
                    raise ConfigError(f"{path}: unknown key {key!r}; valid keys: "
                                      f"{', '.join(FIELDS)}", key)
            layers.append((str(path), {k: _check_type(k, v, str(path)) for k, v in raw.items()}))
        if sets:
            layers.append(("--set", dict(_parse_set(item) for item in sets)))
        if overrides:
            for key in overrides:
                if key not in FIELDS:
                    raise ConfigError(f"unknown config key {key!r}; valid keys: "
                                      f"{', '.join(FIELDS)}", key)
            layers.append(("argument", {k: _check_type(k, v, "argument")
                                        for k, v in overrides.items()}))
        return cls(tuple(layers))

    def given(self):
        """The keys that the layers give, with their values (the last layer's): what the
        user chose, as opposed to the defaults."""
        return {k: v for _, values in self.layers for k, v in values.items()}

    def resolve(self, base=None, choices=None):
        """(ModelConfig, TrainConfig): base (a dict of resolved values, e.g. a checkpoint's;
        else the defaults) < the layers < choices. ConfigError naming the source of a value
        out of range."""
        values = dict(base or {})
        sources = {key: "defaults" for key in values}
        for source, layer in (*self.layers, ("charrnn's choice", choices or {})):
            values.update(layer)
            sources.update(dict.fromkeys(layer, source))
        model_keys = {f.name for f in dataclasses.fields(ModelConfig)}
        try:
            return (ModelConfig(**{k: v for k, v in values.items() if k in model_keys}),
                    TrainConfig(**{k: v for k, v in values.items() if k not in model_keys}))
        except ConfigError as e:
            raise ConfigError(f"{sources.get(e.key, 'defaults')}: {e}", e.key) from None


def load_config(path=None, sets=(), base=None, overrides=None):
    """Resolve (ModelConfig, TrainConfig): defaults (or base, a dict of resolved values)
    < the YAML file at path < sets, a sequence of 'key=value' strings < overrides, a dict of
    key -> value (the Python API's keyword arguments, typed like YAML values)."""
    return Layers.read(path, sets, overrides).resolve(base)


def as_dict(model_cfg, train_cfg):
    return {**dataclasses.asdict(model_cfg), **dataclasses.asdict(train_cfg)}
