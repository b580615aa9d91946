"""In-filling missing 2D joints (lib/infill.py): Gaussian conditioning by hand, exact
recovery in a low-dimensional subspace, the choice of k from 2D, the run folder's cache."""

import numpy as np
import pytest
from test_train import TRAIN

from lib import infill
from lib.infill import INFILL_FILE, Infill, InfillUnavailable, fit_run, for_run, normalise
from lib.occlusion import hide
from lib.skeleton import LIMB_JOINTS
from lib.splits import DataError


def from_cov(mean, cov) -> Infill:
    vals, vecs = np.linalg.eigh(cov)
    order = np.argsort(vals)[::-1]
    return Infill(np.asarray(mean, float), vals[order], vecs[:, order], len(mean))


def test_conditional_mean_of_a_gaussian_by_hand():
    # joint 0 (coordinates 0, 1) correlated with joint 1 (2, 3): cov 0.5, variances 1 and 2
    cov = np.eye(32)
    cov[2, 2] = cov[3, 3] = 2.0
    cov[0, 2] = cov[2, 0] = cov[1, 3] = cov[3, 1] = 0.5
    mean = np.arange(32) / 10
    model = from_cov(mean, cov)
    x = mean + 1.0
    x[2], x[3] = mean[2] + 4.0, mean[3] - 2.0
    vis = np.ones((1, 16), bool)
    vis[0, 0] = False
    got = model.fill(np.where(np.repeat(vis, 2, 1), x, np.nan), vis)[0]
    # E[x0 | x2] = mu0 + 0.5 / 2 (x2 - mu2): the others are independent of joint 0
    assert got[0] == pytest.approx(mean[0] + 0.25 * 4.0)
    assert got[1] == pytest.approx(mean[1] + 0.25 * -2.0)
    np.testing.assert_array_equal(got[2:], x[2:])  # visible coordinates untouched
    # nothing visible that correlates: the mean
    cov2 = np.eye(32)
    got = from_cov(mean, cov2).fill(x[None], vis)[0]
    assert got[:2].tolist() == pytest.approx(mean[:2].tolist())
    # fitted on samples of that Gaussian, the same answer
    rng = np.random.default_rng(0)
    sample = rng.multivariate_normal(mean, cov, 20000)
    fitted = Infill.fit(sample).fill(np.where(np.repeat(vis, 2, 1), x, 0.0), vis)[0]
    assert fitted[:2] == pytest.approx([mean[0] + 1.0, mean[1] - 0.5], abs=0.08)


def test_a_missing_joint_is_recovered_exactly_in_a_low_dimensional_subspace():
    rng = np.random.default_rng(1)
    basis = rng.normal(size=(3, 32))
    x = 0.3 + rng.normal(size=(2000, 3)) @ basis  # every pose in a 3-dimensional subspace
    truth = x[:5].copy()
    vis = np.ones((5, 16), bool)
    vis[:, [1, 12]] = False  # knee and wrist, as network joints (the skeleton's minus one)
    vis[3, 5] = False
    for model in (Infill.fit(x, k=3), Infill.fit(x, k=32), fit_run(x, shares=(0.0,))):
        got = model.fill(np.where(np.repeat(vis, 2, 1), truth, 123.0), vis)
        np.testing.assert_allclose(got, truth, atol=1e-3)
    chosen = fit_run(x, shares=(0.0,))  # k chosen on clean held-out joints
    assert chosen.k >= 3 and set(chosen.errors) == set(infill.K_GRID)
    assert chosen.errors[chosen.k] < 1e-3  # held-out 2D error, in head-to-pelvis lengths


def test_k_chosen_with_noisy_joints_in_fills_noisy_input_better():
    rng = np.random.default_rng(4)  # as real poses: variances falling over 5 decades
    basis = np.linalg.qr(rng.normal(size=(32, 32)))[0]
    x = rng.normal(size=(5000, 32)) * np.logspace(0, -2.5, 32) @ basis.T
    full, mixed = Infill.fit(x, k=32), fit_run(x)  # every component: what clean 2D chose
    assert mixed.noise_shares == infill.NOISE_SHARES and mixed.k < 32
    held = x[rng.permutation(len(x))[:2000]]
    vis = infill.hide_limbs(len(held), rng)
    given = infill.noisy(held, 0.02, rng)
    assert (infill.infill_error(mixed, held, vis, given)
            < 0.95 * infill.infill_error(full, held, vis, given))


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
    made = for_run(tmp_path, cfg)  # fitted on the run's training 2D, written to the folder
    assert calls == ["train"] and (tmp_path / INFILL_FILE).is_file()
    again = for_run(tmp_path, cfg)  # read back: the data is not read again
    assert calls == ["train"]
    for key in ("mean", "eigvals", "eigvecs"):
        np.testing.assert_array_equal(getattr(made, key), getattr(again, key))
    assert again.k == made.k and again.errors == pytest.approx(made.errors)
    x = normalise(TRAIN["pose2d"][:20])
    vis = np.ones((20, 16), bool)
    vis[:, 12] = False
    np.testing.assert_array_equal(made.fill(x, vis), again.fill(x, vis))


def test_without_the_file_and_without_the_data_one_line_error(tmp_path, monkeypatch):
    def no_data(cfg, name):
        raise DataError("Bandai-Namco data not found; looked at /nowhere. How to get it: ...")

    monkeypatch.setattr(infill, "load", no_data)
    with pytest.raises(InfillUnavailable, match=r"no infill.npz in .* training 2D is not "
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
    old = Infill(np.zeros(32), np.ones(32), np.eye(32), 32)  # no noise_shares: earlier rule
    old.save(tmp_path / INFILL_FILE)
    monkeypatch.setattr(infill, "load", lambda cfg, name: dict(TRAIN))
    new = for_run(tmp_path, {"train_size": 1000, "seed": 0})
    assert new.noise_shares == infill.NOISE_SHARES
    assert Infill.load(tmp_path / INFILL_FILE).noise_shares == infill.NOISE_SHARES
    old.save(tmp_path / INFILL_FILE)  # copied without its data: the model it has, not an error

    def no_data(cfg, name):
        raise DataError("Bandai-Namco data not found")

    monkeypatch.setattr(infill, "load", no_data)
    assert for_run(tmp_path, {}).k == 32
