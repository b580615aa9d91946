"""Losses, projection, rotations and the KL schedule.

Conventions (fixed project-wide):

- a normalised 2D pose is ``(B, 32)`` = 16 joints x (x, y): joints 1..16 of the 17-joint
  layout of ``lib/skeleton.py``, the pelvis root removed, root-relative, scaled so that the
  2D chain head-neck + neck-thorax + thorax-pelvis is about ``1 / C``;
- a 3D pose is ``(B, 48)`` = 16 joints x (x, y, z), root-relative, camera axes (x right,
  y down, z forward = depth), in the unit where the pose placed at depth ``C`` projects to
  the 2D input.

Every function takes either the flat form or the joint form ``(B, 16, d)`` (see
:func:`as_joints`), works on any device, and is made of tensor operations only: no
``.item()``, no host synchronisation, so a training step stays asynchronous on a GPU.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

C = 10.0  # projection distance: the root is placed at depth C before the perspective divide


def as_joints(x: torch.Tensor, dim: int) -> torch.Tensor:
    """(..., J * dim) -> (..., J, dim); a tensor whose last size is already ``dim`` is
    returned as it is."""
    return x if x.shape[-1] == dim else x.unflatten(-1, (-1, dim))


def as_flat(x: torch.Tensor) -> torch.Tensor:
    """(..., J, dim) -> (..., J * dim)."""
    return x.flatten(-2)


def project(pose3d: torch.Tensor, c: float = C) -> torch.Tensor:
    """Perspective projection of root-relative 3D poses placed at depth ``c``.

    ``(x, y, z) -> (x, y) / (z + c)``: the pose is translated by (0, 0, c) and divided by
    its depth, with unit focal length, so the root (the origin) projects to (0, 0) like the
    root-removed 2D input. The depth is clamped to at least ``0.1 * c`` so that a joint at
    or behind the camera cannot blow the division up (never reached by decoder outputs,
    whose coordinates are below 1.3 * sqrt(3) < 0.9 * c in size, even after a rotation).

    pose3d: (..., 16, 3) or (..., 48) -> (..., 16, 2).
    """
    p = as_joints(pose3d, 3)
    depth = (p[..., 2:] + c).clamp_min(0.1 * c)
    return p[..., :2] / depth


def projection_loss(pose3d: torch.Tensor, pose2d: torch.Tensor,
                    mask: torch.Tensor | None = None, c: float = C,
                    squared: bool = False) -> torch.Tensor:
    """Mean per-joint 2D Euclidean distance between ``project(pose3d)`` and ``pose2d``.

    The distance (not its square) keeps a gradient of constant size when the error is
    small: the normalised 2D errors are of order 1e-2, so an MSE (errors squared, ~1e-4)
    would be swamped by the KL and adversarial terms even at their 1e-3 weights.
    ``squared=True`` gives the mean squared per-joint distance instead, for ablations.

    mask: optional (B, 16), 1/True = visible. The loss is the sum over visible joints
    divided by the number of visible joints in the batch, so a masked joint has no effect.
    The gradient is finite (zero) where the distance is exactly zero.
    """
    diff = project(pose3d, c) - as_joints(pose2d, 2)
    dist = diff.pow(2).sum(-1) if squared else torch.linalg.vector_norm(diff, dim=-1)
    if mask is None:
        return dist.mean()
    mask = mask.to(dist.dtype)
    return (dist * mask).sum() / mask.sum().clamp_min(1.0)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)): sum over latent dims, mean over the batch.

    Per dimension: 0.5 * (mu^2 + exp(logvar) - 1 - logvar).
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()


def rotation_matrices(azim: torch.Tensor, elev: torch.Tensor | None = None) -> torch.Tensor:
    """(B,) angles in radians -> (B, 3, 3) matrices ``R = R_x(elev) @ R_y(azim)``.

    Right-handed rotations acting on column vectors; about the vertical camera axis y::

        R_y(a) = [[cos a, 0, sin a], [0, 1, 0], [-sin a, 0, cos a]]

    so R_y(90 deg) maps (1, 0, 0) to (0, 0, -1) (x onto -z, z onto +x). ``elev`` tilts the
    result about the camera x axis, ``R_x(e) = [[1, 0, 0], [0, cos e, -sin e],
    [0, sin e, cos e]]``.
    """
    zero, one = torch.zeros_like(azim), torch.ones_like(azim)
    ca, sa = torch.cos(azim), torch.sin(azim)
    r = torch.stack([ca, zero, sa, zero, one, zero, -sa, zero, ca], -1).unflatten(-1, (3, 3))
    if elev is not None:
        ce, se = torch.cos(elev), torch.sin(elev)
        rx = torch.stack([one, zero, zero, zero, ce, -se, zero, se, ce], -1)
        r = rx.unflatten(-1, (3, 3)) @ r
    return r


def _uniform(n: int, lo_deg: float, hi_deg: float, like: torch.Tensor,
             generator: torch.Generator | None) -> torch.Tensor:
    u = torch.rand(n, generator=generator, device=like.device, dtype=like.dtype)
    return math.radians(lo_deg) + u * math.radians(hi_deg - lo_deg)


def random_rotation_y(pose3d: torch.Tensor, angles: torch.Tensor | None = None,
                      generator: torch.Generator | None = None, min_deg: float = -180.0,
                      max_deg: float = 180.0, elev_min_deg: float = 0.0,
                      elev_max_deg: float = 0.0) -> torch.Tensor:
    """Rotate root-relative 3D poses about the root, by a random angle about the vertical.

    Azimuths are ``angles`` (B,) in radians if given, else uniform in [min_deg, max_deg]
    (default the full circle); an elevation tilt about the camera x axis, uniform in
    [elev_min_deg, elev_max_deg], follows (default 0: none). Conventions in
    :func:`rotation_matrices`. Novel 2D views are ``project(random_rotation_y(pose3d))``.

    pose3d: (B, 16, 3) or (B, 48); the result has the same shape. ``generator``, if given,
    must be on the device of ``pose3d``.
    """
    p = as_joints(pose3d, 3)
    n = p.shape[0]
    if angles is None:
        angles = _uniform(n, min_deg, max_deg, p, generator)
    elev = None
    if elev_min_deg != 0.0 or elev_max_deg != 0.0:
        elev = _uniform(n, elev_min_deg, elev_max_deg, p, generator)
    rot = rotation_matrices(angles.to(p), elev)
    return (p @ rot.transpose(-1, -2)).reshape(pose3d.shape)


def discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor,
                       real_label_range: tuple[float, float] = (0.7, 1.0),
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """BCE-with-logits loss of the discriminator: mean over reals + mean over fakes.

    Real targets are drawn uniformly from ``real_label_range`` for each sample (one-sided
    label smoothing; the author's [0.7, 1.2] is outside BCE's [0, 1] domain, hence
    [0.7, 1.0]); fake targets are 0. Logits in, so this equals the draft's
    Sigmoid + BCELoss without its overflow.
    """
    lo, hi = real_label_range
    u = torch.rand(d_real.shape, generator=generator, device=d_real.device, dtype=d_real.dtype)
    real = F.binary_cross_entropy_with_logits(d_real, lo + (hi - lo) * u)
    fake = F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
    return real + fake


def generator_adversarial_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating generator loss: BCE-with-logits of the fakes against target 1,
    i.e. mean of -log(sigmoid(d_fake))."""
    return F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake))


def real_input_noise(x: torch.Tensor, std: float = 0.005,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """``x`` plus Gaussian noise of standard deviation ``std``, for the real 2D poses shown
    to the discriminator (instance noise, so it cannot separate real from fake on exact
    detail).

    The default 0.005 is 5% of the normalised torso chain (1 / C = 0.1, about 0.7 m of a
    body), i.e. about 35 mm: below the error of a good 2D detector, so it blurs only detail
    that the generator could not match anyway.
    """
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + std * noise


def beta_schedule(epoch: float, lambda_kld: float = 1e-3, warmup: int = 10, cycle: int = 40,
                  hold: int = 10) -> float:
    """Cyclical KL weight beta (a Python float; ``epoch`` may be fractional).

    ::

        beta = 0                                  if epoch < warmup
        t    = (epoch - warmup) mod cycle,  ramp = cycle - hold
        beta = lambda_kld * t / ramp              if t < ramp
        beta = lambda_kld                         otherwise (the last ``hold`` epochs)

    With the defaults: 0 for epochs 0-9; each 40-epoch cycle starts at epoch 10, 50, 90, ...
    with beta = 0, rises by lambda_kld / 30 per epoch (epoch 25: lambda_kld / 2, epoch 39:
    29/30 lambda_kld) and holds lambda_kld at epochs 40-49, 80-89, ...
    """
    if epoch < warmup:
        return 0.0
    t = (epoch - warmup) % cycle
    ramp = cycle - hold
    return lambda_kld * t / ramp if t < ramp else lambda_kld


def supervised_loss(pred3d: torch.Tensor, gt3d: torch.Tensor) -> torch.Tensor:
    """MSE over all coordinates, for the supervised (Martinez et al.) baseline."""
    return F.mse_loss(as_flat(as_joints(pred3d, 3)), as_flat(as_joints(gt3d, 3)))
