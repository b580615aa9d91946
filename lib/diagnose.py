"""Where does a lifter's error come from? Image plane against depth, per joint.

Predictions and ground truth are root-relative (N, 17, 3) camera-frame poses in mm. The
prediction is first given the optimal uniform scale (as N-MPJPE does), without rotation:
a rotation would mix depth into the image plane, which is exactly what we want to separate.
"""

from __future__ import annotations

import torch


def scale_aligned(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """``pred`` times the per-pose scale s = <pred, gt> / <pred, pred> (N-MPJPE's)."""
    s = (pred * gt).sum((-1, -2), keepdim=True) / (pred * pred).sum((-1, -2), keepdim=True)
    return pred * s.clamp_min(0)


def error_split(pred: torch.Tensor, gt: torch.Tensor) -> dict:
    """Per-joint mean errors (J,) in mm after scale alignment: ``image`` (the x, y part),
    ``depth`` (|z error|) and ``total`` (3D Euclidean)."""
    diff = scale_aligned(pred.double(), gt.double()) - gt.double()
    return {"image": diff[..., :2].norm(dim=-1).mean(0), "depth": diff[..., 2].abs().mean(0),
            "total": diff.norm(dim=-1).mean(0)}


def depth_correlation(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Pearson correlation (J,) between predicted and true root-relative depth of each joint
    over the poses (the root, always 0, gets NaN). 1 = depth ordering learnt, 0 = none,
    negative = systematically mirrored."""
    p, g = pred[..., 2].double(), gt[..., 2].double()
    p, g = p - p.mean(0), g - g.mean(0)
    return (p * g).sum(0) / (p.norm(dim=0) * g.norm(dim=0))
