"""BVH motion-capture files: a fast reader and vectorised forward kinematics (numpy only).

A BVH file has a HIERARCHY block (a tree of joints, each with an OFFSET and a list of
CHANNELS) and a MOTION block (one line of numbers per frame, the channels of all joints in
file order). Conventions, as in the usual BVH readers:

* Rotation channels are applied in the order the header lists them: channels
  ``Zrotation Xrotation Yrotation`` with angles ``(a, b, c)`` degrees give
  ``R_local = Rz(a) @ Rx(b) @ Ry(c)`` (column vectors, ``v_parent = T + R @ v``).
* A joint with position channels uses their values as its local translation ``T`` (they
  replace the OFFSET component by component); a joint without uses its OFFSET.
* World transforms: ``P_j = P_parent + R_parent @ T_j`` and ``R_j = R_parent @ R_local_j``.
* ``End Site`` blocks become joints named ``f"{parent}_end"`` with no channels.

Speed: the MOTION block is converted by a single ``np.loadtxt`` call on the frame lines
(C code, which also checks that every line has the same count of numbers). Forward kinematics
builds the local rotations of all joints and frames at once (right-multiplying by an
elementary rotation only mixes two columns) and loops over joints only to chain them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

AXES = "XYZ"
_MOTION_RE = re.compile(rb"(?m)^[ \t]*MOTION[ \t\r]*$")


class BVHError(ValueError):
    """A malformed or unreadable BVH file; the message starts with the file name."""


@dataclass
class BVH:
    """A parsed BVH file: skeleton (one entry per joint, End Sites included) and motion."""

    names: list[str]
    parents: np.ndarray  # (J,) int, -1 for a root; parents[j] < j
    offsets: np.ndarray  # (J, 3) OFFSET of each joint
    channels: list[tuple[str, ...]]  # per joint; () for End Sites
    channel_start: np.ndarray  # (J,) column of the joint's first channel in `motion`
    frame_time: float
    motion: np.ndarray  # (F, C) the MOTION block
    source: str  # file name, used in error messages

    @property
    def num_frames(self) -> int:
        """Number of frames (rows of `motion`)."""
        return self.motion.shape[0]

    def index(self, name: str) -> int:
        """Index of the joint called `name`."""
        try:
            return self.names.index(name)
        except ValueError:
            raise BVHError(
                f"{self.source}: unknown joint name {name!r}; joints are: {', '.join(self.names)}"
            ) from None

    def forward_kinematics(self, frames=None) -> tuple[np.ndarray, np.ndarray]:
        """World positions (F, J, 3) and rotation matrices (F, J, 3, 3) of every joint.

        `frames` selects rows of `motion`: None (all), a slice, an int or an int index array.
        End Sites get their parent's rotation.
        """
        motion = self.motion if frames is None else self.motion[frames]
        cols = np.ascontiguousarray(np.atleast_2d(motion).T)  # (C, n): one row per channel
        trans, local = self._local_transforms(cols)
        # world transforms, parents first; the work layout keeps frames last (contiguous rows)
        pos, rot = np.empty_like(trans), np.empty_like(local)
        for j, p in enumerate(self.parents):
            if p < 0:
                pos[j], rot[j] = trans[j], local[j]
            else:
                rot[j] = np.einsum("abn,bcn->acn", rot[p], local[j])
                pos[j] = pos[p] + np.einsum("abn,bn->an", rot[p], trans[j])
        return pos.transpose(2, 0, 1).copy(), rot.transpose(3, 0, 1, 2).copy()

    def _local_transforms(self, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Local translations (J, 3, n) and rotations (J, 3, 3, n) from channel rows (C, n)."""
        n = cols.shape[1]
        trans = np.repeat(self.offsets[:, :, None], n, axis=2)
        local = np.zeros((len(self.names), 3, 3, n))
        local[:, [0, 1, 2], [0, 1, 2]] = 1.0  # identity for every joint and frame
        pos_idx, rot_idx = [], []  # (joint, axis, column) and (joint, slot, axis, column)
        for j, chans in enumerate(self.channels):
            slot = 0
            for k, chan in enumerate(chans, start=self.channel_start[j]):
                if chan.endswith("position"):
                    pos_idx.append((j, AXES.index(chan[0]), k))
                else:
                    rot_idx.append((j, slot, AXES.index(chan[0]), k))
                    slot += 1
        if pos_idx:
            joint, axis, col = np.array(pos_idx).T
            trans[joint, axis] = cols[col]
        if rot_idx:
            joint, slot, axis, col = np.array(rot_idx).T
            angle = np.deg2rad(cols[col])
            cos, sin = np.cos(angle), np.sin(angle)
            # right-multiply by the elementary rotations slot by slot, all joints at once
            for k in range(slot.max() + 1):
                for a in range(3):
                    sel = np.flatnonzero((slot == k) & (axis == a))
                    if sel.size:
                        local[joint[sel]] = _rotate_columns(
                            local[joint[sel]], a, cos[sel, None], sin[sel, None]
                        )
        return trans, local


def _rotate_columns(r: np.ndarray, axis: int, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """``r @ R_axis(angle)`` for rotation matrices stored as r (m, 3, 3, n).

    Right-multiplying by a rotation about `axis` only mixes the other two columns i, j
    (taken in cyclic order, so that R_axis[i, j] = -sin and R_axis[j, i] = +sin).
    `cos` and `sin` broadcast against a column, (m, 3, n).
    """
    i, j = (axis + 1) % 3, (axis + 2) % 3
    ci, cj = r[:, :, i].copy(), r[:, :, j].copy()
    r[:, :, i] = ci * cos + cj * sin
    r[:, :, j] = cj * cos - ci * sin
    return r


def read_bvh(
    source: str | os.PathLike | bytes, name: str | None = None, frame_step: int = 1
) -> BVH:
    """Read a BVH file from a path, or from the raw bytes of a file (`name` for messages).

    `frame_step` > 1 keeps only every k-th frame (frames 0, k, 2k, ...); the other frame
    lines are dropped before their text is converted to numbers.
    """
    if isinstance(source, bytes | bytearray | memoryview):
        data, src = bytes(source), name or "<bytes>"
    else:
        src = name or os.fspath(source)
        try:
            with open(source, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise BVHError(f"{src}: no such file") from None
        except OSError as e:
            raise BVHError(f"{src}: cannot read the file ({e.strerror or e})") from None
    if frame_step < 1:
        raise BVHError(f"{src}: frame_step must be >= 1, got {frame_step}")
    if _blank(data):
        raise BVHError(f"{src}: empty file")

    m = _MOTION_RE.search(data)
    if m is None:
        raise BVHError(f"{src}: no MOTION section")
    header = data[: m.start()].decode("utf-8", errors="replace")
    names, parents, offsets, channels = _parse_hierarchy(header, src)
    sizes = [len(c) for c in channels]
    channel_start = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    motion_line = header.count("\n") + 1  # 1-based line number of "MOTION"
    frame_time, motion = _parse_motion(data[m.end() :], motion_line, sum(sizes), frame_step, src)
    return BVH(
        names=names,
        parents=np.array(parents, dtype=np.int64),
        offsets=np.array(offsets, dtype=np.float64).reshape(-1, 3),
        channels=channels,
        channel_start=channel_start,
        frame_time=frame_time,
        motion=motion,
        source=src,
    )


def _parse_hierarchy(header: str, src: str):
    """Parse the HIERARCHY text into (names, parents, offsets, channels)."""
    tokens = [(tok, n) for n, line in enumerate(header.splitlines(), 1) for tok in line.split()]
    if not tokens or tokens[0][0] != "HIERARCHY":
        raise BVHError(f"{src}: the file does not start with HIERARCHY")
    names, parents, offsets, channels = [], [], [], []
    stack = []  # indices of the joints whose '{' is open
    i = 1
    while i < len(tokens):
        tok, line = tokens[i]
        if tok in ("ROOT", "JOINT", "End"):
            if tok == "End":
                if i + 1 >= len(tokens) or tokens[i + 1][0] != "Site":
                    raise BVHError(f"{src}: line {line}: expected 'End Site'")
                if not stack:
                    raise BVHError(f"{src}: line {line}: End Site outside any joint")
                joint = f"{names[stack[-1]]}_end"
            else:
                if i + 1 >= len(tokens):
                    raise BVHError(f"{src}: line {line}: {tok} without a name")
                joint = tokens[i + 1][0]
                if (tok == "ROOT") != (not stack):
                    where = "inside a joint" if stack else "outside any joint"
                    raise BVHError(f"{src}: line {line}: {tok} {joint} {where}")
            if i + 2 >= len(tokens) or tokens[i + 2][0] != "{":
                raise BVHError(f"{src}: line {line}: expected '{{' after {tok} {joint}")
            names.append(joint)
            parents.append(stack[-1] if stack else -1)
            offsets.append((0.0, 0.0, 0.0))
            channels.append(())
            stack.append(len(names) - 1)
            i += 3
        elif tok == "}":
            if not stack:
                raise BVHError(f"{src}: line {line}: unbalanced braces ('}}' without '{{')")
            stack.pop()
            i += 1
        elif tok in ("OFFSET", "CHANNELS"):
            if not stack:
                raise BVHError(f"{src}: line {line}: {tok} outside any joint")
            end = i + 1
            while end < len(tokens) and tokens[end][1] == line:  # the rest of the line
                end += 1
            args = [t for t, _ in tokens[i + 1 : end]]
            if tok == "OFFSET":
                if len(args) != 3:
                    raise BVHError(f"{src}: line {line}: OFFSET needs 3 numbers, got {args}")
                offsets[stack[-1]] = tuple(_number(a, line, src) for a in args)
            else:
                count = _count(args[0], line, src) if args else -1
                chans = tuple(args[1:])
                if count != len(chans):
                    raise BVHError(
                        f"{src}: line {line}: CHANNELS declares {count} channels "
                        f"but lists {len(chans)}: {' '.join(chans)}"
                    )
                for c in chans:
                    if len(c) != 9 or c[0] not in AXES or c[1:] not in ("position", "rotation"):
                        raise BVHError(f"{src}: line {line}: unknown channel name {c!r}")
                channels[stack[-1]] = chans
            i += 1 + len(args)
        else:
            raise BVHError(f"{src}: line {line}: unexpected {tok!r} in HIERARCHY")
    if stack:
        raise BVHError(
            f"{src}: unbalanced braces: {len(stack)} '{{' not closed before MOTION "
            f"(joint {names[stack[-1]]})"
        )
    if not names:
        raise BVHError(f"{src}: HIERARCHY has no joints")
    return names, parents, offsets, channels


def _number(text: str, line: int, src: str) -> float:
    """float(text) for a finite number, or a BVHError naming the line."""
    try:
        value = float(text)
    except ValueError:
        raise BVHError(f"{src}: line {line}: non-numeric value {text!r}") from None
    if not np.isfinite(value):
        raise BVHError(f"{src}: line {line}: {text!r} is not a finite number")
    return value


def _count(text: str, line: int, src: str) -> int:
    """A non-negative whole number (a channel or frame count), or a BVHError."""
    value = _number(text, line, src)
    if value != int(value) or value < 0:
        raise BVHError(f"{src}: line {line}: expected a whole number >= 0, got {text!r}")
    return int(value)


def _blank(text: bytes) -> bool:
    """True for empty or all-whitespace text (cheap: stops at the first non-blank byte)."""
    return not text or text.isspace()


def _parse_motion(block: bytes, motion_line: int, num_channels: int, step: int, src: str):
    """Parse the text after the MOTION line into (frame_time, motion (F, C))."""
    lines = block.split(b"\n")
    # line numbers: lines[k] is file line motion_line + k (lines[0] ends the MOTION line)
    header = [k for k in range(1, min(len(lines), 50)) if not _blank(lines[k])][:2]
    values = {}
    for k, key in zip(header, (b"Frames:", b"Frame Time:"), strict=False):
        text = lines[k].strip()
        if not text.startswith(key):
            break
        values[key] = (text[len(key) :].strip().decode("ascii", "replace"), motion_line + k)
    for key in (b"Frames:", b"Frame Time:"):
        if key not in values:
            raise BVHError(f"{src}: missing '{key.decode()}' line after MOTION")
    declared = _count(*values[b"Frames:"], src)
    frame_time = _number(*values[b"Frame Time:"], src)

    first = header[1] + 1  # index in `lines` of the first frame line
    frame_rows = [k for k in range(first, len(lines)) if not _blank(lines[k])]
    if len(frame_rows) != declared:
        problem = "truncated file? " if len(frame_rows) < declared else ""
        raise BVHError(
            f"{src}: {problem}found {len(frame_rows)} frame lines but 'Frames:' "
            f"declares {declared}"
        )
    kept = frame_rows[::step]
    if not kept:
        return frame_time, np.zeros((0, num_channels))
    try:
        motion = np.loadtxt([lines[k] for k in kept], dtype=np.float64, comments=None,
                            ndmin=2)
    except ValueError:
        motion = None
    if motion is None or motion.shape[1] != num_channels:
        _find_bad_frame_line(lines, first, motion_line, num_channels, src)
    bad = ~np.isfinite(motion)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise BVHError(f"{src}: line {motion_line + kept[row]}: channel {col + 1} is "
                       f"{motion[row, col]} (every channel must be a finite number)")
    return frame_time, motion


def _find_bad_frame_line(lines, first, motion_line, num_channels, src):
    """Slow path after a failed conversion: raise a BVHError naming the first bad line."""
    for k in range(first, len(lines)):
        tokens = lines[k].split()
        if not tokens:
            continue
        if len(tokens) != num_channels:
            raise BVHError(
                f"{src}: line {motion_line + k}: frame has {len(tokens)} numbers, "
                f"expected {num_channels} (the total channel count)"
            )
        for t in tokens:
            _number(t.decode("ascii", "replace"), motion_line + k, src)
    raise BVHError(f"{src}: could not convert the MOTION block to numbers")
