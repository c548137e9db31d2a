"""The page of `charrnn export RUN -o model.html`: one self-contained HTML page that holds a
model's weights and writes with it in the browser, a sampler in JavaScript whose matrix products
run in a WebAssembly SIMD kernel where the browser has one (issue 18).

The page (docs/export.md describes it for readers and for other programs):
    <script type="application/json" id="model">  the manifest: the cell, layers, hidden size,
        the vocabulary (code points, in id order), the weights format, and each stored array's
        name, dtype, shape, byte offset and length (and, for int8, its scale array)
    <script type="application/octet-stream" id="weights">  every array's raw little-endian
        bytes, C order, in charrnn's layout (docs/files.md), one after another from offsets that
        are multiples of 8, as one base64 string
    <script type="application/wasm" id="kernel">  the kernel below, a WebAssembly module, base64
    the form (seed, characters, temperature, top-k, top-p, greedy, RNG seed; Write, Stop), the
        text written (#output: the seed, then each new character), and the script below.

The arrays are rounding.quantize's: float32, float16, or int8 with a float32 scale per output unit
("scale/<name>"); the script turns each into the float32 values rounding.dequantize gives (float16
decoded exactly, q * scale rounded to float32), so the page computes the model that
`charrnn export -o rounded.npz` writes. It computes the equations of layers.py (and
sample.Stepper's table of layer 0's input part) in float64 over those float32 weights, keeping
h and c as float32: its greedy text is charrnn's wherever the two best logits are not within
float32 rounding of each other (the browser tests check 500 characters per cell).

Speed: at load each layer's products are fused into one matrix, output-major, eight rows
interleaved ([Wx_{l+1} | Wh_l]^T, or [Why | Wh_l]^T on top, as the Stepper does), so a step
is L matrix-vector products over contiguous float32 memory and no allocation. The products run
in a WebAssembly SIMD kernel (KERNEL_WAT) where the browser validates it and the page's policy
(PAGE_CSP: the views' plus 'wasm-unsafe-eval') lets it compile, else in the JavaScript loop
`product` (eight running sums: about 10 % faster than four here, in Chromium 156), its reference:
the kernel does the loop's float64 operations in the loop's order, two rows to an f64x2
instruction, so the two give the same bits, and the link's `kernel=js` runs the loop (the tests
use both). The kernel makes the preset's 2 x 384 GRU about 3 times faster (about 3,200 against
1,100 characters a second in Chromium 156 here); with float32 lanes (f32x4) the products alone
ran about 2.5 times faster again in a benchmark, but they round differently from the loop and
from charrnn. The gates, the sampler and the rest stay in JavaScript (Math.tanh has no
WebAssembly twin). Writing runs in slices of about
12 ms between which the browser draws and takes input (a MessageChannel message starts the next
slice: setTimeout would wait 4 ms each time).
"""

import base64
import html
import math
from pathlib import PurePath

import numpy as np

from .page import CSP, MONO, html_page, script_json
from .rounding import MATRICES, quantize

PAGE_FORMAT = "charrnn-page"
PAGE_VERSION = 1
ALIGN = 8            # bytes: every array starts at a multiple of this in the weights
MAX_CHARS = 1_000_000  # characters the page writes at most in one go

# the views' policy, and WebAssembly compiled from bytes the page holds (its kernel); default-src
# 'none' still forbids loading anything
PAGE_CSP = CSP.replace("script-src 'unsafe-inline'", "script-src 'unsafe-inline' 'wasm-unsafe-eval'")

# The kernel: the page's matrix-vector product in WebAssembly with SIMD (f64x2), the JavaScript
# loop `product` of SCRIPT done two rows to an instruction. KERNEL_WASM is this text assembled
# (wasmtime.wat2wasm) without its custom (name) section, as base64; test_export_html.py assembles
# it again and checks the bytes.
KERNEL_WAT = """\
(module
  ;; the page's memory (a WebAssembly.Memory it makes and fills): the fused matrices, their
  ;; biases, inputs and outputs
  (import "env" "memory" (memory 1))
  ;; y = W x + b over one layer's fused matrix. Arguments are byte offsets in memory: W float32,
  ;; rows x H, eight rows interleaved (row 8q + r of column k at W[(q H + k) 8 + r]); b and y
  ;; float64, rows; x float32, H. rows is a multiple of 8, rows and H are at least 1 (the loops
  ;; test at their end). Each row's sum starts from its bias and adds W[j, k] * x[k] for k = 0,
  ;; 1, ..., H - 1 in float64, two rows to a lane pair: the operations of the page's JavaScript
  ;; loop, in its order, so the same bits (a product of two float32 is exact in float64).
  (func (export "product")
    (param $W i32) (param $b i32) (param $x i32) (param $y i32) (param $rows i32) (param $H i32)
    (local $k i32) (local $x_end i32) (local $y_end i32) (local $v v128)
    (local $s0 v128) (local $s1 v128) (local $s2 v128) (local $s3 v128)
    (local.set $x_end (i32.add (local.get $x) (i32.shl (local.get $H) (i32.const 2))))
    (local.set $y_end (i32.add (local.get $y) (i32.shl (local.get $rows) (i32.const 3))))
    (loop $group
      ;; rows 8q .. 8q + 7: four float64x2 sums, from the biases
      (local.set $s0 (v128.load offset=0 (local.get $b)))
      (local.set $s1 (v128.load offset=16 (local.get $b)))
      (local.set $s2 (v128.load offset=32 (local.get $b)))
      (local.set $s3 (v128.load offset=48 (local.get $b)))
      (local.set $k (local.get $x))
      (loop $column
        ;; v = (x[k], x[k]) in float64; two float32 weights at a time, widened to float64
        (local.set $v (f64x2.splat (f64.promote_f32 (f32.load (local.get $k)))))
        (local.set $s0 (f64x2.add (local.get $s0) (f64x2.mul (f64x2.promote_low_f32x4
          (v128.load64_zero offset=0 (local.get $W))) (local.get $v))))
        (local.set $s1 (f64x2.add (local.get $s1) (f64x2.mul (f64x2.promote_low_f32x4
          (v128.load64_zero offset=8 (local.get $W))) (local.get $v))))
        (local.set $s2 (f64x2.add (local.get $s2) (f64x2.mul (f64x2.promote_low_f32x4
          (v128.load64_zero offset=16 (local.get $W))) (local.get $v))))
        (local.set $s3 (f64x2.add (local.get $s3) (f64x2.mul (f64x2.promote_low_f32x4
          (v128.load64_zero offset=24 (local.get $W))) (local.get $v))))
        (local.set $W (i32.add (local.get $W) (i32.const 32)))
        (local.set $k (i32.add (local.get $k) (i32.const 4)))
        (br_if $column (i32.lt_u (local.get $k) (local.get $x_end))))
      (v128.store offset=0 (local.get $y) (local.get $s0))
      (v128.store offset=16 (local.get $y) (local.get $s1))
      (v128.store offset=32 (local.get $y) (local.get $s2))
      (v128.store offset=48 (local.get $y) (local.get $s3))
      (local.set $b (i32.add (local.get $b) (i32.const 64)))
      (local.set $y (i32.add (local.get $y) (i32.const 64)))
      (br_if $group (i32.lt_u (local.get $y) (local.get $y_end))))))
"""
KERNEL_WASM = ("AGFzbQEAAAABCgFgBn9/f39/fwACDwEDZW52Bm1lbW9yeQIAAQMCAQAHCwEHcHJvZHVjdAAACu0BAeoBAgN/BXsg"
               "AiAFQQJ0aiEHIAMgBEEDdGohCANAIAH9AAQAIQogAf0ABBAhCyAB/QAEICEMIAH9AAQwIQ0gAiEGA0AgBioCALv9"
               "FCEJIAogAP1dAwD9XyAJ/fIB/fABIQogCyAA/V0DCP1fIAn98gH98AEhCyAMIAD9XQMQ/V8gCf3yAf3wASEMIA0g"
               "AP1dAxj9XyAJ/fIB/fABIQ0gAEEgaiEAIAZBBGohBiAGIAdJDQALIAMgCv0LBAAgAyAL/QsEECADIAz9CwQgIAMg"
               "Df0LBDAgAUHAAGohASADQcAAaiEDIAMgCEkNAAsL")


def pack(stored, matrices):
    """The manifest's array entries and the weights' bytes of quantize's {name: (stored,
    scale)}: each array little-endian, C order, from an offset that is a multiple of ALIGN.
    matrices: the names whose scales are per column (rounding.MATRICES), the others' per row."""
    entries, chunks, offset = [], [], 0

    def add(name, array, **extra):
        nonlocal offset
        array = np.ascontiguousarray(array, array.dtype.newbyteorder("<"))
        data = array.tobytes()
        entries.append({"name": name, "dtype": array.dtype.name, "shape": list(array.shape),
                        "offset": offset, "nbytes": len(data), **extra})
        padding = -len(data) % ALIGN
        chunks.append(data + bytes(padding))
        offset += len(data) + padding

    for name, (array, scale) in stored.items():
        if scale is None:
            add(name, array)
        else:
            add(name, array, scale=f"scale/{name}", scale_axis=-2 if name in matrices else -1)
    for name, (array, scale) in stored.items():
        if scale is not None:
            add(f"scale/{name}", scale)
    return entries, b"".join(chunks)


def manifest(ckpt, weights, entries):
    """What the page's JSON holds: the model's shape, vocabulary and arrays, and facts about
    it for the header."""
    cfg, info = ckpt.model_cfg, ckpt.info
    source, loss = info.get("data_source"), info.get("best_val_loss")
    return {"format": PAGE_FORMAT, "version": PAGE_VERSION, "cell": cfg.model,
            "num_layers": cfg.num_layers, "hidden_size": cfg.hidden_size,
            "vocab": [ord(c) for c in ckpt.vocab.chars], "weights": weights,
            "arrays": entries, "iteration": ckpt.iteration,
            "text": PurePath(source).name if source else None,
            "best_val_loss": loss if loss is not None and math.isfinite(loss) else None,
            "max_chars": MAX_CHARS}


def render_page(ckpt, weights="float32"):
    """The page of ckpt with its weights stored as `weights` (float32, float16 or int8), as a
    str. The same checkpoint and weights give the same bytes."""

    entries, data = pack(quantize(ckpt.params, weights), MATRICES)
    facts = manifest(ckpt, weights, entries)
    title = f"charrnn: {facts['text']}" if facts["text"] else "charrnn model"
    body = (_header(facts, ckpt) + FORM
            + f'<script type="application/json" id="model">{script_json(facts)}</script>\n'
            + '<script type="application/octet-stream" id="weights">'
            + base64.b64encode(data).decode("ascii") + "</script>\n"
            + f'<script type="application/wasm" id="kernel">{KERNEL_WASM}</script>\n')
    return html_page(title, STYLE, body, SCRIPT, csp=PAGE_CSP)


def _header(facts, ckpt):
    """The page's title and a line about the model."""
    cells = {"rnn": "RNN", "lstm": "LSTM", "gru": "GRU"}
    n_params = sum(int(np.prod(p.shape)) for p in ckpt.params.values())
    layers = facts["num_layers"]
    line = [f"{cells[facts['cell']]}, {layers} layer{'s' if layers > 1 else ''} of "
            f"{facts['hidden_size']:,} units, {len(facts['vocab']):,} characters, "
            f"{n_params:,} parameters ({facts['weights']} weights)"]
    if facts["iteration"]:
        line.append(f"trained {facts['iteration']:,} iterations"
                    + (f" on {facts['text']}" if facts["text"] else ""))
    if facts["best_val_loss"] is not None:
        line.append(f"validation loss {facts['best_val_loss']:.3f} nats per character")
    heading = f"Write with {facts['text']}'s model" if facts["text"] else "Write with the model"
    return (f"<header>\n<h1>{html.escape(heading)}</h1>\n"
            f'<p class="facts">{html.escape("; ".join(line))}.</p>\n</header>\n')


STYLE = f"""
header, main {{ max-width: 60em; }}
form {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(11em, 1fr));
  gap: .7em 1.2em; align-items: end; margin: .6em 0 1em; }}
.field {{ display: flex; flex-direction: column; gap: .25em; }}
.field.seed {{ grid-column: 1 / -1; }}
label {{ font-weight: 600; font-size: .95em; }}
.hint {{ font-weight: 400; color: #57606a; }}
input, textarea, button {{ font: inherit; font-size: 1em; }}
input[type=number], textarea {{ padding: .35em .5em; border: 1px solid #8c959f;
  border-radius: 6px; background: #fff; color: #1f2328; }}
textarea {{ font-family: {MONO}; resize: vertical; min-height: 2.6em; }}
input:disabled {{ background: #eaeef2; color: #57606a; }}
.check {{ flex-direction: row; align-items: center; gap: .5em; padding-bottom: .4em;
  grid-column: span 2; }}
.check input {{ width: 1.15em; height: 1.15em; margin: 0; }}
.buttons {{ display: flex; gap: .7em; align-items: center; }}
button {{ padding: .45em 1.3em; border-radius: 6px; border: 1px solid #0969da;
  cursor: pointer; font-weight: 600; }}
#write {{ background: #0969da; color: #fff; }}
#stop {{ background: #fff; color: #a40e26; border-color: #a40e26; }}
#stop:disabled {{ color: #8c959f; border-color: #d0d7de; cursor: default; }}
:focus-visible {{ outline: 3px solid #bf8700; outline-offset: 2px; }}
#status {{ margin: 0 0 .5em; min-height: 1.4em; }}
#status[data-state=error] {{ color: #a40e26; font-weight: 600; }}
progress {{ width: 100%; height: .5em; }}
#output {{ font-family: {MONO}; font-size: 15px; line-height: 1.5; white-space: pre-wrap;
  word-break: break-word; background: #f6f8fa; border: 1px solid #d0d7de; border-radius: 6px;
  padding: .8em 1em; min-height: 8em; margin: .3em 0 1em; }}
h2 {{ font-size: 1.05em; margin: 1em 0 .2em; }}
"""

FORM = """<main>
<form id="settings" autocomplete="off">
<div class="field seed"><label for="seed">Seed text <span class="hint">(Enter writes, \
Shift+Enter starts a new line; empty: a newline)</span></label>
<textarea id="seed" rows="2" spellcheck="false"></textarea></div>
<div class="field"><label for="n">Characters</label>
<input id="n" type="number" min="1" step="1" value="200" required></div>
<div class="field"><label for="temperature">Temperature</label>
<input id="temperature" type="number" min="0.01" step="0.05" value="1"></div>
<div class="field"><label for="top_k">Top-k <span class="hint">(0: all)</span></label>
<input id="top_k" type="number" min="0" step="1" value="0"></div>
<div class="field"><label for="top_p">Top-p <span class="hint">(1: all)</span></label>
<input id="top_p" type="number" min="0.01" max="1" step="0.05" value="1"></div>
<div class="field"><label for="rng_seed">Random seed <span class="hint">(empty: any)</span>\
</label>
<input id="rng_seed" type="number" min="0" step="1" placeholder="any"></div>
<div class="field check"><input id="greedy" type="checkbox">\
<label for="greedy">Greedy <span class="hint">(the likeliest character)</span></label></div>
<div class="buttons"><button id="write" type="submit">Write</button>
<button id="stop" type="button" disabled>Stop</button></div>
</form>
<p id="status" role="status" aria-live="polite" data-state="idle">Loading the model\u2026</p>
<progress id="progress" max="1" value="0" aria-label="Characters written"></progress>
<h2 id="output-label">Text <span class="hint">(Esc stops)</span></h2>
<pre id="output" tabindex="0" aria-labelledby="output-label"></pre>
<noscript><p><strong>This page writes with JavaScript, which is off.</strong></p></noscript>
<p class="notes">Everything runs in this page, offline: the model's weights are inside it. The \
text is the seed, then each new character as the model writes it. Settings can come from the \
link: <code>#seed=ROMEO%3A&amp;n=300&amp;greedy=1</code> (also <code>temperature</code>, \
<code>top_k</code>, <code>top_p</code>, <code>rng_seed</code>) starts writing at once, and Write \
puts its settings there to share. Random draws use the page's own generator, seeded by the \
random seed, not NumPy's: the same seed gives the same text in this page, not the text of \
<code>charrnn sample</code> (greedy text is the same).</p>
</main>
"""

SCRIPT = r""""use strict";
(function () {
  var $ = function (id) { return document.getElementById(id); };
  var SLICE_MS = 12, SLICE_STEPS = 1 << 16;
  var KEYS = ["seed", "n", "temperature", "top_k", "top_p", "greedy", "rng_seed"];
  var LINK_KEYS = KEYS.concat(["kernel"]);   // kernel: a switch of the link, not in the form
  var KERNELS = {wasm: "WebAssembly SIMD", js: "JavaScript"};
  var model = JSON.parse($("model").textContent);
  var chars = model.vocab.map(function (c) { return String.fromCodePoint(c); });
  var ids = new Map(chars.map(function (c, i) { return [c, i]; }));
  var net = build(model, base64($("weights").textContent), simd(base64($("kernel").textContent)));
  var status = $("status"), output = $("output"), progress = $("progress");
  var form = $("settings"), stopButton = $("stop"), job = null, jobs = 0;
  var channel = new MessageChannel();

  function base64(text) {
    var abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    var code = new Uint8Array(128), i, j = 0, v;
    for (i = 0; i < 64; i++) code[abc.charCodeAt(i)] = i;
    text = text.trim();
    var size = text.length / 4 * 3 - (text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0);
    var out = new Uint8Array(size);
    for (i = 0; i < text.length; i += 4) {
      v = code[text.charCodeAt(i)] << 18 | code[text.charCodeAt(i + 1)] << 12 |
        code[text.charCodeAt(i + 2)] << 6 | code[text.charCodeAt(i + 3)];
      out[j++] = v >> 16;
      if (j < size) out[j++] = v >> 8;
      if (j < size) out[j++] = v;
    }
    return out;
  }

  // float16 bits -> the number (exact): subnormals m * 2^-24, normals (1024 + m) * 2^(e - 25)
  function half(u) {
    var sign = u & 0x8000 ? -1 : 1, e = u >> 10 & 31, m = u & 1023;
    if (e === 0) return sign * m * Math.pow(2, -24);
    if (e === 31) return m ? NaN : sign * Infinity;
    return sign * (1024 + m) * Math.pow(2, e - 25);
  }

  // an array of the manifest as the float32 values it stands for (int8: q * scale, rounded to
  // float32 as NumPy's float32 product is)
  function values(bytes, entries, name) {
    var e = entries[name], n = e.shape.reduce(function (a, b) { return a * b; }, 1);
    var view = new DataView(bytes.buffer, e.offset, e.nbytes), out = new Float32Array(n), i;
    if (e.dtype === "float32") for (i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
    else if (e.dtype === "float16") for (i = 0; i < n; i++) out[i] = half(view.getUint16(2 * i, true));
    else if (e.dtype === "int8") {
      var scale = values(bytes, entries, e.scale), C = e.shape[e.shape.length - 1];
      var R = e.scale_axis === -2 ? e.shape[e.shape.length - 2] : 1;
      for (i = 0; i < n; i++) {
        var s = e.scale_axis === -2 ? Math.floor(i / (R * C)) * C + i % C : Math.floor(i / C);
        out[i] = Math.fround(view.getInt8(i) * scale[s]);
      }
    } else throw new Error("unknown dtype " + e.dtype);
    return out;
  }

  function pad8(n) { return (n + 7) & ~7; }

  // the kernel's module compiled, or why not: the browser must validate it (WebAssembly with
  // SIMD) and the page's policy must let it compile ('wasm-unsafe-eval')
  function simd(bytes) {
    if (typeof WebAssembly !== "object") return {why: "this browser has no WebAssembly"};
    if (!WebAssembly.validate(bytes)) return {why: "this browser's WebAssembly has no SIMD"};
    try { return {module: new WebAssembly.Module(bytes)}; }
    catch (e) { return {why: "WebAssembly was refused: " + e.name}; }   // by a policy, say
  }

  // one layer's fused product into W (rows x H, zeros) and b: output-major with eight rows
  // interleaved, row j = 8q + r of column k at W[(q * H + k) * 8 + r]; row(j, k) gives the
  // weight and bias(j) the bias of the first `count` rows, the rest stay zero
  function fuse(W, b, count, H, row, bias) {
    for (var j = 0; j < count; j++) {
      b[j] = bias(j);
      for (var k = 0; k < H; k++) W[((j >> 3) * H + k) * 8 + (j & 7)] = row(j, k);
    }
  }

  function build(model, bytes, wasm) {
    var entries = {};
    model.arrays.forEach(function (e) { entries[e.name] = e; });
    var get = function (name) { return values(bytes, entries, name); };
    var L = model.num_layers, H = model.hidden_size, V = model.vocab.length, cell = model.cell;
    var G = {rnn: 1, gru: 3, lstm: 4}[cell] * H;
    var embed = get("embed"), Wx = get("Wx"), Wh = get("Wh"), b = get("b");
    var Why = get("Why"), by = get("by"), bhn = cell === "gru" ? get("bhn") : null;
    // layer 0's input part by id, as the Stepper's table: embed[id] @ Wx[0] + b[0], (V, G)
    var table = new Float32Array(V * G), acc = new Float64Array(G), id, k, g, l;
    for (id = 0; id < V; id++) {
      for (g = 0; g < G; g++) acc[g] = 0;
      for (k = 0; k < H; k++) {
        var e = embed[id * H + k];
        for (g = 0; g < G; g++) acc[g] += e * Wx[k * G + g];
      }
      for (g = 0; g < G; g++) table[id * G + g] = acc[g] + b[g];
    }
    var specs = [];
    for (l = 0; l < L; l++) (function (l) {
      var top = l === L - 1, out = top ? V : G, rec = pad8(out);
      // [Wx_{l+1} | Wh_l]^T (Why on top): the next layer's input part now and this layer's
      // recurrent part for the next step; a GRU's bhn belongs to the recurrent n block
      specs.push({count: rec + G, rows: pad8(rec + G), rec: rec, row: function (j, k) {
        if (j >= rec) return Wh[(l * H + k) * G + j - rec];
        if (j >= out) return 0;
        return top ? Why[k * V + j] : Wx[((l + 1) * H + k) * G + j];
      }, bias: function (j) {
        if (j >= rec) return bhn && j - rec >= 2 * H ? bhn[l * H + j - rec - 2 * H] : 0;
        if (j >= out) return 0;
        return top ? by[j] : b[(l + 1) * G + j];
      }});
    })(l);
    // the memory both products work on, each layer's W (float32, rows x H), b and y (float64,
    // rows) and h (float32, H) from a multiple of 16 bytes: a WebAssembly.Memory the kernel
    // gets, or an ArrayBuffer where there is no kernel; filled once, never grown
    var size = 0, at = function (n) { var o = size; size += (n + 15) & ~15; return o; };
    specs.forEach(function (m) {
      m.Wp = at(4 * m.rows * H); m.bp = at(8 * m.rows); m.yp = at(8 * m.rows); m.hp = at(4 * H);
    });
    var kernel = null, why = wasm.why || "", buffer;
    if (wasm.module) {
      try {
        var memory = new WebAssembly.Memory({initial: Math.max(1, Math.ceil(size / 65536))});
        kernel = new WebAssembly.Instance(wasm.module, {env: {memory: memory}}).exports.product;
        buffer = memory.buffer;
      } catch (e) { why = "no memory for WebAssembly: " + e.name; }
    }
    if (!kernel) buffer = new ArrayBuffer(size);
    var layers = specs.map(function (m) {
      var W = new Float32Array(buffer, m.Wp, m.rows * H), bias = new Float64Array(buffer, m.bp, m.rows);
      fuse(W, bias, m.count, H, m.row, m.bias);
      return {W: W, b: bias, rows: m.rows, rec: m.rec, y: new Float64Array(buffer, m.yp, m.rows),
              h: new Float32Array(buffer, m.hp, H), c: new Float32Array(H),
              Wp: m.Wp, bp: m.bp, yp: m.yp, hp: m.hp};
    });
    // a layer's y = W h + b: the JavaScript loop, and the kernel (the same bits) where it runs
    var products = {js: function (m) { product(m.W, m.b, m.h, m.y, m.rows, H); }};
    if (kernel) products.wasm = function (m) { kernel(m.Wp, m.bp, m.hp, m.yp, m.rows, H); };
    return {cell: cell, H: H, G: G, V: V, table: table, layers: layers, products: products,
            kernel: kernel ? "wasm" : "js", why: why};
  }

  // y = W x + b over the fused layout: eight rows at a time, eight running sums. The reference
  // for the kernel (KERNEL_WAT in export_html.py), which does these operations in this order
  function product(W, b, x, y, rows, H) {
    var o = 0, j, k, v, s0, s1, s2, s3, s4, s5, s6, s7;
    for (j = 0; j < rows; j += 8) {
      s0 = b[j]; s1 = b[j + 1]; s2 = b[j + 2]; s3 = b[j + 3];
      s4 = b[j + 4]; s5 = b[j + 5]; s6 = b[j + 6]; s7 = b[j + 7];
      for (k = 0; k < H; k++) {
        v = x[k];
        s0 += W[o] * v; s1 += W[o + 1] * v; s2 += W[o + 2] * v; s3 += W[o + 3] * v;
        s4 += W[o + 4] * v; s5 += W[o + 5] * v; s6 += W[o + 6] * v; s7 += W[o + 7] * v;
        o += 8;
      }
      y[j] = s0; y[j + 1] = s1; y[j + 2] = s2; y[j + 3] = s3;
      y[j + 4] = s4; y[j + 5] = s5; y[j + 6] = s6; y[j + 7] = s7;
    }
  }

  function reset(product) {
    net.layers.forEach(function (m) {
      m.h.fill(0); m.c.fill(0);
      product(m);   // the recurrent part of a zero state
    });
  }

  // feed one id; returns the logits of the next character (a buffer the next step overwrites).
  // Equations of layers.py; sig(a) = (1 + tanh(a / 2)) / 2 as there. product: net.products'
  function step(id, product) {
    var H = net.H, cell = net.cell, x = net.table, xo = id * net.G, layers = net.layers;
    for (var l = 0; l < layers.length; l++) {
      var m = layers[l], y = m.y, r0 = m.rec, h = m.h, c = m.c, j, a, n;
      if (cell === "gru") {
        for (j = 0; j < H; j++) {
          // r, z = sig(x Wx + b + h Wh); n = tanh(x Wx_n + b_n + r * (h Wh_n + bhn))
          var r = 0.5 * Math.tanh(0.5 * (x[xo + j] + y[r0 + j])) + 0.5;
          var z = 0.5 * Math.tanh(0.5 * (x[xo + H + j] + y[r0 + H + j])) + 0.5;
          n = Math.tanh(x[xo + 2 * H + j] + r * y[r0 + 2 * H + j]);
          h[j] = n + z * (h[j] - n);                 // (1 - z) * n + z * h_{t-1}
        }
      } else if (cell === "lstm") {
        for (j = 0; j < H; j++) {
          // [i, f, g, o] = [sig, sig, tanh, sig](x Wx + b + h Wh)
          var i = 0.5 * Math.tanh(0.5 * (x[xo + j] + y[r0 + j])) + 0.5;
          var f = 0.5 * Math.tanh(0.5 * (x[xo + H + j] + y[r0 + H + j])) + 0.5;
          var g = Math.tanh(x[xo + 2 * H + j] + y[r0 + 2 * H + j]);
          var o = 0.5 * Math.tanh(0.5 * (x[xo + 3 * H + j] + y[r0 + 3 * H + j])) + 0.5;
          c[j] = f * c[j] + i * g;                  // c_t = f * c_{t-1} + i * g
          h[j] = o * Math.tanh(c[j]);              // h_t = o * tanh(c_t)
        }
      } else {
        for (j = 0; j < H; j++) h[j] = Math.tanh(x[xo + j] + y[r0 + j]);
      }
      product(m);   // y = [the next layer's input part | this layer's recurrent part]
      x = y; xo = 0;
    }
    return x;
  }

  // xoshiro128** seeded through splitmix32: the page's own generator, not NumPy's
  function generator(seed) {
    var a = seed >>> 0, hi = Math.floor(seed / 4294967296) >>> 0;
    function mix() {
      a = (a + 0x9e3779b9) | 0;
      var t = a ^ a >>> 16;
      t = Math.imul(t, 0x21f0aaad); t ^= t >>> 15; t = Math.imul(t, 0x735a2d97);
      return t ^ t >>> 15;
    }
    var s0 = mix() ^ hi, s1 = mix(), s2 = mix(), s3 = mix() | 1;
    function next() {
      var out = Math.imul(rotl(Math.imul(s1, 5), 7), 9), t = s1 << 9;
      s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t; s3 = rotl(s3, 11);
      return out >>> 0;
    }
    function rotl(x, k) { return x << k | x >>> (32 - k); }
    return function () {   // uniform in [0, 1), 53 bits
      return ((next() >>> 5) * 67108864 + (next() >>> 6)) / 9007199254740992;
    };
  }

  // the lowest logit / T kept by top-k and top-p, as charrnn's sampler keeps them: the k most
  // likely, then the fewest whose probability reaches top_p of theirs (ties with the last kept)
  function cutoff(z, ranked, topK, topP) {
    var V = z.length, count = topK > 0 && topK < V ? topK : V, j;
    ranked.set(z); ranked.sort().reverse();
    if (topP < 1) {
      var mass = 0, total = 0;
      for (j = 0; j < count; j++) total += Math.exp(ranked[j] - ranked[0]);
      var reach = 1;
      for (j = 0; j < V - 1; j++) {
        mass += Math.exp(ranked[j] - ranked[0]);
        if (mass < topP * total) reach++; else break;
      }
      count = Math.min(count, reach);
    }
    return ranked[count - 1];
  }

  function choose(logits, s) {
    var V = net.V, j, best = 0;
    if (s.greedy) {   // the first of the largest, as NumPy's argmax
      for (j = 1; j < V; j++) if (logits[j] > logits[best]) best = j;
      return best;
    }
    var z = s.z, p = s.p, low = -Infinity, max = -Infinity, total = 0;
    for (j = 0; j < V; j++) z[j] = logits[j] / s.temperature;
    if (s.top_k || s.top_p < 1) low = cutoff(z, s.ranked, s.top_k, s.top_p);
    for (j = 0; j < V; j++) if (z[j] >= low && z[j] > max) max = z[j];
    for (j = 0; j < V; j++) { p[j] = z[j] >= low ? Math.exp(z[j] - max) : 0; total += p[j]; }
    var u = s.random() * total;
    for (j = 0; j < V; j++) { if (p[j] > 0) { best = j; u -= p[j]; if (u < 0) break; } }
    return best;
  }

  // ------------------------------------------------------------------ settings

  function parse(raw) {   // {key: string} -> settings, or throws an Error saying what is wrong
    function number(key, fallback, ok, what) {
      if (raw[key] === undefined || raw[key] === "") return fallback;
      var v = Number(raw[key]);
      if (!(raw[key].trim() !== "" && ok(v))) throw new Error(key + " must be " + what + ", not " + JSON.stringify(raw[key]));
      return v;
    }
    var integer = function (low, high) { return function (v) { return Number.isInteger(v) && v >= low && v <= high; }; };
    var s = {
      seed: raw.seed === undefined || raw.seed === "" ? (ids.has("\n") ? "\n" : chars[0]) : raw.seed,
      n: number("n", 200, integer(1, model.max_chars), "a whole number from 1 to " + model.max_chars),
      temperature: number("temperature", 1, function (v) { return v > 0 && isFinite(v); }, "a number above 0"),
      top_k: number("top_k", 0, integer(0, Infinity), "a whole number, 0 or more"),
      top_p: number("top_p", 1, function (v) { return v > 0 && v <= 1; }, "a number above 0, at most 1"),
      greedy: /^(1|true|yes|on)$/i.test(raw.greedy || ""),
      rng_seed: number("rng_seed", null, integer(0, Number.MAX_SAFE_INTEGER), "a whole number, 0 or more"),
      kernel: raw.kernel === undefined || raw.kernel === "" ? null : raw.kernel   // null: the best
    };
    if (s.kernel !== null && s.kernel !== "wasm" && s.kernel !== "js")
      throw new Error("kernel must be wasm or js, not " + JSON.stringify(s.kernel));
    if (s.kernel !== null && !net.products[s.kernel])
      throw new Error("the WebAssembly kernel cannot run: " + net.why);
    if (s.top_k === 1) s.greedy = true;    // as charrnn: top-k 1 is greedy
    var missing = [];
    Array.from(s.seed).forEach(function (ch) { if (!ids.has(ch) && missing.indexOf(ch) < 0) missing.push(ch); });
    if (missing.length) throw new Error("the seed has characters not in the model's vocabulary: " + missing.sort().map(function (c) { return JSON.stringify(c); }).join(", "));
    return s;
  }

  function fromForm() {
    var raw = {};
    KEYS.forEach(function (key) {
      var field = $(key);
      if (key === "greedy") raw[key] = field.checked ? "1" : "";
      else if (!field.disabled) raw[key] = field.value;
    });
    return raw;
  }

  function fromFragment(hash) {
    var raw = {};
    hash.replace(/^#/, "").split("&").forEach(function (part) {
      if (!part) return;
      var at = part.indexOf("="), key = at < 0 ? part : part.slice(0, at);
      if (LINK_KEYS.indexOf(key) < 0) throw new Error("the link names an unknown setting, " + JSON.stringify(key) + "; settings: " + LINK_KEYS.join(", "));
      try { raw[key] = at < 0 ? "1" : decodeURIComponent(part.slice(at + 1)); }
      catch (e) { throw new Error("the link's " + key + " is not URL-encoded text"); }
    });
    return raw;
  }

  function show(raw) {   // put a link's settings in the form
    KEYS.forEach(function (key) {
      var field = $(key);
      if (key === "greedy") field.checked = /^(1|true|yes|on)$/i.test(raw.greedy || "");
      else field.value = raw[key] !== undefined ? raw[key] : field.defaultValue;
    });
    sampling();
  }

  function fragment(s) {
    var parts = ["seed=" + encodeURIComponent(s.seed), "n=" + s.n];
    if (s.greedy) parts.push("greedy=1");
    else {
      if (s.temperature !== 1) parts.push("temperature=" + s.temperature);
      if (s.top_k) parts.push("top_k=" + s.top_k);
      if (s.top_p < 1) parts.push("top_p=" + s.top_p);
      parts.push("rng_seed=" + s.rng_seed);
    }
    if (s.kernel) parts.push("kernel=" + s.kernel);
    return "#" + parts.join("&");
  }

  function sampling() {   // greedy needs no temperature, top-k, top-p or random seed
    ["temperature", "top_k", "top_p", "rng_seed"].forEach(function (key) { $(key).disabled = $("greedy").checked; });
  }

  // ------------------------------------------------------------------ writing

  function say(state, text) {
    status.dataset.state = state;
    status.textContent = text;
  }

  function start(s) {
    finish(null);
    if (!s.greedy && s.rng_seed === null) s.rng_seed = crypto.getRandomValues(new Uint32Array(1))[0];
    try { history.replaceState(null, "", fragment(s)); } catch (e) { /* a browser may refuse it for local files */ }
    var V = net.V, kernel = s.kernel || net.kernel;
    job = {s: s, id: ++jobs, seed: Array.from(s.seed).map(function (c) { return ids.get(c); }),
           read: 0, written: 0, logits: null, kernel: kernel, product: net.products[kernel],
           started: performance.now()};
    status.dataset.kernel = kernel;
    reset(job.product);
    s.z = new Float64Array(V); s.p = new Float64Array(V); s.ranked = new Float64Array(V);
    s.random = s.greedy ? null : generator(s.rng_seed);
    output.textContent = "";
    job.text = output.appendChild(document.createTextNode(s.seed));
    progress.max = s.n; progress.value = 0;
    stopButton.disabled = false;
    say("writing", "Writing " + s.n.toLocaleString("en") + " characters" +
        (s.greedy ? " (greedy)\u2026" : " (random seed " + s.rng_seed + ")\u2026"));
    channel.port2.postMessage(job.id);
  }

  function slice(event) {
    if (!job || event.data !== job.id) return;
    var deadline = performance.now() + SLICE_MS, s = job.s, text = "", steps = 0;
    while (steps++ < SLICE_STEPS && performance.now() < deadline) {
      if (job.read < job.seed.length) {          // read the seed, a character a step
        job.logits = step(job.seed[job.read++], job.product);
        continue;
      }
      var id = choose(job.logits, s);
      text += chars[id];
      if (++job.written === s.n) break;
      job.logits = step(id, job.product);
    }
    if (text) job.text.appendData(text);
    progress.value = job.written;
    if (job.written === s.n) finish("done");
    else channel.port2.postMessage(job.id);
  }

  function finish(state) {   // end the job: "done", "stopped", or null (a new one follows)
    if (!job) return;
    var seconds = (performance.now() - job.started) / 1000, n = job.written;
    var speed = seconds > 0 ? Math.round(n / seconds) : 0;
    if (state) {
      status.dataset.charsPerSecond = speed;
      say(state, (state === "done" ? "Wrote " + n.toLocaleString("en") + " characters" :
                   "Stopped after " + n.toLocaleString("en") + " of " + job.s.n.toLocaleString("en") + " characters") +
          " in " + seconds.toFixed(2) + " s: " + speed.toLocaleString("en") + " characters per second with " +
          KERNELS[job.kernel] + (job.kernel === "js" && net.why ? " (" + net.why + ")." : "."));
    }
    job = null;
    stopButton.disabled = true;
  }

  function run(raw) {
    try { start(parse(raw)); } catch (e) { finish(null); say("error", e.message); }
  }

  channel.port1.onmessage = slice;
  form.addEventListener("submit", function (event) { event.preventDefault(); run(fromForm()); });
  stopButton.addEventListener("click", function () { finish("stopped"); });
  $("greedy").addEventListener("change", sampling);
  $("seed").addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  $("greedy").addEventListener("keydown", function (event) {
    if (event.key === "Enter") { event.preventDefault(); form.requestSubmit(); }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && job) { event.preventDefault(); finish("stopped"); }
  });
  function fromLink() {
    if (location.hash.length < 2) return;
    try { var raw = fromFragment(location.hash); } catch (e) { say("error", e.message); return; }
    show(raw);
    run(raw);
  }
  window.addEventListener("hashchange", fromLink);
  say("idle", "Ready: type a seed and press Enter or Write.");
  document.body.dataset.kernel = net.kernel;
  if (net.why) document.body.dataset.whyNoKernel = net.why;
  document.body.dataset.ready = "1";
  fromLink();
})();
"""
