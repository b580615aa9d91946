"""The notebooks' API: a model of the zoo under a profile, trained when needed, evaluated once.

    run = ensure_model("default", "ours")            # the folder that predicts as ours
    res = evaluation("default", "ours", "test_unseen_styles")   # cached beside the run

A profile is a parameter file (``params/<name>.yaml``, or a path); its runs live in
``runs/<profile>/<model>`` for seed 0 (the book's run) and ``<model>-seed<k>`` for seed k.
A model trained several times per seed (``restarts``) has its trainings at seeds
``s + 100 k`` and is what :func:`lib.choose.restarts` makes of them from 2D alone: one
training, or the folder ``<run>-kept`` that averages several. Evaluations and the 2D-only
checks are cached in the run folder and computed again when its weights change.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from . import choose, config, zoo
from . import data as D
from .config import DEFAULTS, REPO, load_params, make_config
from .runs import SELECT_CRITIC_SEED, Run, RunError, forced

RUNS = REPO / "runs"
RESTART_STRIDE = 100  # restart k of seed s is the training of seed s + 100 k
# the runtime keys an evaluation-only variant may change, each named in its cache file
EVAL_KEYS = frozenset({"flip_test", "use_selection", "restarts", "spare_restarts"})


# ---- profiles --------------------------------------------------------------------------

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


def test_splits(profile: str) -> tuple[str, ...]:
    """The test splits of the profile's dataset (BNMD-17's, or Human3.6M's one)."""
    return D.test_splits(make_config(load_params(params_path(profile))))


# ---- a model's configuration and folders -----------------------------------------------

def model_config(profile: str, model: str, seed: int = 0, **overrides) -> dict:
    """The full training configuration of ``model`` under ``profile`` with this seed."""
    zoo.get(model)  # an unknown model: a KeyError that lists the known ones
    params = load_params(params_path(profile))
    seeded = {"seed": params.get("seed", 0) + seed} if seed else {}
    model_keys = zoo.overrides(model)
    if params.get("dataset", DEFAULTS["dataset"]) != "bnmd17":  # other bodies: BNMD-17's rig
        model_keys.pop("body_augment", None)
    return make_config(params, {**model_keys, **seeded, **overrides})


def run_dir(profile: str, model: str, seed: int = 0) -> Path:
    """``runs/<profile>/<model>`` for seed 0 (the book's run), ``<model>-seed<k>`` else; a
    variant's are the runs of the model it evaluates."""
    model = zoo.trained(model)
    return RUNS / profile_name(profile) / (model if seed == 0 else f"{model}-seed{seed}")


def kept_dir(profile: str, model: str, seed: int = 0) -> Path:
    """The folder of a model that averages several of its trainings: ``<run_dir>-kept``."""
    path = run_dir(profile, model, seed)
    return path.with_name(path.name + "-kept")


def restart_of(seed: int) -> tuple[int, int]:
    """(the model's seed, the restart's index from 0) of a training's seed."""
    return seed % RESTART_STRIDE, seed // RESTART_STRIDE


def restart_seeds(profile: str, model: str, seed: int = 0) -> list[int]:
    """The seeds of the trainings that make ``model``'s seed ``seed``: ``seed`` itself, then
    ``seed + RESTART_STRIDE * k`` for each further restart, and for each spare that
    :func:`ensure_model` trained and recorded (the record names its runs)."""
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


def restart_choice(profile: str, model: str, seed: int = 0) -> dict | None:
    """What :func:`ensure_model` made of ``model``'s trainings for this seed, as recorded
    (:meth:`lib.runs.Run.restart_record`), or None for one training."""
    if len(restart_seeds(profile, model, seed)) < 2:
        return None
    return Run(run_dir(profile, model, seed)).restart_record()


# ---- training ---------------------------------------------------------------------------

def ensure_training(cfg: dict, folder: Path, profile: str | None = None,
                    force: bool | None = None) -> Path:
    """One finished training of ``cfg`` in ``folder``: reused, resumed, or trained, and
    recorded as made by ``profile``'s parameter file. A run in the way (made by another
    parameter file, or finished with another configuration: :meth:`lib.runs.Run.in_the_way`)
    is a :class:`RunError` unless ``force`` (by default: ``--force`` was given); an
    interrupted run of the same file is replaced without it."""
    from .train import Trainer

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


def ensure_model(profile: str, model: str, seed: int = 0, **overrides) -> Path:
    """The folder that predicts as ``model`` under ``profile`` with this seed, its trainings
    done first (an interrupted one resumes from its last checkpoint). A variant is its
    model's runs, trained as that model. A model with ``restarts`` > 1 trains each restart
    (:func:`restart_seeds`) and is what :func:`choose_restarts` makes of them; while fewer
    than ``restarts`` agree, it trains a spare (at most ``spare_restarts``) and chooses again
    among them all. The record is written to the first training's ``restarts.json`` (which
    ``lib.lift`` follows) and reused while it is newer than every training's weights."""
    base = zoo.trained(model)
    cfg = model_config(profile, model, seed, **overrides)
    seeds = restart_seeds(profile, model, seed)
    while True:
        folders = [ensure_training(model_config(profile, base, s, **overrides),
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


def choose_restarts(folders, train: dict) -> dict:
    """What a model trained several times (finished runs of one configuration with
    different seeds) predicts with, from 2D alone: the trainings' lifts of training 2D
    poses (``train``) are compared and :func:`lib.choose.restarts` picks the group that
    agrees, else the one training the realism test scores lowest. A GAN's seed can settle
    in a bad phase that its own epochs cannot leave, and good seeds still differ. Returns
    the record :meth:`Run.record_restarts` keeps: {"runs", "members", "pairs", "flat",
    "poses", "critic_accuracy", "critic_seed"}."""
    from .evaluate import lift_agreement

    folders = [Path(f) for f in folders]
    if len(folders) < 2:
        raise RunError(f"{len(folders)} restart(s): a choice needs two or more")
    scores = [restart_score(f) for f in folders]
    loaded = [Run(f).load("cpu") for f in folders]
    agree = lift_agreement([lifter for lifter, _, _ in loaded], loaded[0][1], train)
    group = choose.restarts(agree["pairs"], agree["flat"], scores)
    return {"runs": [f.name for f in folders], "members": [folders[i].name for i in group],
            **agree, "critic_accuracy": scores, "critic_seed": SELECT_CRITIC_SEED}


def restart_score(folder) -> float:
    """The realism-test critic accuracy (%) a choice among restarts compares, with the
    critic seed that chooses (not the reported one): that of the weights the 2D test chose
    among the epochs, or, for a run that kept no epochs to choose from, of its last weights
    (cached beside it)."""
    from .evaluate import realism_test

    run = Run(folder)
    if run.selection_path.is_file():
        return run.selection_score()
    return run.cached("realism-choice.json", lambda: realism_test(
        folder, seed=SELECT_CRITIC_SEED))["critic_accuracy"]


# ---- evaluations, cached beside the runs ------------------------------------------------

def eval_cache_name(cfg: dict, split: str) -> str:
    """``eval-<split>.json``, with ``-flip`` for the test-time flip and ``-last`` for the
    last epoch's weights where the run chose among epochs (``restarts`` needs no suffix:
    it is another folder)."""
    flip = "-flip" if cfg["flip_test"] else ""
    last = "-last" if cfg["select_epochs"] and not cfg["use_selection"] else ""
    return f"eval-{split}{flip}{last}.json"


def check_variant(profile: str, model: str) -> None:
    """A variant may differ from the model it evaluates only in :data:`EVAL_KEYS`, each
    of which gives it another cache file or folder; any other key would silently read the
    model's own cached numbers."""
    base = zoo.trained(model)
    a, b = model_config(profile, model), model_config(profile, base)
    other = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k not in EVAL_KEYS)
    if other:
        raise ValueError(f"model {model!r} evaluates {base!r}'s runs but changes {other}: "
                         f"make it a trained model (no 'evaluates') or a key of EVAL_KEYS")


def evaluation(profile: str, model: str, split: str, seed: int = 0) -> dict:
    """Single-hypothesis metrics of one model on one split (trained first if needed), cached
    in its folder (:func:`eval_cache_name`) and recomputed when the weights are newer."""
    from .evaluate import evaluate_run

    check_variant(profile, model)
    run = ensure_model(profile, model, seed)
    cfg = model_config(profile, model, seed)
    return Run(run).cached(eval_cache_name(cfg, split), lambda: evaluate_run(
        run, split, ks=(), missing=(), flip_test=cfg["flip_test"],
        selected=cfg["use_selection"]))


def evaluations(profile: str, models=None, splits=None) -> dict:
    """{(model, split): :func:`evaluation`} of seed 0, every book model and test split by
    default."""
    return {(model, split): evaluation(profile, model, split)
            for model in (models or zoo.book_models())
            for split in splits or test_splits(profile)}


def realism(run: Path, axis: str = "up", selected: bool = True) -> float:
    """The 2D-only realism test's critic accuracy (%) of a run (``lib.evaluate.realism_test``
    with novel views about ``axis``), cached beside it in ``realism-up.json`` (the world's
    vertical) or ``realism.json`` (the camera's, the test's first version); ``-last`` for
    the last epoch's weights where the run chose among epochs and ``selected`` is false."""
    from .evaluate import realism_test

    name = "realism" if axis == "camera" else f"realism-{axis}"
    last = "-last" if not selected and Run(run).selected_path.is_file() else ""
    return Run(run).cached(f"{name}{last}.json", lambda: realism_test(
        run, axis=axis, selected=selected))["critic_accuracy"]


def realism_checks(profile: str, model: str, seed: int = 0) -> dict:
    """The realism tests a study reads of one model seed, by axis (cached): about the
    world's vertical for a depth-only lifter, and about the camera's too for the rows
    with ``both_axes``."""
    run = ensure_model(profile, model, seed)
    cfg = model_config(profile, model)
    axes = (("up",) if cfg["depth_only"] else ()) + (
        ("camera",) if zoo.get(model).both_axes else ())
    return {axis: realism(run, axis, cfg["use_selection"]) for axis in axes}


def prepare(profile: str, model: str, seed: int = 0) -> None:
    """Compute and cache what a study reads of one finished model seed: its evaluation on
    every test split (and that of its variants) and, for a depth-only lifter, the realism
    tests (also those of the variants with checks of their own). The build calls it in the
    worker that finishes the seed's last training, so that these run side by side."""
    variants = zoo.variants(of=model)
    for m in (model, *variants):
        for s in test_splits(profile):
            evaluation(profile, m, s, seed=seed)
    for m in (model, *(v for v in variants if zoo.get(v).own_checks)):
        realism_checks(profile, m, seed)


def train_seconds(run: Path) -> float:
    """Training time of a run: the sum of its epochs' seconds in ``history.jsonl``."""
    path = Path(run) / "history.jsonl"
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]
    return round(sum(r["seconds"] for r in rows), 1)
