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
import shutil
import sys
import time
from pathlib import Path

from .data import REPO
from .train import RUNTIME_KEYS, Trainer, is_finished, load_params, make_config

# The models every chapter draws on: name -> parameter overrides on top of the profile.
MODELS = {
    "vae_gan": {},  # the thesis's method
    "vae": {"mode": "vae"},  # without the discriminator
    "det_gan": {"mode": "det_gan"},  # deterministic lifter + discriminator
    "supervised": {"mode": "supervised"},  # Martinez et al. style, 3D supervision
    "vae_gan_pmiss": {"p_miss": 0.5},  # trained with missing joints
    "vae_gan_mirror": {"lambda_hinge": 1.0},  # ours, mirror-aware (knee-hinge prior)
}
LABELS = {
    "vae_gan": "VAE-GAN (thesis)",
    "vae": "VAE, no discriminator",
    "det_gan": "Deterministic lifter + discriminator",
    "supervised": "Supervised lifter (3D labels)",
    "vae_gan_pmiss": "VAE-GAN trained with missing joints",
    "vae_gan_mirror": "VAE-GAN + knee-hinge prior (ours, mirror-aware)",
}
CHAPTERS = ("data", "training", "results", "best_hypothesis", "missing_joints",
            "latent_space", "mirror", "conclusions")
BUILD = REPO / "_build"


def params_path(profile: str) -> Path:
    path = REPO / "params" / f"{profile}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (REPO / "params").glob("*.yaml"))
        raise FileNotFoundError(f"{path}: no such profile; known profiles: {known}")
    return path


def run_dir(profile: str, model: str) -> Path:
    return REPO / "runs" / profile / model


def model_config(profile: str, model: str, **overrides) -> dict:
    """The full training configuration of ``model`` under ``profile``."""
    if model not in MODELS:
        raise KeyError(f"unknown model {model!r}; known: {sorted(MODELS)}")
    return make_config(load_params(params_path(profile)), {**MODELS[model], **overrides})


def ensure_run(profile: str, model: str, **overrides) -> Path:
    """Train ``model`` under ``profile`` unless a finished run with that configuration
    exists; an interrupted run resumes from its last checkpoint. Returns the run folder."""
    cfg = model_config(profile, model, **overrides)
    out = run_dir(profile, model)
    if is_finished(out, cfg):
        return out
    resume = (out / "checkpoint.pt").is_file() and _same_config(out, cfg)
    Trainer(cfg, out).fit(resume=resume)
    return out


def _same_config(out: Path, cfg: dict) -> bool:
    """True if the run folder's saved configuration matches ``cfg`` up to runtime keys."""
    import yaml

    saved = out / "config.yaml"
    if not saved.is_file():
        return False
    old = yaml.safe_load(saved.read_text())
    return {k: v for k, v in old.items() if k not in RUNTIME_KEYS} == {
        k: v for k, v in cfg.items() if k not in RUNTIME_KEYS}


TEST_SPLITS = ("test_unseen_styles", "test_unseen_motions")


def evaluations(profile: str, models=tuple(MODELS), splits=TEST_SPLITS) -> dict:
    """{(model, split): lib.evaluate result} for single-hypothesis metrics, cached in each
    run folder as ``eval-<split>.json`` and recomputed when the checkpoint is newer."""
    from .evaluate import evaluate_run

    out = {}
    for model in models:
        run = ensure_run(profile, model)
        for split in splits:
            path = run / f"eval-{split}.json"
            if path.is_file() and path.stat().st_mtime >= (run / "checkpoint.pt").stat().st_mtime:
                res = json.loads(path.read_text())
            else:
                res = evaluate_run(run, split, ks=(), missing=())
                path.write_text(json.dumps(res))
            out[model, split] = res
    return out


METRICS = {"pa_mpjpe": "PA-MPJPE", "pa_mpjpe_reflect": "PA-MPJPE refl.", "n_mpjpe": "N-MPJPE",
           "pck150": "PCK@150", "auc": "AUC", "mirrored_rate": "mirrored %"}


def table(rows: dict, metrics=METRICS, splits=TEST_SPLITS, digits: int = 1):
    """DataFrame of ``{row label: {split: result dict}}``: one column per (split, metric)."""
    import pandas as pd

    data = {label: {(split, name): res[split].get(key) for split in splits if split in res
                    for key, name in metrics.items()} for label, res in rows.items()}
    return pd.DataFrame.from_dict(data, orient="index").round(digits)


def execute(chapter: str, profile: str, out_dir: Path) -> Path:
    """Run one chapter with papermill; a failing cell stops with notebook and cell named."""
    import papermill as pm

    src = REPO / "book" / f"{chapter}.ipynb"
    dst = out_dir / "book" / f"{chapter}.ipynb"
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        pm.execute_notebook(src, dst, parameters={"profile": profile}, cwd=str(REPO / "book"),
                            progress_bar=False, kernel_name="python3")
    except pm.PapermillExecutionError as e:
        raise SystemExit(f"error: {src.name}, cell {e.exec_count}: {e.ename}: {e.evalue}\n"
                         f"(executed copy with the traceback: {dst})") from None
    return dst


def stage(out_dir: Path) -> None:
    """Copy the book's static files beside the executed notebooks."""
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
    args = p.parse_args(argv)
    profile = Path(args.params).stem
    params_path(profile)
    t0 = time.perf_counter()
    staged = BUILD / "executed"
    staged.mkdir(parents=True, exist_ok=True)
    timings = {}
    print(f"training the models of profile '{profile}' (reusing finished runs)", flush=True)
    for model in MODELS:
        t = time.perf_counter()
        ensure_run(profile, model)
        timings[f"train {model}"] = round(time.perf_counter() - t, 1)
    for chapter in args.only or CHAPTERS:
        t = time.perf_counter()
        print(f"executing {chapter}.ipynb", flush=True)
        execute(chapter, profile, staged)
        timings[chapter] = round(time.perf_counter() - t, 1)
    if not args.no_html:
        stage(staged)
        from subprocess import run

        exe = Path(sys.executable).parent / "jupyter-book"
        cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(staged),
               "--path-output", str(REPO), "--keep-going"]
        if run(cmd).returncode != 0:
            raise SystemExit("error: jupyter-book build failed (see the messages above)")
        print(f"book: {BUILD / 'html' / 'index.html'}")
    timings["total"] = round(time.perf_counter() - t0, 1)
    suffix = "-partial" if args.only else ""  # keep the full build's timings
    (BUILD / f"timings-{profile}{suffix}.json").write_text(json.dumps(timings, indent=1))
    print(json.dumps(timings))


if __name__ == "__main__":
    main()
