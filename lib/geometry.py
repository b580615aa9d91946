"""Geometry: centring, the network's projection and rotations, normalisation of poses
(DESIGN section 3), flip augmentation and missing-joint masks.

Network space: a 2D pose is 16 joints x (x, y) = 32 numbers, the pelvis subtracted and
dropped, scaled so that the 2D chain head-neck + neck-thorax + thorax-pelvis measures 1/c
(c = 10, the projection distance). A 3D pose is 16 joints x 3 = 48 numbers, root-relative,
in the unit in which that chain measures 1 in 3D (so a pose at depth c projects to the input).

Two scale modes:
- ``"dataset"`` (the author's): divide by one constant, the mean 2D chain length of the
  training split; every pose keeps its relative size.
- ``"pose"``: divide each pose by its own chain length; keypoints from any image, at any
  pixel scale, land in the same range.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .skeleton import FLIP, JOINT_INDEX, LIMB_JOINTS, SCALE_CHAIN

C = 10.0  # projection distance
FLIP16 = torch.as_tensor(FLIP[1:] - 1)  # left/right swap on the 16 non-root joints
LIMB16 = torch.as_tensor(LIMB_JOINTS) - 1
_CHAIN_FROM, _CHAIN_TO = torch.as_tensor(SCALE_CHAIN[:-1]), torch.as_tensor(SCALE_CHAIN[1:])
_ON_DEVICE: dict = {}


def on_device(t: torch.Tensor, device) -> torch.Tensor:
    """A constant index tensor on ``device``, copied there once: a host-to-device copy
    inside the training step would synchronise the GPU with the host at every step."""
    key = (id(t), str(device))
    if key not in _ON_DEVICE:
        _ON_DEVICE[key] = t.to(device)
    return _ON_DEVICE[key]


def center(pose):
    """Root-relative poses: every joint minus the root (joint 0), (N, J, D) numpy or torch."""
    return pose - pose[:, :1]


# ---- network-space geometry: projection and rotations (used by losses and trainer) --------


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
                      elev_max_deg: float = 0.0, return_matrix: bool = False):
    """Rotate root-relative 3D poses about the root, by a random angle about the vertical.

    Azimuths are ``angles`` (B,) in radians if given, else uniform in [min_deg, max_deg]
    (default the full circle); an elevation tilt about the camera x axis, uniform in
    [elev_min_deg, elev_max_deg], follows (default 0: none). Conventions in
    :func:`rotation_matrices`. Novel 2D views are ``project(random_rotation_y(pose3d))``.

    pose3d: (B, 16, 3) or (B, 48); the result has the same shape. ``generator``, if given,
    must be on the device of ``pose3d``. ``return_matrix=True`` returns
    ``(rotated, rot)`` with the (B, 3, 3) rotations applied.
    """
    p = as_joints(pose3d, 3)
    n = p.shape[0]
    if angles is None:
        angles = _uniform(n, min_deg, max_deg, p, generator)
    elev = None
    if elev_min_deg != 0.0 or elev_max_deg != 0.0:
        elev = _uniform(n, elev_min_deg, elev_max_deg, p, generator)
    rot = rotation_matrices(angles.to(p), elev)
    rotated = (p @ rot.transpose(-1, -2)).reshape(pose3d.shape)
    return (rotated, rot) if return_matrix else rotated


UP_JOINT = 7  # the thorax among the 16 non-root joints: pelvis -> thorax is the trunk


def up_direction(pose3d: torch.Tensor, reduce=None) -> torch.Tensor:
    """The direction of the world's vertical in the camera frame, estimated from lifted poses:
    the mean over the batch of the unit pelvis -> thorax vectors, normalised. (B, 16, 3) or
    (B, 48) -> (3,).

    A trunk leans forwards or sideways in the body's own frame; over many bodies facing every
    way those leans cancel, and what remains is the vertical, tilted by the camera's
    elevation (for a camera looking down, about (0, -cos e, -sin e); y points down the image).
    It is computed from the lifter's own 3D, so from 2D alone. ``reduce``, if given, maps the
    mean of this batch's unit vectors to that of the whole batch before normalising (with
    several ranks, each holding an equal shard: ``distributed.mean_over_ranks``).
    """
    trunk = as_joints(pose3d, 3)[:, UP_JOINT]
    mean = (trunk / trunk.norm(dim=-1, keepdim=True).clamp_min(1e-8)).mean(0)
    if reduce is not None:
        mean = reduce(mean)
    return mean / mean.norm().clamp_min(1e-8)


def tilt_of(up: torch.Tensor) -> torch.Tensor:
    """How far a vertical ``up`` (3,) leans towards the camera, in radians: the camera's
    elevation, positive for a camera that looks down (y points down, z forwards)."""
    return torch.atan2(-up[2], -up[1])


def clamp_tilt(up: torch.Tensor, low_deg: float, high_deg: float) -> torch.Tensor:
    """The unit vertical ``up`` (3,) with its tilt towards the camera (:func:`tilt_of`) held
    in [low_deg, high_deg]; its sideways lean (x) is kept."""
    t = tilt_of(up).clamp(math.radians(low_deg), math.radians(high_deg))
    r = (1 - up[0] ** 2).clamp_min(0) ** 0.5  # the length left for the y-z part
    return torch.stack([up[0], -r * torch.cos(t), -r * torch.sin(t)])


def rotation_about(axis: torch.Tensor, angles: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) rotations by ``angles`` (B,) radians about the unit ``axis`` (3,) (Rodrigues:
    ``R = I + sin a K + (1 - cos a) K^2``, K the cross-product matrix of the axis). About
    (0, 1, 0) it equals :func:`rotation_matrices` without elevation."""
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero]).reshape(3, 3)
    s, c = torch.sin(angles)[:, None, None], torch.cos(angles)[:, None, None]
    eye = torch.eye(3, dtype=axis.dtype, device=axis.device)
    return eye + s * k + (1 - c) * (k @ k)


def random_rotation_up(pose3d: torch.Tensor, up: torch.Tensor,
                       generator: torch.Generator | None = None, min_deg: float = -180.0,
                       max_deg: float = 180.0, return_matrix: bool = False):
    """Like :func:`random_rotation_y`, but about the axis ``up`` (3,) through the root (the
    world's vertical, :func:`up_direction`), so that every novel view is seen from the
    camera's own elevation: a view from behind is not seen from below."""
    p = as_joints(pose3d, 3)
    angles = _uniform(p.shape[0], min_deg, max_deg, p, generator)
    rot = rotation_about(up.to(p), angles)
    rotated = (p @ rot.transpose(-1, -2)).reshape(pose3d.shape)
    return (rotated, rot) if return_matrix else rotated


def random_turn(pose3d: torch.Tensor, axis: str, generator: torch.Generator | None = None,
                up: torch.Tensor | None = None, min_deg: float = -180.0,
                max_deg: float = 180.0, elev_min_deg: float = 0.0, elev_max_deg: float = 0.0):
    """The novel views' rotation, one place for both axes: ``(rotated, rot)`` about
    ``"camera"`` (:func:`random_rotation_y`, with its optional elevation) or ``"up"``
    (:func:`random_rotation_up` about ``up``, by default :func:`up_direction` of the poses)."""
    if axis == "up":
        up = up_direction(pose3d.detach()) if up is None else up
        return random_rotation_up(pose3d, up, generator, min_deg, max_deg, return_matrix=True)
    if axis == "camera":
        return random_rotation_y(pose3d, generator=generator, min_deg=min_deg,
                                 max_deg=max_deg, elev_min_deg=elev_min_deg,
                                 elev_max_deg=elev_max_deg, return_matrix=True)
    raise ValueError(f"axis must be 'camera' or 'up', got {axis!r}")


def pose_height(xy):
    """(...,) 2D height of (..., 17, 2) poses: head to the lower ankle in the image (the
    larger y); numpy or torch."""
    xp = torch if isinstance(xy, torch.Tensor) else np
    r, left = xy[..., JOINT_INDEX["r_ankle"], :], xy[..., JOINT_INDEX["l_ankle"], :]
    lower = xp.where((r[..., 1] >= left[..., 1])[..., None], r, left)
    return (((lower - xy[..., JOINT_INDEX["head"], :]) ** 2).sum(-1)) ** 0.5


def detector_noise(xy: np.ndarray, share: float, rng: np.random.Generator,
                   height: np.ndarray | None = None) -> np.ndarray:
    """(N, J, 2) poses plus Gaussian noise of ``share`` of each pose's 2D height
    (``height``, (N,); by default :func:`pose_height` of 17-joint ``xy``), independent per
    joint and coordinate: a detector's error."""
    xy = np.asarray(xy, dtype=np.float64)
    height = pose_height(xy) if height is None else height
    return xy + rng.normal(size=xy.shape) * (share * height)[:, None, None]


def height_noise(x, share: float, generator=None):
    """(B, 32) network 2D poses (root removed) with Gaussian noise of standard deviation
    ``u * share`` of each pose's 2D height, ``u`` uniform in [0, 1] per pose: a detector's
    error, from none to ``share`` (``x`` itself, no draw, for 0)."""
    if share == 0:
        return x
    xy = torch.cat([x.new_zeros(len(x), 1, 2), x.view(len(x), 16, 2)], 1)
    u = torch.rand(len(x), 1, generator=generator, device=x.device, dtype=x.dtype)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + noise * u * share * pose_height(xy)[:, None]


def plain_extent(xy: np.ndarray, visible: np.ndarray, max_px: float,
                 max_spread: float) -> np.ndarray:
    """(N,) True where (N, 17, 2) pixels, ``visible`` (N, 17) where seen, have a plain
    extent: no visible joint beyond ``max_px``, a head-to-pelvis length above zero, and
    visible joints from the pelvis at most ``max_spread`` such lengths and not all on it."""
    with np.errstate(invalid="ignore", over="ignore"):  # unseen joints may be NaN or inf
        far = (visible & (np.abs(xy).max(-1) > max_px)).any(1)
        scale = chain_length(xy)
        dist = np.linalg.norm(xy - xy[:, :1], axis=-1)
        spread = np.where(visible, dist, -np.inf).max(1)
        return ~far & (spread > 0) & (scale > 0) & (spread <= max_spread * scale)


def chain_length(pose):
    """Length of head-neck + neck-thorax + thorax-pelvis, per pose: (..., 17, D) -> (...);
    numpy or torch."""
    if isinstance(pose, torch.Tensor):  # constant indices copied to the device once
        a = pose[..., on_device(_CHAIN_FROM, pose.device), :]
        b = pose[..., on_device(_CHAIN_TO, pose.device), :]
    else:
        a, b = pose[..., SCALE_CHAIN[:-1], :], pose[..., SCALE_CHAIN[1:], :]
    return (((a - b) ** 2).sum(-1) ** 0.5).sum(-1)


@dataclass
class Normalizer:
    """Maps pixels and millimetres to network space and back; fit on the training split."""

    mode: str = "dataset"
    c: float = C
    scale2d: float = 1.0  # mean 2D chain length of the training split, pixels
    scale3d: float = 1.0  # mean 3D chain length of the training split, mm

    @classmethod
    def fit(cls, split: dict, mode: str = "dataset", c: float = C) -> Normalizer:
        if mode not in ("dataset", "pose"):
            raise ValueError(f"scale mode must be 'dataset' or 'pose', got {mode!r}")
        return cls(mode, c, float(chain_length(split["pose2d"]).mean()),
                   float(chain_length(split["pose3d"]).mean()))

    def to_dict(self) -> dict:
        return asdict(self)

    def pose2d(self, pose2d):
        """(N, 17, 2) pixels -> (N, 32) float32 network input (numpy, or torch as given)."""
        rel = center(pose2d)[:, 1:]
        if self.mode == "pose":
            scale = chain_length(pose2d)[:, None, None]
        else:
            scale = self.scale2d
        out = (rel / (scale * self.c)).reshape(len(pose2d), -1)
        return out.float() if hasattr(out, "float") else out.astype(np.float32)

    def pose3d(self, pose3d: np.ndarray) -> np.ndarray:
        """(N, 17, 3) mm -> (N, 48) float32 root-relative in units of the mean 3D chain."""
        rel = center(pose3d)[:, 1:]
        return (rel / self.scale3d).reshape(len(pose3d), -1).astype(np.float32)

    def to_mm(self, pose: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
        """(N, 48) network 3D -> (N, 17, 3) mm with the root back at the origin.

        The scale is the training split's mean 3D chain length: exact for the supervised
        lifter, approximate for the unsupervised ones (whose scale comes from the 2D input),
        which is why they are compared after scale or Procrustes alignment.
        """
        if isinstance(pose, np.ndarray):
            rel = pose.reshape(len(pose), 16, 3) * self.scale3d
            return np.concatenate([np.zeros_like(rel[:, :1]), rel], axis=1)
        rel = pose.reshape(len(pose), 16, 3) * self.scale3d
        return torch.cat([torch.zeros_like(rel[:, :1]), rel], dim=1)


def flip(pose: torch.Tensor, dims: int) -> torch.Tensor:
    """Mirror a batch of flat network poses (B, 16*dims): negate x, swap left and right."""
    joints = pose.reshape(len(pose), 16, dims)[:, on_device(FLIP16, pose.device)]
    sign = torch.ones(dims, device=pose.device, dtype=pose.dtype)
    sign[0] = -1
    return (joints * sign).reshape(len(pose), -1)


def random_flip(pose: torch.Tensor, dims: int, p: float = 0.5,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip each pose of the batch with probability ``p`` (no host synchronisation)."""
    if p <= 0:
        return pose
    coin = torch.rand(len(pose), 1, device=pose.device, generator=generator) < p
    return torch.where(coin, flip(pose, dims), pose)


def random_flip_pair(x: torch.Tensor, y: torch.Tensor, p: float = 0.5,
                     generator: torch.Generator | None = None):
    """Flip 2D inputs (B, 32) and their 3D targets (B, 48) together, each pair with
    probability ``p`` (supervised training)."""
    coin = torch.rand(len(x), 1, device=x.device, generator=generator) < p
    return torch.where(coin, flip(x, 2), x), torch.where(coin, flip(y, 3), y)


def missing_mask(batch: int, n_missing: int, device=None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, 16) float mask, 1 = visible, with ``n_missing`` distinct limb joints hidden per row."""
    mask = torch.ones(batch, 16, device=device)
    if n_missing <= 0:
        return mask
    scores = torch.rand(batch, len(LIMB16), device=device, generator=generator)
    drop = on_device(LIMB16, device)[scores.topk(n_missing, dim=1).indices]
    return mask.scatter(1, drop, 0.0)


def random_missing_mask(batch: int, p_miss: float, device=None,
                        generator: torch.Generator | None = None) -> torch.Tensor:
    """Training mask: a fraction ``p_miss`` of the rows lose 1 or 2 limb joints (equally likely)."""
    mask = torch.ones(batch, 16, device=device)
    if p_miss <= 0:
        return mask
    one = missing_mask(batch, 1, device, generator)
    two = missing_mask(batch, 2, device, generator)
    u = torch.rand(batch, 1, device=device, generator=generator)
    return torch.where(u < p_miss / 2, two, torch.where(u < p_miss, one, mask))


def apply_mask(pose2d: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the hidden joints of flat 2D poses (B, 32) with a (B, 16) mask."""
    return (pose2d.reshape(len(pose2d), 16, 2) * mask[..., None]).reshape(len(pose2d), -1)
