"""In-filling missing 2D joints from the visible ones, learned from the run's 2D alone.

A model that was not trained with missing joints needs all 17. A frame whose pelvis and
scale chain (head, neck, thorax) are seen and which misses at most :data:`MAX_INFILLED`
other joints is completed here and then lifted as usual (``lib.lift``).

The model is linear-Gaussian: probabilistic PCA (Tipping and Bishop, 1999) of the training
split's normalised 2D poses, the 32 numbers the lifter reads (16 joints x 2, root removed,
each pose scaled by its own head-to-pelvis length as ``lib.lift`` scales it). Its
covariance is the top ``k`` components plus an isotropic rest (the mean of the discarded
eigenvalues), and a missing coordinate becomes its conditional mean given the visible ones,
mu_m + C_mo C_oo^-1 (x_o - mu_o). Why this: it is exact Gaussian conditioning (no iterative
fit, one solve per pattern of missing joints), it uses the correlations of the whole body,
and the isotropic rest is the one regulariser: with ``k`` = 32 it is the full Gaussian, with
a small ``k`` it is least squares on the top components with a ridge sigma^2. ``k`` is
chosen from 2D alone (:func:`fit_run`): the in-filling error on held-out training poses
with 1 to 4 random limb joints hidden. No 3D is read.

The model of a run is cached in its folder (``infill.npz``, :func:`for_run`), so a run
folder copied without the data still in-fills; without the file and without the data,
:func:`for_run` raises :class:`InfillUnavailable` and ``lib.lift`` skips such frames with
that reason.

    python -m lib.occlusion --run runs/default/ours --split test_unseen_styles   # measure it
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import load
from .geometry import C, Normalizer, detector_noise, pose_height
from .skeleton import LIMB_JOINTS
from .splits import DataError, atomic_savez, subset

INFILL_FILE = "infill.npz"  # in the run folder
MAX_INFILLED = 4  # joints in-filled per frame at most (the "at most 4 limb joints")
K_GRID = (2, 4, 6, 8, 10, 12, 16, 20, 24, 28, 32)  # PPCA components tried
# the held-out poses' visible joints are scored clean and with Gaussian noise of these
# shares of the pose's 2D height, as a detector gives them: k minimises the mean error
# (conditioning on noisy joints with every component amplifies their noise)
NOISE_SHARES = (0.0, 0.01, 0.02, 0.04)
HOLDOUT = 0.1  # share of the training poses that choose k
FIT_POSES = 100_000  # the most training poses the model is fitted on


class InfillUnavailable(RuntimeError):
    """No in-filling model for a run: no cached file and its training data not found."""


def normalise(pose2d: np.ndarray) -> np.ndarray:
    """(N, 17, 2) pixels -> (N, 32) as ``lib.lift`` feeds the lifter (per-pose scale)."""
    return Normalizer("pose", C).pose2d(np.asarray(pose2d, dtype=np.float64)).astype(np.float64)


@dataclass
class Infill:
    """mean (32,), eigenvalues (32,) descending, eigenvectors (32, 32) as columns, k kept;
    ``errors``: {k: held-out 2D in-filling error} of the choice (empty if not chosen)."""

    mean: np.ndarray
    eigvals: np.ndarray
    eigvecs: np.ndarray
    k: int
    errors: dict = field(default_factory=dict)
    noise_shares: tuple = ()  # the held-out noise levels k was chosen with

    @classmethod
    def fit(cls, x: np.ndarray, k: int = 32) -> Infill:
        """Fit on (N, 32) normalised poses."""
        x = np.asarray(x, dtype=np.float64)
        mean = x.mean(0)
        cov = np.cov(x - mean, rowvar=False, bias=True)
        vals, vecs = np.linalg.eigh(cov)
        order = np.argsort(vals)[::-1]
        return cls(mean, np.maximum(vals[order], 0.0), vecs[:, order], int(k))

    def with_k(self, k: int) -> Infill:
        return Infill(self.mean, self.eigvals, self.eigvecs, int(k), self.errors,
                      self.noise_shares)

    @property
    def cov(self) -> np.ndarray:
        """W W^T + sigma^2 I: the top k components, the rest's mean variance elsewhere."""
        k, vals, vecs = self.k, self.eigvals, self.eigvecs
        rest = float(vals[k:].mean()) if k < len(vals) else 0.0
        rest = max(rest, 1e-6 * float(vals[0]) if vals[0] > 0 else 1e-12)  # never singular
        return (vecs[:, :k] * (vals[:k] - rest).clip(0)) @ vecs[:, :k].T + rest * np.eye(len(vals))

    def fill(self, x: np.ndarray, visible: np.ndarray) -> np.ndarray:
        """(N, 32) poses with missing coordinates replaced by their conditional mean given
        the visible ones; ``visible``: (N, 16) per joint or (N, 32) per coordinate, True
        where seen. Visible coordinates are returned unchanged (whatever the missing ones
        held, NaN included, is ignored)."""
        x = np.asarray(x, dtype=np.float64).copy()
        vis = np.asarray(visible, dtype=bool)
        if vis.shape[1] == len(self.mean) // 2:
            vis = np.repeat(vis, 2, axis=1)
        if x.shape != vis.shape or x.shape[1] != len(self.mean):
            raise ValueError(f"x {x.shape} and visible {np.shape(visible)} must be (N, "
                             f"{len(self.mean)}) or visible (N, {len(self.mean) // 2})")
        cov = self.cov
        patterns, which = np.unique(vis, axis=0, return_inverse=True)
        for p, pattern in enumerate(patterns):
            m, o = ~pattern, pattern
            if not m.any():
                continue
            rows = np.flatnonzero(which.ravel() == p)
            if not o.any():
                x[np.ix_(rows, m)] = self.mean[m]
                continue
            gain = np.linalg.solve(cov[np.ix_(o, o)], cov[np.ix_(o, m)])  # C_oo^-1 C_om
            x[np.ix_(rows, m)] = self.mean[m] + (x[np.ix_(rows, o)] - self.mean[o]) @ gain
        return x

    def save(self, path) -> Path:
        return atomic_savez(path, mean=self.mean, eigvals=self.eigvals, eigvecs=self.eigvecs,
                            k=np.int64(self.k), error_k=np.array(list(self.errors), np.int64),
                            error=np.array(list(self.errors.values()), np.float64),
                            noise_shares=np.array(self.noise_shares, np.float64))

    @classmethod
    def load(cls, path) -> Infill:
        try:
            with np.load(path) as f:
                errors = dict(zip(f["error_k"].tolist(), f["error"].tolist(), strict=True))
                shares = tuple(f["noise_shares"].tolist()) if "noise_shares" in f else ()
                return cls(f["mean"], f["eigvals"], f["eigvecs"], int(f["k"]), errors, shares)
        except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise InfillUnavailable(f"{path}: unreadable in-filling model ({e}); delete it "
                                    f"to compute it again from the training data") from None


def hide_limbs(n: int, rng: np.random.Generator, counts=(1, 2, 3, 4)) -> np.ndarray:
    """(n, 16) visibility with a random count (of ``counts``) of distinct limb joints hidden
    per row (network joint indices: the skeleton's minus one, the root removed)."""
    vis = np.ones((n, 16), dtype=bool)
    limbs = np.asarray(LIMB_JOINTS) - 1
    hidden = rng.integers(min(counts), max(counts) + 1, n)
    order = np.argsort(rng.random((n, len(limbs))), axis=1)
    hide = np.arange(len(limbs))[None] < hidden[:, None]  # the first hidden[i] of row i's order
    vis[np.arange(n)[:, None], limbs[order]] = ~hide
    return vis


def infill_error(model: Infill, x: np.ndarray, vis: np.ndarray,
                 given: np.ndarray | None = None) -> float:
    """Mean 2D distance, in head-to-pelvis lengths, of the in-filled to the true missing
    joints of (N, 32) normalised poses ``x``, (N, 16) ``vis``; ``given``: what the visible
    joints read (default ``x``: clean)."""
    given = x if given is None else given
    filled = model.fill(np.where(np.repeat(vis, 2, 1), given, np.nan), vis)
    d = np.linalg.norm((filled - x).reshape(len(x), 16, 2), axis=-1) * C
    return float(d[~vis].mean())


def noisy(x: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """(N, 32) normalised poses with Gaussian noise of ``share`` of each one's 2D height."""
    xy = np.concatenate([np.zeros((len(x), 1, 2)), x.reshape(len(x), 16, 2)], 1)
    return detector_noise(x.reshape(len(x), 16, 2), share, rng,
                          pose_height(xy)).reshape(len(x), 32)


def fit_run(x: np.ndarray, seed: int = 0, ks=K_GRID, shares=NOISE_SHARES) -> Infill:
    """The model of (N, 32) normalised training poses: ``k`` chosen on a held-out tenth
    (1-4 random limb joints hidden per pose, the visible ones clean and with each noise of
    ``shares``, fixed seed; the lowest mean error of the in-filled joints against their true
    place), then fitted on all of them."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))
    cut = max(1, int(HOLDOUT * len(x)))
    held, rest = x[idx[:cut]], x[idx[cut:]]
    vis = hide_limbs(len(held), rng)
    inputs = [noisy(held, share, rng) for share in shares]
    base = Infill.fit(rest)
    errors = {int(k): float(np.mean([infill_error(base.with_k(k), held, vis, given)
                                     for given in inputs])) for k in ks}
    best = min(errors, key=errors.get)
    model = Infill.fit(x, best)
    model.errors, model.noise_shares = errors, tuple(shares)
    return model


def training_poses(cfg: dict) -> np.ndarray:
    """The run's training 2D, the poses it trained on (its ``train_size`` subset), at most
    :data:`FIT_POSES`, normalised; raises ``lib.splits.DataError`` without the data."""
    train = subset(load(cfg, "train"), cfg.get("train_size"), cfg.get("seed", 0))
    return normalise(subset(train, FIT_POSES)["pose2d"])


def for_run(folder, cfg: dict) -> Infill:
    """The in-filling model of the run in ``folder``: its ``infill.npz``, else fitted on the
    run's training 2D (:func:`training_poses`) and written there for the next time."""
    path = Path(folder) / INFILL_FILE
    cached = Infill.load(path) if path.is_file() else None
    if cached is not None and cached.noise_shares == NOISE_SHARES:
        return cached
    try:  # none, or one whose k an earlier rule chose: fitted again where the data is
        x = training_poses(cfg)
    except DataError as e:
        if cached is not None:  # a folder copied without its data: the model it has
            return cached
        raise InfillUnavailable(f"no {INFILL_FILE} in {folder} and its training 2D is not "
                                f"here to fit one ({str(e).split('; ')[0]})") from None
    model = fit_run(x)
    try:
        model.save(path)
    except OSError:  # a read-only run folder: use it, fit again next time
        pass
    return model


def infill_or_reason(folder, cfg: dict) -> Infill | str:
    """:func:`for_run`, or the one-line reason there is no model (for ``lib.lift``'s skips)."""
    try:
        return for_run(folder, cfg)
    except InfillUnavailable as e:
        return str(e)
