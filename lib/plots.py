"""Figures used by the chapters: skeletons in 3D and 2D, training curves, histograms."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import matplotlib.text as mtext
import numpy as np

from .skeleton import BONE_SIDE, BONES

SIDE_COLOURS = {"L": "tab:blue", "R": "tab:red", "C": "0.3"}


def _np(x):
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def skeleton_2d(ax, pose2d, colour=None, invert_y: bool = True, alpha: float = 1.0,
                lw: float = 2.0, label: str | None = None):
    """Draw a (17, 2) pose; left limbs blue, right red, unless ``colour`` is given."""
    p = _np(pose2d)
    for (a, b), side in zip(BONES, BONE_SIDE, strict=True):
        ax.plot(p[[a, b], 0], p[[a, b], 1], color=colour or SIDE_COLOURS[side], lw=lw,
                alpha=alpha, label=label if a == 0 and b == 1 else None)
    ax.set_aspect("equal")
    if invert_y and not ax.yaxis_inverted():
        ax.invert_yaxis()
    return ax


def skeleton_3d(ax, pose3d, colour=None, alpha: float = 1.0, lw: float = 2.0,
                label: str | None = None, radius: float | None = None):
    """Draw a (17, 3) camera-frame pose (x right, y down, z depth) upright: the plot's
    vertical axis is -y and its depth axis is z."""
    p = _np(pose3d)
    p = p - p[:1]  # one pose (J, 3): centre it on its root
    xs, ys, zs = p[:, 0], p[:, 2], -p[:, 1]
    for (a, b), side in zip(BONES, BONE_SIDE, strict=True):
        ax.plot(xs[[a, b]], ys[[a, b]], zs[[a, b]], color=colour or SIDE_COLOURS[side], lw=lw,
                alpha=alpha, label=label if a == 0 and b == 1 else None)
    r = radius or 1.1 * np.abs(p).max()
    ax.set_xlim(-r, r)
    ax.set_ylim(-r, r)
    ax.set_zlim(-r, r)
    ax.set_xlabel("x")
    ax.set_ylabel("depth z")
    ax.set_zlabel("up")
    ax.set_box_aspect((1, 1, 1))
    return ax


def overlay_3d(ax, gt, pred, elev: float = 10, azim: float = -70):
    """Ground truth (black) and a prediction (coloured) in one 3D panel."""
    skeleton_3d(ax, gt, colour="k", alpha=0.5, label="ground truth")
    skeleton_3d(ax, pred, label="prediction")
    ax.view_init(elev=elev, azim=azim)
    return ax


# what the history's columns are called in a legend (lib.train.Trainer.stats and
# lib.evaluate.validation)
CURVE_NAMES = {
    "loss": "total lifter loss", "proj": "reprojection loss", "kld": "KL divergence",
    "adv": "lifter's adversarial loss", "d_loss": "discriminator loss",
    "d_real": "D(x): real 2D poses", "d_fake": "D(G(z)): novel views",
    "d_acc": "discriminator accuracy", "hinge": "knee-hinge loss", "sym": "symmetry loss",
    "cycle": "cycle loss", "beta": "KL weight (beta)", "lr": "learning rate",
    "val_pa_mpjpe": "PA-MPJPE", "val_pa_mpjpe_reflect": "PA-MPJPE, reflections allowed",
    "val_depth_corr": "depth correlation",
}


def animate_3d(path, panels: dict, fps: float = 30, reference=None, elev: float = 10,
               azim: float = 0, dpi: int = 60):
    """A gif of (T, 17, 3) pose sequences side by side, one 3D panel each (title: its key),
    one scale for all; ``reference`` (T, 17, 3), if given, drawn faint in every panel.
    Drawn by Agg on a figure of its own (a notebook's pyplot is left alone)."""
    from matplotlib import animation
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    seqs = {k: _np(v) for k, v in panels.items()}
    reference = None if reference is None else _np(reference)
    shown = [*seqs.values(), *([] if reference is None else [reference])]
    frames = {len(v) for v in shown}
    if len(frames) != 1:
        raise ValueError(f"every sequence needs the same number of frames, got {sorted(frames)}")
    fig = Figure(figsize=(3.2 * len(seqs), 3.2))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0, right=1, bottom=0.04, top=0.92, wspace=0)
    axes = [fig.add_subplot(1, len(seqs), j + 1, projection="3d") for j in range(len(seqs))]
    radius = 1.1 * max(float(np.abs(v - v[:, :1]).max()) for v in shown)

    def draw(t):
        for ax, (title, seq) in zip(axes, seqs.items(), strict=True):
            ax.cla()
            if reference is not None:
                skeleton_3d(ax, reference[t], colour="0.6", alpha=0.5, radius=radius)
            skeleton_3d(ax, seq[t], radius=radius)
            ax.view_init(elev=elev, azim=azim)
            ax.set_box_aspect((1, 1, 1), zoom=1.3)
            ax.set_title(title, fontsize=10)
            ax.tick_params(labelsize=7)

    anim = animation.FuncAnimation(fig, draw, frames=range(frames.pop()))
    anim.save(path, writer=animation.PillowWriter(fps=fps), dpi=dpi)
    return path


def curves(history: list[dict], keys, ax=None, logy: bool = False, title: str | None = None,
           ylabel: str | None = None, label: str | None = None):
    """Plot history columns against the epoch (rows lacking a key are skipped), each named
    in words (:data:`CURVE_NAMES`, prefixed by ``label`` when given)."""
    ax = ax or plt.gca()
    for key in keys:
        rows = [r for r in history if r.get(key) is not None]
        name = CURVE_NAMES.get(key, key)
        ax.plot([r["epoch"] for r in rows], [r[key] for r in rows],
                label=f"{label}: {name}" if label else name)
    ax.set_xlabel("epoch")
    if ylabel:
        ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend()
    return ax


def histogram_over_epochs(history: list[dict], ax=None, bins_mm: float = 5.0):
    """Image of the per-sample PA-MPJPE histogram (``val_hist``) at every validated epoch."""
    ax = ax or plt.gca()
    rows = [r for r in history if r.get("val_hist") is not None]
    h = np.array([r["val_hist"] for r in rows], dtype=float)
    h /= h.sum(1, keepdims=True)
    epochs = [r["epoch"] for r in rows]
    im = ax.imshow(h.T, origin="lower", aspect="auto", cmap="viridis",
                   extent=(epochs[0] - 0.5, epochs[-1] + 0.5, 0, bins_mm * h.shape[1]))
    ax.figure.colorbar(im, ax=ax, label="fraction of poses")
    ax.set_xlabel("epoch")
    ax.set_ylabel("per-sample PA-MPJPE (mm)")
    return ax


def headline_figure(study: dict, models, names: dict[str, str], references=("supervised",),
                    ax=None):
    """PA-MPJPE per test split of each of ``models`` (its seeds as dots, their mean ± std as
    a bar), the flat baseline (dashed) and the ``references`` (dotted) as lines across each
    split's group."""
    from .report import split_name

    ax = ax or plt.gca()
    splits = study["splits"]
    width = 0.8 / max(len(models), 1)
    for k, m in enumerate(models):
        xs = np.arange(len(splits)) + (k - (len(models) - 1) / 2) * width
        means = [study["models"][m][s]["pa_mpjpe"]["mean"] for s in splits]
        stds = [study["models"][m][s]["pa_mpjpe"]["std"] for s in splits]
        bars = ax.bar(xs, means, width * 0.9, yerr=stds, capsize=4, label=names[m], alpha=0.8)
        for x, s in zip(xs, splits, strict=True):
            vals = study["models"][m][s]["pa_mpjpe"]["values"]
            ax.plot([x] * len(vals), vals, "o", color="k", ms=3, zorder=3)
        bars.set_label(names[m])
    for i, s in enumerate(splits):
        span = (i - 0.45, i + 0.45)
        ax.plot(span, [study["baselines"]["flat"][s]["pa_mpjpe"]] * 2, "k--", lw=1.5,
                label="flat (input 2D at constant depth)" if i == 0 else None)
        for r in references:
            ax.plot(span, [study["models"][r][s]["pa_mpjpe"]["mean"]] * 2, ":", color="0.3",
                    lw=2, label=f"{names[r]} (3D labels)" if i == 0 else None)
    ax.set_xticks(range(len(splits)), [split_name(s) for s in splits])
    ax.set_ylabel("PA-MPJPE (mm), lower is better")
    ax.legend(loc="lower right", fontsize=9)
    return ax


def detector_figure(protocol: dict, models, names: dict[str, str], axes):
    """One panel per test split (``axes``): PA-MPJPE against the 2D noise (% of the pose's
    height) of each of ``models`` (mean over seeds, the spread as a band) and of the flat
    baseline on the same input (dashed); hollow markers at 2% with one limb joint missing
    too."""
    from .report import split_name

    levels = [(k, v[0]) for k, v in protocol["perturbations"].items() if v[1] == 0]
    xs = [100 * share for _, share in levels]
    for ax, split in zip(axes, protocol["flat"], strict=True):
        for m in models:
            err = protocol["models"][m][split]
            mean = np.array([err[k]["mean"] for k, _ in levels])
            std = np.array([err[k]["std"] for k, _ in levels])
            line, = ax.plot(xs, mean, "o-", label=names[m])
            ax.fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
            ax.plot([2], [err["noise2+miss1"]["mean"]], "o", mfc="none", ms=8,
                    color=line.get_color())
        ax.plot(xs, [protocol["flat"][split][k] for k, _ in levels], "k--", label="flat")
        ax.set_title(split_name(split))
        ax.set_xlabel("2D noise (% of height)")
        ax.set_xticks(xs)
    axes[0].set_ylabel("PA-MPJPE (mm)")
    axes[0].legend(fontsize=9)
    return axes


# The book's text column is about 700 px wide (7.3 in at 96 dpi); a wider figure is scaled
# down to it, and its text with it.
PAGE_WIDTH_IN = 7.3
MIN_PT = 9.0


def legible(fig, min_pt: float = MIN_PT, page_in: float = PAGE_WIDTH_IN):
    """Enlarge the text of ``fig`` so that, once the page scales the figure to its text
    column, no label, tick, title or legend is smaller than ``min_pt`` points; then lay the
    figure out again."""
    need = min_pt * max(1.0, fig.get_figwidth() / page_in)
    for ax in fig.axes:
        ax.tick_params(axis="both", which="both", labelsize=need)
        if hasattr(ax, "zaxis"):
            ax.tick_params(axis="z", labelsize=need)
    for text in fig.findobj(lambda o: isinstance(o, mtext.Text)):
        if text.get_text() and text.get_fontsize() < need:
            text.set_fontsize(need)
    if fig.get_layout_engine() is None:
        with warnings.catch_warnings():  # a layout that cannot be improved stays as it is
            warnings.simplefilter("ignore", UserWarning)
            fig.tight_layout()
    return fig


def legible_figures() -> None:
    """In a notebook: pass every figure through :func:`legible` before it is shown."""
    from IPython import get_ipython

    ip = get_ipython()
    if ip is None:
        return

    def before_display():
        for num in plt.get_fignums():
            legible(plt.figure(num))

    callbacks = ip.events.callbacks["post_execute"]
    if before_display.__qualname__ not in [getattr(c, "__qualname__", "") for c in callbacks]:
        callbacks.insert(0, before_display)  # before the inline backend shows the figures
