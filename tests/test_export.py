"""charrnn export's front (exports.py): the format, the rounded weights, the .npz of them, and
the errors, none of which leaves a file behind. The page and the ONNX model have tests of their
own (test_export_html.py, test_export_onnx.py)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import charrnn
from charrnn.exports import format_of
from charrnn.rounding import dequantize, quantize, rounded
from charrnn.model import init_params

from cli_helpers import assert_fails, invoke, usage_error

TEXT = "the quick brown fox jumps over the lazy dog. " * 60
KEYS = {"max_iters": 6, "eval_every": 6, "hidden_size": 16, "num_layers": 2, "batch_size": 4,
        "seq_length": 16, "model": "gru"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    path = root / "fox.txt"
    path.write_text(TEXT, encoding="utf-8")
    charrnn.fit(path, out=root / "run", rng_seed=0, **KEYS)
    return root / "run"


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_int8_keeps_each_weight_within_half_a_step_of_its_output_units_scale(cell, rng):
    params = init_params(cell, 7, 12, 2, rng)
    stored = quantize(params, "int8")
    back = dequantize(stored)
    for name, p in params.items():
        q, scale = stored[name]
        if name in ("b", "bhn", "by"):
            assert scale is None and q.dtype == np.float32 and np.array_equal(back[name], p)
            continue
        assert q.dtype == np.int8 and scale.dtype == np.float32
        # a scale per output unit: Wx (L, H, G) and Wh per column of each layer, Why per
        # column, the embedding per row (a character)
        assert scale.shape == {"embed": (7,), "Why": (7,)}.get(name, (2, p.shape[-1]))
        axis = -1 if name == "embed" else -2
        step = np.expand_dims(scale, axis)
        assert np.all(np.abs(back[name] - p) <= step / 2 + 1e-7)
        assert np.abs(q).max() == 127            # the largest of each unit's weights is +-127
    assert all(back[n].dtype == np.float32 for n in back)


def test_float16_and_float32_weights(rng):
    params = init_params("lstm", 5, 8, 1, rng)
    assert all(q is p and s is None for (q, s), p in zip(quantize(params).values(),
                                                         params.values()))
    half = quantize(params, "float16")
    assert half["Wx"][0].dtype == np.float16 and half["b"][0].dtype == np.float32
    assert np.array_equal(dequantize(half)["Wh"], params["Wh"].astype(np.float16).astype(
        np.float32))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-50, 50, width=32), min_size=2, max_size=12))
def test_int8_round_trip_bound_holds_for_any_column(values):
    W = np.array(values, np.float32).reshape(-1, 1)           # one output unit, n inputs
    stored = quantize({"Why": W}, "int8")
    back = dequantize(stored)["Why"]
    scale = stored["Why"][1][0]
    assert np.all(np.abs(back - W) <= scale / 2 * (1 + 1e-6) + 1e-30)


def test_the_format_follows_the_extension_or_format():
    assert [format_of(f"m{e}") for e in (".html", ".HTM", ".onnx", ".npz")] == [
        "html", "html", "onnx", "npz"]
    assert format_of("model.bin", "onnx") == "onnx"
    with pytest.raises(charrnn.ArgumentError) as info:
        format_of("model.bin")
    assert str(info.value) == ("model.bin: the name must end in .html, .onnx or .npz (or give "
                               "--format)")


def test_npz_export_is_a_checkpoint_of_the_rounded_weights(run, tmp_path):
    out = tmp_path / "r.npz"
    result = invoke(["export", run, "-o", out, "--weights", "int8"], catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr == f"wrote {out} ({out.stat().st_size:,} bytes; npz, int8 weights)\n"
    model, back = charrnn.load(run), charrnn.load(out)
    expected = rounded(model, "int8")
    assert all(np.array_equal(back.params[k], expected.params[k]) for k in model.params)
    assert not np.array_equal(back.params["Wh"], model.params["Wh"])
    assert back.vocab == model.vocab and back.model_cfg == model.model_cfg
    # the weights alone: no optimizer state, RNG or carried state (not a run to resume)
    assert back.optim_state == {} and back.rng_state is None and back.hidden_state is None
    assert back.info["exported_weights"] == "int8"
    assert out.stat().st_size < (run / "best.npz").stat().st_size / 2
    # it is scored and sampled like any checkpoint: rounding costs little on this model
    original, small = charrnn.score(model, TEXT[:500]), charrnn.score(back, TEXT[:500])
    assert abs(small["loss"] - original["loss"]) < 0.01
    assert charrnn.generate(back, "the ", 20, greedy=True) == charrnn.generate(
        charrnn.load(out), "the ", 20, greedy=True)


def test_the_latest_run_is_exported_when_none_is_given(run, tmp_path, monkeypatch):
    monkeypatch.chdir(run.parent)
    (run.parent / "runs").mkdir(exist_ok=True)
    (run.parent / "runs" / "mine").symlink_to(run)
    result = invoke(["export", "-o", tmp_path / "m.npz"], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stderr.startswith(
        "note: using runs/mine/best.npz (the latest run under ./runs)\nwrote ")


def test_bad_input_is_one_line_and_leaves_nothing(run, tmp_path):
    nothing_written = lambda: sorted(p.name for p in tmp_path.iterdir()) == ["junk.npz"]  # noqa
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    assert_fails(invoke(["export", run, "-o", tmp_path / "m.bin"]), 2, usage_error(
        "export", "[OPTIONS] [RUN]", f"Invalid value for '-o' / '--output': {tmp_path}/m.bin: "
        "the name must end in .html, .onnx or .npz (or give --format)"))
    assert_fails(invoke(["export", tmp_path / "junk.npz", "-o", tmp_path / "m.npz"]), 1,
                 f"Error: {tmp_path}/junk.npz: not a charrnn checkpoint (not an .npz file)\n")
    missing = tmp_path / "no" / "m.npz"
    assert_fails(invoke(["export", run, "-o", missing]), 1,
                 f"Error: {missing}: cannot write: no such folder {missing.parent}\n")
    assert_fails(invoke(["export", run, "-o", tmp_path / "m.npz", "--weights", "int4"]), 2,
                 usage_error("export", "[OPTIONS] [RUN]", "Invalid value for '--weights': "
                             "'int4' is not one of 'float32', 'float16', 'int8'."))
    assert nothing_written()


def test_an_unwritable_folder_leaves_nothing(run, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if (folder / "probe").exists() or _writable(folder):
            pytest.skip("this user writes into read-only folders (root)")
        result = invoke(["export", run, "-o", folder / "m.npz"])
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert result.stderr.startswith(f"Error: {folder}/m.npz: ")
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


def _writable(folder):
    try:
        (folder / "probe").write_text("x")
    except OSError:
        return False
    (folder / "probe").unlink()
    return True


def test_a_page_too_large_is_refused_and_suggests_int8(run, tmp_path, monkeypatch):
    import charrnn.exports as export_module
    import charrnn.export_html as page_module

    monkeypatch.setattr(page_module, "render_page", lambda ckpt, weights: "x" * 2048)
    monkeypatch.setattr(export_module, "PAGE_LIMIT", 1024)
    out = tmp_path / "m.html"
    assert_fails(invoke(["export", run, "-o", out]), 1,
                 f"Error: {out}: the page would be 2,048 bytes, more than a page may hold "
                 "(1,024); try --weights int8 (a quarter of float32's size)\n")
    assert list(tmp_path.iterdir()) == []


def test_charrnn_export_stays_the_function_after_an_export(run, tmp_path):
    """The API's name must not be taken by a submodule's (charrnn/exports.py)."""
    for k in range(2):
        assert charrnn.export(run, tmp_path / f"m{k}.npz").format == "npz"
    assert callable(charrnn.export)
