"""Pose-error metrics: MPJPE, N-MPJPE, PA-MPJPE, PCK/AUC, mirror detection, best-of-K.

Conventions
-----------
* Poses are torch tensors shaped ``(..., J, 3)`` (usually ``(N, 17, 3)``), millimetres.
* Metric functions return one value per pose, shaped ``(...)`` (usually ``(N,)``), so callers
  can average per action, per camera, ...; :func:`pjpe` keeps the joint axis.
* Everything is batched and stays on the input device; the code adds no host syncs
  (:func:`summarize` excepted: it ends an evaluation and returns Python floats), though
  ``torch.linalg.svd`` itself synchronises on CUDA (checked with torch 2.11 on an H100).
* Procrustes is solved in float64 (a 3x3 SVD per pose) whatever the input dtype;
  the aligned pose comes back in the input's floating dtype (at least float32).

Procrustes variants
-------------------
``procrustes_align(pred, gt)`` finds the similarity transform (rotation, translation,
uniform scale) that best maps ``pred`` onto ``gt`` in the least-squares sense.

* ``allow_reflection=False`` (the usual "protocol 2" PA-MPJPE): the rotation is proper,
  ``det R = +1``; when the unconstrained optimum is a reflection, the last singular vector
  and singular value change sign.
* ``allow_reflection=True``: any orthogonal matrix is allowed, as in
  ``scipy.spatial.procrustes``. Its error is never larger than the proper one, and it is
  ~0 for a depth-mirrored prediction, the typical failure of lifting from 2D alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

Tensor = torch.Tensor

# thresholds of the default AUC: 0, 5, ..., 150 mm
AUC_THRESHOLDS = tuple(5.0 * i for i in range(31))


def _float(x: Tensor) -> Tensor:
    """``x`` as a floating tensor of at least float32 precision (float64 is kept)."""
    if x.dtype in (torch.float32, torch.float64):
        return x
    return x.to(torch.float32)


def pjpe(pred: Tensor, gt: Tensor) -> Tensor:
    """Per-joint Euclidean error, ``(..., J, 3) -> (..., J)``."""
    return torch.linalg.vector_norm(_float(pred) - _float(gt), dim=-1)


def mpjpe(pred: Tensor, gt: Tensor) -> Tensor:
    """Mean per-joint position error of each pose, ``(..., J, 3) -> (...)``; no alignment."""
    return pjpe(pred, gt).mean(-1)


def n_mpjpe(pred: Tensor, gt: Tensor, eps: float = 1e-12) -> Tensor:
    """MPJPE after the optimal uniform scale of ``pred`` only (Rhodin et al., CVPR 2018).

    ``s = <pred, gt> / <pred, pred>`` per pose; no centring (both poses are taken
    root-relative, as given).
    """
    pred, gt = _float(pred), _float(gt)
    num = (pred * gt).sum((-2, -1), keepdim=True)
    den = (pred * pred).sum((-2, -1), keepdim=True).clamp_min(eps)
    return mpjpe(pred * (num / den), gt)


def procrustes_align(
    pred: Tensor, gt: Tensor, allow_reflection: bool = False, eps: float = 1e-12
) -> Tensor:
    """``pred`` mapped onto ``gt`` by the least-squares similarity transform, batched.

    With centred poses ``X = pred - mean``, ``Y = gt - mean`` (rows are joints) and the
    SVD ``X^T Y = U S V^T``, the rotation is ``R = U V^T``, the scale
    ``s = trace(S) / ||X||^2`` and the result ``s X R + mean(gt)``. When
    ``allow_reflection`` is False and ``det(U V^T) < 0``, the last column of ``U`` and the
    last singular value change sign, which gives the best proper rotation (det +1).
    Solved in float64; returned in the (at least float32) dtype of ``pred``.
    """
    out_dtype = _float(pred).dtype
    pred = pred.to(torch.float64)
    gt = gt.to(torch.float64)
    mu_p = pred.mean(-2, keepdim=True)
    mu_g = gt.mean(-2, keepdim=True)
    x, y = pred - mu_p, gt - mu_g
    u, s, vh = torch.linalg.svd(x.transpose(-1, -2) @ y)
    if not allow_reflection:
        # +1 where U V^T is already a rotation, -1 where it is a reflection
        sign = torch.sign(torch.linalg.det(u @ vh))
        sign = torch.where(sign == 0, torch.ones_like(sign), sign)
        flip = torch.ones_like(s)
        flip[..., -1] = sign
        u = u * flip.unsqueeze(-2)  # scales the last column of U
        s = s * flip
    rot = u @ vh
    scale = s.sum(-1) / (x * x).sum((-2, -1)).clamp_min(eps)
    aligned = scale[..., None, None] * (x @ rot) + mu_g
    return aligned.to(out_dtype)


def pa_mpjpe(pred: Tensor, gt: Tensor, allow_reflection: bool = False) -> Tensor:
    """MPJPE after :func:`procrustes_align` (Procrustes-aligned MPJPE, "protocol 2")."""
    return mpjpe(procrustes_align(pred, gt, allow_reflection), gt)


def pck(pred: Tensor, gt: Tensor, threshold: float = 150.0) -> Tensor:
    """Percentage (0-100) of joints whose error is below ``threshold`` mm, per pose.

    Works on the poses as given: align them first (e.g. :func:`procrustes_align`) if wanted.
    """
    return (pjpe(pred, gt) < threshold).to(_float(pred).dtype).mean(-1) * 100.0


def auc(pred: Tensor, gt: Tensor, thresholds: Tensor | Sequence[float] | None = None) -> Tensor:
    """Mean of :func:`pck` over ``thresholds`` (percent), per pose.

    ``thresholds`` defaults to 0, 5, ..., 150 mm (31 values, as ``torch.linspace(0, 150, 31)``).
    """
    err = pjpe(pred, gt)
    if thresholds is None:
        thresholds = AUC_THRESHOLDS
    t = torch.as_tensor(thresholds, dtype=err.dtype, device=err.device)
    return (err[..., None] < t).to(err.dtype).mean((-2, -1)) * 100.0


def _mirror_rule(err_proper: Tensor, err_reflect: Tensor, abs_margin: float, rel_margin: float):
    gain = err_proper - err_reflect
    return (gain > abs_margin) & (gain > rel_margin * err_proper)


def mirrored(
    pred: Tensor, gt: Tensor, abs_margin: float = 10.0, rel_margin: float = 0.25
) -> Tensor:
    """Bool per pose: is ``pred`` a (depth-)mirrored version of ``gt``?

    Let ``P`` be the proper PA-MPJPE (det +1) and ``M`` the one with reflections allowed
    (``M <= P`` always). A pose is flagged when the reflection explains it clearly better::

        P - M > abs_margin   and   P - M > rel_margin * P      (i.e. M < (1 - rel_margin) P)

    Why: a correct pose gives ``M ~= P`` (reflecting does not help), a mirrored one gives
    ``M`` at its noise level and ``P`` large. The relative test (default: the reflection
    removes more than 25 % of the error) makes the rule scale-free and tolerant of noise: a
    50-80 mm noisy but otherwise correct prediction is not flagged, and neither, mostly, is
    one with a single limb flipped in depth. The absolute test (default 10 mm) stops
    near-perfect poses, where both errors are tiny, from being flagged by a meaningless
    ratio. Nearly planar poses are mirror-ambiguous by nature (``M ~= P``) and are not
    flagged, which is right since the mirror costs nothing there.

    On synthetic 17-joint poses with i.i.d. Gaussian joint noise (PA-MPJPE 60-90 mm) the
    defaults flag 0 % of correct poses and 90-100 % of depth-mirrored ones; with one arm
    flipped in depth they flag < 0.3 %, with both arms 1-2 %.
    """
    return _mirror_rule(
        pa_mpjpe(pred, gt), pa_mpjpe(pred, gt, allow_reflection=True), abs_margin, rel_margin
    )


def chunked(fn: Callable[..., Tensor], *tensors: Tensor, chunk: int = 65536) -> Tensor:
    """``fn(*tensors)`` evaluated on slices of ``chunk`` along dim 0 and concatenated.

    Bounds the memory of temporaries; ``fn`` must map dim 0 of its inputs to dim 0 of
    its output (all the metrics here do).
    """
    n = tensors[0].shape[0]
    if n <= chunk:
        return fn(*tensors)
    return torch.cat([fn(*(t[i : i + chunk] for t in tensors)) for i in range(0, n, chunk)])


def best_of_k(
    hyps: Tensor,
    gt: Tensor,
    metric: Callable[[Tensor, Tensor], Tensor] = pa_mpjpe,
    chunk: int = 65536,
) -> Tensor:
    """Oracle best hypothesis: ``min_k metric(hyps[k], gt)`` per pose.

    ``hyps`` is ``(K, N, J, 3)``, ``gt`` ``(N, J, 3)``; returns ``(N,)``. The samples are
    processed in chunks of about ``chunk`` poses in total (``chunk // K`` samples times
    the K hypotheses) so that K=50, N=100k stays within a few hundred MB.
    """
    k = hyps.shape[0]
    step = max(1, chunk // k)

    def one(h: Tensor, g: Tensor) -> Tensor:  # h (K, n, J, 3), g (n, J, 3)
        return metric(h, g.expand_as(h)).amin(0)

    n = gt.shape[0]
    return torch.cat([one(hyps[:, i : i + step], gt[i : i + step]) for i in range(0, n, step)])


SCALAR_METRICS = (
    "mpjpe", "n_mpjpe", "pa_mpjpe", "pa_mpjpe_reflect", "mirrored_rate", "pck150", "auc",
)  # fmt: skip


def _per_sample(pred: Tensor, gt: Tensor, abs_margin: float, rel_margin: float) -> dict:
    """All per-pose numbers of :func:`summarize` for one chunk, on the input device."""
    aligned = procrustes_align(pred, gt)
    pa_joint = pjpe(aligned, gt)
    pa = pa_joint.mean(-1)
    pa_ref = pa_mpjpe(pred, gt, allow_reflection=True)
    return {
        "mpjpe": mpjpe(pred, gt),
        "n_mpjpe": n_mpjpe(pred, gt),
        "pa_mpjpe": pa,
        "pa_mpjpe_reflect": pa_ref,
        "mirrored_rate": _mirror_rule(pa, pa_ref, abs_margin, rel_margin).to(pa.dtype) * 100.0,
        "pck150": pck(aligned, gt, 150.0),
        "auc": auc(aligned, gt),
        "per_joint": pa_joint,
    }


def _reduce(values: dict, mask: Tensor | None = None) -> dict:
    out = {}
    for key, v in values.items():
        v = v if mask is None else v[mask]
        out[key] = v.mean(0).tolist() if key == "per_joint" else float(v.mean())
    out["count"] = int(values["mpjpe"].shape[0] if mask is None else mask.sum())
    return out


def summarize(
    pred: Tensor,
    gt: Tensor,
    groups: Tensor | None = None,
    group_names: Sequence[str] | Mapping[int, str] | None = None,
    abs_margin: float = 10.0,
    rel_margin: float = 0.25,
    chunk: int = 65536,
) -> dict:
    """One-call evaluation summary of ``(N, J, 3)`` predictions, as Python numbers.

    Keys (means over the N poses):

    * ``mpjpe``, ``n_mpjpe``, ``pa_mpjpe`` (proper rotation), ``pa_mpjpe_reflect``
      (reflections allowed), all mm;
    * ``mirrored_rate``: percent of poses flagged by :func:`mirrored` (same margins);
    * ``pck150`` and ``auc`` (percent), computed on the *proper* Procrustes-aligned poses;
    * ``per_joint``: list of J mean PA-aligned (proper) per-joint errors, mm;
    * ``count``: number of poses.

    If ``groups`` (N integer codes, e.g. action indices) is given, ``per_group`` maps each
    group's name (``group_names[code]``, else ``str(code)``) to a dict with the same keys
    over that group's poses. This is the one function here that syncs to the host.
    """
    if pred.shape[0] == 0:
        raise ValueError("summarize needs at least one pose")
    per = [
        _per_sample(pred[i : i + chunk], gt[i : i + chunk], abs_margin, rel_margin)
        for i in range(0, pred.shape[0], chunk)
    ]
    values = {key: torch.cat([p[key] for p in per]) for key in per[0]}
    summary = _reduce(values)
    if groups is not None:
        groups = torch.as_tensor(groups, device=values["mpjpe"].device)
        summary["per_group"] = {}
        for code in torch.unique(groups).tolist():
            name = str(code) if group_names is None else str(group_names[code])
            summary["per_group"][name] = _reduce(values, groups == code)
    return summary


def knn_accuracy(features: torch.Tensor, labels: torch.Tensor, k: int = 10,
                 groups: torch.Tensor | None = None) -> float:
    """Leave-one-out k-nearest-neighbour accuracy (percent) of integer ``labels`` (N,) from
    ``features`` (N, D), Euclidean, majority vote (ties: the smallest label): how much of
    the labelling a representation holds, without training a classifier. With ``groups``
    (N,), e.g. the take of each pose, neighbours come from other groups only, so that the
    same take seen by another camera or a frame later does not vote."""
    features = torch.as_tensor(features, dtype=torch.float32)
    labels = torch.as_tensor(labels, device=features.device).long()
    if len(features) <= k:
        raise ValueError(f"knn_accuracy needs more than k={k} points, got {len(features)}")
    dist = torch.cdist(features, features)
    dist.fill_diagonal_(float("inf"))  # leave each point out of its own vote
    if groups is not None:
        groups = torch.as_tensor(groups, device=features.device)
        dist[groups[:, None] == groups[None, :]] = float("inf")
    near = labels[dist.topk(k, largest=False).indices]  # (N, k)
    votes = torch.nn.functional.one_hot(near, int(labels.max()) + 1).sum(1)
    return 100 * float((votes.argmax(1) == labels).float().mean())
