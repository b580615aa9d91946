"""Evaluation of a trained run on a test split (DESIGN section 3, the thesis's protocol).

    python -m lib.evaluate --run DIR --split NAME [--k 1,5,10,20,50] [--missing 0,1,2] [--json]

One hypothesis = decode the mean latent code; add the root back at the origin; align to the
ground truth (Procrustes without reflections for the primary number, with reflections as
the author's scipy-based code did); millimetres. Best-of-K samples K latent codes per input
and keeps the one closest to the ground truth (an oracle). Missing joints zero 1 or 2 limb
joints of the input, as the missing-joint training does.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from . import choose
from . import data as D
from .diagnose import depth_correlation
from .geometry import apply_mask, center, missing_mask
from .metrics import best_of_k, pa_mpjpe, summarize
from .models import lift_all, predict
from .priors import backward_knee_rate
from .runs import SELECT_CRITIC_SEED, Run, RunError, load_run
from .skeleton import LIMB_JOINTS
from .splits import SPLITS, atomic_write, subset


@torch.no_grad()
def best_of_k_curve(lifter, norm, x, gt, ks=(1, 5, 10, 20, 50), seed: int = 0,
                    batch: int = 4096) -> dict:
    """{K: mean over poses of the smallest PA-MPJPE among K sampled hypotheses}."""
    gen = torch.Generator(x.device).manual_seed(seed)
    kmax = max(ks)
    best = {k: [] for k in ks}
    for i in range(0, len(x), batch):
        hyps = lifter.hypotheses(x[i:i + batch], kmax, generator=gen).float()  # (B, K, 48)
        hyps = norm.to_mm(hyps.flatten(0, 1)).unflatten(0, (len(hyps), kmax)).transpose(0, 1)
        g = gt[i:i + batch]
        for k in ks:
            best[k].append(best_of_k(hyps[:k], g, pa_mpjpe))
    return {k: float(torch.cat(v).mean()) for k, v in best.items()}


@torch.no_grad()
def missing_curve(lifter, norm, x, gt, counts=(0, 1, 2), seed: int = 0) -> dict:
    """{n: PA-MPJPE with n limb joints of every input zeroed}."""
    gen = torch.Generator(x.device).manual_seed(seed)
    out = {}
    for n in counts:
        mask = missing_mask(len(x), n, x.device, gen)
        out[n] = float(pa_mpjpe(predict(lifter, norm, apply_mask(x, mask)), gt).mean())
    return out


def predictions(run, split: str, size: int | None = None, device: str = "auto",
                flip_test: bool | None = None) -> dict:
    """The run's single-hypothesis predictions on a split: lifter, normaliser, split data,
    normalised inputs ``x``, root-relative ground truth ``gt`` and ``pred`` (mm tensors).
    ``flip_test``: as the run says (None), or forced on or off (``lib.runs.Run.load``)."""
    lifter, norm, cfg = load_run(run, device, flip_test)
    dev = next(lifter.parameters()).device
    s = subset(D.load(cfg, split), size)
    x = torch.as_tensor(norm.pose2d(s["pose2d"]), device=dev)
    gt = torch.as_tensor(center(s["pose3d"]), device=dev)
    return {"lifter": lifter, "norm": norm, "split": s, "x": x, "gt": gt,
            "pred": predict(lifter, norm, x)}


def evaluate_run(run, split: str, ks=(1, 5, 10, 20, 50), missing=(0, 1, 2),
                 size: int | None = None, bh_size: int | None = 5000, device: str = "auto",
                 flip_test: bool | None = None, selected: bool = True) -> dict:
    """All the numbers of one run on one split, as a JSON-ready dict (``flip_test`` and
    ``selected`` as in :meth:`lib.runs.Run.load`)."""
    lifter, norm, cfg = load_run(run, device, flip_test, selected)
    dev = next(lifter.parameters()).device
    s = subset(D.load(cfg, split), size)
    x = torch.as_tensor(norm.pose2d(s["pose2d"]), device=dev)
    gt = torch.as_tensor(center(s["pose3d"]), device=dev)
    pred = predict(lifter, norm, x)
    res = summarize(pred, gt, torch.as_tensor(s["action"], device=dev), list(s["action_names"]))
    res.update(run=str(run), mode=cfg["mode"], split=split, poses=len(x),
               flip_test=bool(getattr(lifter, "flip_test", False)),
               finished=Run(run).finished(),
               backward_knee_rate=100 * float(backward_knee_rate(pred[:, 1:])))
    if ks and getattr(lifter, "variational", False):
        idx = np.arange(len(x))
        if bh_size and bh_size < len(x):
            idx = np.sort(np.random.default_rng(1).choice(len(x), bh_size, replace=False))
        xs, gs = x[torch.as_tensor(idx, device=dev)], gt[torch.as_tensor(idx, device=dev)]
        res["best_of_k"] = best_of_k_curve(lifter, norm, xs, gs, ks)
        res["best_of_k_poses"] = len(xs)
    if missing:
        res["missing"] = missing_curve(lifter, norm, x, gt, missing)
    return res


def realism_test(run, n: int = 20000, steps: int = 800, seed: int = 0,
                 device: str = "auto", train: dict | None = None, axis: str = "up",
                 selected: bool = True) -> dict:
    """A 2D-only quality score of a trained lifter: can a fresh critic tell its novel views
    from real 2D poses? (a classifier two-sample test; no 3D ground truth involved).

    Training-split 2D poses are lifted, turned by a uniform random azimuth and projected; a
    new discriminator (never seen by the lifter) learns real against novel on 80% of them
    and is scored on the other 20% (:func:`critic_test`). ``accuracy`` near 50% means the
    novel views are indistinguishable from real poses, i.e. the 3D is plausible from every
    side; higher means the critic found a tell. This is the criterion used to choose between
    unsupervised variants. ``train`` replaces the run's training split.

    ``axis`` is what the poses turn about: ``"up"``, the world's vertical estimated from the
    lifted poses themselves (``geometry.up_direction``), or ``"camera"``, the camera's
    vertical, the test's first version: a view from behind then comes from below, since the
    rig's cameras look down, a tell that true 3D has too (:func:`critic_test` on true 3D
    scores it worse than a trained lifter). ``selected``: the weights the 2D test chose
    among the epochs (where it did), else the last epoch's.
    """
    lifter, norm, cfg = load_run(run, device, selected=selected)
    train = train if train is not None else D.load(cfg, "train")
    return lifter_realism(lifter, norm, train, n, steps, seed, axis)


def lifter_realism(lifter, norm, train: dict, n: int = 20000, steps: int = 800,
                   seed: int = 0, axis: str = "up") -> dict:
    """:func:`realism_test` of a lifter in memory: ``2 n`` poses of the split ``train``
    (chosen by ``seed``), half of them real, the other half lifted, against a critic of
    seed ``seed``."""
    dev = next(lifter.parameters()).device
    train = subset(train, 2 * n, seed=seed)
    n = len(train["pose2d"]) // 2
    x = torch.as_tensor(norm.pose2d(train["pose2d"]), device=dev)
    with torch.no_grad():
        pose3d = lift_all(lifter, x[n:2 * n])
    return critic_test(x[:n], pose3d, axis, steps, seed)


def validation(pred: torch.Tensor, gt: torch.Tensor) -> dict:
    """A training's validation columns from its lifts ``pred`` and the 3D ``gt`` (N, 17, 3):
    mean PA-MPJPE with and without reflections, the mean per-joint depth correlation, and a
    histogram of the per-pose errors (60 bins of 5 mm)."""
    err = pa_mpjpe(pred, gt)
    hist = torch.histc(err.clamp(max=299.0), bins=60, min=0, max=300)
    corr = depth_correlation(pred[:, 1:], gt[:, 1:])
    return {"val_pa_mpjpe": float(err.mean()), "val_depth_corr": float(corr.mean()),
            "val_pa_mpjpe_reflect": float(pa_mpjpe(pred, gt, allow_reflection=True).mean()),
            "val_hist": hist.int().tolist()}


def choose_epoch(run, train: dict, n: int = 20000, seed: int = SELECT_CRITIC_SEED) -> int:
    """Choose a run's model among the epochs' weights that training kept
    (``select_epochs``), from 2D alone: each one's realism test (:func:`lifter_realism`, a
    fresh critic telling its novel views of ``n`` training 2D poses from real ones) with
    critic seed ``seed``, other than the seed 0 the book reports, so that the reported score
    is not the one that chose; :func:`lib.choose.epoch` picks. Its weights are copied to
    ``selected.pt`` and the scores written to ``selection.json``. Returns its epoch."""
    run = Run(run)
    paths = {int(p.stem.split("-")[1]): p
             for p in sorted(run.path.glob("candidates/epoch-*.pt"))}
    if not paths:
        raise RunError(f"{run.path / 'candidates'}: no epoch weights to choose from")
    lifter, norm, _ = run.load(selected=False)
    dev = next(lifter.parameters()).device
    scores = {}
    for epoch, path in paths.items():
        lifter.load_state_dict(torch.load(path, map_location=dev))
        scores[epoch] = lifter_realism(lifter, norm, train, n, seed=seed)["critic_accuracy"]
    best = choose.epoch(scores)
    data = paths[best].read_bytes()
    atomic_write(run.selected_path, lambda f: f.write(data))
    atomic_write(run.selection_path, lambda f: f.write(json.dumps(
        {"critic_seed": seed, "critic_accuracy": scores, "chosen": best}).encode()))
    return best


def lift_agreement(lifters, norm, train: dict, n: int = 5000, seed: int = 0) -> dict:
    """How alike several lifters lift the same ``n`` 2D poses of the split ``train``, from 2D
    alone (mm): ``pairs[i][j]``, the distance between lifter i's and lifter j's lifts, and
    ``flat[i]``, between lifter i's lift and the same lift at constant depth (how much depth
    the lifter adds). The distance of two poses is their PA-MPJPE without reflections, the
    mean of aligning either onto the other (Procrustes scales the one it moves). No ground
    truth is read."""
    from .metrics import chunked

    x = torch.as_tensor(norm.pose2d(subset(train, n, seed=seed)["pose2d"]))
    lifts = []
    for lifter in lifters:
        with torch.no_grad():
            lifts.append(predict(lifter, norm, x.to(next(lifter.parameters()).device)).cpu())

    def dist(a, b):
        return round(float(chunked(pa_mpjpe, a, b).mean() + chunked(pa_mpjpe, b, a).mean()) / 2,
                     2)

    def flat(a):  # the depth of every joint set to the root's
        return torch.cat([a[..., :2], torch.zeros_like(a[..., 2:])], -1)

    return {"pairs": [[dist(a, b) if a is not b else 0.0 for b in lifts] for a in lifts],
            "flat": [dist(a, flat(a)) for a in lifts], "poses": len(x)}


def critic_test(real: torch.Tensor, pose3d: torch.Tensor, axis: str = "up",
                steps: int = 800, seed: int = 0) -> dict:
    """The realism test's critic on given poses: real network-space 2D (N, 32) against the
    novel views of network-space 3D (M, 48) turned about ``axis`` (see :func:`realism_test`).
    Given the true 3D of other poses, it says what the test scores a perfect lifter
    (:func:`realism_of_truth`)."""
    from .geometry import project, random_turn
    from .models import Discriminator

    dev = real.device
    gen = torch.Generator(dev).manual_seed(seed)
    with torch.no_grad():
        novel = project(random_turn(pose3d, axis, gen)[0]).flatten(1)
    data = torch.cat([real, novel])
    labels = torch.cat([torch.ones(len(real)), torch.zeros(len(novel))]).to(dev)
    order = torch.randperm(len(data), generator=gen, device=dev)
    cut = int(0.8 * len(data))
    fit, held = order[:cut], order[cut:]
    torch.manual_seed(seed)
    critic = Discriminator(width=256, blocks=1, dropout=0.0).to(dev)
    opt = torch.optim.Adam(critic.parameters(), lr=1e-3)
    for _ in range(steps):
        idx = fit[torch.randint(len(fit), (512,), generator=gen, device=dev)]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(
            critic(data[idx]).squeeze(1), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        logits = critic(data[held]).squeeze(1)
        bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels[held])
        acc = ((logits > 0).float() == labels[held]).float().mean()
    return {"critic_accuracy": 100 * float(acc), "critic_bce": float(bce)}


def realism_of_truth(train: dict, norm, n: int = 20000, seed: int = 0, axis: str = "up",
                     steps: int = 800) -> dict:
    """The realism test given the *true* 3D of training poses instead of a lifter's: what
    the test scores a perfect lifter, hence how low it can go and whether it penalises true
    3D. It reads 3D ground truth, so it checks the instrument and never judges a model.

    Half of ``2 n`` training poses give the real 2D, the other half their true 3D in network
    space, scaled so that its projection has the 2D inputs' mean size (as a lifter's would,
    which reprojects onto its input); then :func:`critic_test` as in :func:`realism_test`.
    """
    from .geometry import chain_length, project

    train = subset(train, 2 * n, seed=seed)
    n = len(train["pose2d"]) // 2
    x = torch.as_tensor(norm.pose2d(train["pose2d"]))
    y = torch.as_tensor(norm.pose3d(train["pose3d"]))[n:2 * n]

    def size(flat2d):  # mean 2D chain length of network-space poses, the root at the origin
        joints = flat2d.unflatten(-1, (16, 2))
        return chain_length(torch.cat([torch.zeros_like(joints[:, :1]), joints], 1)).mean()

    y = y * (size(x[n:2 * n]) / size(project(y).flatten(1)))
    return critic_test(x[:n], y, axis, steps, seed)


def trivial_baselines(train: dict, test: dict) -> dict:
    """The two reference points every lifter must beat, in the same metrics.

    - mean pose: the training split's mean root-relative 3D pose, whatever the input;
    - flat: the input 2D pose itself with a constant depth (x, y, 0), a scaled orthographic
      guess that is right in the image plane and knows nothing about depth.
    Both are Procrustes-aligned like the models, which makes them as good as they can be.
    """
    gt = torch.as_tensor(center(test["pose3d"]))
    mean = torch.as_tensor(center(train["pose3d"]).mean(0))
    flat2d = torch.as_tensor(center(test["pose2d"]))
    flat = torch.cat([flat2d, torch.zeros_like(flat2d[..., :1])], -1)
    groups = torch.as_tensor(test["action"])
    names = list(test["action_names"])
    return {"mean_pose": summarize(mean.expand_as(gt).clone(), gt, groups, names),
            "flat": summarize(flat, gt, groups, names)}


def depth_spread(split: dict) -> float:
    """How much depth a split holds for a lifter to recover: the standard deviation (mm) of
    its joints' depth along the camera axis, the root's subtracted (the flat baseline's
    whole depth error before alignment)."""
    return float(center(split["pose3d"])[..., 2].std())


def baselines_for(cfg: dict, splits) -> dict:
    """{"flat" | "mean_pose": {split: summary without per-group detail}} for a config's data."""
    train = D.load(cfg, "train")
    out = {"flat": {}, "mean_pose": {}}
    for split in splits:
        res = trivial_baselines(train, D.load(cfg, split))
        for name in out:
            out[name][split] = {k: v for k, v in res[name].items() if k != "per_group"}
    return out


def int_list(text: str, name: str, low: int, high: int | None = None) -> tuple[int, ...]:
    """"1,5,10" -> (1, 5, 10); anything else, or a value outside [low, high], is an error."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip() != "")
    except ValueError:
        raise ValueError(f"{name} takes comma-separated whole numbers, got {text!r}") from None
    bad = [v for v in values if v < low or (high is not None and v > high)]
    if bad:
        span = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise ValueError(f"{name}: {bad} out of range; use numbers {span}")
    return values


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m lib.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--run", required=True, help="run folder written by python -m lib.train")
    p.add_argument("--split", default="test_unseen_styles",
                   help=f"one of {SPLITS[1:]} (BNMD-17) or test (Human3.6M)")
    p.add_argument("--k", default="1,5,10,20,50", help="hypothesis counts for best-of-K")
    p.add_argument("--missing", default="0,1,2", help="numbers of missing limb joints")
    p.add_argument("--size", type=int, help="evaluate a fixed random subset of this many poses")
    p.add_argument("--bh-size", type=int, default=5000,
                   help="poses used for best-of-K (0 = all; K=50 on a CPU is slow)")
    p.add_argument("--device", default="auto")
    p.add_argument("--training", action="store_true",
                   help="score the folder's own training, not the model made of its restarts")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")
    args = p.parse_args(argv)
    try:
        ks = int_list(args.k, "--k", low=1)
        missing = int_list(args.missing, "--missing", low=0, high=len(LIMB_JOINTS))
        if args.size is not None and args.size < 1:
            raise ValueError(f"--size must be a positive number of poses, got {args.size}")
        run = Path(args.run) if args.training else Run(args.run).chosen()
        if run != Path(args.run):  # the first of several restarts (restarts.json)
            print(f"{args.run}: the model of its restarts is {run}; scoring that "
                  f"(--training scores this folder's own)", file=sys.stderr)
        res = evaluate_run(run, args.split, ks, missing, args.size, args.bh_size or None,
                           args.device)
    except (FileNotFoundError, ValueError, RunError) as e:  # DataError and bad arguments
        sys.exit(f"error: {e}")
    if not res["finished"]:
        print(f"warning: {run}: the run is not finished (no 'done' marker); these are "
              f"the numbers of its last checkpoint", file=sys.stderr)
    if args.json:
        print(json.dumps(res))
        return
    print(f"{res['run']} on {res['split']} ({res['poses']} poses)")
    for key in ("pa_mpjpe", "pa_mpjpe_reflect", "n_mpjpe", "mirrored_rate", "pck150", "auc",
                "backward_knee_rate"):
        print(f"  {key:20s} {res[key]:8.1f}")
    for key in ("best_of_k", "missing"):
        if key in res:
            print(f"  {key:20s} " + "  ".join(f"{k}: {v:.1f}" for k, v in res[key].items()))


if __name__ == "__main__":
    main()
