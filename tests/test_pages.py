"""The built book in a real browser (headless Chromium): formulas typeset from the book's own
MathJax with the network off, every image present.

Runs when ``BOOK_HTML`` names a built book (CI builds the quick one and sets it); Chromium
comes from Debian's ``chromium`` package."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

HTML = os.environ.get("BOOK_HTML")
pytestmark = pytest.mark.skipif(not HTML, reason="set BOOK_HTML to a built book (_build/html)")
PAGES = sorted((Path(HTML) / "book").glob("*.html")) if HTML else []


def rendered(page: Path) -> str:
    """The page's DOM after its scripts ran, in Chromium without network access."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "install Chromium (apt-get install -y chromium)"
    out = subprocess.run(
        [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--proxy-server=127.0.0.1:9",
         f"--user-data-dir={Path(HTML).parent / '.chromium'}", "--virtual-time-budget=8000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    return out.stdout


def test_the_book_was_built():
    assert PAGES, f"{HTML}: no pages under book/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_formulas_typeset_offline_and_images_present(page):
    source = page.read_text()
    dom = rendered(page)
    assert "</html>" in dom, f"{page.name}: Chromium returned no page"
    maths = len(re.findall(r'class="math notranslate nohighlight"', source))
    typeset = dom.count("<mjx-container")
    assert typeset >= maths, f"{page.name}: {typeset} of {maths} formulas typeset"
    for src in re.findall(r'<img[^>]+src="([^"]+)"', source):
        if not src.startswith("data:"):
            assert (page.parent / src).is_file(), f"{page.name}: missing image {src}"
