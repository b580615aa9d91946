"""Human3.6M loader on a tiny file pair of the standard format that the tests write themselves.

Three subjects (S1, S5 train; S9 test), two sequences each, random-but-plausible 32-joint
poses in metres, world coordinates (z up), about 4.5 m from four cameras that look at the
subject. The 2D files are made by projecting with :data:`lib.h36m.H36M_INTRINSICS`: a
noise-free 32-joint "GT" file and a 17-joint "CPN-like" file with 1 px noise.
"""

import json
import warnings

import numpy as np
import pytest

from lib.h36m import (
    CAMERA_IDS,
    H36M_32_TO_17,
    H36M_INTRINSICS,
    action_name,
    build_h36m_cache,
    estimate_extrinsics,
    load_h36m,
    main,
)
from lib.splits import DataError, load_split

SEQUENCES = {"S1": ("Directions 1", "TakingPhoto"), "S5": ("Directions", "Photo 1"),
             "S9": ("Directions 1", "Walking")}
EXTRA_2D = ("S5", "Directions", 3)  # this sequence's 2D has 3 frames more than its 3D

# a rough standing pose, 17 joints in metres (x forward, y left, z up), pelvis at 0.9 m
STANDING = np.array([
    [0, 0, .90], [0, -.13, .90], [0, -.13, .48], [0, -.13, .06],
    [0, .13, .90], [0, .13, .48], [0, .13, .06],
    [0, 0, 1.13], [0, 0, 1.38], [.05, 0, 1.48], [0, 0, 1.60],
    [0, .18, 1.36], [0, .20, 1.08], [.05, .20, .85],
    [0, -.18, 1.36], [0, -.20, 1.08], [.05, -.20, .85],
])  # fmt: skip


def look_at(position, target):
    """World -> camera (x right, y down, z forward) rotation and translation."""
    z = (target - position) / np.linalg.norm(target - position)
    x = np.cross(z, [0.0, 0.0, 1.0])
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z])
    return R, -R @ position


def project(world, R, t, cam):
    camera = world @ R.T + t
    f, c = (np.asarray(H36M_INTRINSICS[cam][k]) for k in ("f", "c"))
    return camera[..., :2] / camera[..., 2:] * f + c


def random_sequence(rng, frames):
    """(frames, 32, 3) metres: the standing pose turning, walking and wobbling."""
    yaw = rng.uniform(0, 2 * np.pi) + np.linspace(0, rng.uniform(-1, 1), frames)
    turn = np.zeros((frames, 3, 3))
    turn[:, 0, 0] = turn[:, 1, 1] = np.cos(yaw)
    turn[:, 0, 1], turn[:, 1, 0] = -np.sin(yaw), np.sin(yaw)
    turn[:, 2, 2] = 1
    pose17 = STANDING + rng.normal(0, 0.03, (frames, 17, 3))
    root = np.linspace(rng.uniform(-1, 1, 3), rng.uniform(-1, 1, 3), frames) * [1, 1, 0]
    pose17 = pose17 @ turn.transpose(0, 2, 1) + root[:, None]
    pose32 = np.repeat(pose17[:, :1], 32, axis=1) + rng.normal(0, 0.05, (frames, 32, 3))
    pose32[:, list(H36M_32_TO_17)] = pose17
    return pose32.astype(np.float32)


@pytest.fixture(scope="module")
def h36m(tmp_path_factory):
    """Write the tiny file pair; return the paths and the truth."""
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("h36m")
    world, extrinsics, gt2d, cpn2d = {}, {}, {}, {}
    for s, subject in enumerate(SEQUENCES):
        extrinsics[subject] = {}
        for k, cam in enumerate(CAMERA_IDS):
            angle = np.pi / 4 + k * np.pi / 2 + 0.2 * s
            position = np.array([4.5 * np.cos(angle), 4.5 * np.sin(angle), 1.6 + 0.1 * s])
            extrinsics[subject][cam] = look_at(position, np.array([0.1 * s, 0, 1.0]))
        world[subject], gt2d[subject], cpn2d[subject] = {}, {}, {}
        for seq in SEQUENCES[subject]:
            extra = EXTRA_2D[2] if (subject, seq) == EXTRA_2D[:2] else 0
            poses = random_sequence(rng, int(rng.integers(30, 60)) + extra)
            views = [project(poses.astype(np.float64), *extrinsics[subject][cam], cam)
                     .astype(np.float32) for cam in CAMERA_IDS]
            world[subject][seq] = poses[:len(poses) - extra]
            gt2d[subject][seq] = views
            cpn2d[subject][seq] = [(v[:, list(H36M_32_TO_17)] + rng.normal(0, 1, (len(v), 17, 2)))
                                   .astype(np.float32) for v in views]
    paths = {name: folder / f"{name}.npz" for name in ("3d", "gt", "cpn")}
    np.savez_compressed(paths["3d"], positions_3d=world)
    np.savez_compressed(paths["gt"], positions_2d=gt2d,
                        metadata={"layout_name": "h36m", "num_joints": 32})
    np.savez_compressed(paths["cpn"], positions_2d=cpn2d,
                        metadata={"layout_name": "h36m", "num_joints": 17})
    loaded = {name: load_h36m(paths["3d"], paths[name]) for name in ("gt", "cpn")}
    return {"paths": paths, "world": world, "extrinsics": extrinsics, "gt2d": gt2d,
            "cpn2d": cpn2d, "loaded": loaded, "folder": folder}


def rows(split, take, camera):
    """Indices of a split's rows of one take ("S1/Walking") seen by one camera id."""
    names = list(split["take_names"])
    cam = list(split["camera_names"]).index(camera)
    return np.flatnonzero((split["take"] == names.index(take)) & (split["camera"] == cam))


def camera_truth(h36m, subject, seq, cam, frames):
    R, t = h36m["extrinsics"][subject][cam]
    return (h36m["world"][subject][seq][frames][:, list(H36M_32_TO_17)] @ R.T + t) * 1000


def random_camera(rng):
    R = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    return R * np.linalg.det(R), rng.normal(0, 0.5, 3) + [0, 0, 5]


def test_constants_and_action_names():
    assert tuple(H36M_INTRINSICS) == CAMERA_IDS
    assert all(set(v) == {"f", "c", "size"} for v in H36M_INTRINSICS.values())
    assert [action_name(a) for a in ("Walking 1", "WalkDog", "TakingPhoto 1", "Sitting 2")] \
        == ["Walking", "WalkDog", "Photo", "Sitting"]


def test_estimate_extrinsics_exact_and_noisy():
    rng = np.random.default_rng(1)
    cam = CAMERA_IDS[2]
    f, c = H36M_INTRINSICS[cam]["f"], H36M_INTRINSICS[cam]["c"]
    points = rng.normal(0, 0.5, (2000, 3))
    R, t = random_camera(rng)
    pixels = project(points, R, t, cam)
    R1, t1, rms = estimate_extrinsics(points, pixels, f, c)
    assert np.abs(R1 - R).max() < 1e-6 and np.abs(t1 - t).max() < 1e-6 and rms < 1e-6
    R2, t2, rms = estimate_extrinsics(points, pixels + rng.normal(0, 1, pixels.shape), f, c)
    assert np.abs(t2 - t).max() < 0.005 and np.abs(R2 - R).max() < 1e-3
    assert 1.2 < rms < 1.6  # sqrt(2) px for 1 px noise per coordinate
    assert np.allclose(R2 @ R2.T, np.eye(3)) and np.isclose(np.linalg.det(R2), 1)


def test_split_membership_shapes_dtypes(h36m):
    splits, info = h36m["loaded"]["gt"]
    train, test = splits["train"], splits["test"]
    assert list(train["style_names"]) == ["S1", "S5"] and list(test["style_names"]) == ["S9"]
    assert list(train["take_names"]) == ["S1/Directions 1", "S1/TakingPhoto",
                                         "S5/Directions", "S5/Photo 1"]
    assert list(train["camera_names"]) == list(CAMERA_IDS)
    assert list(train["action_names"]) == ["Directions", "Photo", "Walking"]
    frames = {s: sum(len(h36m["world"][s][q]) for q in SEQUENCES[s]) for s in SEQUENCES}
    assert len(train["pose3d"]) == 4 * (frames["S1"] + frames["S5"])
    assert len(test["pose3d"]) == 4 * frames["S9"]
    for split in splits.values():
        assert split["pose3d"].shape[1:] == (17, 3) and split["pose3d"].dtype == np.float32
        assert split["pose2d"].shape[1:] == (17, 2) and split["pose2d"].dtype == np.float32
        assert split["camera"].dtype == np.int16 and split["take"].dtype == np.int32
    assert info["joints_2d"] == 32 and info["layout_2d"] == "h36m"
    assert info["extrinsics_source"] == "estimated"


def test_gt_pose3d_in_camera_coordinates_and_pose2d_as_given(h36m):
    splits, info = h36m["loaded"]["gt"]
    for split in splits.values():
        for take in split["take_names"]:
            subject, seq = take.split("/")
            for k, cam in enumerate(CAMERA_IDS):
                i = rows(split, take, cam)
                frames = split["frame"][i]
                assert np.array_equal(frames, np.arange(len(h36m["world"][subject][seq])))
                truth = camera_truth(h36m, subject, seq, cam, frames)
                assert np.abs(split["pose3d"][i] - truth).max() < 1e-3  # mm
                given = h36m["gt2d"][subject][seq][k][frames][:, list(H36M_32_TO_17)]
                assert np.array_equal(split["pose2d"][i], given.astype(np.float32))
                R, t = h36m["extrinsics"][subject][cam]
                got = info["cameras"][cam][subject]
                assert np.abs(np.array(got["R"]) - R).max() < 1e-6
                assert np.abs(np.array(got["t"]) - t).max() < 1e-6
    assert max(r for cams in info["rms_px"].values() for r in cams.values()) < 1e-3


def test_frame_count_mismatch_is_truncated(h36m):
    subject, seq, extra = EXTRA_2D
    splits, info = h36m["loaded"]["gt"]
    n3d = len(h36m["world"][subject][seq])
    assert info["truncated"] == [(subject, seq, n3d, n3d + extra)]
    assert len(rows(splits["train"], f"{subject}/{seq}", CAMERA_IDS[0])) == n3d


def test_cpn_like_17_joint_file(h36m):
    splits, info = h36m["loaded"]["cpn"]
    assert info["joints_2d"] == 17
    split = splits["test"]
    i = rows(split, "S9/Walking", CAMERA_IDS[1])
    assert np.array_equal(split["pose2d"][i], h36m["cpn2d"]["S9"]["Walking"][1])
    for subject, cams in info["rms_px"].items():
        for cam, rms in cams.items():
            assert 1.2 < rms < 1.6
            R, t = h36m["extrinsics"][subject][cam]
            assert np.abs(np.array(info["cameras"][cam][subject]["t"]) - t).max() < 0.01  # m
            assert np.abs(np.array(info["cameras"][cam][subject]["R"]) - R).max() < 2e-3


def test_cameras_json_is_used(h36m, tmp_path):
    shift = np.array([0.1, -0.05, 0.2])
    cameras = {cam: {s: {"R": h36m["extrinsics"][s][cam][0].tolist(),
                         "t": (h36m["extrinsics"][s][cam][1] + shift).tolist()}
                     for s in SEQUENCES} for cam in CAMERA_IDS}
    cameras["intrinsics"] = {CAMERA_IDS[0]: {"f": [1000.0, 1000.0], "c": [500.0, 500.0]}}
    path = tmp_path / "cameras.json"
    path.write_text(json.dumps(cameras))
    with pytest.warns(UserWarning, match="reprojection RMS"):  # shifted cameras misfit the 2D
        splits, info = load_h36m(h36m["paths"]["3d"], h36m["paths"]["gt"], cameras=path,
                                 subjects=["S9"])
    assert info["extrinsics_source"] == str(path) and len(splits["train"]["pose3d"]) == 0
    assert info["cameras"]["intrinsics"][CAMERA_IDS[0]]["f"] == [1000.0, 1000.0]
    split = splits["test"]
    i = rows(split, "S9/Walking", CAMERA_IDS[3])
    truth = camera_truth(h36m, "S9", "Walking", CAMERA_IDS[3], split["frame"][i])
    assert np.abs(split["pose3d"][i] - truth - shift * 1000).max() < 1e-3
    assert info["rms_px"]["S9"][CAMERA_IDS[3]] > 10
    del cameras[CAMERA_IDS[2]]["S9"]
    path.write_text(json.dumps(cameras))
    with pytest.raises(DataError, match=f"cameras.json: no extrinsics.*{CAMERA_IDS[2]}/S9"):
        load_h36m(h36m["paths"]["3d"], h36m["paths"]["gt"], cameras=path, subjects=["S9"])


def test_frame_step(h36m):
    splits, _ = load_h36m(h36m["paths"]["3d"], h36m["paths"]["gt"], frame_step=4,
                          subjects=["S9"])
    i = rows(splits["test"], "S9/Walking", CAMERA_IDS[0])
    n = len(h36m["world"]["S9"]["Walking"])
    assert np.array_equal(splits["test"]["frame"][i], np.arange(0, n, 4))


def test_errors_name_the_file(h36m, tmp_path):
    missing = tmp_path / "nope_3d.npz"
    with pytest.raises(DataError, match="nope_3d.npz.*no such file"):
        load_h36m(missing, h36m["paths"]["gt"])
    wrong = tmp_path / "wrong_keys.npz"
    np.savez(wrong, poses=np.zeros(3))
    with pytest.raises(DataError, match=r"wrong_keys.npz: no 'positions_2d' key.*\['poses'\]"):
        load_h36m(h36m["paths"]["3d"], wrong)
    with pytest.raises(DataError, match=r"wrong_keys.npz: no 'positions_3d' key"):
        load_h36m(wrong, h36m["paths"]["gt"])


def test_bad_arrays_and_missing_2d(h36m, tmp_path):
    world = {s: dict(seqs) for s, seqs in h36m["world"].items()}
    world["S9"]["Walking"] = world["S9"]["Walking"].copy()
    world["S9"]["Walking"][5, 3, 1] = np.nan
    np.savez(tmp_path / "nan_3d.npz", positions_3d=world)
    with pytest.raises(DataError, match="nan_3d.npz: S9/Walking: NaN"):
        load_h36m(tmp_path / "nan_3d.npz", h36m["paths"]["gt"])
    world["S9"]["Walking"] = world["S9"]["Walking"][:, :20]
    np.savez(tmp_path / "shape_3d.npz", positions_3d=world)
    with pytest.raises(DataError, match=r"shape_3d.npz: S9/Walking: shape \(\d+, 20, 3\)"):
        load_h36m(tmp_path / "shape_3d.npz", h36m["paths"]["gt"])
    views = {s: dict(seqs) for s, seqs in h36m["cpn2d"].items()}
    views["S1"]["TakingPhoto"] = [v[..., :1] for v in views["S1"]["TakingPhoto"]]
    np.savez(tmp_path / "shape_2d.npz", positions_2d=views)
    with pytest.raises(DataError, match=rf"shape_2d.npz: S1/TakingPhoto camera {CAMERA_IDS[0]}"):
        load_h36m(h36m["paths"]["3d"], tmp_path / "shape_2d.npz")
    world["S9"]["Walking"] = h36m["world"]["S9"]["Walking"]
    world["S9"]["Sitting 1"] = world["S9"]["Walking"]  # no 2D for this one
    np.savez(tmp_path / "more_3d.npz", positions_3d=world)
    with pytest.warns(UserWarning, match=r"no 2D for 1 sequence.*S9/Sitting 1"):
        splits, info = load_h36m(tmp_path / "more_3d.npz", h36m["paths"]["gt"],
                                 subjects=["S9"])
    assert info["skipped"] == ["S9/Sitting 1"]
    assert list(splits["test"]["take_names"]) == ["S9/Directions 1", "S9/Walking"]


def test_build_cache_loads_with_load_split(h36m, tmp_path):
    summary = build_h36m_cache(h36m["paths"]["3d"], h36m["paths"]["gt"], tmp_path / "cache")
    splits, _ = h36m["loaded"]["gt"]
    for name in ("train", "test"):
        split = load_split(tmp_path / "cache" / f"{name}.npz")
        assert summary["poses"][name] == len(split["pose3d"])
        for key, value in splits[name].items():
            assert np.array_equal(split[key], value), key
    # the written cameras.json reproduces the same split when passed back
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again, info = load_h36m(h36m["paths"]["3d"], h36m["paths"]["gt"],
                                cameras=summary["paths"]["cameras"], subjects=["S9"])
    assert np.abs(again["test"]["pose3d"] - splits["test"]["pose3d"]).max() < 1e-3


def test_command_line(h36m, tmp_path, capsys):
    out = tmp_path / "cli"
    main(["--3d", str(h36m["paths"]["3d"]), "--2d", str(h36m["paths"]["gt"]), "--out", str(out),
          "--frame-step", "2"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    summary = json.loads(lines[0])
    assert sorted(p.name for p in out.iterdir()) == ["cameras.json", "test.npz", "train.npz"]
    test = load_split(out / "test.npz")
    frames = sum((len(h36m["world"]["S9"][q]) + 1) // 2 for q in SEQUENCES["S9"])
    assert summary["poses"]["test"] == len(test["pose3d"]) == 4 * frames
    assert summary["extrinsics_source"] == "estimated" and summary["joints_2d"] == 32
    # the CPN-like file with the cameras just estimated from the GT file
    main(["--3d", str(h36m["paths"]["3d"]), "--2d", str(h36m["paths"]["cpn"]),
          "--out", str(tmp_path / "cpn"), "--cameras", str(out / "cameras.json")])
    summary = json.loads(capsys.readouterr().out)
    assert summary["extrinsics_source"] == str(out / "cameras.json")
    assert summary["joints_2d"] == 17
    # errors: a clear message and a non-zero exit, no traceback
    with pytest.raises(SystemExit) as e:
        main(["--3d", str(tmp_path / "missing.npz"), "--2d", str(h36m["paths"]["gt"]),
              "--out", str(tmp_path / "x")])
    assert e.value.code == f"error: {tmp_path / 'missing.npz'}: no such file"
    with pytest.raises(SystemExit) as e:
        main(["--3d", str(h36m["paths"]["3d"]), "--2d", str(h36m["paths"]["gt"]),
              "--out", str(tmp_path / "x"), "--cameras", str(tmp_path / "nope.json")])
    assert "nope.json: no such cameras file" in e.value.code
    assert not (tmp_path / "x").exists()
    with pytest.raises(SystemExit) as e:  # argparse: exit status 2
        main(["--3d", str(h36m["paths"]["3d"]), "--2d", str(h36m["paths"]["gt"]),
              "--out", str(tmp_path / "x"), "--frame-step", "0"])
    assert e.value.code == 2
