"""Checkpoints: self-describing .npz files, written atomically, read without pickle.

Arrays in a checkpoint (docs/files.md documents each with its shape and dtype):
    format                 str    "charrnn-checkpoint"
    meta                   int64  [format_version, iteration]
    config                 str    the resolved configuration, JSON
    info                   str    JSON: data_sha256, data_source, best_val_loss, best_iteration,
                                  seconds, rng_seed, lr_scale
    vocab                  int32  (V,) code points, in id order (a model of documents: the end
                                  mark U+0003 among them)
    labels                 str    JSON list of the label names, in label id order (a model with
                                  labels only; param/Wv has one row per label)
    param/<name>           float32, see model.param_shapes
    optim/<slot>/<name>    float32, the optimizer's per-parameter state
    rng                    str    the training RNG's state (numpy PCG64), JSON
    state/h, state/c       float32 (L, H, N): the hidden (and LSTM cell) state of each of the N
                           streams, carried into the next chunk, so a resumed run continues
                           exactly
"""

import json
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import CheckpointError
from .runs import checkpoint_file
from .config import ModelConfig, TrainConfig
from .data import END, DataError, Vocab, usual_file_mode

FORMAT = "charrnn-checkpoint"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    params: dict
    vocab: Vocab
    model_cfg: ModelConfig
    train_cfg: TrainConfig
    iteration: int = 0
    optim_state: dict = field(default_factory=dict)
    rng_state: dict | None = None
    hidden_state: list | None = None   # per layer: (h,) or (h, c), each (H, N)
    info: dict = field(default_factory=dict)
    path: Path | None = field(default=None, compare=False)   # the file it was read from
    labels: tuple = ()                 # the label names, in id order (a model with labels)

    @property
    def end(self):
        """The end mark's id in a model of documents (train_cfg.documents lines or files), else
        None: what model.forward's end is."""
        return None if self.train_cfg.documents == "stream" else self.vocab.stoi[END]

    def label_id(self, name):
        """The id of a label by name; DataError listing the model's labels if it has no such
        label (or none at all)."""
        if name in self.labels:
            return self.labels.index(name)
        if not self.labels:
            raise DataError(f"{self.path or 'the model'} has no labels (it was trained without "
                            "--labels)")
        raise DataError(f"unknown label {name!r}; the model's labels: {', '.join(self.labels)}")


def save_checkpoint(path, ckpt):
    """Write ckpt to path atomically: a temporary file in the same directory, fsync, rename.
    A crash or a full disk leaves the previous file at path as it was."""
    path = Path(path)
    arrays = {
        "format": np.array(FORMAT),
        "meta": np.array([FORMAT_VERSION, ckpt.iteration], dtype=np.int64),
        "config": np.array(json.dumps({"model": _fields(ckpt.model_cfg),
                                       "train": _fields(ckpt.train_cfg)})),
        "info": np.array(json.dumps(ckpt.info)),
        "vocab": ckpt.vocab.code_points(),
    }
    if ckpt.labels:
        arrays["labels"] = np.array(json.dumps(list(ckpt.labels)))
    arrays.update({f"param/{k}": v for k, v in ckpt.params.items()})
    arrays.update({f"optim/{k}": v for k, v in ckpt.optim_state.items()})
    if ckpt.rng_state is not None:
        arrays["rng"] = np.array(json.dumps(ckpt.rng_state))
    if ckpt.hidden_state is not None:
        arrays["state/h"] = np.stack([s[0] for s in ckpt.hidden_state])
        if len(ckpt.hidden_state[0]) > 1:
            arrays["state/c"] = np.stack([s[1] for s in ckpt.hidden_state])
    tmp = None
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                         delete=False) as f:
            tmp = f.name
            os.fchmod(f.fileno(), usual_file_mode())  # mkstemp makes 0600
            np.savez(f, **arrays)  # a file object: savez does not append ".npz"
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
        _fsync_dir(path.parent)
    except OSError as e:
        raise CheckpointError(f"{path}: could not write the checkpoint: "
                              f"{e.strerror or e}; the previous file there is unchanged") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def _fsync_dir(directory):
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# keys written only when set: a checkpoint of a run without them has the config it had before
# they existed (readable by an older charrnn); a missing key reads as its default
OPTIONAL_KEYS = ("weight_drop", "embed_drop", "variational", "weight_decay")


def _fields(cfg):
    return {k: getattr(cfg, k) for k, f in cfg.__dataclass_fields__.items()
            if k not in OPTIONAL_KEYS or getattr(cfg, k) != f.default}


def load_checkpoint(path):
    """Read a checkpoint file or run directory. Never unpickles anything."""
    path = checkpoint_file(path)
    try:
        with open(path, "rb") as f:
            magic = f.read(6)
            if magic.startswith(b"\x93NUMPY"):
                raise CheckpointError(f"{path}: not a charrnn checkpoint (a single .npy array)")
            if not magic:
                raise CheckpointError(f"{path}: truncated or corrupted .npz file (empty)")
            if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
                raise CheckpointError(f"{path}: not a charrnn checkpoint (not an .npz file)")
            f.seek(0)
            with np.load(f, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
    except CheckpointError:
        raise
    except ValueError as e:
        if "pickle" in str(e):
            raise CheckpointError(f"{path}: holds pickled Python objects, which charrnn refuses "
                                  "to load (not a charrnn checkpoint)") from None
        raise CheckpointError(f"{path}: not a readable .npz file ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise CheckpointError(f"{path}: truncated or corrupted .npz file ({e})") from None
    if "format" not in arrays or str(arrays["format"]) != FORMAT or "meta" not in arrays:
        raise CheckpointError(f"{path}: not a charrnn checkpoint (an .npz from another program)")
    version, iteration = (int(v) for v in arrays["meta"][:2])
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {version} is newer than this charrnn "
                              f"reads ({FORMAT_VERSION}); upgrade charrnn "
                              "(pip install -U charrnn)")
    try:
        config = json.loads(str(arrays["config"]))
        model_cfg, train = ModelConfig(**config["model"]), dict(config["train"])
        if "shards" not in train and "threads" in train:
            # before the shards key, threads was both the cores and the shards: keep the shards
            train["shards"] = train["threads"]
        train_cfg = TrainConfig(**train)
        params = {k[6:]: v for k, v in arrays.items() if k.startswith("param/")}
        hidden = None
        if "state/h" in arrays:
            cs = arrays.get("state/c")
            hidden = [(h,) if cs is None else (h, c)
                      for h, c in zip(arrays["state/h"], cs if cs is not None else arrays["state/h"])]
        return Checkpoint(
            params=params,
            vocab=Vocab.from_code_points(arrays["vocab"]),
            model_cfg=model_cfg,
            train_cfg=train_cfg,
            iteration=iteration,
            optim_state={k[6:]: v for k, v in arrays.items() if k.startswith("optim/")},
            rng_state=json.loads(str(arrays["rng"])) if "rng" in arrays else None,
            hidden_state=hidden,
            info=json.loads(str(arrays["info"])),
            path=path,
            labels=tuple(json.loads(str(arrays["labels"]))) if "labels" in arrays else (),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: damaged charrnn checkpoint ({type(e).__name__}: {e})") \
            from None
