"""Other bodies: the same motion re-played with other bone lengths (the "unseen rig" split).

BNMD-17's joint definitions make a narrow body (each hip 68 mm from the pelvis, each
shoulder about 108 mm from the thorax); other motion-capture sets, Human3.6M and a 2D
detector's COCO keypoints have hips and shoulders about twice as far out. A lifter that has
seen one rig may read wide shoulders as a body turned towards the camera.

:func:`rebody` re-plays a 17-joint pose through the kinematic tree with every bone scaled
by a factor: each joint keeps its parent's new position plus its old offset from the parent
times the factor, so every joint angle is kept and only lengths change. The pelvis stays
where it was, so the pose can be seen by the same camera.
"""

from __future__ import annotations

import numpy as np

from .camera import Rig, project
from .config import ConfigError
from .skeleton import JOINT_INDEX, PARENTS

# Bone-length factors per body type, by child joint (1.0 where not listed): hips are the
# pelvis->hip bones, shoulders the thorax->shoulder bones, legs thigh and shin, arms the
# upper arm and forearm. Chosen to span the wide bodies of other data sets (hips and
# shoulders x1.5-2.5) and limb proportions +-15%.
BODY_TYPES = {
    "broad": {"hips": 2.0, "shoulders": 1.8},
    "broad, long legs": {"hips": 1.8, "shoulders": 1.6, "legs": 1.15, "arms": 0.95},
    "very broad, short limbs": {"hips": 2.5, "shoulders": 2.2, "legs": 0.85, "arms": 0.9},
    "wide shoulders, long arms": {"hips": 1.5, "shoulders": 2.0, "arms": 1.15},
}
PARTS = {
    "hips": ("r_hip", "l_hip"),
    "shoulders": ("r_shoulder", "l_shoulder"),
    "legs": ("r_knee", "r_ankle", "l_knee", "l_ankle"),
    "arms": ("r_elbow", "r_wrist", "l_elbow", "l_wrist"),
}


def bone_factors(body: dict) -> np.ndarray:
    """(17,) factor per joint's incoming bone (1 for the root and unlisted bones)."""
    f = np.ones(len(PARENTS))
    for part, factor in body.items():
        for name in PARTS[part]:
            f[JOINT_INDEX[name]] = factor
    return f


def rebody(pose3d, factors):
    """Poses (N, 17, 3) with every bone scaled by ``factors`` (N, 17) (or (17,) for numpy),
    joint angles and the root kept (parents come before children in
    :data:`lib.skeleton.PARENTS`). Numpy arrays or torch tensors, on any device."""
    if isinstance(pose3d, np.ndarray):
        pose3d = pose3d.astype(np.float64)
        factors = np.broadcast_to(np.asarray(factors, dtype=np.float64), pose3d.shape[:2])
        stack = np.stack
    else:
        import torch

        stack = torch.stack
    joints = [pose3d[:, 0]]
    for child in range(1, len(PARENTS)):
        parent = PARENTS[child]
        bone = pose3d[:, child] - pose3d[:, parent]
        joints.append(joints[parent] + bone * factors[:, child, None])
    return stack(joints, 1)


# random bodies for training (body_augment): uniform factors per pose, the same on both sides
RANDOM_RANGES = {"hips": (1.0, 2.5), "shoulders": (1.0, 2.2), "legs": (0.85, 1.15),
                 "arms": (0.85, 1.15)}


def within_ranges(body: dict, ranges: dict = RANDOM_RANGES) -> bool:
    """Whether every factor of ``body`` (1 where not listed) lies in ``ranges``: a body
    type that the random bodies of training can draw."""
    return set(body) <= set(ranges) and all(
        lo <= body.get(part, 1.0) <= hi for part, (lo, hi) in ranges.items())


def _part_tables():
    import torch

    onehot = torch.zeros(len(RANDOM_RANGES), len(PARENTS))
    for k, part in enumerate(RANDOM_RANGES):
        for name in PARTS[part]:
            onehot[k, JOINT_INDEX[name]] = 1.0
    low = torch.tensor([lo for lo, _ in RANDOM_RANGES.values()])
    high = torch.tensor([hi for _, hi in RANDOM_RANGES.values()])
    return onehot, 1.0 - onehot.sum(0), low, high


_PART_OF_JOINT, _UNLISTED, _LOW, _HIGH = _part_tables()


def random_factors(n: int, p: float, generator=None, device=None):
    """(n, 17) torch factors: with probability ``p`` a pose gets a random body drawn from
    :data:`RANDOM_RANGES`, else all ones (its own body)."""
    import torch

    from .geometry import on_device

    if p <= 0:
        return torch.ones(n, len(PARENTS), device=device)
    pick = torch.rand(n, 1, device=device, generator=generator) < p
    lo = on_device(_LOW, device)
    u = lo + (on_device(_HIGH, device) - lo) * torch.rand(n, len(RANDOM_RANGES), device=device,
                                                        generator=generator)
    f = u @ on_device(_PART_OF_JOINT, device) + on_device(_UNLISTED, device)  # (n, 17)
    return torch.where(pick, f, torch.ones_like(f))


def unseen_rig(split: dict, rig: Rig | None = None) -> dict:
    """A split with every take re-played on one of :data:`BODY_TYPES` (take k gets type
    k mod 4) and projected again by the camera that saw it; the other keys are kept."""
    rig = rig or Rig()
    types = list(BODY_TYPES.values())
    table = np.stack([bone_factors(b) for b in types])  # (T, 17)
    factors = table[split["take"] % len(types)]  # (N, 17)
    pose3d = rebody(split["pose3d"], factors)
    intr = rig.intrinsics()[split["camera"]]  # (N, 4)
    pose2d = project(pose3d, intr[:, None, :])
    return {**split, "pose3d": pose3d.astype(np.float32), "pose2d": pose2d.astype(np.float32),
            "style_names": np.array(list(BODY_TYPES)), "style": (split["take"] % len(types))
            .astype(split["style"].dtype)}


class OtherBodies:
    """A training split's mocap re-played on random bodies: for a batch of its indices, the
    normalised 2D of the same motion with a share ``p`` of the poses on bodies of random
    proportions (:func:`random_factors`, :func:`rebody`), each projected by the rig camera
    that saw it. The lifter still sees 2D only."""

    def __init__(self, train: dict, norm, p: float, generator, device):
        import torch

        if "camera" not in train:
            raise ConfigError("body_augment re-projects the training mocap through the camera "
                              "that saw each pose, but the training split has no 'camera' "
                              "indices")
        self.norm, self.p, self.gen, self.device = norm, p, generator, device
        self.mocap = torch.as_tensor(train["pose3d"], dtype=torch.float32, device=device)
        self.cam = torch.as_tensor(train["camera"], dtype=torch.long, device=device)
        self.intr = torch.as_tensor(Rig().intrinsics(), dtype=torch.float32, device=device)

    def __call__(self, idx):
        f = random_factors(len(idx), self.p, self.gen, self.device)
        pose = rebody(self.mocap[idx], f)
        return self.norm.pose2d(project(pose, self.intr[self.cam[idx]][:, None]))
