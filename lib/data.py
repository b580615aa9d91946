"""Data: the BNMD-17 benchmark built from Bandai-Namco BVH files, split files and their cache.

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

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tarfile
import tempfile
import time
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm import tqdm  # plain bars: tqdm.auto warns in notebooks without ipywidgets

from .bvh import BVH, BVHError, read_bvh
from .camera import Rig, project
from .skeleton import BNMD_HEAD, BNMD_HEAD_POINTS, BNMD_TO_H36M

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


# --------------------------------------------------------------------------------------
# Finding the data
# --------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent
ARCHIVE_NAME = "bandai-namco-motion.tar.xz"
DEFAULT_SOURCES = (
    REPO.parent / "shared" / "data" / ARCHIVE_NAME,
    REPO / "data" / ARCHIVE_NAME,
    REPO / "data" / "Bandai-Namco-Research-Motiondataset",
)
DEFAULT_CACHE = REPO / "cache"
HOW_TO_GET = (
    "Get the Bandai-Namco Research Motion Dataset (CC BY-NC 4.0) by cloning the public "
    "GitHub repository BandaiNamcoResearchInc/Bandai-Namco-Research-Motiondataset, then pass "
    "its folder with --source / the `source` parameter or set HPE_DATA to it."
)


def find_source(source: str | os.PathLike | None = None) -> Path:
    """The dataset folder or archive: the explicit argument if given, else $HPE_DATA if set,
    else the first default that exists. A path that was asked for but does not exist is an
    error (never silently replaced by another dataset)."""
    for label, cand in (("argument", source), ("$HPE_DATA", os.environ.get("HPE_DATA"))):
        if cand:
            path = Path(cand).expanduser()
            if path.exists():
                return path
            raise DataError(f"Bandai-Namco data not found; looked at {path} ({label}: "
                            "does not exist). " + HOW_TO_GET)
    for path in DEFAULT_SOURCES:
        if path.exists():
            return path
    raise DataError("Bandai-Namco data not found; looked at "
                    + ", ".join(str(p) for p in DEFAULT_SOURCES)
                    + " (no argument given and HPE_DATA unset). " + HOW_TO_GET)


def find_cache(cache: str | os.PathLike | None = None) -> Path:
    """The cache folder: explicit argument, then $HPE_CACHE, then ``<repo>/cache``."""
    return Path(cache or os.environ.get("HPE_CACHE") or DEFAULT_CACHE).expanduser()


# --------------------------------------------------------------------------------------
# BNMD-17: Bandai-Namco takes -> 17 joints -> four virtual cameras -> three splits
# --------------------------------------------------------------------------------------

BUILD_VERSION = 1  # bump when the construction below changes: it is part of the cache key
TRAIN_STYLES = ("active", "exhausted", "feminine", "masculine", "normal")
TEST_STYLES = ("elderly", "youthful")
TAKE_NAME = re.compile(r"dataset-([12])_(.+?)_([^_]+)_(\d+)$")


def split_of(stem: str) -> tuple[str, str, str] | None:
    """(split, action, style) of a take from its file stem, or None if it belongs to none."""
    m = TAKE_NAME.match(stem)
    if m is None:
        raise DataError(f"{stem}.bvh: file name is not dataset-{{1,2}}_CONTENT_STYLE_NNN.bvh")
    dataset, action, style, _ = m.groups()
    if dataset == "1":
        return "test_unseen_motions", action, style
    if style in TRAIN_STYLES:
        return "train", action, style
    if style in TEST_STYLES:
        return "test_unseen_styles", action, style
    return None


def bnmd_joints(bvh: BVH) -> tuple[np.ndarray, np.ndarray]:
    """17 Human3.6M-layout joints in world mm, and the pelvis, for every frame of a take."""
    try:
        idx = [bvh.index(n) for n in BNMD_TO_H36M.values() if n is not None]
        head = bvh.index(BNMD_HEAD)
    except BVHError as e:
        raise DataError(str(e)) from e
    pos, rot = bvh.forward_kinematics()
    pos = pos * 10.0  # cm -> mm
    out = np.empty((len(pos), 17, 3))
    direct = [j for j, n in enumerate(BNMD_TO_H36M.values()) if n is not None]
    out[:, direct] = pos[:, idx]
    # neck/nose and head top: fixed offsets in the head bone's own frame (no head end site)
    for j, offset in BNMD_HEAD_POINTS.items():
        out[:, j] = pos[:, head] + rot[:, head] @ (np.asarray(offset) * 10.0)
    return out, out[:, 0]


def take_arrays(data: bytes, stem: str, frame_step: int, rig: Rig) -> dict:
    """Everything a split needs from one take: 3D and 2D per camera, frame numbers."""
    bvh = read_bvh(data, name=f"{stem}.bvh", frame_step=frame_step)
    world, pelvis = bnmd_joints(bvh)
    cam = rig.to_camera(world, pelvis)  # (F, K, 17, 3)
    px = project(cam, rig.intrinsics()[None, :, None, :])
    frames = np.arange(len(world), dtype=np.int32) * frame_step
    n_cam = cam.shape[1]
    return {
        "pose3d": cam.reshape(-1, 17, 3).astype(np.float32),
        "pose2d": px.reshape(-1, 17, 2).astype(np.float32),
        "camera": np.tile(np.arange(n_cam), len(world)),
        "frame": np.repeat(frames, n_cam),
    }


def iter_takes(source: Path):
    """Yield (stem, bytes) for every .bvh of a folder or a .tar/.tar.xz archive, in name order
    for folders and archive order for archives."""
    if source.is_dir():
        files = sorted(source.rglob("*.bvh"))
        if not files:
            raise DataError(f"{source}: no .bvh files in this folder. " + HOW_TO_GET)
        for f in files:
            yield f.stem, f.read_bytes()
        return
    try:
        with tarfile.open(source, mode="r|*") as tar:
            found = False
            for member in tar:
                if member.isfile() and member.name.endswith(".bvh"):
                    found = True
                    yield Path(member.name).stem, tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DataError(f"{source}: cannot read the archive ({e})") from e
    if not found:
        raise DataError(f"{source}: no .bvh files in this archive. " + HOW_TO_GET)


_DIGESTS: dict = {}  # (path, size, mtime_ns) -> content digest, for this process


def _digest(path: Path) -> str:
    """SHA-1 of a file's bytes (about 0.3 s for the 87 MB archive), remembered in this
    process while the file's size and modification time stay the same."""
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _DIGESTS:
        with open(path, "rb") as f:
            _DIGESTS[key] = hashlib.file_digest(f, "sha1").hexdigest()
    return _DIGESTS[key]


def source_fingerprint(source: Path) -> str:
    """Content fingerprint of the source: the archive's bytes, or every BVH file's name and
    bytes in a folder. A file edited in place, even to the same size, changes it."""
    if not source.is_dir():
        return _digest(source)
    h = hashlib.sha1()
    for f in sorted(source.rglob("*.bvh")):
        h.update(f"{f.relative_to(source)}:{_digest(f)};".encode())
    return h.hexdigest()


def bnmd_settings(frame_step: int = 4, rig: Rig | None = None) -> dict:
    rig = rig or Rig()
    return {"version": BUILD_VERSION, "frame_step": frame_step, "rig": asdict(rig),
            "mapping": BNMD_TO_H36M, "head_points": BNMD_HEAD_POINTS}


def _take_job(args):
    stem, data, frame_step, rig = args
    try:
        return stem, take_arrays(data, stem, frame_step, rig)
    except BVHError as e:  # one error type for every data CLI to catch
        raise DataError(str(e)) from None


def bounded_map(pool, fn, items, window: int):
    """``pool.map`` in order, with at most ``window`` items in flight: the archive is read
    only as fast as the workers parse it (``Executor.map`` would queue every take's bytes
    first), and a broken file stops the build as soon as its turn comes."""
    pending = deque()
    for item in items:
        pending.append(pool.submit(fn, item))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def build_bnmd17(source: Path, out_dir: Path, frame_step: int = 4, rig: Rig | None = None,
                 workers: int | None = None, progress: bool = True) -> dict:
    """Build the three BNMD-17 splits from ``source`` into ``out_dir``; returns a summary."""
    rig = rig or Rig()
    t0 = time.perf_counter()
    parts = {s: [] for s in SPLITS}
    labels = {s: [] for s in SPLITS}

    def jobs():
        for stem, data in iter_takes(source):
            which = split_of(stem)
            if which is not None:
                yield stem, data, frame_step, rig

    workers = workers or min(2, os.cpu_count() or 1)
    bar = tqdm(desc="BNMD-17 takes", unit="take", disable=not progress)
    with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        results = bounded_map(pool, _take_job, jobs(), 4 * workers) if pool else map(
            _take_job, jobs())
        for stem, arrays in results:
            split, action, style = split_of(stem)
            parts[split].append(arrays)
            labels[split].append((stem, action, style))
            bar.update()
    bar.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {"poses": {}, "takes": {}}
    for split in SPLITS:
        if not parts[split]:
            raise DataError(f"{source}: no takes for split '{split}'")
        summary["poses"][split], summary["takes"][split] = _write_split(
            out_dir / f"{split}.npz", parts[split], labels[split], rig)
    actions = sorted({a for s in SPLITS for _, a, _ in labels[s]})
    styles = sorted({st for s in SPLITS for _, _, st in labels[s]})
    summary.update(actions=len(actions), styles=len(styles),
                   seconds=round(time.perf_counter() - t0, 1))
    return summary


def _write_split(path: Path, parts: list[dict], labels: list[tuple], rig: Rig) -> tuple[int, int]:
    order = np.argsort([stem for stem, _, _ in labels], kind="stable")
    parts = [parts[i] for i in order]
    labels = [labels[i] for i in order]
    action_names = sorted({a for _, a, _ in labels})
    style_names = sorted({s for _, _, s in labels})
    counts = [len(p["pose3d"]) for p in parts]
    split = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    split["take"] = np.repeat(np.arange(len(parts)), counts)
    split["action"] = np.repeat([action_names.index(a) for _, a, _ in labels], counts)
    split["style"] = np.repeat([style_names.index(s) for _, _, s in labels], counts)
    split.update(camera_names=rig.names, action_names=action_names, style_names=style_names,
                 take_names=[stem for stem, _, _ in labels])
    save_split(path, split)
    return len(split["pose3d"]), len(parts)


def bnmd17(source=None, cache=None, frame_step: int = 4, rig: Rig | None = None,
           rebuild: bool = False, progress: bool = True) -> Path:
    """The folder holding the three BNMD-17 split files, built if missing or out of date.

    The folder name is a hash of the source fingerprint and the build settings, so changing
    either builds a new cache beside the old one and an unchanged pair reuses it.
    """
    if not isinstance(frame_step, int) or isinstance(frame_step, bool) or frame_step < 1:
        raise DataError(f"frame_step must be a whole number >= 1, got {frame_step!r}")
    settings = bnmd_settings(frame_step, rig)
    try:
        source = find_source(source)
    except DataError:
        # nothing asked for and no default present: a cache copied here without its source
        # (e.g. onto a GPU machine) still serves if it was built with the same settings
        prebuilt = None
        if not source and not os.environ.get("HPE_DATA"):
            prebuilt = cached_build(find_cache(cache), settings)
        if prebuilt is None:
            raise
        return prebuilt
    key = hashlib.sha1(json.dumps([source_fingerprint(source), settings], sort_keys=True,
                                  default=str).encode()).hexdigest()[:12]
    out = find_cache(cache) / f"bnmd17-{key}"
    if (out / "meta.json").is_file() and not rebuild and all(
            (out / f"{s}.npz").is_file() for s in SPLITS):
        return out
    # build beside the target and move it into place when complete, so that a failure
    # (a bad take, a missing split, Ctrl-C) leaves no half-written folder and keeps an
    # older complete build; a build killed outright leaves its temporary folder, which the
    # next build sweeps away (its name carries the builder's process id)
    out.parent.mkdir(parents=True, exist_ok=True)
    sweep_temporary(out.parent)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-pid{os.getpid()}-"))
    try:
        summary = build_bnmd17(source, tmp, frame_step, rig, progress=progress)
        (tmp / "meta.json").write_text(json.dumps(
            {"source": str(source), "settings": settings, "summary": summary},
            indent=1, default=str))
        tmp.chmod(0o755)
        if out.exists():
            old = tmp.with_name(tmp.name + "-old")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # PermissionError (someone else's live process) counts as alive
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def sweep_temporary(cache: Path) -> list[Path]:
    """Remove temporary build folders (``.bnmd17-<key>-pid<N>-*``) whose builder is gone;
    returns what was removed. A build in progress in another process is left alone."""
    removed = []
    for tmp in cache.glob(".bnmd17-*-pid*-*"):
        m = re.search(r"-pid(\d+)-", tmp.name)
        if tmp.is_dir() and m and not _alive(int(m.group(1))):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def read_meta(folder: Path) -> dict:
    """A cache folder's ``meta.json``, or a :class:`DataError` that says how to rebuild."""
    path = folder / "meta.json"
    try:
        meta = json.loads(path.read_text())
        meta["summary"], meta["settings"]  # noqa: B018 (the keys every reader needs)
        return meta
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataError(f"{path}: damaged cache description ({type(e).__name__}: {e}); "
                        f"rebuild it with python -m lib.data --rebuild") from None


def check_cache(folder: Path) -> dict:
    """Validate a cache folder the way training will read it: its description and every
    split file (keys, shapes, dtypes, finite values). Returns the description."""
    meta = read_meta(folder)
    for s in SPLITS:
        cached_split(folder, s)
    return meta


def cached_split(folder: Path, split: str) -> dict:
    """One split of a cache folder; a damaged file's error says how to rebuild it."""
    try:
        return load_split(folder / f"{split}.npz")
    except DataError as e:
        raise DataError(f"{e}; rebuild the cache with python -m lib.data --rebuild") from None


def cached_build(cache: Path, settings: dict) -> Path | None:
    """The newest complete cache folder built with exactly these settings, if any."""
    found = []
    for meta in cache.glob("bnmd17-*/meta.json"):
        try:
            info = read_meta(meta.parent)
        except DataError:
            continue
        same = json.dumps(info["settings"], sort_keys=True) == json.dumps(
            json.loads(json.dumps(settings, default=str)), sort_keys=True)
        if same and all((meta.parent / f"{s}.npz").is_file() for s in SPLITS):
            found.append((meta.stat().st_mtime, meta.parent))
    return max(found)[1] if found else None


# --------------------------------------------------------------------------------------
# the one way in: a run configuration and a split name -> the split's arrays
# --------------------------------------------------------------------------------------

H36M_SPLITS = ("train", "test")
# the unseen-styles takes re-played on other bodies (lib.bodies), made on the fly: the same
# takes as RIG_TAKES, so that the two splits differ in the body alone
UNSEEN_RIG = "test_unseen_rig"
RIG_TAKES = "test_unseen_styles"


def test_splits(cfg: dict) -> tuple[str, ...]:
    """The test split names of the configuration's dataset."""
    return (*SPLITS[1:], UNSEEN_RIG) if cfg["dataset"] == "bnmd17" else H36M_SPLITS[1:]


def h36m_folder(cfg: dict) -> Path:
    """The Human3.6M cache folder of a configuration (made by ``python -m lib.h36m``); a
    relative path is taken from the repository root, so notebooks and the shell agree."""
    if not cfg.get("h36m_dir"):
        raise DataError("dataset: h36m needs h36m_dir (a folder made by python -m lib.h36m)")
    folder = Path(cfg["h36m_dir"]).expanduser()
    return folder if folder.is_absolute() else REPO / folder


def load(cfg: dict, split: str, progress: bool = False) -> dict:
    """One split of the configuration's dataset (``cfg["dataset"]``: BNMD-17, built and
    cached on first use, or a Human3.6M cache folder) as a dict of arrays.

    The trainer, the evaluation, the studies and the notebooks all read data through here.
    """
    if cfg["dataset"] == "bnmd17":
        if split == UNSEEN_RIG:
            from .bodies import unseen_rig

            return unseen_rig(load(cfg, RIG_TAKES, progress))
        if split not in SPLITS:
            raise DataError(f"unknown BNMD-17 split {split!r}; choose one of "
                            f"{(*SPLITS, UNSEEN_RIG)}")
        folder = bnmd17(cfg.get("source"), cfg.get("cache"), cfg.get("frame_step", 4),
                        progress=progress)
        return cached_split(folder, split)
    if cfg["dataset"] == "h36m":
        if split not in H36M_SPLITS:
            raise DataError(f"unknown Human3.6M split {split!r}; choose one of {H36M_SPLITS}")
        return load_split(h36m_folder(cfg) / f"{split}.npz")
    raise DataError(f"dataset must be 'bnmd17' or 'h36m', got {cfg['dataset']!r}")


def benchmark(source=None, frame_step: int = 4) -> dict:
    """Seconds to build all three splits from ``source`` and to load each split."""
    import shutil

    tmp = Path(tempfile.mkdtemp(prefix="bnmd17-bench-"))
    try:
        t0 = time.perf_counter()
        folder = bnmd17(source, tmp, frame_step, progress=False)
        res = {"source": str(find_source(source)), "cpus": os.cpu_count(),
               "build_s": round(time.perf_counter() - t0, 2)}
        _DIGESTS.clear()
        t0 = time.perf_counter()
        source_fingerprint(find_source(source))  # the cache key's cost, paid on every load
        res["fingerprint_s"] = round(time.perf_counter() - t0, 3)
        for split in SPLITS:
            t0 = time.perf_counter()
            n = len(load_split(folder / f"{split}.npz")["pose3d"])
            res[f"load_{split}_s"] = round(time.perf_counter() - t0, 3)
            res[f"poses_{split}"] = n
        return res
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m lib.data",
                                description="Build the BNMD-17 benchmark cache and print a "
                                            "one-line JSON summary.")
    p.add_argument("--source", help="dataset folder or .tar.xz (default: $HPE_DATA, then "
                                    + ", ".join(str(s) for s in DEFAULT_SOURCES) + ")")
    p.add_argument("--cache", help=f"cache folder (default: $HPE_CACHE, then {DEFAULT_CACHE})")
    p.add_argument("--frame-step", type=int, default=4,
                   help="keep every N-th frame of every take (default 4: 7.5 fps)")
    p.add_argument("--rebuild", action="store_true", help="rebuild even if the cache is fresh")
    p.add_argument("--benchmark", action="store_true",
                   help="time a full build into a fresh temporary cache and the loading of "
                        "each split, print the timings as JSON, delete the temporary cache")
    args = p.parse_args(argv)
    exit_on_sigterm()
    if args.benchmark:
        print(json.dumps(benchmark(args.source, args.frame_step)))
        return
    t0 = time.perf_counter()
    try:
        out = bnmd17(args.source, args.cache, args.frame_step, rebuild=args.rebuild)
        summary = check_cache(out)["summary"]
    except DataError as e:
        raise SystemExit(f"error: {e}") from None
    summary.update(cache=str(out), seconds=round(time.perf_counter() - t0, 1))
    print(json.dumps(summary))

if __name__ == "__main__":
    main()
