"""Data: a run configuration and a split name -> the split's arrays (:func:`load`).

The trainer, the evaluation, the studies and the notebooks all read data through here:
BNMD-17 (:mod:`lib.bnmd`, built and cached on first use) or a Human3.6M cache folder
(:mod:`lib.h36m`); the arrays of a split are described in :mod:`lib.splits`.

    python -m lib.data [--source PATH] [--cache DIR] [--frame-step 4]   # build BNMD-17
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .bnmd import DEFAULT_CACHE, DEFAULT_SOURCES, benchmark, bnmd17, cached_split, check_cache
from .config import REPO
from .splits import SPLITS, DataError, exit_on_sigterm, load_split

H36M_SPLITS = ("train", "test")
# the unseen-styles takes re-played on other bodies (lib.bodies), made on the fly: the same
# takes as RIG_TAKES, so that the two splits differ in the body alone
UNSEEN_RIG = "test_unseen_rig"
RIG_TAKES = "test_unseen_styles"


def test_splits(cfg: dict) -> tuple[str, ...]:
    """The test split names of the configuration's dataset."""
    return (*SPLITS[1:], UNSEEN_RIG) if cfg["dataset"] == "bnmd17" else H36M_SPLITS[1:]


def h36m_folder(cfg: dict) -> Path:
    """The Human3.6M cache folder of a configuration (made by ``python -m lib.h36m``); a
    relative path is taken from the repository root, so notebooks and the shell agree."""
    if not cfg.get("h36m_dir"):
        raise DataError("dataset: h36m needs h36m_dir (a folder made by python -m lib.h36m)")
    folder = Path(cfg["h36m_dir"]).expanduser()
    return folder if folder.is_absolute() else REPO / folder


def load(cfg: dict, split: str, progress: bool = False) -> dict:
    """One split of the configuration's dataset (``cfg["dataset"]``: BNMD-17, built and
    cached on first use, or a Human3.6M cache folder) as a dict of arrays.

    The trainer, the evaluation, the studies and the notebooks all read data through here.
    """
    if cfg["dataset"] == "bnmd17":
        if split == UNSEEN_RIG:
            from .bodies import unseen_rig

            return unseen_rig(load(cfg, RIG_TAKES, progress))
        if split not in SPLITS:
            raise DataError(f"unknown BNMD-17 split {split!r}; choose one of "
                            f"{(*SPLITS, UNSEEN_RIG)}")
        folder = bnmd17(cfg.get("source"), cfg.get("cache"), cfg.get("frame_step", 4),
                        progress=progress)
        return cached_split(folder, split)
    if cfg["dataset"] == "h36m":
        if split not in H36M_SPLITS:
            raise DataError(f"unknown Human3.6M split {split!r}; choose one of {H36M_SPLITS}")
        return load_split(h36m_folder(cfg) / f"{split}.npz")
    raise DataError(f"dataset must be 'bnmd17' or 'h36m', got {cfg['dataset']!r}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m lib.data",
                                description="Build the BNMD-17 benchmark cache and print a "
                                            "one-line JSON summary.")
    p.add_argument("--source", help="dataset folder or .tar.xz (default: $HPE_DATA, then "
                                    + ", ".join(str(s) for s in DEFAULT_SOURCES) + ")")
    p.add_argument("--cache", help=f"cache folder (default: $HPE_CACHE, then {DEFAULT_CACHE})")
    p.add_argument("--frame-step", type=int, default=4,
                   help="keep every N-th frame of every take (default 4: 7.5 fps)")
    p.add_argument("--rebuild", action="store_true", help="rebuild even if the cache is fresh")
    p.add_argument("--benchmark", action="store_true",
                   help="time a full build into a fresh temporary cache and the loading of "
                        "each split, print the timings as JSON, delete the temporary cache")
    args = p.parse_args(argv)
    exit_on_sigterm()
    if args.benchmark:
        print(json.dumps(benchmark(args.source, args.frame_step)))
        return
    t0 = time.perf_counter()
    try:
        out = bnmd17(args.source, args.cache, args.frame_step, rebuild=args.rebuild)
        summary = check_cache(out)["summary"]
    except DataError as e:
        raise SystemExit(f"error: {e}") from None
    summary.update(cache=str(out), seconds=round(time.perf_counter() - t0, 1))
    print(json.dumps(summary))

if __name__ == "__main__":
    main()
