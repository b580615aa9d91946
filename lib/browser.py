"""The built book as a reader sees it: every page in headless Chromium, with the network off.

    python -m lib.browser _build/html [--screenshots DIR]

Chromium is Debian's ``chromium`` package (``apt-get install -y chromium``), driven by the
``playwright`` package (no browser download). :func:`check_page` loads one page at a 1280-px
window and reports what a reader would see go wrong: formulas left as raw LaTeX, images that
did not load, tables wider than their box that cannot be scrolled, console errors.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

WIDTH = 1280
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]

# run in the page: what did not render. A table is "cut" when it is wider than its container
# and no box between it and the article scrolls across.
_PROBE = """() => {
  const cut = [];
  for (const t of document.querySelectorAll('article table')) {
    let box = t.parentElement, scrolls = false;
    while (box && box.tagName !== 'ARTICLE') {
      const o = getComputedStyle(box).overflowX;
      if ((o === 'auto' || o === 'scroll') && box.scrollWidth >= t.offsetWidth - 1) {
        scrolls = true; break;
      }
      box = box.parentElement;
    }
    const article = document.querySelector('article').getBoundingClientRect();
    const r = t.getBoundingClientRect();
    if (!scrolls && (r.right > article.right + 1 || r.left < article.left - 1))
      cut.push((t.querySelector('th') || t).innerText.slice(0, 60));
  }
  const broken = [...document.images].filter(i => !(i.complete && i.naturalWidth > 0))
                                     .map(i => i.getAttribute('src'));
  return {maths: document.querySelectorAll('.math.notranslate.nohighlight').length,
          typeset: document.querySelectorAll('mjx-container').length,
          broken_images: broken, cut_tables: cut};
}"""


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        raise FileNotFoundError("chromium: not found; install it with apt-get install -y "
                                "chromium")
    return exe


@contextmanager
def browser():
    """A headless Chromium that reaches nothing but ``file://`` pages."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium(), args=FLAGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def check_page(b, page: Path, screenshot: Path | None = None) -> dict:
    """Load ``page`` offline at a 1280-px window; returns ``{"maths", "typeset",
    "broken_images", "cut_tables", "console_errors"}`` (and saves a full-page screenshot)."""
    ctx = b.new_context(viewport={"width": WIDTH, "height": 900})
    ctx.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
              else route.abort())
    tab = ctx.new_page()
    errors = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.goto(Path(page).resolve().as_uri(), wait_until="load")
    # MathJax typesets after load: wait for its promise (a page without formulas has none)
    tab.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
    found = tab.evaluate(_PROBE)
    found["console_errors"] = errors
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(screenshot), full_page=True)
    ctx.close()
    return found


def pages(html: Path) -> list[Path]:
    """The chapter pages (index.html only redirects to the first)."""
    return sorted((Path(html) / "book").glob("*.html"))


def screenshots(html: Path, out: Path) -> list[Path]:
    """A full-page screenshot of every page at a reader's 1280-px window, for a person to
    look at the figures and tables; returns the files."""
    shots = []
    with browser() as b:
        for page in pages(html):
            shot = (Path(out) / f"{page.stem}.png").resolve()
            check_page(b, page, shot)
            shots.append(shot)
    return shots


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m lib.browser", description=__doc__.split("\n")[0])
    p.add_argument("html", type=Path, help="the built book (_build/html)")
    p.add_argument("--screenshots", type=Path, metavar="DIR",
                   help="save a full-page screenshot of every page to DIR")
    args = p.parse_args(argv)
    if not (args.html / "index.html").is_file():
        sys.exit(f"error: {args.html}: no built book here (no index.html); build it with "
                 f"python -m lib.book")
    bad = 0
    with browser() as b:
        for page in pages(args.html):
            shot = args.screenshots / f"{page.stem}.png" if args.screenshots else None
            res = check_page(b, page, shot)
            problems = {k: v for k, v in res.items() if v and k not in ("maths", "typeset")}
            if res["typeset"] < res["maths"]:
                problems["formulas"] = f"{res['typeset']} of {res['maths']} typeset"
            bad += bool(problems)
            print(f"{page.relative_to(args.html)}: "
                  + (json.dumps(problems) if problems else "ok")
                  + (f" (screenshot {shot})" if shot else ""), flush=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
