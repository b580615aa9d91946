"""Other bodies (lib/bodies.py): bone lengths change, joint angles and the root do not."""

import numpy as np
import pytest
from test_train import STANDING

from lib.bodies import BODY_TYPES, bone_factors, rebody, unseen_rig
from lib.camera import Rig, project
from lib.skeleton import BONES, JOINT_INDEX


def lengths(p):
    return np.array([np.linalg.norm(p[..., c, :] - p[..., a, :], axis=-1) for a, c in BONES])


def test_rebody_scales_the_named_bones_only():
    f = bone_factors({"hips": 2.0, "arms": 1.1})
    assert f[JOINT_INDEX["r_hip"]] == 2.0 and f[JOINT_INDEX["l_wrist"]] == 1.1
    assert f[JOINT_INDEX["spine"]] == 1.0 and f[0] == 1.0
    pose = STANDING[None] + np.array([100.0, -50.0, 5000.0])
    new = rebody(pose, f)
    np.testing.assert_allclose(new[:, 0], pose[:, 0])  # the root stays
    ratio = lengths(new) / lengths(pose)
    np.testing.assert_allclose(ratio[:, 0], [f[c] for _, c in BONES])
    # a joint keeps its direction from its parent: angles are kept
    a, c = JOINT_INDEX["r_hip"], JOINT_INDEX["r_knee"]
    d_old = pose[0, c] - pose[0, a]
    d_new = new[0, c] - new[0, a]
    np.testing.assert_allclose(d_new / np.linalg.norm(d_new), d_old / np.linalg.norm(d_old))
    # hand case: the right hip 130 mm out becomes 260 mm out
    assert new[0, JOINT_INDEX["r_hip"], 0] - new[0, 0, 0] == pytest.approx(-260.0)


def test_unseen_rig_split_reprojects_with_the_same_camera():
    n = 8
    pose3d = np.repeat(STANDING[None] + np.array([0.0, 0.0, 5000.0]), n, 0).astype(np.float32)
    rig = Rig()
    cams = np.arange(n) % 4
    split = {"pose3d": pose3d, "pose2d": project(pose3d, rig.intrinsics()[cams][:, None]),
             "camera": cams, "take": np.arange(n), "style": np.zeros(n, np.int16),
             "action": np.zeros(n, np.int16)}
    out = unseen_rig(split)
    assert out["pose3d"].shape == (n, 17, 3) and out["action"] is split["action"]
    again = project(out["pose3d"], rig.intrinsics()[cams][:, None])
    np.testing.assert_allclose(out["pose2d"], again, rtol=1e-5)
    hip = JOINT_INDEX["l_hip"]
    widths = np.linalg.norm(out["pose3d"][:, hip] - out["pose3d"][:, 0], axis=-1)
    expected = [130.0 * bone_factors(BODY_TYPES[t])[hip] for t in list(BODY_TYPES) * 2]
    np.testing.assert_allclose(widths, expected, rtol=1e-5)
    assert list(out["style_names"]) == list(BODY_TYPES)


def test_training_on_random_bodies_keeps_the_2d_of_unchanged_poses():
    import torch
    from test_train import TINY, TRAIN, VAL

    from lib.bodies import random_factors
    from lib.train import Trainer

    cams = np.arange(len(TRAIN["pose2d"])) % 4
    split = {**TRAIN, "camera": cams,  # the split's stored 2D, made by the rig's cameras
             "pose2d": project(TRAIN["pose3d"].astype(np.float64),
                               Rig().intrinsics()[cams][:, None]).astype(np.float32)}
    tr = Trainer({**TINY, "body_augment": 1e-9}, "/tmp/unused", train=split, val=VAL)
    idx = torch.arange(16)
    # (almost) no pose re-bodied: the synthesised 2D is the split's own stored 2D
    x = tr.bodies(idx)
    assert x.shape == (16, 32)
    np.testing.assert_allclose(x.numpy(), tr.x[:16].numpy(), atol=1e-5)
    # every pose re-bodied: the 2D changes, hips and shoulders move out
    tr.bodies.p = 1.0
    wide = tr.bodies(idx).unflatten(1, (16, 2))
    hips = lambda v: (v[:, 3] - v[:, 0]).norm(dim=-1)  # noqa: E731  l_hip - r_hip, 2D
    assert (hips(wide) >= hips(tr.x[:16].unflatten(1, (16, 2))) - 1e-6).all()
    f = random_factors(1000, 0.5, torch.Generator().manual_seed(0))
    changed = (f != 1).any(1).float().mean().item()
    assert 0.4 < changed < 0.6  # about half of the poses get another body
    hips = f[:, JOINT_INDEX["r_hip"]]
    assert hips.min() >= 1.0 and hips.max() <= 2.5
    assert torch.equal(hips, f[:, JOINT_INDEX["l_hip"]])  # both sides alike


def test_ours_trains_on_random_bodies(tmp_path):
    import math

    from test_train import TINY, TRAIN, VAL

    from lib.zoo import overrides

    OURS = overrides("ours_one")
    from lib.train import Trainer

    split = {**TRAIN, "camera": np.arange(len(TRAIN["pose2d"])) % 4}
    rows = Trainer({**TINY, **OURS, "body_augment": 0.5, "epochs": 2}, tmp_path / "r",
                   train=split, val=VAL).fit()
    assert all(math.isfinite(r["loss"]) for r in rows) and rows[-1]["cycle"] < rows[0]["cycle"]


def test_the_training_ranges_contain_the_test_bodies_and_no_wider_one():
    from lib.bodies import RANDOM_RANGES, within_ranges

    assert all(within_ranges(b) for b in BODY_TYPES.values())
    assert within_ranges({})  # BNMD-17's own body: every factor 1
    assert not within_ranges({"hips": 2.6})
    assert not within_ranges({"legs": 0.8})
    assert not within_ranges({"neck": 1.0}, RANDOM_RANGES)  # a part training never scales
