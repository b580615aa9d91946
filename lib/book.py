"""Build the book: train what the chapters need, execute every chapter, render the HTML.

    python -m lib.book [--params params/default.yaml] [--only CHAPTER ...] [--no-html]

Runs live in ``runs/<profile>/<model>`` and are reused when finished with the same
configuration. Chapters are executed with papermill into ``_build/executed/`` (the source
notebooks in ``book/`` stay without outputs), then Jupyter Book renders
``_build/html/index.html`` from the executed copies without running them again.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from . import config
from . import data as D
from .config import DEFAULTS, ConfigError, load_params, make_config
from .data import REPO
from .runs import FORCE_ENV, Run, RunError, choose_restarts, forced
from .train import Trainer

# "Ours": a deterministic lifter that predicts depth only (x, y come from the input, so it
# reprojects exactly), judged by the discriminator on random novel views, made consistent
# across views by lifting each novel view again (Chen et al. 2019), with an EMA of its
# weights and a cosine learning-rate decay; the EMA weights of the last epoch are the model
# (no 3D ground truth chooses an epoch, a seed or a setting). Knees bend forwards: a hinge
# prior in training keeps every pose's depth sign anatomical (the losses cannot tell a pose
# from its depth mirror), and after training the sign whose knees bend forwards on training
# 2D poses is kept (lib.runs.Run.orient). The discriminator sees its instance noise on the
# novel views as on the real poses, so that the noise itself is no tell. Half of every
# training batch is the same mocap re-played on a body of random proportions (wider hips
# and shoulders, longer or shorter limbs: lib.bodies.RANDOM_RANGES), so that a body's width
# in 2D is no cue to its orientation (issue 11); the lifter still sees 2D only. (BNMD-17
# only, whose cameras re-project the new bodies: on Human3.6M ours trains without it.)
# Each prediction is the mean of the lift and the mirrored lift of the mirrored input
# (flip_test, lib.models.lift_all): a test-time average that needs no training.
# Novel views turn about the world's vertical, estimated from each batch's lifted poses
# (lib.geometry.up_direction), not about the camera's y axis, which the rig's cameras tilt
# by 7.6 degrees: so a view from behind is seen from the camera's elevation, not from below.
# For the first two epochs they turn about the camera's y axis (up_warmup): the lifted world
# starts upright, where a world that tilted away from the camera in its first epoch failed.
# The GAN's lifts swing between epochs (a seed's last epoch could land in a bad phase), so
# the averaged weights of the last 6 epochs are kept and the 2D-only realism test chooses
# among them (select_epochs, lib.runs.Run.select; critic seed 1, the book reports seed 0).
# A whole seed can settle in a bad phase too (its lifted world tilted, the discriminator
# ahead, its lifts barely deeper than flat), and good seeds still differ by several mm: so
# ours is trained three times per seed, from seeds s, s + 100 and s + 200, and predicts with
# the mean of the trainings whose lifts of training 2D poses agree (closer to each other
# than to the flat lift; restarts, lib.runs.choose_restarts); nothing 3D chooses. A training
# that agrees with no other is replaced: a spare restart (seed s + 300, then s + 400) is
# trained and the choice made again among all, until three agree or the two spares are
# spent (spare_restarts), so that each seed's model averages as many trainings as it can.
OURS = {"mode": "det_gan", "depth_only": True, "lambda_cycle": 0.01, "ema": 0.999,
        "lr_schedule": "cosine", "orient": True, "lambda_hinge": 1.0, "noise_on": "both",
        "body_augment": 0.5, "flip_test": True, "view_axis": "up", "up_warmup": 2,
        "select_epochs": 6, "restarts": 3, "spare_restarts": 2}
OURS_ONE = {**OURS, "restarts": 1}  # one training per seed: the ablation starts from it
OURS_NOWARM = {**OURS_ONE, "up_warmup": 0}  # the ours before the upright start
OURS_CAMERA = {**OURS_NOWARM, "view_axis": "camera"}  # the ours before the world vertical
OURS_LAST_EPOCH = {**OURS_NOWARM, "select_epochs": 0}  # the ours the last levers were tried on
# The models every chapter draws on: name -> parameter overrides on top of the profile.
MODELS = {
    "vae_gan": {},  # the thesis's method
    "vae": {"mode": "vae"},  # without the discriminator
    "det_gan": {"mode": "det_gan"},  # deterministic lifter + discriminator
    "supervised": {"mode": "supervised"},  # Martinez et al. style, 3D supervision
    "vae_gan_pmiss": {"p_miss": 0.5},  # trained with missing joints
    "vae_gan_mirror": {"lambda_hinge": 1.0},  # mirror-aware (knee-hinge prior)
    "ours": OURS,  # the unsupervised lifter that works (issue 12), see OURS
    # its ablation, one lever at a time: its own runs without the choice among restarts
    # (each seed's first training), then with that training's last epoch's weights instead
    # of the 2D test's choice, and ours without the test-time flip; trained with novel views
    # about the camera's vertical, then without the other bodies either, then without the
    # noise on novel views either, then without the knee-hinge prior either (the first
    # version of ours, with the selection of an epoch)
    "ours_one": OURS_ONE,  # the same runs as ours, see VARIANTS
    "ours_last": {**OURS_ONE, "use_selection": False},  # the same runs as ours, see VARIANTS
    "ours_noflip": {**OURS, "flip_test": False},  # the same runs as ours, see VARIANTS
    "ours_nowarm": OURS_NOWARM,
    "ours_camera": OURS_CAMERA,
    "ours_noise": {**OURS_CAMERA, "body_augment": 0.0},
    "ours_hinge": {**OURS_CAMERA, "body_augment": 0.0, "noise_on": "real"},
    "ours_base": {**OURS_CAMERA, "body_augment": 0.0, "noise_on": "real", "lambda_hinge": 0.0},
}
# Levers tried and not kept, because the 2D-only realism test (lib.study) did not score them
# better than the ours they were added to (by more than its critic-seed noise): the
# left/right bone-length symmetry prior (lib.priors.symmetry_loss) at two weights, on top of
# the ours of the time (novel views about the camera's vertical), over seeds 0 and 1; then,
# on ours before it chose an epoch (OURS_LAST_EPOCH, whose runs ours_last evaluates), the
# downward-tilt prior (lib.priors.downward_tilt_loss) over seeds 0 to 2, a running vertical
# (up_momentum 0.99: the views' axis averaged over steps instead of each batch's) over seeds
# 0 and 1, whose lifted worlds both settled tilted away from the camera (as if seen from
# below), the vertical's tilt held in 0-30 degrees over seeds 0 to 2, and twice the instance
# noise over seed 0 (method chapter); then, on ours (one training per seed, before the
# choice among restarts), the R1 gradient penalty of the
# discriminator (lambda_r1 0.001) over seeds 0 and 1, whose lifted worlds both settled
# leaning away from the camera (realism-test critic accuracy 95 and 94%). Not part of the
# book; a study trains them:
#     python -m lib.study --params default --models ours_camera ours_sym0.1 ours_sym1 --seeds 2
#     python -m lib.study --params default --models ours_last ours_tilt ours_upema ours_clamp \
#         ours_noise2 --seeds 3
#     python -m lib.study --params default --models ours_one ours_r1 --seeds 2
TRIED = {
    "ours_sym0.1": {**OURS_CAMERA, "lambda_sym": 0.1},
    "ours_sym1": {**OURS_CAMERA, "lambda_sym": 1.0},
    "ours_tilt": {**OURS_LAST_EPOCH, "lambda_tilt": 1.0},
    "ours_upema": {**OURS_LAST_EPOCH, "up_momentum": 0.99},
    "ours_noise2": {**OURS_LAST_EPOCH, "real_noise": 0.01},
    "ours_clamp": {**OURS_LAST_EPOCH, "up_tilt_range": [0.0, 30.0]},
    "ours_r1": {**OURS_NOWARM, "lambda_r1": 1e-3},
}
KNOWN = {**MODELS, **TRIED}  # what model_config and the studies accept
LABELS = {
    "vae_gan": "VAE-GAN (thesis)",
    "vae": "VAE, no discriminator",
    "det_gan": "Deterministic lifter + discriminator",
    "supervised": "Supervised lifter (3D labels)",
    "vae_gan_pmiss": "VAE-GAN trained with missing joints",
    "vae_gan_mirror": "VAE-GAN + knee-hinge prior (mirror-aware)",
    "ours": "Ours (depth lifter + cycle + knee hinge + noise on both + other bodies + "
            "world vertical + 2D-test epoch + test-time flip + agreeing restarts averaged, with "
            "spares)",
    "ours_one": "Ours from one training per seed (no restarts averaged)",
    "ours_last": "Ours from one training, its last epoch's weights (no 2D-test choice)",
    "ours_noflip": "Ours without the test-time flip",
    "ours_nowarm": "Ours from one training, without the upright start (world vertical from "
                   "the first epoch)",
    "ours_camera": "Ours without the world vertical (views about the camera's)",
    "ours_noise": "Ours without the world vertical or other bodies",
    "ours_hinge": "Ours without the world vertical, other bodies or noise on novel views",
    "ours_base": "Ours without the world vertical, other bodies, noise on novel views or "
                 "knee hinge",
    "ours_sym0.1": "Ours without the world vertical + bone-symmetry prior (weight 0.1)",
    "ours_sym1": "Ours without the world vertical + bone-symmetry prior (weight 1)",
    "ours_tilt": "Ours + downward-tilt prior",
    "ours_upema": "Ours + running vertical (momentum 0.99)",
    "ours_noise2": "Ours with twice the instance noise (0.01)",
    "ours_clamp": "Ours with the vertical's tilt held in 0-30 degrees",
    "ours_r1": "Ours + R1 gradient penalty of the discriminator (weight 0.001)",
}
# compared over seeds in the results chapter; the ablation of ours over fewer seeds (the
# default build's time budget), compared with ours on the same seeds (lib.report.ablation)
SEED_MODELS = ("ours", "vae_gan", "supervised")
ABLATION = ("ours_one", "ours_last", "ours_noflip", "ours_nowarm", "ours_camera", "ours_noise",
            "ours_hinge", "ours_base")
# models that are another model's runs evaluated otherwise (a runtime key): no training
VARIANTS = {"ours_one": "ours", "ours_last": "ours", "ours_noflip": "ours"}
RESTART_STRIDE = 100  # restart k of seed s is the run of seed s + 100 k (lib.config restarts)
# variants whose 2D-only checks (knees, realism test) are their own, not their model's: ours'
# first trainings (another run folder than the chosen one, scored with its own chosen weights)
CHECKED_VARIANTS = ("ours_one",)
# the most seeds each trained ablation row gets: one each (the table says so), to keep the
# default build within its hour (two seeds of the two newest levers made it 65 min)
ABLATION_SEEDS = {m: 1 for m in ABLATION if m not in VARIANTS}


def seed_plan(seeds: int) -> dict[str, int]:
    """How many seeds each model of the results chapter's study has, when the seed models
    get ``seeds``: the trained ablation at most :data:`ABLATION_SEEDS`, a variant those of
    the model it evaluates, the rest 1."""
    plan = {m: 1 for m in MODELS}
    plan.update({m: seeds for m in SEED_MODELS})
    plan.update({m: min(seeds, ABLATION_SEEDS[m]) for m in ABLATION if m not in VARIANTS})
    plan.update({m: plan[base] for m, base in VARIANTS.items()})
    return plan


CHAPTERS = ("data", "training", "results", "diagnosis", "best_hypothesis", "missing_joints",
            "latent_space", "mirror", "own_keypoints", "conclusions")
BUILD = REPO / "_build"


def params_path(profile: str) -> Path:
    """The parameter file of a profile: a name (``params/<name>.yaml``) or a path to a
    ``.yaml`` file anywhere, taken as given."""
    if profile.endswith((".yaml", ".yml")) or "/" in profile:
        path = Path(profile).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such parameter file")
        return path
    path = REPO / "params" / f"{profile}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (REPO / "params").glob("*.yaml"))
        raise FileNotFoundError(f"{path}: no such profile; known profiles: {known}")
    return path


def profile_arg(profile: str) -> str:
    """How the chapters are told the profile: its name when it is ``params/<name>.yaml``,
    else the file's absolute path (the chapters run in ``book/``, where a path relative to
    the caller's directory would not be found)."""
    path = params_path(profile).resolve()
    return path.stem if path == (REPO / "params" / f"{path.stem}.yaml").resolve() else str(path)


def profile_name(profile: str) -> str:
    """The name runs and results of a profile are filed under: a built-in profile's name,
    else the file's stem and a short hash of its path (:func:`lib.config.profile_name`)."""
    return config.profile_name(params_path(profile), REPO / "params")


def params_source(profile: str) -> str:
    """The profile's parameter file as its runs record it (:func:`lib.config.profile_source`)."""
    return config.profile_source(params_path(profile), REPO / "params")


def run_dir(profile: str, model: str, seed: int = 0) -> Path:
    """``runs/<profile>/<model>`` for seed 0 (the book's run), ``<model>-seed<k>`` else."""
    model = VARIANTS.get(model, model)  # a variant evaluates its model's runs
    name = model if seed == 0 else f"{model}-seed{seed}"
    return REPO / "runs" / profile_name(profile) / name


def model_config(profile: str, model: str, seed: int = 0, **overrides) -> dict:
    """The full training configuration of ``model`` under ``profile`` with this seed."""
    if model not in KNOWN:
        raise KeyError(f"unknown model {model!r}; known: {sorted(KNOWN)}")
    params = load_params(params_path(profile))
    seeded = {"seed": params.get("seed", 0) + seed} if seed else {}
    model_keys = dict(KNOWN[model])
    if params.get("dataset", DEFAULTS["dataset"]) != "bnmd17":  # other bodies: BNMD-17's rig
        model_keys.pop("body_augment", None)
    return make_config(params, {**model_keys, **seeded, **overrides})


def ensure_run(profile: str, model: str, seed: int = 0, **overrides) -> Path:
    """The run folder that is ``model`` under ``profile`` with this seed, trained first
    unless finished (an interrupted run resumes from its last checkpoint). A variant is its
    model's runs, trained as that model. A model with ``restarts`` > 1 trains each restart
    (:func:`restart_seeds`) and is what :func:`lib.runs.choose_restarts` makes of them from
    2D alone: one restart, or the folder :func:`kept_dir` that averages several. While fewer
    than ``restarts`` of them agree, it trains a spare restart (at most ``spare_restarts``)
    and chooses again among them all. The record is written to the first restart's
    ``restarts.json`` (which ``lib.lift`` follows) and reused while it is newer than every
    restart's weights."""
    base = VARIANTS.get(model, model)
    cfg = model_config(profile, model, seed, **overrides)
    seeds = restart_seeds(profile, model, seed)
    while True:
        folders = [ensure_trained(model_config(profile, base, s, **overrides),
                                  run_dir(profile, base, s), profile) for s in seeds]
        if len(folders) == 1:
            return folders[0]
        first = Run(folders[0])
        record = first.restart_record_current(folders)
        if record is None:
            record = choose_restarts(folders, D.load(model_config(profile, base, seed),
                                                     "train"))
            first.restarts_path.unlink(missing_ok=True)  # written anew below: fresh again
        if (len(record["members"]) >= cfg["restarts"]
                or len(seeds) >= cfg["restarts"] + cfg["spare_restarts"]):
            break
        seeds.append(seed + RESTART_STRIDE * len(seeds))  # a spare: train it, choose again
    members = [first.path.parent / m for m in record["members"]]
    kept = kept_dir(profile, model, seed)
    if len(members) > 1:
        Run(kept).set_members(members)
    elif kept.is_dir():  # an average of an earlier choice: nothing reads it any more
        shutil.rmtree(kept)
    chosen = members[0] if len(members) == 1 else kept
    spares = len(seeds) - cfg["restarts"] if cfg["spare_restarts"] else None
    first.record_restarts({**record, "chosen": chosen.name,
                           **({"spares": spares} if spares is not None else {})})
    return chosen


def kept_dir(profile: str, model: str, seed: int = 0) -> Path:
    """The folder of a model whose restarts it averages: ``<run_dir>-kept``."""
    path = run_dir(profile, model, seed)
    return path.with_name(path.name + "-kept")


def restart_seeds(profile: str, model: str, seed: int = 0) -> list[int]:
    """The seeds of the trainings that make ``model``'s seed ``seed``: ``seed`` itself, then
    ``seed + RESTART_STRIDE * k`` for each further restart, and for each spare restart that
    :func:`ensure_run` trained and recorded (the record names its runs)."""
    cfg = model_config(profile, model, seed)
    n = cfg["restarts"]
    if n > 1 and cfg["spare_restarts"]:
        record = Run(run_dir(profile, model, seed)).restart_record() or {}
        names = [run_dir(profile, model, seed + RESTART_STRIDE * k).name
                 for k in range(n + cfg["spare_restarts"])]
        runs = record.get("runs", [])
        if names[:len(runs)] == runs:
            n = max(n, len(runs))
    return [seed + RESTART_STRIDE * k for k in range(n)]


def restart_of(seed: int) -> tuple[int, int]:
    """(the model's seed, the restart's index from 0) of a training's seed."""
    return seed % RESTART_STRIDE, seed // RESTART_STRIDE


def restart_choice(profile: str, model: str, seed: int = 0) -> dict | None:
    """What :func:`ensure_run` made of ``model``'s restarts for this seed, as recorded
    (:meth:`lib.runs.Run.restart_record`), or None for one training."""
    if len(restart_seeds(profile, model, seed)) < 2:
        return None
    return Run(run_dir(profile, model, seed)).restart_record()


def ensure_trained(cfg: dict, folder: Path, profile: str | None = None,
                   force: bool | None = None) -> Path:
    """A finished run of ``cfg`` in ``folder``: reused, resumed, or trained, and recorded as
    made by ``profile``'s parameter file. A run in the way (made by another parameter file,
    or finished with another configuration: :meth:`lib.runs.Run.in_the_way`) is a
    :class:`RunError` unless ``force`` (by default: ``--force`` was given); an interrupted
    run of the same file is replaced without it."""
    run = Run(folder)
    if run.finished(cfg):
        if cfg["orient"] and not run.oriented():  # finished before it was asked for
            run.orient(D.load(cfg, "train"))
        return run.path
    source = params_source(profile) if profile else None
    if not (forced() if force is None else force) and (why := run.in_the_way(cfg, source)):
        raise RunError(why)
    trained = run.epochs_done() or 0  # a finished run resumes for more epochs, never fewer
    resume = run.checkpoint.is_file() and run.matches(cfg) and trained <= cfg["epochs"]
    trainer = Trainer(cfg, run.path)
    if source:
        run.record_made_by(source)
    trainer.fit(resume=resume, force=True)
    return run.path


def test_splits(profile: str) -> tuple[str, ...]:
    """The test splits of the profile's dataset (BNMD-17's two, or Human3.6M's one)."""
    return D.test_splits(make_config(load_params(params_path(profile))))


def evaluations(profile: str, models=tuple(MODELS), splits=None) -> dict:
    """{(model, split): lib.evaluate result} for single-hypothesis metrics, cached in each
    run folder as ``eval-<split>.json`` and recomputed when the checkpoint is newer."""
    return {(model, split): evaluation(profile, model, split)
            for model in models for split in splits or test_splits(profile)}


def evaluation(profile: str, model: str, split: str, seed: int = 0) -> dict:
    """Single-hypothesis metrics of one run on one split (trained first if needed), cached
    in the run folder as ``eval-<split>.json`` (``eval-<split>-flip.json`` with the
    test-time flip) and recomputed when the checkpoint is newer."""
    from .evaluate import evaluate_run

    run = ensure_run(profile, model, seed)
    cfg = model_config(profile, model, seed)
    flip, sel = cfg["flip_test"], cfg["use_selection"]
    last = "-last" if cfg["select_epochs"] and not sel else ""
    return Run(run).cached(f"eval-{split}{'-flip' if flip else ''}{last}.json",
                           lambda: evaluate_run(run, split, ks=(), missing=(), flip_test=flip,
                                                selected=sel))


METRICS = {"pa_mpjpe": "PA-MPJPE (mm)", "pa_mpjpe_reflect": "PA-MPJPE refl. (mm)",
           "n_mpjpe": "N-MPJPE (mm)", "pck150": "PCK@150 (%)", "auc": "AUC (%)",
           "mirrored_rate": "mirrored (%)"}


def table(rows: dict, metrics=METRICS, splits=None, digits: int = 1):
    """DataFrame of ``{row label: {split: result dict}}``: one column per (split, metric);
    the splits are those of the first row unless given."""
    import pandas as pd

    splits = splits or list(next(iter(rows.values())))
    data = {label: {(split, name): res[split].get(key) for split in splits if split in res
                    for key, name in metrics.items()} for label, res in rows.items()}
    return pd.DataFrame.from_dict(data, orient="index").round(digits)


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
    D.exit_on_sigterm()
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
        if not config.is_builtin(params_path(args.params), REPO / "params"):
            print(f"[book {profile_name(args.params)}] {args.params}: not a profile of params/, "
                  f"so its runs are filed under runs/{profile_name(args.params)}/", flush=True)
        build(args)
    except (FileNotFoundError, ConfigError, D.DataError, RunError) as e:
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
        (m, r) for m, n in seed_plan(args.seeds).items() if m not in VARIANTS
        for s in range(n) for r in restart_seeds(profile, m, s)]
    timings.update(train_all(profile, jobs, args.workers, t0))
    chapters = args.only or CHAPTERS
    for k, chapter in enumerate(chapters):
        t = time.perf_counter()
        print(f"[book {name}] chapter {k + 1} of {len(chapters)}: {chapter}; {_elapsed(t0)}",
              flush=True)
        done = execute(chapter, profile, staged,
                       **({"seeds": args.seeds} if chapter == "results" else {}))
        timings[chapter] = round(time.perf_counter() - t, 1)
        noise = stderr_outputs(done)
        if noise:
            sys.exit("error: a chapter wrote to stderr (it would show in the page):\n"
                     + "\n".join(noise))
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
    suffix = "-partial" if args.only else ""  # keep the full build's timings
    (BUILD / f"timings-{name}{suffix}.json").write_text(json.dumps(timings, indent=1))
    print(json.dumps(timings))


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


def default_workers() -> int:
    """Trainings run side by side on a CPU: as many as the cores the process may use, at
    most two (on the 2-core machine, two single-threaded trainings do more than one training
    on two threads: its matrices are small). One on a GPU."""
    import torch

    if torch.cuda.is_available():
        return 1
    return max(1, min(2, len(os.sched_getaffinity(0))))


def job_name(model: str, seed: int) -> str:
    """``ours (seed 1)``; a restart: ``ours (seed 1, restart 2)``."""
    base, restart = restart_of(seed)
    if not restart:
        return model + (f" (seed {seed})" if seed else "")
    return f"{model} (seed {base}, restart {restart + 1})"


def job_cost(cfg: dict) -> float:
    """A rough relative cost of a training (poses x epochs x work per pose, measured on the
    2-core CPU: the supervised step costs a quarter of a VAE-GAN step, the cycle half as
    much again); used to start the long trainings first and to estimate what is left."""
    per_pose = {"supervised": 0.25, "vae": 0.5}.get(cfg["mode"], 1.0)
    per_pose += 0.5 if cfg["lambda_cycle"] > 0 else 0.0
    return per_pose * cfg["epochs"] * (cfg["train_size"] or 1.0)


def _train_job(profile: str, model: str, seed: int, threads: int, line: str,
               t0: float) -> tuple[float, float]:
    """One training in a worker process: this (model, seed) alone on ``threads`` threads, no
    bar (two bars would garble each other); then, once every restart of the model's seed is
    finished, the evaluations and 2D-only checks that the results chapter reads
    (``lib.study.prepare``, cached beside the run); ``line`` is printed as it starts, with
    the time since ``t0``. Returns the seconds of both parts."""
    import torch

    from .study import prepare

    D.exit_on_sigterm()  # stopped by the build: clean up temporary files as on Ctrl-C
    torch.set_num_threads(threads)
    sys.stdout.write(f"{line}; {_elapsed(t0)}\n")  # one write: workers print side by side
    sys.stdout.flush()
    t = time.perf_counter()
    ensure_trained(model_config(profile, model, seed, progress=False),
                   run_dir(profile, model, seed), profile)  # this one, not its restarts
    t_check = time.perf_counter()
    spare = 0.0  # seconds of spare restarts: training, not checks
    base = restart_of(seed)[0]  # the model's seed that this training is a restart of
    seeds = restart_seeds(profile, model, base)
    if all(Run(run_dir(profile, model, s)).finished(model_config(profile, model, s))
           for s in seeds):  # else the last restart prepares
        # two workers that finish a seed's last two restarts together: one at a time here,
        # so that a spare is trained once (the second then finds it and the checks done)
        first = run_dir(profile, model, base)
        with open(first.with_name(f".{first.name}.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            t_spare, known = time.perf_counter(), len(restart_seeds(profile, model, base))
            ensure_run(profile, model, base, progress=False)  # spare restarts, if needed
            spares = restart_seeds(profile, model, base)[known:]
            if spares:
                spare = time.perf_counter() - t_spare
                sys.stdout.write(f"{job_name(model, base)}: a training agreed with no other; "
                                 f"trained {', '.join(job_name(model, s) for s in spares)} "
                                 f"in {spare / 60:.1f} min; {_elapsed(t0)}\n")
                sys.stdout.flush()
            prepare(profile, model, base)
    return t_check - t + spare, time.perf_counter() - t_check - spare


def _epochs_done(folder: Path) -> int:
    path = Run(folder).history_path
    return len(path.read_text().splitlines()) if path.is_file() else 0


def train_all(profile: str, jobs: list[tuple[str, int]], workers: int, t0: float) -> dict:
    """Train every (model, seed) of ``jobs`` not finished yet, ``workers`` at a time, the
    costliest first; prints "model k of N" as each starts and as it finishes, with the
    elapsed time and an estimate of the training time left. Returns {"train <job>": s}."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    name = profile_name(profile)
    cfgs = {job: model_config(profile, *job) for job in jobs}
    todo = [job for job in jobs if not Run(run_dir(profile, *job)).finished(cfgs[job])]
    source = params_source(profile)  # before any training: the runs it would replace
    blocked = [why for job in todo if (why := Run(run_dir(profile, *job)).in_the_way(
        cfgs[job], source))]
    if blocked and not forced():
        more = f" (and {len(blocked) - 1} more runs)" if len(blocked) > 1 else ""
        raise RunError(blocked[0] + more)
    for job in jobs:
        if job not in todo:  # reused (oriented if not yet)
            ensure_trained(cfgs[job], run_dir(profile, *job), profile)
    if not todo:
        if jobs:
            print(f"[book {name}] all {len(jobs)} trainings finished already: reused", flush=True)
        return {}
    cost = {job: job_cost(cfgs[job]) for job in todo}
    todo.sort(key=lambda job: -cost[job])
    D.load(cfgs[todo[0]], "train", progress=True)  # the data cache, built once, not per worker
    workers = max(1, min(workers, len(todo)))
    threads = max(1, len(os.sched_getaffinity(0)) // workers)
    print(f"[book {name}] {len(todo)} of {len(jobs)} trainings to do, {workers} at a time "
          f"on {threads} thread(s) each, the longest first", flush=True)
    timings, finished = {}, []
    t_train = time.perf_counter()

    def left() -> str:
        """Training time left, from the share of the work (cost-weighted epochs) done."""
        done = sum(cost[j] * (1.0 if j in finished else min(
            1.0, _epochs_done(run_dir(profile, *j)) / cfgs[j]["epochs"])) for j in todo)
        rest = (time.perf_counter() - t_train) * (sum(cost.values()) - done) / max(done, 1e-9)
        return f", about {int(rest) // 60} min {int(rest) % 60:02d} s of training left"

    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))
    queue, pending = list(enumerate(todo, 1)), {}

    def submit_next():
        """Hand out one more training: at most ``workers`` are ever queued, so a worker
        orphaned by a killed parent finishes its own training and finds nothing more to do."""
        k, job = queue.pop(0)
        pending[pool.submit(_train_job, profile, *job, threads,
                            f"[book {name}] model {k} of {len(todo)}: {job_name(*job)}",
                            t0)] = job

    # SIGTERM (kill, a scheduler's stop) ends the build like Ctrl-C: the workers are stopped
    main_thread = threading.current_thread() is threading.main_thread()  # (signal's rule)
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        for _ in range(workers):
            submit_next()
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                try:
                    seconds, check = future.result()  # a failed training raises here
                except BrokenProcessPool:
                    raise RunError(f"{run_dir(profile, *job)}: a training process died (killed, "
                                   f"or out of memory?); build again to resume, or use "
                                   f"--workers 1") from None
                finished.append(job)
                model, seed = job
                key = model + (f" seed {seed}" if seed else "")
                timings[f"train {key}"] = round(seconds, 1)
                timings[f"check {key}"] = round(check, 1)
                print(f"[book {name}] model {todo.index(job) + 1} of {len(todo)} done "
                      f"({len(finished)} of {len(todo)} finished): {job_name(*job)} in "
                      f"{seconds / 60:.1f} min, evaluated in {check:.0f} s; "
                      f"{_elapsed(t0)}{left() if pending or queue else ''}", flush=True)
                if queue:
                    submit_next()
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
        # an error or Ctrl-C: stop the other trainings (they resume from their checkpoints)
        procs = getattr(pool, "_processes", None) or {}  # the executor's {pid: process}
        for proc in list(procs.values()):
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
    return timings


def _terminate(signum, frame):
    """SIGTERM handler of :func:`train_all`: unwind (its ``finally`` stops the workers)."""
    raise SystemExit(128 + signum)


def _elapsed(t0: float) -> str:
    """``t0``: ``time.time()`` at the start of the build (also in worker processes)."""
    m, s = divmod(int(time.time() - t0), 60)
    return f"{m} min {s:02d} s elapsed"


if __name__ == "__main__":
    main()
