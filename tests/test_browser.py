"""The views in a real browser: headless Chromium (Debian's `chromium` package) loads the pages
from file://, runs their script without an error, and gives the DOM (--dump-dom) and a screenshot
(--screenshot); driven over its DevTools pipe, the mouse and keys move the card. Skipped where
chromium is not installed; `make test-browser` installs it."""

import json
import math
import os
import shutil
import struct
import subprocess
import time
import zlib
from html.parser import HTMLParser

import numpy as np
import pytest

from charrnn.plot import COLOURS, read_run, render_html as plot_html
from charrnn.viz import build_view
from charrnn.viz_page import UNIT_BINS, page_data, render_html, surprisal_colour, unit_colour

from view_helpers import make_checkpoint, make_run

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TEXT = ('First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\n'
        'Speak, speak. </script> <b>x</b> &amp; "quoted" (text)\n') * 20
PIN = 16     # a space: "First Citizen:\nB" -> TEXT[15] is "B", TEXT[16] is "e"


def flags(tmp_path):
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (make test-browser installs it)")
    flags = ["--headless", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]
    if os.geteuid() == 0:
        flags.append("--no-sandbox")   # Chromium refuses to run as root with its sandbox
    return flags


def chromium(tmp_path, *args):
    """Run headless Chromium; returns (stdout, the page's console messages)."""
    proc = subprocess.run([CHROMIUM, *flags(tmp_path), "--enable-logging=stderr", "--v=0",
                           *map(str, args)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]


class Dom(HTMLParser):
    """The parts of a dumped viz page the tests read: each element's attributes and text, by
    id, and the rows of the card and the unit lines."""

    def __init__(self, dom):
        super().__init__(convert_charrefs=True)
        self.stack, self.elements = [], []
        self.feed(dom)

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, "attrs": dict(attrs), "text": "", "children": []}
        if self.stack:
            self.stack[-1]["children"].append(element)
        self.elements.append(element)
        if tag not in ("meta", "input", "br", "img", "link"):
            self.stack.append(element)

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        for element in self.stack:
            element["text"] += data

    def by_id(self, id_):
        return next(e for e in self.elements if e["attrs"].get("id") == id_)

    def by_class(self, name):
        return [e for e in self.elements if name in e["attrs"].get("class", "").split()]


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    view = build_view(make_checkpoint("lstm", hidden_size=12), TEXT, "speech.txt",
                      neurons=[(1, 3), (0, 5)], checkpoint="run/best.npz")
    (root / "page.html").write_text(render_html(view), encoding="utf-8")
    runs = [read_run(make_run(root, name, losses, learning_rate=lr)) for name, losses, lr in
            [("a", [(3.0, 3.1), (2.0, 2.5), (1.7, 2.3)], 1.0e-3),
             ("b", [(3.2, 3.0), (2.2, 2.4), (1.5, 2.2)], 3.0e-3)]]
    (root / "curves.html").write_text(plot_html(runs), encoding="utf-8")
    return root, view


def test_the_pinned_card_shows_the_character_and_its_top_guesses(pages, tmp_path):
    root, view = pages
    dom, console = chromium(tmp_path, "--dump-dom", f"file://{root / 'page.html'}#pin={PIN}")
    assert console == []                          # no error, no CSP refusal, nothing logged
    page = Dom(dom)
    assert page.by_id("data")["attrs"] and 'data-ready="1"' in dom   # the script ran to its end
    data = page_data(view)
    assert page.by_id("card-char")["text"] == "\u2018e\u2019"
    k = data["k"]
    names = [f"\u2018{data['vocab'][i]}\u2019" if data["vocab"][i] != " " else "space"
             for i in data["top"][PIN * k:(PIN + 1) * k]]
    rows = [row for row in page.by_class("top")]
    assert [row["children"][0]["text"] for row in rows] == names
    assert [row["children"][1]["text"] for row in rows] == \
        [f"{p / 10:.1f}%" if p else "<0.1%" for p in data["topp"][PIN * k:(PIN + 1) * k]]
    true = [row for row in rows if "true" in row["attrs"]["class"].split()]
    assert len(true) == (1 if data["rank"][PIN] <= k else 0)
    bits = data["bits"][PIN] / 1000
    assert page.by_id("card-score")["text"].endswith(f"{bits:.2f} bits  \u00b7  rank "
                                                     f"{data['rank'][PIN]}")
    assert page.by_id("card-where")["text"] == (f"character {PIN} of {len(TEXT):,} here (offset "
                                                f"{PIN} in the text), line 2, column 2")
    # the pinned character is marked in the text and in each unit row, which the script drew
    text = page.by_id("text")["children"]
    assert len(text) == len(TEXT) and text[PIN]["attrs"]["class"].split()[-1] == "pin"
    lines = [e for e in page.by_class("line") if "data-unit" in e["attrs"]]
    assert len(lines) == 2
    for j, line in enumerate(lines):
        assert len(line["children"]) == len(TEXT)
        values = data["units"][j]["values"]
        assert [c["attrs"]["class"].split()[0] for c in line["children"][:40]] == \
            [f"n{math.floor((v + 100) / 10 + 0.5)}" for v in values[:40]]   # JS rounds half up
        assert "pin" in line["children"][PIN]["attrs"]["class"].split()


def read_png(path):
    """(height, width, 3) uint8 pixels of an 8-bit RGB or RGBA PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat = 8, b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and colour in (2, 6) and interlace == 0
        elif kind == b"IDAT":
            idat += body
    bpp = 3 if colour == 2 else 4
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, 1 + width * bpp)
    out = np.zeros((height, width * bpp), dtype=np.int64)
    prev = np.zeros(width * bpp, dtype=np.int64)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int64)
        if kind == 0:
            row = line
        elif kind == 2:
            row = (line + prev) % 256
        elif kind == 1:   # Sub: a running sum per channel
            row = np.cumsum(line.reshape(width, bpp), axis=0).reshape(-1) % 256
        else:             # Average, Paeth: sequential along the row
            row, up = line.tolist(), prev.tolist()
            for i in range(len(row)):
                a = row[i - bpp] if i >= bpp else 0
                b, c = up[i], (up[i - bpp] if i >= bpp else 0)
                if kind == 3:
                    row[i] = (row[i] + (a + b) // 2) % 256
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) % 256
            row = np.array(row, dtype=np.int64)
        out[y], prev = row, row
    return out.reshape(height, width, bpp)[:, :, :3].astype(np.uint8)


def colours_in(pixels):
    return {f"#{r:02x}{g:02x}{b:02x}" for r, g, b in np.unique(pixels.reshape(-1, 3), axis=0)}


def test_screenshot_shows_the_coloured_text_the_card_and_the_unit_rows(pages, tmp_path):
    root, view = pages
    shot = tmp_path / "page.png"
    _, console = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,1600",
                          f"file://{root / 'page.html'}#pin={PIN}")
    assert console == []
    pixels = read_png(shot)
    assert pixels.shape == (1600, 1200, 3)
    seen = colours_in(pixels)
    # the first 600 characters are on the screen: each of their surprisal colours is
    bins = {min(16, b // 500) for b in page_data(view)["bits"][:600] if b is not None}
    assert {surprisal_colour(k) for k in bins} <= seen
    assert "#f6f8fa" in seen                                    # the card
    assert len({unit_colour(k) for k in range(UNIT_BINS + 1)} & seen) >= 5   # the unit rows


def test_without_its_script_the_text_is_still_coloured(pages, tmp_path):
    # headless Chromium cannot turn scripts off and still dump or shoot a page, so the page is
    # loaded with its script taken out: what a reader with scripts off sees
    root, view = pages
    page = (root / "page.html").read_text(encoding="utf-8")
    head, _, rest = page.partition("<script>\n")
    (tmp_path / "off.html").write_text(head + rest.partition("</script>\n")[2], encoding="utf-8")
    dom, _ = chromium(tmp_path, "--dump-dom", f"file://{tmp_path / 'off.html'}")
    assert 'data-ready="1"' not in dom and 'data-unit="0"></div>' in dom   # no unit rows drawn
    shot = tmp_path / "off.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1000,700",
             f"file://{tmp_path / 'off.html'}")
    seen = colours_in(read_png(shot))
    bins = {min(16, b // 500) for b in page_data(view)["bits"][:300] if b is not None}
    assert {surprisal_colour(k) for k in bins} <= seen


def test_the_plot_page_draws_its_lines(pages, tmp_path):
    root, _ = pages
    dom, console = chromium(tmp_path, "--dump-dom", f"file://{root / 'curves.html'}")
    assert console == [] and dom.count("<polyline") == 4
    shot = tmp_path / "curves.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=900,700",
             f"file://{root / 'curves.html'}")
    seen = colours_in(read_png(shot))
    assert {COLOURS[0], COLOURS[1]} <= seen


class DevTools:
    """Chromium driven over --remote-debugging-pipe (it reads commands on fd 3 and answers on
    fd 4, each a JSON message ended by a NUL byte): one page, its JavaScript, mouse and keys."""

    def __init__(self, tmp_path):
        to_chrome, from_chrome = os.pipe(), os.pipe()

        def plumb():   # in the child: its ends of the pipes as fds 3 and 4 (inheritable copies)
            read, write = os.dup(to_chrome[0]), os.dup(from_chrome[1])
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.proc = subprocess.Popen([CHROMIUM, *flags(tmp_path), "--remote-debugging-pipe",
                                      "--window-size=1200,900", "about:blank"],
                                     close_fds=False, preexec_fn=plumb,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome[0])
        os.close(from_chrome[1])
        self._out = os.fdopen(to_chrome[1], "wb", buffering=0)
        self._in = os.fdopen(from_chrome[0], "rb", buffering=0)
        self._buffer, self._id, self.session = b"", 0, None
        self.events = []   # the messages that answer nothing (events of the enabled domains)
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]

    def send(self, method, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session:
            message["sessionId"] = self.session
        self._out.write(json.dumps(message).encode() + b"\0")
        while True:   # events come in between: skip them
            while b"\0" not in self._buffer:
                chunk = self._in.read(1 << 16)
                assert chunk, "chromium closed its DevTools pipe"
                self._buffer += chunk
            answer, self._buffer = self._buffer.split(b"\0", 1)
            answer = json.loads(answer)
            if answer.get("id") == self._id:
                assert "error" not in answer, answer["error"]
                return answer["result"]
            if "method" in answer:
                self.events.append(answer)

    def js(self, expression):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def open(self, url):
        self.send("Page.navigate", url=url)
        deadline = time.monotonic() + 30
        while self.js("document.readyState + (document.body ? document.body.dataset.ready : '')") \
                != "complete1":
            assert time.monotonic() < deadline, "the page's script did not finish"
            time.sleep(0.1)

    def mouse(self, kind, i):
        """Move to, or click, character i of the text."""
        x, y = self.js(f"(function () {{ var r = document.getElementById('text').children[{i}]"
                       ".getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; "
                       "})()")
        if kind == "move":
            self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        else:
            for event in ("mousePressed", "mouseReleased"):
                self.send("Input.dispatchMouseEvent", type=event, x=x, y=y, button="left",
                          clickCount=1)

    def key(self, key, code):
        for event in ("keyDown", "keyUp"):
            self.send("Input.dispatchKeyEvent", type=event, key=key, code=key,
                      windowsVirtualKeyCode=code)

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self._out.close()
        self._in.close()


def test_hover_click_and_keys_move_the_card(pages, tmp_path):
    root, view = pages
    browser = DevTools(tmp_path)
    try:
        browser.open(f"file://{root / 'page.html'}")
        card = "document.getElementById('card-where').textContent.split(' of ')[0]"
        browser.mouse("move", 20)
        assert browser.js(card) == "character 20"
        browser.mouse("click", 20)                            # pins it
        assert browser.js("location.hash") == "#pin=20"
        browser.mouse("move", 30)
        assert browser.js(card) == "character 20"             # a pinned card stays
        browser.mouse("click", 20)                            # lets it go
        assert browser.js("location.hash + document.querySelectorAll('.pin').length") == "0"
        browser.js("document.getElementById('text').children[0].focus()")
        assert browser.js(card) == "character 0"
        browser.key("ArrowRight", 39)
        browser.key("ArrowRight", 39)
        assert browser.js(card) == "character 2"
        browser.key("Enter", 13)
        assert browser.js("location.hash") == "#pin=2"
        browser.key("Escape", 27)
        assert browser.js("location.hash") == ""
        assert browser.js("document.getElementById('card-char').textContent") == \
            f"\u2018{view.shown[2]}\u2019"
    finally:
        browser.close()
