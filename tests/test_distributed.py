"""Data-parallel training with torchrun on CPU (gloo): 2 ranks = 1 process with the same
global batch; a killed 2-rank run resumes to the uninterrupted weights, also on 1 rank."""

import subprocess
import sys
from pathlib import Path

import torch
from test_train import TINY, TRAIN, VAL

from lib.runs import read_history
from lib.train import Trainer

TESTS = Path(__file__).resolve().parent
# no randomness inside a step (no dropout, flips, noise, label smoothing, one fixed novel
# view), so that 2 ranks and 1 process must agree up to float rounding
DETERMINISTIC = {**TINY, "mode": "det_gan", "epochs": 3, "batch_size": 512, "dropout": 0.0,
                 "disc_dropout": 0.0, "flip_p": 0.0, "real_noise": 0.0, "real_label_low": 1.0,
                 "azim_min": 90.0, "azim_max": 90.0,
                 "view_axis": "up"}  # about the vertical of the whole batch, not the rank's
# the usual randomness: ranks draw their own augmentations
RANDOM = {**TINY, "mode": "vae_gan", "epochs": 4, "batch_size": 512}

CHILD = r"""
import os, signal, sys
import torch
sys.path.insert(0, sys.argv[1])
import test_distributed as T
from test_train import TRAIN, VAL
from lib.train import Trainer

torch.set_num_threads(1)
out, which, action = sys.argv[2], sys.argv[3], sys.argv[4]
trainer = Trainer(getattr(T, which), out, train=TRAIN, val=VAL)
if action == "kill":  # rank 0 is killed during epoch 3 (after epoch 2's checkpoint)
    real = trainer.train_epoch
    def train_epoch():
        if trainer.epoch == 2 and trainer.rank == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        return real()
    trainer.train_epoch = train_epoch
trainer.fit(resume=action == "resume")
"""


def torchrun(ranks: int, out: Path, which: str, action: str = "train"):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={ranks}", "--no-python", sys.executable,
           "-c", CHILD, str(TESTS), str(out), which, action]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          cwd=TESTS.parent)


def weights(trainer_or_path):
    if isinstance(trainer_or_path, Trainer):
        t = trainer_or_path
        return {**{f"l.{k}": v for k, v in t.lifter.state_dict().items()},
                **{f"d.{k}": v for k, v in t.disc.state_dict().items()}}
    ckpt = torch.load(Path(trainer_or_path) / "checkpoint.pt", weights_only=False)
    return {**{f"l.{k}": v for k, v in ckpt["lifter"].items()},
            **{f"d.{k}": v for k, v in ckpt["disc"].items()}}


def test_two_ranks_equal_one_process(tmp_path):
    done = torchrun(2, tmp_path / "two", "DETERMINISTIC")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Warning" not in done.stderr, done.stderr[-3000:]  # no deprecated collective
    torch.set_num_threads(1)
    one = Trainer(DETERMINISTIC, tmp_path / "one", train=TRAIN, val=VAL)
    one.fit()
    a, b = weights(one), weights(tmp_path / "two")
    assert a.keys() == b.keys()
    # The biases of layers followed by BatchNorm get a gradient that is zero but for
    # rounding, and Adam turns that into steps of full size and random sign: they (and the
    # running means that follow them) drift apart by ~1e-3 after 12 steps, in any two runs
    # that round differently. Every weight that learns must agree to float precision, and
    # the predictions to well under a millimetre on average.
    for k in a:
        if k.endswith(".weight"):
            assert torch.allclose(a[k].float(), b[k].float(), rtol=1e-4, atol=1e-4), k
    two = Trainer(DETERMINISTIC, tmp_path / "copy", train=TRAIN, val=VAL)
    two.load(tmp_path / "two" / "checkpoint.pt")
    diff = (one.predict(one.val_x) - two.predict(two.val_x)).abs()
    assert diff.mean() < 1.0  # mm, of poses ~1000 mm tall
    h1, h2 = read_history(tmp_path / "one"), read_history(tmp_path / "two")
    assert [r["epoch"] for r in h2] == [1, 2, 3]  # written once, by rank 0
    assert h2[-1]["poses"] == h1[-1]["poses"]  # the same global batches
    assert abs(h1[-1]["loss"] - h2[-1]["loss"]) < 1e-4  # statistics averaged over ranks


def test_killed_two_rank_run_resumes_exactly(tmp_path):
    straight = torchrun(2, tmp_path / "straight", "RANDOM")
    assert straight.returncode == 0, straight.stderr[-3000:]
    killed = torchrun(2, tmp_path / "run", "RANDOM", "kill")
    assert killed.returncode != 0 and not (tmp_path / "run" / "done").exists()
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["epoch"] == 2
    resumed = torchrun(2, tmp_path / "run", "RANDOM", "resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = weights(tmp_path / "straight"), weights(tmp_path / "run")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r["epoch"] for r in read_history(tmp_path / "run")] == [1, 2, 3, 4]
    # and the same checkpoint resumes on one process (its own augmentation streams)
    (tmp_path / "run" / "done").unlink()
    ckpt = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=False)
    state["epoch"] = 3
    torch.save(state, ckpt)
    one = Trainer(RANDOM, tmp_path / "run", train=TRAIN, val=VAL)
    assert [r["epoch"] for r in one.fit(resume=True)] == [4]


def test_ranks_that_cannot_share_the_batch_are_refused(tmp_path):
    done = torchrun(3, tmp_path / "three", "DETERMINISTIC")  # 512 poses per batch, 3 ranks
    assert done.returncode != 0
    assert "batch_size 512" in done.stderr and "cannot be shared equally by 3 ranks" in done.stderr
