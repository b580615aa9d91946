"""Split files: the arrays every dataset is turned into, checked, saved and loaded.

A *split* is a dict of numpy arrays saved as one compressed ``.npz``:

============== ============ ==========================================================
key            shape/dtype  meaning
============== ============ ==========================================================
pose3d         (N,17,3) f4  joints in camera coordinates, millimetres (x right, y down,
                            z forward, as OpenCV / Human3.6M cameras)
pose2d         (N,17,2) f4  perspective projection of ``pose3d``, pixels
camera         (N,) i2      index into ``camera_names``
action         (N,) i2      index into ``action_names``
style          (N,) i2      index into ``style_names`` (the subject for Human3.6M)
take           (N,) i4      index into ``take_names`` (file stem the pose comes from)
frame          (N,) i4      frame number inside the take
*_names        (K,) str     the name lists
============== ============ ==========================================================
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
from pathlib import Path

import numpy as np

SPLITS = ("train", "test_unseen_styles", "test_unseen_motions")
SPLIT_KEYS = {
    "pose3d": (np.float32, 3),
    "pose2d": (np.float32, 3),
    "camera": (np.int16, 1),
    "action": (np.int16, 1),
    "style": (np.int16, 1),
    "take": (np.int32, 1),
    "frame": (np.int32, 1),
}
NAME_KEYS = ("camera_names", "action_names", "style_names", "take_names")


class DataError(ValueError):
    """A data file or folder is missing or malformed; the message names it and the problem."""


def exit_on_sigterm() -> None:
    """Turn SIGTERM (``kill``, a scheduler's time limit) into SystemExit, so that clean-up
    code (``finally``: temporary files and folders) runs as it does for Ctrl-C."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


def atomic_write(path: str | os.PathLike, write) -> Path:
    """Call ``write(binary file)`` on a temporary file beside ``path``, then rename it into
    place: a reader sees the old file or the whole new one, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_savez(path: str | os.PathLike, **arrays) -> Path:
    """Write a compressed ``.npz`` atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda f: np.savez_compressed(f, **arrays))


def validate_split(split: dict, source: str = "split") -> dict:
    """Check keys, shapes and dtypes of a split dict; raise :class:`DataError` naming ``source``."""
    missing = [k for k in (*SPLIT_KEYS, *NAME_KEYS) if k not in split]
    if missing:
        raise DataError(f"{source}: missing key(s) {missing}; expected {list(SPLIT_KEYS)}"
                        f" and {list(NAME_KEYS)}")
    n = len(split["pose3d"])
    for key, (_, ndim) in SPLIT_KEYS.items():
        a = split[key]
        if a.ndim != ndim or len(a) != n:
            raise DataError(f"{source}: '{key}' has shape {a.shape}, expected {ndim} dims"
                            f" and {n} rows")
    if split["pose3d"].shape[1:] != (17, 3) or split["pose2d"].shape[1:] != (17, 2):
        raise DataError(f"{source}: pose3d/pose2d must be (N,17,3)/(N,17,2), got "
                        f"{split['pose3d'].shape} and {split['pose2d'].shape}")
    if not (np.isfinite(split["pose3d"]).all() and np.isfinite(split["pose2d"]).all()):
        raise DataError(f"{source}: NaN or infinite values in the poses")
    return split


def subset(split: dict, n: int | None, seed: int = 0) -> dict:
    """A reproducible random subset of ``n`` poses of a split, in their original order
    (the whole split if ``n`` is None, 0 or at least its size). Same seed, same poses."""
    total = len(split["pose3d"])
    if not n or n >= total:
        return split
    idx = np.sort(np.random.default_rng(seed).choice(total, n, replace=False))
    return {k: (v[idx] if v.ndim and len(v) == total and not k.endswith("_names") else v)
            for k, v in split.items()}


def save_split(path: str | os.PathLike, split: dict) -> Path:
    """Validate, cast to the documented dtypes and write atomically."""
    validate_split(split, str(path))
    arrays = {k: np.asarray(split[k], dtype=dt) for k, (dt, _) in SPLIT_KEYS.items()}
    arrays.update({k: np.asarray(split[k], dtype=str) for k in NAME_KEYS})
    extra = {k: v for k, v in split.items() if k not in arrays}
    return atomic_savez(path, **arrays, **extra)


def load_split(path: str | os.PathLike) -> dict:
    """Load a split ``.npz`` into a dict of arrays, with a clear error if it is broken."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such split file")
    try:
        z = np.load(path, allow_pickle=False)
        if not hasattr(z, "files"):  # a bare .npy array
            raise DataError(f"{path}: a single array (.npy), not a .npz archive of named arrays")
        with z:
            split = {k: z[k] for k in z.files}
    except DataError:
        raise
    except Exception as e:  # torn or foreign bytes fail in zipfile, zlib or numpy's reader
        raise DataError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})") from e
    return validate_split(split, str(path))
