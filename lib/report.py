"""Sentences computed from results: the book states no number or comparison by hand.

Each function takes the results it describes (a seed study, ``lib.study``) and returns
Markdown; the wording follows the numbers ("better" or "worse", "met" or "not met"), so a
sentence cannot disagree with the table beside it.
"""

from __future__ import annotations

SPLIT_NAMES = {"test_unseen_styles": "unseen styles", "test_unseen_motions": "unseen motions",
               "test": "the test split"}
# issue 12's targets for the unsupervised lifter, PA-MPJPE without reflections
TARGET_RATIO = 0.80  # at most this times the flat baseline
TARGET_STD = 2.0  # mm, standard deviation over seeds
TARGET_MIRRORED = 5.0  # percent of poses


def mean_std(entry: dict, digits: int = 1) -> str:
    """"52.3 ± 1.1" from a study entry {"mean", "std", "values"} (no ± for one seed)."""
    if len(entry["values"]) < 2:
        return f"{entry['mean']:.{digits}f}"
    return f"{entry['mean']:.{digits}f} ± {entry['std']:.{digits}f}"


def compare(model: dict, baseline: float, metric: str = "pa_mpjpe") -> tuple[float, str]:
    """(ratio of the model's mean error to the baseline's, "better" | "worse" | "as good")."""
    ratio = model[metric]["mean"] / baseline
    word = "better" if ratio < 1 else "worse" if ratio > 1 else "as good"
    return ratio, word


def targets(study: dict, model: str = "ours") -> list[dict]:
    """One row per (split, target): what was measured and whether the target is met."""
    rows = []
    n = len(study["seeds"])
    for split in study["splits"]:
        res = study["models"][model][split]
        flat = study["baselines"]["flat"][split]["pa_mpjpe"]
        ratio, _ = compare(res, flat)
        name = SPLIT_NAMES.get(split, split)
        rows.append({"split": name, "target": f"PA-MPJPE <= {TARGET_RATIO:.2f} x flat",
                     "measured": f"{mean_std(res['pa_mpjpe'])} mm = {ratio:.2f} x {flat:.1f}",
                     "met": ratio <= TARGET_RATIO})
        std = res["pa_mpjpe"]["std"]
        rows.append({"split": name, "target": f"std over seeds <= {TARGET_STD:g} mm",
                     "measured": f"{std:.1f} mm over {n} seed{'s' * (n > 1)}",
                     "met": n >= 3 and std <= TARGET_STD})
        mir = res["mirrored_rate"]["mean"]
        rows.append({"split": name, "target": f"mirrored poses <= {TARGET_MIRRORED:g}%",
                     "measured": f"{mir:.1f}%", "met": mir <= TARGET_MIRRORED})
    return rows


def summary(study: dict, model: str, label: str, reference: str | None = None,
            reference_label: str | None = None) -> str:
    """A paragraph: the model's error on each split against the flat baseline (and against
    a reference model when given), over the study's seeds."""
    n = len(study["seeds"])
    seeds = f"{n} seeds" if n > 1 else "one seed (no spread can be given)"
    parts = []
    for split in study["splits"]:
        res = study["models"][model][split]
        flat = study["baselines"]["flat"][split]["pa_mpjpe"]
        ratio, word = compare(res, flat)
        text = (f"on {SPLIT_NAMES.get(split, split)}, {label} reaches a PA-MPJPE of "
                f"{mean_std(res['pa_mpjpe'])} mm, {word} than the flat baseline's "
                f"{flat:.1f} mm (ratio {ratio:.2f})")
        if reference:
            ref = study["models"][reference][split]["pa_mpjpe"]["mean"]
            diff = res["pa_mpjpe"]["mean"] - ref
            text += (f" and {abs(diff):.1f} mm {'below' if diff < 0 else 'above'} "
                     f"{reference_label or reference} ({ref:.1f} mm)")
        parts.append(text)
    return f"Over {seeds}: " + "; ".join(parts) + "."
