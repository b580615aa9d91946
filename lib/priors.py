"""Anatomical priors that need no 3D ground truth (the depth-mirror fix).

A pose and its mirror image in depth project to the same 2D under (near-)orthographic
cameras, but the mirror is chirally flipped: its knees bend backwards relative to its own
facing direction. With the facing direction f = (l_hip - r_hip) x up and the knee offset
k = knee - (hip + ankle) / 2, a real knee has k . f >= 0 (it flexes forwards), and depth
mirroring flips the sign of k . f. The hinge loss penalises k . f < 0.

Poses are root-relative network 3D poses (B, 48) or (B, 16, 3) in camera axes (x right,
y down, z forward); joint j of the 17-joint layout is row j - 1 (the pelvis is dropped).
"""

from __future__ import annotations

import torch

from .geometry import as_joints

# rows in the 16-joint (root-dropped) layout
R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE = 0, 1, 2, 3, 4, 5


# left/right bone pairs in the 16-joint layout (row = joint - 1; -1 = the root at the origin)
SYMMETRIC_BONES = (((-1, 3), (-1, 0)), ((3, 4), (0, 1)), ((4, 5), (1, 2)),  # hips, thighs, shins
                   ((7, 10), (7, 13)), ((10, 11), (13, 14)), ((11, 12), (14, 15)))  # arms


def _bone(p: torch.Tensor, a: int, b: int) -> torch.Tensor:
    start = torch.zeros_like(p[:, 0]) if a < 0 else p[:, a]
    return torch.linalg.vector_norm(p[:, b] - start, dim=-1)


def symmetry_loss(pose: torch.Tensor) -> torch.Tensor:
    """Mean relative length difference of the six left/right bone pairs, |l - r| / (l + r):
    zero for a body whose two sides have equal bones, as every human skeleton has.
    Lengths are ratios, so the prior holds whatever the body's size or proportions."""
    p = as_joints(pose, 3)
    terms = [(_bone(p, *left) - _bone(p, *right)).abs()
             / (_bone(p, *left) + _bone(p, *right)).clamp_min(1e-6)
             for left, right in SYMMETRIC_BONES]
    return torch.stack(terms, -1).mean()


def downward_tilt_loss(pose: torch.Tensor) -> torch.Tensor:
    """relu(-sin t) of the batch's estimated vertical (``geometry.up_direction``, with its
    gradient), t its tilt towards the camera: zero while the batch's trunks, on average, lean
    towards the camera, as they do for cameras that look down on the subject; positive when
    the lifted world as a whole tilts the other way, as if seen from below."""
    from .geometry import up_direction

    return torch.relu(up_direction(pose)[2])


def facing(pose: torch.Tensor, up: torch.Tensor | None = None) -> torch.Tensor:
    """Unit facing direction (B, 3): (l_hip - r_hip) x up, up = -y (camera y points down)."""
    p = as_joints(pose, 3)
    d = p[:, L_HIP] - p[:, R_HIP]
    if up is None:  # d x (0, -1, 0) written out: no constant tensor to copy to the device
        f = torch.stack([d[:, 2], torch.zeros_like(d[:, 0]), -d[:, 0]], -1)
    else:
        f = torch.linalg.cross(d, up.to(d).expand_as(d))
    return f / f.norm(dim=-1, keepdim=True).clamp_min(1e-6)


def knee_flexion(pose: torch.Tensor) -> torch.Tensor:
    """Signed forward knee offsets (B, 2) for the right and left leg, in the pose's units:
    positive when the knee sits in front of the hip-ankle line, as real knees do."""
    p = as_joints(pose, 3)
    f = facing(p)
    out = []
    for hip, knee, ankle in ((R_HIP, R_KNEE, R_ANKLE), (L_HIP, L_KNEE, L_ANKLE)):
        k = p[:, knee] - 0.5 * (p[:, hip] + p[:, ankle])
        out.append((k * f).sum(-1))
    return torch.stack(out, -1)


def hinge_loss(pose: torch.Tensor) -> torch.Tensor:
    """Mean over poses and legs of relu(-k . f): zero for every knee that bends forwards."""
    return torch.relu(-knee_flexion(pose)).mean()


def backward_knee_rate(pose: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """Fraction of poses whose more bent knee bends backwards by more than ``threshold``."""
    k = knee_flexion(pose)
    bent = k.gather(1, k.abs().argmax(1, keepdim=True)).squeeze(1)
    return (bent < -threshold).float().mean()
