"""charrnn.page: JSON safe inside <script>, colour scales, the page skeleton, writing a view."""

import json

import pytest

from charrnn.data import DataError
from charrnn.page import CSP, html_page, luminance, mix, script_json, write_view


def test_script_json_cannot_close_its_element():
    obj = {"t": "</script><!-- & \u2028 \u2029", "b": [1, None], "a": "é"}
    text = script_json(obj)
    assert not any(ch in text for ch in "<>&\u2028\u2029")
    assert json.loads(text) == obj
    assert text.startswith('{"a":"é","b":[1,null],')      # sorted keys, no spaces, UTF-8


def test_script_json_refuses_nan():
    with pytest.raises(ValueError):
        script_json({"x": float("nan")})


def test_mix_interpolates_between_stops():
    stops = ("#000000", "#ff0000", "#ffffff")
    assert [mix(stops, t) for t in (0, 0.25, 0.5, 0.75, 1, -1, 2)] == \
        ["#000000", "#800000", "#ff0000", "#ff8080", "#ffffff", "#000000", "#ffffff"]


def test_luminance():
    assert luminance("#000000") == 0 and luminance("#ffffff") == pytest.approx(1)
    assert luminance("#00ff00") > luminance("#ff0000") > luminance("#0000ff")


def test_html_page_has_the_csp_and_escapes_the_title():
    page = html_page("a <b> & c", "p { }\n", "<p>x</p>\n", "var a = 1;\n")
    assert f'<meta http-equiv="Content-Security-Policy" content="{CSP}">' in page
    assert "<title>a &lt;b&gt; &amp; c</title>" in page
    assert page.startswith("<!DOCTYPE html>\n") and page.endswith("</html>\n")
    assert "<script>\nvar a = 1;\n</script>" in page
    assert "<script>" not in html_page("t", "", "")


def test_write_view(tmp_path):
    write_view(tmp_path / "a.html", "é\n")
    assert (tmp_path / "a.html").read_bytes() == "é\n".encode("utf-8")
    with pytest.raises(DataError, match=r"/missing/a.html: cannot write: No such file or directory$"):
        write_view(tmp_path / "missing" / "a.html", "x")
