"""Tests of lib.metrics against hand-computed cases and scipy's Procrustes."""

import numpy as np
import pytest
import scipy.linalg
import scipy.spatial
import torch

from lib import metrics as M


def random_rotation(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 3, 3) proper rotations from the QR of Gaussian matrices."""
    q, r = torch.linalg.qr(torch.randn(n, 3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1)).unsqueeze(-2)
    q[torch.linalg.det(q) < 0, :, 0] *= -1
    return q


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


@pytest.fixture
def poses(gen) -> torch.Tensor:
    """(64, 17, 3) random, clearly non-planar poses in mm (float64)."""
    return torch.randn(64, 17, 3, generator=gen, dtype=torch.float64) * 300.0


def depth_mirror(x: torch.Tensor) -> torch.Tensor:
    """z -> -z about each pose's mean depth."""
    out = x.clone()
    out[..., 2] = 2 * x[..., 2].mean(-1, keepdim=True) - x[..., 2]
    return out


def test_mpjpe_hand_case():
    gt = torch.zeros(1, 2, 3)
    pred = gt + torch.tensor([3.0, 4.0, 0.0])
    assert M.mpjpe(pred, gt).tolist() == [5.0]
    pred[0, 1] = 0.0  # second joint exact: errors (5, 0)
    assert M.pjpe(pred, gt).tolist() == [[5.0, 0.0]]
    assert M.mpjpe(pred, gt).tolist() == [2.5]


def test_pa_reflect_matches_scipy(poses, gen):
    pred = poses + torch.randn(poses.shape, generator=gen, dtype=torch.float64) * 60.0
    ours = M.procrustes_align(pred, poses, allow_reflection=True)
    for p, g, a in zip(pred.numpy(), poses.numpy(), ours.numpy(), strict=True):
        # scipy's method: orthogonal Procrustes (reflections allowed) with the optimal scale
        pc, gc = p - p.mean(0), g - g.mean(0)
        rot, sv_sum = scipy.linalg.orthogonal_procrustes(pc, gc)
        ref = sv_sum / (pc**2).sum() * pc @ rot + g.mean(0)
        assert np.abs(ref - a).max() < 1e-3
        err_ref, err_ours = np.linalg.norm(ref - g, axis=-1), np.linalg.norm(a - g, axis=-1)
        assert abs(err_ref.mean() - err_ours.mean()) < 1e-3
        # scipy.spatial.procrustes' disparity is the squared error after normalising gt
        *_, disparity = scipy.spatial.procrustes(g, p)
        assert np.isclose(disparity, ((a - g) ** 2).sum() / (gc**2).sum(), atol=1e-9)


def test_similarity_copy_scores_zero(poses, gen):
    rot = random_rotation(len(poses), gen)
    scale = torch.rand(len(poses), 1, 1, generator=gen, dtype=torch.float64) + 0.5
    moved = scale * poses @ rot + torch.tensor([100.0, -50.0, 4000.0], dtype=torch.float64)
    assert M.mpjpe(moved, poses).min() > 10.0
    for reflect in (False, True):
        assert M.pa_mpjpe(moved, poses, allow_reflection=reflect).max() < 1e-6


def test_depth_mirror(poses, gen):
    mirror = depth_mirror(poses)
    assert M.pa_mpjpe(mirror, poses, allow_reflection=True).max() < 1e-6
    assert M.pa_mpjpe(mirror, poses).min() > 50.0
    assert M.mirrored(mirror, poses).all()
    noisy = poses + torch.randn(poses.shape, generator=gen, dtype=torch.float64) * 20.0
    assert not M.mirrored(poses, poses).any()
    assert not M.mirrored(noisy, poses).any()
    assert M.mirrored(depth_mirror(noisy), poses).all()


def test_proper_rotation_has_det_plus_one(poses, gen):
    # pred is a mirrored, rotated copy: the unconstrained optimum is a reflection
    pred = depth_mirror(poses) @ random_rotation(len(poses), gen)
    aligned = M.procrustes_align(pred, poses)
    x = pred - pred.mean(-2, keepdim=True)
    y = aligned - aligned.mean(-2, keepdim=True)
    sr = torch.linalg.lstsq(x, y).solution  # aligned = s * x @ R exactly
    det = torch.linalg.det(sr / torch.linalg.matrix_norm(sr, ord=2)[:, None, None])
    assert torch.allclose(det, torch.ones_like(det), atol=1e-9)
    # and the reflecting variant finds a reflection
    y = M.procrustes_align(pred, poses, allow_reflection=True)
    sr = torch.linalg.lstsq(x, y - y.mean(-2, keepdim=True)).solution
    assert (torch.linalg.det(sr) < 0).all()


def test_n_mpjpe_scaled_copy(poses):
    assert M.n_mpjpe(poses * 0.7, poses).max() < 1e-9
    assert M.mpjpe(poses * 0.7, poses).min() > 10.0


def test_pck_auc_hand_case():
    gt = torch.zeros(2, 4, 3)
    pred = gt.clone()
    pred[0, :, 0] = torch.tensor([0.0, 100.0, 149.0, 200.0])  # errors 0, 100, 149, 200
    pred[1, :, 0] = 1000.0
    assert M.pck(pred, gt).tolist() == [75.0, 0.0]
    assert M.pck(pred, gt, threshold=100.0).tolist() == [25.0, 0.0]
    # thresholds 0..150 step 5: error 0 passes 30 of 31 (not 0 < 0), 100 passes 10, 149 passes 1
    assert torch.allclose(M.auc(pred, gt), torch.tensor([(30 + 10 + 1) / 124 * 100, 0.0]))
    assert torch.allclose(M.auc(pred, gt, thresholds=[50.0, 150.0]), torch.tensor([50.0, 0.0]))


def test_best_of_k_picks_min():
    gt = torch.zeros(2, 3, 3)
    hyps = torch.zeros(3, 2, 3, 3)
    hyps[0, 0, :, 0] = 30.0  # sample 0: offsets 30, 10, 20 -> 10
    hyps[1, 0, :, 0] = 10.0
    hyps[2, 0, :, 0] = 20.0
    hyps[:, 1, :, 1] = torch.tensor([7.0, 9.0, 2.0])[:, None]  # sample 1 -> 2
    assert M.best_of_k(hyps, gt, metric=M.mpjpe).tolist() == [10.0, 2.0]
    assert M.best_of_k(hyps, gt, metric=M.mpjpe, chunk=2).tolist() == [10.0, 2.0]


def test_best_of_k_pa_chunked(poses, gen):
    hyps = poses + torch.randn((5, *poses.shape), generator=gen, dtype=torch.float64) * 50.0
    per_k = torch.stack([M.pa_mpjpe(h, poses) for h in hyps])
    assert torch.allclose(M.best_of_k(hyps, poses, chunk=7), per_k.amin(0))


def test_summarize_groups(poses, gen):
    pred = poses + torch.randn(poses.shape, generator=gen, dtype=torch.float64) * 40.0
    pred[:10] = depth_mirror(pred[:10])
    groups = torch.arange(len(poses)) % 3
    s = M.summarize(pred, poses, groups=groups, group_names=["walk", "sit", "jump"])
    assert set(M.SCALAR_METRICS) <= s.keys()
    assert s["count"] == 64 and len(s["per_joint"]) == 17
    assert s["pa_mpjpe"] == pytest.approx(float(M.pa_mpjpe(pred, poses).mean()))
    assert s["mirrored_rate"] == pytest.approx(100 * 10 / 64)
    assert np.mean(s["per_joint"]) == pytest.approx(s["pa_mpjpe"])
    assert s["pa_mpjpe_reflect"] <= s["pa_mpjpe"]
    aligned = M.procrustes_align(pred, poses)
    assert s["pck150"] == pytest.approx(float(M.pck(aligned, poses).mean()))
    assert list(s["per_group"]) == ["walk", "sit", "jump"]
    for code, name in enumerate(["walk", "sit", "jump"]):
        g = s["per_group"][name]
        mask = groups == code
        assert g["count"] == int(mask.sum())
        assert g["mpjpe"] == pytest.approx(float(M.mpjpe(pred[mask], poses[mask]).mean()))
        assert g["auc"] == pytest.approx(float(M.auc(aligned[mask], poses[mask]).mean()))
    # chunking does not change the result
    assert M.summarize(pred, poses, chunk=10)["auc"] == pytest.approx(s["auc"])


def test_float32_and_shapes(poses, gen):
    pred64 = poses + torch.randn(poses.shape, generator=gen, dtype=torch.float64) * 50.0
    pred, gt = pred64.float(), poses.float()
    for fn in (M.mpjpe, M.n_mpjpe, M.pa_mpjpe, M.pck, M.auc, M.mirrored):
        out = fn(pred, gt)
        assert out.shape == (64,)
    assert M.pjpe(pred, gt).shape == (64, 17)
    assert M.pa_mpjpe(pred, gt).dtype == torch.float32
    assert torch.allclose(M.pa_mpjpe(pred, gt).double(), M.pa_mpjpe(pred64, poses), atol=1e-2)
    assert M.procrustes_align(pred.half(), gt.half()).dtype == torch.float32
    # extra leading dims
    assert M.pa_mpjpe(pred.view(4, 16, 17, 3), gt.view(4, 16, 17, 3)).shape == (4, 16)
    assert M.chunked(M.pa_mpjpe, pred, gt, chunk=10).shape == (64,)


def test_knn_accuracy_on_two_separated_clusters_and_on_noise():
    from lib.metrics import knn_accuracy

    g = torch.Generator().manual_seed(0)
    a = torch.randn(50, 2, generator=g)
    feats = torch.cat([a, a + 100.0])
    labels = torch.tensor([0] * 50 + [1] * 50)
    assert knn_accuracy(feats, labels, k=5) == 100.0
    swapped = torch.tensor([0, 1] * 50)  # labels unrelated to the features: about chance
    assert 20 < knn_accuracy(feats, swapped, k=5) < 80
    with pytest.raises(ValueError, match="more than k=5"):
        knn_accuracy(feats[:5], labels[:5], k=5)
    # two takes per class, each seen twice (same features): with the take as the group,
    # only the other take of the class can vote, and here it sits with the other class
    take = torch.arange(8) // 2
    dup = torch.tensor([[0.0], [0.0], [10.0], [10.0], [1.0], [1.0], [11.0], [11.0]])
    cls = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    assert knn_accuracy(dup, cls, k=1) == 100.0  # the copy from another camera votes
    assert knn_accuracy(dup, cls, k=1, groups=take) == 0.0
