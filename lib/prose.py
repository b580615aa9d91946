"""Sentences of the method chapters computed from their measurements: the data, the
training curves, the diagnosis, the best hypothesis, missing joints, the mirror and the
latent space (the results chapter's are in :mod:`lib.report`). Each function takes what its
chapter measured and returns Markdown whose wording follows the numbers.
"""

from __future__ import annotations

from .report import TARGET_MIRROR_GAP, TARGET_MIRRORED, cost, signed, split_name


def diagnosis(splits: dict, depth_corr: dict, codes: dict, beta_corr: float, thesis: str,
              ours: str, flat: str) -> str:
    """The diagnosis chapter's conclusion from its measurements.

    splits: {label: {"image" | "depth": per-joint errors (J,) with the root first}};
    depth_corr: {label: mean per-joint depth correlation}; codes: {"mean code",
    "one sampled code": PA-MPJPE}; beta_corr: correlation over epochs between the KL weight
    and the depth correlation (NaN when beta is constant).
    """
    def mean(label, part):
        return float(splits[label][part][1:].mean())

    ti, td = mean(thesis, "image"), mean(thesis, "depth")
    fi, fd = mean(flat, "image"), mean(flat, "depth")
    oi, od = mean(ours, "image"), mean(ours, "depth")
    lines = [
        f"- Per joint, after scale alignment, {thesis} errs by {ti:.1f} mm in the image plane "
        f"and {td:.1f} mm in depth; {ours} by {oi:.1f} and {od:.1f} mm; the flat guess by "
        f"{fi:.1f} and {fd:.1f} mm.",
    ]
    gain, loss = fd - td, ti - fi
    if gain <= 0:
        lines.append(f"- In depth, {thesis} is {-gain:.1f} mm *worse* than predicting no depth "
                     "at all: it has not learnt depth.")
    else:
        lines.append(f"- {thesis} gains {gain:.1f} mm in depth over the flat guess"
                     + (f" but loses {loss:.1f} mm in the image plane, where the flat guess "
                        "copies the input exactly: its reprojection is not exact enough, so "
                        "the image-plane error eats the depth gain." if loss > 0 else "."))
    tc, oc = depth_corr[thesis], depth_corr[ours]
    lines.append(f"- The predicted depth of a joint follows the true depth with a mean "
                 f"correlation of {tc:.2f} for {thesis} and {oc:.2f} for {ours} "
                 f"({'higher' if oc > tc else 'not higher'} for ours).")
    m, s = codes["mean code"], codes["one sampled code"]
    lines.append(f"- Decoding one sampled latent code instead of the mean code gives "
                 f"{s:.1f} mm instead of {m:.1f} mm ({signed(100 * (s / m - 1), '%', 0)}): "
                 f"training "
                 f"optimises the {'noisier' if s > m else 'no worse'} sampled decoder.")
    if beta_corr == beta_corr:  # not NaN
        lines.append(f"- Over the epochs, the KL weight and the depth correlation correlate at "
                     f"{beta_corr:+.2f}: "
                     + ("the KL term works against depth." if beta_corr < -0.3 else
                        "the KL term helps depth." if beta_corr > 0.3 else
                        "no clear link between the KL cycle and depth."))
    else:
        lines.append("- The KL weight is constant over this profile's epochs, so its effect on "
                     "depth cannot be read here.")
    return "\n".join(lines)


def best_hypothesis(curves: dict, k: int = 10) -> str:
    """The best-hypothesis chapter's conclusion. ``curves``: {(split, label): {K: best-of-K
    PA-MPJPE, ..., "mean code": PA-MPJPE of the mean-code prediction}}."""
    lines = []
    for (split, label), c in curves.items():
        mean, one, best = c["mean code"], c[1], c[k]
        lines.append(
            f"- {label}, {split_name(split)}: the best of {k} samples errs by "
            f"{best:.1f} mm, {abs(100 * (best / mean - 1)):.0f}% "
            f"{'below' if best < mean else 'above'} the mean-code prediction ({mean:.1f} mm); "
            f"one random sample errs by {one:.1f} mm, "
            f"{'worse' if one > mean else 'no worse'} than the mean code.")
    gains = [100 * (1 - c[k] / c["mean code"]) for c in curves.values()]
    if max(gains) > 0:
        tail = ("The samples do cover poses nearer the truth than the one a user is given, "
                "but choosing among them needs the answer: without 3D, a user gets the "
                "mean-code numbers of the results chapter.")
    else:
        tail = ("Even the oracle's choice is no better than the single prediction: the "
                "samples do not cover poses nearer the truth.")
    lines.append(f"- Across these models and splits the oracle's choice among {k} samples "
                 f"changes the error by {signed(-max(gains), '%', 0)} to "
                 f"{signed(-min(gains), '%', 0)} against the single prediction. " + tail)
    return "\n".join(lines)


def missing_joints(tab: dict, base: str, trained: str) -> str:
    """The missing-joints chapter's conclusion. ``tab``: {(split, label): {number of missing
    joints: PA-MPJPE}}; ``base`` and ``trained``: the labels of the model trained on
    complete poses and of the same model trained with missing joints."""
    lines = []
    splits = list(dict.fromkeys(s for s, _ in tab))
    for split in splits:
        a, b = tab[split, base], tab[split, trained]
        lo, hi = min(a), max(a)
        name = split_name(split)
        lines.append(
            f"- {name}: with {hi} joints missing, {base} goes from {a[lo]:.1f} to {a[hi]:.1f} mm "
            f"({signed(100 * (a[hi] / a[lo] - 1), '%', 0)}), {trained} from {b[lo]:.1f} to "
            f"{b[hi]:.1f} mm "
            f"({signed(100 * (b[hi] / b[lo] - 1), '%', 0)}). Training with missing joints "
            f"{'lowers' if b[hi] < a[hi] else 'does not lower'} the error on such inputs "
            f"({signed(b[hi] - a[hi])}) and {cost(b[lo] - a[lo])} on complete ones.")
    return "\n".join(lines)


def mirror(rates: dict, thesis: str, aware: str, splits) -> str:
    """The mirror chapter's conclusion against its targets (at most ``TARGET_MIRRORED`` %
    mirrored, proper PA-MPJPE at most ``TARGET_MIRROR_GAP`` % above the reflection-allowed
    one, the reflection-allowed error no worse than the thesis's). ``rates``: {(label,
    split): {"mirrored (%)", "gap (%)", "PA-MPJPE refl. (mm)"}}."""
    lines = []
    for s in splits:
        t, o = rates[thesis, s], rates[aware, s]
        tm, om, tr, orf = (t["mirrored (%)"], o["mirrored (%)"], t["PA-MPJPE refl. (mm)"],
                           o["PA-MPJPE refl. (mm)"])
        met = lambda ok: "met" if ok else "not met"  # noqa: E731
        lines.append(
            f"- {split_name(s)}: mirrored poses {tm:.1f}% -> {om:.1f}% (target at most "
            f"{TARGET_MIRRORED:g}%: {met(om <= TARGET_MIRRORED)}); gap between proper and "
            f"reflection-allowed PA-MPJPE {t['gap (%)']:.1f}% -> {o['gap (%)']:.1f}% (target "
            f"at most {TARGET_MIRROR_GAP:g}%: {met(o['gap (%)'] <= TARGET_MIRROR_GAP)}); "
            f"reflection-allowed PA-MPJPE {tr:.1f} -> {orf:.1f} mm "
            f"({'not worse' if orf <= tr else 'worse'}).")
    return "\n".join(lines)


def training(label: str, tail: list, ours_tail: list, seconds: float, poses: int,
             thesis_poses: int) -> str:
    """The training chapter's conclusion: how much the validation error moves over the last
    epochs (the thesis's model against ours), the time per epoch, and the share of the
    thesis's training that the profile shows."""
    import statistics as st

    a, b = st.pstdev(tail), st.pstdev(ours_tail)
    return (f"Over its last {len(tail)} epochs the validation PA-MPJPE of {label} is "
            f"{st.fmean(tail):.1f} ± {a:.1f} mm, that of ours {st.fmean(ours_tail):.1f} ± "
            f"{b:.1f} mm: ours is {'steadier' if b < a else 'not steadier'} from epoch to "
            f"epoch (monitoring only; neither run was stopped or chosen by it). One epoch of "
            f"{label} took {seconds:.1f} s here; the profile shows the networks "
            f"{poses / 1e6:.1f} million poses, {100 * poses / thesis_poses:.0f}% of the "
            f"{thesis_poses / 1e6:.0f} million of the thesis's configuration.")


def data_summary(poses: dict, beyond: dict, reach: float) -> str:
    """The data chapter's conclusion: the split sizes, and the share of poses the decoder's
    bounded output (``reach``: its ``out_scale``) cannot reach (``beyond``: {split: %})."""
    sizes = ", ".join(f"{split_name(s)} {n:,}" for s, n in poses.items())
    worst = max(beyond, key=beyond.get)
    return (f"BNMD-17 holds {sum(poses.values()):,} 2D/3D pose pairs ({sizes}). At most "
            f"{beyond[worst]:.2f}% of a split's poses ({split_name(worst)}) have a "
            f"coordinate beyond the decoder's reach of {reach:g}, so the bounded output "
            f"{'costs next to nothing' if beyond[worst] < 1 else 'clips a noticeable share'}.")


def latent(label: str, scores: dict, k: int = 10) -> str:
    """The latent-space chapter's conclusion. ``scores``: {what: (k-NN accuracy in the
    latent means, in the 2D inputs, share of the most common class)}, percent, with
    neighbours from other takes only (:func:`lib.metrics.knn_accuracy`)."""
    parts = []
    for what, (z, x, chance) in scores.items():
        parts.append(f"{what} is recovered from a pose's {k} nearest latent means (of other "
                     f"takes) in {z:.0f}% of the test poses (from the {k} nearest 2D inputs: "
                     f"{x:.0f}%; always guessing the most common: {chance:.0f}%)")
    gain = all(z > x for z, x, _ in scores.values())
    return (f"In {label}'s latent space, " + "; ".join(parts) + ". The latent code "
            + ("groups poses by these labels more than the 2D input does." if gain else
               "does not group poses by these labels more than the 2D input already does: "
               "UMAP's clusters are mostly the input's."))
