"""Seed studies: train named models over several seeds, evaluate them, write mean +/- std.

    python -m lib.study --params default --models ours ours_noise ours_hinge --seeds 3
    python -m lib.study --params default --select      # how "ours" was chosen, 2D only

One run is an anecdote: the study trains every (model, seed) pair that is not already
finished (``lib.experiment.ensure_model``: seed 0 is the book's run folder, seed k lives in
``runs/<profile>/<model>-seed<k>``), evaluates each on every test split (cached beside the
run) and writes one JSON file::

    {"profile": ..., "seeds": [0, 1, 2], "splits": [...],
     "models": {model: {split: {metric: {"mean", "std", "values"}}}},
     "baselines": {"flat" | "mean_pose": {split: {metric: value}}},
     "train_seconds": {model: [seconds per seed, all its restarts]},
     "restarts": {model: [per seed lib.runs.Run.restart_record: what it averages, why]},
     "backward_knees": {model: {"mean", "std", "values"}},
     "critic_accuracy": {model: {"mean", "std", "values"}}}

``backward_knees`` is the percentage of training 2D poses whose lift bends a knee backwards
(``lib.runs.Run.backward_knees``), and ``critic_accuracy`` (for the depth-only lifters: ours
and its ablations) the 2D-only realism test's held-out accuracy (``lib.evaluate.realism_test``
with novel views about the world's vertical, lower is more plausible): both read no 3D, so
they may judge unsupervised models. ``restarts`` records, for a model trained several times
per seed (``restarts`` in its configuration), what its model is made of among the trainings.

The standard deviation is the sample standard deviation over seeds (0 for one seed). The
book reads this file; nothing in it is chosen by looking at the test error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import data as D
from . import zoo
from .config import REPO, ConfigError, load_params, make_config
from .experiment import (
    RESTART_STRIDE,
    ensure_model,
    ensure_training,
    evaluation,
    model_config,
    params_path,
    profile_name,
    realism_checks,
    restart_choice,
    restart_seeds,
    run_dir,
    test_splits,
    train_seconds,
)
from .report import aggregate
from .runs import FORCE_ENV, Run, RunError
from .splits import DataError

BUILD_DIR = REPO / "_build"
METRICS = ("pa_mpjpe", "pa_mpjpe_reflect", "n_mpjpe", "mpjpe", "pck150", "auc",
           "mirrored_rate")


class StudyError(ValueError):
    """A study that cannot run: no seeds, an unknown model, a bad profile."""


def check(profile: str, models, seeds: int) -> None:
    """Stop before any training when the study cannot be done as asked."""
    if seeds < 1:
        raise StudyError(f"a study needs at least 1 seed, got {seeds}")
    if seeds > RESTART_STRIDE:
        raise StudyError(f"a study takes at most {RESTART_STRIDE} seeds (the seeds above are "
                         f"restarts), got {seeds}")
    unknown = [m for m in models if m not in zoo.MODELS]
    if unknown:
        raise StudyError(f"unknown model(s) {unknown}; known: {sorted(zoo.MODELS)}")
    if not models:
        raise StudyError("a study needs at least one model")
    params_path(profile)  # a clear error for an unknown profile
    for m in models:
        try:
            cfg = model_config(profile, m)
            if cfg["dataset"] == "h36m" and not (D.h36m_folder(cfg) / "train.npz").is_file():
                raise StudyError(f"profile {profile!r}: no Human3.6M cache in "
                                 f"{D.h36m_folder(cfg)}; build it with python -m lib.h36m")
        except (ConfigError, DataError) as e:
            raise StudyError(f"profile {profile!r} cannot train {m!r}: {e}") from None


def run_study(profile: str, models, seeds: int = 3, splits=None, progress: bool = True,
              first: int = 0) -> dict:
    """Train (or reuse) and evaluate every (model, seed) of seeds ``first`` .. ``first +
    seeds - 1``; the study's JSON-ready dict."""
    from .evaluate import baselines_for, depth_spread

    check(profile, models, first + seeds)
    splits = list(splits or test_splits(profile))
    seed_ids = range(first, first + seeds)
    out = {"profile": profile, "seeds": list(seed_ids), "splits": list(splits),
           "models": {}, "train_seconds": {}}
    out["backward_knees"], out["critic_accuracy"], out["critic_accuracy_camera"] = {}, {}, {}
    out["critic_axis"] = "up"  # critic_accuracy's; critic_accuracy_camera: the first version
    out["restarts"] = {}  # model -> per seed: what its model is made of among its restarts
    total = len(models) * seeds
    train = None
    for i, model in enumerate(models):
        per_split = {s: {k: [] for k in METRICS} for s in splits}
        seconds, knees, critic, critic_camera = [], [], [], []
        for seed in seed_ids:
            if progress:
                k = i * seeds + seed - first + 1
                print(f"[study {profile}] model {k} of {total}: {model}, seed {seed}",
                      file=sys.stderr, flush=True)
            for s in splits:
                res = evaluation(profile, model, s, seed=seed)
                for k in METRICS:
                    per_split[s][k].append(res[k])
            base = zoo.trained(model)
            seconds.append(sum(train_seconds(run_dir(profile, base, s))
                               for s in restart_seeds(profile, model, seed)))
            if zoo.get(model).evaluates and not zoo.get(model).own_checks:  # its model's
                continue
            if train is None:
                train = D.load(model_config(profile, model), "train")
            knees.append(Run(ensure_model(profile, model, seed)).backward_knees(
                train, selected=model_config(profile, model)["use_selection"]))
            scores = realism_checks(profile, model, seed)
            if "up" in scores:
                critic.append(scores["up"])
            if "camera" in scores:
                critic_camera.append(scores["camera"])
        out["models"][model] = {s: {k: aggregate(v) for k, v in per_split[s].items()}
                                for s in splits}
        out["train_seconds"][model] = seconds  # all of a seed's restarts
        if not zoo.get(model).evaluates and len(restart_seeds(profile, model)) > 1:
            out["restarts"][model] = [restart_choice(profile, model, seed)
                                      for seed in seed_ids]
        if knees:
            out["backward_knees"][model] = aggregate(knees)
        if critic:
            out["critic_accuracy"][model] = aggregate(critic)
        if critic_camera:
            out["critic_accuracy_camera"][model] = aggregate(critic_camera)
    cfg = model_config(profile, models[0])
    out["baselines"] = baselines_for(cfg, splits)
    out["depth_spread"] = {s: depth_spread(D.load(cfg, s)) for s in splits}  # mm
    return out


def book_results(profile: str, seeds: int) -> dict:
    """The book's one results file: every book model of :mod:`lib.zoo`, each over the
    seeds :func:`lib.zoo.seed_plan` gives it (``seeds`` for the seed models), in the
    :func:`run_study` layout (``seeds`` there: those of the seed models), with
    ``seeds_per_model`` and ``labels``. Written as ``_build/results-<profile>.json``."""
    plan, first = zoo.seed_plan(seeds), zoo.seed_models()
    res = run_study(profile, first, seeds, progress=False)
    for n in sorted({n for m, n in plan.items() if m not in first}, reverse=True):
        more = run_study(profile, [m for m in plan if m not in first and plan[m] == n],
                         n, progress=False)
        for key in ("models", "train_seconds", "backward_knees", "critic_accuracy",
                    "critic_accuracy_camera", "restarts"):
            res[key].update(more[key])
    res["seeds_per_model"] = {m: plan[m] for m in res["models"]}
    res["labels"] = zoo.labels(res["models"])
    return res


def headline(study: dict, models, names: dict[str, str]):
    """The results chapter's first table: per model (its short name, ``names``), the
    PA-MPJPE on every split as mean ± std over seeds with its ratio to the flat baseline's,
    the seeds, the trainings per seed and the mean training minutes per seed; the flat
    baseline last. One column per split, so that it fits a page's column."""
    import pandas as pd

    from .report import mean_std, split_name

    rows = {}
    for m in models:
        row = {}
        for split in study["splits"]:
            e = study["models"][m][split]["pa_mpjpe"]
            flat = study["baselines"]["flat"][split]["pa_mpjpe"]
            row[split_name(split)] = f"{mean_std(e)} ({e['mean'] / flat:.2f})"
        row["seeds"] = str(study["seeds_per_model"].get(m, len(study["seeds"])))
        rec = study.get("restarts", {}).get(m) or [None]
        row["trainings per seed"] = ("1" if rec[0] is None else
                                     "–".join(sorted({str(len(r["runs"])) for r in rec if r})))
        secs = study.get("train_seconds", {}).get(m)
        row["training (min)"] = f"{sum(secs) / len(secs) / 60:.1f}" if secs else "–"
        rows[names[m]] = row
    rows["flat (input 2D at constant depth)"] = {
        split_name(s): f"{study['baselines']['flat'][s]['pa_mpjpe']:.1f} (1.00)"
        for s in study["splits"]} | {"seeds": "–", "trainings per seed": "–",
                                    "training (min)": "–"}
    return pd.DataFrame.from_dict(rows, orient="index")


def results_path(profile: str) -> Path:
    return BUILD_DIR / f"results-{profile_name(profile)}.json"


SELECT_BUDGET = {"train_size": 80000, "epochs": 8}


def select(profile: str, candidates=tuple(zoo.CANDIDATES), budget=SELECT_BUDGET) -> dict:
    """Train each candidate of :data:`lib.zoo.CANDIDATES` briefly
    (``runs/<profile>/select/<name>``) and score it with
    the 2D-only realism test; {name: {"critic_accuracy", "critic_bce"}}, lower is better.
    No 3D ground truth is read. The test turns views about the camera's vertical, as it did
    when this comparison chose ours' first version."""
    from .evaluate import realism_test

    params = load_params(params_path(profile))
    out = {}
    for i, name in enumerate(candidates):
        print(f"[select {profile}] candidate {i + 1} of {len(candidates)}: {name}",
              file=sys.stderr, flush=True)
        cfg = make_config(params, {**zoo.candidate_overrides(name), **budget})
        out[name] = realism_test(ensure_training(cfg, REPO / "runs" / profile_name(profile)
                                                / "select" / name, profile), axis="camera")
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m lib.study", description=__doc__.split("\n")[0])
    p.add_argument("--params", default="default", help="profile name or params/<name>.yaml")
    p.add_argument("--models", nargs="+", default=[*zoo.seed_models(), *zoo.ablation()],
                   help=f"models to study, of {sorted(zoo.MODELS)} (default: the results "
                        f"chapter's seed models and ablation)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 (default 3)")
    p.add_argument("--out", help="JSON file (default _build/study-<profile>.json)")
    p.add_argument("--select", action="store_true",
                   help="instead: rank lib.zoo.CANDIDATES by the 2D-only realism test")
    p.add_argument("--force", action="store_true",
                   help="replace finished runs in the way (another parameter file's, or of "
                        "another configuration): default refuse")
    args = p.parse_args(argv)
    profile = args.params
    if args.force:
        os.environ[FORCE_ENV] = "1"
    if args.select:
        try:
            res = select(profile)
        except (RunError, FileNotFoundError) as e:
            sys.exit(f"error: {e}")
        for name, r in sorted(res.items(), key=lambda kv: kv[1]["critic_accuracy"]):
            print(f"{name:40s} critic accuracy {r['critic_accuracy']:5.1f}%  "
                  f"BCE {r['critic_bce']:.3f}")
        out = Path(args.out) if args.out else BUILD_DIR / f"select-{profile_name(profile)}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1))
        return
    try:
        res = run_study(profile, args.models, args.seeds)
    except (StudyError, FileNotFoundError, RunError) as e:
        sys.exit(f"error: {e}")
    out = Path(args.out) if args.out else study_path(profile)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {out}")


def study_path(profile: str) -> Path:
    return BUILD_DIR / f"study-{profile_name(profile)}.json"


if __name__ == "__main__":
    main()
