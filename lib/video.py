"""Video lifting measured: BNMD-17 test takes at their native 30 fps, lifted frame by frame
and as a video (:mod:`lib.temporal`: a Gaussian filter over time, its width chosen from the
2D input alone), clean and with a detector's noise; PA-MPJPE and MPJAE (jitter).

    python -m lib.video --run runs/default/ours [--split test_unseen_styles] [--takes N]
                        [--noise 0,0.02] [--seed 0] [--cache DIR]

The 3D ground truth is read only to score; nothing is chosen with it.
"""

from __future__ import annotations

import argparse
import hashlib
import json

import numpy as np
import torch

from .bnmd import (
    bnmd_settings,
    find_cache,
    find_source,
    iter_takes,
    source_fingerprint,
    split_of,
    take_arrays,
)
from .camera import Rig
from .geometry import center, detector_noise
from .lift import PoseLifter
from .metrics import pa_mpjpe, procrustes_align
from .splits import SPLITS
from .temporal import GRID, choose_sigma, lifter_view, mpjae, smooth

CAMERA = 0  # the rig's camera the native takes are seen from (cam45)


def native_takes(split: str = "test_unseen_styles", takes: int | None = None, source=None,
                 cache=None, camera: int = CAMERA) -> list[dict]:
    """The takes of a BNMD-17 split at their native 30 fps (frame_step 1), seen from the
    rig's camera ``camera`` (0: cam45), each {"name", "pose2d" (F, 17, 2) px, "pose3d"
    (F, 17, 3) mm camera axes, "frame" (F,)}, frames in order; ``takes``: that many, evenly
    spaced in name order (all actions and styles). Cached in the data cache folder."""
    if split not in SPLITS:
        raise ValueError(f"unknown BNMD-17 split {split!r}; choose one of {SPLITS}")
    source = find_source(source)
    rig = Rig()
    key = hashlib.sha1(json.dumps([source_fingerprint(source), bnmd_settings(1, rig), split,
                                   camera, takes], sort_keys=True, default=str).encode())
    path = find_cache(cache) / f"video-{split}-{key.hexdigest()[:12]}.npz"
    if not path.is_file():
        found = {s: d for s, d in iter_takes(source) if (split_of(s) or ("",))[0] == split}
        names = sorted(found)
        if takes is not None and takes < len(names):
            names = [names[i] for i in np.linspace(0, len(names) - 1, takes).round().astype(int)]
        arrays = []
        for stem in names:
            a = take_arrays(found[stem], stem, 1, rig)
            mine = a["camera"] == camera
            arrays.append({k: a[k][mine] for k in ("pose2d", "pose3d", "frame")})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp.npz")
        np.savez_compressed(tmp, names=np.array(names), sizes=[len(a["frame"]) for a in arrays],
                            **{k: np.concatenate([a[k] for a in arrays]) for k in arrays[0]})
        tmp.replace(path)
    with np.load(path) as f:
        ends = np.cumsum(f["sizes"])
        parts = {k: np.split(f[k], ends[:-1]) for k in ("pose2d", "pose3d", "frame")}
        return [{"name": str(n), **{k: parts[k][i] for k in parts}}
                for i, n in enumerate(f["names"])]


def scores(pred, gt) -> dict:
    """PA-MPJPE (mm, no reflections) and MPJAE (mm/frame^2) of the Procrustes-aligned poses
    (each frame aligned on its own, as PA-MPJPE aligns it), and MPJAE of the root-relative
    poses as lifted (camera axes, unaligned)."""
    p, g = torch.as_tensor(pred, dtype=torch.float64), torch.as_tensor(gt, dtype=torch.float64)
    return {"pa_mpjpe": float(pa_mpjpe(p, g).mean()),
            "mpjae": mpjae(procrustes_align(p, g).numpy(), gt),
            "mpjae_root": mpjae(pred, gt)}


def video_study(lifter, takes: list[dict], noise=(0.0, 0.02), seed: int = 0,
                grid=GRID) -> dict:
    """Per noise level: per-frame and video lifting of every take (``lifter``: a
    ``lib.lift.PoseLifter``), the video's sigma chosen on that take's (noisy) 2D alone;
    scores over every frame (PA-MPJPE), every frame triple (MPJAE), frame-weighted."""
    out = {"frames_per_s": 30, "camera": Rig().names[CAMERA], "grid": list(grid),
           "takes": [t["name"] for t in takes], "levels": {}}
    for i, share in enumerate(noise):
        rows, sigmas, skipped = [], [], 0
        for j, take in enumerate(takes):
            xy = take["pose2d"].astype(np.float64)
            if share:
                xy = detector_noise(xy, share, np.random.default_rng([seed, i, j]))
            res = lifter.lift(xy)
            if len(res.frames) != len(xy) or np.any(np.diff(res.frames) != 1):
                skipped += len(xy) - len(res.frames)  # scored over the frames kept, in order
            gt = center(take["pose3d"].astype(np.float64))[res.frames]
            frame = res.poses.astype(np.float64)
            sigma = choose_sigma(lifter_view(xy[res.frames]), grid)
            sigmas.append(sigma)
            rows.append((len(gt), scores(frame, gt), scores(smooth(frame, sigma), gt)))
        n = np.array([r[0] for r in rows], dtype=float)
        acc_n = np.maximum(n - 2, 0)

        def mean(which, key, rows=rows, n=n, acc_n=acc_n):
            w = n if key == "pa_mpjpe" else acc_n
            return float(np.average([r[which][key] for r in rows], weights=w))

        level = {"frames": int(n.sum()), "skipped": skipped, "sigmas": sigmas,
                 "sigma_median": float(np.median(sigmas))}
        for key in ("pa_mpjpe", "mpjae", "mpjae_root"):
            level[key] = {"frame": mean(1, key), "video": mean(2, key)}
            level[key]["ratio"] = (level[key]["video"] / level[key]["frame"]
                                   if level[key]["frame"] > 0 else float("nan"))
        level["gt_accel"] = float(np.average(
            [np.linalg.norm(np.diff(center(t["pose3d"].astype(np.float64)), 2, axis=0),
                            axis=-1).mean() for t in takes], weights=acc_n))
        out["levels"][f"{100 * share:g}%"] = level
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m lib.video", description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a finished run (e.g. runs/default/ours)")
    p.add_argument("--split", default="test_unseen_styles", choices=SPLITS[1:])
    p.add_argument("--takes", type=int, default=None, help="at most N takes (evenly spaced)")
    p.add_argument("--noise", default="0,0.02", help="noise shares of the 2D height")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--source", help="the BVH archive or folder (default: lib.bnmd's)")
    p.add_argument("--cache", help="cache folder (default: $HPE_CACHE, then <repo>/cache)")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    lifter = PoseLifter.from_run(args.run, args.device)
    takes = native_takes(args.split, args.takes, args.source, args.cache)
    res = video_study(lifter, takes, tuple(float(v) for v in args.noise.split(",")), args.seed)
    print(json.dumps({"run": lifter.source, "split": args.split, **res}, indent=1))


if __name__ == "__main__":
    main()
