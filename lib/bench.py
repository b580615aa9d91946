"""Benchmark (not a test): training-step throughput of the thesis configuration.

    python -m lib.bench [--steps 30] [--batch 2560] [--width 1024] [--device auto] [--bf16]
                        [--compile [MODE]] [--json]
    python -m lib.bench --variants [MODEL] [--params default]   # float32/bfloat16, layers
    python -m lib.bench --against 75352da [--variants ours] [--params default]  # before/after

Times the project's trainer step (data resident on the device, batches sliced from a
device permutation, statistics accumulated on the device) and, in the same run and on the
same device, the same step written the straightforward way: a DataLoader over a
TensorDataset in host memory, and ``.item()`` on every loss at every step. Random poses of
the right shape stand in for data, so no dataset is needed; the work per step is identical.
Prints poses per second for both and their ratio.

``--against REV`` times a book model's training epochs (float32, one thread) at git revision
REV and in this working tree, in two worker processes fed the same seed and fake poses and
run in turn (A B A B ...), so that both see the same load on a shared machine; it prints
each one's median milliseconds per step, their ratio, and how far apart the statistics of
the first epoch (the mean of its steps' losses) are.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from .train import Trainer, make_config


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def fake_split(n: int, seed: int = 0) -> dict:
    """A split-shaped dict of random but pose-sized data (pixels and mm)."""
    g = torch.Generator().manual_seed(seed)
    pose3d = torch.randn(n, 17, 3, generator=g).numpy() * 300 + [0, 0, 5000]
    pose2d = pose3d[..., :2] / pose3d[..., 2:] * 1150 + 500
    camera = torch.randint(0, 4, (n,), generator=g).numpy()  # which rig camera (body_augment)
    return {"pose3d": pose3d.astype("float32"), "pose2d": pose2d.astype("float32"),
            "camera": camera}


def time_fast(tr: Trainer, steps: int) -> float:
    """Seconds per step of the trainer's own loop body (device-resident data, no syncs)."""
    bs, n = tr.cfg["batch_size"], len(tr.x)
    beta = torch.tensor(1e-3, device=tr.device)
    perm = torch.randperm(n, device=tr.device, generator=tr.gen)
    total = torch.zeros(len(tr.stats()), device=tr.device)
    for i in range(3):  # warm-up (and compilation)
        j = i % (n // bs)
        idx = perm[j * bs:(j + 1) * bs]
        total += tr.step(tr.x[idx], tr.y[idx], beta)
    _sync(tr.device)
    t0 = time.perf_counter()
    for i in range(steps):
        j = i % (n // bs)
        idx = perm[j * bs:(j + 1) * bs]
        total += tr.step(tr.x[idx], tr.y[idx], beta)
    total.tolist()
    return (time.perf_counter() - t0) / steps


def time_naive(tr: Trainer, steps: int) -> float:
    """Seconds per step with a DataLoader over host tensors and .item() on every loss."""
    loader = DataLoader(TensorDataset(tr.x.cpu(), tr.y.cpu()), batch_size=tr.cfg["batch_size"],
                        shuffle=True, drop_last=True)
    beta = torch.tensor(1e-3, device=tr.device)
    it, done, t0 = iter(loader), -3, None
    while done < steps:
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        stats = tr.step(x.to(tr.device), y.to(tr.device), beta)
        _ = [s.item() for s in stats]  # what a logging loop written naively does
        done += 1
        if done == 0:
            t0 = time.perf_counter()
    return (time.perf_counter() - t0) / steps


def with_torch_layers(module: torch.nn.Module) -> torch.nn.Module:
    """The module with lib.models' fast Dropout and Mish swapped back for torch's own
    ``nn.Dropout`` and ``nn.Mish`` (the straightforward layers), in place."""
    from .models import Dropout, Mish

    for name, child in module.named_children():
        if isinstance(child, Dropout):
            setattr(module, name, torch.nn.Dropout(child.p).train(child.training))
        elif isinstance(child, Mish):
            setattr(module, name, torch.nn.Mish().train(child.training))
        else:
            with_torch_layers(child)
    return module


def variants(profile: str, model: str, steps: int, poses: int = 20_480) -> list[dict]:
    """Seconds per training step of a book model (``lib.experiment.model_config``) on this
    machine, in one run: torch's Dropout and Mish in float32 (the baseline), lib.models'
    layers in float32, and those in bfloat16 autocast; each with its ratio to the baseline."""
    from .experiment import model_config

    rows = []
    for name, bf16, torch_layers in (("float32, torch's Dropout and Mish", False, True),
                                     ("float32, lib.models' Dropout and Mish", False, False),
                                     ("bfloat16 autocast, lib.models' layers", True, False)):
        cfg = model_config(profile, model, bf16=bf16, progress=False, val_size=64)
        tr = Trainer(cfg, "/tmp/hpe-bench", train=fake_split(poses), val=fake_split(64, 1))
        if torch_layers:
            with_torch_layers(tr.lifter)
            if tr.disc is not None:
                with_torch_layers(tr.disc)
        rows.append({"variant": name, "step_ms": 1000 * time_fast(tr, steps),
                     "batch": cfg["batch_size"]})
    for r in rows:
        r["speedup"] = rows[0]["step_ms"] / r["step_ms"]
    return rows


# The worker of --against, run in the tree under test: it uses only what every revision has
# (model_config, in lib.book before lib.experiment; lib.train.Trainer, lib.bench.fake_split).
# It answers "stats" with the first epoch's statistics and each "epoch" with its seconds.
_WORKER = """
import json, sys, time, torch
torch.set_num_threads(1)
from lib.bench import fake_split
try:
    from lib.experiment import model_config
except ImportError:  # a revision before the layout step
    from lib.book import model_config
from lib.train import Trainer
profile, model, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = model_config(profile, model, bf16=False, progress=False, val_size=64)
tr = Trainer(cfg, '/tmp/hpe-bench', train=fake_split(steps * cfg['batch_size']),
             val=fake_split(64, 1))
tr.epoch = cfg['up_warmup']  # novel views about the lifted world's vertical, as in most epochs
for line in sys.stdin:
    t0 = time.perf_counter()
    row = tr.train_epoch()
    tr.epoch += 1
    out = row if line.strip() == 'stats' else time.perf_counter() - t0
    print(json.dumps(out), flush=True)
"""


def _worker(root: Path, profile: str, model: str, steps: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", _WORKER, profile, model, str(steps)],
                            cwd=root, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


def _ask(worker: subprocess.Popen, what: str):
    worker.stdin.write(what + "\n")
    worker.stdin.flush()
    line = worker.stdout.readline()
    if not line:
        raise RuntimeError(f"benchmark worker exited with code {worker.wait()}")
    return json.loads(line)


def against(rev: str, profile: str, model: str, steps: int, rounds: int) -> dict:
    """Milliseconds per training step (median over ``rounds`` epochs of ``steps`` steps) of
    ``model`` at git revision ``rev`` and in this working tree, timed in turn, float32 on one
    thread; with the largest difference between their first epochs' statistics."""
    here = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="hpe-bench-") as tmp:
        archive = subprocess.run(["git", "-C", str(here), "archive", rev, "lib", "params"],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
        workers = {"before": _worker(Path(tmp), profile, model, steps),
                   "after": _worker(here, profile, model, steps)}
        try:
            stats = {k: _ask(w, "stats") for k, w in workers.items()}  # also the warm-up
            times = {k: [] for k in workers}
            for r in range(rounds):
                for k in (("before", "after") if r % 2 == 0 else ("after", "before")):
                    times[k].append(1000 * _ask(workers[k], "epoch") / steps)
        finally:
            for w in workers.values():
                w.stdin.close()
                w.wait()
    keys = [k for k, v in stats["before"].items() if isinstance(v, float) and k != "seconds"]
    diff = {k: abs(stats["before"][k] - stats["after"][k]) for k in keys}
    ms = {k: statistics.median(v) for k, v in times.items()}
    return {"rev": rev, "model": model, "profile": profile, "steps": steps, "rounds": rounds,
            "before_ms": ms["before"], "after_ms": ms["after"],
            "speedup": ms["before"] / ms["after"],
            "speedup_per_round": statistics.median(
                b / a for b, a in zip(times["before"], times["after"], strict=True)),
            "max_stat_diff": max(diff.values()), "worst_stat": max(diff, key=diff.get),
            "stats_before": stats["before"], "stats_after": stats["after"]}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m lib.bench", description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, help="timed steps (default 30; --against: per epoch, 10)")
    p.add_argument("--batch", type=int, default=2560)
    p.add_argument("--width", type=int, default=1024)
    p.add_argument("--poses", type=int, default=300_000, help="size of the fake training set")
    p.add_argument("--mode", default="vae_gan")
    p.add_argument("--device", default="auto")
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--compile", nargs="?", const=True, default=False,
                   help="torch.compile the networks; optional mode, e.g. reduce-overhead")
    p.add_argument("--json", action="store_true")
    p.add_argument("--variants", metavar="MODEL", nargs="?", const="ours",
                   help="instead: a book model's step (default: ours) with torch's layers in "
                        "float32, ours in float32 and in bfloat16, on --params' profile")
    p.add_argument("--params", default="default", help="the profile for --variants")
    p.add_argument("--against", metavar="REV",
                   help="instead: time --variants' model (default: ours) at git revision REV "
                        "and in this working tree, in turn, float32 on one thread")
    p.add_argument("--rounds", type=int, default=10, help="timed epochs each, for --against")
    a = p.parse_args(argv)
    a.steps = a.steps or (10 if a.against else 30)
    if a.against:
        r = against(a.against, a.params, a.variants or "ours", a.steps, a.rounds)
        if a.json:
            print(json.dumps(r))
            return
        ok = "agree" if r["max_stat_diff"] <= 1e-5 else "DISAGREE"
        print(f"{r['model']} ({r['profile']}, float32, 1 thread), {r['rounds']} epochs of "
              f"{r['steps']} steps each, in turn: {r['rev']} {r['before_ms']:.1f} ms per step, "
              f"this tree {r['after_ms']:.1f} ms per step: {r['speedup']:.2f}x (median of "
              f"the rounds' ratios {r['speedup_per_round']:.2f}x); first epoch's statistics "
              f"{ok} to {r['max_stat_diff']:.1e} (largest: {r['worst_stat']})")
        return
    if a.variants:
        rows = variants(a.params, a.variants, a.steps)
        for r in rows:
            print(json.dumps(r) if a.json else
                  f"{a.variants} ({a.params}, batch {r['batch']}): {r['variant']}: "
                  f"{r['step_ms']:.0f} ms per step, {r['speedup']:.2f}x")
        return
    cfg = make_config({"batch_size": a.batch, "width": a.width, "mode": a.mode,
                       "device": a.device, "bf16": a.bf16, "compile": a.compile,
                       "val_size": 256, "progress": False})
    split = fake_split(a.poses)
    tr = Trainer(cfg, "/tmp/hpe-bench", train=split, val=fake_split(256, 1))
    fast = time_fast(tr, a.steps)
    naive = time_naive(tr, a.steps)
    res = {"device": str(tr.device), "name": torch.cuda.get_device_name(tr.device)
           if tr.device.type == "cuda" else "cpu", "mode": a.mode, "width": a.width,
           "batch": a.batch, "bf16": a.bf16, "compile": a.compile, "steps": a.steps,
           "poses_per_s": a.batch / fast, "naive_poses_per_s": a.batch / naive,
           "speedup": naive / fast,
           "epoch_s_300k": fast * (300_000 // a.batch),
           "projected_400_epochs_min": fast * (300_000 // a.batch) * 400 / 60}
    if a.json:
        print(json.dumps(res))
    else:
        print(f"{res['name']}: trainer {res['poses_per_s']:,.0f} poses/s, straightforward "
              f"{res['naive_poses_per_s']:,.0f} poses/s, ratio {res['speedup']:.2f}x; "
              f"400 epochs of 300k poses ~ {res['projected_400_epochs_min']:.1f} min")


if __name__ == "__main__":
    main()
