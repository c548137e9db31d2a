"""What the views share (viz_page.py's page, plot.py's chart): a self-contained HTML page, JSON made
safe inside <script>, colour scales, writing a view to a file.

A view opens anywhere: no URL in it (no CDN, web font, external src or href), inline CSS and JS
only, a Content-Security-Policy that forbids loading anything, system fonts; so it opens from
file:// with no network. Its bytes depend only on its inputs: no time stamps, sorted JSON keys,
fixed number formats. [bertviz and ecco pages go blank offline: they load CDN scripts]
"""

import html
import json
from pathlib import Path

from .data import DataError

# nothing may be fetched; inline styles and scripts run; images only as data: URIs
CSP = "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:"
SANS = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
MONO = 'ui-monospace, "SF Mono", Menlo, Consolas, "DejaVu Sans Mono", "Liberation Mono", monospace'

BASE_STYLE = f"""\
body {{ font-family: {SANS}; color: #1f2328; background: #fff; margin: 1.2em 1.5em; }}
h1 {{ font-size: 1.3em; margin: 0 0 .3em; }}
.facts {{ color: #57606a; margin: 0 0 .8em; }}
.notes {{ color: #57606a; font-size: .9em; max-width: 60em; }}
table {{ border-collapse: collapse; font-size: .9em; }}
th, td {{ text-align: left; padding: .2em .8em .2em 0; border-bottom: 1px solid #d0d7de; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
"""


def html_page(title, style, body, script="", csp=CSP):
    """A whole HTML document: title (plain text), style (CSS added after BASE_STYLE), body (HTML),
    script (inline JavaScript, or none), csp (its Content-Security-Policy: the views' CSP unless a
    page needs more, as export_html's page does to compile its WebAssembly)."""
    parts = ["<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
             f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n",
             "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
             f"<title>{html.escape(title)}</title>\n<style>\n{BASE_STYLE}{style}</style>\n",
             "</head>\n<body>\n", body]
    if script:
        parts.append(f"<script>\n{script}</script>\n")
    parts.append("</body>\n</html>\n")
    return "".join(parts)


def script_json(obj):
    """obj as JSON that is safe inside a <script> element: sorted keys, no spaces, and '<', '>',
    '&' (and the JavaScript line separators) written as \\u escapes, so no text in it can close
    the element ("</script>") or be read as markup. json.loads gives obj back."""
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      allow_nan=False)
    for ch in "<>&\u2028\u2029":
        text = text.replace(ch, f"\\u{ord(ch):04x}")
    return text


def mix(stops, t):
    """The colour at t in [0, 1] on a scale through the '#rrggbb' stops (evenly spaced), by
    linear interpolation in sRGB: '#rrggbb'."""
    t = min(1.0, max(0.0, t)) * (len(stops) - 1)
    k = min(int(t), len(stops) - 2)
    a, b = _rgb(stops[k]), _rgb(stops[k + 1])
    return "#" + "".join(f"{round(x + (y - x) * (t - k)):02x}" for x, y in zip(a, b))


def _rgb(colour):
    return tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))


def luminance(colour):
    """Relative luminance of '#rrggbb' (WCAG), 0 (black) to 1 (white)."""
    def linear(c):
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (linear(c) for c in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def write_view(path, text):
    """Write a view's text to path as UTF-8 (LF newlines); DataError if it cannot be written."""
    try:
        Path(path).write_bytes(text.encode("utf-8"))
    except OSError as e:
        raise DataError(f"{path}: cannot write: {e.strerror or e}") from None
