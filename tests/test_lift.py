"""Lifting one's own keypoints (lib/lift.py): COCO conversion by hand, invariance to the
camera's pixel scale, skipped frames, and a clear error for every kind of bad input."""

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from test_train import TINY, TRAIN, VAL

from lib import infill
from lib.infill import INFILL_FILE, fit_run, normalise
from lib.lift import COCO17, LiftError, PoseLifter, coco_to_h36m, main, read_keypoints
from lib.train import Trainer
from lib.zoo import overrides

OURS = overrides("ours_one")  # one training of ours


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("lift") / "ours"
    Trainer({**TINY, **OURS, "epochs": 1}, out, train=TRAIN, val=VAL).fit()
    fit_run(normalise(TRAIN["pose2d"])).save(out / INFILL_FILE)  # its 2D in-filling model
    return out


def coco_person():
    """A hand-made COCO-17 person: hips at y=300, shoulders at y=100, 20 px apart sideways."""
    kp = np.zeros((17, 3))
    pts = {"nose": (50, 60), "l_eye": (55, 55), "r_eye": (45, 55), "l_ear": (60, 60),
           "r_ear": (40, 60), "l_shoulder": (80, 100), "r_shoulder": (20, 100),
           "l_elbow": (90, 160), "r_elbow": (10, 160), "l_wrist": (95, 220),
           "r_wrist": (5, 220), "l_hip": (65, 300), "r_hip": (35, 300), "l_knee": (66, 400),
           "r_knee": (34, 400), "l_ankle": (67, 500), "r_ankle": (33, 500)}
    for name, (x, y) in pts.items():
        kp[COCO17.index(name)] = (x, y, 0.9)
    kp[COCO17.index("l_ear"), 2] = 0.5
    return kp


def test_coco_without_scores_a_missing_hip_makes_a_missing_pelvis():
    kp = coco_person()[None, :, :2].copy()
    kp[0, COCO17.index("l_hip")] = 0.0  # not detected
    h = coco_to_h36m(kp)[0]
    assert h[0].tolist() == [0.0, 0.0]  # pelvis missing, not halfway to the right hip
    assert h[7].tolist() == [0.0, 0.0]  # and so is the spine made from it
    assert h[8].tolist() == [50.0, 100.0]


def test_coco_to_h36m_by_hand():
    h = coco_to_h36m(coco_person()[None])[0]
    assert h[0, :2].tolist() == [50, 300]  # pelvis: mid-hips
    assert h[8, :2].tolist() == [50, 100]  # thorax: mid-shoulders
    assert h[7, :2].tolist() == [50, 200]  # spine: between them
    assert h[9, :2].tolist() == [50, 60]  # neck/nose: the nose
    assert h[10, :2].tolist() == [50, 40]  # head: ears (50, 60) + 0.5 x ((50, 60) - (50, 100))
    assert h[1, :2].tolist() == [35, 300] and h[4, :2].tolist() == [65, 300]  # right, left hip
    assert h[13, :2].tolist() == [95, 220] and h[16, :2].tolist() == [5, 220]  # wrists
    assert h[10, 2] == 0.5  # a derived joint takes the smallest score of its sources
    assert h[0, 2] == 0.9


def test_lift_is_invariant_to_pixel_scale_and_position(run):
    lifter = PoseLifter.from_run(run, device="cpu")
    kp = VAL["pose2d"][:8].astype(np.float64)
    a = lifter.lift(kp)
    b = lifter.lift(kp * 2.5 + 300.0)  # another focal length / resolution, another place
    assert a.poses.shape == (8, 17, 3) and a.frames.tolist() == list(range(8))
    assert np.abs(a.poses[:, 0]).max() == 0  # root-relative
    np.testing.assert_allclose(a.poses, b.poses, atol=1e-3)


def test_lift_coco_and_skips_frames_without_a_person(run):
    lifter = PoseLifter.from_run(run, device="cpu")
    person = coco_person()
    occluded = person.copy()
    occluded[COCO17.index("l_wrist"), 2] = 0.1  # below the threshold: missing
    kp = np.stack([person, np.zeros((17, 3)), np.full((17, 3), np.nan), occluded])
    res = lifter.lift(kp, fmt="coco17")
    assert res.frames.tolist() == [0, 3] and res.poses.shape == (2, 17, 3)
    assert sorted(res.skipped) == [1, 2]
    assert "no person" in res.skipped[1] and "no person" in res.skipped[2]
    # the occluded wrist: in-filled in 2D from the visible joints, lifted, marked inferred
    assert np.isfinite(res.poses).all()
    assert res.inferred.shape == (2, 17) and not res.inferred[0].any()
    assert np.flatnonzero(res.inferred[1]).tolist() == [13]  # l_wrist
    assert np.abs(res.poses[1] - res.poses[0]).max() > 0


def test_missing_scale_chain_or_five_limb_joints_are_skipped_with_reasons(run):
    lifter = PoseLifter.from_run(run, device="cpu")
    person = coco_to_h36m(coco_person()[None])[0]
    four, five, thorax = person.copy(), person.copy(), person.copy()
    four[[2, 3, 12, 13], 2] = 0.0  # r_knee, r_ankle, l_elbow, l_wrist
    five[[2, 3, 5, 12, 13], 2] = 0.0  # and l_knee
    thorax[[8, 13], 2] = 0.0
    res = lifter.lift(np.stack([person, four, five, thorax]))
    assert res.frames.tolist() == [0, 1] and np.isfinite(res.poses).all()
    assert np.flatnonzero(res.inferred[1]).tolist() == [2, 3, 12, 13]
    assert res.skipped[2] == ("missing r_knee, r_ankle, l_knee, l_elbow, l_wrist: more than 4 "
                              "joints to in-fill (model without p_miss)")
    assert res.skipped[3] == "missing thorax: needed for the pose's scale"


def test_without_infill_file_or_data_occluded_frames_are_skipped_by_name(run, tmp_path,
                                                                         monkeypatch):
    import shutil

    from lib.splits import DataError

    bare = tmp_path / "ours"
    shutil.copytree(run, bare)
    (bare / INFILL_FILE).unlink()

    def no_data(cfg, split):
        raise DataError("Bandai-Namco data not found; looked at /nowhere")

    monkeypatch.setattr(infill, "load", no_data)
    person = coco_to_h36m(coco_person()[None])[0]
    wrist = person.copy()
    wrist[16, 2] = 0.0
    res = PoseLifter.from_run(bare, device="cpu").lift(np.stack([person, wrist]))
    assert res.frames.tolist() == [0]  # a complete frame needs no in-filling
    assert res.skipped[1].startswith(f"missing r_wrist: cannot in-fill them: no {INFILL_FILE} "
                                     f"in {bare} and its training 2D is not here")


@pytest.mark.parametrize(("content", "message"), [
    (b"", "the file is empty"),
    (json.dumps([[[1, 2, 1], [1, 2]] + [[1, 2, 1]] * 15]).encode(), "frame 0 is not a list of"),
    (json.dumps([["a"] * 51]).encode(), "frame 0 is not a list of numbers"),
    (b"{not json", "not valid JSON"),
    (json.dumps([[[1, 2, 1]] * 16]).encode(), "frame 0 has 48 numbers"),
    (json.dumps({"other": 1}).encode(), "non-empty list of frames"),
])
def test_bad_json_files_are_named(tmp_path, content, message):
    path = tmp_path / "k.json"
    path.write_bytes(content)
    with pytest.raises(LiftError, match=f"{path}: .*{message}|{message}"):
        read_keypoints(path)


def test_bad_npz_and_paths_are_named(tmp_path):
    np.savez(tmp_path / "a.npz", other=np.zeros(3))
    with pytest.raises(LiftError, match="no 'keypoints' array"):
        read_keypoints(tmp_path / "a.npz")
    np.savez(tmp_path / "b.npz", keypoints=np.zeros((4, 16, 2)))
    with pytest.raises(LiftError, match=r"b.npz: keypoints must be \(frames, 17, 2 or 3\)"):
        read_keypoints(tmp_path / "b.npz")
    np.savez(tmp_path / "c.npz", keypoints=np.full((2, 17, 2), np.inf))
    with pytest.raises(LiftError, match="infinite"):
        read_keypoints(tmp_path / "c.npz")
    np.savez(tmp_path / "e.npz", keypoints=np.zeros((2, 17, 2)))
    (tmp_path / "torn.npz").write_bytes((tmp_path / "e.npz").read_bytes()[:50])
    with pytest.raises(LiftError, match="torn.npz: not a readable .npz file"):
        read_keypoints(tmp_path / "torn.npz")
    (tmp_path / "d.csv").write_text("1,2")
    with pytest.raises(LiftError, match="unknown file type '.csv'"):
        read_keypoints(tmp_path / "d.csv")
    with pytest.raises(LiftError, match="no such file"):
        read_keypoints(tmp_path / "nope.json")


def test_bad_runs_and_arguments(run, tmp_path):
    with pytest.raises(LiftError, match="no such run folder"):
        PoseLifter.from_run(tmp_path / "nothing")
    unfinished = tmp_path / "unfinished"
    Trainer({**TINY, **OURS, "epochs": 2}, unfinished, train=TRAIN, val=VAL).fit(stop_after=1)
    with pytest.raises(LiftError, match="not finished"):
        PoseLifter.from_run(unfinished)
    torn = tmp_path / "torn"
    torn.mkdir()
    for f in ("config.yaml", "done"):
        (torn / f).write_bytes((run / f).read_bytes())
    (torn / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes()[:100])
    with pytest.raises(LiftError, match="unreadable checkpoint"):
        PoseLifter.from_run(torn)
    lifter = PoseLifter.from_run(run, device="cpu")
    with pytest.raises(LiftError, match="17 joints"):
        lifter.lift(np.zeros((3, 16, 2)))
    with pytest.raises(LiftError, match="unknown format 'openpose'"):
        lifter.lift(np.zeros((3, 17, 2)), fmt="openpose")
    with pytest.raises(LiftError, match="k must be a positive integer"):
        lifter.lift(VAL["pose2d"][:2], k=0)


def test_cli_writes_poses_and_a_picture(run, tmp_path, capsys):
    kp = coco_to_h36m(np.stack([coco_person()] * 3))  # h36m order, with scores
    np.savez(tmp_path / "in.npz", keypoints=kp)
    main(["--run", str(run), "--input", str(tmp_path / "in.npz"), "--format", "h36m17",
          "--out", str(tmp_path / "out.npz"), "--plot", str(tmp_path / "out.png"),
          "--device", "cpu"])
    with np.load(tmp_path / "out.npz") as f:
        assert f["poses3d"].shape == (3, 17, 3) and f["frames"].tolist() == [0, 1, 2]
        assert f["inferred"].shape == (3, 17) and not f["inferred"].any()
    assert (tmp_path / "out.png").stat().st_size > 1000
    assert json.loads(capsys.readouterr().out)["lifted"] == 3
    kp[1, 15, 2] = 0.1  # an occluded r_elbow: in-filled, counted, marked
    np.savez(tmp_path / "in.npz", keypoints=kp)
    main(["--run", str(run), "--input", str(tmp_path / "in.npz"), "--format", "h36m17",
          "--out", str(tmp_path / "out.npz"), "--device", "cpu"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["lifted"] == 3 and summary["inferred"] == 1
    with np.load(tmp_path / "out.npz") as f:
        assert np.argwhere(f["inferred"]).tolist() == [[1, 15]]
    main(["--run", str(run), "--input", str(tmp_path / "in.npz"), "--format", "h36m17",
          "--out", str(tmp_path / "out.npz"), "--plot", str(tmp_path / "seq.gif"),
          "--device", "cpu"])
    from PIL import Image

    with Image.open(tmp_path / "seq.gif") as gif:
        assert gif.n_frames == 3  # one per lifted frame
    with pytest.raises(SystemExit, match="error: .*nope.json: no such file"):
        main(["--run", str(run), "--input", str(tmp_path / "nope.json")])
    with pytest.raises(SystemExit, match="error: .*no/such/dir/out.npz: cannot write"):
        main(["--run", str(run), "--input", str(tmp_path / "in.npz"), "--format", "h36m17",
              "--out", str(tmp_path / "no/such/dir/out.npz"), "--device", "cpu"])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="error: device 'cuda': CUDA is not available"):
            main(["--run", str(run), "--input", str(tmp_path / "in.npz"), "--device", "cuda"])


def test_absurd_frames_are_skipped_with_a_reason(run):
    """A keypoint beyond 1,000,000 px, a frame far off everywhere, a frame on one pixel, a pose
    whose head-to-pelvis length is zero: each frame skipped with its reason, the others
    lifted, every lifted pose finite."""
    lifter = PoseLifter.from_run(run, device="cpu")
    person = coco_person()
    wrist = person.copy()
    wrist[COCO17.index("r_wrist"), 0] = 1e30
    far = person.copy()
    far[:, :2] = 1e30
    dot = person.copy()
    dot[:, :2] = (320.0, 240.0)
    flat = coco_to_h36m(person[None])[0]  # Human3.6M order: collapse the head-to-pelvis chain
    kp = coco_to_h36m(np.stack([person, wrist, far, dot, person]))
    kp = np.concatenate([kp, flat[None]])
    kp[5, [10, 9, 8, 0], :2] = kp[5, 0, :2]
    kp[5, [1, 4, 7], :2] = kp[5, 0, :2] + (1.0, 0.0)  # hips and spine stay (a wide pose)
    res = lifter.lift(kp)
    assert res.frames.tolist() == [0, 4] and np.isfinite(res.poses).all()
    assert res.skipped[1] == ("r_wrist at (1e+30, 220) px: beyond 1,000,000 px, no position "
                              "in an image")
    assert res.skipped[2].endswith("(and 16 more joints): beyond 1,000,000 px, no position in "
                                   "an image")
    assert res.skipped[3] == "no extent: every joint on one pixel (zero 2D scale)"
    assert res.skipped[5] == ("no extent: head, neck, thorax and pelvis on one pixel (zero 2D "
                              "scale)")
    tiny = kp[:1].copy()
    tiny[0, [10, 9, 8], :2] = tiny[0, 0, :2] + 1e-9  # a head-to-pelvis chain of 1e-9 px
    assert "2D scale near zero" in lifter.lift(tiny).skipped[0]


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_finite_input_in_the_image_is_lifted_finite_or_skipped_by_name(run, data):
    """Property: keypoints anywhere in a (up to 1e6 px) image, of any size down to a pixel
    and below, collapsed or spread, with or without scores: each frame is either lifted to
    a finite pose or skipped with a reason, never both, never neither."""
    lifter = PoseLifter.from_run(run, device="cpu")
    n = data.draw(st.integers(1, 4))
    size = data.draw(st.sampled_from([1.0, 640.0, 1e6]))
    coord = st.floats(0.0, size, allow_nan=False, allow_infinity=False)
    kp = data.draw(arrays(np.float64, (n, 17, 2), elements=coord))
    # shrink some frames towards one point (tiny or zero extent), as far as floats go
    factor = data.draw(arrays(np.float64, (n, 1, 1), elements=st.sampled_from(
        [1.0, 1e-3, 1e-9, 1e-300, 0.0])))
    kp = kp[:, :1] + (kp - kp[:, :1]) * factor
    if data.draw(st.booleans()):
        scores = data.draw(arrays(np.float64, (n, 17, 1), elements=st.floats(0.0, 1.0)))
        kp = np.concatenate([kp, scores], -1)
    res = lifter.lift(kp, fmt=data.draw(st.sampled_from(["h36m17", "coco17"])),
                      image_size=(size, size))
    assert np.isfinite(res.poses).all() and res.poses.shape == (len(res.frames), 17, 3)
    assert set(res.frames.tolist()).isdisjoint(res.skipped)
    assert set(res.frames.tolist()) | set(res.skipped) == set(range(n))
    assert all(isinstance(why, str) and why for why in res.skipped.values())


def test_cli_checks_out_and_plot_before_any_work(run, tmp_path, capsys):
    """--out and --plot are checked before the lift, so a bad --plot leaves no .npz behind;
    the output is written under the name given and printed."""
    kp = coco_to_h36m(np.stack([coco_person()] * 2))
    np.savez(tmp_path / "in.npz", keypoints=kp)
    base = ["--run", str(run), "--input", str(tmp_path / "in.npz"), "--format", "h36m17",
            "--device", "cpu"]
    with pytest.raises(SystemExit, match=r"error: .*pose.xyz: --plot writes .png, .*, .mp4 "
                                         r"files, not '.xyz'"):
        main([*base, "--out", str(tmp_path / "a.npz"), "--plot", str(tmp_path / "pose.xyz")])
    assert not (tmp_path / "a.npz").exists()
    with pytest.raises(SystemExit, match=r"error: .*poses.out: --out writes .npz files, not "
                                         r"'.out'"):
        main([*base, "--out", str(tmp_path / "poses.out")])
    assert list(tmp_path.iterdir()) == [tmp_path / "in.npz"]
    with pytest.raises(SystemExit, match=r"error: .*no/such/pose.png: cannot write \(no such "
                                         r"folder"):
        main([*base, "--out", str(tmp_path / "a.npz"),
              "--plot", str(tmp_path / "no/such/pose.png")])
    main([*base, "--out", str(tmp_path / "b.NPZ")])
    printed = json.loads(capsys.readouterr().out)["out"]
    assert printed == str(tmp_path / "b.NPZ") and (tmp_path / "b.NPZ").is_file()
    with np.load(printed) as f:
        assert f["poses3d"].shape == (2, 17, 3)


def test_the_frames_found_usable_at_once_are_those_each_check_passes():
    """lib.lift's vectorised pre-check (PoseLifter._plainly_usable) lets a frame through only
    where the frame-by-frame reasons (PoseLifter._unusable) find none, on hostile input."""
    from lib.lift import PoseLifter

    rng = np.random.default_rng(0)
    n = 600
    xy = rng.normal(size=(n, 17, 2)) * 50 + 300
    xy[rng.random((n, 17)) < 0.02] = np.nan
    xy[rng.random((n, 17)) < 0.01] = np.inf
    xy[rng.random((n, 17)) < 0.01] = 2e6
    xy[rng.random(n) < 0.02] = 5.0  # every joint on one pixel
    sel = rng.random(n) < 0.02
    xy[sel, 8:11] = xy[sel, :1]  # head, neck and thorax on the pelvis
    visible = np.isfinite(xy).all(-1) & (rng.random((n, 17)) > 0.1)
    for cfg in ({"p_miss": 0.0}, {"p_miss": 0.5}):
        lifter = PoseLifter(torch.nn.Linear(1, 1), None, cfg)
        lifter.infill = "no model here"  # without an in-filling model: missing joints skip
        fast = lifter._plainly_usable(xy, visible)
        slow = np.array([lifter._unusable(xy[i], visible[i]) is None for i in range(n)])
        np.testing.assert_array_equal(fast, slow)
        assert 0 < fast.sum() < n
