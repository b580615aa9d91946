"""kill -9 during training: a process killed while writing its checkpoint or its history
resumes (``fit(resume=True)``) to exactly the weights of an uninterrupted run."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_train import TINY, TRAIN, VAL

from lib.runs import read_history
from lib.train import Trainer

CFG = {**TINY, "epochs": 4, "checkpoint_every": 1, "batch_size": 512}
TESTS = Path(__file__).resolve().parent

# Runs in a child process: train CFG into argv[1], and SIGKILL itself half-way through
# writing epoch 3's checkpoint ("checkpoint") or epoch 3's history line ("history").
CHILD = r"""
import os, signal, sys
import torch
sys.path.insert(0, sys.argv[3])
from test_kill import CFG
from test_train import TRAIN, VAL
import lib.train as T

out, where = sys.argv[1], sys.argv[2]
torch.set_num_threads(int(sys.argv[4]))
trainer = T.Trainer(CFG, out, train=TRAIN, val=VAL)

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if where == "checkpoint":
    real_save = torch.save
    def torn_save(obj, f, *a, **k):
        if trainer.epoch == 3:  # write half of the file, then die
            import io
            buf = io.BytesIO()
            real_save(obj, buf, *a, **k)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
            f.flush()
            die()
        real_save(obj, f, *a, **k)
    T.torch.save = torn_save
else:
    class TornFile:
        def __init__(self, f):
            self.f = f
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.f.close()
        def write(self, text):
            if trainer.epoch == 3:  # half a line reaches the disk, then die
                self.f.write(text[: len(text) // 2])
                self.f.flush()
                die()
            return self.f.write(text)
    T.open = lambda *a, **k: TornFile(open(*a, **k))
trainer.fit()
"""


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tr = Trainer(CFG, tmp_path_factory.mktemp("kill") / "straight", train=TRAIN, val=VAL)
    tr.fit()
    return tr


@pytest.mark.parametrize("where", ["checkpoint", "history"])
def test_kill_9_while_writing_then_resume(tmp_path, uninterrupted, where):
    out = tmp_path / "run"
    child = subprocess.run([sys.executable, "-c", CHILD, str(out), where, str(TESTS),
                            str(torch.get_num_threads())], capture_output=True, text=True,
                           cwd=TESTS.parent, timeout=300)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert not (out / "done").exists()
    if where == "checkpoint":  # the torn write never replaced the epoch-2 checkpoint
        assert [p.name for p in out.iterdir() if p.suffix == ".tmp"] != []  # left behind
    resumed = Trainer(CFG, out, train=TRAIN, val=VAL)
    if where == "history":
        with pytest.warns(UserWarning, match="torn"):
            resumed.fit(resume=True)
    else:
        resumed.fit(resume=True)
    assert resumed.epoch == 4 and (out / "done").is_file()
    for name in ("lifter", "disc"):
        a, b = getattr(uninterrupted, name).state_dict(), getattr(resumed, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert [r["epoch"] for r in read_history(out)] == [1, 2, 3, 4]
    assert not [p for p in os.listdir(out) if p.endswith(".tmp")]  # the torn write swept
