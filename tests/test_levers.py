"""The lever study's 2D-only rules (lib.choose.lever_kept) on hand-made evidence, the
frozen vertical of the novel views, and the lone-training count of a restart record."""

import pytest
import torch

from lib import choose
from lib.choose import lone
from lib.config import ConfigError, make_config
from lib.views import NovelViews

OURS = {"critic": [86.0, 88.0, 87.0], "knees": [0.0, 0.0, 0.0]}  # critic std 1.0


def test_a_lever_whose_removal_the_2d_evidence_does_not_see_is_dropped():
    kept, reasons = choose.lever_kept(OURS, {"critic": [87.0, 88.5, 87.5],  # +0.67 < 1.0
                                             "knees": [0.5, 1.0, 1.0]})  # +0.83 < 1
    assert not kept and reasons == []


@pytest.mark.parametrize("without, reason", [
    ({"critic": [88.0, 89.0, 88.6], "knees": [0, 0, 0]}, "critic accuracy +1.5"),  # noise 1
    ({"critic": OURS["critic"], "knees": [2.0, 1.0, 1.5]}, "+1.5 points of knees"),
    ({**OURS, "lone": [0, 0, 1]}, "1 training(s) agreed with no other"),
    ({**OURS, "spare_needed": [False, True, False]}, "a seed needed a spare"),
])
def test_each_rule_alone_keeps_a_lever(without, reason):
    kept, reasons = choose.lever_kept(OURS, without)
    assert kept and len(reasons) == 1 and reason in reasons[0]


def test_the_critic_noise_is_the_noisier_row_s():
    noisy = {"critic": [84.0, 92.0, 89.0], "knees": [0, 0, 0]}  # +1.33, std 4.04
    assert not choose.lever_kept(OURS, noisy)[0]


@pytest.mark.parametrize("lone_per_batch, lone_frozen, critic_frozen, kept", [
    ([0, 1, 0], [0, 0, 0], [89.0, 90.0, 89.5], False),  # more failures: realism cannot keep it
    ([0, 1, 0], [1, 0, 0], [89.0, 90.0, 89.5], True),  # as many failures: realism keeps it
    ([0, 0, 0], [0, 0, 0], [86.5, 88.0, 87.0], False),  # no failures, no realism gain: dropped
])
def test_the_vertical_rule_weighs_failed_trainings_before_realism(lone_per_batch, lone_frozen,
                                                                   critic_frozen, kept):
    per_batch = {**OURS, "lone": lone_per_batch}
    frozen = {"critic": critic_frozen, "knees": [0, 0, 0], "lone": lone_frozen}
    verdict, reasons = choose.vertical_kept(per_batch, frozen)
    assert verdict is kept
    if lone_per_batch != [0, 0, 0] and not kept:
        assert reasons == ["1 failed training(s) against 0 frozen"]


def test_lone_counts_trainings_closer_to_flat_than_to_every_other():
    record = {"pairs": [[0, 27, 129, 15], [27, 0, 127, 30], [129, 127, 0, 130],
                        [15, 30, 130, 0]], "flat": [70, 66, 63, 70]}
    assert lone(record["pairs"], record["flat"]) == 1  # the third (a failed training)
    assert lone([[0, 80], [80, 0]], [60, 70]) == 2


def test_the_frozen_vertical_is_the_upright_start_s_last_epoch_mean():
    cfg = make_config({"view_axis": "up", "up_warmup": 2, "up_freeze": True})
    views = NovelViews(cfg, torch.Generator())
    a, b = torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.8, 0.6])
    assert torch.equal(views.vertical(a, 0), a) and views.up_run is None  # first epoch
    assert torch.equal(views.vertical(a, 1), a) and torch.equal(views.vertical(b, 1), b)
    held = views.vertical(torch.tensor([1.0, 0.0, 0.0]), 2)  # later: the mean, not its own
    assert torch.allclose(held, torch.tensor([0.0, 1.8, 0.6]) / 1.8974, atol=1e-4)
    assert torch.equal(views.vertical(a, 5), held)


@pytest.mark.parametrize("bad", [{}, {"view_axis": "up"},
                                 {"view_axis": "up", "up_warmup": 2, "up_momentum": 0.9}])
def test_a_frozen_vertical_needs_an_upright_start(bad):
    with pytest.raises(ConfigError, match="up_freeze"):
        make_config({**bad, "up_freeze": True})
