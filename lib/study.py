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


# ---- the lever study of ours: which of its doubtful levers the 2D evidence needs ---------

# (lever, ours with it, ours without it): each row removes one lever of ours as it was
# before the study (lib.zoo.OURS_V1), the last all four; "no spares" is its runs without
# the spare trainings (:func:`without_spares`)
LEVERS = (
    ("three trainings per seed, averaged where they agree", "ours_v1", "ours_v1_one"),
    ("spare trainings for a training that agrees with no other", "ours_v1", "no spares"),
    ("the 2D test's choice of an epoch (else the last epoch's averaged weights)",
     "ours_v1_one", "ours_v1_last"),
    ("a vertical estimated on every batch (else the upright start's, held fixed)",
     "ours_v1", "ours_frozen"),
    ("all four", "ours_v1", "ours_simple"),
)
# (lever, ours without it, ours with it): a lever tried for adding, adopted unless the same
# rules find ours with it worse (lib.choose.lever_kept of it removed from the other way)
ADDED = (("2D noise as a detector's in training", "ours_v1_one", "ours_noisy"),)


def without_spares(profile: str, model: str, seed: int) -> tuple[Path, bool]:
    """(the folder that predicts as ``model`` would without spare trainings, whether a spare
    was needed for two of its first trainings to agree): the choice of
    :func:`lib.choose.restarts` among the first ``restarts`` trainings of its record,
    averaged in ``<run>-kept-nospare`` where that differs from the model's own."""
    from . import choose
    from .experiment import kept_dir

    chosen, record = ensure_model(profile, model, seed), restart_choice(profile, model, seed)
    k = model_config(profile, model)["restarts"]
    if record is None or len(record["runs"]) <= k:
        return chosen, False
    group = choose.restarts([r[:k] for r in record["pairs"][:k]], record["flat"][:k],
                            record["critic_accuracy"][:k])
    members = [chosen.parent / record["runs"][i] for i in group]
    if len(members) == 1:
        return members[0], True
    kept = kept_dir(profile, model, seed)
    folder = kept.with_name(kept.name + "-nospare")
    Run(folder).set_members(members)
    return folder, False


def levers(profile: str, seeds: int = 3) -> dict:
    """The lever study: each row of :data:`LEVERS` over ``seeds`` seeds, its 2D evidence
    (critic accuracy about the world's vertical, backward knees, lone trainings, spares
    needed), the verdict of :func:`lib.choose.lever_kept`, and its 3D (reported, never
    read by the verdict), with trainings per seed and training minutes."""
    from . import choose
    from .evaluate import evaluate_run
    from .experiment import eval_cache_name, realism

    models = sorted({m for _, a, b in LEVERS + ADDED for m in (a, b) if m != "no spares"})
    study = run_study(profile, models, seeds)
    train = D.load(model_config(profile, "ours_v1"), "train")
    rows = {m: {"critic": [], "knees": []} for m in models}
    for m in models:
        cfg = model_config(profile, m)
        for seed in range(seeds):
            run = ensure_model(profile, m, seed)
            rows[m]["critic"].append(realism(run, "up", cfg["use_selection"]))
            rows[m]["knees"].append(Run(run).backward_knees(train,
                                                           selected=cfg["use_selection"]))
    for m in ("ours_v1_one", "ours_simple"):  # one training: the restarts' records say more
        recs = [restart_choice(profile, zoo.trained(m), s) for s in range(seeds)]
        rows[m]["lone"] = [choose.lone(r["pairs"], r["flat"]) for r in recs]
        rows[m]["spare_needed"] = [without_spares(profile, zoo.trained(m), s)[1]
                                   for s in range(seeds)]
    cfg = model_config(profile, "ours_v1")
    nospare = {"critic": [], "knees": [], "spare_needed": [], "pa_mpjpe": {}}
    for seed in range(seeds):
        folder, needed = without_spares(profile, "ours_v1", seed)
        nospare["critic"].append(realism(folder, "up"))
        nospare["knees"].append(Run(folder).backward_knees(train))
        nospare["spare_needed"].append(needed)
        for split in study["splits"]:
            res = Run(folder).cached(eval_cache_name(cfg, split), lambda f=folder, s=split:
                                     evaluate_run(f, s, ks=(), missing=(), flip_test=True))
            nospare["pa_mpjpe"].setdefault(split, []).append(res["pa_mpjpe"])
    rows["no spares"] = nospare
    out = {"profile": profile, "seeds": seeds, "splits": study["splits"], "rows": []}
    for lever, with_, without in LEVERS:
        kept, reasons = choose.lever_kept(rows[with_], rows[without])
        err = ({s: aggregate(v) for s, v in nospare["pa_mpjpe"].items()} if without ==
               "no spares" else {s: study["models"][without][s]["pa_mpjpe"]
                                 for s in study["splits"]})
        out["rows"].append({"lever": lever, "with": with_, "without": without,
                            "kept": kept, "reasons": reasons,
                            "evidence": {"with": rows[with_], "without": {
                                k: v for k, v in rows[without].items() if k != "pa_mpjpe"}},
                            "pa_mpjpe": err})
    for lever, without, with_ in ADDED:
        worse, reasons = choose.lever_kept(rows[without], rows[with_])
        out["rows"].append({"lever": lever, "with": with_, "without": without, "added": True,
                            "kept": not worse, "reasons": reasons,
                            "evidence": {"with": rows[with_], "without": rows[without]},
                            "pa_mpjpe": {s: study["models"][with_][s]["pa_mpjpe"]
                                         for s in study["splits"]}})
    out["models"] = {m: {s: study["models"][m][s]["pa_mpjpe"] for s in study["splits"]}
                     for m in models}
    out["train_seconds"] = study["train_seconds"]
    out["baselines"] = {s: study["baselines"]["flat"][s]["pa_mpjpe"] for s in study["splits"]}
    return out


# the vertical study (python -m lib.study --vertical): ours against ours with its vertical
# frozen after the upright start, judged by lib.choose.vertical_kept (written before its runs)
VERTICAL = ("ours_v2", "ours")  # (per batch, frozen)
VERTICAL_SEEDS = 6
TILT_FAILED = 20.0  # degrees: a training's last-epoch tilt reported beside the verdict


def vertical(profile: str, seeds: int = VERTICAL_SEEDS) -> dict:
    """The vertical study: ours and ours with the frozen vertical over ``seeds`` seeds, three
    trainings each; per row and seed the 2D evidence of :func:`lib.choose.vertical_kept`
    (critic accuracy about the world's vertical, backward knees, lone trainings), each
    training's last-epoch tilt, the verdict, and the 3D of both rows and of their first
    trainings alone (reported, never read by the verdict), with training minutes."""
    from . import choose

    per_batch, frozen = VERTICAL
    models = [per_batch, zoo.one_training(per_batch), frozen, zoo.one_training(frozen)]
    study = run_study(profile, models, seeds)
    rows = {}
    for m in (per_batch, frozen):
        recs = [restart_choice(profile, m, s) for s in range(seeds)]
        rows[m] = {"critic": study["critic_accuracy"][m]["values"],
                   "knees": study["backward_knees"][m]["values"],
                   "lone": [choose.lone(r["pairs"], r["flat"]) for r in recs],
                   "tilt_deg": [[Run(run_dir(profile, m, t)).history()[-1]["tilt_deg"]
                                 for t in restart_seeds(profile, m, s)] for s in range(seeds)]}
    kept, reasons = choose.vertical_kept(rows[per_batch], rows[frozen])
    return {"profile": profile, "seeds": seeds, "splits": study["splits"],
            "kept": kept, "reasons": reasons, "evidence": rows,
            "tilt_failed_deg": TILT_FAILED,
            "pa_mpjpe": {m: {s: study["models"][m][s]["pa_mpjpe"] for s in study["splits"]}
                         for m in models},
            "train_seconds": study["train_seconds"],
            "baselines": {s: study["baselines"]["flat"][s]["pa_mpjpe"]
                          for s in study["splits"]}}


def restarts(profile: str) -> dict:
    """The restarts study: ours and its first training alone on the fresh seeds of
    :data:`lib.choose.RESTARTS_SEEDS`; per seed the 2D evidence of
    :func:`lib.choose.restarts_kept` (critic accuracy about the world's vertical, backward
    knees, lone trainings), the verdict, and the 3D of both (reported, never read by it)."""
    from . import choose

    seeds = choose.RESTARTS_SEEDS
    one = zoo.one_training("ours")
    study = run_study(profile, ["ours", one], len(seeds), first=seeds[0])
    rows = {m: {"critic": study["critic_accuracy"][m]["values"],
                "knees": study["backward_knees"][m]["values"]} for m in ("ours", one)}
    recs = [restart_choice(profile, "ours", s) for s in seeds]
    rows[one]["lone"] = [choose.lone(r["pairs"], r["flat"]) for r in recs]
    kept, reasons = choose.restarts_kept(rows["ours"], rows[one])
    return {"profile": profile, "seeds": list(seeds), "splits": study["splits"],
            "kept": kept, "reasons": reasons, "evidence": rows,
            "pa_mpjpe": {m: {s: study["models"][m][s]["pa_mpjpe"] for s in study["splits"]}
                         for m in ("ours", one)},
            "train_seconds": study["train_seconds"],
            "baselines": {s: study["baselines"]["flat"][s]["pa_mpjpe"]
                          for s in study["splits"]}}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m lib.study", description=__doc__.split("\n")[0])
    p.add_argument("--params", default="default", help="profile name or params/<name>.yaml")
    p.add_argument("--models", nargs="+", default=[*zoo.seed_models(), *zoo.ablation()],
                   help=f"models to study, of {sorted(zoo.MODELS)} (default: the results "
                        f"chapter's seed models and ablation)")
    p.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 (default 3)")
    p.add_argument("--out", help="JSON file (default _build/study-<profile>.json)")
    p.add_argument("--levers", action="store_true",
                   help="instead: the lever study of ours (which levers the 2D evidence "
                        "needs), written to _build/levers-<profile>.json")
    p.add_argument("--vertical", action="store_true",
                   help=f"the vertical study: {' against '.join(VERTICAL)} over "
                        f"{VERTICAL_SEEDS} seeds, judged by lib.choose.vertical_kept")
    p.add_argument("--restarts", action="store_true",
                   help="the restarts study: ours against its first training alone on fresh "
                        "seeds, judged by lib.choose.restarts_kept")
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
    if args.restarts:
        res = restarts(profile)
        print(("KEEP" if res["kept"] else "drop") + " three trainings per seed: "
              + ("; ".join(res["reasons"]) or "no 2D evidence"))
        for m, ev in res["evidence"].items():
            print(f"  {m}: {ev}")
        for m, err in res["pa_mpjpe"].items():
            print(f"  {m}: PA-MPJPE " + " | ".join(f"{v['mean']:.1f}±{v['std']:.1f}"
                                                   for v in err.values()))
        out = Path(args.out) if args.out else BUILD_DIR / f"restarts-{profile_name(profile)}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1))
        print(f"wrote {out}")
        return
    if args.vertical:
        res = vertical(profile)
        print(("KEEP" if res["kept"] else "drop") + " the vertical estimated on every batch: "
              + ("; ".join(res["reasons"]) or "no 2D evidence"))
        for m, ev in res["evidence"].items():
            tilts = [t for seed in ev["tilt_deg"] for t in seed]
            print(f"  {m}: lone trainings {ev['lone']}, critic {ev['critic']}, knees "
                  f"{ev['knees']}, last-epoch |tilt| > {TILT_FAILED:.0f} deg in "
                  f"{sum(abs(t) > TILT_FAILED for t in tilts)} of {len(tilts)}")
        for m, err in res["pa_mpjpe"].items():
            print(f"  {m}: PA-MPJPE " + " | ".join(f"{v['mean']:.1f}±{v['std']:.1f}"
                                                   for v in err.values()))
        out = Path(args.out) if args.out else BUILD_DIR / f"vertical-{profile_name(profile)}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1))
        print(f"wrote {out}")
        return
    if args.levers:
        res = levers(profile, args.seeds)
        for r in res["rows"]:
            err = " | ".join(f"{v['mean']:.1f}±{v['std']:.1f}" for v in r["pa_mpjpe"].values())
            verdict = (("ADOPT" if r["kept"] else "reject") if r.get("added") else
                       ("KEEP" if r["kept"] else "drop"))
            print(f"{verdict}  {r['lever']}: {'; '.join(r['reasons']) or 'no 2D evidence'}"
                  f"\n      {'with' if r.get('added') else 'without'} it: PA-MPJPE {err}")
        out = Path(args.out) if args.out else BUILD_DIR / f"levers-{profile_name(profile)}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=1))
        print(f"wrote {out}")
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
