"""The studies of ours' levers: which of them the 2D evidence needs, each decided by a rule
of :mod:`lib.choose` written down before its runs, the 3D of every row reported beside the
verdict and never read by it.

    python -m lib.levers --params default --seeds 3     # the lever study (ours_v1)
    python -m lib.levers --params default --vertical    # the vertical study (6 seeds)
    python -m lib.levers --params default --restarts    # the restarts study (fresh seeds)

Each writes ``_build/<study>-<profile>.json`` (``levers``, ``vertical``, ``restarts``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import choose, zoo
from . import data as D
from .experiment import (
    ensure_model,
    model_config,
    profile_name,
    restart_choice,
    restart_seeds,
    run_dir,
)
from .report import aggregate
from .runs import FORCE_ENV, Run, RunError
from .study import BUILD_DIR, StudyError, run_study


def _lone(profile: str, model: str, seeds) -> list[int]:
    """Per seed, how many of ``model``'s trainings agreed with no other (its restart record)."""
    return [choose.lone(r["pairs"], r["flat"])
            for r in (restart_choice(profile, model, s) for s in seeds)]


def _outcome(profile: str, study: dict, models, **fields) -> dict:
    """A two-row study's file: ``fields`` (its verdict and evidence), then the 3D of
    ``models`` (reported, never read by the verdict), training seconds and the flat baseline."""
    splits = study["splits"]
    return {"profile": profile, "splits": splits, **fields,
            "pa_mpjpe": {m: {s: study["models"][m][s]["pa_mpjpe"] for s in splits}
                         for m in models},
            "train_seconds": study["train_seconds"],
            "baselines": {s: study["baselines"]["flat"][s]["pa_mpjpe"] for s in splits}}

# ---- the lever study: which of the doubtful levers of ours_v1 the 2D evidence needs --------

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
        rows[m]["lone"] = _lone(profile, zoo.trained(m), range(seeds))
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


# the vertical study (python -m lib.levers --vertical): ours against ours with its vertical
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
    per_batch, frozen = VERTICAL
    models = [per_batch, zoo.one_training(per_batch), frozen, zoo.one_training(frozen)]
    study = run_study(profile, models, seeds)
    rows = {}
    for m in (per_batch, frozen):
        rows[m] = {"critic": study["critic_accuracy"][m]["values"],
                   "knees": study["backward_knees"][m]["values"],
                   "lone": _lone(profile, m, range(seeds)),
                   "tilt_deg": [[Run(run_dir(profile, m, t)).history()[-1]["tilt_deg"]
                                 for t in restart_seeds(profile, m, s)] for s in range(seeds)]}
    kept, reasons = choose.vertical_kept(rows[per_batch], rows[frozen])
    return _outcome(profile, study, models, seeds=seeds, kept=kept, reasons=reasons,
                    evidence=rows, tilt_failed_deg=TILT_FAILED)


def restarts(profile: str) -> dict:
    """The restarts study: ours and its first training alone on the fresh seeds of
    :data:`lib.choose.RESTARTS_SEEDS`; per seed the 2D evidence of
    :func:`lib.choose.restarts_kept` (critic accuracy about the world's vertical, backward
    knees, lone trainings), the verdict, and the 3D of both (reported, never read by it)."""
    seeds = choose.RESTARTS_SEEDS
    one = zoo.one_training("ours")
    study = run_study(profile, ["ours", one], len(seeds), first=seeds[0])
    rows = {m: {"critic": study["critic_accuracy"][m]["values"],
                "knees": study["backward_knees"][m]["values"]} for m in ("ours", one)}
    rows[one]["lone"] = _lone(profile, "ours", seeds)
    kept, reasons = choose.restarts_kept(rows["ours"], rows[one])
    return _outcome(profile, study, ("ours", one), seeds=list(seeds), kept=kept,
                    reasons=reasons, evidence=rows)


def _errors(err: dict) -> str:
    return " | ".join(f"{v['mean']:.1f}±{v['std']:.1f}" for v in err.values())


def report(study: str, res: dict) -> None:
    """Print a study's verdicts, its 2D evidence and its 3D."""
    if study == "levers":
        for r in res["rows"]:
            verdict = (("ADOPT" if r["kept"] else "reject") if r.get("added") else
                       ("KEEP" if r["kept"] else "drop"))
            print(f"{verdict}  {r['lever']}: {'; '.join(r['reasons']) or 'no 2D evidence'}"
                  f"\n      {'with' if r.get('added') else 'without'} it: PA-MPJPE "
                  f"{_errors(r['pa_mpjpe'])}")
        return
    what = {"vertical": "the vertical estimated on every batch",
            "restarts": "three trainings per seed"}[study]
    print(("KEEP " if res["kept"] else "drop ") + what + ": "
          + ("; ".join(res["reasons"]) or "no 2D evidence"))
    for m, ev in res["evidence"].items():
        tilts = [t for seed in ev.get("tilt_deg", []) for t in seed]
        print(f"  {m}: " + ", ".join(f"{k} {v}" for k, v in ev.items() if k != "tilt_deg")
              + (f", last-epoch |tilt| > {TILT_FAILED:.0f} deg in "
                 f"{sum(abs(t) > TILT_FAILED for t in tilts)} of {len(tilts)}" if tilts else ""))
    for m, err in res["pa_mpjpe"].items():
        print(f"  {m}: PA-MPJPE {_errors(err)}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m lib.levers",
                                description=__doc__.split("\n")[0])
    p.add_argument("--params", default="default", help="profile name or params/<name>.yaml")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--vertical", action="store_true",
                       help=f"the vertical study: {' against '.join(VERTICAL)} over "
                            f"{VERTICAL_SEEDS} seeds (lib.choose.vertical_kept)")
    which.add_argument("--restarts", action="store_true",
                       help="the restarts study: three trainings per seed against the first "
                            "alone on fresh seeds (lib.choose.restarts_kept)")
    p.add_argument("--seeds", type=int, default=3, help="the lever study's seeds (default 3)")
    p.add_argument("--out", help="JSON file (default _build/<study>-<profile>.json)")
    p.add_argument("--force", action="store_true",
                   help="replace finished runs in the way (another parameter file's, or of "
                        "another configuration): default refuse")
    args = p.parse_args(argv)
    if args.force:
        os.environ[FORCE_ENV] = "1"
    study = "vertical" if args.vertical else "restarts" if args.restarts else "levers"
    try:
        res = (vertical(args.params) if args.vertical else restarts(args.params)
               if args.restarts else levers(args.params, args.seeds))
    except (StudyError, FileNotFoundError, RunError) as e:
        sys.exit(f"error: {e}")
    report(study, res)
    out = (Path(args.out) if args.out else
           BUILD_DIR / f"{study}-{profile_name(args.params)}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
