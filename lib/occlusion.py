"""Lifting with joints hidden, measured: what ``lib.lift``'s in-filling (:mod:`lib.infill`)
costs in 3D error, and how many frames it lifts.

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
from .geometry import center
from .infill import infill_error, normalise
from .lift import PoseLifter
from .metrics import pa_mpjpe
from .runs import Run
from .skeleton import LIMB_JOINTS
from .splits import subset


def hide(n_frames: int, n: int, seed: int = 0) -> np.ndarray:
    """(n_frames, 17) confidences: 1, and 0 at ``n`` random distinct limb joints per frame."""
    rng = np.random.default_rng(seed)
    conf = np.ones((n_frames, 17))
    if n:
        order = np.argsort(rng.random((n_frames, len(LIMB_JOINTS))), axis=1)[:, :n]
        np.put_along_axis(conf, np.asarray(LIMB_JOINTS)[order], 0.0, axis=1)
    return conf


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
        if n and not lifter.handles_missing_joints and not isinstance(lifter.infill, str):
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
