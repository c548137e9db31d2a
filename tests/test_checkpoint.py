"""Checkpoints: exact round trips, atomic writes, and a precise message for every unreadable file."""

import gc
import json
import os
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charrnn.runs import checkpoint_file as resolve_checkpoint, latest_run
from charrnn.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data import Vocab
from charrnn.model import init_params, zero_state
from charrnn.optim import init_state

VOCAB_TEXT = "\x00\n abcé中"


def _checkpoint(rng, cell="lstm", iteration=7):
    vocab = Vocab.from_text(VOCAB_TEXT)
    L, H, N = 2, 5, 3
    params = init_params(cell, len(vocab), H, L, rng)
    optim_state = init_state("adam", params)
    for v in optim_state.values():
        v += rng.standard_normal(v.shape).astype(np.float32)
    hidden = [tuple(rng.standard_normal((N, H)).astype(np.float32) for _ in s)
              for s in zero_state(cell, L, N, H)]
    return Checkpoint(
        params=params, vocab=vocab,
        model_cfg=ModelConfig(model=cell, hidden_size=H, num_layers=L, dropout=0.1),
        train_cfg=TrainConfig(seq_length=16, batch_size=N, learning_rate=1.0e-3, max_iters=50),
        iteration=iteration, optim_state=optim_state,
        rng_state=np.random.default_rng(3).bit_generator.state, hidden_state=hidden,
        info={"best_val_loss": 1.25, "data_source": "tëst.txt", "rng_seed": None})


def _assert_same(a, b):
    assert a.vocab == b.vocab and a.vocab.chars == b.vocab.chars
    assert a.model_cfg == b.model_cfg and a.train_cfg == b.train_cfg
    assert a.iteration == b.iteration
    assert a.rng_state == b.rng_state
    assert a.info == b.info
    for got, want in ((a.params, b.params), (a.optim_state, b.optim_state)):
        assert sorted(got) == sorted(want)
        for k in want:
            assert got[k].dtype == want[k].dtype, k
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)
    if b.hidden_state is None:
        assert a.hidden_state is None
        return
    assert len(a.hidden_state) == len(b.hidden_state)
    for got_layer, want_layer in zip(a.hidden_state, b.hidden_state):
        assert len(got_layer) == len(want_layer)
        for got, want in zip(got_layer, want_layer):
            assert got.dtype == want.dtype == np.float32
            np.testing.assert_array_equal(got, want)


def _write_ckpt(path, rng, **kw):
    ckpt = _checkpoint(rng, **kw)
    save_checkpoint(path, ckpt)
    return ckpt


def _error(path):
    """The CheckpointError message for path. The error is dropped and collected here, ignoring
    ResourceWarning, so that a leaked file handle (see test_unreadable_zip_file_is_closed) is
    not reported against whichever later test the garbage collector happens to run in."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        try:
            load_checkpoint(path)
        except CheckpointError as e:
            message = str(e)
        else:
            pytest.fail(f"{path} loaded without a CheckpointError")
        gc.collect()
    return message


# --- round trips ------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_round_trip_is_exact(tmp_path, rng, cell):
    ckpt = _checkpoint(rng, cell=cell)
    path = tmp_path / "ckpt.npz"
    save_checkpoint(path, ckpt)
    loaded = load_checkpoint(path)
    _assert_same(loaded, ckpt)
    assert loaded.vocab.chars == "\x00\n abcé中"
    assert all(p.dtype == np.float32 for p in loaded.params.values())
    assert [len(s) for s in loaded.hidden_state] == [2 if cell == "lstm" else 1] * 2


def test_round_trip_without_optional_parts(tmp_path, rng):
    vocab = Vocab.from_text("ab")
    ckpt = Checkpoint(params=init_params("rnn", 2, 3, 1, rng), vocab=vocab,
                      model_cfg=ModelConfig(model="rnn", hidden_size=3, num_layers=1),
                      train_cfg=TrainConfig())
    save_checkpoint(tmp_path / "c.npz", ckpt)
    loaded = load_checkpoint(tmp_path / "c.npz")
    _assert_same(loaded, ckpt)
    assert loaded.rng_state is None and loaded.hidden_state is None
    assert loaded.optim_state == {} and loaded.iteration == 0 and loaded.info == {}


def test_restored_rng_state_continues_the_same_stream(tmp_path, rng):
    ckpt = _write_ckpt(tmp_path / "c.npz", rng)
    restored = np.random.default_rng()
    restored.bit_generator.state = load_checkpoint(tmp_path / "c.npz").rng_state
    np.testing.assert_array_equal(restored.random(5), np.random.default_rng(3).random(5))
    assert ckpt.rng_state["bit_generator"] == "PCG64"


def test_file_layout_is_self_describing_and_pickle_free(tmp_path, rng):
    ckpt = _write_ckpt(tmp_path / "c.npz", rng, iteration=12)
    with np.load(tmp_path / "c.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    assert str(arrays["format"]) == FORMAT
    assert arrays["meta"].dtype == np.int64
    assert arrays["meta"].tolist() == [FORMAT_VERSION, 12]
    assert arrays["vocab"].dtype == np.int32
    assert arrays["vocab"].tolist() == [0, 10, 32, 97, 98, 99, 0xE9, 0x4E2D]
    assert json.loads(str(arrays["config"]))["model"] == {
        "model": "lstm", "hidden_size": 5, "num_layers": 2, "dropout": 0.1, "direct_order": 0,
        "direct_size": 16384}
    assert arrays["state/h"].shape == arrays["state/c"].shape == (2, 3, 5)
    assert {k for k in arrays if k.startswith("param/")} == {f"param/{k}" for k in ckpt.params}
    assert {k for k in arrays if k.startswith("optim/")} == {
        f"optim/{k}" for k in ckpt.optim_state}
    assert not any(a.dtype == object for a in arrays.values())


@settings(max_examples=40, deadline=None)
@given(text=st.text(min_size=1))
def test_vocab_of_any_text_round_trips(text):
    vocab = Vocab.from_text(text)
    ckpt = Checkpoint(params={"by": np.arange(len(vocab), dtype=np.float32)}, vocab=vocab,
                      model_cfg=ModelConfig(), train_cfg=TrainConfig())
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "v.npz"
        save_checkpoint(path, ckpt)
        loaded = load_checkpoint(path)
    assert loaded.vocab.chars == "".join(sorted(set(text)))
    assert loaded.vocab == vocab
    assert loaded.vocab.decode(loaded.vocab.encode(text)) == text


# --- atomic writes ----------------------------------------------------------------------------

def test_save_leaves_no_temporary_file(tmp_path, rng):
    _write_ckpt(tmp_path / "last.npz", rng)
    _write_ckpt(tmp_path / "last.npz", rng, iteration=8)  # overwrite in place
    assert sorted(os.listdir(tmp_path)) == ["last.npz"]
    assert load_checkpoint(tmp_path / "last.npz").iteration == 8


def test_save_keeps_the_exact_file_name(tmp_path, rng):
    _write_ckpt(tmp_path / "model.ckpt", rng)  # savez would append .npz to a path; not to a file
    assert sorted(os.listdir(tmp_path)) == ["model.ckpt"]


def test_saved_file_has_the_usual_permissions(tmp_path, rng):
    """A temporary file is created 0600; the checkpoint should get the mode any new file
    gets (0666 minus the umask), like metrics.jsonl beside it."""
    umask = os.umask(0)
    os.umask(umask)
    _write_ckpt(tmp_path / "c.npz", rng)
    assert oct((tmp_path / "c.npz").stat().st_mode & 0o777) == oct(0o666 & ~umask)


def test_failed_save_keeps_previous_file_and_leaves_no_temp(tmp_path, rng, monkeypatch):
    path = tmp_path / "last.npz"
    _write_ckpt(path, rng, iteration=1)
    before = path.read_bytes()

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(CheckpointError) as info:
        _write_ckpt(path, rng, iteration=2)
    assert str(info.value) == (f"{path}: could not write the checkpoint: No space left on device; "
                               "the previous file there is unchanged")
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["last.npz"]
    monkeypatch.undo()
    assert load_checkpoint(path).iteration == 1


def test_save_into_a_missing_directory(tmp_path, rng):
    path = tmp_path / "nope" / "c.npz"
    with pytest.raises(CheckpointError) as info:
        _write_ckpt(path, rng)
    assert str(info.value) == (f"{path}: could not write the checkpoint: No such file or "
                               "directory; the previous file there is unchanged")


# --- unreadable files -------------------------------------------------------------------------

def test_truncated_file(tmp_path, rng):
    path = tmp_path / "c.npz"
    _write_ckpt(path, rng)
    raw = path.read_bytes()
    path.write_bytes(raw[:len(raw) // 2])
    assert _error(path).startswith(f"{path}: truncated or corrupted .npz file (")


def test_unreadable_zip_file_is_closed(tmp_path, rng):
    """A truncated .npz (zip magic, no central directory): np.load hands the open file to
    NpzFile, whose constructor fails without closing it, so load_checkpoint must close it."""
    path = tmp_path / "c.npz"
    _write_ckpt(path, rng)
    path.write_bytes(path.read_bytes()[:100])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            load_checkpoint(path)
        except CheckpointError:
            pass
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


def test_empty_file(tmp_path):
    path = tmp_path / "c.npz"
    path.write_bytes(b"")
    assert _error(path).startswith(f"{path}: truncated or corrupted .npz file (")


def test_garbage_bytes_are_not_called_pickled(tmp_path):
    """Bytes that are neither a zip nor an .npy: np.load would try pickle, whose refusal must not
    be reported as 'holds pickled Python objects'."""
    path = tmp_path / "c.npz"
    path.write_bytes(b"this is not a checkpoint at all\n" * 20)
    message = _error(path)
    assert message.startswith(f"{path}: ")
    assert "pickled" not in message
    assert "corrupted" in message or "not a" in message


def test_npz_from_another_program(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, weights=np.zeros(3), step=np.array(5))
    assert _error(path) == f"{path}: not a charrnn checkpoint (an .npz from another program)"


def test_npz_with_a_wrong_format_string(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, format=np.array("something-else"), meta=np.array([1, 0]))
    assert _error(path) == f"{path}: not a charrnn checkpoint (an .npz from another program)"


def test_npz_holding_a_pickled_object_array_is_refused(tmp_path):
    path = tmp_path / "c.npz"
    np.savez(path, obj=np.array([{"a": 1}], dtype=object))
    assert _error(path) == (f"{path}: holds pickled Python objects, which charrnn refuses to load "
                            "(not a charrnn checkpoint)")


def test_single_npy_array_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "c.npy"
    np.save(path, np.arange(3))
    assert _error(path) == f"{path}: not a charrnn checkpoint (a single .npy array)"


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays.update(changes)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def test_newer_format_version(tmp_path, rng):
    path = tmp_path / "c.npz"
    _write_ckpt(path, rng)
    _rewrite(path, meta=np.array([99, 0], dtype=np.int64))
    message = _error(path)
    assert "newer" in message
    assert message == (f"{path}: checkpoint format 99 is newer than this charrnn reads "
                       f"({FORMAT_VERSION}); upgrade charrnn (pip install -U charrnn)")


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_a_checkpoint_from_before_the_shards_key_keeps_its_shards(tmp_path, rng, threads):
    """Its threads was both the cores and the shards: it loads (and resumes) with shards =
    threads, so the numbers go on as they would have; threads stays the cap it was."""
    path = tmp_path / "old.npz"
    _write_ckpt(path, rng)
    with np.load(path, allow_pickle=False) as npz:
        config = json.loads(str(npz["config"]))
    del config["train"]["shards"]
    config["train"]["threads"] = threads
    _rewrite(path, config=np.array(json.dumps(config)))
    train_cfg = load_checkpoint(path).train_cfg
    assert (train_cfg.shards, train_cfg.threads) == (threads, threads)


def test_damaged_config(tmp_path, rng):
    path = tmp_path / "c.npz"
    _write_ckpt(path, rng)
    _rewrite(path, config=np.array("{}"))
    assert _error(path) == f"{path}: damaged charrnn checkpoint (KeyError: 'model')"


def test_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    assert _error(path) == f"{path}: no such checkpoint file or run directory"


def test_directory_without_a_checkpoint(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("{}\n")
    assert _error(tmp_path) == f"{tmp_path}: no best.npz or last.npz in this directory"


# --- run directories --------------------------------------------------------------------------

def test_resolve_prefers_best_then_last(tmp_path, rng):
    _write_ckpt(tmp_path / "last.npz", rng, iteration=20)
    assert resolve_checkpoint(tmp_path) == tmp_path / "last.npz"
    assert load_checkpoint(tmp_path).iteration == 20
    _write_ckpt(tmp_path / "best.npz", rng, iteration=10)
    assert resolve_checkpoint(tmp_path) == tmp_path / "best.npz"
    assert load_checkpoint(tmp_path).iteration == 10
    assert resolve_checkpoint(tmp_path / "last.npz") == tmp_path / "last.npz"


def test_resolve_errors(tmp_path):
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint(tmp_path)
    assert str(info.value) == f"{tmp_path}: no best.npz or last.npz in this directory"
    with pytest.raises(CheckpointError) as info:
        resolve_checkpoint(tmp_path / "x.npz")
    assert str(info.value) == f"{tmp_path / 'x.npz'}: no such checkpoint file or run directory"


def test_latest_run_is_the_run_whose_checkpoint_was_written_last(tmp_path):
    runs = tmp_path / "runs"
    for name, mtime, ckpt in [("a", 1000, "last.npz"), ("b", 3000, "best.npz"),
                              ("c", 2000, "last.npz"), ("d", 9000, None)]:
        (runs / name).mkdir(parents=True)
        if ckpt:
            (runs / name / ckpt).write_bytes(b"")
            os.utime(runs / name / ckpt, (mtime, mtime))
        os.utime(runs / name, (9000, 9000))     # a directory's own time does not count
    (runs / "notes.txt").write_text("a file, not a run")
    os.utime(runs / "notes.txt", (9999, 9999))
    assert latest_run(runs) == runs / "b"  # d holds no checkpoint
    (runs / "a" / "best.npz").write_bytes(b"")          # a's best.npz is written now
    assert latest_run(runs) == runs / "a"


def test_latest_run_default_is_runs_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs" / "x").mkdir(parents=True)
    with pytest.raises(CheckpointError) as info:
        latest_run()
    assert str(info.value) == ("no trained run found under ./runs; train one with "
                               "'charrnn train FILE' or give --checkpoint")
    (tmp_path / "runs" / "x" / "last.npz").write_bytes(b"")
    assert latest_run() == Path("runs") / "x"


def test_latest_run_error_with_an_absolute_runs_dir(tmp_path):
    runs = tmp_path / "runs"
    with pytest.raises(CheckpointError) as info:
        latest_run(runs)
    assert str(info.value) == (f"no trained run found under {runs}; train one with "
                               "'charrnn train FILE' or give --checkpoint")


def test_the_regularisers_are_written_only_when_set_and_round_trip(tmp_path, rng):
    """weight_drop, embed_drop, variational and weight_decay: absent from the config of a run
    without them (as before they existed), written and read back when set."""
    import dataclasses

    plain = _checkpoint(rng)
    set_ = dataclasses.replace(
        plain, model_cfg=dataclasses.replace(plain.model_cfg, weight_drop=0.5, embed_drop=0.1,
                                             variational=True),
        train_cfg=dataclasses.replace(plain.train_cfg, weight_decay=0.01))
    for name, ckpt in (("plain", plain), ("set", set_)):
        save_checkpoint(tmp_path / f"{name}.npz", ckpt)
        _assert_same(load_checkpoint(tmp_path / f"{name}.npz"), ckpt)
    with np.load(tmp_path / "plain.npz", allow_pickle=False) as npz:
        config = json.loads(str(npz["config"]))
    assert not {"weight_drop", "embed_drop", "variational"} & set(config["model"])
    assert "weight_decay" not in config["train"]
    with np.load(tmp_path / "set.npz", allow_pickle=False) as npz:
        config = json.loads(str(npz["config"]))
    assert (config["model"]["weight_drop"], config["model"]["variational"],
            config["train"]["weight_decay"]) == (0.5, True, 0.01)
