"""Novel views: a batch's lifted poses turned to random new viewpoints and projected, the
2D that the discriminator judges and that the cycle lifts again.

The views turn about the camera's vertical (``view_axis: camera``) or about the lifted
world's, estimated from each batch's lifts (``up``, :func:`lib.geometry.up_direction`),
optionally as a running average over batches (``up_momentum``), or held fixed after the
upright start (``up_freeze``), and with its tilt towards the camera held in a range
(``up_tilt_range``); for the first ``up_warmup`` epochs always about the camera's (the
lifted world starts upright).
"""

from __future__ import annotations

import torch

from .geometry import clamp_tilt, project, random_turn


class NovelViews:
    """The novel views of one training (its configuration and random generator)."""

    def __init__(self, cfg: dict, gen: torch.Generator):
        self.cfg, self.gen = cfg, gen
        # the running vertical (up_momentum > 0), or the sum of the upright start's last
        # epoch's estimates (up_freeze), (3,); checkpointed
        self.up_run = None

    def axis(self, epoch: int) -> str:
        """The axis an epoch's views turn about: ``view_axis``, except "camera" for the first
        ``up_warmup`` epochs."""
        return "camera" if epoch < self.cfg["up_warmup"] else self.cfg["view_axis"]

    def vertical(self, up: torch.Tensor, epoch: int = 0) -> torch.Tensor:
        """The vertical (3,) the views of ``epoch`` turn about, from ``up``, this batch's
        estimate (over ranks with view_axis "up"): itself, or with ``up_momentum`` m > 0 the
        running estimate ``normalise(m * previous + (1 - m) * up)``, so that one batch's lifts
        do not swing the axis, or with ``up_freeze`` after the upright start the mean of its
        last epoch's estimates, fixed; with ``up_tilt_range`` its tilt towards the camera held
        in that range (a world lifted tilted beyond it is then seen turning about a vertical
        it does not stand on, and its views lean)."""
        c = self.cfg
        if c["up_freeze"] and epoch >= c["up_warmup"] - 1:
            if epoch == c["up_warmup"] - 1:  # the upright start's last epoch: sum its batches'
                self.up_run = up if self.up_run is None else self.up_run + up
            elif self.up_run is not None:
                up = self.up_run / self.up_run.norm().clamp_min(1e-8)
        if c["up_momentum"] > 0:
            m = c["up_momentum"]
            run = up if self.up_run is None else m * self.up_run + (1 - m) * up
            self.up_run = up = run / run.norm().clamp_min(1e-8)
        if c["up_tilt_range"] is not None:
            up = clamp_tilt(up, *c["up_tilt_range"])
        return up

    def __call__(self, pose3d: torch.Tensor, epoch: int,
                 up: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(novel 2D views (B, 32), the rotations (B, 3, 3) that made them) of ``pose3d``
        (B, 48) in ``epoch``; ``up``: the vertical when the axis is "up" (by default that of
        ``pose3d``)."""
        c = self.cfg
        rotated, rot = random_turn(pose3d, self.axis(epoch), self.gen, up, c["azim_min"],
                                   c["azim_max"], c["elev_min"], c["elev_max"])
        return project(rotated).flatten(1), rot
