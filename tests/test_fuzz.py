"""Property-based tests: randomly damaged BVH and split files give a correct result or the
project's own error type (BVHError, DataError), never another exception."""

import io
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_bvh import CHAIN

from lib.bvh import BVHError, read_bvh
from lib.splits import DataError, load_split, save_split

FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def damaged(draw, data: bytes):
    """``data`` with one random edit: a cut, a deleted slice, inserted bytes or a
    replaced slice (bytes anywhere in 0-255, so also non-UTF-8 and NUL)."""
    n = len(data)
    kind = draw(st.sampled_from(["cut", "delete", "insert", "replace"]))
    i = draw(st.integers(0, n))
    j = draw(st.integers(i, min(n, i + 64)))
    junk = draw(st.one_of(st.binary(max_size=16),
                          st.sampled_from([b"nan", b"inf", b"-", b"{", b"}", b"\n", b"1e999",
                                           b"End Site", b"JOINT", b"CHANNELS 3", b"Frames: 9"])))
    if kind == "cut":
        return data[:i]
    if kind == "delete":
        return data[:i] + data[j:]
    if kind == "insert":
        return data[:i] + junk + data[i:]
    return data[:i] + junk + data[j:]


@FUZZ
@given(damaged(CHAIN.encode()))
def test_damaged_bvh_is_read_correctly_or_rejected(data):
    try:
        bvh = read_bvh(data, name="fuzz.bvh")
    except BVHError as e:
        assert str(e).startswith("fuzz.bvh: ")
        return
    pos, rot = bvh.forward_kinematics()
    assert pos.shape == (len(bvh.motion), len(bvh.names), 3)
    assert np.isfinite(bvh.motion).all() and np.isfinite(pos).all()


def _split_bytes() -> bytes:
    """A valid six-pose split file, as bytes."""
    rng = np.random.default_rng(0)
    n = 6
    split = {"pose3d": rng.normal(size=(n, 17, 3)), "pose2d": rng.normal(size=(n, 17, 2)),
             "camera": np.zeros(n), "action": np.zeros(n), "style": np.zeros(n),
             "take": np.zeros(n), "frame": np.arange(n), "camera_names": np.array(["c"]),
             "action_names": np.array(["a"]), "style_names": np.array(["s"]),
             "take_names": np.array(["t"])}
    with tempfile.TemporaryDirectory() as d:
        return save_split(Path(d) / "s.npz", split).read_bytes()


SPLIT = _split_bytes()


@FUZZ
@given(damaged(SPLIT))
def test_damaged_split_is_loaded_correctly_or_rejected(tmp_path, data):
    path = tmp_path / "split.npz"
    path.write_bytes(data)
    try:
        split = load_split(path)
    except DataError as e:
        assert str(e).startswith(str(path))
        return
    assert split["pose3d"].shape[1:] == (17, 3) and np.isfinite(split["pose3d"]).all()


@pytest.mark.parametrize("member", ["pose3d.npy", "take_names.npy"])
def test_a_split_missing_a_member_names_it(tmp_path, member):
    src = zipfile.ZipFile(io.BytesIO(SPLIT))
    path = tmp_path / "split.npz"
    with zipfile.ZipFile(path, "w") as out:
        for info in src.infolist():
            if info.filename != member:
                out.writestr(info, src.read(info))
    with pytest.raises(DataError, match=f"split.npz: missing key.*{member[:-4]}"):
        load_split(path)
