"""Build the book: train what the chapters need, execute every chapter, render the HTML.

    python -m lib.book [--params params/default.yaml] [--only CHAPTER ...] [--no-html]

Runs live in ``runs/<profile>/<model>`` and are reused when finished with the same
configuration. Chapters are executed with papermill into ``_build/executed/`` (the source
notebooks in ``book/`` stay without outputs), then Jupyter Book renders
``_build/html/index.html`` from the executed copies without running them again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from . import zoo
from .browser import missing_figures
from .config import (
    REPO,
    ConfigError,
    bf16_enabled,
    cpu_has_bf16,
    cpu_model,
    is_builtin,
    load_params,
    make_config,
)
from .experiment import RESTART_STRIDE, params_path, profile_arg, profile_name, restart_seeds
from .pool import default_workers, elapsed, train_all
from .runs import FORCE_ENV, RunError
from .splits import DataError, exit_on_sigterm

CHAPTERS = ("data", "training", "results", "diagnosis", "best_hypothesis", "missing_joints",
            "latent_space", "mirror", "own_keypoints", "conclusions")
BUILD = REPO / "_build"


def execute(chapter: str, profile: str, out_dir: Path, **params) -> Path:
    """Run one chapter with papermill; a failing cell stops with notebook and cell named."""
    import papermill as pm

    src = REPO / "book" / f"{chapter}.ipynb"
    dst = out_dir / "book" / f"{chapter}.ipynb"
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(src, dst, parameters={"profile": profile, **params},
                            cwd=str(REPO / "book"), progress_bar=False, kernel_name="python3",
                            # the kernel's own start-up log (a warning that it talks to
                            # papermill over local TCP) kept out of the build log; what the
                            # notebook itself warns lands in its page and fails the build
                            extra_arguments=["--IPKernelApp.log_level=ERROR"])
    except pm.PapermillExecutionError as e:
        raise SystemExit(f"error: {src.name}, cell {e.exec_count}: {e.ename}: {e.evalue}\n"
                         f"(executed copy with the traceback: {dst})") from None
    return dst


def stderr_outputs(notebook: Path) -> list[str]:
    """What an executed chapter wrote to stderr (warnings, progress bars), one entry per
    output: a rendered page must show none of it."""
    nb = json.loads(Path(notebook).read_text())
    found = []
    for i, cell in enumerate(nb["cells"]):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = "".join(out["text"]) if isinstance(out["text"], list) else out["text"]
                found.append(f"{Path(notebook).name}, cell {i}: {text.strip()[:300]}")
    return found


def fold(nb: dict) -> dict:
    """Tag an executed notebook's cells for the page: the parameter cells (the notebook's and
    papermill's injected one) and cells that show nothing removed, the code of a cell that
    only writes prose removed, every other cell's code folded under a "show code" toggle;
    a cell tagged ``show-input`` in the source (short code that teaches) stays as it is."""
    for cell in nb["cells"]:
        if cell.get("cell_type") != "code":
            continue
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "show-input" in tags or {"remove-cell", "remove-input", "hide-input"} & set(tags):
            continue
        outs = cell.get("outputs", [])
        if {"parameters", "injected-parameters"} & set(tags) or not outs:
            tags.append("remove-cell")
        elif all(o.get("output_type") in ("display_data", "execute_result")
                 and set(o.get("data", {})) <= {"text/markdown", "text/plain"}
                 and "text/markdown" in o.get("data", {}) for o in outs):
            tags.append("remove-input")
        else:
            tags.append("hide-input")
    return nb


def finish(notebook: Path) -> None:
    """Check an executed chapter's figures and fold its code for the page (:func:`fold`);
    a cell that plots without a picture stops the build, naming it."""
    nb = json.loads(Path(notebook).read_text())
    missing = missing_figures(nb)
    if missing:
        sys.exit(f"error: {Path(notebook).name}: a cell that plots shows no figure (it "
                 f"would be missing from the page):\n" + "\n".join(missing))
    Path(notebook).write_text(json.dumps(fold(nb), indent=1, ensure_ascii=False) + "\n")


MATHJAX = "mathjax@3.2.2"  # typesets the formulas; served from the book itself (offline)


def vendor_mathjax(dest: Path) -> Path:
    """MathJax's browser bundle (``es5/``, without its 4 MB speech module) copied to
    ``dest``, from the npm registry's package, fetched once into ``_build/``."""
    import subprocess
    import tarfile

    cached = BUILD / MATHJAX.replace("@", "-")
    if not (cached / "tex-chtml.js").is_file():
        BUILD.mkdir(parents=True, exist_ok=True)
        try:
            out = subprocess.run(["npm", "pack", MATHJAX, "--pack-destination", str(BUILD)],
                                 capture_output=True, text=True, check=True, timeout=300)
        except (OSError, subprocess.SubprocessError) as e:
            raise SystemExit(f"error: could not fetch {MATHJAX} with npm ({e}); the book serves "
                             f"MathJax itself so that formulas render offline: install Node.js "
                             f"(npm) and build again") from None
        tgz = BUILD / out.stdout.strip().splitlines()[-1]
        tmp = cached.with_name(cached.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        with tarfile.open(tgz) as tar:
            members = [m for m in tar.getmembers() if m.name.startswith("package/es5/")
                       and not m.name.startswith("package/es5/sre")]
            tar.extractall(tmp, members=members, filter="data")
        shutil.rmtree(cached, ignore_errors=True)
        (tmp / "package" / "es5").rename(cached)
        shutil.rmtree(tmp, ignore_errors=True)
        tgz.unlink()
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(cached, dest)
    return dest


def stage(out_dir: Path) -> None:
    """Copy the book's static files beside the executed notebooks, and MathJax into
    ``_vendor/`` (published as ``_static/mathjax/``, see _config.yml; not ``_static/``,
    whose every .js Jupyter Book would load into each page)."""
    shutil.rmtree(out_dir / "_static", ignore_errors=True)
    vendor_mathjax(out_dir / "_vendor" / "mathjax")
    shutil.copy(REPO / "book" / "tables.css", out_dir / "_vendor" / "tables.css")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / name, out_dir / name)
    for f in (REPO / "book").iterdir():
        if f.suffix in (".md", ".bib", ".png", ".svg") and f.is_file():
            shutil.copy(f, out_dir / "book" / f.name)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m lib.book", description=__doc__.split("\n")[0])
    p.add_argument("--params", default="params/default.yaml", help="profile file")
    p.add_argument("--only", nargs="*", choices=CHAPTERS, help="execute only these chapters")
    p.add_argument("--no-html", action="store_true", help="execute, but skip the HTML build")
    p.add_argument("--screenshots", metavar="DIR",
                   help="after the build, save a screenshot of every page to DIR (Chromium)")
    p.add_argument("--workers", type=int, default=None,
                   help="trainings side by side (default: 2 on a CPU of 2 or more cores, 1 on "
                        "a GPU)")
    p.add_argument("--seeds", type=int, default=3,
                   help="seeds per model in the results chapter's seed study (default 3)")
    p.add_argument("--force", action="store_true",
                   help="replace finished runs in the way (another parameter file's, or of "
                        "another configuration): default refuse")
    args = p.parse_args(argv)
    exit_on_sigterm()
    if not 1 <= args.seeds <= RESTART_STRIDE:
        sys.exit(f"error: --seeds must lie in 1..{RESTART_STRIDE} (restarts are the seeds "
                 f"above), got {args.seeds}")
    if args.workers is not None and args.workers < 1:
        sys.exit(f"error: --workers must be at least 1, got {args.workers}")
    args.workers = args.workers or default_workers()
    try:
        make_config(load_params(params_path(args.params)))  # a bad profile stops here
        args.params = profile_arg(args.params)
        if args.force:  # for the worker processes and the chapters too
            os.environ[FORCE_ENV] = "1"
        if not is_builtin(params_path(args.params), REPO / "params"):
            print(f"[book {profile_name(args.params)}] {args.params}: not a profile of params/, "
                  f"so its runs are filed under runs/{profile_name(args.params)}/", flush=True)
        build(args)
    except (FileNotFoundError, ConfigError, DataError, RunError) as e:
        sys.exit(f"error: {e}")


def build(args) -> None:
    """Train what the chapters need, execute them, build the HTML (``main``'s work)."""
    profile = args.params
    name = profile_name(profile)
    t0 = time.time()
    staged = BUILD / "executed"
    staged.mkdir(parents=True, exist_ok=True)
    timings = {}
    # train up front (chapters then only read), so no progress bar lands in a page; with
    # --only, each chapter trains just what it needs when it runs
    jobs = [] if args.only else [
        (m, r) for m, n in zoo.seed_plan(args.seeds).items() if not zoo.get(m).evaluates
        for s in range(n) for r in restart_seeds(profile, m, s)]
    timings.update(train_all(profile, jobs, args.workers, t0))
    chapters = args.only or CHAPTERS
    for k, chapter in enumerate(chapters):
        t = time.perf_counter()
        print(f"[book {name}] chapter {k + 1} of {len(chapters)}: {chapter}; {elapsed(t0)}",
              flush=True)
        done = execute(chapter, profile, staged,
                       **({"seeds": args.seeds} if chapter == "results" else {}))
        timings[chapter] = round(time.perf_counter() - t, 1)
        noise = stderr_outputs(done)
        if noise:
            sys.exit("error: a chapter wrote to stderr (it would show in the page):\n"
                     + "\n".join(noise))
        finish(done)
    if not args.no_html:
        stage(staged)
        from subprocess import run

        exe = Path(sys.executable).parent / "jupyter-book"
        cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(staged),
               "--path-output", str(REPO), "--keep-going"]
        if run(cmd).returncode != 0:
            raise SystemExit("error: jupyter-book build failed (see the messages above)")
        dedupe_inline_scripts(BUILD / "html")
        print(f"book: {BUILD / 'html' / 'index.html'}")
        if args.screenshots:
            from .browser import screenshots

            for shot in screenshots(BUILD / "html", Path(args.screenshots)):
                print(f"screenshot: {shot}")
    timings["total"] = round(time.time() - t0, 1)
    timings["minutes"] = round(timings["total"] / 60, 1)
    timings["host"] = host(load_params(params_path(profile)).get("bf16", "auto"))
    print(f"[book {name}] built in {timings['minutes']} min on {timings['host']['cpu']} "
          f"({timings['host']['cores']} cores, bfloat16 {timings['host']['bf16']}; trained in "
          f"{timings['host']['trains_in']} on the CPU)", flush=True)
    suffix = "-partial" if args.only else ""  # keep the full build's timings
    (BUILD / f"timings-{name}{suffix}.json").write_text(json.dumps(timings, indent=1))
    print(json.dumps(timings))


def host(bf16="auto") -> dict:
    """The machine a build was timed on: CPU model, cores this process may use, whether
    ``bf16: auto`` trains in bfloat16 here (the CPU computes it natively), and what the
    profile's ``bf16`` setting trained in on this CPU."""
    import torch

    return {"cpu": cpu_model(), "cores": len(os.sched_getaffinity(0)),
            "bf16": "native" if cpu_has_bf16() else "not native (float32)",
            "trains_in": "bfloat16" if bf16_enabled(bf16, torch.device("cpu")) else "float32"}


def dedupe_inline_scripts(html: Path) -> int:
    """Drop a repeated inline ``<script>`` from every page. Under Jupyter Book 1.x,
    sphinx-thebe adds its configuration twice, and the second ``const THEBE_JS_URL`` is a
    console error on every page. Returns the number of scripts removed."""
    import re

    removed = 0
    for page in html.rglob("*.html"):
        text = page.read_text()
        parts = re.split(r"(<script>[^<]+</script>)", text)  # odd indices: inline scripts
        seen, kept = set(), []
        for i, part in enumerate(parts):
            if i % 2 and part in seen:
                removed += 1
                continue
            seen.add(part)
            kept.append(part)
        if len(kept) < len(parts):
            page.write_text("".join(kept))
    return removed


if __name__ == "__main__":
    main()
