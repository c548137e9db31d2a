"""charrnn.export_html: the page of `charrnn export -o model.html`, in pure Python. It parses,
refers to nothing outside it, carries the views' Content-Security-Policy with WebAssembly allowed
(and nothing else), holds a manifest whose arrays decode (with the code docs/export.md gives)
back to export.quantize's arrays for every weights format, and a kernel whose bytes are its WAT
source assembled, shrinks from float32 to float16 to int8, and escapes what it shows. What the
page does in a browser is in test_export_browser.py."""

import base64
import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest

from charrnn.rounding import WEIGHTS, dequantize, quantize, rounded
from charrnn.export_html import (ALIGN, KERNEL_WASM, KERNEL_WAT, PAGE_CSP, PAGE_FORMAT,
                                 render_page)
from charrnn.page import CSP

from cli_helpers import invoke
from view_helpers import Page, make_checkpoint

DOCS = Path(__file__).resolve().parents[1] / "docs" / "export.md"


def loader():
    """The Python of docs/export.md that reads a page: {"load_page": ..., ...}."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1
    names = {}
    exec(compile(blocks[0], str(DOCS), "exec"), names)
    return names


@pytest.fixture(scope="module")
def pages():
    """(cell, weights) -> (checkpoint, page) for small models of each cell."""
    out = {}
    for cell in ("rnn", "lstm", "gru"):
        ckpt = make_checkpoint(cell, hidden_size=12, num_layers=2, seed=3)
        for weights in WEIGHTS:
            out[cell, weights] = ckpt, render_page(ckpt, weights)
    return out


def test_the_page_parses_and_refers_to_nothing_outside_it(pages):
    _, page = pages["lstm", "int8"]
    parsed = Page(page)
    csp = [a["content"] for t, a in parsed.tags if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp == [PAGE_CSP]
    for tag, attrs in parsed.tags:
        for name in ("src", "href", "srcset", "action", "poster", "formaction", "data"):
            value = attrs.get(name)
            assert value is None or value.startswith(("#", "data:")), (tag, name, value)
    assert not re.search(r"[a-z][a-z0-9+.-]*://|url\(|@import|@font-face|\bfetch\(|"
                         r"XMLHttpRequest|import\(|new Worker", page, re.I)
    assert "<link" not in page and "<iframe" not in page and "<img" not in page
    scripts = [attrs.get("type") for tag, attrs in parsed.tags if tag == "script"]
    assert scripts == ["application/json", "application/octet-stream", "application/wasm",
                       None]   # one runs
    assert page.count("</script>") == 4


def directives(policy):
    return {d.split()[0]: d.split()[1:] for d in policy.split("; ")}


def test_the_pages_policy_is_the_views_with_webassembly_allowed():
    # 'wasm-unsafe-eval' lets the page compile its kernel from bytes it holds; it allows no
    # eval of JavaScript and no loading: default-src 'none' stays
    page, views = directives(PAGE_CSP), directives(CSP)
    assert page["script-src"] == views["script-src"] + ["'wasm-unsafe-eval'"]
    assert {k: v for k, v in page.items() if k != "script-src"} == \
        {k: v for k, v in views.items() if k != "script-src"}
    assert views["default-src"] == ["'none'"] and "'wasm-unsafe-eval'" not in CSP
    assert "'unsafe-eval'" not in PAGE_CSP.split()


def sections(module):
    """A WebAssembly module's sections, [(id, payload bytes)], after its 8-byte header."""
    out, i = [], 8
    while i < len(module):
        section, i = module[i], i + 1
        size = shift = 0
        while True:   # the size, unsigned LEB128
            byte, i = module[i], i + 1
            size |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        out.append((section, module[i:i + size]))
        i += size
    assert i == len(module)
    return out


def test_the_kernel_is_a_module_that_needs_only_the_pages_memory():
    module = base64.b64decode(KERNEL_WASM)
    assert module[:8] == b"\0asm\x01\0\0\0"
    found = dict(sections(module))
    assert sorted(found) == [1, 2, 3, 7, 10]   # types, imports, functions, exports, code
    # one import, env.memory (at least 1 page); one export, the function "product"
    assert found[2] == b"\x01\x03env\x06memory\x02\x00\x01"
    assert found[7] == b"\x01\x07product\x00\x00"
    # product(W, b, x, y, rows, H): six i32 byte offsets and counts, no result
    assert found[1] == b"\x01\x60\x06" + b"\x7f" * 6 + b"\x00"


def test_the_kernels_bytes_are_its_wat_assembled():
    wasmtime = pytest.importorskip("wasmtime", reason="the WAT assembler is wasmtime's (pip "
                                   "install wasmtime; the test extra has it)")
    assembled = bytes(wasmtime.wat2wasm(KERNEL_WAT))
    # without the custom sections (the assembler's names of functions and locals)
    want = assembled[:8] + b"".join(
        bytes([section]) + _leb128(len(payload)) + payload
        for section, payload in sections(assembled) if section != 0)
    assert base64.b64decode(KERNEL_WASM) == want, \
        f"KERNEL_WASM should be {base64.b64encode(want).decode()}"


def _leb128(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_the_controls_have_labels_and_output_is_there(pages):
    _, page = pages["gru", "float32"]
    tags = Page(page).tags
    labelled = {attrs["for"] for tag, attrs in tags if tag == "label"}
    fields = [attrs["id"] for tag, attrs in tags if tag in ("input", "textarea")]
    assert fields == ["seed", "n", "temperature", "top_k", "top_p", "rng_seed", "greedy"]
    assert set(fields) <= labelled
    ids = {attrs.get("id") for _, attrs in tags}
    assert {"output", "status", "write", "stop", "settings", "model", "weights"} <= ids
    status = next(attrs for _, attrs in tags if attrs.get("id") == "status")
    assert status["role"] == "status" and status["aria-live"] == "polite"


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("weights", WEIGHTS)
def test_the_manifest_decodes_to_quantize_arrays(pages, cell, weights, tmp_path):
    ckpt, page = pages[cell, weights]
    (tmp_path / "model.html").write_text(page, encoding="utf-8")
    code = loader()
    manifest, arrays = code["load_page"](tmp_path / "model.html")
    assert (manifest["format"], manifest["version"], manifest["weights"]) == \
        (PAGE_FORMAT, 1, weights)
    assert (manifest["cell"], manifest["num_layers"], manifest["hidden_size"]) == (cell, 2, 12)
    assert "".join(map(chr, manifest["vocab"])) == ckpt.vocab.chars
    want = quantize(ckpt.params, weights)
    for name, (stored, scale) in want.items():
        assert arrays[name].dtype == stored.dtype and np.array_equal(arrays[name], stored)
        entry = next(a for a in manifest["arrays"] if a["name"] == name)
        if scale is None:
            assert "scale" not in entry
        else:
            assert arrays[entry["scale"]].dtype == np.float32
            assert np.array_equal(arrays[entry["scale"]], scale)
    assert len(arrays) == len(want) + sum(s is not None for _, s in want.values())
    assert all(a["offset"] % ALIGN == 0 for a in manifest["arrays"])
    # the values the page computes with are the rounded checkpoint's, bit for bit
    params = code["float32_weights"](manifest, arrays)
    expected = rounded(ckpt, weights).params
    assert params.keys() == expected.keys()
    for name in params:
        assert params[name].dtype == np.float32
        assert np.array_equal(params[name].view(np.int32), expected[name].view(np.int32)), name
    assert np.array_equal(dequantize(want)["Wx"], expected["Wx"])


def test_the_arrays_do_not_overlap_and_fill_the_bytes(pages):
    _, page = pages["gru", "int8"]
    manifest = json.loads(re.search(r'id="model">(.*?)</script>', page).group(1))
    data = base64.b64decode(re.search(r'id="weights">(.*?)</script>', page).group(1))
    spans = sorted((a["offset"], a["offset"] + a["nbytes"]) for a in manifest["arrays"])
    assert spans[0][0] == 0
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert end <= start < end + ALIGN
    assert spans[-1][1] <= len(data) < spans[-1][1] + ALIGN


def test_sizes_shrink_from_float32_to_float16_to_int8():
    ckpt = make_checkpoint("gru", hidden_size=64, num_layers=2)
    sizes = {w: len(render_page(ckpt, w).encode("utf-8")) for w in WEIGHTS}
    assert sizes["float32"] > sizes["float16"] > sizes["int8"]
    n = sum(p.size for p in ckpt.params.values())
    # base64 of 4, 2 and about 1 byte per weight, plus the same page around them
    assert sizes["float32"] - sizes["float16"] == pytest.approx(n * 2 * 4 / 3, rel=0.02)
    assert sizes["float16"] - sizes["int8"] == pytest.approx(n * 1 * 4 / 3, rel=0.1)


def test_the_same_checkpoint_gives_the_same_bytes():
    a = render_page(make_checkpoint("lstm", seed=5), "float16")
    assert a == render_page(make_checkpoint("lstm", seed=5), "float16")
    assert a != render_page(make_checkpoint("lstm", seed=6), "float16")


def test_the_header_names_the_model_and_escapes_the_text_name():
    ckpt = make_checkpoint("gru", hidden_size=12, num_layers=2)
    ckpt = dataclasses.replace(ckpt, iteration=1500,
                               info={"data_source": "/data/<b>&amp.txt", "best_val_loss": 1.2345})
    page = render_page(ckpt, "int8")
    n = sum(p.size for p in ckpt.params.values())
    assert (f"GRU, 2 layers of 12 units, {len(ckpt.vocab)} characters, {n:,} parameters (int8 "
            "weights); trained 1,500 iterations on &lt;b&gt;&amp;amp.txt; validation loss "
            "1.234 nats per character.") in page
    assert "<title>charrnn: &lt;b&gt;&amp;amp.txt</title>" in page
    assert "<b>" not in page


def test_a_vocabulary_of_any_characters_survives_the_manifest():
    vocab = "".join(sorted("\x00\n\"&'<>\\\u2028\u2029é𝄞 a"))
    page = render_page(make_checkpoint("rnn", hidden_size=4, num_layers=1, vocab=vocab))
    manifest = json.loads(re.search(r'id="model">(.*?)</script>', page).group(1))
    assert "".join(map(chr, manifest["vocab"])) == vocab


def test_charrnn_export_writes_the_page(tmp_path):
    from charrnn.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / "model.npz", make_checkpoint("gru", hidden_size=8))
    result = invoke(["export", tmp_path / "model.npz", "-o", tmp_path / "model.html",
                     "--weights", "float16"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    page = (tmp_path / "model.html").read_text(encoding="utf-8")
    size = len(page.encode("utf-8"))
    assert result.stderr == f"wrote {tmp_path / 'model.html'} ({size:,} bytes; html, float16 " \
                            "weights)\n"
    assert '"weights":"float16"' in page and page.endswith("</html>\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.html", "model.npz"]  # no temp
