"""The page of `charrnn export -o model.html` in headless Chromium (as test_browser.py drives
it): it loads from file:// with no console message, its greedy text is `charrnn sample
--greedy`'s, character for character, for trained 2-layer RNN, LSTM and GRU models and every
--weights (against the rounded .npz), with its WebAssembly kernel and with its JavaScript loop;
the kernel's products are the loop's, bit for bit; without the kernel (no SIMD, no WebAssembly,
or a policy that refuses it) it runs the loop and says why; the keys and buttons drive it, a
link's fragment starts it, it writes while staying responsive, and it is seen (a screenshot).
The speed of the preset's 2 x 384 GRU, kernel and loop, is measured and printed, never
asserted."""

import base64
import re
import time
from urllib.parse import quote

import numpy as np
import pytest

import charrnn
from charrnn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from charrnn.config import ModelConfig, TrainConfig
from charrnn.data import Vocab
from charrnn.rounding import WEIGHTS
from charrnn.export_html import KERNEL_WASM, PAGE_CSP, SCRIPT
from charrnn.page import CSP
from charrnn.model import init_params
from charrnn.sample import Stepper

from cli_helpers import invoke
from test_browser import DevTools, chromium, colours_in, read_png
from view_helpers import make_checkpoint

pytestmark = pytest.mark.browser

CELLS = ("rnn", "lstm", "gru")
KERNELS = ("wasm", "js")   # the WebAssembly kernel (the page's own choice here), the JS loop
N = 500                 # greedy characters compared
SEED = "The "
POEM = """The Owl and the Pussy-cat went to sea
In a beautiful pea-green boat,
They took some honey, and plenty of money,
Wrapped up in a five-pound note.
The Owl looked up to the stars above,
And sang to a small guitar,
"O lovely Pussy! O Pussy, my love,
What a beautiful Pussy you are,
You are,
You are!
What a beautiful Pussy you are!"

Pussy said to the Owl, "You elegant fowl!
How charmingly sweet you sing!
O let us be married! too long we have tarried:
But what shall we do for a ring?"
They sailed away, for a year and a day,
To the land where the Bong-Tree grows
And there in a wood a Piggy-wig stood
With a ring at the end of his nose,
His nose,
His nose,
With a ring at the end of his nose.

"Dear pig, are you willing to sell for one shilling
Your ring?" Said the Piggy, "I will."
So they took it away, and were married next day
By the Turkey who lives on the hill.
They dined on mince, and slices of quince,
Which they ate with a runcible spoon;
And hand in hand, on the edge of the sand,
They danced by the light of the moon,
The moon,
The moon,
They danced by the light of the moon.

"""
# the 65 characters of tinyshakespeare, for the speed test's model
SHAKESPEARE_CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2 x 48 model of each cell, trained for a few seconds on the poem: it has learnt most
    of it, so its greedy text goes through the poem (not a loop of a few characters)."""
    root = tmp_path_factory.mktemp("trained")
    (root / "owl.txt").write_text(POEM * 12, encoding="utf-8")
    runs = {}
    for cell in CELLS:
        charrnn.fit(root / "owl.txt", out=root / cell, model=cell, hidden_size=48, num_layers=2,
                    batch_size=8, seq_length=32, max_iters=1000, eval_every=1000,
                    learning_rate=1.0e-2, rng_seed=0)
        runs[cell] = root / cell
    return runs


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = DevTools(tmp_path_factory.mktemp("chromium"))
    b.send("Runtime.enable")
    b.send("Log.enable")
    yield b
    b.close()


def export(run, path, weights="float32"):
    result = invoke(["export", run, "-o", path, "--weights", weights], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return path


def greedy(checkpoint, seed, n):
    """What `charrnn sample --greedy` prints, without its final newline."""
    result = invoke(["sample", "-c", checkpoint, "--seed", seed, "-n", n, "--greedy"],
                    catch_exceptions=False)
    assert result.exit_code == 0 and result.stdout.endswith("\n"), result.stderr
    return result.stdout[:-1]


def load(browser, url):
    """Open url as a new document (opening the page already open with another fragment would
    only change the fragment)."""
    browser.send("Page.navigate", url="about:blank")
    browser.open(url)


def state(browser):
    return browser.js("document.getElementById('status').dataset.state")


def wait(browser, seconds=120):
    """Wait until the page is not writing; its state, the text in #output, the status line."""
    deadline = time.monotonic() + seconds
    while state(browser) == "writing":
        assert time.monotonic() < deadline, "the page is still writing"
        time.sleep(0.05)
    return (state(browser), browser.js("document.getElementById('output').textContent"),
            browser.js("document.getElementById('status').textContent"))


def problems(browser):
    """Exceptions, console calls, and warnings or errors logged (a CSP refusal, say)."""
    found = [e for e in browser.events if e["method"] in ("Runtime.exceptionThrown",
                                                          "Runtime.consoleAPICalled")
             or e["method"] == "Log.entryAdded"
             and e["params"]["entry"]["level"] in ("warning", "error")]
    browser.events.clear()
    return found


def write_greedy(browser, page, seed, n, kernel):
    """The page's greedy text, written with `kernel`: "wasm" is the page's own choice (checked),
    "js" the link's switch to the JavaScript loop."""
    link = f"file://{page}#seed={quote(seed, safe='')}&n={n}&greedy=1"
    load(browser, link + ("&kernel=js" if kernel == "js" else ""))
    done, text, _ = wait(browser)
    assert done == "done" and problems(browser) == []
    assert browser.js("document.getElementById('status').dataset.kernel") == kernel
    return text


def first_difference(a, b):
    k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    return f"first difference at {k}: {a[max(0, k - 20):k + 20]!r} vs {b[max(0, k - 20):k + 20]!r}"


def smallest_gap(ckpt, seed, n):
    """The smallest gap between the two largest logits at any step of charrnn's greedy path:
    how near the page came to a tie that float rounding could break differently."""
    stepper = Stepper(ckpt.params, ckpt.model_cfg.model)
    ids = ckpt.vocab.encode(seed).astype(np.intp)
    for i in ids:
        logits = stepper.step(np.array([i]))
    gap = np.inf
    for _ in range(n):
        top = np.sort(logits[0])[-2:]
        gap = min(gap, float(top[1] - top[0]))
        logits = stepper.step(np.array([int(np.argmax(logits[0]))]))
    return gap


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("weights", WEIGHTS)
def test_greedy_text_is_charrnn_samples(trained, browser, cell, weights, tmp_path, capsys):
    run = trained[cell]
    page = export(run, tmp_path / "model.html", weights)
    checkpoint = run if weights == "float32" else export(run, tmp_path / "rounded.npz", weights)
    want = greedy(checkpoint, SEED, N)
    assert len({want[i:i + 12] for i in range(len(want) - 12)}) > 100   # not a short loop
    for kernel in KERNELS:
        text = write_greedy(browser, page, SEED, N, kernel)
        assert text == want, f"{kernel}: {first_difference(text, want)}"
    with capsys.disabled():
        gap = smallest_gap(load_checkpoint(checkpoint), SEED, N)
        print(f"\n  {cell} {weights}: the page's {N} greedy characters are charrnn's, with the "
              f"kernel and the JS loop; smallest gap between the two best logits: {gap:.3g}")


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("layers", [2, 3])
def test_greedy_text_of_random_models_is_charrnn_samples(browser, cell, layers, tmp_path,
                                                         capsys):
    # untrained, with output weights 3 times init_params' (varied guesses, and near ties: two
    # best logits within 1e-4 of each other), 2000 characters, and a seed with the characters
    # HTML and URLs treat specially
    ckpt = make_checkpoint(cell, hidden_size=64, num_layers=layers, seed=layers)
    ckpt.params["Why"] *= np.float32(0.05)
    save_checkpoint(tmp_path / "model.npz", ckpt)
    page = export(tmp_path / "model.npz", tmp_path / "model.html")
    seed = 'Speak, "speak" <b>&amp;</b> (1/2)?\n'
    want = greedy(tmp_path / "model.npz", seed, 4 * N)
    for kernel in KERNELS:
        text = write_greedy(browser, page, seed, 4 * N, kernel)
        assert text == want, f"{kernel}: {first_difference(text, want)}"
    with capsys.disabled():
        print(f"\n  random {layers} x 64 {cell}: {4 * N} greedy characters are charrnn's, with "
              f"the kernel and the JS loop; smallest gap between the two best logits: "
              f"{smallest_gap(ckpt, seed, 4 * N):.3g}")


def test_the_kernel_gives_the_js_loops_bits(browser, rng):
    # the page's kernel and its JavaScript loop (the function itself, out of SCRIPT) on the same
    # memory, and NumPy doing their float64 operations in their order: the same bits, on
    # weights and inputs of exponents from 2^-20 to 2^20 (sums that round at every step)
    product = re.search(r"\n  (function product\(W, b, x, y, rows, H\) \{.*?\n  \})\n",
                        SCRIPT, re.S).group(1)
    browser.send("Page.navigate", url="about:blank")
    browser.js(f"""window.check = function (data, rows, H) {{
      {product}
      var bytes = Uint8Array.from(atob(data), function (c) {{ return c.charCodeAt(0); }});
      var module = Uint8Array.from(atob("{KERNEL_WASM}"), function (c) {{ return c.charCodeAt(0); }});
      var memory = new WebAssembly.Memory({{initial: Math.ceil((bytes.length + 16 * rows) / 65536)}});
      var kernel = new WebAssembly.Instance(new WebAssembly.Module(module),
                                            {{env: {{memory: memory}}}}).exports.product;
      var buffer = memory.buffer, Wp = 0, bp = 4 * rows * H, xp = bp + 8 * rows, yp = xp + 4 * H;
      new Uint8Array(buffer).set(bytes);
      kernel(Wp, bp, xp, yp, rows, H);
      var loop = new Float64Array(rows);
      product(new Float32Array(buffer, Wp, rows * H), new Float64Array(buffer, bp, rows),
              new Float32Array(buffer, xp, H), loop, rows, H);
      var out = "", both = new Uint8Array(16 * rows);
      both.set(new Uint8Array(buffer, yp, 8 * rows));
      both.set(new Uint8Array(loop.buffer), 8 * rows);
      for (var i = 0; i < both.length; i++) out += String.fromCharCode(both[i]);
      return btoa(out);
    }}""")

    def spread(shape):
        return (rng.standard_normal(shape) * 2.0 ** rng.integers(-20, 21, shape)).astype(np.float32)

    for rows, H in [(8, 1), (8, 7), (24, 5), (72, 64), (1224, 384)]:
        W, x = spread((rows, H)), spread(H)
        b = spread(rows).astype(np.float64)
        # the page's layout: eight rows interleaved, row 8q + r of column k at [(q H + k) 8 + r]
        fused = W.reshape(rows // 8, 8, H).transpose(0, 2, 1).ravel()
        data = fused.tobytes() + b.tobytes() + x.tobytes()
        both = np.frombuffer(base64.b64decode(browser.js(
            f"check('{base64.b64encode(data).decode()}', {rows}, {H})")), np.float64)
        kernel, loop = both[:rows], both[rows:]
        want = b.copy()
        for k in range(H):   # the bias, then each product in k order, in float64
            want += W[:, k].astype(np.float64) * np.float64(x[k])
        assert np.array_equal(kernel.view(np.int64), loop.view(np.int64)), (rows, H)
        assert np.array_equal(loop.view(np.int64), want.view(np.int64)), (rows, H)
        assert not np.array_equal(want, b + W.astype(np.float32) @ x)   # float32 would differ
    assert problems(browser) == []


@pytest.mark.parametrize("without, why", [
    ("WebAssembly.validate = function () { return false; };",
     "this browser's WebAssembly has no SIMD"),
    ("delete window.WebAssembly;", "this browser has no WebAssembly"),
    ("views' policy", "WebAssembly was refused: CompileError")])
def test_without_the_kernel_the_page_runs_the_js_loop(small_page, browser, tmp_path, without,
                                                      why):
    # a browser without SIMD or without WebAssembly (mimicked before the page's script runs),
    # or the page under the views' policy, which has no 'wasm-unsafe-eval'
    page, checkpoint = small_page
    script = None
    if without == "views' policy":
        text = page.read_text(encoding="utf-8")
        assert text.count(PAGE_CSP) == 1
        page = tmp_path / "strict.html"
        page.write_text(text.replace(PAGE_CSP, CSP), encoding="utf-8")
    else:   # (the Page domain runs such scripts only while it is enabled)
        browser.send("Page.enable")
        script = browser.send("Page.addScriptToEvaluateOnNewDocument",
                              source=without)["identifier"]
    try:
        load(browser, f"file://{page}#seed=ROMEO%3A&n=300&greedy=1")
        done, text, status = wait(browser)
        assert done == "done" and text == greedy(checkpoint, "ROMEO:", 300)
        assert browser.js("[document.body.dataset.kernel, document.body.dataset.whyNoKernel, "
                          "document.getElementById('status').dataset.kernel]") == \
            ["js", why, "js"]
        assert status.endswith(f" characters per second with JavaScript ({why}).")
        browser.js("location.hash = '#seed=a&kernel=wasm'")
        assert wait(browser)[::2] == ("error", f"the WebAssembly kernel cannot run: {why}")
        assert problems(browser) == []
    finally:
        if script is not None:
            browser.send("Page.removeScriptToEvaluateOnNewDocument", identifier=script)


def test_the_pages_float16_decoder_is_exact(browser):
    # the page's own function, run on every one of the 65536 float16 bit patterns
    half = re.search(r"\n  (function half\(u\) \{.*?\n  \})\n", SCRIPT, re.S).group(1)
    browser.send("Page.navigate", url="about:blank")
    data = browser.js(f"(function () {{ {half}; var out = new Float32Array(65536), s = '', u; "
                      "for (u = 0; u < 65536; u++) out[u] = half(u); "
                      "var bytes = new Uint8Array(out.buffer); "
                      "for (u = 0; u < bytes.length; u++) s += String.fromCharCode(bytes[u]); "
                      "return btoa(s); })()")
    got = np.frombuffer(base64.b64decode(data), np.float32)
    want = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))   # -0 too


@pytest.fixture(scope="module")
def small_page(tmp_path_factory):
    root = tmp_path_factory.mktemp("small")
    save_checkpoint(root / "model.npz", make_checkpoint("lstm", hidden_size=16, num_layers=2))
    return export(root / "model.npz", root / "model.html"), root / "model.npz"


def test_the_page_loads_with_no_console_message(small_page, tmp_path):
    page, _ = small_page
    dom, console = chromium(tmp_path, "--dump-dom", f"file://{page}")
    assert console == []                 # no error, no CSP refusal, nothing logged
    assert 'data-ready="1"' in dom and 'data-state="idle"' in dom and 'data-kernel="wasm"' in dom
    assert "Ready: type a seed and press Enter or Write." in dom


def press(browser, key, code, text=None, modifiers=0):
    """A key pressed and released, as a keyboard sends it (text: what it types)."""
    down = {"type": "keyDown", "key": key, "code": key, "windowsVirtualKeyCode": code,
            "modifiers": modifiers}
    if text is not None:
        down["text"] = text
    browser.send("Input.dispatchKeyEvent", **down)
    browser.send("Input.dispatchKeyEvent", type="keyUp", key=key, code=key,
                 windowsVirtualKeyCode=code, modifiers=modifiers)


def click(browser, id_):
    x, y = browser.js(f"(function () {{ var r = document.getElementById('{id_}')"
                      ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; "
                      "})()")
    for event in ("mousePressed", "mouseReleased"):
        browser.send("Input.dispatchMouseEvent", type=event, x=x, y=y, button="left",
                     clickCount=1)


def focused(browser):
    return browser.js("document.activeElement.id")


def test_keys_and_buttons_drive_the_page(small_page, browser):
    page, checkpoint = small_page
    load(browser, f"file://{page}")
    assert state(browser) == "idle"
    # Tab goes through the controls in order (Stop is off while nothing is written)
    browser.js("document.getElementById('seed').focus()")
    order = [focused(browser)]
    for _ in range(7):
        press(browser, "Tab", 9)
        order.append(focused(browser))
    assert order == ["seed", "n", "temperature", "top_k", "top_p", "rng_seed", "greedy", "write"]
    # type a seed with a new line (Shift+Enter), the number of characters, tick greedy
    browser.js("document.getElementById('seed').focus()")
    browser.send("Input.insertText", text="ab")
    press(browser, "Enter", 13, "\r", modifiers=8)
    browser.send("Input.insertText", text="c")
    assert browser.js("document.getElementById('seed').value") == "ab\nc"
    browser.js("document.getElementById('n').focus(); document.getElementById('n').select()")
    browser.send("Input.insertText", text="300")
    click(browser, "greedy")
    assert browser.js("document.getElementById('greedy').checked")
    assert browser.js("document.getElementById('temperature').disabled")
    # Enter in the seed writes
    browser.js("document.getElementById('seed').focus()")
    press(browser, "Enter", 13, "\r")
    done, text, status = wait(browser)
    assert done == "done" and text == greedy(checkpoint, "ab\nc", 300)
    assert status.startswith("Wrote 300 characters in ")
    assert status.endswith(" characters per second with WebAssembly SIMD.")
    assert browser.js("location.hash") == "#seed=ab%0Ac&n=300&greedy=1"   # a link to it
    # Enter in a number field writes; the text grows while the page answers; Esc stops it
    browser.js("document.getElementById('n').focus(); document.getElementById('n').select()")
    browser.send("Input.insertText", text="1000000")
    press(browser, "Enter", 13, "\r")
    lengths = []
    for _ in range(3):
        time.sleep(0.3)
        lengths.append(browser.js("document.getElementById('output').textContent.length"))
    assert state(browser) == "writing" and lengths[0] < lengths[1] < lengths[2] < 1_000_000
    assert browser.js("document.getElementById('stop').disabled") is False
    press(browser, "Escape", 27)
    done, text, status = wait(browser, seconds=5)
    assert done == "stopped" and lengths[2] <= len(text) < 1_000_000
    assert status.startswith(f"Stopped after {len(text) - 4:,} of 1,000,000 characters in ")
    assert browser.js("document.getElementById('stop').disabled")
    # the Write and Stop buttons, clicked
    click(browser, "write")
    assert state(browser) == "writing"
    click(browser, "stop")
    assert wait(browser, seconds=5)[0] == "stopped"
    assert problems(browser) == []


def test_the_fragment_starts_writing_and_says_what_is_wrong(small_page, browser):
    page, checkpoint = small_page
    load(browser, f"file://{page}#seed=ROMEO%3A&n=300&greedy=1")
    done, text, _ = wait(browser)
    assert done == "done" and text == greedy(checkpoint, "ROMEO:", 300)
    assert browser.js("[document.getElementById('seed').value, document.getElementById('n')"
                      ".value, document.getElementById('greedy').checked]") == \
        ["ROMEO:", "300", True]
    # a new fragment starts anew; top_k=1 and a tiny top_p keep only the likeliest character
    for fragment in ("#seed=a&n=80&top_k=1", "#seed=a&n=80&top_p=0.000001&rng_seed=3"):
        browser.js(f"location.hash = '{fragment}'")
        done, text, _ = wait(browser)
        assert done == "done" and text == greedy(checkpoint, "a", 80), fragment
    # sampling: the same random seed, the same text; another, another text
    texts = []
    for rng_seed in (7, 7, 8):
        browser.js(f"location.hash = '#seed=a&n=200&temperature=1.5&top_p=0.95&"
                   f"rng_seed={rng_seed}'")
        done, text, _ = wait(browser)
        assert done == "done" and len(text) == 201
        texts.append(text)
    assert texts[0] == texts[1] != texts[2]
    assert browser.js("location.hash") == "#seed=a&n=200&temperature=1.5&top_p=0.95&rng_seed=8"
    browser.js("location.hash = '#seed=a&n=20&temperature=0.8'")   # no seed: one is drawn
    assert wait(browser)[0] == "done"
    drawn = browser.js("location.hash")
    assert drawn.startswith("#seed=a&n=20&temperature=0.8&rng_seed=")
    assert drawn.rsplit("=", 1)[1].isdigit()
    for fragment, message in [
            ("#n=0", 'n must be a whole number from 1 to 1000000, not "0"'),
            ("#seed=a&top_p=1.5", 'top_p must be a number above 0, at most 1, not "1.5"'),
            ("#seed=%E2", "the link's seed is not URL-encoded text"),
            ("#colour=red", 'the link names an unknown setting, "colour"; settings: seed, n, '
                            "temperature, top_k, top_p, greedy, rng_seed, kernel"),
            ("#seed=a&kernel=gpu", 'kernel must be wasm or js, not "gpu"'),
            ("#seed=%E2%82%AC%C3%A9a", "the seed has characters not in the model's vocabulary: "
                                      '"\u00e9", "\u20ac"')]:
        browser.js(f"location.hash = '{fragment}'")
        assert wait(browser)[::2] == ("error", message)
    assert problems(browser) == []


def test_screenshot_shows_the_form_and_the_text(trained, browser, tmp_path, capsys):
    page = export(trained["gru"], tmp_path / "owl.html", "int8")
    browser.send("Emulation.setDeviceMetricsOverride", width=1100, height=800,
                 deviceScaleFactor=1, mobile=False)
    load(browser, f"file://{page}#seed=The%20Owl&n=400&temperature=0.6&rng_seed=1")
    done, text, _ = wait(browser)
    assert done == "done" and text.startswith("The Owl")
    shot = tmp_path / "export-page.png"
    shot.write_bytes(base64.b64decode(browser.send("Page.captureScreenshot",
                                                   format="png")["data"]))
    pixels = read_png(shot)
    assert pixels.shape == (800, 1100, 3)
    seen = colours_in(pixels)
    assert {"#0969da", "#f6f8fa", "#1f2328"} <= seen     # Write, the text's box, the ink
    browser.send("Emulation.clearDeviceMetricsOverride")
    assert problems(browser) == []
    with capsys.disabled():
        print(f"\n  screenshot: {shot}")


@pytest.mark.parametrize("weights", WEIGHTS)
def test_speed_of_the_presets_gru(browser, weights, tmp_path, capsys, record_property):
    """Characters per second of the 2 x 384 GRU of configs/shakespeare.yaml (untrained: the
    speed is the same), as the page reports it, with the kernel and with the JavaScript loop,
    turn about, three times each: the medians are printed, not asserted."""
    vocab = Vocab(SHAKESPEARE_CHARS)
    ckpt = Checkpoint(params=init_params("gru", len(vocab), 384, 2, np.random.default_rng(0)),
                      vocab=vocab, model_cfg=ModelConfig(model="gru", hidden_size=384,
                                                         num_layers=2),
                      train_cfg=TrainConfig())
    save_checkpoint(tmp_path / "gru.npz", ckpt)
    page = export(tmp_path / "gru.npz", tmp_path / "gru.html", weights)
    started = time.monotonic()
    load(browser, f"file://{page}")
    opened = time.monotonic() - started
    speeds = {kernel: [] for kernel in KERNELS}
    for _ in range(3):
        for kernel in KERNELS:
            browser.js(f"location.hash = '#n=2000&greedy=1&kernel={kernel}'")
            done, text, status = wait(browser)
            assert done == "done" and len(text) == 1 + 2000
            assert browser.js("document.getElementById('status').dataset.kernel") == kernel
            speed = int(browser.js("document.getElementById('status').dataset.charsPerSecond"))
            assert speed > 0 and f"{speed:,} characters per second" in status
            speeds[kernel].append(speed)
    median = {kernel: sorted(runs)[1] for kernel, runs in speeds.items()}
    for kernel in KERNELS:
        record_property(f"chars_per_second_{kernel}", median[kernel])
    with capsys.disabled():
        print(f"\n  2 x 384 GRU, {weights}: {page.stat().st_size:,} bytes, opened in "
              f"{opened:.2f} s; characters per second, median of 3: {median['wasm']:,} with the "
              f"kernel {speeds['wasm']}, {median['js']:,} with the JS loop {speeds['js']} "
              f"({median['wasm'] / median['js']:.1f}x)")
    assert problems(browser) == []
