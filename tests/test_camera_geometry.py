"""Cameras (lib/camera.py), normalisation, flips and masks (lib/geometry.py) and the knee
prior (lib/priors.py), checked on values worked out by hand."""

import numpy as np
import pytest
import torch

from lib.camera import H36M_CAMERAS, Rig, project, unproject
from lib.geometry import (
    C,
    Normalizer,
    apply_mask,
    chain_length,
    flip,
    missing_mask,
    random_flip,
    random_missing_mask,
    random_rotation_up,
    rotation_about,
    rotation_matrices,
    up_direction,
)
from lib.priors import backward_knee_rate, facing, hinge_loss, knee_flexion
from lib.skeleton import FLIP, JOINTS, LEFT, LIMB_JOINTS, RIGHT

# A standing person in camera coordinates (x right, y down, z forward = depth), mm, facing
# the camera (towards -z), so that their left side is at +x; knees bent 30 mm forward
# (towards the camera), pelvis at the origin.
STANDING = np.array([
    [0, 0, 0],                                              # 0 pelvis
    [-130, 0, 0], [-130, 420, -30], [-130, 840, 0],         # 1-3 right hip, knee, ankle
    [130, 0, 0], [130, 420, -30], [130, 840, 0],            # 4-6 left hip, knee, ankle
    [0, -230, 0], [0, -480, 0], [0, -580, -60], [0, -700, 0],  # 7-10 spine .. head
    [180, -460, 0], [220, -180, 0], [230, 50, -40],         # 11-13 left arm
    [-180, -460, 0], [-220, -180, 0], [-230, 50, -40],      # 14-16 right arm
], dtype=np.float64)  # fmt: skip


def random_poses(n, seed=0, depth=5000.0):
    """(n, 17, 3) camera-frame poses in mm: STANDING turned about the vertical, jittered and
    placed around ``depth``; with their (n, 17, 2) projection by a 1150 px camera."""
    rng = np.random.default_rng(seed)
    yaw = rng.uniform(-np.pi, np.pi, n)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.zeros((n, 3, 3))
    rot[:, 0, 0], rot[:, 0, 2], rot[:, 1, 1], rot[:, 2, 0], rot[:, 2, 2] = c, s, 1, -s, c
    pose = STANDING @ rot.transpose(0, 2, 1) + rng.normal(0, 20, (n, 17, 3))
    pose[:, 0] = 0
    pose += rng.uniform([-400, -200, depth - 300], [400, 200, depth + 300], (n, 1, 3))
    pose2d = project(pose, np.array([1150.0, 1150.0, 500.0, 500.0]))
    return pose, pose2d


# ---------------------------------------------------------------------------- camera


def test_project_by_hand_and_unproject_round_trip():
    K = np.array([1000.0, 1000.0, 500.0, 500.0])
    # (100, 200, 1000): 1000 * 100 / 1000 + 500 = 600, 1000 * 200 / 1000 + 500 = 700
    np.testing.assert_allclose(project(np.array([100.0, 200.0, 1000.0]), K), [600.0, 700.0])
    # a point on the optical axis lands on the principal point; twice the depth halves
    # the offset from it
    np.testing.assert_allclose(project(np.array([[0, 0, 7.0], [100, 200, 2000]]), K),
                               [[500, 500], [550, 600]])
    rng = np.random.default_rng(0)
    pts = rng.normal(0, 500, (3, 17, 3)) + [0, 0, 5000]
    Ks = np.array([[*v["f"], *v["c"]] for v in H36M_CAMERAS.values()])[:3, None, :]
    px = project(pts, Ks)
    assert px.shape == (3, 17, 2)
    np.testing.assert_allclose(unproject(px, pts[..., 2], Ks), pts, rtol=0, atol=1e-9)


def test_rig_extrinsics_look_at_the_pelvis():
    rig = Rig()
    assert rig.names == ["cam45", "cam135", "cam225", "cam315"]
    assert rig.intrinsics().shape == (4, 4)
    assert np.allclose(rig.intrinsics()[0], [1145.05, 1143.78, 512.54, 515.45])
    pelvis = np.array([[0.0, 930.0, 0.0], [2500.0, 880.0, -4000.0], [-10.0, 1000.0, 7000.0]])
    R, centres = rig.extrinsics(pelvis)
    assert R.shape == (3, 4, 3, 3) and centres.shape == (3, 4, 3)
    eye = np.broadcast_to(np.eye(3), R.shape)
    np.testing.assert_allclose(R @ R.transpose(0, 1, 3, 2), eye, atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-12)
    # centres: 5 m from the pelvis in the floor plane, 1.6 m above the floor, at the azimuths
    offset = centres - pelvis[:, None]
    np.testing.assert_allclose(np.hypot(offset[..., 0], offset[..., 2]), 5000.0)
    np.testing.assert_allclose(centres[..., 1], 1600.0)
    azim = np.degrees(np.arctan2(offset[..., 2], offset[..., 0])) % 360
    np.testing.assert_allclose(azim, np.broadcast_to([45, 135, 225, 315], azim.shape))
    # the camera x axis is horizontal (no roll)
    np.testing.assert_allclose(R[..., 0, 1], 0.0, atol=1e-12)

    cam = rig.to_camera(pelvis[:, None, :], pelvis)  # (F, K, 1, 3)
    np.testing.assert_allclose(cam[..., :2], 0.0, atol=1e-9)  # on the optical axis
    depth = np.hypot(5000.0, 1600.0 - pelvis[:, 1])
    np.testing.assert_allclose(cam[..., 0, 2], np.broadcast_to(depth[:, None], (3, 4)))
    px = project(cam, rig.intrinsics()[None, :, None, :])
    np.testing.assert_allclose(px[..., 0, :], np.broadcast_to(rig.intrinsics()[:, 2:], (3, 4, 2)),
                               atol=1e-6)

    # world +Y is up, image v points down: a point above the pelvis has a smaller v
    above = pelvis + [0.0, 500.0, 0.0]
    joints = np.stack([pelvis, above], axis=1)
    px = project(rig.to_camera(joints, pelvis), rig.intrinsics()[None, :, None, :])
    assert (px[:, :, 1, 1] < px[:, :, 0, 1] - 50).all()
    np.testing.assert_allclose(px[:, :, 1, 0], px[:, :, 0, 0], atol=1e-6)  # straight up


def test_rig_handedness_left_right():
    """The camera at azimuth 90 deg sits on the world +Z side and looks towards -Z, with
    world +Y up: its right is world +X, its down world -Y, its forward world -Z (a person
    facing +Z, left side at +X, shows the camera their front, their left on the image's
    right)."""
    rig = Rig(azimuths=(90.0,))
    pelvis = np.array([[0.0, 1600.0, 0.0]])  # at camera height: no tilt
    R, centres = rig.extrinsics(pelvis)
    np.testing.assert_allclose(centres[0, 0], [0, 1600, 5000], atol=1e-9)
    np.testing.assert_allclose(R[0, 0], [[1, 0, 0], [0, -1, 0], [0, 0, -1]], atol=1e-12)


# ---------------------------------------------------------------------------- normaliser


def chain_of_flat(x2d):
    """2D chain length of flat (N, 32) normalised poses (the pelvis at the origin)."""
    joints = np.concatenate([np.zeros((len(x2d), 1, 2)), x2d.reshape(-1, 16, 2)], axis=1)
    return chain_length(joints)


def test_chain_length_by_hand():
    pose = np.zeros((1, 17, 2))
    pose[0, 8] = [0, -3]  # thorax: 3 from the pelvis
    pose[0, 9] = [4, -6]  # neck: 5 from the thorax
    pose[0, 10] = [4, -8]  # head: 2 from the neck
    assert chain_length(pose)[0] == pytest.approx(10.0)
    assert chain_length(STANDING[None])[0] == pytest.approx(
        480 + np.hypot(100, 60) + np.hypot(120, 60))


def test_normalizer_dataset_and_pose_modes():
    pose3d, pose2d = random_poses(200)
    split = {"pose3d": pose3d, "pose2d": pose2d}
    norm = Normalizer.fit(split)
    assert norm.mode == "dataset" and norm.c == C == 10.0
    assert norm.scale2d == pytest.approx(chain_length(pose2d).mean())
    assert norm.scale3d == pytest.approx(chain_length(pose3d).mean())
    x = norm.pose2d(pose2d)
    assert x.shape == (200, 32) and x.dtype == np.float32
    # the root is subtracted: joint 1 is r_hip minus pelvis, scaled
    np.testing.assert_allclose(x[:, :2], (pose2d[:, 1] - pose2d[:, 0]) / (norm.scale2d * C),
                               rtol=1e-5)
    chains = chain_of_flat(x)
    assert chains.mean() == pytest.approx(1 / C, rel=1e-5)
    assert chains.std() > 1e-3  # dataset mode keeps each pose's relative size

    per_pose = Normalizer.fit(split, mode="pose")
    xp = per_pose.pose2d(pose2d)
    np.testing.assert_allclose(chain_of_flat(xp), 1 / C, rtol=1e-5)
    # pose mode is blind to the pixel scale of the input; dataset mode is not
    np.testing.assert_allclose(per_pose.pose2d(pose2d * 3 + 7), xp, rtol=1e-4, atol=1e-6)
    assert not np.allclose(norm.pose2d(pose2d * 3 + 7), x, atol=1e-3)

    with pytest.raises(ValueError, match="scale mode"):
        Normalizer.fit(split, mode="per-pose")


def test_normalizer_pose3d_and_to_mm_are_inverse():
    pose3d, pose2d = random_poses(50, seed=3)
    norm = Normalizer.fit({"pose3d": pose3d, "pose2d": pose2d})
    y = norm.pose3d(pose3d)
    assert y.shape == (50, 48) and y.dtype == np.float32
    root_relative = pose3d - pose3d[:, :1]
    back = norm.to_mm(y)
    assert back.shape == (50, 17, 3)
    np.testing.assert_allclose(back, root_relative, atol=1e-2)  # mm
    back_t = norm.to_mm(torch.as_tensor(y))
    assert isinstance(back_t, torch.Tensor)
    np.testing.assert_allclose(back_t.numpy(), back, rtol=1e-6)
    # in network units the 3D chain averages 1
    joints = np.concatenate([np.zeros((50, 1, 3)), y.reshape(-1, 16, 3)], axis=1)
    assert chain_length(joints).mean() == pytest.approx(1.0, rel=1e-5)
    # round trip through the dict (as stored in checkpoints)
    assert Normalizer(**norm.to_dict()) == norm


# ---------------------------------------------------------------------------- flip


def test_flip_swaps_sides_and_negates_x():
    assert FLIP[1] == 4 and FLIP[4] == 1 and FLIP[13] == 16 and FLIP[0] == 0 and FLIP[10] == 10
    pose = torch.as_tensor(STANDING[1:], dtype=torch.float32)[None]  # (1, 16, 3)
    pose[0, 0, 2] = 11.0  # mark the right hip with a depth, to see where it goes
    flat = pose.reshape(1, 48)
    out = flip(flat, 3).reshape(1, 16, 3)
    # row j - 1 holds joint j: r_hip (row 0) <- l_hip (row 3) mirrored, and vice versa
    assert out[0, 0].tolist() == [-130.0, 0.0, 0.0]
    assert out[0, 3].tolist() == [130.0, 0.0, 11.0]
    assert out[0, 12].tolist() == [230.0, 50.0, -40.0]  # l_wrist <- r_wrist (-230), x negated
    assert out[0, 9].tolist() == [-0.0, -700.0, 0.0]  # head stays, x negated
    # STANDING is left-right symmetric: its flip is itself, except for the marked depth
    expected = pose.clone()
    expected[0, 0, 2], expected[0, 3, 2] = 0.0, 11.0
    torch.testing.assert_close(out, expected)
    # twice = identity, in 2D and 3D
    x = torch.randn(5, 32)
    torch.testing.assert_close(flip(flip(x, 2), 2), x)
    torch.testing.assert_close(flip(flip(flat, 3), 3), flat)
    # 2D: only x negated
    two = flip(x, 2).reshape(5, 16, 2)
    xs = x.reshape(5, 16, 2)
    torch.testing.assert_close(two[:, 3], xs[:, 0] * torch.tensor([-1.0, 1.0]))


def test_random_flip_probability():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2000, 32)
    assert random_flip(x, 2, p=0.0) is x
    torch.testing.assert_close(random_flip(x, 2, p=1.0, generator=g), flip(x, 2))
    out = random_flip(x, 2, p=0.5, generator=g)
    flipped = (out != x).any(1).float().mean().item()
    assert 0.45 < flipped < 0.55


# ---------------------------------------------------------------------------- masks


def test_missing_mask_hides_exactly_n_limb_joints():
    g = torch.Generator().manual_seed(0)
    limb_rows = {j - 1 for j in LIMB_JOINTS}
    assert {JOINTS[j] for j in LIMB_JOINTS} == {
        "r_knee", "r_ankle", "l_knee", "l_ankle", "l_elbow", "l_wrist", "r_elbow", "r_wrist"}
    assert torch.equal(missing_mask(4, 0), torch.ones(4, 16))
    seen = set()
    for n in (1, 2, 3):
        mask = missing_mask(500, n, generator=g)
        assert mask.shape == (500, 16)
        assert set(mask.unique().tolist()) == {0.0, 1.0}
        assert ((mask == 0).sum(1) == n).all()
        hidden = set(torch.nonzero(mask == 0)[:, 1].tolist())
        assert hidden <= limb_rows
        seen |= hidden
    assert seen == limb_rows  # every limb joint gets dropped sometimes


def test_random_missing_mask_rates():
    g = torch.Generator().manual_seed(1)
    assert torch.equal(random_missing_mask(64, 0.0, generator=g), torch.ones(64, 16))
    zeros = (random_missing_mask(4000, 1.0, generator=g) == 0).sum(1)
    assert set(zeros.unique().tolist()) == {1, 2}
    assert 0.45 < (zeros == 2).float().mean().item() < 0.55
    zeros = (random_missing_mask(4000, 0.3, generator=g) == 0).sum(1)
    assert 0.26 < (zeros > 0).float().mean().item() < 0.34
    assert set(zeros.unique().tolist()) == {0, 1, 2}


def test_apply_mask_zeroes_hidden_joints_only():
    x = torch.arange(1.0, 33.0).reshape(1, 32)
    mask = torch.ones(1, 16)
    mask[0, 2] = 0  # r_ankle: flat entries 4 and 5
    out = apply_mask(x, mask)
    assert out[0, 4].item() == 0 and out[0, 5].item() == 0
    assert out[0].count_nonzero().item() == 30
    assert out[0, 3].item() == 4.0 and out[0, 6].item() == 7.0


# ---------------------------------------------------------------------------- priors


def test_knee_flexion_sign_and_hinge():
    assert set(LEFT).isdisjoint(RIGHT)
    pose = torch.as_tensor(STANDING[1:], dtype=torch.float32)[None]  # (1, 16, 3)
    torch.testing.assert_close(facing(pose), torch.tensor([[0.0, 0.0, -1.0]]))
    # knee - (hip + ankle) / 2 = (0, 0, -30) for both legs; facing (0, 0, -1): +30 each
    torch.testing.assert_close(knee_flexion(pose), torch.tensor([[30.0, 30.0]]))
    torch.testing.assert_close(knee_flexion(pose.reshape(1, 48)), torch.tensor([[30.0, 30.0]]))
    assert hinge_loss(pose).item() == 0.0

    mirrored = pose * torch.tensor([1.0, 1.0, -1.0])  # depth mirror: same orthographic 2D
    torch.testing.assert_close(knee_flexion(mirrored), torch.tensor([[-30.0, -30.0]]))
    assert hinge_loss(mirrored).item() == pytest.approx(30.0)

    # invariant to turning the person about the vertical (the facing turns with them)
    a = torch.tensor(0.9)
    rot = torch.tensor([[a.cos(), 0, a.sin()], [0, 1, 0], [-a.sin(), 0, a.cos()]])
    torch.testing.assert_close(knee_flexion(pose @ rot.T), torch.tensor([[30.0, 30.0]]))
    # a left-right flip (a real, mirrored person) still bends its knees forwards
    flipped = flip(pose.reshape(1, 48), 3)
    assert (knee_flexion(flipped) > 0).all()

    both = torch.cat([pose, mirrored, pose, pose])
    assert backward_knee_rate(both).item() == pytest.approx(0.25)
    assert hinge_loss(both).item() == pytest.approx(30.0 / 4)


def _tilt(pose: np.ndarray, deg: float) -> np.ndarray:
    """A camera looking down by ``deg``: world points seen rotated about the x axis."""
    e = np.radians(deg)
    rx = np.array([[1, 0, 0], [0, np.cos(e), -np.sin(e)], [0, np.sin(e), np.cos(e)]])
    return pose @ rx.T


def test_rotation_about_the_y_axis_is_the_thesis_rotation_and_keeps_the_axis_fixed():
    angles = torch.tensor([0.0, 0.5, -2.0, np.pi])
    y = torch.tensor([0.0, 1.0, 0.0])
    assert torch.allclose(rotation_about(y, angles), rotation_matrices(angles), atol=1e-6)
    axis = torch.tensor([0.0, -0.99, -0.14])
    axis = axis / axis.norm()
    rot = rotation_about(axis, angles)
    assert torch.allclose(rot @ rot.transpose(-1, -2), torch.eye(3).expand(4, 3, 3), atol=1e-6)
    assert torch.allclose(rot @ axis, axis.expand(4, 3), atol=1e-6)
    # a half turn about a tilted axis is not the half turn about y (the thesis's back view)
    assert not torch.allclose(rot[3], rotation_matrices(angles[3:])[0], atol=1e-2)


def test_up_direction_recovers_the_cameras_elevation_from_bodies_facing_every_way():
    # a forward-leaning trunk (thorax 100 mm ahead of the pelvis) facing 8 ways, seen by a
    # camera looking down by 8 degrees: the leans cancel and the tilt remains
    body = STANDING.astype(float).copy()
    body[8] += [0, 0, -100]
    azimuths = torch.linspace(0, 2 * np.pi, 9)[:-1]
    turns = rotation_matrices(azimuths).double().numpy()
    poses = np.stack([_tilt(body @ r.T, 8.0) for r in turns])[:, 1:]
    up = up_direction(torch.as_tensor(poses, dtype=torch.float32))
    e = np.radians(8.0)
    assert torch.allclose(up, torch.tensor([0.0, -np.cos(e), -np.sin(e)], dtype=torch.float32),
                          atol=1e-5)


def test_views_about_the_up_axis_keep_the_cameras_elevation():
    # an upright body seen from a camera 8 degrees up: turned about the estimated vertical,
    # every view is the same body seen from 8 degrees up (the head stays as far above the
    # pelvis in the image); about the camera's y axis a back view is seen from below
    pose = torch.as_tensor(_tilt(STANDING.astype(float), 8.0)[None, 1:].repeat(64, 0),
                           dtype=torch.float32)
    up = up_direction(pose)
    gen = torch.Generator().manual_seed(0)
    turned = random_rotation_up(pose, up, gen)
    head = 9  # the head among the 16 non-root joints
    assert torch.allclose(turned @ up, pose @ up, atol=1e-4)  # heights above the pelvis kept
    assert torch.allclose(turned[:, head].norm(dim=-1), pose[:, head].norm(dim=-1), atol=1e-3)
    back = pose @ rotation_matrices(torch.tensor([np.pi]))[0].T
    assert not torch.allclose(back @ up, pose @ up, atol=1.0)


def test_the_depth_mirror_shows_about_a_tilted_vertical_and_not_about_y():
    """The method chapter's identity M R_u(a) M = R_Mu(-a): about y (which the depth mirror
    M fixes) the mirror's views are the pose's views at -a; about a tilted vertical they are
    views about another axis, not among the pose's own."""
    e = np.radians(7.6)
    u = torch.tensor([0.0, -np.cos(e), -np.sin(e)], dtype=torch.float32)
    m = torch.diag(torch.tensor([1.0, 1.0, -1.0]))
    a = torch.linspace(-3.0, 3.0, 7)
    y = torch.tensor([0.0, 1.0, 0.0])
    assert torch.allclose(m @ rotation_about(y, a) @ m, rotation_about(y, -a), atol=1e-6)
    assert torch.allclose(m @ rotation_about(u, a) @ m, rotation_about(m @ u, -a), atol=1e-6)
    assert not torch.allclose(m @ rotation_about(u, a[:1]) @ m, rotation_about(u, -a[:1]),
                              atol=1e-2)


def test_downward_tilt_prior_is_zero_for_bodies_leaning_towards_the_camera_only():
    from lib.priors import downward_tilt_loss

    down = torch.as_tensor(_tilt(STANDING.astype(float), 8.0)[None, 1:], dtype=torch.float32)
    up = torch.as_tensor(_tilt(STANDING.astype(float), -8.0)[None, 1:], dtype=torch.float32)
    assert float(downward_tilt_loss(down)) == 0.0  # seen from above: no penalty
    assert float(downward_tilt_loss(up)) == pytest.approx(np.sin(np.radians(8.0)), abs=1e-4)
    up.requires_grad_(True)
    downward_tilt_loss(up).backward()
    assert up.grad.abs().sum() > 0  # it pulls the lifted depths back
