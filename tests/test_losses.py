"""Losses, projection, rotation and beta schedule, checked on values worked out by hand."""

import math

import pytest
import torch

from lib.geometry import C, as_flat, as_joints, project, random_rotation_y
from lib.losses import (
    beta_schedule,
    discriminator_loss,
    generator_adversarial_loss,
    kl_divergence,
    projection_loss,
    real_input_noise,
    supervised_loss,
)


def test_shape_helpers():
    x = torch.arange(2 * 48.0).reshape(2, 48)
    j = as_joints(x, 3)
    assert j.shape == (2, 16, 3) and j[0, 1].tolist() == [3.0, 4.0, 5.0]
    assert as_joints(j, 3) is j
    assert torch.equal(as_flat(j), x)
    assert as_joints(torch.zeros(2, 32), 2).shape == (2, 16, 2)


def test_project_hand_points():
    p = torch.tensor([[[1.0, 2.0, 0.0], [1.0, 1.0, 10.0], [0.0, 0.0, 0.0]]])
    # (1,2,0) -> (1,2)/10; (1,1,10) -> (1,1)/20; the root-like origin -> (0,0)
    expected = torch.tensor([[[0.1, 0.2], [0.05, 0.05], [0.0, 0.0]]])
    assert C == 10.0
    torch.testing.assert_close(project(p), expected)
    flat = torch.zeros(1, 48)
    flat[0, :3] = torch.tensor([1.0, 2.0, 0.0])
    assert project(flat).shape == (1, 16, 2)
    torch.testing.assert_close(project(flat)[0, 0], torch.tensor([0.1, 0.2]))
    # a joint behind the camera: depth clamped to 0.1 * c = 1, no blow-up
    behind = project(torch.tensor([[[1.0, 1.0, -20.0]]]))
    torch.testing.assert_close(behind, torch.tensor([[[1.0, 1.0]]]))


def test_projection_loss_zero_on_own_projection_with_finite_gradient():
    pose3d = torch.randn(4, 48, requires_grad=True)
    pose2d = as_flat(project(pose3d)).detach()
    loss = projection_loss(pose3d, pose2d)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(pose3d.grad).all()


def test_projection_loss_hand_value_and_mask():
    # one joint at (3, 4, 0) projects to (0.3, 0.4); target (0, 0): distance 0.5
    pose3d = torch.tensor([[[3.0, 4.0, 0.0]], [[0.0, 0.0, 0.0]]])
    pose2d = torch.zeros(2, 1, 2)
    assert projection_loss(pose3d, pose2d).item() == pytest.approx(0.25)  # (0.5 + 0) / 2
    assert projection_loss(pose3d, pose2d, squared=True).item() == pytest.approx(0.125)
    mask = torch.tensor([[True], [False]])
    assert projection_loss(pose3d, pose2d, mask).item() == pytest.approx(0.5)  # 0.5 / 1

    torch.manual_seed(0)
    p3, p2 = torch.randn(3, 48), torch.randn(3, 32)
    mask = torch.ones(3, 16)
    mask[1, 5] = 0
    before = projection_loss(p3, p2, mask)
    p2[1, 10:12] += 100.0  # move the masked 2D joint
    p3[1, 15:18] += 3.0    # and its 3D prediction
    torch.testing.assert_close(projection_loss(p3, p2, mask), before)
    assert projection_loss(p3, p2, torch.zeros(3, 16)).item() == 0.0  # nothing visible


def test_kl_divergence():
    z = torch.zeros(3, 51)
    assert kl_divergence(z, z).item() == 0.0
    # mu = 1, logvar = 0: 0.5 per dimension
    assert kl_divergence(torch.ones(3, 4), torch.zeros(3, 4)).item() == pytest.approx(2.0)
    # mu = 0, logvar = log 2: 0.5 * (2 - 1 - log 2) per dimension
    kl = kl_divergence(torch.zeros(1, 1), torch.full((1, 1), math.log(2.0))).item()
    assert kl == pytest.approx(0.5 * (1.0 - math.log(2.0)))


def test_rotation_convention_and_invariants():
    p = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]])
    r = random_rotation_y(p, angles=torch.tensor([math.pi / 2]))
    # R_y(90 deg): x -> -z, z -> x, y (vertical) unchanged
    expected = torch.tensor([[[0.0, 0.0, -1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    torch.testing.assert_close(r, expected, atol=1e-6, rtol=0)

    torch.manual_seed(0)
    pose = torch.randn(64, 48)
    g = torch.Generator().manual_seed(0)
    rot = random_rotation_y(pose, generator=g)
    assert rot.shape == pose.shape
    a, b = as_joints(pose, 3), as_joints(rot, 3)
    torch.testing.assert_close(b[..., 1], a[..., 1])  # heights unchanged
    torch.testing.assert_close(b.norm(dim=-1), a.norm(dim=-1))  # distances to the root
    torch.testing.assert_close(  # bone lengths between any two joints
        torch.cdist(b, b), torch.cdist(a, a), atol=1e-5, rtol=1e-5)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(random_rotation_y(pose, generator=g), rot)  # reproducible


def test_rotation_range_and_elevation():
    torch.manual_seed(0)
    x = torch.tensor([[[1.0, 0.0, 0.0]]]).repeat(500, 1, 1)
    r = random_rotation_y(x, min_deg=0.0, max_deg=90.0)
    # (cos a, 0, -sin a) with a in [0, 90] deg: x >= 0, z <= 0
    assert (r[..., 0] >= -1e-6).all() and (r[..., 2] <= 1e-6).all()
    tilt = random_rotation_y(torch.tensor([[[0.0, 0.0, 1.0]]]).repeat(500, 1, 1),
                             min_deg=0.0, max_deg=0.0, elev_min_deg=10.0, elev_max_deg=20.0)
    # R_x(e) (0,0,1) = (0, -sin e, cos e)
    y = -tilt[..., 1]
    assert (y >= math.sin(math.radians(10)) - 1e-6).all()
    assert (y <= math.sin(math.radians(20)) + 1e-6).all()


def test_discriminator_and_generator_losses():
    real = torch.tensor([[2.0], [-1.0]])
    fake = torch.tensor([[0.5], [-3.0]])
    sig = torch.sigmoid
    expected = -torch.log(sig(real)).mean() - torch.log(1 - sig(fake)).mean()
    got = discriminator_loss(real, fake, real_label_range=(1.0, 1.0))
    torch.testing.assert_close(got, expected)
    # logits of 0 are probability 1/2 whatever the target: log 2 for each term
    zero = torch.zeros(8, 1)
    assert discriminator_loss(zero, zero).item() == pytest.approx(2 * math.log(2.0))
    # smoothed labels in [0.7, 1.0]: between the losses at targets 0.7 and 1.0
    lo = discriminator_loss(real, fake, real_label_range=(0.7, 0.7)).item()
    hi = discriminator_loss(real, fake, real_label_range=(1.0, 1.0)).item()
    mid = discriminator_loss(real, fake).item()
    assert min(lo, hi) <= mid <= max(lo, hi)
    torch.testing.assert_close(generator_adversarial_loss(fake), -torch.log(sig(fake)).mean())
    # logits form stays finite where log(sigmoid) would underflow
    assert torch.isfinite(generator_adversarial_loss(torch.tensor([[-200.0]])))


def test_real_input_noise():
    x = torch.zeros(20000, 32)
    n = real_input_noise(x, std=0.01, generator=torch.Generator().manual_seed(0))
    assert n.shape == x.shape
    assert n.std().item() == pytest.approx(0.01, rel=0.02)
    assert torch.equal(real_input_noise(x, std=0.0), x)


@pytest.mark.parametrize("epoch, frac", [
    (0, 0.0), (9, 0.0),          # warm-up
    (10, 0.0), (25, 0.5),        # ramp 0 -> lambda over epochs 10..39 (30 epochs)
    (39, 29 / 30),
    (40, 1.0), (45, 1.0), (49, 1.0),  # hold
    (50, 0.0), (65, 0.5), (90, 0.0),  # next cycles
])
def test_beta_schedule(epoch, frac):
    assert beta_schedule(epoch) == pytest.approx(1e-3 * frac)
    assert beta_schedule(epoch, lambda_kld=2.0) == pytest.approx(2.0 * frac)


def test_beta_schedule_edges():
    assert beta_schedule(12.5, warmup=0, cycle=10, hold=0) == pytest.approx(1e-3 * 0.25)
    assert beta_schedule(3, warmup=0, cycle=10, hold=10) == 1e-3  # no ramp: always held


def test_supervised_loss():
    pred, gt = torch.zeros(2, 48), torch.zeros(2, 16, 3)
    gt[0, 0, 0] = 2.0
    assert supervised_loss(pred, gt).item() == pytest.approx(4.0 / 96)
