"""Keypoints as a 2D detector gives them, measured: joints hidden and pixel noise.

**The detector-like protocol** (the results chapter's robustness table): on a fixed random
:data:`PROTOCOL_POSES` frames of each test split, each perturbation of
:data:`PERTURBATIONS` (Gaussian noise with sigma a share of each pose's 2D height, head to
the lower ankle; 1 or 2 random limb joints given confidence 0; both), with fixed seeds, goes
through ``PoseLifter.lift`` from pixels as a user's keypoints would (a model not trained
with missing joints in-fills them: :mod:`lib.infill`); the flat baseline gets the same
input, in-filled by the same model (:func:`flat_errors`). Scored by PA-MPJPE without
reflections over the frames lifted, with the share lifted.

**Joints hidden, in detail**: what ``lib.lift``'s in-filling costs in 3D error, and how
many frames it lifts.

    python -m lib.occlusion --run runs/default/ours [--split test_unseen_styles ...]
                            [--missing 1,2] [--size N] [--seed 0] [--allow-unfinished]

On each test split, ``n`` random distinct limb joints of every frame (knees, ankles, elbows,
wrists; fixed seed) get confidence 0 and the frames go through ``PoseLifter.lift`` from
pixels, as a user's keypoints would; the clean frames go through the same path. It prints
JSON: per split and count, PA-MPJPE without reflections (mm) of the clean and of the hidden
lifts over the frames both lifted, their ratio, the share of frames lifted, and the mean
error of the in-filled 2D joints (in head-to-pelvis lengths). The 3D ground truth is read
only here, to score; nothing is chosen with it.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from . import data as D
from . import zoo
from .experiment import ensure_model, eval_cache_name, model_config, test_splits
from .geometry import center, detector_noise
from .infill import for_run, infill_error, normalise
from .lift import PoseLifter, handles_missing_joints
from .metrics import pa_mpjpe
from .report import aggregate, mean_std, split_name
from .runs import Run
from .skeleton import LIMB_JOINTS
from .splits import subset

# name -> (noise sigma as a share of each pose's 2D height, limb joints hidden per frame)
PERTURBATIONS = {"clean": (0.0, 0), "noise1": (0.01, 0), "noise2": (0.02, 0),
                 "noise4": (0.04, 0), "miss1": (0.0, 1), "miss2": (0.0, 2),
                 "noise2+miss1": (0.02, 1)}
PROTOCOL_POSES = 4_000  # frames per test split (a fixed random subset)


def hide(n_frames: int, n: int, seed: int = 0) -> np.ndarray:
    """(n_frames, 17) confidences: 1, and 0 at ``n`` random distinct limb joints per frame."""
    rng = np.random.default_rng(seed)
    conf = np.ones((n_frames, 17))
    if n:
        order = np.argsort(rng.random((n_frames, len(LIMB_JOINTS))), axis=1)[:, :n]
        np.put_along_axis(conf, np.asarray(LIMB_JOINTS)[order], 0.0, axis=1)
    return conf


def detector_input(xy: np.ndarray, name: str, seed: int = 0) -> np.ndarray:
    """(N, 17, 3) keypoints with confidences: (N, 17, 2) pixels ``xy`` perturbed as
    :data:`PERTURBATIONS` ``name`` says, with a seed of its own (the same input every time)."""
    noise, hidden = PERTURBATIONS[name]
    k = list(PERTURBATIONS).index(name)
    rng = np.random.default_rng([seed, k])
    xy = np.asarray(xy, dtype=np.float64)
    noisy = detector_noise(xy, noise, rng)
    return np.concatenate([noisy, hide(len(xy), hidden, seed * 100 + k)[..., None]], -1)


def protocol_split(split: dict, seed: int = 0) -> dict:
    """The protocol's frames of one split: :data:`PROTOCOL_POSES` of them, fixed."""
    return subset(split, PROTOCOL_POSES, seed)


def detector_errors(lifter: PoseLifter, split: dict, seed: int = 0) -> dict:
    """{perturbation: {"pa_mpjpe": mm over the frames lifted, "lifted_pct"}} of one lifter
    on one split's protocol frames (:func:`protocol_split`)."""
    s = protocol_split(split, seed)
    gt = torch.as_tensor(center(np.asarray(s["pose3d"], dtype=np.float64)))
    out = {}
    for name in PERTURBATIONS:
        res = lifter.lift(detector_input(s["pose2d"], name, seed))
        err = pa_mpjpe(torch.as_tensor(res.poses, dtype=torch.float64), gt[res.frames],
                       allow_reflection=False)
        out[name] = {"pa_mpjpe": float(err.mean()) if len(err) else float("nan"),
                     "lifted_pct": 100 * len(res.frames) / len(gt)}
    return out


def flat_errors(infill, split: dict, seed: int = 0) -> dict:
    """{perturbation: PA-MPJPE (mm)} of the flat baseline (the 2D input at constant depth)
    on the same input as :func:`detector_errors`, missing joints in-filled by ``infill``
    (a :class:`lib.infill.Infill`) as ``lib.lift`` in-fills them."""
    s = protocol_split(split, seed)
    gt = torch.as_tensor(center(np.asarray(s["pose3d"], dtype=np.float64)))
    out = {}
    for name in PERTURBATIONS:
        kp = detector_input(s["pose2d"], name, seed)
        vis = kp[..., 2] > 0
        x = normalise(np.where(vis[..., None], kp[..., :2], kp[:, :1, :2]))
        if not vis.all():
            x = infill.fill(x, vis[:, 1:])
        flat = np.concatenate([np.zeros((len(x), 1, 2)), x.reshape(len(x), 16, 2)], 1)
        flat = torch.as_tensor(np.concatenate([flat, np.zeros((len(x), 17, 1))], -1))
        out[name] = float(pa_mpjpe(flat, gt, allow_reflection=False).mean())
    return out


def protocol_models() -> list[str]:
    """The models the protocol compares: the headline's, then the other baselines."""
    head = zoo.headline_models()
    return head + [m for m in zoo.names("baseline") if m not in head]


def model_errors(profile: str, model: str, split: str, seed: int = 0) -> dict:
    """:func:`detector_errors` of one model seed (as the book evaluates it: its flip, its
    chosen weights), cached in its folder as ``detector-<split>...json``, the file named
    after the in-filling model's ``k`` too."""
    folder = ensure_model(profile, model, seed)
    cfg = model_config(profile, model, seed)
    run_cfg = Run((Run(folder).members() or [folder])[0]).config()  # the trained one's
    infill = None if handles_missing_joints(cfg) else for_run(folder, run_cfg)
    name = eval_cache_name(cfg, split).replace("eval-", "detector-").replace(
        ".json", f"-knn{infill.k}.json" if infill else ".json")  # another in-filling, another file

    def compute():  # the lifter is loaded only when the numbers are not cached
        net, norm, _ = Run(folder).load(flip_test=cfg["flip_test"],
                                         selected=cfg["use_selection"])
        lifter = PoseLifter(net, norm, run_cfg, str(folder))
        lifter.infill = infill  # the model named above (shared by one seed's data's models)
        return detector_errors(lifter, D.load(run_cfg, split), seed=0)

    return Run(folder).cached(name, compute)


def book_protocol(profile: str, seeds: int) -> dict:
    """The results file's ``detector`` entry: {"perturbations": {name: [noise share, joints
    hidden]}, "poses": frames per split, "models": {model: {split: {perturbation: {"mean",
    "std", "values"}}}}, "lifted_pct": {model: {split: {perturbation: lowest over seeds}}},
    "flat": {split: {perturbation: mm}}, "xy_floor": {split: {noise: mm}}
    (:func:`xy_floor`)}, each model over the seeds :func:`lib.zoo.seed_plan` gives it.
    The flat baseline's missing joints are in-filled by ours' (seed 0) model, the one that
    fills ours' input."""
    plan = zoo.seed_plan(seeds)
    out = {"perturbations": {k: list(v) for k, v in PERTURBATIONS.items()},
           "poses": PROTOCOL_POSES, "models": {}, "lifted_pct": {}, "flat": {}}
    splits = test_splits(profile)
    for model in protocol_models():
        runs = [{s: model_errors(profile, model, s, seed) for s in splits}
                for seed in range(plan[model])]
        out["models"][model] = {s: {p: aggregate([r[s][p]["pa_mpjpe"] for r in runs])
                                    for p in PERTURBATIONS} for s in splits}
        out["lifted_pct"][model] = {s: {p: min(r[s][p]["lifted_pct"] for r in runs)
                                        for p in PERTURBATIONS} for s in splits}
    folder = ensure_model(profile, "ours")
    cfg = model_config(profile, "ours")
    infill = for_run(folder, cfg)
    out["flat"] = {s: flat_errors(infill, D.load(cfg, s)) for s in splits}
    out["xy_floor"] = {s: xy_floor(D.load(cfg, s)) for s in splits}
    return out



# ---- the protocol in the book: its table, its sentences, its targets ---------------------

TARGET_MISS2 = 1.10  # with 2 limb joints missing: at most this times the clean error
TARGET_NOISE2_FLAT = 0.80  # noise at 2% of the height: at most this times flat's error
TARGET_NOISE2_OWN = 1.15  # ... and at most this times its own clean error
TARGET_LIFTED = 99.0  # % of frames lifted with 1 or 2 limb joints missing


def detector_table(protocol: dict, models, names: dict[str, str]):
    """PA-MPJPE (mm, mean ± std over seeds) of each model and the flat baseline on each
    split (rows) under each perturbation (columns), with the share of frames lifted where
    it is under 100%."""
    import pandas as pd

    rows = {}
    for m in models:
        for split, per in protocol["models"][m].items():
            rows[(names[m], split_name(split))] = {
                p: mean_std(e) + ("" if (pct := protocol["lifted_pct"][m][split][p]) >= 100
                                  else f" ({pct:.0f}% lifted)") for p, e in per.items()}
    for split, per in protocol["flat"].items():
        rows[("flat", split_name(split))] = {p: f"{v:.1f}" for p, v in per.items()}
    return pd.DataFrame.from_dict(rows, orient="index")


def protocol_text(protocol: dict) -> str:
    """What the protocol gives every model, from its record: the frames, the noise levels,
    the joints hidden."""
    per = protocol["perturbations"].values()
    noise = sorted({100 * n for n, h in per if n and not h})
    hidden = sorted({h for n, h in per if h and not n})
    both = [(100 * n, h) for n, h in per if n and h]
    return (f"{protocol['poses']:,} fixed frames of each test split, with Gaussian noise of "
            f"{', '.join(f'{v:g}' for v in noise[:-1])} and {noise[-1]:g}% of each pose's 2D "
            f"height (head to the lower ankle), with {' or '.join(map(str, hidden))} random "
            f"limb joints (knees, ankles, elbows, wrists) at confidence 0, and with "
            + " and ".join(f"{n:g}% noise and {h} missing joint" + ("s" if h > 1 else "")
                           for n, h in both) + " together")


def detector_text(protocol: dict, model: str, label: str) -> str:
    """The protocol's sentences for ``model``, one value per split (``a | b | c``): what 2%
    noise and two missing limb joints cost against its clean error and against flat on the
    same input, what the same noise alone costs the true 3D (``xy_floor``, where recorded),
    the share of frames lifted, and how many targets are met."""
    err, splits = protocol["models"][model], list(protocol["models"][model])

    def per(fn, fmt=".1f"):
        return " | ".join(format(fn(s), fmt) for s in splits)

    clean = {s: err[s]["clean"]["mean"] for s in splits}
    n2 = {s: err[s]["noise2"]["mean"] for s in splits}
    m2 = {s: err[s]["miss2"]["mean"] for s in splits}
    flat = {s: protocol["flat"][s]["noise2"] for s in splits}
    lifted = {s: min(protocol["lifted_pct"][model][s][k] for k in ("miss1", "miss2"))
              for s in splits}
    floor = protocol.get("xy_floor")
    met = sum(r for s in splits for r in (m2[s] / clean[s] <= TARGET_MISS2,
                                          n2[s] / flat[s] <= TARGET_NOISE2_FLAT,
                                          n2[s] / clean[s] <= TARGET_NOISE2_OWN,
                                          lifted[s] >= TARGET_LIFTED))
    return (f"With noise of 2% of the height, the error of {label} goes from "
            f"{per(clean.get)} mm ({' | '.join(split_name(s) for s in splits)}) to "
            f"{per(n2.get)} mm: {per(lambda s: n2[s] / clean[s], '.2f')} times its clean error "
            f"and {per(lambda s: n2[s] / flat[s], '.2f')} times flat's on the same input "
            f"({per(flat.get)} mm)"
            + (f"; the noise alone, added to the true 3D's x and y, costs "
               f"{per(lambda s: floor[s]['noise2'])} mm" if floor else "")
            + f". With two limb joints missing: {per(m2.get)} mm "
            f"({per(lambda s: m2[s] / clean[s], '.2f')} times), "
            f"{per(lifted.get, '.0f')}% of frames lifted. {met} of its {4 * len(splits)} targets "
            f"are met (per split: two missing joints at most {TARGET_MISS2:.2f} times the clean "
            f"error, at least {TARGET_LIFTED:.0f}% lifted; 2% noise at most "
            f"{TARGET_NOISE2_FLAT:.2f} times flat's error and {TARGET_NOISE2_OWN:.2f} times "
            f"its own clean error).")


def xy_floor(split: dict, seed: int = 0) -> dict:
    """{noise perturbation: PA-MPJPE (mm)} of the true 3D of the protocol's frames with that
    noise added to its image-plane coordinates (x, y; a share of the 2D height in mm):
    what the noise alone costs a lifter that keeps the input's x, y, as ours does."""
    s = protocol_split(split, seed)
    gt = center(np.asarray(s["pose3d"], dtype=np.float64))
    out = {}
    for k, (name, (share, hidden)) in enumerate(PERTURBATIONS.items()):
        if share and not hidden:
            rng = np.random.default_rng([seed, k])
            noisy = gt.copy()
            noisy[..., :2] = detector_noise(gt[..., :2], share, rng)
            out[name] = float(pa_mpjpe(torch.as_tensor(noisy), torch.as_tensor(gt)).mean())
    return out


def measure(lifter: PoseLifter, split: dict, counts=(1, 2), seed: int = 0) -> dict:
    """{"frames", "clean_mm", "<n>": {...}} for one split's ``pose2d`` and ``pose3d``."""
    xy = np.asarray(split["pose2d"], dtype=np.float64)
    gt = torch.as_tensor(center(np.asarray(split["pose3d"], dtype=np.float64)))

    def errors(res):
        return pa_mpjpe(torch.as_tensor(res.poses, dtype=torch.float64), gt[res.frames],
                        allow_reflection=False).numpy()

    clean = lifter.lift(np.concatenate([xy, hide(len(xy), 0)[..., None]], -1))
    clean_err = np.full(len(xy), np.nan)
    clean_err[clean.frames] = errors(clean)
    out = {"frames": len(xy), "clean_mm": float(np.nanmean(clean_err)),
           "clean_lifted_pct": 100 * len(clean.frames) / len(xy)}
    for n in counts:
        conf = hide(len(xy), n, seed + n)
        res = lifter.lift(np.concatenate([xy, conf[..., None]], -1))
        err = errors(res)
        both = np.isfinite(clean_err[res.frames])
        ref = float(clean_err[res.frames][both].mean())
        entry = {"lifted_pct": 100 * len(res.frames) / len(xy),
                 "inferred_frames": int(res.inferred.any(1).sum()),
                 "clean_mm": ref, "infilled_mm": float(err[both].mean()),
                 "ratio": float(err[both].mean() / ref)}
        if n and not handles_missing_joints(lifter.cfg) and not isinstance(lifter.infill, str):
            entry["infill_2d_err"] = infill_error(lifter.infill, normalise(xy), conf[:, 1:] > 0)
        entry["skipped_reasons"] = sorted({why.split(":")[0] for why in res.skipped.values()})
        out[str(n)] = entry
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m lib.occlusion", description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True)
    p.add_argument("--split", nargs="+", default=None, help="default: every test split")
    p.add_argument("--missing", default="1,2", help="limb joints hidden per frame")
    p.add_argument("--size", type=int, default=None, help="a random subset of each split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--allow-unfinished", action="store_true",
                   help="measure a run still training (its last checkpoint)")
    args = p.parse_args(argv)
    lifter = PoseLifter.from_run(args.run, args.device, args.allow_unfinished)
    counts = tuple(int(c) for c in args.missing.split(","))
    res = {"run": lifter.source, "seed": args.seed, "size": args.size, "splits": {},
           "finished": Run(lifter.source).finished(),
           "epochs_in_history": len(Run(lifter.source).history()), "epochs": lifter.cfg["epochs"]}
    for split in args.split or D.test_splits(lifter.cfg):
        s = subset(D.load(lifter.cfg, split), args.size, args.seed)
        res["splits"][split] = measure(lifter, s, counts, args.seed)
    if not isinstance(lifter.infill, str) and lifter.infill is not None:
        res["infill"] = {"k": lifter.infill.k, "heldout_2d_err": lifter.infill.errors}
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
