"""BNMD-17: Bandai-Namco BVH takes -> 17 joints -> four virtual cameras -> three splits,
built once into a cache folder keyed by the source's content and the construction's
settings (:func:`bnmd17`). ``lib.data.load`` is the way in for everything else.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
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
from .config import REPO
from .skeleton import BNMD_HEAD, BNMD_HEAD_POINTS, BNMD_TO_H36M
from .splits import SPLITS, DataError, load_split, save_split

# --------------------------------------------------------------------------------------
# Finding the data
# --------------------------------------------------------------------------------------

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
