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
import re
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
          broken_images: broken, cut_tables: cut,
          figures: document.querySelectorAll('article div.cell_output img').length,
          height: document.documentElement.scrollHeight,
          first_table_fits: (() => {
            const t = document.querySelector('article div.cell_output table');
            return t ? t.offsetWidth <= t.closest('div.cell_output').clientWidth + 1 : null;
          })(),
          text: document.querySelector('article').innerText};
}"""


# what a reader should never read on a page: a negative zero, a machine's absolute path, a
# split by its key instead of its name (lib.report.SPLIT_NAMES)
_TEXT = {"a negative zero": re.compile(r"(?<![\w.])-0(?:\.0+)?(?![\d.])"),
         "an absolute path": re.compile(r"(?<![\w~.])/(?:tmp|home|work|root|usr|var|Users)/\S+"),
         "a split's key": re.compile(r"\btest_unseen_\w+|\btest_split\b")}


def text_problems(text: str) -> list[str]:
    """What a page's visible text should not hold (:data:`_TEXT`), each with its context."""
    found = []
    for what, pattern in _TEXT.items():
        for m in pattern.finditer(text):
            found.append(f"{what}: ...{text[max(0, m.start() - 40):m.end() + 20]!s}...")
    return found


# a cell that calls one of these means to draw a figure (lib.plots' helpers draw on axes)
PLOTTING = re.compile(r"\b(?:plt\.(?:subplots|figure|plot|imshow|hist|scatter|bar)"
                      r"|\.add_subplot|\.imshow|skeleton_[23]d|overlay_3d|curves"
                      r"|histogram_over_epochs|headline_figure|animate_3d)\s*\(")
IMAGES = ("image/png", "image/svg+xml", "image/jpeg", "image/gif")


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def draws(cell: dict) -> bool:
    """Whether a code cell calls a plotting function (comments aside)."""
    code = "\n".join(line.split("#", 1)[0] for line in _source(cell).splitlines())
    return cell.get("cell_type") == "code" and bool(PLOTTING.search(code))


def images(cell: dict) -> int:
    """The pictures among a cell's outputs."""
    return sum(any(k in out.get("data", {}) for k in IMAGES) for out in cell.get("outputs", []))


def missing_figures(nb: dict) -> list[str]:
    """The cells of an executed notebook that call a plotting function and show no picture
    (a figure that never reached the page), each as "cell k: its first line"."""
    return [f"cell {i}: {_source(c).strip().splitlines()[0][:80]}"
            for i, c in enumerate(nb["cells"]) if draws(c) and not images(c)]


def figures(nb: dict) -> int:
    """The pictures a page made from the executed notebook ``nb`` shows (cells removed
    from the page aside)."""
    return sum(images(c) for c in nb["cells"]
               if "remove-cell" not in c.get("metadata", {}).get("tags", [])
               and "remove-output" not in c.get("metadata", {}).get("tags", []))


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


def check_page(b, page: Path, screenshot: Path | None = None, width: int = WIDTH) -> dict:
    """Load ``page`` offline at a ``width``-px window; returns ``{"maths", "typeset",
    "broken_images", "cut_tables", "console_errors", "figures" (pictures in cell outputs),
    "height" (px), "text" (what the article shows), "text_problems"}`` (and saves a
    full-page screenshot)."""
    ctx = b.new_context(viewport={"width": width, "height": 900})
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
    found["text_problems"] = text_problems(found["text"])
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(screenshot), full_page=True)
    ctx.close()
    return found


def expected_figures(page: Path) -> int | None:
    """The pictures the executed notebook of a built page holds (``_build/executed/`` beside
    ``_build/html/``), or None for a page made from Markdown."""
    nb = Path(page).parents[2] / "executed" / "book" / f"{Path(page).stem}.ipynb"
    return figures(json.loads(nb.read_text())) if nb.is_file() else None


def pages(html: Path) -> list[Path]:
    """The chapter pages (index.html only redirects to the first)."""
    return sorted((Path(html) / "book").glob("*.html"))


def screenshots(html: Path, out: Path, width: int = WIDTH) -> list[Path]:
    """A full-page screenshot of every page at a reader's ``width``-px window (1280), for a
    person to look at the figures and tables; returns the files."""
    shots = []
    with browser() as b:
        for page in pages(html):
            shot = (Path(out) / f"{page.stem}.png").resolve()
            check_page(b, page, shot, width)
            shots.append(shot)
    return shots


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m lib.browser", description=__doc__.split("\n")[0])
    p.add_argument("html", type=Path, help="the built book (_build/html)")
    p.add_argument("--screenshots", type=Path, metavar="DIR",
                   help="save a full-page screenshot of every page to DIR")
    p.add_argument("--width", type=int, default=WIDTH,
                   help=f"the window's width in px (default {WIDTH}; 390 for a phone)")
    args = p.parse_args(argv)
    if not (args.html / "index.html").is_file():
        sys.exit(f"error: {args.html}: no built book here (no index.html); build it with "
                 f"python -m lib.book")
    bad = 0
    with browser() as b:
        for page in pages(args.html):
            shot = args.screenshots / f"{page.stem}.png" if args.screenshots else None
            res = check_page(b, page, shot, args.width)
            problems = {k: v for k, v in res.items()
                        if v and k not in ("maths", "typeset", "figures", "height", "text",
                                          "first_table_fits")}
            if res["typeset"] < res["maths"]:
                problems["formulas"] = f"{res['typeset']} of {res['maths']} typeset"
            want = expected_figures(page)
            if want is not None and res["figures"] < want:
                problems["figures"] = f"{res['figures']} of the notebook's {want} shown"
            bad += bool(problems)
            print(f"{page.relative_to(args.html)}: {res['height']} px tall, "
                  f"{res['figures']} figures: "
                  + (json.dumps(problems) if problems else "ok")
                  + (f" (screenshot {shot})" if shot else ""), flush=True)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
