"""BNMD-17 building and split files (lib/data.py) on a tiny Bandai-Namco-like dataset that
the tests write themselves: the real skeleton's 22 joint names and hierarchy, 6 channels per
joint, a few frames of small random rotations, file names of the published dataset."""

import io
import json
import os
import re
import tarfile

import numpy as np
import pytest

from lib import bnmd, data
from lib.bnmd import bnmd17, bnmd_joints, find_cache, find_source, split_of
from lib.bvh import read_bvh
from lib.camera import Rig
from lib.splits import SPLITS, DataError, load_split, save_split

# (name, parent, offset in cm): an upright person at rest, facing +Z, left side at +X
SKELETON = [
    ("joint_Root", None, (0, 0, 0)),
    ("Hips", "joint_Root", (0, 93, 0)),
    ("Spine", "Hips", (0, 10, 0)),
    ("Chest", "Spine", (0, 15, 0)),
    ("Neck", "Chest", (0, 22, 0)),
    ("Head", "Neck", (0, 8, 0)),
    ("Shoulder_L", "Chest", (4, 18, 0)),
    ("UpperArm_L", "Shoulder_L", (12, 0, 0)),
    ("LowerArm_L", "UpperArm_L", (27, 0, 0)),
    ("Hand_L", "LowerArm_L", (24, 0, 0)),
    ("Shoulder_R", "Chest", (-4, 18, 0)),
    ("UpperArm_R", "Shoulder_R", (-12, 0, 0)),
    ("LowerArm_R", "UpperArm_R", (-27, 0, 0)),
    ("Hand_R", "LowerArm_R", (-24, 0, 0)),
    ("UpperLeg_L", "Hips", (9, -5, 0)),
    ("LowerLeg_L", "UpperLeg_L", (0, -42, 0)),
    ("Foot_L", "LowerLeg_L", (0, -41, 0)),
    ("Toes_L", "Foot_L", (0, -6, 12)),
    ("UpperLeg_R", "Hips", (-9, -5, 0)),
    ("LowerLeg_R", "UpperLeg_R", (0, -42, 0)),
    ("Foot_R", "LowerLeg_R", (0, -41, 0)),
    ("Toes_R", "Foot_R", (0, -6, 12)),
]
NAMES = [n for n, _, _ in SKELETON]
END_SITES = {"Head": (0, 0, 0), "Hand_L": (8, 0, 0), "Hand_R": (-8, 0, 0),
             "Toes_L": (0, 0, 4), "Toes_R": (0, 0, 4)}
CHANNELS = "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
# Head rotation Rz(90) Rx(90) turns its local x up (world +Y) and local y forward (+Z), the
# frame in which lib.skeleton places neck/nose and head top
HEAD_ROTATION = (90.0, 90.0, 0.0)

FRAMES = 8
TAKES = {  # stem -> expected (split, action, style); None: a style of no split
    "dataset-2_walk_normal_001": ("train", "walk", "normal"),
    "dataset-2_walk_active_002": ("train", "walk", "active"),
    "dataset-2_walk-turn-left_exhausted_001": ("train", "walk-turn-left", "exhausted"),
    "dataset-2_walk_elderly_001": ("test_unseen_styles", "walk", "elderly"),
    "dataset-2_run_youthful_001": ("test_unseen_styles", "run", "youthful"),
    "dataset-1_bow_happy_001": ("test_unseen_motions", "bow", "happy"),
    "dataset-1_kick_normal_001": ("test_unseen_motions", "kick", "normal"),
    "dataset-2_walk_angry_001": None,
}


def header() -> str:
    lines = ["HIERARCHY"]

    def write(name, depth):
        pad = "  " * depth
        offset = next(o for n, _, o in SKELETON if n == name)
        lines.append(f"{pad}{'ROOT' if depth == 0 else 'JOINT'} {name}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {offset[0]:g} {offset[1]:g} {offset[2]:g}")
        lines.append(f"{pad}  {CHANNELS}")
        for child, parent, _ in SKELETON:
            if parent == name:
                write(child, depth + 1)
        if name in END_SITES:
            e = END_SITES[name]
            lines.extend([f"{pad}  End Site", f"{pad}  {{",
                          f"{pad}    OFFSET {e[0]:g} {e[1]:g} {e[2]:g}", f"{pad}  }}"])
        lines.append(pad + "}")

    write("joint_Root", 0)
    return "\n".join(lines) + "\n"


def motion(rng, frames=FRAMES):
    """(frames, 22 * 6): positions = offsets (the root walks along +Z), small rotations."""
    rows = np.zeros((frames, len(SKELETON), 6))
    for j, (name, _, offset) in enumerate(SKELETON):
        rows[:, j, :3] = offset
        if name == "joint_Root":
            rows[:, j, 0] = rng.uniform(-100, 100)
            rows[:, j, 2] = np.linspace(0, rng.uniform(-50, 50), frames)
        else:
            rows[:, j, 3:] = rng.normal(0, 8, (frames, 3))
        if name == "Head":
            rows[:, j, 3:] += HEAD_ROTATION
    return rows.reshape(frames, -1)


def bvh_text(rng, frames=FRAMES, declared=None) -> str:
    body = "\n".join(" ".join(f"{v:.4f}" for v in row) for row in motion(rng, frames))
    return (header() + f"MOTION\nFrames:\t{declared or frames}\nFrame Time:\t0.0333333\n"
            + body + "\n")


def write_dataset(root, takes=TAKES, seed=0):
    """<root>/dataset/Bandai-Namco-Research-Motiondataset-{1,2}/data/<stem>.bvh (+ .json)."""
    rng = np.random.default_rng(seed)
    for stem in takes:
        folder = root / "dataset" / f"Bandai-Namco-Research-Motiondataset-{stem[8]}" / "data"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{stem}.bvh").write_text(bvh_text(rng))
        (folder / f"{stem}.json").write_text('{"content": 0, "style": 0}')  # ignored
    return root / "dataset"


def files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The tiny dataset as a folder, built once with frame_step 2."""
    root = tmp_path_factory.mktemp("bnmd")
    source = write_dataset(root)
    cache = root / "cache"
    out = bnmd17(source=source, cache=cache, frame_step=2, progress=False)
    return {"source": source, "cache": cache, "out": out,
            "splits": {s: load_split(out / f"{s}.npz") for s in SPLITS}}


def test_splits_shapes_and_membership(built):
    splits, out = built["splits"], built["out"]
    assert out.parent == built["cache"] and out.name.startswith("bnmd17-")
    assert files_under(out) == ["meta.json", *sorted(f"{s}.npz" for s in SPLITS)]
    per_take = (FRAMES // 2) * 4  # frames 0, 2, 4, 6 seen by 4 cameras
    for name, split in splits.items():
        expected = sorted(stem for stem, v in TAKES.items() if v and v[0] == name)
        assert list(split["take_names"]) == expected
        n = per_take * len(expected)
        assert split["pose3d"].shape == (n, 17, 3) and split["pose3d"].dtype == np.float32
        assert split["pose2d"].shape == (n, 17, 2) and split["pose2d"].dtype == np.float32
        assert list(split["camera_names"]) == Rig().names
        for key in ("camera", "action", "style", "take", "frame"):
            assert split[key].shape == (n,)
        for t, stem in enumerate(split["take_names"]):
            _, action, style = TAKES[stem]
            rows = split["take"] == t
            assert rows.sum() == per_take
            assert set(split["action_names"][split["action"][rows]]) == {action}
            assert set(split["style_names"][split["style"][rows]]) == {style}
            assert np.array_equal(np.sort(split["frame"][rows]), np.repeat([0, 2, 4, 6], 4))
            assert np.array_equal(np.bincount(split["camera"][rows]), [4, 4, 4, 4])
    assert list(splits["train"]["style_names"]) == ["active", "exhausted", "normal"]
    assert list(splits["train"]["action_names"]) == ["walk", "walk-turn-left"]
    assert list(splits["test_unseen_styles"]["style_names"]) == ["elderly", "youthful"]
    assert list(splits["test_unseen_motions"]["action_names"]) == ["bow", "kick"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["summary"]["poses"] == {s: len(splits[s]["pose3d"]) for s in SPLITS}
    assert meta["summary"]["takes"] == {"train": 3, "test_unseen_styles": 2,
                                        "test_unseen_motions": 2}
    assert meta["settings"]["frame_step"] == 2


def test_poses_are_seen_by_the_virtual_cameras(built):
    split = built["splits"]["train"]
    pose3d, pose2d = split["pose3d"].astype(np.float64), split["pose2d"].astype(np.float64)
    # the pelvis (Hips at 93 cm, root not rotated) is on every optical axis at the distance
    # from a camera 5 m away horizontally and 1.6 m high
    np.testing.assert_allclose(pose3d[:, 0, :2], 0.0, atol=0.05)
    np.testing.assert_allclose(pose3d[:, 0, 2], np.hypot(5000.0, 1600.0 - 930.0), rtol=1e-6)
    assert 4000 < pose3d[..., 2].min() and pose3d[..., 2].max() < 6000
    # 2D is the projection of 3D with the camera's intrinsics
    K = Rig().intrinsics()[split["camera"]]
    uv = pose3d[..., :2] / pose3d[..., 2:] * K[:, None, :2] + K[:, None, 2:]
    np.testing.assert_allclose(pose2d, uv, atol=0.01)
    np.testing.assert_allclose(pose2d[:, 0], K[:, 2:], atol=0.01)
    # upright: head above pelvis above ankles (image v grows downwards), all in the image
    assert (pose2d[:, 10, 1] < pose2d[:, 8, 1]).all() and (pose2d[:, 8, 1] < pose2d[:, 0, 1]).all()
    assert (pose2d[:, 0, 1] < pose2d[:, 3, 1]).all() and (pose2d[:, 0, 1] < pose2d[:, 6, 1]).all()
    assert (pose2d > 0).all() and (pose2d < 1000).all()
    # bone lengths in mm come from the offsets in cm: thigh 42 cm, shin 41 cm
    thigh = np.linalg.norm(pose3d[:, 2] - pose3d[:, 1], axis=-1)
    shin = np.linalg.norm(pose3d[:, 6] - pose3d[:, 5], axis=-1)
    np.testing.assert_allclose(thigh, 420.0, rtol=1e-5)
    np.testing.assert_allclose(shin, 410.0, rtol=1e-5)
    # the head points sit above the neck joint (thorax): 4+15 cm up the head bone at most
    up = pose3d[:, 8, 1] - pose3d[:, 10, 1]
    assert (up > 120).all() and (up < 270).all()
    # cameras at azimuth 45 and 135 see the person (facing +Z, left at +X) from the front:
    # their left hip on the image's right; cameras at 225 and 315 from behind
    front = split["camera"] < 2
    dx = pose2d[:, 4, 0] - pose2d[:, 1, 0]
    assert (dx[front] > 0).all() and (dx[~front] < 0).all()


def test_take_and_frame_trace_back(built):
    """Row i of a split is frame `frame[i]` of take `take_names[take[i]]`, camera camera[i]."""
    split = built["splits"]["test_unseen_styles"]
    stem = "dataset-2_run_youthful_001"
    path = next(built["source"].rglob(f"{stem}.bvh"))
    # redo the construction for this one take by hand: FK -> camera 315 -> frame 6
    world, pelvis = bnmd_joints(read_bvh(path))
    cam = Rig().to_camera(world[6:7], pelvis[6:7])[0, 3]
    t = list(split["take_names"]).index(stem)
    i = np.flatnonzero((split["take"] == t) & (split["frame"] == 6) & (split["camera"] == 3))
    assert len(i) == 1
    np.testing.assert_allclose(split["pose3d"][i[0]], cam, atol=1e-3)


def test_archive_gives_identical_arrays(built, tmp_path):
    archive = tmp_path / "bandai-namco-motion.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        tar.add(built["source"], arcname="dataset")
    out = bnmd17(source=archive, cache=tmp_path / "cache", frame_step=2, progress=False)
    assert out != built["out"]  # another source: its own cache folder
    for name, split in built["splits"].items():
        again = load_split(out / f"{name}.npz")
        assert again.keys() == split.keys()
        for key in split:
            assert np.array_equal(again[key], split[key]), (name, key)


def test_cache_reuse_and_rebuild(tmp_path, monkeypatch):
    source = write_dataset(tmp_path, dict.fromkeys(
        ("dataset-2_walk_normal_001", "dataset-2_walk_elderly_001", "dataset-1_bow_happy_001")))
    cache = tmp_path / "cache"
    out = bnmd17(source=source, cache=cache, frame_step=4, progress=False)
    stamp = 1_000_000_000
    for f in out.iterdir():
        os.utime(f, (stamp, stamp))
    assert bnmd17(source=source, cache=cache, frame_step=4, progress=False) == out
    assert all(f.stat().st_mtime == stamp for f in out.iterdir())  # not rebuilt

    other = bnmd17(source=source, cache=cache, frame_step=3, progress=False)
    assert other != out and other.parent == cache
    assert len(load_split(other / "train.npz")["pose3d"]) == 3 * 4  # frames 0, 3, 6
    assert len(load_split(out / "train.npz")["pose3d"]) == 2 * 4  # frames 0, 4

    assert bnmd17(source=source, cache=cache, frame_step=4, rebuild=True, progress=False) == out
    assert all(f.stat().st_mtime > stamp for f in out.iterdir())
    assert sorted(p.name for p in cache.iterdir()) == sorted([out.name, other.name])

    # a changed source (another take) gets a new folder
    write_dataset(tmp_path, {"dataset-2_run_normal_001": None}, seed=5)
    third = bnmd17(source=source, cache=cache, frame_step=4, progress=False)
    assert third not in (out, other)
    assert len(load_split(third / "train.npz")["take_names"]) == 2

    # with no source anywhere, a cache built with the same settings still serves (e.g. a
    # cache copied onto another machine); with other settings it is an error
    monkeypatch.delenv("HPE_DATA", raising=False)
    monkeypatch.setattr("lib.bnmd.DEFAULT_SOURCES", (tmp_path / "gone",))
    assert bnmd17(cache=cache, frame_step=3, progress=False) == other
    with pytest.raises(DataError, match="gone"):
        bnmd17(cache=cache, frame_step=5, progress=False)
    # but a source that was asked for and is missing is an error, never a silent fallback
    with pytest.raises(DataError, match="argument: does not exist"):
        bnmd17(source=tmp_path / "typo", cache=cache, frame_step=3, progress=False)


def test_truncated_bvh_names_the_file_and_leaves_nothing(tmp_path):
    source = write_dataset(tmp_path)
    bad = next(source.rglob("dataset-2_walk_elderly_001.bvh"))
    bad.write_text(bvh_text(np.random.default_rng(1), frames=5, declared=FRAMES))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="dataset-2_walk_elderly_001.bvh.*truncated"):
        bnmd17(source=source, cache=cache, frame_step=2, progress=False)
    with pytest.raises(SystemExit, match=r"^error: .*dataset-2_walk_elderly_001.bvh: truncated"):
        data.main(["--source", str(source), "--cache", str(cache), "--frame-step", "2"])
    with pytest.raises(SystemExit, match="^error: frame_step must be a whole number >= 1, got 0"):
        data.main(["--source", str(source), "--cache", str(cache), "--frame-step", "0"])
    assert not cache.exists() or files_under(cache) == []
    assert not cache.exists() or list(cache.iterdir()) == []


def test_failure_after_some_splits_leaves_no_half_written_cache(tmp_path):
    """A source without dataset-1 fails on the last split, after the first two were made:
    the cache must not keep a folder with some split files and no meta.json."""
    source = write_dataset(tmp_path, {k: v for k, v in TAKES.items() if k[8] == "2"})
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="no takes for split 'test_unseen_motions'"):
        bnmd17(source=source, cache=cache, frame_step=4, progress=False)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_rebuild_failure_keeps_the_old_cache(tmp_path, monkeypatch):
    source = write_dataset(tmp_path)
    cache = tmp_path / "cache"
    out = bnmd17(source=source, cache=cache, frame_step=4, progress=False)
    stamp = 1_000_000_000
    for f in out.iterdir():
        os.utime(f, (stamp, stamp))
    real_write = bnmd._write_split
    calls = []

    def fail_on_second_split(*args, **kwargs):  # the first split gets written, then a crash
        calls.append(args[0])
        if len(calls) > 1:
            raise DataError("simulated failure")
        return real_write(*args, **kwargs)

    monkeypatch.setattr(bnmd, "_write_split", fail_on_second_split)
    with pytest.raises(DataError, match="simulated"):
        bnmd17(source=source, cache=cache, frame_step=4, rebuild=True, progress=False)
    assert len(calls) == 2
    assert [p.name for p in cache.iterdir()] == [out.name]  # no temporaries left beside it
    assert files_under(out) == ["meta.json", *sorted(f"{s}.npz" for s in SPLITS)]
    assert all(f.stat().st_mtime == stamp for f in out.iterdir())  # the old build untouched


def test_missing_and_empty_sources(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=f"{empty}: no .bvh files"):
        bnmd17(source=empty, cache=tmp_path / "cache", progress=False)
    archive = tmp_path / "empty.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        info = tarfile.TarInfo("README.md")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    with pytest.raises(DataError, match="empty.tar.xz: no .bvh files in this archive"):
        bnmd17(source=archive, cache=tmp_path / "cache", progress=False)
    broken = tmp_path / "broken.tar.xz"
    broken.write_bytes(b"not an archive at all" * 10)
    with pytest.raises(DataError, match="broken.tar.xz: cannot read the archive"):
        bnmd17(source=broken, cache=tmp_path / "cache", progress=False)

    nowhere = tmp_path / "no" / "such" / "data"
    monkeypatch.setenv("HPE_DATA", str(nowhere))
    looked = re.escape(f"looked at {nowhere} ($HPE_DATA: does not exist)")
    with pytest.raises(DataError, match=looked):
        bnmd17(cache=tmp_path / "cache", progress=False)
    with pytest.raises(DataError, match="BandaiNamcoResearchInc"):  # says how to get it
        find_source()
    with pytest.raises(DataError, match=r"nope \(argument: does not exist\)"):
        find_source(tmp_path / "nope")
    assert find_source(empty) == empty  # the argument wins over $HPE_DATA


def test_load_split_errors_name_the_file(built, tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(DataError, match="junk.npz: not a readable .npz"):
        load_split(junk)
    np.save(tmp_path / "array.npy", np.zeros((4, 17, 3)))
    os.replace(tmp_path / "array.npy", tmp_path / "array.npz")
    with pytest.raises(DataError, match=r"array.npz: a single array \(.npy\)"):
        load_split(tmp_path / "array.npz")
    with pytest.raises(DataError, match="absent.npz: no such split file"):
        load_split(tmp_path / "absent.npz")
    split = dict(built["splits"]["train"])
    del split["pose2d"]
    lacking = tmp_path / "lacking.npz"
    np.savez(lacking, **split)
    with pytest.raises(DataError, match=r"lacking.npz: missing key\(s\) \['pose2d'\]"):
        load_split(lacking)
    split = dict(built["splits"]["train"])
    split["pose3d"] = split["pose3d"].copy()
    split["pose3d"][3, 2, 1] = np.nan
    with pytest.raises(DataError, match="nan.npz: NaN"):
        save_split(tmp_path / "nan.npz", split)
    assert not (tmp_path / "nan.npz").exists()
    split["pose3d"] = split["pose3d"][:, :16]
    np.savez(tmp_path / "shape.npz", **split)
    with pytest.raises(DataError, match=r"shape.npz: pose3d/pose2d must be"):
        load_split(tmp_path / "shape.npz")


def test_save_split_round_trip_and_no_temporaries(built, tmp_path):
    split = built["splits"]["test_unseen_motions"]
    path = save_split(tmp_path / "sub" / "copy.npz", split)
    assert files_under(tmp_path / "sub") == ["copy.npz"]
    again = load_split(path)
    for key in split:
        assert np.array_equal(again[key], split[key]), key


def test_find_cache_and_split_of(tmp_path, monkeypatch):
    monkeypatch.delenv("HPE_CACHE", raising=False)
    assert find_cache().name == "cache"
    monkeypatch.setenv("HPE_CACHE", str(tmp_path / "elsewhere"))
    assert find_cache() == tmp_path / "elsewhere"
    assert find_cache(tmp_path / "explicit") == tmp_path / "explicit"
    for stem, expected in TAKES.items():
        assert split_of(stem) == expected, stem
    assert split_of("dataset-1_dance-long_feminine_012") == (
        "test_unseen_motions", "dance-long", "feminine")
    assert split_of("dataset-2_raise-up-both_masculine_003") == (
        "train", "raise-up-both", "masculine")
    for bad in ("dataset-3_walk_normal_001", "walk_normal_001", "dataset-2_walk_normal"):
        with pytest.raises(DataError, match=f"{bad}.bvh: file name"):
            split_of(bad)


def test_a_take_edited_in_place_to_the_same_size_gets_a_new_cache(tmp_path):
    source = write_dataset(tmp_path, dict.fromkeys(
        ("dataset-2_walk_normal_001", "dataset-2_walk_elderly_001", "dataset-1_bow_happy_001")))
    cache = tmp_path / "cache"
    out = bnmd17(source=source, cache=cache, frame_step=4, progress=False)
    take = next(source.rglob("dataset-2_walk_normal_001.bvh"))
    text = take.read_text()
    lines = text.split("\n")
    k = next(i for i, ln in enumerate(lines) if ln.startswith("Frame Time")) + 1
    edited = lines[k].replace("1", "2", 1)  # one digit of the first frame changed
    assert edited != lines[k]
    lines[k] = edited
    take.write_text("\n".join(lines))
    assert len(take.read_text()) == len(text)  # same size
    fresh = bnmd17(source=source, cache=cache, frame_step=4, progress=False)
    assert fresh != out
    assert not np.array_equal(load_split(fresh / "train.npz")["pose3d"],
                              load_split(out / "train.npz")["pose3d"])


def test_nan_in_a_take_names_the_take_and_line(tmp_path):
    source = write_dataset(tmp_path)
    bad = next(source.rglob("dataset-2_walk_elderly_001.bvh"))
    lines = bad.read_text().split("\n")
    k = next(i for i, ln in enumerate(lines) if ln.startswith("Frame Time")) + 1
    values = lines[k].split()
    values[4] = "nan"
    lines[k] = " ".join(values)
    bad.write_text("\n".join(lines))
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match=rf"dataset-2_walk_elderly_001.bvh: line {k + 1}: "
                                        r"channel 5 is nan"):
        bnmd17(source=source, cache=cache, frame_step=1, progress=False)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_temporary_folders_of_dead_builds_are_swept(tmp_path):
    source = write_dataset(tmp_path)
    cache = tmp_path / "cache"
    dead = cache / ".bnmd17-0123456789ab-pid999999999-x1"  # no such process
    live = cache / f".bnmd17-0123456789ab-pid{os.getpid()}-x2"  # a build in progress
    for d in (dead, live):
        (d / "part").mkdir(parents=True)
    out = bnmd17(source=source, cache=cache, frame_step=4, progress=False)
    assert sorted(p.name for p in cache.iterdir()) == sorted([out.name, live.name])


@pytest.mark.parametrize("damage, expected", [
    (lambda out: (out / "meta.json").write_text('{"summ'), "meta.json: damaged cache"),
    (lambda out: (out / "train.npz").write_bytes((out / "train.npz").read_bytes()[:100]),
     "train.npz: not a readable .npz"),
    (lambda out: np.savez(out / "test_unseen_styles.npz", pose3d=np.zeros((2, 17, 3))),
     "test_unseen_styles.npz: missing key"),
])
def test_lib_data_validates_an_existing_cache(tmp_path, capsys, damage, expected):
    source = write_dataset(tmp_path)
    cache = tmp_path / "cache"
    out = bnmd17(source=source, cache=cache, frame_step=4, progress=False)
    damage(out)
    args = ["--source", str(source), "--cache", str(cache), "--frame-step", "4"]
    with pytest.raises(SystemExit) as info:
        data.main(args)
    message = str(info.value)
    assert expected in message and "--rebuild" in message
    data.main([*args, "--rebuild"])  # and the advice works
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["cache"] == str(out)


def test_the_unseen_rig_re_plays_the_unseen_styles_takes(built):
    from lib.config import make_config
    from lib.data import RIG_TAKES, UNSEEN_RIG, load

    cfg = make_config({"source": str(built["source"]), "cache": str(built["cache"]),
                       "frame_step": 2})
    rig, same = load(cfg, UNSEEN_RIG), built["splits"][RIG_TAKES]
    assert RIG_TAKES == "test_unseen_styles"  # the rig target compares with this split
    for key in ("take", "frame", "camera", "action"):
        np.testing.assert_array_equal(rig[key], same[key])
    assert not np.allclose(rig["pose2d"], same["pose2d"])  # other bodies, other 2D
    np.testing.assert_allclose(rig["pose3d"][:, 0], same["pose3d"][:, 0], atol=1e-3)  # pelvis
