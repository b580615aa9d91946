"""A run folder: what the trainer writes, and the one rule for "the same configuration".

    runs/<profile>/<model>[-seed<k>]/
        config.yaml      the full configuration (lib.config)
        history.jsonl    one line per epoch: every loss term, timings, validation
        checkpoint.pt    networks, optimisers, RNG states (written atomically)
        done             written when the last epoch is finished
        params.txt       the parameter file that made it (lib.config.profile_source)
        eval-*.json      evaluations cached by the book and the studies

Two configurations are *the same run* when they agree on every key that changes what is
trained; the keys of :data:`lib.config.RUNTIME_KEYS` (device, compilation, how often to
checkpoint, the number of epochs, ...) may differ, so a run resumes on another device or
for more epochs. A run is *finished* for a configuration when it is the same run, its
``done`` marker exists and it trained exactly that configuration's number of epochs.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
import yaml

from . import choose
from .config import DEFAULTS, RUNTIME_KEYS, make_config, pick_device
from .geometry import Normalizer
from .infill import INFILL_FILE
from .splits import atomic_write

SELECT_CRITIC_SEED = 1  # the realism-test critic that chooses (the book reports seed 0's)
# set to 1 by ``--force`` (lib.book, lib.study), so that their worker processes and the
# chapters they execute may replace a run in the way too (lib.experiment.ensure_training)
FORCE_ENV = "HPE_FORCE"


def forced() -> bool:
    """True where ``--force`` was given (:data:`FORCE_ENV` is 1)."""
    return os.environ.get(FORCE_ENV) == "1"


class RunError(ValueError):
    """A run folder that cannot be used as asked (nothing to resume, a run in the way)."""


def config_differences(a: dict, b: dict) -> list[str]:
    """Keys (other than runtime keys) on which two configurations differ, sorted. A key that
    one of them lacks counts as its default (a parameter added later, whose default keeps
    the old behaviour, does not make an older run different)."""
    a, b = {**DEFAULTS, **a}, {**DEFAULTS, **b}
    ignore = RUNTIME_KEYS
    if "cosine" in (a["lr_schedule"], b["lr_schedule"]):  # the schedule depends on epochs
        ignore = ignore - {"epochs"}
    return sorted(k for k in set(a) | set(b) if k not in ignore and a.get(k) != b.get(k))


class Run:
    """A run folder on disk (it need not exist yet)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.config_path = self.path / "config.yaml"
        self.history_path = self.path / "history.jsonl"
        self.checkpoint = self.path / "checkpoint.pt"
        self.done_path = self.path / "done"
        self.sign_path = self.path / "depth_sign"  # written by orient()
        self.selected_path = self.path / "selected.pt"  # written by lib.evaluate.choose_epoch
        self.selection_path = self.path / "selection.json"
        self.restarts_path = self.path / "restarts.json"  # written by lib.experiment.ensure_model
        self.members_path = self.path / "members.json"  # a model averaging restarts (ditto)
        self.made_by_path = self.path / "params.txt"  # written by lib.experiment.ensure_training

    def candidate_path(self, epoch: int) -> Path:
        """Where training keeps an epoch's averaged weights, to choose among
        (:func:`lib.evaluate.choose_epoch`)."""
        return self.path / "candidates" / f"epoch-{epoch:04d}.pt"

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def config(self) -> dict | None:
        """The saved configuration, or None when there is none."""
        if not self.config_path.is_file():
            return None
        return yaml.safe_load(self.config_path.read_text())

    def write_config(self, cfg: dict) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))

    def history(self) -> list[dict]:
        """The epochs written so far (an empty list for a new run); for a folder that
        averages restarts (:meth:`members`), its first member's."""
        if members := self.members():
            return Run(members[0]).history()
        if not self.history_path.is_file():
            return []
        return [json.loads(ln) for ln in self.history_path.read_text().splitlines() if ln]

    def matches(self, cfg: dict) -> bool:
        """True if the saved configuration is the same run as ``cfg`` (see the module)."""
        saved = self.config()
        return saved is not None and not config_differences(saved, make_config(cfg))

    def finished(self, cfg: dict | None = None) -> bool:
        """True if the run is done (and, given ``cfg``, is that configuration, fully trained);
        a folder that averages restarts is done when each of its members is."""
        if members := self.members():
            return all(Run(m).finished() for m in members)
        if not self.done_path.is_file():
            return False
        if cfg is None:
            return True
        cfg, saved = make_config(cfg), self.config()
        return (saved is not None and not config_differences(saved, cfg)
                and saved.get("epochs") == cfg["epochs"])

    def made_by(self) -> str | None:
        """The parameter file that made this run, as recorded in ``params.txt``
        (:func:`lib.config.profile_source`: ``params/<name>.yaml`` or an absolute path); for
        a run made before the record existed, the built-in profile of the folder it is filed
        under (``runs/<name>/...``: ``params/<name>.yaml``); None for an empty folder."""
        if self.made_by_path.is_file():
            return self.made_by_path.read_text().strip()
        if not (self.done_path.is_file() or self.checkpoint.is_file()):
            return None
        above = self.path.resolve().parts[:-1]  # runs/<name>[/...]/<this folder>
        below = [i for i, part in enumerate(above[:-1]) if part == "runs"]
        return f"params/{above[below[-1] + 1] if below else self.path.parent.name}.yaml"

    def record_made_by(self, source: str) -> None:
        """Record ``source`` as the parameter file that makes this run (see :meth:`made_by`)."""
        if not (self.made_by_path.is_file() and self.made_by() == source):
            atomic_write(self.made_by_path, lambda f: f.write(f"{source}\n".encode()))

    def in_the_way(self, cfg: dict, source: str | None = None) -> str | None:
        """Why training ``cfg`` (for the parameter file ``source``) in this folder would
        replace a run that is not its own to replace, as one line; None where nothing is in
        the way. In the way: a run (finished or interrupted) that another parameter file
        made, and a finished run of another configuration (the file was edited since, so
        the run's weights and record would be lost or, for a runtime key such as
        ``epochs``, its ``config.yaml`` would no longer describe them)."""
        done = self.done_path.is_file()
        if not (done or self.checkpoint.is_file()) or self.members():
            return None
        maker = self.made_by()
        if source is not None and maker != source:
            state = "a finished" if done else "an interrupted"
            return (f"{self.path}: holds {state} run made by {maker}, not by {source}; pass "
                    f"--force to replace it")
        if not done:
            return None
        cfg, saved = make_config(cfg), self.config() or {}
        changed = config_differences(saved, cfg)
        if saved.get("epochs") != cfg["epochs"]:
            changed = sorted({*changed, "epochs"})
        if not changed:
            return None
        return (f"{self.path}: holds a finished run of another configuration (differs in "
                f"{changed}), made by {maker}; pass --force to replace it")

    def epochs_done(self) -> int | None:
        """The epochs a finished run trained (its ``done`` marker), None if unfinished."""
        if not self.done_path.is_file():
            return None
        try:
            return int(self.done_path.read_text().split()[0])
        except (ValueError, IndexError):
            return None

    def truncate_history(self, epoch: int) -> None:
        """Drop history lines written after the checkpoint being resumed from (``epoch``),
        and any line a crash tore in half (with a warning naming it)."""
        path = self.history_path
        if not path.is_file():
            return
        keep = []
        for i, ln in enumerate(path.read_text().splitlines(), 1):
            if not ln.strip():
                continue
            try:
                row = json.loads(ln)
            except json.JSONDecodeError:
                warnings.warn(f"{path}, line {i}: torn (written during a crash), dropped",
                              stacklevel=2)
                continue
            if row.get("epoch", epoch + 1) <= epoch:
                keep.append(ln)
        path.write_text("".join(ln + "\n" for ln in keep))

    def evaluations(self) -> list[Path]:
        return sorted(self.path.glob("eval-*.json"))

    def derived(self) -> list[Path]:
        """Every file a training wrote here or that was made from one (weights, history,
        the epochs' candidates and the choice among them, depth sign, cached results): what
        a fresh training in this folder must remove, so that nothing of an earlier one is
        resumed, selected from or reported under its configuration."""
        made = [self.history_path, self.checkpoint, self.done_path, self.sign_path,
                self.selected_path, *self.path.glob("candidates/epoch-*.pt"),
                *self.path.glob("*.json"),  # selection, restarts, evaluations, realism
                self.path / INFILL_FILE,  # lib.infill's model of the training 2D
                self.path / "infill.npz"]  # and the one it replaced
        return sorted({p for p in made if p.is_file()})

    def load(self, device: str = "auto", flip_test: bool | None = None,
             selected: bool = True) -> tuple[torch.nn.Module, Normalizer, dict]:
        """(lifter in eval mode, normaliser, config) from the checkpoint. Where the run kept
        an average of its weights (``ema``), those are the weights that predict, and where
        the 2D test chose an epoch's weights (``selected.pt``, and ``selected``), those. The lifter
        averages with the mirrored input's lift (:func:`lib.models.lift_all`) when the run's
        ``flip_test`` says so, or ``flip_test`` when given. A folder that averages restarts
        (:meth:`members`) gives a :class:`lib.models.Ensemble` of its members, with the
        first member's normaliser and configuration."""
        from .models import Ensemble, build_models

        if members := self.members():  # the mean of the restarts' lifts, each as it predicts
            loaded = [Run(m).load(device, flip_test, selected) for m in members]
            return Ensemble([lifter for lifter, _, _ in loaded]).eval(), *loaded[0][1:]
        if not self.checkpoint.is_file():
            raise FileNotFoundError(f"{self.checkpoint}: no checkpoint; train first with "
                                    f"python -m lib.train")
        dev = pick_device(device)
        ckpt = read_checkpoint(self.checkpoint, dev)
        lifter = build_models(ckpt["config"])["lifter"].to(dev)
        if selected and self.selected_path.is_file():
            lifter.load_state_dict(torch.load(self.selected_path, map_location=dev))
        else:
            lifter.load_state_dict(ckpt.get("lifter_ema") or ckpt["lifter"])
        if hasattr(lifter, "depth_sign") and self.sign_path.is_file():
            lifter.depth_sign = float(self.sign_path.read_text())
        if hasattr(lifter, "flip_test"):
            lifter.flip_test = bool(ckpt["config"].get("flip_test", False)
                                    if flip_test is None else flip_test)
        return lifter.eval(), Normalizer(**ckpt["normalizer"]), ckpt["config"]

    def chosen(self) -> Path:
        """The folder that predicts for this run: where the model was trained as several
        restarts and this is the first, the one the restarts' choice made of them (one
        restart, or a folder averaging several; ``restarts.json``), else this folder."""
        record = self.restart_record()
        if record is None:
            return self.path
        chosen = self.path.parent / record["chosen"]
        members = [chosen.name] if record["chosen"] in record.get("runs", []) else [
            m.name for m in Run(chosen).members()]
        if (not members or not set(members) <= set(record.get("runs", []))
                or not Run(chosen).finished()):
            raise RunError(f"{self.restarts_path}: names {record['chosen']!r}, which is not a "
                           f"finished restart of this run; build again (python -m lib.book) "
                           f"or delete the file to use this folder's own training")
        return chosen

    def restart_record(self) -> dict | None:
        """What the restarts' choice made of the restarts of which this folder is the
        first, kept in its ``restarts.json`` ({"chosen", "runs", "members", "pairs", "flat",
        "critic_accuracy", "critic_seed"}), or None where there is none."""
        if not self.restarts_path.is_file():
            return None
        return json.loads(self.restarts_path.read_text())

    def restart_record_current(self, folders) -> dict | None:
        """:meth:`restart_record` if it is the record of exactly the restarts ``folders``
        and newer than each one's weights, else None (it must be made again)."""
        record = self.restart_record()
        if (record is None or record.get("runs") != [Path(f).name for f in folders]
                or "members" not in record
                or self.restarts_path.stat().st_mtime < max(Run(f).stamp() for f in folders)):
            return None
        return record

    def record_restarts(self, record: dict) -> None:
        """Write :meth:`restart_record` (unless it says so already)."""
        if self.restart_record() != record:
            atomic_write(self.restarts_path, lambda f: f.write(json.dumps(record).encode()))

    def members(self) -> list[Path]:
        """The run folders whose lifts this folder averages (``members.json``, written by
        :meth:`set_members`); [] for a folder that holds a training."""
        if not self.members_path.is_file():
            return []
        return [self.path.parent / n for n in json.loads(self.members_path.read_text())]

    def set_members(self, folders) -> None:
        """Make this folder the average of the runs ``folders`` (siblings of it), forgetting
        what was cached here for other members."""
        names = [Path(f).name for f in folders]
        if [m.name for m in self.members()] == names:
            return
        self.path.mkdir(parents=True, exist_ok=True)
        for old in self.path.glob("*.json"):  # evaluations of another average
            old.unlink()
        atomic_write(self.members_path, lambda f: f.write(json.dumps(names).encode()))

    def selection_score(self) -> float:
        """The realism-test critic accuracy (%) of the weights the 2D test chose: the lowest
        of the run's kept weights (``selection.json``), what the restarts' choice
        compares."""
        if not self.selection_path.is_file():
            raise RunError(f"{self.selection_path}: no 2D-test scores to choose a restart by "
                           f"(train with select_epochs >= 1)")
        return min(json.loads(self.selection_path.read_text())["critic_accuracy"].values())

    def orient(self, train: dict, n: int = 20000) -> float:
        """Choose the run's depth sign from 2D alone and store it beside the checkpoint.

        A pose and its depth mirror explain the same 2D equally well, so the losses cannot
        choose between them; anatomy can: real knees bend forwards. The lifter's poses for
        ``n`` training 2D inputs are compared with their depth mirrors, and the sign with
        fewer backward-bent knees wins (:func:`lib.priors.backward_knee_rate`). Returns the
        sign (+1 keeps the network's own depth, -1 mirrors every prediction).
        """
        sign = choose.depth_sign(*self._backward_knees(train, n, (1.0, -1.0)))
        atomic_write(self.sign_path, lambda f: f.write(f"{sign:g}\n".encode()))
        return sign

    def backward_knees(self, train: dict, n: int = 20000, selected: bool = True) -> float:
        """Percentage of ``n`` training 2D poses whose lifted 3D (as the run predicts it,
        depth sign included) bends its more bent knee backwards: an anatomical check of a
        lifter that reads no 3D ground truth. A lifter that mirrors some poses in depth and
        not others shows it here. ``selected``: as :meth:`load`."""
        return 100 * self._backward_knees(train, n, selected=selected)[0]

    def _backward_knees(self, train: dict, n: int, signs=(None,),
                        selected: bool = True) -> list[float]:
        """Backward-knee rates of ``n`` training 2D poses, one per depth sign (None: the
        run's own), from one load of the lifter."""
        from .models import lift_all
        from .priors import backward_knee_rate
        from .splits import subset

        lifter, norm, _ = self.load("cpu", selected=selected)
        x = torch.as_tensor(norm.pose2d(subset(train, n, seed=0)["pose2d"]))
        rates = []
        for sign in signs:
            if sign is not None:
                lifter.depth_sign = sign
            rates.append(float(backward_knee_rate(lift_all(lifter, x))))
        return rates

    def cached(self, name: str, compute) -> dict:
        """``compute()``'s JSON result, kept beside the checkpoint as ``name`` and computed
        again when the checkpoint is newer (evaluations, the realism test)."""
        path = self.path / name
        if path.is_file() and path.stat().st_mtime >= self.stamp():
            return json.loads(path.read_text())
        res = compute()
        atomic_write(path, lambda f: f.write(json.dumps(res).encode()))  # never half a file
        return res

    def stamp(self) -> float:
        """When the weights that predict here last changed (an average: its members' or its
        list of members', whichever is newer)."""
        if members := self.members():
            return max([self.members_path.stat().st_mtime] + [Run(m).stamp() for m in members])
        return self.checkpoint.stat().st_mtime

    def oriented(self) -> bool:
        """True if :meth:`orient` chose a depth sign for the current checkpoint."""
        return self.sign_path.is_file()


def read_checkpoint(path: str | os.PathLike, device="cpu") -> dict:
    """A checkpoint's dict; a torn, empty or foreign file is a :class:`RunError` naming it."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=False)
        if not isinstance(ckpt, dict) or not {"config", "lifter", "normalizer"} <= set(ckpt):
            raise TypeError("not a checkpoint of lib.train")
    except Exception as e:
        raise RunError(f"{path}: unreadable checkpoint ({type(e).__name__}: {e}); train "
                       f"afresh with --force") from None
    return ckpt


def load_run(run: str | os.PathLike, device: str = "auto", flip_test: bool | None = None,
             selected: bool = True):
    """``Run(run).load(device, flip_test, selected)``: (lifter in eval mode, normaliser,
    config)."""
    return Run(run).load(device, flip_test, selected)


def read_history(run: str | os.PathLike) -> list[dict]:
    return Run(run).history()


def is_finished(run: str | os.PathLike, cfg: dict) -> bool:
    return Run(run).finished(cfg)
