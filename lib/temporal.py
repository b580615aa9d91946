"""The temporal filter of a video: one person's per-frame 3D, smoothed over time.

A Gaussian filter along time (:func:`smooth`) whose width is chosen from the 2D input alone
(:func:`choose_sigma`: leave-one-out cross-validation of the same filter on the 2D track
the lifter sees, :func:`lifter_view`), then applied to every coordinate of the lifted 3D
(:func:`smooth_lift`). No 3D is read to choose it. ``python -m lib.lift --video`` lifts this
way (its input checked by :func:`read_video`); :mod:`lib.video` measures it.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from .geometry import center, chain_length

GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)  # sigmas tried, in frames


class VideoError(ValueError):
    """Input that is not one person's frames in order: the message names the file."""


def kernel(sigma: float, centre: bool = True) -> np.ndarray:
    """Gaussian weights at offsets -r..r (r = ceil(4 sigma)), summing to 1; without the
    centre weight (``centre=False``) the others are not renormalised here."""
    r = int(np.ceil(4 * sigma))
    w = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    if not centre:
        w[r] = 0.0
    return w / w.sum() if centre else w


def smooth(track, sigma: float) -> np.ndarray:
    """(F, ...) array filtered along time (axis 0) by a Gaussian of ``sigma`` frames, the
    ends padded by reflection (without repeating the end frame); sigma 0: unchanged."""
    x = np.asarray(track, dtype=np.float64)
    if sigma == 0 or len(x) < 2:
        return x
    w = kernel(sigma)
    r = len(w) // 2
    padded = np.pad(x.reshape(len(x), -1), ((r, r), (0, 0)), mode="reflect")
    out = sum(w[k] * padded[k:k + len(x)] for k in range(len(w)))
    return out.reshape(x.shape)


def loo_error(track, sigma: float) -> float:
    """Mean squared error of predicting each frame of an (F, ...) track from the others by
    the Gaussian of ``sigma`` with its centre weight removed and renormalised over the
    frames that exist and are finite (NaN = a missing value, neither used nor scored).
    sigma 0 is its limit: the mean of the two neighbours."""
    x = np.asarray(track, dtype=np.float64).reshape(len(track), -1)
    ok = np.isfinite(x)
    x = np.where(ok, x, 0.0)
    w = np.array([0.5, 0.0, 0.5]) if sigma == 0 else kernel(sigma, centre=False)
    r = len(w) // 2
    num, den = np.zeros_like(x), np.zeros_like(x)
    for k in range(-r, r + 1):
        if w[k + r] == 0 or abs(k) >= len(x):
            continue
        dst = slice(max(0, -k), len(x) - max(0, k))
        src = slice(max(0, k), len(x) - max(0, -k))
        num[dst] += w[k + r] * x[src]
        den[dst] += w[k + r] * ok[src]
    scored = ok & (den > 0)
    pred = num[scored] / den[scored]
    return float(np.mean((x[scored] - pred) ** 2)) if scored.any() else float("nan")


def choose_sigma(tracks_2d, grid=GRID) -> float:
    """The sigma of ``grid`` whose leave-one-out prediction of the 2D tracks (a list of
    (F, ...) arrays, or one) has the lowest mean squared error over all their frames: the
    width that removes what the neighbouring frames cannot predict. 2D alone."""
    tracks = [tracks_2d] if isinstance(tracks_2d, np.ndarray) else list(tracks_2d)
    tracks = [t for t in tracks if len(t) >= 3]
    if not tracks:
        return 0.0  # nothing to cross-validate on: no smoothing
    sizes = np.array([np.isfinite(t).sum() for t in tracks], dtype=float)
    errs = [np.average([loo_error(t, s) for t in tracks], weights=sizes) for s in grid]
    return float(grid[int(np.nanargmin(errs))])


def lifter_view(xy, visible=None) -> np.ndarray:
    """(F, 17, 2) pixels as the lifter sees them: root-relative, in units of each pose's own
    head-to-pelvis length; joints not ``visible`` (F, 17) are NaN (not used to choose)."""
    xy = np.asarray(xy, dtype=np.float64)
    view = center(xy) / chain_length(xy)[:, None, None]
    return view if visible is None else np.where(visible[..., None], view, np.nan)


def smooth_lift(result, xy, grid=GRID) -> float:
    """Smooth a ``lib.lift.LiftResult`` of one person's frames in place: ``sigma`` chosen on
    the 2D of the frames kept (``xy``: the input's (N, 17, 2) Human3.6M-order pixels),
    applied to their 3D over the frames kept, skipped ones left out. Returns sigma."""
    visible = None if result.inferred is None else ~result.inferred
    sigma = choose_sigma(lifter_view(xy[result.frames], visible), grid)
    result.poses = smooth(result.poses, sigma).astype(result.poses.dtype)
    return sigma


def mpjae(pred, gt) -> float:
    """Mean per-joint acceleration error (mm/frame^2) of two (F, J, 3) sequences: the mean
    over frames 1..F-2 and joints of |(p[t+1] - 2 p[t] + p[t-1]) - (the same of gt)|."""
    def acc(x):
        x = np.asarray(x, dtype=np.float64)
        return x[2:] - 2 * x[1:-1] + x[:-2]

    if len(pred) < 3:
        return float("nan")
    return float(np.linalg.norm(acc(pred) - acc(gt), axis=-1).mean())


# ---- reading a video ------------------------------------------------------------------

FRAME_KEYS = ("frame", "frame_id", "image_id")  # a JSON entry's frame number
NPZ_FRAMES = ("frames", "frame")


def check_order(path, numbers) -> None:
    """A :class:`VideoError` unless the frame numbers strictly increase: an equal number is
    a second person in that frame, a smaller one frames out of order. Names that are not
    numbers (say, image file names) are checked for repeats alone."""
    n = list(np.asarray(numbers, dtype=object).ravel())
    try:
        n = [float(v) for v in n]
    except (TypeError, ValueError):  # not numbers: order unknown, a repeat still a crowd
        first = {}
        for i, v in enumerate(n):
            if first.setdefault(str(v), i) != i:
                raise VideoError(f"{path}: frame {v} appears twice (entries {first[str(v)]} and "
                                 f"{i}): --video lifts one person per frame") from None
        return
    for i in range(1, len(n)):
        if n[i] == n[i - 1]:
            raise VideoError(f"{path}: frame {n[i]:g} appears twice (entries {i - 1} and {i}): "
                             f"--video lifts one person per frame")
        if n[i] < n[i - 1]:
            raise VideoError(f"{path}: frames out of order (frame {n[i]:g} after "
                             f"{n[i - 1]:g}, entry {i}): --video needs them in time order")


def read_video(path, read) -> np.ndarray:
    """One person's (N, 17, 2 or 3) keypoints in time order from ``path``, read by ``read``
    (``lib.lift.read_keypoints``) after the checks a video needs: frames present; one person
    per frame (an .npz ``keypoints`` of (frames, people, 17, D) with one person is taken,
    more is an error; so is a JSON entry holding several people or a frame number twice);
    frame numbers, where given (JSON entries' ``frame``/``frame_id``/``image_id``, an .npz's
    ``frames``), strictly increasing."""
    path = Path(path)
    if path.suffix == ".npz" and path.is_file() and path.stat().st_size:
        try:
            with np.load(path) as f:
                kp = np.asarray(f["keypoints"]) if "keypoints" in f else None
                numbers = next((f[k] for k in NPZ_FRAMES if k in f), None)
        except (ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile):
            return read(path)  # its own error
        if kp is not None and kp.ndim >= 1 and kp.shape[0] == 0:
            raise VideoError(f"{path}: an empty video (no frames)")
        if kp is not None and kp.ndim == 4 and kp.shape[1] != 1:
            raise VideoError(f"{path}: {kp.shape[1]} people per frame (keypoints {kp.shape}): "
                             f"--video lifts one person; pass one person's track")
        if numbers is not None:
            check_order(path, numbers)
        if kp is not None and kp.ndim == 4 and kp.shape[2:3] == (17,) and kp.shape[3] in (2, 3):
            kp = kp[:, 0].astype(np.float64)
            if np.isinf(kp).any():
                raise VideoError(f"{path}: keypoints hold infinite values")
            return kp
    elif path.suffix == ".json" and path.is_file() and path.stat().st_size:
        try:
            raw = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            return read(path)  # its own error
        if isinstance(raw, dict):
            raw = raw.get("frames", raw.get("keypoints"))
        if isinstance(raw, list) and not raw:
            raise VideoError(f"{path}: an empty video (no frames)")
        entries = raw if isinstance(raw, list) else []
        numbers = [next((e[k] for k in FRAME_KEYS if k in e), None)
                   for e in entries if isinstance(e, dict)]
        if numbers and None not in numbers and len(numbers) == len(entries):
            check_order(path, numbers)
        for i, e in enumerate(entries):
            e = e.get("keypoints") if isinstance(e, dict) else e
            try:
                shape = np.shape(e) if isinstance(e, list) else ()
            except ValueError:  # ragged: read() names it
                shape = ()
            if len(shape) == 3 and shape[0] > 1 and shape[1] == 17:
                raise VideoError(f"{path}: frame {i} holds {shape[0]} people: --video lifts "
                                 f"one person; pass one person's track")
    return read(path)
