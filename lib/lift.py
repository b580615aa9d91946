"""Lift your own 2D keypoints to 3D with a trained run.

    python -m lib.lift --run runs/default/ours --input keypoints.json [--format coco17|h36m17]
                       [--image-size W H] [--k 10] [--out poses.npz] [--plot poses.png|.gif]

From Python::

    from lib.lift import PoseLifter
    lifter = PoseLifter.from_run("runs/default/ours")
    result = lifter.lift(keypoints_px, fmt="coco17")   # (N, 17, 2 or 3) pixels [+ score]
    result.poses   # (M, 17, 3) root-relative 3D, camera axes (x right, y down, z away)

Units: millimetres *of the training data's body*: the network's 3D is multiplied by the
training split's mean head-to-pelvis length, so a person of another size comes out at the
training size (a single image cannot tell size from distance). Each pose is normalised by
its own 2D head-to-pelvis length, so the pixel scale, image size and resolution do not
matter. Frames without a usable person (all joints missing, NaN or all zero; a joint
beyond 1e6 px; a pose without extent, its head-to-pelvis length zero) are skipped and
reported in ``result.skipped``; they are not errors. A lifted pose is always finite.
Missing (low-confidence) joints outside the scale chain, up to four, are in-filled from the
visible ones (:mod:`lib.infill`) unless the model was trained with missing joints.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .config import pick_device
from .geometry import C, Normalizer, apply_mask, chain_length, plain_extent
from .infill import MAX_INFILLED, infill_or_reason
from .models import predict
from .runs import Run, RunError
from .skeleton import JOINTS, SCALE_CHAIN
from .temporal import VideoError, read_video, smooth_lift

# COCO-17 keypoint order, as detectors (Detectron2, MMPose, OpenPifPaf, YOLO-pose) write it
COCO17 = ("nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder",
          "l_elbow", "r_elbow", "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee",
          "l_ankle", "r_ankle")
_CO = {name: i for i, name in enumerate(COCO17)}
# joints taken over directly (Human3.6M-17 index -> COCO-17 index)
COCO_DIRECT = {1: _CO["r_hip"], 2: _CO["r_knee"], 3: _CO["r_ankle"], 4: _CO["l_hip"],
               5: _CO["l_knee"], 6: _CO["l_ankle"], 9: _CO["nose"], 11: _CO["l_shoulder"],
               12: _CO["l_elbow"], 13: _CO["l_wrist"], 14: _CO["r_shoulder"],
               15: _CO["r_elbow"], 16: _CO["r_wrist"]}
HEAD_ABOVE_EARS = 0.5  # head top: ear midpoint + this x (ear midpoint - thorax)
MAX_PX = 1e6  # a keypoint farther from the image's origin is no position in an image
# a joint farther from the pelvis than this many head-to-pelvis lengths: no one person's pose
# (and such a ratio, unbounded, would overflow the network's float32 input)
MAX_SPREAD = 1e3


def handles_missing_joints(cfg: dict) -> bool:
    """Only a model trained with hidden joints (p_miss > 0, not depth-only) lifts without."""
    return cfg.get("p_miss", 0) > 0 and not cfg.get("depth_only", False)


class LiftError(ValueError):
    """Input that cannot be lifted: the message names the file and what is wrong."""


def coco_to_h36m(kp: np.ndarray) -> np.ndarray:
    """COCO-17 keypoints (N, 17, D) -> Human3.6M-17 (N, 17, D); D = 2 (x, y) or 3 (+ score).

    pelvis = midpoint of the hips; thorax = midpoint of the shoulders; spine = midpoint of
    pelvis and thorax; neck/nose = the nose; head (top) = the ear midpoint moved away from
    the thorax by half the thorax-to-ears distance; the limbs are taken over as they are.
    A derived joint's score is the smallest score of the points it is made from.
    """
    kp = np.asarray(kp, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[1] != 17 or kp.shape[2] not in (2, 3):
        raise LiftError(f"COCO-17 keypoints must be (N, 17, 2 or 3), got {kp.shape}")
    out = np.zeros_like(kp)
    for h, c in COCO_DIRECT.items():
        out[:, h] = kp[:, c]

    def mid(a, b):
        m = 0.5 * (a + b)
        if kp.shape[2] == 3:
            m[:, 2] = np.minimum(a[:, 2], b[:, 2])
        else:  # no scores: a source at (0, 0) is missing, and so is the joint made from it
            m[~(np.abs(a).sum(-1) > 0) | ~(np.abs(b).sum(-1) > 0)] = 0.0
        return m

    out[:, 0] = mid(kp[:, _CO["l_hip"]], kp[:, _CO["r_hip"]])
    out[:, 8] = mid(kp[:, _CO["l_shoulder"]], kp[:, _CO["r_shoulder"]])
    out[:, 7] = mid(out[:, 0], out[:, 8])
    ears = mid(kp[:, _CO["l_ear"]], kp[:, _CO["r_ear"]])
    out[:, 10] = ears
    out[:, 10, :2] = ears[:, :2] + HEAD_ABOVE_EARS * (ears[:, :2] - out[:, 8, :2])
    if kp.shape[2] == 3:
        out[:, 10, 2] = np.minimum(ears[:, 2], out[:, 8, 2])
    else:
        out[~(np.abs(ears).sum(-1) > 0) | ~(np.abs(out[:, 8]).sum(-1) > 0), 10] = 0.0
    return out


@dataclass
class LiftResult:
    """poses: (M, 17, 3) root-relative 3D of the M frames kept; frames: (M,) their indices
    in the input; std: (M, 17) spread of k hypotheses per joint (k > 1), else None;
    skipped: {frame index: reason}; inferred: (M, 17) True where a joint was missing."""

    poses: np.ndarray
    frames: np.ndarray
    std: np.ndarray | None = None
    skipped: dict = field(default_factory=dict)
    inferred: np.ndarray | None = None


class PoseLifter:
    """A trained run, ready to lift pixels: ``PoseLifter.from_run(path).lift(keypoints)``."""

    def __init__(self, net: torch.nn.Module, norm, cfg: dict, source: str = "model"):
        self.net, self.norm, self.cfg, self.source = net, norm, cfg, source
        self.device = next(net.parameters()).device
        self.infill = None  # the run's lib.infill model once needed, or why there is none

    @classmethod
    def from_run(cls, path, device: str = "auto", allow_unfinished: bool = False) -> PoseLifter:
        """The run in folder ``path``; for a model trained as several restarts (its first
        restart's folder, e.g. ``runs/default/ours``), the restart the 2D test chose
        (:meth:`lib.runs.Run.chosen`); ``source`` names the folder that predicts."""
        try:
            run = Run(Run(path).chosen())
        except RunError as e:  # a choice among restarts that no longer holds
            raise LiftError(str(e)) from None
        if not run.path.is_dir():
            raise LiftError(f"{run.path}: no such run folder")
        if not allow_unfinished and not run.finished():
            raise LiftError(f"{run.path}: the run is not finished (no 'done' marker); finish "
                            f"it with python -m lib.train --resume, or pass allow_unfinished")
        try:
            dev = pick_device(device)
        except (RuntimeError, TypeError):
            raise LiftError(f"device {device!r} is not a device; use auto, cpu or cuda") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise LiftError(f"device {device!r}: CUDA is not available here; use auto or cpu")
        try:
            net, norm, cfg = run.load(device)
        except FileNotFoundError as e:
            raise LiftError(str(e)) from None
        except Exception as e:  # a torn or foreign file: say which, not a traceback
            raise LiftError(f"{run.checkpoint}: unreadable checkpoint ({type(e).__name__}: "
                            f"{e}); train the run again") from None
        return cls(net, norm, cfg, str(run.path))

    def lift(self, keypoints, fmt: str = "h36m17", scores=None, threshold: float = 0.3,
             k: int = 1, image_size=None, seed: int = 0, where: str = "input") -> LiftResult:
        """Lift (N, 17, 2) pixel keypoints (or (N, 17, 3) with a confidence per joint).

        Joints whose confidence is below ``threshold`` are missing: a model trained with
        missing joints lifts the pose without them; for any other model up to 4 outside the
        scale chain are in-filled (:mod:`lib.infill`), more skip the frame (``skipped``);
        ``inferred`` marks them. ``image_size`` (w, h), if given, checks that the keypoints
        lie in the image. ``k > 1`` samples k hypotheses (variational models) and
        returns their mean and per-joint spread. ``where`` names the input in messages.
        """
        kp = np.asarray(keypoints, dtype=np.float64)
        if kp.ndim == 2 and kp.shape[0] == 17:
            kp = kp[None]
        if kp.ndim != 3 or kp.shape[1] != 17 or kp.shape[2] not in (2, 3):
            raise LiftError(f"{where}: keypoints must be (frames, 17, 2 or 3), got "
                            f"{kp.shape}; 17 joints in {fmt} order")
        if len(kp) == 0:
            raise LiftError(f"{where}: no frames")
        if fmt not in ("h36m17", "coco17"):
            raise LiftError(f"{where}: unknown format {fmt!r}; use coco17 or h36m17")
        if scores is not None:
            kp = np.concatenate([kp[..., :2], np.asarray(scores, float)[..., None]], -1)
        if fmt == "coco17":
            kp = coco_to_h36m(kp)
        if not isinstance(k, int) or k < 1:
            raise LiftError(f"k must be a positive integer, got {k!r}")
        xy = kp[..., :2]
        finite = np.isfinite(kp).all(-1)
        conf = kp[..., 2] if kp.shape[2] == 3 else np.ones(kp.shape[:2])
        visible = finite & (conf >= threshold) & (np.abs(xy).sum(-1) > 0)
        if image_size is not None:
            w, h = image_size
            inside = (xy[..., 0] >= 0) & (xy[..., 0] <= w) & (xy[..., 1] >= 0) & (xy[..., 1] <= h)
            visible &= inside | ~finite
        flagged = np.flatnonzero(~self._plainly_usable(xy, visible))  # each: its reason
        skipped = {int(i): why for i in flagged if (why := self._unusable(xy[i], visible[i]))}
        keep = np.setdiff1d(np.arange(len(kp)), np.fromiter(skipped, int, len(skipped)))
        if len(keep) == 0:
            return LiftResult(np.zeros((0, 17, 3)), keep, None, skipped, np.zeros((0, 17), bool))
        # a missing joint at the root: zero in network space, before the mask zeroes it too
        xy = np.where(visible[keep, :, None], xy[keep], xy[keep, :1])
        # each pose by its own head-to-pelvis length: any camera, any resolution
        x = torch.as_tensor(Normalizer("pose", C).pose2d(xy), device=self.device)
        if handles_missing_joints(self.cfg):
            mask = torch.as_tensor(visible[keep, 1:], dtype=torch.float32, device=self.device)
            x = apply_mask(x, mask)
        elif not visible[keep].all():  # in-filled from the visible joints (lib.infill)
            x = torch.as_tensor(self.infill.fill(x.cpu().numpy(), visible[keep, 1:]),
                                dtype=torch.float32, device=self.device)
        with torch.no_grad():
            if k == 1 or not getattr(self.net, "variational", False):
                poses = predict(self.net, self.norm, x)  # with the run's test-time flip
                std = None
            else:
                gen = torch.Generator(self.device).manual_seed(seed)
                hyps = self.net.hypotheses(x, k, generator=gen).float()  # (M, k, 48)
                mm = self.norm.to_mm(hyps.flatten(0, 1)).unflatten(0, (len(keep), k))
                poses = mm.mean(1)
                std = mm.std(1).norm(dim=-1).cpu().numpy()
        poses = poses.cpu().numpy()
        finite = np.isfinite(poses).all((1, 2))  # never expected: the checks above bound it
        if std is not None:
            finite &= np.isfinite(std).all(1)
        for i in keep[~finite]:
            skipped[int(i)] = "the lifted pose is not finite"
        skipped = dict(sorted(skipped.items()))
        return LiftResult(poses[finite], keep[finite], None if std is None else std[finite],
                          skipped, ~visible[keep[finite]])

    def _plainly_usable(self, xy: np.ndarray, visible: np.ndarray) -> np.ndarray:
        """(N,) the frames that pass every check of :meth:`_unusable`, found at once."""
        miss = (~visible).sum(1)
        ok = visible[:, SCALE_CHAIN].all(1) & plain_extent(xy, visible, MAX_PX, MAX_SPREAD)
        if not handles_missing_joints(self.cfg):
            if self.infill is None and (ok & (miss > 0) & (miss <= MAX_INFILLED)).any():
                self.infill = infill_or_reason(self.source, self.cfg)
            ok &= (miss == 0) | ((miss <= MAX_INFILLED) & (not isinstance(self.infill, str)))
        return ok

    def _unusable(self, xy: np.ndarray, visible: np.ndarray) -> str | None:
        """Why a frame's (17, 2) pixels, ``visible`` where seen, cannot be lifted; None if
        they can: no person, joints the pose's scale needs or (for a model not trained with
        missing joints) any joint missing, a joint beyond :data:`MAX_PX`, or no extent."""
        miss = [j for j in range(17) if not visible[j]]
        needed = sorted(set(SCALE_CHAIN) & set(miss))  # the scale (and the root) must be seen
        if len(miss) == 17:
            return "no person (every joint missing, zero or not finite)"
        if needed:
            return f"missing {', '.join(JOINTS[j] for j in needed)}: needed for the pose's scale"
        if miss and not handles_missing_joints(self.cfg):
            if len(miss) <= MAX_INFILLED and self.infill is None:
                self.infill = infill_or_reason(self.source, self.cfg)
            if len(miss) > MAX_INFILLED or isinstance(self.infill, str):
                why = (f"cannot in-fill them: {self.infill}" if len(miss) <= MAX_INFILLED else
                       f"more than {MAX_INFILLED} joints to in-fill (model without p_miss)")
                return f"missing {', '.join(JOINTS[j] for j in miss)}: {why}"
        far = [j for j in range(17) if visible[j] and np.abs(xy[j]).max() > MAX_PX]
        if far:
            j = far[0]
            more = f" (and {len(far) - 1} more joints)" if len(far) > 1 else ""
            return (f"{JOINTS[j]} at ({xy[j, 0]:.3g}, {xy[j, 1]:.3g}) px{more}: beyond "
                    f"{MAX_PX:,.0f} px, no position in an image")
        scale = float(chain_length(xy))
        spread = max(float(np.hypot(*(xy[j] - xy[0]))) for j in range(17) if visible[j])
        if spread == 0:
            return "no extent: every joint on one pixel (zero 2D scale)"
        if scale == 0:
            return "no extent: head, neck, thorax and pelvis on one pixel (zero 2D scale)"
        if spread > MAX_SPREAD * scale:
            return (f"no extent: head to pelvis {scale:.3g} px, under 1/{MAX_SPREAD:.0f} of "
                    f"the joints' {spread:.3g} px from the pelvis (2D scale near zero)")
        return None


# ---- files ----------------------------------------------------------------------------


def read_keypoints(path) -> np.ndarray:
    """(N, 17, 2 or 3) float keypoints from an .npz (key ``keypoints``) or a .json file:
    a list with one entry per frame, each 17 x [x, y, score], a flat list of 51 numbers
    (COCO results' ``keypoints``), or a dict with a ``keypoints`` field; an empty entry is a
    frame without a person (kept as NaN, skipped when lifting)."""
    path = Path(path)
    if not path.is_file():
        raise LiftError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise LiftError(f"{path}: the file is empty")
    if path.suffix == ".npz":
        try:
            with np.load(path) as f:
                if "keypoints" not in f:
                    raise LiftError(f"{path}: no 'keypoints' array (found {sorted(f.files)})")
                kp = np.asarray(f["keypoints"], dtype=np.float64)
        except LiftError:
            raise
        except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise LiftError(f"{path}: not a readable .npz file ({e})") from None
    elif path.suffix == ".json":
        try:
            raw = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise LiftError(f"{path}: not valid JSON ({e})") from None
        if isinstance(raw, dict):
            raw = raw.get("frames", raw.get("keypoints"))
        if not isinstance(raw, list) or not raw:
            raise LiftError(f"{path}: expected a non-empty list of frames")
        frames = []
        for i, entry in enumerate(raw):
            if isinstance(entry, dict):
                entry = entry.get("keypoints", [])
            try:
                arr = np.asarray(entry if entry is not None else [], dtype=np.float64)
            except (ValueError, TypeError):
                raise LiftError(f"{path}: frame {i} is not a list of numbers "
                                f"(17 x [x, y, score])") from None
            if arr.size == 0:
                frames.append(np.full((17, 3), np.nan))
                continue
            if arr.ndim == 1 and arr.size in (34, 51):
                arr = arr.reshape(17, arr.size // 17)
            if arr.shape not in ((17, 2), (17, 3)):
                raise LiftError(f"{path}: frame {i} has {arr.size} numbers in shape "
                                f"{arr.shape}; expected 17 x (x, y[, score])")
            frames.append(arr if arr.shape[1] == 3 else np.c_[arr, np.ones(17)])
        kp = np.stack(frames)
    else:
        raise LiftError(f"{path}: unknown file type {path.suffix!r}; use .json or .npz")
    if kp.ndim != 3 or kp.shape[1] != 17 or kp.shape[2] not in (2, 3):
        raise LiftError(f"{path}: keypoints must be (frames, 17, 2 or 3), got {kp.shape}")
    if np.isinf(kp).any():
        raise LiftError(f"{path}: keypoints hold infinite values")
    return kp


MAX_ANIMATED = 600  # frames in an animation (every n-th frame beyond that)
# what --plot writes: matplotlib's picture formats, and the animations of plot_result
PLOT_TYPES = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".eps",
              ".gif", ".mp4")


def check_output(path, suffixes, option: str) -> None:
    """A :class:`LiftError` unless ``path`` ends in one of ``suffixes`` (case aside) and its
    folder exists and is writable: checked before lifting, so that nothing is half done."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise LiftError(f"{path}: {option} writes {', '.join(suffixes)} files, not "
                        f"{path.suffix or 'a name without a suffix'!r}")
    folder = path.parent
    if not folder.is_dir() or not os.access(folder, os.W_OK):
        why = "no such folder" if not folder.is_dir() else "the folder is not writable"
        raise LiftError(f"{path}: cannot write ({why}: {folder})")
    if path.suffix.lower() == ".mp4":
        from matplotlib import animation

        if not animation.writers.is_available("ffmpeg"):
            raise LiftError(f"{path}: an .mp4 needs ffmpeg, which is not installed; use .gif")


def plot_result(path, keypoints_h36m: np.ndarray, result: LiftResult, fps: float = 10) -> None:
    """The 2D input beside the 3D result from the front and from the side: a picture of the
    first lifted frame (``.png``, ``.pdf``, ...) or an animation of all of them (``.gif``;
    ``.mp4`` where ffmpeg is installed)."""
    # a figure of its own, drawn by Agg, without pyplot: switching pyplot's backend would
    # stop a notebook that calls this from showing its own figures afterwards
    from matplotlib import animation
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .plots import skeleton_2d, skeleton_3d

    path = Path(path)
    animate = path.suffix.lower() in (".gif", ".mp4")
    check_output(path, PLOT_TYPES, "--plot")  # the command checks it before lifting
    fig = Figure(figsize=(12, 4))
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, 3, 1)] + [fig.add_subplot(1, 3, j, projection="3d")
                                         for j in (2, 3)]

    radius = 1.1 * float(np.abs(result.poses).max())  # one scale for every frame

    def draw(i):
        for ax in axes:
            ax.cla()
        skeleton_2d(axes[0], keypoints_h36m[result.frames[i], :, :2])
        axes[0].set_title(f"2D input, frame {result.frames[i]}")
        axes[0].set(xlabel="x (px)", ylabel="y (px)")
        for ax, (azim, name) in zip(axes[1:], ((-90, "front"), (0, "side")), strict=True):
            skeleton_3d(ax, result.poses[i], radius=radius)
            ax.view_init(elev=10, azim=azim)
            ax.set_title(f"3D, {name} view (mm)")

    if not animate:
        draw(0)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    else:
        step = max(1, int(np.ceil(len(result.frames) / MAX_ANIMATED)))
        anim = animation.FuncAnimation(fig, draw, frames=range(0, len(result.frames), step))
        writer = (animation.PillowWriter(fps=fps) if path.suffix.lower() == ".gif"
                  else animation.FFMpegWriter(fps=fps))
        anim.save(path, writer=writer, dpi=70)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m lib.lift", description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="a finished run folder (e.g. runs/default/ours)")
    p.add_argument("--input", required=True, help=".json or .npz keypoints in pixels")
    p.add_argument("--format", default="coco17", choices=("coco17", "h36m17"))
    p.add_argument("--image-size", nargs=2, type=int, metavar=("W", "H"))
    p.add_argument("--threshold", type=float, default=0.3, help="confidence below = missing")
    p.add_argument("--k", type=int, default=1, help="hypotheses per frame (variational models)")
    p.add_argument("--out", default="poses3d.npz", help="output .npz (poses3d, frames[, std])")
    p.add_argument("--plot", help="also draw the first kept frame (.png) or animate every "
                                  "kept frame (.gif, or .mp4 with ffmpeg)")
    p.add_argument("--device", default="auto")
    p.add_argument("--video", action="store_true", help="frames in order, one person: smooth")
    args = p.parse_args(argv)
    try:
        check_output(args.out, (".npz",), "--out")
        if args.plot:
            check_output(args.plot, PLOT_TYPES, "--plot")
        lifter = PoseLifter.from_run(args.run, args.device)
        kp = read_video(args.input, read_keypoints) if args.video else read_keypoints(args.input)
        res = lifter.lift(kp, fmt=args.format, threshold=args.threshold, k=args.k,
                          image_size=args.image_size, where=args.input)
    except (LiftError, VideoError) as e:
        sys.exit(f"error: {e}")
    for i, why in res.skipped.items():
        print(f"{args.input}: frame {i} skipped: {why}", file=sys.stderr)
    if len(res.frames) == 0:
        sys.exit(f"error: {args.input}: no frame could be lifted (see above)")
    h36m = coco_to_h36m(kp) if args.format == "coco17" else kp
    sigma = smooth_lift(res, h36m[..., :2]) if args.video else None  # before --out and --plot
    out = {"poses3d": res.poses.astype(np.float32), "frames": res.frames, "inferred": res.inferred}
    out |= {} if res.std is None else {"std": res.std.astype(np.float32)}
    try:
        with open(args.out, "wb") as f:  # this name exactly (np.savez adds .npz to a name)
            np.savez(f, **out)
    except OSError as e:
        sys.exit(f"error: {args.out}: cannot write ({e.strerror or e})")
    if args.plot:
        try:
            plot_result(args.plot, h36m, res)
        except LiftError as e:
            sys.exit(f"error: {e}")
    print(json.dumps({"run": lifter.source, "input": args.input, "frames": len(kp),
                      "lifted": len(res.frames), "skipped": len(res.skipped), "sigma": sigma,
                      "inferred": int(res.inferred.any(1).sum()), "out": args.out,
                      "units": "mm of the training body, root-relative, camera axes"}))


if __name__ == "__main__":
    main()
