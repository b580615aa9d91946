"""Tests for lib/bvh.py: parsing, forward kinematics (hand-checked and against scipy), errors."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from lib.bvh import BVHError, read_bvh

# Root with 6 channels, a chain spine -> neck with rotation order X Y Z, and an End Site.
CHAIN = """HIERARCHY
ROOT hips
{
  OFFSET 0 0 0
  CHANNELS 6 Xposition Yposition Zposition Zrotation Yrotation Xrotation
  JOINT spine
  {
    OFFSET 0 10 0
    CHANNELS 3 Xrotation Yrotation Zrotation
    JOINT neck
    {
      OFFSET 0 5 0
      CHANNELS 3 Xrotation Yrotation Zrotation
      End Site
      {
        OFFSET 0 0 2
      }
    }
  }
}
MOTION
Frames: 3
Frame Time: 0.0333333
1 2 3 0 0 0 0 0 0 0 0 0
0 0 0 90 0 0 0 0 0 0 0 0
0 0 0 0 0 0 90 90 0 0 0 0
"""
# line numbers in CHAIN: "MOTION" is line 21, the frames are lines 24-26
FRAME_LINES = (24, 25, 26)

# 90-degree rotations act on a vector (x, y, z) as
#   Rx: (x, -z, y)     Ry: (z, y, -x)     Rz: (-y, x, z)
EXPECTED_CHAIN = np.array([
    # frame 0: no rotation, root translated by (1, 2, 3): offsets just add up
    [[1, 2, 3], [1, 12, 3], [1, 17, 3], [1, 17, 5]],
    # frame 1: root Zrotation 90 turns the +y bones to -x; the End Site's +z is unchanged
    [[0, 0, 0], [-10, 0, 0], [-15, 0, 0], [-15, 0, 2]],
    # frame 2: spine R = Rx(90) @ Ry(90): neck offset (0,5,0) -Ry-> (0,5,0) -Rx-> (0,0,5),
    # End Site offset (0,0,2) -Ry-> (2,0,0) -Rx-> (2,0,0)
    [[0, 0, 0], [0, 10, 0], [0, 10, 5], [2, 10, 5]],
], dtype=float)  # fmt: skip


def test_parse_chain():
    bvh = read_bvh(CHAIN.encode(), name="chain.bvh")
    assert bvh.names == ["hips", "spine", "neck", "neck_end"]
    assert bvh.parents.tolist() == [-1, 0, 1, 2]
    assert bvh.channels[1] == ("Xrotation", "Yrotation", "Zrotation")
    assert bvh.channels[3] == ()
    assert bvh.channel_start.tolist() == [0, 6, 9, 12]
    np.testing.assert_array_equal(bvh.offsets[3], [0, 0, 2])
    assert bvh.motion.shape == (3, 12) and bvh.num_frames == 3
    assert bvh.frame_time == pytest.approx(0.0333333)
    assert bvh.index("neck") == 2
    assert bvh.source == "chain.bvh"


def test_forward_kinematics_by_hand():
    pos, rot = read_bvh(CHAIN.encode(), name="chain.bvh").forward_kinematics()
    assert pos.shape == (3, 4, 3) and rot.shape == (3, 4, 3, 3)
    np.testing.assert_allclose(pos, EXPECTED_CHAIN, atol=1e-12)
    rz90 = np.array([[0, -1, 0], [1, 0, 0], [0, 0, 1]])
    np.testing.assert_allclose(rot[1], np.broadcast_to(rz90, (4, 3, 3)), atol=1e-12)
    # frame 2: spine world R = Rx(90) @ Ry(90), columns = images of the axes x, y, z
    spine = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0]])
    np.testing.assert_allclose(rot[2, 1:], np.broadcast_to(spine, (3, 3, 3)), atol=1e-12)


def test_frames_argument():
    bvh = read_bvh(CHAIN.encode(), name="chain.bvh")
    full, _ = bvh.forward_kinematics()
    np.testing.assert_allclose(bvh.forward_kinematics(slice(1, 3))[0], full[1:3])
    np.testing.assert_allclose(bvh.forward_kinematics(np.array([2, 0]))[0], full[[2, 0]])
    np.testing.assert_allclose(bvh.forward_kinematics(1)[0], full[1:2])
    assert bvh.forward_kinematics(slice(0, 0))[0].shape == (0, 4, 3)


def test_channel_order_matters():
    # same angles (X=90, Y=90) declared in the order Y X Z: spine R = Ry(90) @ Rx(90)
    text = CHAIN.replace(
        "CHANNELS 3 Xrotation Yrotation Zrotation\n    JOINT neck",
        "CHANNELS 3 Yrotation Xrotation Zrotation\n    JOINT neck",
    )
    pos, _ = read_bvh(text.encode(), name="yxz.bvh").forward_kinematics(slice(2, 3))
    # neck offset (0,5,0) -Rx-> (0,0,5) -Ry-> (5,0,0);
    # End Site offset (0,0,2) -Rx-> (0,-2,0) -Ry-> (0,-2,0)
    expected = [[0, 0, 0], [0, 10, 0], [5, 10, 0], [5, 8, 0]]
    np.testing.assert_allclose(pos[0], expected, atol=1e-12)
    assert not np.allclose(pos[0], EXPECTED_CHAIN[2])


def test_position_channels_replace_offset():
    text = """HIERARCHY
ROOT a
{
  OFFSET 100 100 100
  CHANNELS 3 Zrotation Xrotation Yrotation
  JOINT b
  {
    OFFSET 7 7 7
    CHANNELS 6 Zrotation Xposition Xrotation Yposition Yrotation Zposition
  }
}
MOTION
Frames: 1
Frame Time: 0.5
90 0 0 0 1 0 2 0 3
"""
    pos, _ = read_bvh(text.encode(), name="pos.bvh").forward_kinematics()
    # root at its OFFSET, turned Rz(90); b's local translation (1, 2, 3) replaces (7, 7, 7)
    np.testing.assert_allclose(pos[0], [[100, 100, 100], [98, 101, 103]], atol=1e-12)


def _random_skeleton(rng, num_frames):
    """BVH text: 5 joints with 6 channels each in random orders, an End Site, random motion."""
    parents = [-1, 0, 1, 1, 3]
    lines, orders = ["HIERARCHY"], []
    for j, p in enumerate(parents):
        axes = ["XYZ"[a] for a in rng.permutation(3)]
        chans = [f"{a}position" for a in "XYZ"] + [f"{a}rotation" for a in axes]
        chans = [chans[i] for i in rng.permutation(6)]  # rotation order and places vary
        orders.append(chans)
        kind = "ROOT" if p < 0 else "JOINT"
        lines += [f"{kind} j{j}", "{", "OFFSET 1 2 3", f"CHANNELS 6 {' '.join(chans)}"]
        if j == 4:
            lines += ["End Site", "{", "OFFSET 0.5 -1 2", "}"]
        lines += ["}"] * {2: 1, 4: 4}.get(j, 0)  # close leaf j2; after j4 close j4, j3, j1, j0
    motion = rng.uniform(-180, 180, (num_frames, 30))
    lines += ["MOTION", f"Frames: {num_frames}", "Frame Time: 0.01"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in motion]
    return "\n".join(lines) + "\n", parents, orders


def test_against_scipy_reference():
    rng = np.random.default_rng(0)
    text, parents, orders = _random_skeleton(rng, num_frames=6)
    bvh = read_bvh(text.encode(), name="random.bvh")
    assert bvh.names == ["j0", "j1", "j2", "j3", "j4", "j4_end"]
    assert bvh.parents.tolist() == parents + [4]
    pos, rot = bvh.forward_kinematics()
    for f, row in enumerate(bvh.motion):
        world_p, world_r = [], []
        for j, chans in enumerate(orders):
            values = dict(zip(chans, row[6 * j : 6 * j + 6], strict=True))
            t = np.array([values[f"{a}position"] for a in "XYZ"])
            rchans = [c for c in chans if c.endswith("rotation")]
            seq = "".join(c[0] for c in rchans)  # uppercase = intrinsic, as in BVH
            r = Rotation.from_euler(seq, [values[c] for c in rchans], degrees=True).as_matrix()
            p = parents[j]
            if p >= 0:
                t, r = world_p[p] + world_r[p] @ t, world_r[p] @ r
            world_p.append(t)
            world_r.append(r)
        world_p.append(world_p[4] + world_r[4] @ np.array([0.5, -1, 2]))  # End Site
        world_r.append(world_r[4])
        np.testing.assert_allclose(pos[f], world_p, atol=1e-9)
        np.testing.assert_allclose(rot[f], world_r, atol=1e-12)


def test_frame_step_matches_slicing():
    text, _, _ = _random_skeleton(np.random.default_rng(1), num_frames=10)
    full = read_bvh(text.encode(), name="r.bvh")
    for step in (2, 3, 10, 20):
        sub = read_bvh(text.encode(), name="r.bvh", frame_step=step)
        np.testing.assert_array_equal(sub.motion, full.motion[::step])
        np.testing.assert_allclose(
            sub.forward_kinematics()[0], full.forward_kinematics(slice(None, None, step))[0]
        )


def test_read_from_path(tmp_path):
    path = tmp_path / "chain.bvh"
    path.write_text(CHAIN.replace("\n", "\r\n"))  # Windows line endings are fine too
    bvh = read_bvh(path)
    assert bvh.source == str(path)
    np.testing.assert_allclose(bvh.forward_kinematics()[0], EXPECTED_CHAIN, atol=1e-12)


def _error(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    with pytest.raises(BVHError) as info:
        read_bvh(data, name="bad.bvh")
    message = str(info.value)
    assert message.startswith("bad.bvh: ")
    return message


def test_truncated_file():
    message = _error(CHAIN.rsplit("\n", 2)[0] + "\n")  # drop the last frame line
    assert "found 2 frame lines" in message and "declares 3" in message


@pytest.mark.parametrize(
    "old, new, expected",
    [
        ("90 90 0 0 0 0\n", "90 90 0 0 0\n", f"line {FRAME_LINES[2]}: frame has 11 numbers, "
         "expected 12"),
        ("90 0 0 0 0 0 0 0 0\n", "90 0 0 0 0 0 0 0 0 0\n", f"line {FRAME_LINES[1]}: frame has "
         "13 numbers"),
        ("0 0 0 90 0", "0 0 zero 90 0", f"line {FRAME_LINES[1]}: non-numeric value 'zero'"),
        ("MOTION", "MOTON", "no MOTION section"),
        ("HIERARCHY", "HIERARCHX", "does not start with HIERARCHY"),
        ("      }\n    }\n", "      }\n", "unbalanced braces"),
        ("}\nMOTION", "}\n}\nMOTION", "unbalanced braces"),
        ("CHANNELS 3 Xrotation Yrotation Zrotation\n      End", "CHANNELS 3 Xrotation "
         "Yrotation\n      End", "line 13: CHANNELS declares 3 channels but lists 2"),
        ("Zposition Zrotation", "Zposition Wrotation", "unknown channel name 'Wrotation'"),
        ("Frames: 3\n", "", "missing 'Frames:'"),
        ("Frames: 3", "Frames: 4", "found 3 frame lines but 'Frames:' declares 4"),
        ("0 0 0 90 0", "0 0 nan 90 0", f"line {FRAME_LINES[1]}: channel 3 is nan"),
        ("0 0 0 90 0", "0 0 -inf 90 0", f"line {FRAME_LINES[1]}: channel 3 is -inf"),
    ],
)  # fmt: skip
def test_malformed_files(old, new, expected):
    assert old in CHAIN
    assert expected in _error(CHAIN.replace(old, new, 1))


def test_empty_file():
    assert "empty file" in _error(b"")
    assert "empty file" in _error(" \n\n")


def test_missing_file(tmp_path):
    path = tmp_path / "nope.bvh"
    with pytest.raises(BVHError, match="nope.bvh: no such file"):
        read_bvh(path)


def test_unknown_joint_name():
    bvh = read_bvh(CHAIN.encode(), name="chain.bvh")
    with pytest.raises(BVHError) as info:
        bvh.index("pelvis")
    message = str(info.value)
    assert message.startswith("chain.bvh: unknown joint name 'pelvis'")
    assert "hips, spine, neck, neck_end" in message
