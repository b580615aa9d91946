"""Video lifting (lib/temporal.py, lib/video.py, ``python -m lib.lift --video``): the filter
by hand, the width chosen from 2D alone, the jitter metric by hand, the native takes, and a
clear one-line error for every input that is not one person's frames in order."""

import json

import numpy as np
import pytest
from test_data import write_dataset
from test_lift import OURS, coco_person
from test_train import TINY, TRAIN, VAL

from lib.bnmd import take_arrays
from lib.camera import Rig
from lib.infill import INFILL_FILE, fit_run, normalise
from lib.lift import LiftResult, coco_to_h36m, main
from lib.temporal import GRID, choose_sigma, lifter_view, loo_error, mpjae, smooth, smooth_lift
from lib.train import Trainer
from lib.video import native_takes, video_study


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("video") / "ours"
    Trainer({**TINY, **OURS, "epochs": 1}, out, train=TRAIN, val=VAL).fit()
    fit_run(normalise(TRAIN["pose2d"])).save(out / INFILL_FILE)
    return out


def walking(frames=120, seed=0):
    """(frames, 17, 2) pixels: the hand-made person, its limbs swinging smoothly."""
    person = coco_to_h36m(coco_person()[None])[0, :, :2]
    t = np.arange(frames)[:, None, None]
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi, (1, 17, 2))
    swing = 8.0 * np.sin(2 * np.pi * t / 40 + phase)
    swing[:, [0, 8, 9, 10]] = 0.0  # the scale chain stays put
    return person + swing


def test_smooth_keeps_constant_and_linear_tracks_away_from_the_ends():
    t = np.arange(60, dtype=float)
    track = np.stack([np.full(60, 7.0), 3 * t - 5], -1)[:, None, :] * np.ones((1, 17, 1))
    for sigma in (0.5, 2.0, 4.0):
        out = smooth(track, sigma)
        r = int(np.ceil(4 * sigma))
        assert out.shape == track.shape
        np.testing.assert_allclose(out[:, :, 0], 7.0)  # a constant everywhere
        np.testing.assert_allclose(out[r:-r], track[r:-r], atol=1e-9)  # a line inside
        assert out[0, 0, 1] > track[0, 0, 1] + 0.1  # the reflected end bends the line up
    assert smooth(track, 0) is not None and np.array_equal(smooth(track, 0), track)
    noisy = track + np.random.default_rng(0).normal(size=track.shape)
    assert np.diff(smooth(noisy, 2.0), 2, axis=0).std() < 0.2 * np.diff(noisy, 2, axis=0).std()
    assert smooth(np.ones((3, 2)), 8.0).shape == (3, 2)  # shorter than the kernel


def test_mpjae_by_hand():
    gt = np.zeros((5, 17, 3))
    pred = gt.copy()
    pred[2, 0] = (3.0, 4.0, 0.0)  # one joint off by 5 mm in the middle frame
    # accelerations at frames 1, 2, 3: +5, -10, +5 mm/frame^2 at that joint, 0 elsewhere
    assert mpjae(pred, gt) == pytest.approx(20.0 / (3 * 17))
    moving = np.cumsum(np.ones((6, 17, 3)), 0) ** 2  # the same acceleration in both
    assert mpjae(moving + 1.0, moving) == pytest.approx(0.0)
    assert np.isnan(mpjae(gt[:2], gt[:2]))


def test_choose_sigma_widens_with_noise_and_stays_at_zero_without():
    rng = np.random.default_rng(0)
    clean = walking(200)
    chosen = [choose_sigma(clean + rng.normal(size=clean.shape) * s) for s in (0.3, 1.0, 3.0)]
    assert chosen == sorted(chosen) and chosen[0] < chosen[-1]
    assert choose_sigma(clean) == 0.0  # smooth and noise-free: the neighbours predict it
    jumps = np.repeat(rng.normal(0, 50, (10, 17, 2)), 15, axis=0)  # piecewise constant
    assert choose_sigma(jumps) == 0.0
    assert choose_sigma(rng.normal(size=(300, 4))) == max(GRID)  # noise alone: widest
    assert choose_sigma(clean[:2]) == 0.0  # too short to cross-validate


def test_leave_one_out_never_sees_the_frame_it_predicts():
    spike = np.zeros((40, 1))
    spike[20] = 1.0
    # the spike is predicted as 0 and its neighbours see a little of it: error > 1/40
    for sigma in (0.0, 1.0, 4.0):
        assert loo_error(spike, sigma) > 1.0 / 40
    with_nan = walking(80) + np.random.default_rng(1).normal(size=(80, 17, 2))
    with_nan[10:20, 5] = np.nan  # a joint missing in some frames: neither used nor scored
    assert np.isfinite(loo_error(with_nan, 2.0))
    assert choose_sigma(with_nan) > 0


def test_smooth_lift_smooths_the_frames_kept_in_order():
    xy = walking(30) + np.random.default_rng(2).normal(size=(30, 17, 2)) * 3.0
    frames = np.delete(np.arange(30), [7, 8])  # two frames skipped by the lifter
    poses = np.random.default_rng(3).normal(size=(28, 17, 3))
    res = LiftResult(poses.copy(), frames, None, {7: "x", 8: "x"}, np.zeros((28, 17), bool))
    sigma = smooth_lift(res, xy)
    assert sigma == choose_sigma(lifter_view(xy[frames])) and sigma > 0
    np.testing.assert_allclose(res.poses, smooth(poses, sigma))
    assert res.frames.tolist() == frames.tolist()


class ToyLifter:
    """Lifts by taking the 2D as x, y at depth 0: per-frame noise of the 2D goes to 3D."""

    def lift(self, xy):
        xy = np.asarray(xy)
        poses = np.concatenate([xy - xy[:, :1], np.zeros((len(xy), 17, 1))], -1)
        return LiftResult(poses, np.arange(len(xy)), None, {}, np.zeros((len(xy), 17), bool))


def test_video_study_scores_per_frame_against_video():
    takes = []
    for i in range(2):
        xy = walking(90, seed=i)
        takes.append({"name": f"t{i}", "pose2d": xy,
                      "pose3d": np.concatenate([xy, np.zeros((90, 17, 1))], -1)})
    res = video_study(ToyLifter(), takes, noise=(0.0, 0.02))
    json.dumps(res)
    clean, noisy = res["levels"]["0%"], res["levels"]["2%"]
    assert clean["sigmas"] == [0.0, 0.0] and clean["pa_mpjpe"]["frame"] < 1e-6
    assert noisy["frames"] == 180 and min(noisy["sigmas"]) > 0
    assert noisy["mpjae"]["ratio"] < 0.5 and noisy["pa_mpjpe"]["ratio"] < 1


def test_native_takes_are_every_frame_of_one_camera_in_order(tmp_path, monkeypatch):
    source = write_dataset(tmp_path)
    takes = native_takes("test_unseen_styles", source=source, cache=tmp_path / "cache")
    assert [t["name"] for t in takes] == ["dataset-2_run_youthful_001",
                                          "dataset-2_walk_elderly_001"]
    bvh = next(source.rglob("dataset-2_run_youthful_001.bvh")).read_bytes()
    ref = take_arrays(bvh, "dataset-2_run_youthful_001", 1, Rig())
    np.testing.assert_allclose(takes[0]["pose2d"], ref["pose2d"][ref["camera"] == 0])
    assert takes[0]["frame"].tolist() == list(range(len(takes[0]["frame"])))
    monkeypatch.setattr("lib.video.iter_takes", lambda s: pytest.fail("read again"))
    again = native_takes("test_unseen_styles", source=source, cache=tmp_path / "cache")
    np.testing.assert_array_equal(again[1]["pose3d"], takes[1]["pose3d"])  # from the cache
    monkeypatch.undo()
    one = native_takes("test_unseen_motions", 1, source=source, cache=tmp_path / "cache")
    assert [t["name"] for t in one] == ["dataset-1_bow_happy_001"]  # at most N, evenly spaced


def cli(run, path, *extra):
    main(["--run", str(run), "--input", str(path), "--format", "h36m17", "--video",
          "--out", str(path.parent / "out.npz"), "--device", "cpu", *extra])


def test_video_cli_smooths_and_says_sigma(run, tmp_path, capsys):
    xy = walking(40) + np.random.default_rng(4).normal(size=(40, 17, 2)) * 4.0
    kp = np.concatenate([xy, np.ones((40, 17, 1))], -1)
    kp[5] = 0.0  # no person in frame 5: skipped, the others smoothed in order
    np.savez(tmp_path / "one.npz", keypoints=kp[:, None], frames=np.arange(0, 80, 2))
    cli(run, tmp_path / "one.npz")
    summary = json.loads(capsys.readouterr().out)
    assert summary["lifted"] == 39 and summary["skipped"] == 1 and summary["sigma"] > 0
    with np.load(tmp_path / "out.npz") as f:
        assert f["poses3d"].shape == (39, 17, 3) and 5 not in f["frames"]
        smoothed = f["poses3d"]
    np.savez(tmp_path / "flat.npz", keypoints=kp)
    main(["--run", str(run), "--input", str(tmp_path / "flat.npz"), "--format", "h36m17",
          "--out", str(tmp_path / "out.npz"), "--device", "cpu"])
    assert json.loads(capsys.readouterr().out)["sigma"] is None  # without --video: per frame
    with np.load(tmp_path / "out.npz") as f:
        np.testing.assert_allclose(smoothed, smooth(f["poses3d"], summary["sigma"]), atol=1e-4)
        assert np.abs(smoothed - f["poses3d"]).max() > 1.0


@pytest.mark.parametrize("name, content, message", [
    ("empty.npz", {"keypoints": np.zeros((0, 17, 2))}, r"an empty video \(no frames\)"),
    ("empty.json", [], r"an empty video \(no frames\)"),
    ("two.npz", {"keypoints": np.ones((4, 2, 17, 3))}, "2 people per frame"),
    ("two.json", [{"image_id": 1, "keypoints": [1.0] * 51},
                  {"image_id": 1, "keypoints": [2.0] * 51}], "frame 1 appears twice"),
    ("crowd.json", [[[[1.0, 2.0, 1.0]] * 17] * 3], "frame 0 holds 3 people"),
    ("named.json", [{"image_id": "a.jpg", "keypoints": [1.0] * 51},
                    {"image_id": "b.jpg", "keypoints": [1.0] * 51},
                    {"image_id": "a.jpg", "keypoints": [1.0] * 51}], "frame a.jpg appears twice"),
    ("order.npz", {"keypoints": np.ones((3, 17, 2)), "frames": [0, 2, 1]},
     r"frames out of order \(frame 1 after 2, entry 2\)"),
    ("order.json", [{"frame": 3, "keypoints": [1.0] * 51},
                    {"frame": 1, "keypoints": [1.0] * 51}], "frames out of order"),
])
def test_video_cli_refuses_what_is_not_one_persons_frames_in_order(run, tmp_path, name,
                                                                    content, message):
    path = tmp_path / name
    if name.endswith(".npz"):
        np.savez(path, **content)
    else:
        path.write_text(json.dumps(content))
    with pytest.raises(SystemExit, match=f"^error: {path}: {message}") as e:
        cli(run, path)
    assert "\n" not in str(e.value)


def test_animate_3d_writes_a_gif_of_every_frame_and_refuses_unequal_takes(tmp_path):
    from PIL import Image

    from lib.plots import animate_3d

    rng = np.random.default_rng(0)
    truth = rng.normal(size=(5, 17, 3)) * 100
    path = animate_3d(tmp_path / "take.gif", {"ground truth": truth, "lift": truth + 5},
                      fps=10, reference=truth)
    with Image.open(path) as gif:
        assert gif.format == "GIF" and gif.n_frames == 5
    with pytest.raises(ValueError, match=r"same number of frames, got \[4, 5\]"):
        animate_3d(tmp_path / "bad.gif", {"a": truth, "b": truth[:4]})
