"""The detector-like protocol (lib.occlusion): the pose's height by hand, perturbations that
are fixed, of the asked size and only on limb joints, the flat baseline as the book's on
clean input, and its sentences against hand-made numbers."""

import numpy as np
import pytest

from lib import occlusion as O
from lib.evaluate import trivial_baselines
from lib.geometry import pose_height
from lib.infill import Infill
from lib.skeleton import LIMB_JOINTS


def poses(n=500, seed=0):
    rng = np.random.default_rng(seed)
    xy = rng.normal(size=(n, 17, 2)) * 20 + 300
    xy[:, 10] = [300, 100]  # head
    xy[:, 3] = [280, 500]  # right ankle: the lower one, 400 px below the head
    xy[:, 6] = [320, 480]
    xy[:, 0] = [300, 300]  # pelvis
    return xy


def test_the_height_is_head_to_the_lower_ankle():
    xy = poses(3)
    assert pose_height(xy) == pytest.approx([np.hypot(20, 400)] * 3)
    xy[1, 6] = [330, 520]  # now the left ankle is the lower one
    assert pose_height(xy)[1] == pytest.approx(np.hypot(30, 420))


def test_perturbations_are_fixed_of_their_size_and_hide_limb_joints_only():
    xy = poses(4000)
    for name, (share, hidden) in O.PERTURBATIONS.items():
        a, b = O.detector_input(xy, name), O.detector_input(xy, name)
        np.testing.assert_array_equal(a, b)  # the same input every build
        noise = a[..., :2] - xy
        assert noise.std() == pytest.approx(share * np.hypot(20, 400), rel=0.02, abs=1e-12)
        missing = a[..., 2] == 0
        assert (missing.sum(1) == hidden).all()
        assert not missing[:, [j for j in range(17) if j not in LIMB_JOINTS]].any()


def test_flat_on_clean_input_is_the_book_s_flat_baseline():
    rng = np.random.default_rng(1)
    n = 300
    pose3d = rng.normal(size=(n, 17, 3)) * 200
    pose3d[..., 2] += 4000
    split = {"pose3d": pose3d, "pose2d": pose3d[..., :2] / pose3d[..., 2:] * 1000 + 500,
             "action": np.zeros(n, int), "action_names": np.array(["a"])}
    model = Infill(np.zeros((1, 32)), 1)  # unused on clean input
    got = O.flat_errors(model, split)["clean"]
    want = trivial_baselines(split, split)["flat"]["pa_mpjpe"]
    assert got == pytest.approx(want, rel=1e-6)


def test_the_sentences_follow_the_numbers():
    def e(v):
        return {"mean": v, "std": 0.0, "values": [v]}
    per = {"clean": e(50.0), "noise2": e(55.0), "miss2": e(60.0)}
    protocol = {"models": {"ours": {"s": per}},
                "lifted_pct": {"ours": {"s": {"miss1": 100.0, "miss2": 98.0}}},
                "flat": {"s": {"noise2": 80.0}}}
    text = O.detector_text(protocol, "ours", "ours")
    assert "goes from 50.0 mm (s) to 55.0 mm: 1.10 times its clean error and 0.69 times " \
           "flat's on the same input (80.0 mm). With" in text
    assert "missing: 60.0 mm (1.20 times), 98% of frames lifted." in text
    protocol["xy_floor"] = {"s": {"noise2": 30.0}}
    assert "(80.0 mm); the noise alone, added to the true 3D's x and y, costs 30.0 mm." in \
        O.detector_text(protocol, "ours", "ours")
    assert "2 of its 4 targets are met" in text  # noise both met; missing and lifted not


def test_the_figure_and_table_show_every_model_split_and_perturbation():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lib.plots import detector_figure

    def e(v):
        return {"mean": v, "std": 1.0, "values": [v - 1, v + 1]}
    splits = ("test_unseen_styles", "test_unseen_motions")
    per = {p: e(50.0 + 10 * n + 5 * h) for p, (n, h) in O.PERTURBATIONS.items()}
    protocol = {"perturbations": {k: list(v) for k, v in O.PERTURBATIONS.items()},
                "models": {"ours": {s: per for s in splits}},
                "lifted_pct": {"ours": {s: {p: 100.0 for p in per} | {"miss2": 97.0}
                                        for s in splits}},
                "flat": {s: {p: 80.0 for p in per} for s in splits}}
    fig, axes = plt.subplots(1, 2)
    detector_figure(protocol, ["ours"], {"ours": "ours"}, axes)
    xs, ys = axes[0].lines[0].get_data()
    assert list(xs) == [0, 1, 2, 4] and list(ys) == [per[k]["mean"] for k in
                                                      ("clean", "noise1", "noise2", "noise4")]
    assert axes[0].get_xlabel() and axes[0].get_ylabel() and axes[1].get_title()
    plt.close(fig)
    table = O.detector_table(protocol, ["ours"], {"ours": "ours"})
    assert table.shape == (4, len(O.PERTURBATIONS))  # ours and flat, two splits each
    assert table.loc[("ours", "unseen styles"), "miss2"].endswith("(97% lifted)")


def test_the_noise_floor_grows_with_the_noise_and_is_zero_without():
    rng = np.random.default_rng(2)
    pose3d = rng.normal(size=(200, 17, 3)) * 200
    pose3d[:, 10, 1], pose3d[:, 3, 1], pose3d[:, 6, 1] = -900, 800, 780  # head up, feet down
    floor = O.xy_floor({"pose3d": pose3d, "pose2d": pose3d[..., :2]})
    assert set(floor) == {"noise1", "noise2", "noise4"}
    assert 0 < floor["noise1"] < floor["noise2"] < floor["noise4"]
    assert floor["noise4"] == pytest.approx(4 * floor["noise1"], rel=0.15)  # linear in sigma
