"""The trainer: every mode of DESIGN section 3 on CPU or CUDA, one file, top to bottom.

    python -m lib.train --params params/quick.yaml [--out DIR] [--resume] [key=value ...]

The normalised training poses live on the device as one tensor; each epoch draws a shuffled
permutation there and slices batches from it (no DataLoader). Losses and statistics are
accumulated in device tensors and read once per epoch, so a GPU never waits for the host
inside an epoch. A run folder holds ``config.yaml``, ``history.jsonl`` (one line per epoch),
``checkpoint.pt`` (written atomically) and, when finished, ``done``.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm  # plain bars: tqdm.auto warns in notebooks without ipywidgets

from . import data as D
from . import distributed as dist
from .bodies import OtherBodies
from .config import (
    REPO,
    ConfigError,
    bf16_enabled,
    load_params,
    make_config,
    parse_overrides,
    pick_device,
    profile_name,
    profile_source,
)
from .evaluate import choose_epoch, validation
from .geometry import (
    Normalizer,
    apply_mask,
    center,
    height_noise,
    random_flip,
    random_flip_pair,
    random_missing_mask,
    tilt_of,
    up_direction,
)
from .losses import (
    OBJECTIVE,
    Lifted,
    beta_schedule,
    discriminator_loss,
    objective,
    r1_penalty,
    real_input_noise,
    supervised_loss,
)
from .models import build_models, check_batch, ema_update, predict
from .runs import Run, RunError, config_differences, read_checkpoint
from .splits import DataError, atomic_write, exit_on_sigterm, subset
from .views import NovelViews


class Trainer:
    """Holds the networks, optimisers, data tensors and RNG of one run."""

    def __init__(self, cfg: dict, out: str | os.PathLike, train: dict | None = None,
                 val: dict | None = None):
        self.cfg = cfg = make_config(cfg)
        self.out = Path(out)
        # under torchrun: this process's rank, the number of ranks, and its device
        self.rank, self.world, self.device = dist.init(pick_device(cfg["device"]))
        self.bf16 = bf16_enabled(cfg["bf16"], self.device)  # "auto" resolved for this device
        torch.manual_seed(cfg["seed"])
        self.gen = torch.Generator(self.device).manual_seed(cfg["seed"])
        if train is None:
            train = D.load(cfg, "train", progress=cfg["progress"] and self.rank == 0)
            val = D.load(cfg, cfg["val_split"])
        train = subset(train, cfg["train_size"], cfg["seed"])
        n = len(train["pose2d"])
        if cfg["batch_size"] % self.world or self.world > min(n, cfg["batch_size"]):
            raise ConfigError(f"batch_size {cfg['batch_size']} ({n} training poses) cannot be "
                              f"shared equally by {self.world} ranks: use a number of ranks "
                              f"that divides it")
        self.train_split = train  # 2D of it chooses the depth sign (orient)
        val = subset(val, cfg["val_size"], cfg["seed"] + 1)
        self.norm = Normalizer.fit(train, cfg["scale_mode"])
        dev = self.device
        self.x = torch.as_tensor(self.norm.pose2d(train["pose2d"]), device=dev)
        self.y = torch.as_tensor(self.norm.pose3d(train["pose3d"]), device=dev)
        # the training mocap re-played on other bodies (a share body_augment of each batch)
        self.bodies = (OtherBodies(train, self.norm, cfg["body_augment"], self.gen, dev)
                       if cfg["body_augment"] > 0 else None)
        self.val_x = torch.as_tensor(self.norm.pose2d(val["pose2d"]), device=dev)
        self.val_gt = torch.as_tensor(center(val["pose3d"]), device=dev)

        nets = build_models(cfg)
        check_batch(cfg, n, nets)
        if self.world > 1:  # BatchNorm over the whole batch, as one process would see it
            nets = {k: dist.global_batchnorm(v) if v is not None else None
                    for k, v in nets.items()}
        self.lifter = nets["lifter"].to(dev)
        self.disc = nets["disc"].to(dev) if nets["disc"] is not None else None
        if dev.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = cfg["tf32"]
            torch.backends.cudnn.allow_tf32 = cfg["tf32"]
        fused = dev.type == "cuda"
        self.opt = torch.optim.Adam(self.lifter.parameters(), lr=cfg["lr"], fused=fused)
        self.opt_d = (torch.optim.Adam(self.disc.parameters(), lr=cfg["lr"], fused=fused)
                      if self.disc is not None else None)
        if cfg["compile"]:  # True: default inductor; "reduce-overhead": also CUDA graphs
            mode = cfg["compile"] if isinstance(cfg["compile"], str) else None
            self.lifter.compile(mode=mode)
            if self.disc is not None:
                self.disc.compile(mode=mode)
        # the weights that predict: an exponential moving average of the lifter's, or itself
        self.ema = None
        if cfg["ema"] > 0:
            self.ema = copy.deepcopy(self.lifter).requires_grad_(False)
        self.ema_steps = 0
        self.views = NovelViews(cfg, self.gen)  # what the discriminator judges
        self.epoch = 0

    # ---- one optimisation step -------------------------------------------------------

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def step(self, x: torch.Tensor, y: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """One step on a batch; returns the statistics row (see :meth:`stats`) as a tensor."""
        c, zero = self.cfg, x.new_zeros(())
        if c["mode"] != "supervised":  # (supervised flips inputs and targets together)
            x = random_flip(x, 2, c["flip_p"], self.gen)
            x = height_noise(x, c["input_noise"], self.gen)  # as a detector gives it
        mask = random_missing_mask(len(x), c["p_miss"], x.device, self.gen)
        x_in = apply_mask(x, mask) if c["p_miss"] > 0 else x

        if c["mode"] == "supervised":
            with self._autocast():
                pred, _, _ = self.lifter(x_in)
                loss = supervised_loss(pred.float(), y)
            self._update(self.opt, self.lifter, loss, c["clip_vae_norm"], c["clip_vae_value"])
            if self.ema is not None:
                self._update_ema()
            return self._row({"loss": loss}, zero)

        # one lifter forward serves both players: the discriminator learns on its detached
        # novel views, then the lifter on the same views (the usual GAN recipe)
        with self._autocast():
            pose3d, mu, logvar = self.lifter(x_in, sample=True, generator=self.gen)
        pose3d = pose3d.float()  # geometry (rotation, projection) stays in float32
        # the lifted world's vertical (over ranks): the views' axis, its tilt a statistic
        up_batch = up_direction(pose3d.detach(),
                                dist.mean_over_ranks if c["view_axis"] == "up" else None)
        up = self.views.vertical(up_batch, self.epoch)
        need_views = self.disc is not None or c["lambda_cycle"] > 0
        novel, rot = self.views(pose3d, self.epoch, up) if need_views else (None, None)
        novel_seen = (real_input_noise(novel, c["real_noise"], self.gen)  # noise on fakes too
                      if self.disc is not None and c["noise_on"] == "both" else novel)
        d_loss = d_real = d_fake = d_acc = r1 = zero
        if self.disc is not None:  # discriminator: real 2D (with noise) against novel views
            real = real_input_noise(x, c["real_noise"], self.gen)
            if c["lambda_r1"] > 0:
                real.requires_grad_(True)
            with self._autocast():
                logits = self.disc(torch.cat([real, novel_seen.detach()])).float()
                logit_real, logit_fake = logits[:len(x)], logits[len(x):]
                d_loss = discriminator_loss(logit_real, logit_fake,
                                            (c["real_label_low"], c["real_label_high"]),
                                            self.gen)
                if c["lambda_r1"] > 0:
                    r1 = r1_penalty(logit_real, real)
                    d_loss = d_loss + 0.5 * c["lambda_r1"] * r1
            self._update(self.opt_d, self.disc, d_loss, c["clip_disc"], None)
            d_real = torch.sigmoid(logit_real).mean().detach()
            d_fake = torch.sigmoid(logit_fake).mean().detach()
            d_acc = 0.5 * ((logit_real > 0).float().mean() + (logit_fake < 0).float().mean())

        if self.disc is not None:
            self.disc.requires_grad_(False)  # the lifter's turn: gradients for the input only
        with self._autocast():  # lifter: reproject, stay near the prior, fool the critic
            terms = objective(Lifted(x, pose3d, mu, logvar, mask if c["p_miss"] > 0 else None,
                                     novel, rot, novel_seen, self.lifter, self.disc), c, beta)
        self._update(self.opt, self.lifter, terms["loss"], c["clip_vae_norm"],
                     c["clip_vae_value"])
        if self.ema is not None:
            self._update_ema()
        if self.disc is not None:
            self.disc.requires_grad_(True)
        return self._row({**terms, "d_loss": d_loss, "d_real": d_real, "d_fake": d_fake,
                          "d_acc": d_acc, "tilt_deg": torch.rad2deg(tilt_of(up_batch)),
                          "r1": r1}, zero)

    @staticmethod
    def stats() -> tuple[str, ...]:
        """The names of a step's statistics, the history's columns: the loss, the
        objective's terms (:data:`lib.losses.OBJECTIVE`), the discriminator's loss, mean
        outputs and accuracy, the tilt of the batch's own vertical towards the camera
        (degrees, before any running average or clamp; the rig's cameras look down by about
        7.6) and the discriminator's gradient penalty before its weight (``lambda_r1``)."""
        return ("loss", *OBJECTIVE, "d_loss", "d_real", "d_fake", "d_acc", "tilt_deg", "r1")

    def _row(self, values: dict, zero: torch.Tensor) -> torch.Tensor:
        """The statistics of a step as one detached tensor in :meth:`stats` order (0 for a
        term the step did not compute)."""
        return torch.stack([values.get(k, zero) for k in self.stats()]).detach()

    def _update_ema(self):
        """The averaged weights follow the lifter's (:func:`lib.models.ema_update`)."""
        ema_update(self.ema, self.lifter, self.cfg["ema"], self.ema_steps)
        self.ema_steps += 1

    @staticmethod
    def _update(opt, module, loss, max_norm, max_value):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in module.parameters() if p.grad is not None]
        dist.average_gradients(params)  # several ranks: the whole batch's gradient
        if max_value:
            torch.nn.utils.clip_grad_value_(params, max_value)
        if max_norm:
            torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
        opt.step()

    # ---- epochs ----------------------------------------------------------------------

    def train_epoch(self) -> dict:
        c = self.cfg
        self.lifter.train()
        if self.disc is not None:
            self.disc.train()
        n, bs = len(self.x), min(c["batch_size"], len(self.x))
        steps = max(1, n // bs)
        shard = bs // self.world  # this rank's part of every batch
        lo = self.rank * shard
        beta = torch.tensor(beta_schedule(self.epoch, c["lambda_kld"], c["kld_warmup"],
                                          c["kld_cycle"], c["kld_hold"]), device=self.device)
        lr = self.lr_at(self.epoch)
        for opt, scale in ((self.opt, 1.0), (self.opt_d, c["lr_disc_scale"])):
            for group in opt.param_groups if opt is not None else ():
                group["lr"] = lr * scale
        # randomness is a function of (seed, epoch[, rank]): the same batches on every rank,
        # each rank its own augmentations, and a resumed epoch draws what it drew before
        order = torch.Generator(self.device).manual_seed(dist.epoch_seed(c["seed"], self.epoch))
        perm = torch.randperm(n, device=self.device, generator=order)
        self.gen.manual_seed(dist.epoch_seed(c["seed"], self.epoch, self.rank))
        torch.manual_seed(dist.epoch_seed(c["seed"], self.epoch, self.rank))  # dropout
        names = self.stats()
        total = torch.zeros(len(names), device=self.device)
        t0 = time.perf_counter()
        for i in range(steps):
            idx = perm[i * bs + lo:i * bs + lo + shard]
            x, y = self.x[idx], self.y[idx]
            if self.bodies is not None:
                x = self.bodies(idx)
            if c["flip_p"] > 0 and c["mode"] == "supervised":
                x, y = random_flip_pair(x, y, c["flip_p"], self.gen)
            total += self.step(x, y, beta)
        total = dist.mean_over_ranks(total / steps)
        stats = dict(zip(names, total.tolist(), strict=True))  # one sync
        stats.update(epoch=self.epoch + 1, beta=float(beta), lr=self.opt.param_groups[0]["lr"],
                     seconds=round(time.perf_counter() - t0, 3), poses=steps * bs)
        return stats

    def lr_at(self, epoch: int) -> float:
        """The learning rate of an epoch: constant, or a cosine from lr down to 0."""
        c = self.cfg
        if c["lr_schedule"] == "cosine":
            return 0.5 * c["lr"] * (1 + math.cos(math.pi * epoch / c["epochs"]))
        return c["lr"]

    def predict(self, x2d: torch.Tensor, batch: int = 65536) -> torch.Tensor:
        """Single-hypothesis 3D (mean latent), (N, 17, 3) in mm-like units, root at origin."""
        net = self.ema if self.ema is not None else self.lifter
        net.eval()
        return predict(net, self.norm, x2d, batch)

    def validate(self) -> dict:
        """The validation columns of the history (3D: reported, never used to choose)."""
        return validation(self.predict(self.val_x), self.val_gt)

    # ---- checkpoints -----------------------------------------------------------------

    def state(self) -> dict:
        return {
            "epoch": self.epoch, "config": self.cfg, "normalizer": self.norm.to_dict(),
            "lifter": self.lifter.state_dict(), "opt": self.opt.state_dict(),
            "lifter_ema": self.ema.state_dict() if self.ema is not None else None,
            "ema_steps": self.ema_steps, "up_run": self.views.up_run,
            "disc": self.disc.state_dict() if self.disc is not None else None,
            "opt_d": self.opt_d.state_dict() if self.opt_d is not None else None,
            "device_type": self.device.type, "world_size": self.world,
        }

    def save(self, name: str = "checkpoint.pt") -> Path:
        state = self.state()
        return atomic_write(self.out / name, lambda f: torch.save(state, f))

    def load(self, path: str | os.PathLike) -> None:
        """Restore a checkpoint of the same configuration (runtime keys may differ).

        Tensors are read onto the CPU and moved by ``load_state_dict`` to where the networks
        live, so a run checkpointed on one device resumes on another; the random-number
        streams continue exactly only on the device type that wrote them.
        """
        ckpt = read_checkpoint(path)
        changed = config_differences(ckpt["config"], self.cfg)
        if changed:
            raise ConfigError(f"{path}: written with another configuration (differs in "
                              f"{changed}); train afresh without --resume")
        self.lifter.load_state_dict(ckpt["lifter"])
        if self.ema is not None:
            self.ema.load_state_dict(ckpt["lifter_ema"])
            self.ema_steps = ckpt.get("ema_steps", 0)
        up_run = ckpt.get("up_run")
        self.views.up_run = None if up_run is None else up_run.to(self.device)
        self.opt.load_state_dict(ckpt["opt"])
        if self.disc is not None:
            self.disc.load_state_dict(ckpt["disc"])
            self.opt_d.load_state_dict(ckpt["opt_d"])
        self.epoch = ckpt["epoch"]  # the random streams depend on the epoch alone

    # ---- the loop ----------------------------------------------------------------------

    def fit(self, resume: bool = False, stop_after: int | None = None,
            force: bool = False) -> list[dict]:
        """Train to ``cfg['epochs']`` (or for ``stop_after`` more epochs, for tests).

        ``resume`` continues from the folder's checkpoint (an error if there is none).
        Without it, a folder that already holds a run (finished or with a checkpoint) is an
        error unless ``force``: a repeated command never deletes a run by accident.
        """
        c = self.cfg
        run = Run(self.out)
        if run.path.exists() and not run.path.is_dir():
            raise RunError(f"{run.path}: is a file, not a run folder; choose another --out")
        if resume and not run.checkpoint.is_file():
            raise RunError(f"{run.checkpoint}: no checkpoint to resume from; train without "
                           f"--resume to start afresh")
        if not resume and not force and (run.done_path.is_file() or run.checkpoint.is_file()):
            state = "a finished run" if run.done_path.is_file() else "an interrupted run"
            raise RunError(f"{run.path}: holds {state}; --resume to continue it, --force to "
                           f"replace it, or --out for another folder")
        main = self.rank == 0  # several ranks: rank 0 alone writes the run folder
        if resume:
            self.load(run.checkpoint)
        dist.barrier()  # every rank has checked the folder and read the checkpoint
        if main:
            self._prepare_folder(run, resume)
        last = c["epochs"] if stop_after is None else min(c["epochs"], self.epoch + stop_after)
        rows = []
        bar = tqdm(range(self.epoch, last), initial=self.epoch, total=c["epochs"],
                   desc=self.name(), unit="epoch", disable=not (c["progress"] and main))
        for _ in bar:
            row = self.train_epoch()
            self.epoch += 1
            if not main:
                rows.append(row)
                continue
            if self.epoch % c["val_every"] == 0 or self.epoch == c["epochs"]:
                row.update(self.validate())
            rows.append(row)
            with open(run.history_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            bar.set_postfix(loss=f"{row['loss']:.4f}",
                            pa_mpjpe=f"{row.get('val_pa_mpjpe', float('nan')):.1f}")
            if self.epoch > c["epochs"] - c["select_epochs"]:  # a candidate for selection
                self._keep_candidate(run)
            if self.epoch % c["checkpoint_every"] == 0 or self.epoch == c["epochs"]:
                self.save()
        if main and self.epoch >= c["epochs"]:
            if c["select_epochs"]:  # before orient: the sign is the chosen weights'
                choose_epoch(run.path, self.train_split)
            if c["orient"]:
                run.orient(self.train_split)
            run.done_path.write_text(f"{self.epoch}\n")
        dist.barrier()  # no rank leaves before the run folder is complete
        return rows

    def _keep_candidate(self, run: Run) -> None:
        """This epoch's averaged weights (or the weights), for ``lib.evaluate.choose_epoch``."""
        weights = (self.ema if self.ema is not None else self.lifter).state_dict()
        path = run.candidate_path(self.epoch)
        path.parent.mkdir(exist_ok=True)
        atomic_write(path, lambda f: torch.save(weights, f))

    def _prepare_folder(self, run: Run, resume: bool) -> None:
        run.path.mkdir(parents=True, exist_ok=True)
        for torn in run.path.glob(".*.tmp"):  # a write cut short by a kill: never renamed
            torn.unlink()
        if resume:
            run.truncate_history(self.epoch)
        else:
            # a fresh run: nothing of an earlier run in this folder may survive to be
            # resumed or reported under this configuration
            for stale in run.derived():
                stale.unlink(missing_ok=True)
        run.write_config(self.cfg)

    def name(self) -> str:
        """What the progress bar says: the run folder's name, mode and ranks."""
        ranks = f", {self.world} ranks" if self.world > 1 else ""
        return f"train {self.out.name} ({self.cfg['mode']}{ranks})"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m lib.train", description=__doc__.split("\n")[0])
    p.add_argument("--params", help="YAML parameter file (e.g. params/quick.yaml)")
    p.add_argument("--out", help="run folder (default runs/<profile>/<mode>: the params file's "
                                 "stem, with a hash of its path for a file outside params/)")
    p.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    p.add_argument("--force", action="store_true",
                   help="replace a run already in the folder (default: refuse)")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    args = p.parse_args(argv)
    exit_on_sigterm()  # a killed training still removes its temporary files
    try:
        params = load_params(args.params) if args.params else {}
        cfg = make_config(params, parse_overrides(args.overrides))
        name = profile_name(args.params) if args.params else "custom"
        out = Path(args.out or REPO / "runs" / name / cfg["mode"])
        trainer = Trainer(cfg, out)
        run = Run(out)
        if (args.params and trainer.rank == 0 and not out.is_file()
                and (args.resume or args.force or not (run.done_path.is_file()
                                                       or run.checkpoint.is_file()))):
            run.record_made_by(profile_source(args.params))  # what lib.book checks
        rows = trainer.fit(resume=args.resume, force=args.force)
    except (ConfigError, DataError, RunError) as e:
        sys.exit(f"error: {e}")
    except OSError as e:  # a run folder that cannot be written
        sys.exit(f"error: {e.filename or out}: {e.strerror or e}")
    finally:
        dist.shutdown()
    if trainer.rank != 0:
        return
    last = rows[-1] if rows else {}
    print(json.dumps({"run": str(out), "epochs": trainer.epoch, "device": str(trainer.device),
                      "val_pa_mpjpe": last.get("val_pa_mpjpe"),
                      "seconds_per_epoch": (sum(r["seconds"] for r in rows) / len(rows))
                      if rows else None}))


if __name__ == "__main__":
    main()
