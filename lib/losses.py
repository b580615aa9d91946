"""Losses, the KL schedule and the lifter's objective, a sum of named terms
(:data:`OBJECTIVE`; the geometry they use lives in ``lib/geometry.py``).

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

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .geometry import C, as_flat, as_joints, project
from .priors import downward_tilt_loss, hinge_loss, symmetry_loss


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


def r1_penalty(logit_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of the squared norm of d logit / d input at the real poses
    (``real`` must require grad and ``logit_real`` come from it): the R1 penalty, which keeps
    the critic flat where the data are, so that it cannot sharpen without bound. Its graph
    is kept, so that the penalty itself is trained on."""
    (grad,) = torch.autograd.grad(logit_real.sum(), real, create_graph=True)
    return grad.float().pow(2).sum(1).mean()


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


def cycle_loss(pose3d: torch.Tensor, relifted: torch.Tensor, rot: torch.Tensor,
               pose2d: torch.Tensor, c: float = C) -> tuple[torch.Tensor, torch.Tensor]:
    """Lift -> rotate -> project -> lift again -> rotate back (Chen et al., CVPR 2019).

    ``relifted`` is the lifter's 3D pose of the novel view ``project(rot @ pose3d)``; rotated
    back with ``rot^T`` it should be the first lift again (3D term) and project onto the
    original input (2D term). Returns both (mean per-joint Euclidean distances): a lifter
    that is consistent across views has both at zero, whatever the true depth.

    pose3d, relifted: (B, 48) or (B, 16, 3); rot: (B, 3, 3); pose2d: (B, 32) or (B, 16, 2).
    """
    back = as_joints(relifted, 3) @ rot  # rows times R = (R^T p^T)^T: rotated back
    d3 = torch.linalg.vector_norm(back - as_joints(pose3d, 3), dim=-1).mean()
    d2 = torch.linalg.vector_norm(project(back, c) - as_joints(pose2d, 2), dim=-1).mean()
    return d3, d2


# --------------------------------------------------------------------------------------
# the lifter's objective: named terms, each weighted by a parameter
# --------------------------------------------------------------------------------------

@dataclass
class Lifted:
    """What one step made of a batch, for the objective's terms: the input 2D ``x``
    (B, 32), its lift ``pose3d`` (B, 48, float32) and latent ``mu`` / ``logvar`` (None
    without a VAE), the missing-joint ``mask`` (None when no joint is missing), the novel
    views (B, 32) and the rotations (B, 3, 3) that made them, the views as the
    discriminator sees them (``novel_seen``, with its instance noise), and the two networks
    (the lifter lifts the views again for the cycle; ``disc`` is None without one)."""

    x: torch.Tensor
    pose3d: torch.Tensor
    mu: torch.Tensor
    logvar: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    novel: torch.Tensor | None = None
    rot: torch.Tensor | None = None
    novel_seen: torch.Tensor | None = None
    lifter: torch.nn.Module | None = None
    disc: torch.nn.Module | None = None


def _weighted(key: str, term):
    """A term computed only where its weight ``cfg[key]`` is not 0 (a prior switched off
    costs nothing)."""
    return key, lambda b, cfg: term(b) if cfg[key] > 0 else None


def _cycle(b: Lifted) -> torch.Tensor:
    """Lift each novel view again and turn it back: 3D and 2D consistency (:func:`cycle_loss`)."""
    cyc3d, cyc2d = cycle_loss(b.pose3d, b.lifter(b.novel, sample=False)[0].float(), b.rot, b.x)
    return cyc3d + cyc2d


# name -> (the parameter that weights it, or "beta" for the KL schedule; the term of a
# batch, None where it does not apply). Summed in this order; each term is a column of the
# run's history. A new term is one entry here and its weight in lib.config.DEFAULTS.
OBJECTIVE = {
    "proj": ("lambda_recon", lambda b, cfg: projection_loss(b.pose3d, b.x, b.mask)),
    "kld": ("beta", lambda b, cfg: None if b.logvar is None
            else kl_divergence(b.mu.float(), b.logvar.float())),
    "adv": ("lambda_disc", lambda b, cfg: None if b.disc is None
            else generator_adversarial_loss(b.disc(b.novel_seen).float())),
    "hinge": _weighted("lambda_hinge", lambda b: hinge_loss(b.pose3d)),
    "sym": _weighted("lambda_sym", lambda b: symmetry_loss(b.pose3d)),
    "tilt": _weighted("lambda_tilt", lambda b: downward_tilt_loss(b.pose3d)),
    "cycle": _weighted("lambda_cycle", _cycle),
}


def objective(b: Lifted, cfg: dict, beta: torch.Tensor) -> dict[str, torch.Tensor]:
    """The lifter's loss of one batch: {"loss": the weighted sum, and each term that
    applies, by name} (:data:`OBJECTIVE`)."""
    terms, loss = {}, 0.0
    for name, (key, term) in OBJECTIVE.items():
        value = term(b, cfg)
        if value is not None:
            terms[name] = value
            loss = loss + (beta if key == "beta" else cfg[key]) * value
    return {"loss": loss, **terms}
