"""In-filling missing 2D joints (lib/infill.py): nearest neighbours' offsets by hand, exact
recovery of a known pose, the choice of k from 2D, the run folder's cache."""

import numpy as np
import pytest
from test_train import TRAIN

from lib import infill
from lib.infill import INFILL_FILE, Infill, InfillUnavailable, fit_run, for_run, normalise
from lib.occlusion import hide
from lib.skeleton import LIMB_JOINTS
from lib.splits import DataError


def test_missing_joints_hang_from_their_nearest_visible_ancestor_by_hand():
    # three reference poses; a query nearest to the first two on its visible joints
    ref = np.zeros((3, 16, 2))
    ref[:, 11] = [[1.0, 1.0], [1.0, 1.2], [9.0, 9.0]]  # l_elbow (skeleton joint 12)
    ref[:, 12] = [[1.0, 2.0], [1.4, 2.2], [9.0, 9.0]]  # l_wrist (13): offsets (0,1), (.4,1)
    ref[:, 10] = [[0.5, 0.5], [0.5, 0.6], [9.0, 9.0]]  # l_shoulder (11)
    model = Infill(ref.reshape(3, 32), 2)
    q = np.zeros((1, 16, 2))
    q[0, 11], q[0, 10] = [2.0, 1.0], [0.5, 0.5]
    vis = np.ones((1, 16), bool)
    vis[0, 12] = False  # the wrist missing: the query's own elbow plus the mean offset
    got = model.fill(np.where(np.repeat(vis, 2, 1), q.reshape(1, 32), np.nan), vis)[0]
    assert got.reshape(16, 2)[12].tolist() == pytest.approx([2.0 + 0.2, 1.0 + 1.0])
    np.testing.assert_array_equal(np.delete(got, [24, 25]), np.delete(q.ravel(), [24, 25]))
    # elbow and wrist missing: both hang from the shoulder, from the neighbours found on
    # what is left visible (k = 1: the first reference pose alone)
    vis[0, 11] = False
    got = model.with_k(1).fill(q.reshape(1, 32), vis)[0].reshape(16, 2)
    assert got[11].tolist() == pytest.approx([0.5 + 0.5, 0.5 + 0.5])
    assert got[12].tolist() == pytest.approx([0.5 + 0.5, 0.5 + 1.5])
    assert infill.anchors(vis[0])[[12, 13, 11]].tolist() == [11, 11, 11]
    # several k from one search agree with each k alone; k beyond the references: all
    many = model.fills(q.reshape(1, 32), vis, (1, 2, 3, 8))
    for k in (1, 2, 3, 8):
        np.testing.assert_array_equal(many[k], model.with_k(k).fill(q.reshape(1, 32), vis))
    np.testing.assert_array_equal(many[8], many[3])


def test_frames_searched_in_chunks_get_the_same_neighbours(monkeypatch):
    rng = np.random.default_rng(2)
    model = Infill(rng.normal(size=(300, 32)), 4)
    x = rng.normal(size=(50, 32))
    vis = infill.hide_limbs(50, rng, counts=(1, 2))
    whole = model.fill(x, vis)
    monkeypatch.setattr(infill, "CHUNK", 3)
    np.testing.assert_array_equal(model.with_k(4).fill(x, vis), whole)
    # asked again (another lifter on the same input): the same answer, not a shared array,
    # whatever the missing coordinates held
    model.fill(x, vis)[:] = 0
    garbage = np.where(np.repeat(vis, 2, 1), x, 99.0)
    np.testing.assert_array_equal(model.fill(garbage, vis), whole)
    assert len(model._recent) == 1


def test_a_pose_among_the_references_is_recovered_exactly():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2000, 32))
    truth = x[:5].copy()
    vis = np.ones((5, 16), bool)
    vis[:, [1, 12]] = False  # knee and wrist, as network joints (the skeleton's minus one)
    vis[3, 5] = False
    got = Infill(x, 1).fill(np.where(np.repeat(vis, 2, 1), truth, 123.0), vis)
    np.testing.assert_allclose(got, truth, atol=1e-5)
    chosen = fit_run(x, shares=(0.0,))  # k chosen on held-out joints (not in the references)
    assert set(chosen.errors) == set(infill.K_GRID) and chosen.k in infill.K_GRID
    assert chosen.errors[chosen.k] == min(chosen.errors.values())
    for bad_x, bad_vis in ((x[:2], vis[:1]), (x[:5], vis[:, :8]), (x[:5, :30], vis)):
        with pytest.raises(ValueError, match=r"must be \(N, 32\) and visible"):
            chosen.fill(bad_x, bad_vis)


def test_k_is_chosen_on_whole_takes_held_out():
    # 60 takes of 40 near-copies of one pose each: a held-out pose's copies from its own
    # take make one neighbour look perfect unless its whole take is held out
    rng = np.random.default_rng(3)
    takes = np.repeat(np.arange(60), 40)
    x = rng.normal(size=(60, 32))[takes] + 1e-3 * rng.normal(size=(len(takes), 32))
    by_pose, by_take = fit_run(x, shares=(0.0,)), fit_run(x, shares=(0.0,), groups=takes)
    assert 100 * by_pose.errors[1] < by_take.errors[1]


def test_k_is_chosen_on_noisy_visible_joints_too():
    rng = np.random.default_rng(4)  # as real poses: on a curved low-dimensional surface
    t = rng.uniform(0, 2 * np.pi, (5000, 2))
    x = np.concatenate([np.cos(t), np.sin(t), np.cos(2 * t), np.sin(2 * t)], 1) @ rng.normal(
        size=(8, 32))
    clean, mixed = fit_run(x, shares=(0.0,)), fit_run(x)
    assert mixed.noise_shares == infill.NOISE_SHARES and clean.noise_shares == (0.0,)
    # the noisy held-out joints count: every k in-fills worse from them on average
    assert all(mixed.errors[k] > clean.errors[k] for k in infill.K_GRID)


def test_hidden_limb_joints_are_limb_joints_and_distinct():
    conf = hide(500, 2, seed=3)
    assert (conf == 0).sum(1).tolist() == [2] * 500
    assert set(np.flatnonzero((conf == 0).any(0))) == set(LIMB_JOINTS)
    vis = infill.hide_limbs(400, np.random.default_rng(0))
    assert set((~vis).sum(1)) == {1, 2, 3, 4}
    assert set(np.flatnonzero((~vis).any(0)) + 1) == set(LIMB_JOINTS)


def test_the_cache_file_round_trip(tmp_path, monkeypatch):
    split = {k: v for k, v in TRAIN.items()}
    calls = []

    def fake_load(cfg, name):
        calls.append(name)
        return split

    monkeypatch.setattr(infill, "load", fake_load)
    cfg = {"train_size": 1000, "seed": 0}
    fits = []
    monkeypatch.setattr(infill, "_FITTED", {})
    monkeypatch.setattr(infill, "fit_run", lambda x, **kw: fits.append(1) or fit_run(x, **kw))
    made = for_run(tmp_path, cfg)  # fitted on the run's training 2D, written to the folder
    assert calls == ["train"] and (tmp_path / INFILL_FILE).is_file()
    monkeypatch.setattr(infill, "_KEPT", {})  # another process
    again = for_run(tmp_path, cfg)  # read back: the data is not read again
    assert calls == ["train"]
    np.testing.assert_array_equal(made.poses, again.poses)
    assert again.k == made.k and again.errors == pytest.approx(made.errors)
    x = normalise(TRAIN["pose2d"][:20])
    vis = np.ones((20, 16), bool)
    vis[:, 12] = False
    np.testing.assert_array_equal(made.fill(x, vis), again.fill(x, vis))
    (tmp_path / "other").mkdir()  # another run on the same data: its data read, not refitted
    assert for_run(tmp_path / "other", cfg).k == made.k
    assert calls == ["train", "train"] and len(fits) == 1
    assert for_run(tmp_path / "other", cfg) is for_run(tmp_path / "other", cfg)  # one object


def test_without_the_file_and_without_the_data_one_line_error(tmp_path, monkeypatch):
    def no_data(cfg, name):
        raise DataError("Bandai-Namco data not found; looked at /nowhere. How to get it: ...")

    monkeypatch.setattr(infill, "load", no_data)
    with pytest.raises(InfillUnavailable, match=r"no infill-knn.npz in .* training 2D is not "
                                                r"here to fit one \(Bandai-Namco data not "
                                                r"found\)$") as e:
        for_run(tmp_path, {})
    assert "\n" not in str(e.value) and "How to get it" not in str(e.value)
    assert infill.infill_or_reason(tmp_path, {}) == str(e.value)
    (tmp_path / INFILL_FILE).write_bytes(b"torn")
    with pytest.raises(InfillUnavailable, match="unreadable in-filling model"):
        for_run(tmp_path, {})


def test_a_model_chosen_by_the_earlier_rule_is_fitted_again_where_the_data_is(tmp_path,
                                                                            monkeypatch):
    old = Infill(np.zeros((3, 32)), 3)  # no noise_shares: an earlier rule chose its k
    old.save(tmp_path / INFILL_FILE)
    monkeypatch.setattr(infill, "load", lambda cfg, name: dict(TRAIN))
    new = for_run(tmp_path, {"train_size": 1000, "seed": 0})
    assert new.noise_shares == infill.NOISE_SHARES
    assert Infill.load(tmp_path / INFILL_FILE).noise_shares == infill.NOISE_SHARES
    old.save(tmp_path / INFILL_FILE)  # copied without its data: the model it has, not an error

    def no_data(cfg, name):
        raise DataError("Bandai-Namco data not found")

    monkeypatch.setattr(infill, "load", no_data)
    assert for_run(tmp_path, {}).k == 3
