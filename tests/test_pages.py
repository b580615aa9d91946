"""The built book in a real browser (headless Chromium, network off, a 1280-px window): every
page's formulas typeset from the book's own MathJax, every image loaded, no table wider than
its box unless the box scrolls, no console error (lib.browser).

Runs when ``BOOK_HTML`` names a built book (CI builds the quick one and sets it); Chromium
comes from Debian's ``chromium`` package, driven by ``playwright``."""

import os
from pathlib import Path

import pytest

HTML = os.environ.get("BOOK_HTML")
pytestmark = pytest.mark.skipif(not HTML, reason="set BOOK_HTML to a built book (_build/html)")


def _pages():
    from lib.browser import pages

    return pages(Path(HTML)) if HTML else []


@pytest.fixture(scope="module")
def chromium():
    from lib.browser import browser

    with browser() as b:
        yield b


def test_the_book_was_built():
    assert len(_pages()) > 5, f"{HTML}: no chapters under book/"


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.stem)
def test_page_renders_for_a_reader(chromium, page):
    from lib.browser import check_page

    res = check_page(chromium, page)
    assert res["typeset"] >= res["maths"], \
        f"{page.name}: {res['typeset']} of {res['maths']} formulas typeset"
    assert not res["broken_images"], f"{page.name}: images not loaded: {res['broken_images']}"
    assert not res["cut_tables"], f"{page.name}: tables cut off at 1280 px: {res['cut_tables']}"
    assert not res["console_errors"], f"{page.name}: console errors: {res['console_errors']}"


def test_the_probe_catches_a_cut_table_a_broken_image_and_raw_latex(chromium, tmp_path):
    """The checks above can fail: a hand-made page with each defect is caught."""
    from lib.browser import check_page

    page = tmp_path / "bad.html"
    page.write_text(
        "<html><body><article style='width:400px;overflow:visible'>"
        "<table><tr><th>wide</th><td style='min-width:2000px'>x</td></tr></table>"
        "<img src='missing.png'><span class='math notranslate nohighlight'>\\(x^2\\)</span>"
        "<script>console.error('boom')</script></article></body></html>")
    res = check_page(chromium, page)
    assert res["cut_tables"] == ["wide"]
    assert res["broken_images"] == ["missing.png"]
    assert res["maths"] == 1 and res["typeset"] == 0
    assert any("boom" in e for e in res["console_errors"])


@pytest.mark.parametrize("page", _pages(), ids=lambda p: p.stem)
def test_page_reads_as_prose(chromium, page):
    """No negative zero, no machine's path, no split by its key in what a reader sees, and
    every picture the chapter's notebook made is on the page."""
    from lib.browser import check_page, expected_figures

    res = check_page(chromium, page)
    assert not res["text_problems"], f"{page.name}: {res['text_problems']}"
    want = expected_figures(page)
    assert want is None or res["figures"] >= want, \
        f"{page.name}: {res['figures']} of the notebook's {want} figures shown"


def test_results_page_is_short_and_its_headline_fits(chromium):
    from lib.browser import check_page

    page = next(p for p in _pages() if p.stem == "results")
    res = check_page(chromium, page)
    assert res["height"] < 8000, f"results page {res['height']} px tall at 1280 px"
    assert res["first_table_fits"], "the results chapter's first table scrolls at 1280 px"


def test_the_text_check_catches_what_a_reader_trips_on():
    from lib.browser import text_problems

    assert text_problems("ours costs 12.5 mm on unseen styles, 0.0 mm, -0.5 and 10.0 mm; "
                         "dataset-0, a -0.05 mm change") == []
    assert len(text_problems("a -0% change, -0.00 mm")) == 2
    found = text_problems('costs -0.0 mm; {"run": "/tmp/x/runs/default/ours-kept"} on '
                          "test_unseen_styles")
    assert [f.split(":")[0] for f in found] == ["a negative zero", "an absolute path",
                                                "a split's key"]
