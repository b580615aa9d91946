"""Choices made from 2D evidence alone: pure functions, no paths, no I/O.

Unsupervised means that no 3D ground truth chooses an epoch, a depth sign or which
trainings a model averages. The evidence comes from 2D checks computed elsewhere (the
realism test of :mod:`lib.evaluate`, the backward-knee rate of :mod:`lib.priors`, the lift
agreement of :func:`lib.evaluate.lift_agreement`); these functions turn it into the choice,
so that each rule is written once and tested on hand-made numbers.
"""

from __future__ import annotations

import itertools


def epoch(scores: dict[int, float]) -> int:
    """The kept epoch whose weights the realism test's critic tells apart from real 2D
    least often (the lowest critic accuracy), the earliest on a tie."""
    return min(sorted(scores), key=scores.get)


def depth_sign(own: float, mirrored: float) -> float:
    """+1 (the network's own depth) or -1 (every prediction mirrored in depth): the sign
    whose lifts bend fewer knees backwards (real knees bend forwards), +1 on a tie."""
    return -1.0 if mirrored < own else 1.0


def agreeing(pairs, flat) -> list[int]:
    """Which trainings a model averages, from their :func:`lib.evaluate.lift_agreement`: two
    trainings *agree* when their lifts are closer to each other than either is to the flat
    lift (the input at constant depth: they agree on more than the depth either adds). The
    largest group of which every two agree, the closest such group on a tie (the smallest
    sum of distances); [] where no two agree. No threshold is fitted: the flat lift sets
    the scale."""
    k = len(flat)
    for size in range(k, 1, -1):
        groups = [g for g in itertools.combinations(range(k), size)
                  if all(agree(pairs, flat, i, j) for i, j in itertools.combinations(g, 2))]
        if groups:
            return list(min(groups, key=lambda g: sum(
                pairs[i][j] for i, j in itertools.combinations(g, 2))))
    return []


def agree(pairs, flat, i: int, j: int) -> bool:
    """Whether trainings i and j agree (:func:`agreeing`): closer to each other than either
    is to its own flat lift."""
    return pairs[i][j] < min(flat[i], flat[j])


def lone(pairs, flat) -> int:
    """How many trainings agree with no other (:func:`agree`)."""
    k = len(flat)
    return sum(not any(agree(pairs, flat, i, j) for j in range(k) if j != i) for i in range(k))


def restarts(pairs, flat, critic_accuracy) -> list[int]:
    """The trainings a model trained several times predicts with: those that agree
    (:func:`agreeing`), else the one whose chosen weights the realism test scores lowest
    (the first on a tie)."""
    return agreeing(pairs, flat) or [critic_accuracy.index(min(critic_accuracy))]


# The lever study's rules (lib.levers), written down before its runs: a lever of
# ours is kept only where the 2D evidence needs it. A row is ours without one lever (or
# without several); each piece of evidence is per seed.
KNEE_MARGIN = 1.0  # percentage points of training poses with a knee bent backwards


def lever_kept(ours: dict, without: dict) -> tuple[bool, list[str]]:
    """Whether ours needs a lever, from 2D evidence alone: (kept, the reasons it is kept).
    ``ours`` and ``without`` (ours without the lever) hold, per seed, ``critic`` (the realism
    test's critic accuracy about the world's vertical, %, lower is more plausible) and
    ``knees`` (% of training 2D poses lifted with a knee bent backwards); ``without`` may
    hold ``lone`` (per seed, how many trainings agreed with no other: :func:`agreeing`, for
    the lever that trains several times and averages) and ``spare_needed`` (per seed, True
    where fewer than two of the first trainings agree, so only a spare made a group). The
    lever is kept when, without it:

    1. the critic tells the novel views from real ones more often by more than the test's
       own noise (the larger of the two rows' standard deviations over seeds);
    2. more than :data:`KNEE_MARGIN` points more knees bend backwards (mean over seeds);
    3. some training agreed with no other (one training would have shipped it unseen);
    4. a seed needed a spare to have two trainings that agree.
    """
    from statistics import mean, stdev

    def sd(v):
        return stdev(v) if len(v) > 1 else 0.0

    reasons = []
    gap, noise = mean(without["critic"]) - mean(ours["critic"]), max(
        sd(ours["critic"]), sd(without["critic"]))
    if gap > noise:
        reasons.append(f"critic accuracy {gap:+.1f} points, more than its noise {noise:.1f}")
    knees = mean(without["knees"]) - mean(ours["knees"])
    if knees > KNEE_MARGIN:
        reasons.append(f"{knees:+.1f} points of knees bent backwards")
    if sum(without.get("lone", [])):
        reasons.append(f"{sum(without['lone'])} training(s) agreed with no other")
    if any(without.get("spare_needed", [])):
        reasons.append("a seed needed a spare for two trainings to agree")
    return bool(reasons), reasons


# The vertical study's rule (lib.levers --vertical), written down before its runs: the
# lever study kept the per-batch vertical for its realism (critic +1.9 points) while two
# builds since each had one first training of ours that tilted its world and agreed with no
# other. A lever that makes trainings fail costs the one-training model and the seed spread
# what its realism gains, so realism alone no longer keeps it.


def vertical_kept(per_batch: dict, frozen: dict) -> tuple[bool, list[str]]:
    """Whether ours keeps its vertical estimated on every batch (else the upright start's,
    held fixed), from 2D evidence alone: (kept, the reasons). Both rows hold, per seed,
    ``critic`` and ``knees`` (as :func:`lever_kept`) and ``lone`` (how many of the seed's
    trainings agreed with no other, :func:`lone`: a failed training). The per-batch vertical
    is kept only when :func:`lever_kept` finds it needed *and* it fails no more trainings
    than the frozen one."""
    needed, reasons = lever_kept(per_batch, frozen)
    failed, failed_frozen = sum(per_batch["lone"]), sum(frozen["lone"])
    if failed > failed_frozen:
        return False, [f"{failed} failed training(s) against {failed_frozen} frozen"]
    return needed, reasons


# The restarts study (for the session after the vertical study), written down before its
# runs: with the vertical held fixed, none of 18 trainings of ours agreed with no other, so
# the three trainings per seed (lever 10) may no longer be needed. It is decided on fresh
# seeds (6 to 11, three trainings each), by the lever study's own rules.
RESTARTS_SEEDS = tuple(range(6, 12))


def restarts_kept(three: dict, one: dict) -> tuple[bool, list[str]]:
    """Whether ours keeps three trainings per seed, averaged where they agree: ``three``
    (ours) and ``one`` (its first training alone) hold, per seed of :data:`RESTARTS_SEEDS`,
    ``critic`` and ``knees``; ``one`` also ``lone`` (the seed's trainings that agreed with no
    other). :func:`lever_kept`, the rule that kept the lever in the lever study."""
    return lever_kept(three, one)
