"""The ONNX export (export_onnx.py, docs/onnx.md) against charrnn itself, run by onnxruntime: the
per-character log-probabilities of `eval --exact` for every cell, one layer and two; greedy
sampling step by step with the state fed back is `sample --greedy`; the rounded weights of
--weights are the ones exported; the graph passes onnx's checker and its reference evaluator
agrees; without the onnx extra, one line and no file; the docs' example runs."""

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import charrnn
from charrnn import api, export_onnx
from charrnn.export_onnx import MISSING, build_onnx
from cli_helpers import assert_fails, invoke

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
CELLS = [(cell, layers) for cell in ("rnn", "lstm", "gru") for layers in (1, 2)]
ASCII = "\n" + "".join(map(chr, range(32, 127)))  # the vocabulary: tinyshakespeare's fits in it
# 300 iterations (under a second each): fewer leave greedy text one repeated character
KEYS = dict(hidden_size=32, seq_length=32, batch_size=8, max_iters=300, learning_rate=1e-2,
            threads=1, vocab=ASCII)
TOLERANCE = 1e-4    # nats


def made_up_text(n_chars=4000, seed=0):
    """Lines of words in made-up sentences, n_chars long or a little more."""
    rng = np.random.default_rng(seed)
    words = ("the king queen sword crown night day speaks answers my lord good sir and of to "
             "what where shall not never we you thou art hath").split()
    lines, size = [], 0
    while size < n_chars:
        line = " ".join(rng.choice(words, rng.integers(3, 10))).capitalize() + rng.choice(
            [".", "!", "?", ":", ","])
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines) + "\n"


TEXT = made_up_text()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """run(cell, layers): the run directory of a small model of that cell, trained on TEXT
    (once per module)."""
    root = tmp_path_factory.mktemp("onnx-runs")
    (root / "made-up.txt").write_text(TEXT, encoding="utf-8")
    made = {}

    def run(cell, layers):
        if (cell, layers) not in made:
            out = root / f"{cell}-{layers}"
            charrnn.fit(root / "made-up.txt", out=out, model=cell, num_layers=layers, rng_seed=0,
                        **KEYS)
            made[cell, layers] = out
        return made[cell, layers]
    return run


def export(run, path, *args):
    result = invoke(["export", run, "-o", path, *args], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return path


def session(path):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def zero_state(sess, streams=1):
    """{h0: zeros (L, N, H)} (and c0), from the session's input shapes."""
    return {i.name: np.zeros((i.shape[0], streams, i.shape[2]), np.float32)
            for i in sess.get_inputs() if i.name != "ids"}


def run_onnx(sess, ids, state):
    """ids (T, N) -> logprobs (T, N, V), and the final state as the next call's inputs."""
    logprobs, *final = sess.run(None, {"ids": np.asarray(ids, np.int64), **state})
    return logprobs, dict(zip(state, final))


def onnx_scores(sess, vocab, text):
    """Each character's log-probability after the first, in one pass from a zero state."""
    ids = vocab.encode(text).astype(np.int64)
    logprobs, _ = run_onnx(sess, ids[:, None], zero_state(sess))
    return logprobs[np.arange(len(ids) - 1), 0, ids[1:]]


def shakespeare_slice(shakespeare, n_chars=3000):
    return shakespeare.read_text(encoding="utf-8")[:n_chars]


# ----------------------------------------------------------------------------- scoring

@pytest.mark.parametrize("cell, layers", CELLS)
def test_logprobs_on_real_text_equal_eval_exact_per_char(cell, layers, runs, shakespeare,
                                                         tmp_path):
    text = shakespeare_slice(shakespeare)
    (tmp_path / "part.txt").write_text(text, encoding="utf-8")
    model = export(runs(cell, layers), tmp_path / "model.onnx")
    result = invoke(["eval", "-c", runs(cell, layers), tmp_path / "part.txt", "--exact",
                     "--per-char", tmp_path / "chars.tsv"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    with open(tmp_path / "chars.tsv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    assert [int(r["offset"]) for r in rows] == list(range(1, len(text)))
    charrnn_logprobs = np.array([float(r["logprob"]) for r in rows])   # 6 decimals
    ours = onnx_scores(session(model), charrnn.load(runs(cell, layers)).vocab, text)
    assert np.abs(ours - charrnn_logprobs).max() < TOLERANCE


@pytest.mark.parametrize("cell, layers", CELLS)
def test_logprobs_equal_score_exact(cell, layers, runs, tmp_path):
    text = made_up_text(2000, seed=1)            # not the training text
    model = charrnn.load(runs(cell, layers))
    sess = session(export(runs(cell, layers), tmp_path / "model.onnx"))
    expected = charrnn.score(model, text, exact=True)["logprobs"]
    assert np.abs(onnx_scores(sess, model.vocab, text) - expected).max() < TOLERANCE


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_two_streams_in_chunks_with_the_state_fed_back_score_as_one_pass_each(cell, runs,
                                                                              tmp_path):
    model = charrnn.load(runs(cell, 2))
    sess = session(export(runs(cell, 2), tmp_path / "model.onnx"))
    texts = [made_up_text(600, seed=2)[:600], made_up_text(600, seed=3)[:600]]
    ids = np.stack([model.vocab.encode(t) for t in texts], axis=1).astype(np.int64)  # (T, 2)
    state, chunks = zero_state(sess, 2), []
    for start in range(0, len(ids), 250):               # 250, 250, 100 steps
        logprobs, state = run_onnx(sess, ids[start:start + 250], state)
        chunks.append(logprobs)
    logprobs = np.concatenate(chunks)                   # (T, 2, V)
    for n, text in enumerate(texts):
        ours = logprobs[np.arange(len(text) - 1), n, ids[1:, n]]
        expected = charrnn.score(model, text, exact=True)["logprobs"]
        assert np.abs(ours - expected).max() < TOLERANCE


# ----------------------------------------------------------------------------- sampling

def greedy_onnx(sess, vocab, seed, num_chars):
    """num_chars characters after seed, each the most likely: the seed read in one call, then
    one call per character (T = 1) with the state fed back."""
    ids = vocab.encode(seed).astype(np.int64)[:, None]
    state, out = zero_state(sess), []
    for _ in range(num_chars):
        logprobs, state = run_onnx(sess, ids, state)
        ids = logprobs[-1:, :].argmax(axis=-1)          # (1, 1)
        out.append(vocab.chars[ids[0, 0]])
    return "".join(out)


@pytest.mark.parametrize("cell, layers", CELLS)
def test_greedy_sampling_step_by_step_is_sample_greedy(cell, layers, runs, tmp_path):
    seed = "The king speaks"
    sess = session(export(runs(cell, layers), tmp_path / "model.onnx"))
    result = invoke(["sample", "-c", runs(cell, layers), "--greedy", "--seed", seed, "-n", "300",
                     "--rng-seed", "0"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    text = greedy_onnx(sess, charrnn.load(runs(cell, layers)).vocab, seed, 300)
    assert seed + text + "\n" == result.stdout
    assert len(set(text)) >= 5                          # words, not one character repeated


# ----------------------------------------------------------------------------- rounded weights

@pytest.mark.parametrize("weights", ["int8", "float16"])
def test_rounded_weights_are_the_ones_exported(weights, runs, tmp_path):
    run = runs("lstm", 2)
    text = made_up_text(1500, seed=4)
    rounded = export(run, tmp_path / "r.npz", "--weights", weights)
    ours = onnx_scores(session(export(run, tmp_path / "r.onnx", "--weights", weights)),
                       charrnn.load(run).vocab, text)
    expected = charrnn.score(rounded, text, exact=True)["logprobs"]
    assert np.abs(ours - expected).max() < TOLERANCE
    # and not the weights as trained, which the float32 export holds
    as_trained = onnx_scores(session(export(run, tmp_path / "f.onnx")), charrnn.load(run).vocab,
                             text)
    assert np.abs(ours - as_trained).max() > {"int8": 1e-3, "float16": 1e-6}[weights]


# ----------------------------------------------------------------------------- the graph

@pytest.mark.parametrize("cell, layers", CELLS)
def test_the_graph_passes_the_checker_and_says_its_inputs_outputs_and_vocab(cell, layers, runs,
                                                                          tmp_path):
    model = onnx.load(export(runs(cell, layers), tmp_path / "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert model.ir_version == 8 and model.producer_name == "charrnn"

    def signature(values):
        return [(v.name, v.type.tensor_type.elem_type,
                 [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
                for v in values]
    F, I64, V = onnx.TensorProto.FLOAT, onnx.TensorProto.INT64, len(ASCII)
    states = ["h", "c"] if cell == "lstm" else ["h"]
    assert signature(model.graph.input) == [("ids", I64, ["T", "N"])] + [
        (f"{s}0", F, [layers, "N", 32]) for s in states]
    assert signature(model.graph.output) == [("logprobs", F, ["T", "N", V])] + [
        (f"{s}T", F, [layers, "N", 32]) for s in states]
    operator = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}[cell]
    assert [n.op_type for n in model.graph.node].count(operator) == layers
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props.pop("vocab")) == ASCII
    assert props == {"cell": cell, "num_layers": str(layers), "hidden_size": "32",
                     "charrnn_version": charrnn.__version__}


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_onnx_reference_evaluator_agrees(cell, runs):
    """onnx's own NumPy reading of the operators' specification, not only onnxruntime's: the
    gate orders and linear_before_reset mean what the docs say."""
    from onnx.reference import ReferenceEvaluator

    ckpt = charrnn.load(runs(cell, 2))
    text = TEXT[:200]
    ids = ckpt.vocab.encode(text).astype(np.int64)[:, None]
    feeds = {"ids": ids, "h0": np.zeros((2, 1, 32), np.float32)}
    if cell == "lstm":
        feeds["c0"] = feeds["h0"]
    with np.errstate(over="ignore"):          # its sigmoid is 1 / (1 + exp(-x))
        logprobs = ReferenceEvaluator(onnx.load_from_string(build_onnx(ckpt))).run(None, feeds)[0]
    ours = logprobs[np.arange(len(ids) - 1), 0, ids[1:, 0]]
    expected = charrnn.score(ckpt, text, exact=True)["logprobs"]
    assert np.abs(ours - expected).max() < TOLERANCE


def test_the_weights_reorder_each_cells_gate_blocks(rng):
    H = 2
    params = {"Wx": rng.standard_normal((1, H, 4 * H)), "Wh": rng.standard_normal((1, H, 4 * H)),
              "b": rng.standard_normal((1, 4 * H)), "bhn": rng.standard_normal((1, H))}
    i, f, g, o = np.split(params["Wx"][0], 4, axis=1)             # charrnn: x @ Wx, i f g o
    W, R, B = export_onnx.onnx_weights(params, "lstm", 0)
    assert W.shape == R.shape == (1, 4 * H, H) and B.shape == (1, 8 * H)
    assert np.allclose(W[0], np.concatenate([i, o, f, g], axis=1).T)   # ONNX: i o f c
    gru = {**params, "Wh": params["Wh"][..., :3 * H], "b": params["b"][..., :3 * H]}
    W, R, B = export_onnx.onnx_weights(gru, "gru", 0)
    r, z, n = np.split(gru["Wh"][0], 3, axis=1)
    assert np.allclose(R[0], np.concatenate([z, r, n], axis=1).T)      # ONNX: z r h
    br, bz, bn = np.split(gru["b"][0], 3)
    assert np.allclose(B[0], np.concatenate([bz, br, bn, np.zeros(2 * H), gru["bhn"][0]]))


# ----------------------------------------------------------------------------- failures

def test_without_the_onnx_extra_one_line_and_no_file(runs, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)       # import onnx raises ImportError
    out = tmp_path / "out"
    out.mkdir()
    result = invoke(["export", runs("gru", 1), "-o", out / "model.onnx"])
    assert_fails(result, 1, f"Error: {MISSING}\n")
    assert MISSING == "exporting to ONNX needs the onnx package: pip install charrnn[onnx]"
    assert list(out.iterdir()) == []
    with pytest.raises(charrnn.ExportError, match=re.escape(MISSING)):
        api.export(runs("gru", 1), out / "model.onnx")


def test_weights_past_what_one_file_holds_are_refused(runs, tmp_path, monkeypatch):
    monkeypatch.setattr(export_onnx, "MAX_BYTES", 1000)
    size = sum(p.size * 4 for p in charrnn.load(runs("rnn", 1)).params.values())
    result = invoke(["export", runs("rnn", 1), "-o", tmp_path / "model.onnx"])
    assert_fails(result, 1, f"Error: the model's weights take {size / 2**20:,.1f} MB as "
                            "float32, more than the 2 GB one ONNX file can hold\n")
    assert list(tmp_path.iterdir()) == []


def test_the_cli_and_the_api_do_not_import_onnx():
    code = ("import sys\nimport charrnn.api, charrnn.exports, charrnn.export_onnx\n"
            "from charrnn.cli import cli\n"
            "for args in (['--help'], ['export', '--help']):\n"
            "    try:\n        cli(args, prog_name='charrnn')\n"
            "    except SystemExit:\n        pass\n"
            "print([m for m in ('onnx', 'onnxruntime') if m in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "charrnn export" in result.stdout
    assert result.stdout.splitlines()[-1] == "[]"


# ----------------------------------------------------------------------------- the docs

def test_the_docs_python_example_samples_as_charrnn_does(runs, tmp_path):
    """docs/onnx.md's example, run as it is on a model.onnx in its folder: its greedy line is
    `sample --greedy`'s text; the line drawn after it is 200 characters of the vocabulary."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "docs" / "onnx.md").read_text("utf-8"),
                        re.S)
    assert len(blocks) == 1
    run = runs("lstm", 2)
    export(run, tmp_path / "model.onnx")
    result = subprocess.run([sys.executable, "-c", blocks[0]], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    greedy = charrnn.generate(run, "ROMEO:", 200, greedy=True)
    assert result.stdout.startswith(greedy + "\n")
    drawn = result.stdout[len(greedy) + 1:]
    assert len(drawn) == 201 and drawn.endswith("\n") and set(drawn[:-1]) <= set(ASCII)
