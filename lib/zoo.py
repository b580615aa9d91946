"""The one table of models: every model the book trains or evaluates, and the levers tried.

A row names a model, the model it is made from (``parent``) and what it changes
(``overrides``, on top of the parent's, or of the profile for a row without a parent),
its label in tables, its role in the book, how many seeds the results chapter gives it,
and, for a model that is another model's runs evaluated otherwise (a key of
:data:`lib.config.RUNTIME_KEYS`), whose runs it evaluates. Everything else (the results
chapter's rows and ablation, the build's trainings, the studies) is a query on the table.

**Add a model**: one :class:`Model` row in :data:`TABLE` (see README, "Add a model").

"Ours" is a deterministic lifter that predicts depth only (x, y come from the input, so
it reprojects exactly), judged by the discriminator on random novel views, made
consistent across views by lifting each novel view again (Chen et al. 2019), with an EMA
of its weights and a cosine learning-rate decay. Knees bend forwards: a hinge prior in
training keeps every pose's depth sign anatomical (the losses cannot tell a pose from its
depth mirror), and after training the sign whose knees bend forwards on training 2D poses
is kept (:meth:`lib.runs.Run.orient`). The discriminator sees its instance noise on the
novel views as on the real poses, so that the noise itself is no tell. Half of every
training batch is the same mocap re-played on a body of random proportions
(:data:`lib.bodies.RANDOM_RANGES`), so that a body's width in 2D is no cue to its
orientation; the lifter still sees 2D only (BNMD-17 only, whose cameras re-project the new
bodies: on Human3.6M ours trains without it). Each prediction is the mean of the lift and
the mirrored lift of the mirrored input (``flip_test``). For the first two epochs novel
views turn about the camera's y axis (``up_warmup``: the lifted world starts upright), then
about the world's vertical that the upright start's last epoch found in its lifted poses
(:func:`lib.geometry.up_direction`), held fixed (``up_freeze``: the vertical study, below,
replaced one estimated again on every batch, which fed on the lifter's own output). Ours is
trained three times per seed (seeds s, s + 100, s + 200) and predicts with the mean of the
trainings whose lifts of training 2D poses agree (:func:`lib.choose.agreeing`), from the
last epoch's averaged weights. Its training 2D has a detector's noise (``input_noise``: up to
3% of each pose's height, for the lifter and the discriminator's real poses alike). Nothing
3D chooses.

The lever study (``lib.levers``, rows of role "lever") removed two levers of the
ours before it (``ours_v1``), because the 2D-only rules of :func:`lib.choose.lever_kept`
found no need for them: the realism test's choice of an epoch among the last six
(``select_epochs``) and spare trainings for one that agrees with no other
(``spare_restarts``); and it adopted one, training on 2D with a detector's noise
(``ours_noisy``), which the same rules did not find worse.

The vertical study (``lib.levers --vertical``, rows ``ours_v2``) trained ours as it was then
(``OURS_V2``: the vertical estimated on every batch after the upright start) and ours with
that vertical held fixed over six seeds, three trainings each; the rule of
:func:`lib.choose.vertical_kept`, written before the runs, dropped the per-batch vertical:
one of its trainings agreed with no other, none of the frozen one's did.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ROLES = ("main", "baseline", "ablation", "tried", "lever", "base")


@dataclass(frozen=True)
class Model:
    """One row of the table. ``seeds``: "all" (the results chapter's seed study) or the
    most seeds it gets there; ``evaluates``: the model whose runs it evaluates (no training
    of its own); ``own_checks``: such a model's 2D-only checks are its own (another run
    folder than its model's); ``both_axes``: its realism test also turns about the camera's
    vertical; ``lever``: for an ablation row, what its parent adds to it; ``short``: its name
    in a compact table or a sentence ("ours", "thesis VAE-GAN"; the label when empty)."""

    name: str
    label: str
    role: str
    overrides: dict = field(default_factory=dict)
    parent: str | None = None
    seeds: str | int = 1
    evaluates: str | None = None
    own_checks: bool = False
    both_axes: bool = False
    lever: str = ""
    short: str = ""


# ours before the vertical study: the vertical estimated on every batch after the upright start
OURS_V2 = {"mode": "det_gan", "depth_only": True, "lambda_cycle": 0.01, "ema": 0.999,
           "lr_schedule": "cosine", "orient": True, "lambda_hinge": 1.0, "noise_on": "both",
           "body_augment": 0.5, "flip_test": True, "view_axis": "up", "up_warmup": 2,
           "restarts": 3, "input_noise": 0.03}
# ours: the vertical the upright start found, held fixed (the vertical study)
OURS = {**OURS_V2, "up_freeze": True}
# ours before the lever study: the 2D test's choice of an epoch and spare trainings, and
# clean 2D in training
OURS_V1 = {**{k: v for k, v in OURS_V2.items() if k != "input_noise"}, "select_epochs": 6,
           "spare_restarts": 2}

TABLE = (
    Model("vae_gan", "VAE-GAN (thesis)", "baseline", seeds="all",
          short="thesis VAE-GAN"),
    Model("vae", "VAE, no discriminator", "baseline", {"mode": "vae"},
          short="VAE"),
    Model("det_gan", "Deterministic lifter + discriminator", "baseline", {"mode": "det_gan"},
          short="deterministic GAN"),
    Model("supervised", "Supervised lifter (3D labels)", "baseline", {"mode": "supervised"},
          seeds="all",
          short="supervised"),
    Model("vae_gan_pmiss", "VAE-GAN trained with missing joints", "baseline",
          {"p_miss": 0.5},
          short="VAE-GAN, missing joints"),
    Model("vae_gan_mirror", "VAE-GAN + knee-hinge prior (mirror-aware)", "baseline",
          {"lambda_hinge": 1.0},
          short="VAE-GAN + knee hinge"),
    Model("ours", "Ours (depth lifter + cycle + knee hinge + noise on both + other bodies + "
                  "world vertical from an upright start + a detector's noise in training + "
                  "test-time flip + agreeing restarts averaged)", "main",
          OURS, seeds="all", both_axes=True,
          short="ours"),
    # the ablation of ours, one lever at a time, each row its parent without one lever
    Model("ours_one", "Ours from one training per seed (no restarts averaged)", "ablation",
          {"restarts": 1}, parent="ours", seeds="all", evaluates="ours", own_checks=True,
          both_axes=True,
          lever="three trainings per seed, averaged where they agree (then ours)",
          short="ours, one training"),
    Model("ours_noflip", "Ours without the test-time flip", "ablation", {"flip_test": False},
          parent="ours", seeds="all", evaluates="ours",
          lever="the test-time flip, on ours' own runs",
          short="ours, no flip"),
    Model("ours_clean", "Ours from one training, on clean 2D (no detector's noise in "
                        "training)", "ablation", {"input_noise": 0.0}, parent="ours_one",
          lever="then a detector's noise in training (up to 3% of the pose's height)",
          short="ours, clean 2D"),
    Model("ours_nowarm", "Ours from one training on clean 2D, without the upright start "
                         "(world vertical estimated on every batch from the first epoch)",
          "ablation", {"up_warmup": 0, "up_freeze": False}, parent="ours_clean",
          lever="then turning them about the camera's vertical for the first two epochs "
                "(the upright start) and about the vertical it found, held fixed, after them",
          short="ours, no upright start"),
    Model("ours_camera", "Ours without the world vertical (views about the camera's)",
          "ablation", {"view_axis": "camera"}, parent="ours_nowarm", both_axes=True,
          lever="then turning the novel views about the world's vertical",
          short="ours, camera's vertical"),
    Model("ours_noise", "Ours without the world vertical or other bodies", "ablation",
          {"body_augment": 0.0}, parent="ours_camera", lever="then adding the other bodies",
          short="ours, no other bodies"),
    Model("ours_hinge", "Ours without the world vertical, other bodies or noise on novel "
                        "views", "ablation", {"noise_on": "real"}, parent="ours_noise",
          lever="then adding the instance noise to the novel views",
          short="ours, no view noise"),
    Model("ours_base", "Ours without the world vertical, other bodies, noise on novel views "
                       "or knee hinge", "ablation", {"lambda_hinge": 0.0},
          parent="ours_hinge", lever="adding the knee-hinge prior",
          short="ours, no knee hinge"),
    # Levers tried and not kept, because the 2D-only realism test (lib.study) did not score
    # them better than the ours they were added to (by more than its critic-seed noise);
    # not part of the book (method chapter), a study trains them, e.g.
    #     python -m lib.study --params default --models ours_one ours_r1 --seeds 2
    Model("ours_sym0.1", "Ours without the world vertical + bone-symmetry prior (weight 0.1)",
          "tried", {"lambda_sym": 0.1}, parent="ours_camera"),
    Model("ours_sym1", "Ours without the world vertical + bone-symmetry prior (weight 1)",
          "tried", {"lambda_sym": 1.0}, parent="ours_camera"),
    Model("ours_tilt", "Ours + downward-tilt prior", "tried", {"lambda_tilt": 1.0},
          parent="ours_nowarm"),
    Model("ours_upema", "Ours + running vertical (momentum 0.99)", "tried",
          {"up_momentum": 0.99}, parent="ours_nowarm"),
    Model("ours_noise2", "Ours with twice the instance noise (0.01)", "tried",
          {"real_noise": 0.01}, parent="ours_nowarm"),
    Model("ours_clamp", "Ours with the vertical's tilt held in 0-30 degrees", "tried",
          {"up_tilt_range": [0.0, 30.0]}, parent="ours_nowarm"),
    Model("ours_r1", "Ours + R1 gradient penalty of the discriminator (weight 0.001)", "tried",
          {"lambda_r1": 1e-3}, parent="ours_nowarm"),
    # The lever study (python -m lib.levers) of ours as it was before it (ours_v1):
    # each doubtful lever removed alone and all four together, judged by the 2D-only rules of
    # lib.choose.lever_kept, written before these were trained
    Model("ours_v1", "Ours before the lever study (+ 2D-test epoch among the last six, with "
                     "spares)", "lever", OURS_V1, seeds="all", both_axes=True,
          short="ours before the lever study"),
    Model("ours_v1_one", "Ours before the lever study, from one training per seed", "lever",
          {"restarts": 1}, parent="ours_v1", seeds="all", evaluates="ours_v1",
          own_checks=True, both_axes=True,
          lever="three trainings per seed, averaged where they agree"),
    Model("ours_v1_last", "Ours before the lever study, one training, its last epoch's "
                          "weights", "lever", {"use_selection": False}, parent="ours_v1_one",
          seeds="all", evaluates="ours_v1",
          lever="the 2D test's choice of an epoch among the last six"),
    Model("ours_frozen", "Ours before the lever study, the vertical frozen after the upright "
                         "start", "lever", {"up_freeze": True}, parent="ours_v1", seeds="all",
          both_axes=True,
          lever="a vertical estimated on every batch after the upright start, rather than "
                "the upright start's, held fixed",
          short="ours, frozen vertical"),
    Model("ours_simple", "Ours before the lever study with every doubtful lever removed: the "
                         "vertical frozen after the upright start, one training per seed, "
                         "its last epoch's weights", "lever",
          {"restarts": 1, "use_selection": False}, parent="ours_frozen", seeds="all",
          evaluates="ours_frozen", own_checks=True,
          lever="all four doubtful levers",
          short="ours, simple"),
    # the vertical study (python -m lib.levers --vertical): ours as it was (ours_v2), its
    # vertical estimated on every batch, against ours with it frozen after the upright start
    # (ours now), judged by the rule of lib.choose.vertical_kept, written before the runs
    Model("ours_v2", "Ours before the vertical study (the vertical estimated on every batch "
                     "after the upright start)", "lever", OURS_V2, seeds="all", both_axes=True,
          lever="a vertical estimated on every batch, rather than the upright start's held "
                "fixed",
          short="ours before the vertical study"),
    Model("ours_v2_one", "Ours before the vertical study, from one training per seed", "lever",
          {"restarts": 1}, parent="ours_v2", seeds="all", evaluates="ours_v2",
          own_checks=True, both_axes=True,
          short="ours before the vertical study, one training"),
    # a lever tried for adding (real keypoints), its strength fixed before any run (a good
    # detector's error, 3% of the height, at most); adopted unless the same 2D rules find it
    # worse than ours without it
    Model("ours_noisy", "Ours before the lever study, one training, on 2D with a detector's "
                        "noise (up to 3% of the height)", "lever", {"input_noise": 0.03},
          parent="ours_v1_one", seeds="all", both_axes=True,
          lever="2D noise as a detector's in training (up to 3% of the pose's height)",
          short="ours, noisy 2D"),
)
MODELS = {m.name: m for m in TABLE}

# What the selection study compared when ours' first version was chosen (lib.study
# --select), each on top of the profile with a short budget: only their ranking by the
# 2D-only test matters. The winner, "depth+cycle0.01", is ours_base.
CANDIDATES = {
    "det_gan": {"mode": "det_gan"},
    "depth": {"mode": "det_gan", "depth_only": True},
    "depth+cycle0.01": "ours_base",
    "depth+cycle0.1": ("ours_base", {"lambda_cycle": 0.1}),
    "depth+cycle0.01+disc_no_dropout": ("ours_base", {"disc_dropout": 0.0}),
}


def get(name: str) -> Model:
    """The row of ``name``; an unknown name is a KeyError that lists the known ones."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    return MODELS[name]


def overrides(name: str) -> dict:
    """The parameters ``name`` sets on top of the profile: its parent's, then its own."""
    m = get(name)
    return {**(overrides(m.parent) if m.parent else {}), **m.overrides}


def candidate_overrides(name: str) -> dict:
    """The parameters of selection candidate ``name`` (:data:`CANDIDATES`)."""
    spec = CANDIDATES[name]
    if isinstance(spec, str):
        return overrides(spec)
    if isinstance(spec, tuple):
        return {**overrides(spec[0]), **spec[1]}
    return dict(spec)


def trained(name: str) -> str:
    """The model whose runs ``name`` is: itself, or the model it evaluates."""
    return get(name).evaluates or name


def names(*roles: str) -> list[str]:
    """The models of these roles (all but the parent-only rows when none), table order."""
    return [m.name for m in TABLE if m.role in (roles or ROLES[:-1])]


def book_models() -> list[str]:
    """Every model a chapter draws on: main, baselines and the ablation."""
    return names("main", "baseline", "ablation")


def seed_models() -> list[str]:
    """The models the results chapter compares over all its seeds, ours first."""
    return sorted((m for m in book_models() if get(m).seeds == "all" and not get(m).evaluates),
                  key=lambda m: get(m).role != "main")


def ablation() -> list[str]:
    """The ablation rows of ours, table order (each is its parent without one lever)."""
    return names("ablation")


def ablation_steps() -> list[tuple[str, str, str]]:
    """(with the lever, without it, the lever) for every ablation row, from the first
    version of ours up: the results chapter's sentences, in the order the levers came."""
    return [(get(m).parent, m, get(m).lever) for m in reversed(ablation())]


def variants(of: str | None = None) -> list[str]:
    """The models that evaluate another model's runs (of ``of`` only, when given)."""
    return [m.name for m in TABLE if m.evaluates and (of is None or m.evaluates == of)]


def one_training(model: str) -> str | None:
    """The variant of ``model`` that is its first training alone (its parent, with
    ``restarts`` 1 and nothing else changed), or None."""
    return next((v for v in variants(of=model)
                 if get(v).parent == model and get(v).overrides == {"restarts": 1}), None)


def headline_models() -> list[str]:
    """The results chapter's headline rows: the seed models, each followed by its first
    training alone where it trains several (ours at the compute of one training)."""
    return [m for s in seed_models() for m in (s, one_training(s)) if m]


def labels(models=None) -> dict[str, str]:
    return {m: get(m).label for m in (models if models is not None else MODELS)}


def shorts(models=None) -> dict[str, str]:
    """Model -> its short name (:attr:`Model.short`, else its label)."""
    return {m: get(m).short or get(m).label for m in (models if models is not None else MODELS)}


def legend(models) -> str:
    """A Markdown list: each model's short name and what it is (its label)."""
    return "\n".join(f"- **{short}**: {get(m).label}" for m, short in shorts(models).items())


def seed_plan(seeds: int) -> dict[str, int]:
    """How many seeds each book model gets in the results chapter when the seed models get
    ``seeds``: a row's own cap, a variant those of the model it evaluates."""
    plan = {m: seeds if get(m).seeds == "all" else min(seeds, get(m).seeds)
            for m in book_models()}
    return {m: plan[trained(m)] for m in plan}
