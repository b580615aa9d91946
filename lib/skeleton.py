"""The 17-joint Human3.6M layout used everywhere in the project, and source -> 17 maps.

Index order (root first), as in the usual Human3.6M 17-joint subset::

    0 pelvis   1 r_hip   2 r_knee   3 r_ankle   4 l_hip   5 l_knee   6 l_ankle
    7 spine    8 thorax  9 neck_nose  10 head
    11 l_shoulder  12 l_elbow  13 l_wrist  14 r_shoulder  15 r_elbow  16 r_wrist
"""

from __future__ import annotations

import numpy as np

JOINTS = (
    "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle",
    "spine", "thorax", "neck_nose", "head",
    "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
)  # fmt: skip
NUM_JOINTS = len(JOINTS)
ROOT = 0
JOINT_INDEX = {name: i for i, name in enumerate(JOINTS)}

# parent of each joint (-1 for the root); bones are (parent, child) pairs
PARENTS = np.array([-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15])
BONES = tuple((int(p), c) for c, p in enumerate(PARENTS) if p >= 0)

LEFT = (4, 5, 6, 11, 12, 13)
RIGHT = (1, 2, 3, 14, 15, 16)
# FLIP[j] is the joint that j becomes when the body is mirrored left <-> right
FLIP = np.arange(NUM_JOINTS)
FLIP[list(LEFT)] = RIGHT
FLIP[list(RIGHT)] = LEFT

# joints whose 2D length defines the per-pose scale (DESIGN section 3):
# head-neck + neck-thorax + thorax-pelvis
SCALE_CHAIN = (10, 9, 8, 0)

# limb joints that the missing-joint studies may drop (elbows, wrists, knees, ankles)
LIMB_JOINTS = (2, 3, 5, 6, 12, 13, 15, 16)

# a colour group per bone, for drawings: left blue, right red, centre grey
BONE_SIDE = tuple("L" if c in LEFT else "R" if c in RIGHT else "C" for _, c in BONES)

# --------------------------------------------------------------------------------------
# Bandai-Namco Research Motion Dataset (22 joints) -> the 17 joints above
# --------------------------------------------------------------------------------------
# Fourteen of the 17 are joints of the source skeleton. The dataset's head has no end site
# (its offset is zero), so neck/nose and head top are placed at fixed offsets, in cm, in the
# frame of the source's Head joint (the top of the neck): its local x axis runs up the neck,
# local y points towards the face. The offsets give Human3.6M-like proportions (thorax to
# neck/nose about 11 cm, neck/nose to head top about 12 cm).
BNMD_TO_H36M = {
    "pelvis": "Hips",
    "r_hip": "UpperLeg_R", "r_knee": "LowerLeg_R", "r_ankle": "Foot_R",
    "l_hip": "UpperLeg_L", "l_knee": "LowerLeg_L", "l_ankle": "Foot_L",
    "spine": "Chest", "thorax": "Neck", "neck_nose": None, "head": None,
    "l_shoulder": "UpperArm_L", "l_elbow": "LowerArm_L", "l_wrist": "Hand_L",
    "r_shoulder": "UpperArm_R", "r_elbow": "LowerArm_R", "r_wrist": "Hand_R",
}  # fmt: skip
BNMD_HEAD = "Head"
BNMD_HEAD_POINTS = {9: (4.0, 6.0, 0.0), 10: (15.0, 2.0, 0.0)}
