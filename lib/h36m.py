"""Human3.6M from the community's preprocessed ``.npz`` files, as project splits.

Inputs (the files made by the VideoPose3D preparation scripts; bring your own, the
Human3.6M license forbids redistribution):

* ``data_3d_h36m.npz``: ``positions_3d[subject][action]`` -> ``(F, 32, 3)`` metres, *world*
  coordinates.
* ``data_2d_h36m_gt.npz`` (32 joints, ground-truth projections) or
  ``data_2d_h36m_cpn_ft_h36m_dbb.npz`` (17 joints, CPN detections):
  ``positions_2d[subject][action]`` -> a list of four ``(F, J, 2)`` pixel arrays, one per
  camera in the order of :data:`CAMERA_IDS`, and ``metadata``.

Both files hold pickled dicts, so they are read with ``allow_pickle=True``: only load files
you trust.

The splits (format in :mod:`lib.data`) need 3D poses in *camera* coordinates, but the files
carry no extrinsics. They come either from a cameras JSON file (``cameras=``, see
:func:`load_h36m`) or are estimated per (subject, camera) from that subject's 2D/3D
correspondences by :func:`estimate_extrinsics` (perspective-n-point with the known
intrinsics :data:`H36M_INTRINSICS`). Lens distortion is ignored; Human3.6M's ground-truth
2D includes a slight radial distortion, so estimated extrinsics leave a small reprojection
residual (a few pixels), reported per camera in the returned ``info``. Estimating from CPN
detections works too but is noisier; estimate once from the GT file, save ``info["cameras"]``
as JSON (:func:`build_h36m_cache` writes ``cameras.json``) and pass it when loading CPN 2D.

Command line (writes ``train.npz``, ``test.npz`` and ``cameras.json`` into ``--out``, the
folder that ``dataset: h36m`` / ``h36m_dir`` of :mod:`lib.train` reads)::

    python -m lib.h36m --3d data_3d_h36m.npz --2d data_2d_h36m_gt.npz --out cache/h36m-gt \
        [--cameras cameras.json] [--frame-step N]
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from lib.camera import H36M_CAMERAS, project
from lib.splits import SPLIT_KEYS, DataError, atomic_write, save_split, validate_split

log = logging.getLogger(__name__)

# the public calibration of the four cameras, one table for the project (lib.camera)
H36M_INTRINSICS = H36M_CAMERAS
CAMERA_IDS = tuple(H36M_CAMERAS)

TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
TEST_SUBJECTS = ("S9", "S11")

# the usual 17 of the 32 Human3.6M joints, in the order of lib.skeleton.JOINTS
H36M_32_TO_17 = (0, 1, 2, 3, 6, 7, 8, 12, 13, 14, 15, 17, 18, 19, 25, 26, 27)

# S1 names two actions differently from the other subjects
ACTION_ALIASES = {"TakingPhoto": "Photo", "WalkingDog": "WalkDog"}

# frames per (subject, camera) used to estimate the extrinsics
ESTIMATION_FRAMES = 2000


def action_name(sequence: str) -> str:
    """``"Walking 1"`` -> ``"Walking"``: drop the take number and unify S1's aliases."""
    name = re.sub(r"\s+\d+$", "", sequence.strip())
    return ACTION_ALIASES.get(name, name)


# --------------------------------------------------------------------------- cameras


def _project(points: np.ndarray, R: np.ndarray, t: np.ndarray, f, c) -> np.ndarray:
    """Pinhole projection of world points ``(N,3)`` to pixels ``(N,2)``."""
    return project(points @ R.T + t, np.array([*f, *c]))


def _dlt(points3d: np.ndarray, rays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear pose from 3D points and normalised image coordinates (direct linear transform)."""
    mean = points3d.mean(0)
    scale = np.sqrt(((points3d - mean) ** 2).sum(1).mean())
    Xh = np.hstack([(points3d - mean) / scale, np.ones((len(points3d), 1))])
    zeros = np.zeros_like(Xh)
    A = np.vstack([
        np.hstack([Xh, zeros, -rays[:, :1] * Xh]),
        np.hstack([zeros, Xh, -rays[:, 1:] * Xh]),
    ])  # fmt: skip
    P = np.linalg.svd(A, full_matrices=False)[2][-1].reshape(3, 4)
    P *= np.sign(np.linalg.det(P[:, :3]))  # a proper rotation, points in front of the camera
    U, S, Vt = np.linalg.svd(P[:, :3])
    R = U @ Vt
    t = P[:, 3] / S.mean()
    # undo the normalisation: R (X - mean) / scale + t  ~  R X + (scale t - R mean)
    return R, scale * t - R @ mean


def estimate_extrinsics(points3d, points2d, f, c) -> tuple[np.ndarray, np.ndarray, float]:
    """World -> camera rotation ``R`` and translation ``t`` from 2D/3D correspondences.

    ``points3d`` (N,3) world coordinates, ``points2d`` (N,2) their pixels in a pinhole camera
    with focal lengths ``f = (fx, fy)`` and principal point ``c = (cx, cy)``. A linear DLT
    on normalised coordinates starts a Levenberg-Marquardt refinement of the reprojection
    error (rotation updated as ``exp([w]) R``). Returns ``(R, t, rms_px)`` with
    ``x_cam = R @ X + t`` (units of ``points3d``) and ``rms_px`` the root-mean-square
    point-to-point reprojection error in pixels.
    """
    X = np.asarray(points3d, dtype=np.float64).reshape(-1, 3)
    uv = np.asarray(points2d, dtype=np.float64).reshape(-1, 2)
    if len(X) != len(uv) or len(X) < 6:
        raise ValueError(f"need >= 6 matching points, got {len(X)} 3D and {len(uv)} 2D")
    if not (np.isfinite(X).all() and np.isfinite(uv).all()):
        raise ValueError("NaN or infinite values in the correspondences")
    f, c = np.asarray(f, dtype=np.float64), np.asarray(c, dtype=np.float64)
    R0, t0 = _dlt(X, (uv - c) / f)

    def pose(p):
        return Rotation.from_rotvec(p[:3]).as_matrix() @ R0, p[3:]

    def residuals(p):
        return (_project(X, *pose(p), f, c) - uv).ravel()

    fit = least_squares(residuals, np.r_[np.zeros(3), t0], method="lm", x_scale="jac",
                        xtol=1e-14, ftol=1e-14, gtol=1e-14)
    R, t = pose(fit.x)
    rms = float(np.sqrt(np.mean(np.sum((_project(X, R, t, f, c) - uv) ** 2, axis=1))))
    return R, t, rms


def _parse_cameras(raw: dict, source: str) -> tuple[dict, dict]:
    """Extrinsics ``{camera: {subject: (R, t)}}`` and intrinsics overrides of a cameras dict."""
    raw = dict(raw)
    intrinsics = raw.pop("intrinsics", {})
    extrinsics = {}
    for cam, subjects in raw.items():
        for subject, rt in subjects.items():
            try:
                R = np.asarray(rt["R"], dtype=np.float64)
                t = np.asarray(rt["t"], dtype=np.float64)
            except (KeyError, TypeError, ValueError) as e:
                raise DataError(f"{source}: camera {cam} subject {subject} needs numeric "
                                f"'R' (3x3) and 't' (3) ({e})") from e
            if R.shape != (3, 3) or t.shape != (3,):
                raise DataError(f"{source}: camera {cam} subject {subject}: R has shape "
                                f"{R.shape}, t {t.shape}; expected (3, 3) and (3,)")
            extrinsics.setdefault(cam, {})[subject] = (R, t)
    return extrinsics, intrinsics


def _read_cameras(cameras) -> tuple[dict, dict, str]:
    """``(extrinsics, intrinsics, source)`` from a cameras JSON path or an already-read dict."""
    if isinstance(cameras, dict):
        return (*_parse_cameras(cameras, "cameras dict"), "cameras dict")
    path = Path(cameras)
    if not path.is_file():
        raise DataError(f"{path}: no such cameras file")
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable JSON file ({e})") from e
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a JSON object {{camera_id: {{subject: ...}}}}")
    return (*_parse_cameras(raw, str(path)), str(path))


# --------------------------------------------------------------------------- files


def _read_pose_dict(path, key: str) -> tuple[dict, dict]:
    """The pickled ``{subject: {action: ...}}`` dict under ``key``, and ``metadata`` if any."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=True) as z:
            keys = z.files
            poses = z[key].item() if key in keys else None
            meta = z["metadata"].item() if "metadata" in keys else {}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from e
    if key not in keys:
        raise DataError(f"{path}: no '{key}' key; the file has keys {keys}")
    if not isinstance(poses, dict) or not all(isinstance(v, dict) for v in poses.values()):
        raise DataError(f"{path}: '{key}' must be a dict {{subject: {{action: array}}}}")
    return poses, meta if isinstance(meta, dict) else {}


def _joints17(a, where: str, last: int) -> np.ndarray:
    """Check a ``(F, 32|17, last)`` array and return its 17 joints as float64."""
    a = np.asarray(a)
    if a.ndim != 3 or a.shape[1] not in (17, 32) or a.shape[2] != last:
        raise DataError(f"{where}: shape {a.shape}, expected (frames, 32 or 17, {last})")
    if not np.isfinite(a).all():
        raise DataError(f"{where}: NaN or infinite values")
    a = a.astype(np.float64)
    return a[:, list(H36M_32_TO_17)] if a.shape[1] == 32 else a


# --------------------------------------------------------------------------- loading


def _read_sequences(poses3d, poses2d, subjects, path_3d, path_2d, info) -> dict:
    """``{subject: [(sequence, world (F,17,3) m, [4 x (F,17,2) px])]}``, checked and cut."""
    sequences = {}
    for subject in subjects:
        sequences[subject] = []
        for seq in sorted(poses3d[subject]):
            if seq not in poses2d.get(subject, {}):
                info["skipped"].append(f"{subject}/{seq}")
                continue
            where3, where2 = f"{path_3d}: {subject}/{seq}", f"{path_2d}: {subject}/{seq}"
            world = _joints17(poses3d[subject][seq], where3, 3)
            views = poses2d[subject][seq]
            if len(views) != len(CAMERA_IDS):
                raise DataError(f"{where2}: {len(views)} camera arrays, expected "
                                f"{len(CAMERA_IDS)} (cameras {', '.join(CAMERA_IDS)})")
            views = [_joints17(v, f"{where2} camera {cam}", 2)
                     for v, cam in zip(views, CAMERA_IDS, strict=True)]
            info["joints_2d"] = int(np.shape(poses2d[subject][seq][0])[1])  # 17 or 32
            n2 = min(len(v) for v in views)
            if n2 != len(world) or any(len(v) != n2 for v in views):
                info["truncated"].append((subject, seq, len(world), n2))
            n = min(len(world), n2)
            sequences[subject].append((seq, world[:n], [v[:n] for v in views]))
    if info["skipped"]:
        warnings.warn(f"{path_2d}: no 2D for {len(info['skipped'])} sequence(s) of the 3D "
                      f"file, skipped: {info['skipped']}", stacklevel=3)
    return sequences


def _camera_poses(sequences, intrinsics, given, source, info) -> None:
    """Fill ``info["cameras"]`` and ``info["rms_px"]`` per (subject, camera)."""
    if given is not None:
        missing = [f"{cam}/{s}" for s, seqs in sequences.items() if seqs for cam in CAMERA_IDS
                   if s not in given.get(cam, {})]
        if missing:
            raise DataError(f"{source}: no extrinsics for camera/subject {missing}")
    for subject, seqs in sequences.items():
        info["rms_px"][subject] = {}
        if not seqs:
            continue
        world = np.concatenate([w for _, w, _ in seqs])
        keep = np.unique(np.linspace(0, len(world) - 1, min(len(world), ESTIMATION_FRAMES))
                         .round().astype(int))  # fmt: skip
        X = world[keep].reshape(-1, 3)
        for k, cam in enumerate(CAMERA_IDS):
            x = np.concatenate([v[k] for _, _, v in seqs])[keep].reshape(-1, 2)
            f, c = intrinsics[cam]["f"], intrinsics[cam]["c"]
            if given is None:
                R, t, rms = estimate_extrinsics(X, x, f, c)
            else:
                R, t = given[cam][subject]
                rms = float(np.sqrt(np.mean(np.sum((_project(X, R, t, f, c) - x) ** 2, 1))))
            info["cameras"][cam][subject] = {"R": R.tolist(), "t": t.tolist()}
            info["rms_px"][subject][cam] = rms
            log.info("%s camera %s: reprojection RMS %.2f px (%s extrinsics)",
                     subject, cam, rms, "estimated" if given is None else "given")
            if rms > 20:
                warnings.warn(f"{subject} camera {cam}: reprojection RMS {rms:.1f} px; the "
                              "extrinsics or the 2D look wrong", stacklevel=3)


def _build_split(sequences, subjects, action_names, cameras, frame_step) -> dict:
    """One split (lib.data format) of the given subjects, rows ordered subject, take, camera."""
    takes = [f"{s}/{seq}" for s in subjects for seq, _, _ in sequences[s]]
    parts = []
    for style, subject in enumerate(subjects):
        for seq, world, views in sequences[subject]:
            frames = np.arange(0, len(world), frame_step)
            codes = {"action": action_names.index(action_name(seq)), "style": style,
                     "take": takes.index(f"{subject}/{seq}")}
            for k, cam in enumerate(CAMERA_IDS):
                R, t = (np.asarray(cameras[cam][subject][key]) for key in ("R", "t"))
                parts.append({
                    "pose3d": (world[frames] @ R.T + t) * 1000.0,
                    "pose2d": views[k][frames],
                    "camera": np.full(len(frames), k),
                    **{key: np.full(len(frames), code) for key, code in codes.items()},
                    "frame": frames,
                })  # fmt: skip
    empty = {"pose3d": (0, 17, 3), "pose2d": (0, 17, 2)}
    split = {key: np.concatenate([p[key] for p in parts]).astype(dtype) if parts
             else np.zeros(empty.get(key, (0,)), dtype)
             for key, (dtype, _) in SPLIT_KEYS.items()}
    split.update(camera_names=np.array(CAMERA_IDS), action_names=np.array(action_names),
                 style_names=np.array(subjects, dtype=str), take_names=np.array(takes, dtype=str))
    return split


def load_h36m(path_3d, path_2d, cameras=None, subjects=None, frame_step: int = 1):
    """Load Human3.6M as ``({"train": split, "test": split}, info)``.

    ``subjects`` restricts the subjects (default: those of :data:`TRAIN_SUBJECTS` and
    :data:`TEST_SUBJECTS` in the 3D file); ``frame_step`` keeps every n-th frame. A
    subject/action in the 3D file but not in the 2D file is skipped with a warning; when
    the 2D and 3D frame counts differ, both are cut to the shorter.

    ``cameras``: ``None`` to estimate the extrinsics, or the path of (or the dict read from)
    a JSON file ``{camera_id: {subject: {"R": 3x3 world->camera, "t": [3] metres}}}``, with
    an optional ``"intrinsics": {camera_id: {"f": [fx, fy], "c": [cx, cy]}}`` that
    overrides :data:`H36M_INTRINSICS` (used for the estimation and the residuals only).

    ``info`` holds ``"cameras"`` (the extrinsics and intrinsics used, in that JSON format),
    ``"rms_px"`` ``{subject: {camera: reprojection RMS in pixels}}``, ``"extrinsics_source"``
    (``"estimated"`` or the cameras file), ``"skipped"`` (``"subject/sequence"``),
    ``"truncated"`` (``(subject, sequence, frames_3d, frames_2d)``), ``"joints_2d"`` (17 or
    32) and ``"layout_2d"`` (from the 2D file's metadata).
    """
    if int(frame_step) < 1:
        raise ValueError(f"frame_step must be >= 1, got {frame_step}")
    poses3d, _ = _read_pose_dict(path_3d, "positions_3d")
    poses2d, meta = _read_pose_dict(path_2d, "positions_2d")

    known = TRAIN_SUBJECTS + TEST_SUBJECTS
    subjects = [s for s in known if s in poses3d] if subjects is None else list(subjects)
    absent = [s for s in subjects if s not in poses3d]
    if absent:
        raise DataError(f"{path_3d}: subject(s) {absent} not in the file, which has "
                        f"{sorted(poses3d)}")
    unknown = [s for s in subjects if s not in known]
    if unknown:
        warnings.warn(f"subject(s) {unknown} belong to neither the train nor the test set; "
                      "skipped", stacklevel=2)
    subjects = [s for s in known if s in subjects]

    intrinsics = {cam: dict(v) for cam, v in H36M_INTRINSICS.items()}
    given, source = None, "estimated"
    if cameras is not None:
        given, overrides, source = _read_cameras(cameras)
        for cam, values in overrides.items():
            if cam not in intrinsics or not isinstance(values, dict):
                raise DataError(f"{source}: 'intrinsics' must map camera ids {CAMERA_IDS} to "
                                f"{{'f': [fx, fy], 'c': [cx, cy]}}, got {cam!r}: {values!r}")
            intrinsics[cam].update(values)

    info = {"extrinsics_source": source, "skipped": [], "truncated": [], "rms_px": {},
            "joints_2d": None, "layout_2d": meta.get("layout_name"),
            "cameras": {cam: {} for cam in CAMERA_IDS}}
    info["cameras"]["intrinsics"] = {
        cam: {"f": [float(a) for a in v["f"]], "c": [float(a) for a in v["c"]]}
        for cam, v in intrinsics.items()}  # fmt: skip

    sequences = _read_sequences(poses3d, poses2d, subjects, path_3d, path_2d, info)
    _camera_poses(sequences, intrinsics, given, source, info)
    action_names = sorted({action_name(seq) for seqs in sequences.values() for seq, _, _ in seqs})
    splits = {}
    for name, members in (("train", TRAIN_SUBJECTS), ("test", TEST_SUBJECTS)):
        split = _build_split(sequences, [s for s in subjects if s in members], action_names,
                             info["cameras"], int(frame_step))
        splits[name] = validate_split(split, f"Human3.6M {name} split of {path_3d}")
    return splits, info


def build_h36m_cache(path_3d, path_2d, cache_dir, cameras=None, frame_step: int = 1) -> dict:
    """Load with :func:`load_h36m` and write ``train.npz``, ``test.npz`` and ``cameras.json``.

    ``cameras.json`` holds the extrinsics used (estimated or given) and the intrinsics, in
    the format ``cameras=`` accepts, so a second 2D file (e.g. CPN detections) can reuse
    the extrinsics estimated from the ground-truth 2D. Returns a summary: the paths, the
    number of poses per split, the reprojection RMS per subject and camera, the skipped
    and truncated sequences.
    """
    splits, info = load_h36m(path_3d, path_2d, cameras=cameras, frame_step=frame_step)
    cache_dir = Path(cache_dir)
    summary = {"cache_dir": str(cache_dir), "poses": {}, "paths": {}}
    for name, split in splits.items():
        summary["paths"][name] = str(save_split(cache_dir / f"{name}.npz", split))
        summary["poses"][name] = len(split["pose3d"])
    cameras_path = atomic_write(cache_dir / "cameras.json",
                                lambda f: f.write(json.dumps(info["cameras"], indent=1).encode()))
    summary["paths"]["cameras"] = str(cameras_path)
    summary.update({k: info[k] for k in ("rms_px", "extrinsics_source", "skipped", "truncated",
                                         "joints_2d")})
    return summary


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m lib.h36m",
                                description="Build Human3.6M split files from the community's "
                                            "preprocessed .npz files and print a one-line JSON "
                                            "summary.")
    p.add_argument("--3d", dest="path_3d", required=True, metavar="PATH",
                   help="data_3d_h36m.npz (positions_3d, 32 joints, metres)")
    p.add_argument("--2d", dest="path_2d", required=True, metavar="PATH",
                   help="data_2d_h36m_gt.npz or a detections file (positions_2d, pixels)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="folder for train.npz, test.npz and cameras.json")
    p.add_argument("--cameras", metavar="JSON",
                   help="extrinsics to use (e.g. the cameras.json of a build from the GT 2D); "
                        "default: estimate them from the 2D/3D correspondences")
    p.add_argument("--frame-step", type=int, default=1, metavar="N",
                   help="keep every N-th frame (default 1)")
    args = p.parse_args(argv)
    if args.frame_step < 1:
        p.error(f"--frame-step must be >= 1, got {args.frame_step}")
    t0 = time.perf_counter()
    try:
        summary = build_h36m_cache(args.path_3d, args.path_2d, args.out, cameras=args.cameras,
                                   frame_step=args.frame_step)
    except DataError as e:
        sys.exit(f"error: {e}")
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
