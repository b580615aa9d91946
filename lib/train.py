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
import json
import os
import sys
import time
import warnings
from pathlib import Path

import torch
import yaml
from tqdm.auto import tqdm

from . import data as D
from .geometry import Normalizer, apply_mask, flip, random_flip, random_missing_mask
from .losses import (
    beta_schedule,
    discriminator_loss,
    generator_adversarial_loss,
    kl_divergence,
    project,
    projection_loss,
    random_rotation_y,
    real_input_noise,
    supervised_loss,
)
from .metrics import pa_mpjpe
from .models import MODES, build_models, predict
from .priors import hinge_loss

DEFAULTS = {
    # data
    "dataset": "bnmd17",  # "bnmd17" or "h36m" (a cache folder made by lib.h36m)
    "source": None,  # dataset folder or archive (else $HPE_DATA, then the default)
    "cache": None,  # cache folder (else $HPE_CACHE, then <repo>/cache)
    "h36m_dir": None,  # folder with train.npz / test.npz for dataset: h36m
    "frame_step": 4,
    "scale_mode": "dataset",  # 2D scale: "dataset" (the author's) or "pose"
    "train_size": None,  # use a random subset of this many training poses
    "val_split": "test_unseen_styles",
    "val_size": 4096,  # fixed subset for the per-epoch PA-MPJPE (monitoring only)
    # model (lib.models.build_models)
    "mode": "vae_gan",
    "width": 1024,
    "latent": 51,
    "enc_blocks": 1,
    "dec_blocks": 1,
    "disc_blocks": 2,
    "dropout": 0.2,
    "disc_dropout": 0.5,
    "out_scale": 1.3,
    # optimisation (the thesis's values)
    "epochs": 400,
    "batch_size": 2560,
    "lr": 2e-4,
    "lambda_recon": 1.0,
    "lambda_kld": 1e-3,
    "lambda_disc": 1e-3,
    "kld_warmup": 10,
    "kld_cycle": 40,
    "kld_hold": 10,
    "clip_disc": 1.0,
    "clip_vae_norm": 2.0,
    "clip_vae_value": 1000.0,
    "flip_p": 0.5,
    "p_miss": 0.0,  # fraction of training poses with 1 or 2 limb joints hidden
    "real_label_low": 0.7,
    "real_label_high": 1.0,
    "real_noise": 0.005,
    # novel views shown to the discriminator: azimuth and elevation ranges, degrees
    "azim_min": -180.0,
    "azim_max": 180.0,
    "elev_min": 0.0,
    "elev_max": 0.0,
    # mirror-aware prior (issue 5): weight of the anatomical hinge loss, 0 = the thesis
    "lambda_hinge": 0.0,
    # runtime
    "device": "auto",  # "auto", "cpu", "cuda", "cuda:1", ...
    "seed": 0,
    "bf16": False,  # bfloat16 autocast on CUDA
    "compile": False,  # torch.compile the networks: false, true or "reduce-overhead"
    "tf32": True,  # TensorFloat-32 matrix products on CUDA
    "checkpoint_every": 10,
    "val_every": 1,
    "progress": True,
}


# keys that may change between a checkpoint and its resumption (how, not what, is trained)
RUNTIME_KEYS = frozenset({"device", "compile", "bf16", "tf32", "progress", "epochs",
                          "checkpoint_every", "val_every"})


class ConfigError(ValueError):
    """A parameter is unknown or has an invalid value."""


def make_config(params: dict | None = None, overrides: dict | None = None) -> dict:
    """DEFAULTS updated by a parameter dict and then by overrides; unknown keys are errors."""
    cfg = dict(DEFAULTS)
    for src in (params or {}), (overrides or {}):
        unknown = sorted(set(src) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"unknown parameter(s) {unknown}; valid keys: {sorted(DEFAULTS)}")
        cfg.update(src)
    for key, default in DEFAULTS.items():  # YAML reads 1e-3 (no dot) as a string
        if isinstance(default, float) and isinstance(cfg[key], str):
            try:
                cfg[key] = float(cfg[key])
            except ValueError:
                raise ConfigError(f"{key} must be a number, got {cfg[key]!r}") from None
    for key in ("epochs", "batch_size", "width", "latent", "checkpoint_every", "val_every"):
        if not isinstance(cfg[key], int) or cfg[key] <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {cfg[key]!r}")
    if cfg["mode"] not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {cfg['mode']!r}")
    if not 0 <= cfg["p_miss"] <= 1 or not 0 <= cfg["flip_p"] <= 1:
        raise ConfigError("p_miss and flip_p must lie in [0, 1]")
    if cfg["lr"] <= 0:
        raise ConfigError(f"lr must be positive, got {cfg['lr']!r}")
    return cfg


def load_params(path: str | os.PathLike) -> dict:
    """A YAML parameter file as a dict (a missing or malformed file is a clear error)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameter file not found")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value")
    return params


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------


def h36m_folder(cfg: dict) -> Path:
    """The Human3.6M cache folder of a configuration; a relative path is taken from the
    repository root, so notebooks (run from book/) and the shell agree."""
    folder = Path(cfg["h36m_dir"]).expanduser()
    return folder if folder.is_absolute() else D.REPO / folder


def load_splits(cfg: dict) -> tuple[dict, dict]:
    """(training split, validation split) as dicts of numpy arrays."""
    if cfg["dataset"] == "bnmd17":
        folder = D.bnmd17(cfg["source"], cfg["cache"], cfg["frame_step"],
                          progress=cfg["progress"])
        return D.load_split(folder / "train.npz"), D.load_split(folder / f"{cfg['val_split']}.npz")
    if cfg["dataset"] == "h36m":
        if not cfg["h36m_dir"]:
            raise ConfigError("dataset: h36m needs h36m_dir (a folder made by lib.h36m)")
        folder = h36m_folder(cfg)
        return D.load_split(folder / "train.npz"), D.load_split(folder / "test.npz")
    raise ConfigError(f"dataset must be 'bnmd17' or 'h36m', got {cfg['dataset']!r}")


# --------------------------------------------------------------------------------------
# the trainer
# --------------------------------------------------------------------------------------


class Trainer:
    """Holds the networks, optimisers, data tensors and RNG of one run."""

    def __init__(self, cfg: dict, out: str | os.PathLike, train: dict | None = None,
                 val: dict | None = None):
        self.cfg = cfg = make_config(cfg)
        self.out = Path(out)
        self.device = pick_device(cfg["device"])
        torch.manual_seed(cfg["seed"])
        self.gen = torch.Generator(self.device).manual_seed(cfg["seed"])
        if train is None:
            train, val = load_splits(cfg)
        train = D.subset(train, cfg["train_size"], cfg["seed"])
        val = D.subset(val, cfg["val_size"], cfg["seed"] + 1)
        self.norm = Normalizer.fit(train, cfg["scale_mode"])
        dev = self.device
        self.x = torch.as_tensor(self.norm.pose2d(train["pose2d"]), device=dev)
        self.y = torch.as_tensor(self.norm.pose3d(train["pose3d"]), device=dev)
        self.val_x = torch.as_tensor(self.norm.pose2d(val["pose2d"]), device=dev)
        self.val_gt = torch.as_tensor(val["pose3d"] - val["pose3d"][:, :1], device=dev)

        nets = build_models(cfg)
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
        self.epoch = 0

    # ---- one optimisation step -------------------------------------------------------

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.cfg["bf16"] and self.device.type == "cuda")

    def _novel_views(self, pose3d: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        rotated = random_rotation_y(pose3d, generator=self.gen, min_deg=c["azim_min"],
                                    max_deg=c["azim_max"], elev_min_deg=c["elev_min"],
                                    elev_max_deg=c["elev_max"])
        return project(rotated).flatten(1)

    def step(self, x: torch.Tensor, y: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """One step on a batch; returns the statistics row (see ``STATS``) as a tensor."""
        c, zero = self.cfg, x.new_zeros(())
        if c["mode"] != "supervised":  # (supervised flips inputs and targets together)
            x = random_flip(x, 2, c["flip_p"], self.gen)
        mask = random_missing_mask(len(x), c["p_miss"], x.device, self.gen)
        x_in = apply_mask(x, mask) if c["p_miss"] > 0 else x

        if c["mode"] == "supervised":
            with self._autocast():
                pred, _, _ = self.lifter(x_in)
                loss = supervised_loss(pred.float(), y)
            self._update(self.opt, self.lifter, loss, c["clip_vae_norm"], c["clip_vae_value"])
            return torch.stack([loss.detach(), zero, zero, zero, zero, zero, zero, zero])

        # one forward of the lifter serves both players (as in the usual GAN recipe): the
        # discriminator learns on its detached novel views, then the lifter on the same views
        with self._autocast():
            pose3d, mu, logvar = self.lifter(x_in, sample=True, generator=self.gen)
        pose3d = pose3d.float()  # geometry (rotation, projection) stays in float32
        novel = self._novel_views(pose3d) if self.disc is not None else None
        d_loss = d_real = d_fake = zero
        if self.disc is not None:  # discriminator: real 2D (with noise) against novel views
            real = real_input_noise(x, c["real_noise"], self.gen)
            with self._autocast():
                logits = self.disc(torch.cat([real, novel.detach()])).float()
                logit_real, logit_fake = logits[:len(x)], logits[len(x):]
                d_loss = discriminator_loss(logit_real, logit_fake,
                                            (c["real_label_low"], c["real_label_high"]),
                                            self.gen)
            self._update(self.opt_d, self.disc, d_loss, c["clip_disc"], None)
            d_real = torch.sigmoid(logit_real).mean().detach()
            d_fake = torch.sigmoid(logit_fake).mean().detach()

        with self._autocast():  # lifter: reproject, stay near the prior, fool the critic
            proj = projection_loss(pose3d, x, mask if c["p_miss"] > 0 else None)
            kld = kl_divergence(mu.float(), logvar.float()) if logvar is not None else zero
            adv = zero
            if self.disc is not None:
                self.disc.requires_grad_(False)  # gradients for the input only
                adv = generator_adversarial_loss(self.disc(novel).float())
            hinge = hinge_loss(pose3d) if c["lambda_hinge"] > 0 else zero
            loss = (c["lambda_recon"] * proj + beta * kld + c["lambda_disc"] * adv
                    + c["lambda_hinge"] * hinge)
        self._update(self.opt, self.lifter, loss, c["clip_vae_norm"], c["clip_vae_value"])
        if self.disc is not None:
            self.disc.requires_grad_(True)
        return torch.stack([loss, proj, kld, adv, d_loss, d_real, d_fake, hinge]).detach()

    @staticmethod
    def _update(opt, module, loss, max_norm, max_value):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        params = [p for p in module.parameters() if p.grad is not None]
        if max_value:
            torch.nn.utils.clip_grad_value_(params, max_value)
        if max_norm:
            torch.nn.utils.clip_grad_norm_(params, max_norm, foreach=True)
        opt.step()

    STATS = ("loss", "proj", "kld", "adv", "d_loss", "d_real", "d_fake", "hinge")

    # ---- epochs ----------------------------------------------------------------------

    def train_epoch(self) -> dict:
        c = self.cfg
        self.lifter.train()
        if self.disc is not None:
            self.disc.train()
        n, bs = len(self.x), min(c["batch_size"], len(self.x))
        steps = max(1, n // bs)
        beta = torch.tensor(beta_schedule(self.epoch, c["lambda_kld"], c["kld_warmup"],
                                          c["kld_cycle"], c["kld_hold"]), device=self.device)
        perm = torch.randperm(n, device=self.device, generator=self.gen)
        total = torch.zeros(len(self.STATS), device=self.device)
        t0 = time.perf_counter()
        for i in range(steps):
            idx = perm[i * bs:(i + 1) * bs]
            x, y = self.x[idx], self.y[idx]
            if c["flip_p"] > 0 and c["mode"] == "supervised":
                x, y = self._flip_pair(x, y)
            total += self.step(x, y, beta)
        stats = dict(zip(self.STATS, (total / steps).tolist(), strict=True))  # one sync
        stats.update(epoch=self.epoch + 1, beta=float(beta), lr=self.opt.param_groups[0]["lr"],
                     seconds=round(time.perf_counter() - t0, 3), poses=steps * bs)
        return stats

    def _flip_pair(self, x, y):
        """Flip 2D inputs and their 3D targets together (supervised mode)."""
        coin = torch.rand(len(x), 1, device=x.device, generator=self.gen) < self.cfg["flip_p"]
        return torch.where(coin, flip(x, 2), x), torch.where(coin, flip(y, 3), y)

    def predict(self, x2d: torch.Tensor, batch: int = 65536) -> torch.Tensor:
        """Single-hypothesis 3D (mean latent), (N, 17, 3) in mm-like units, root at origin."""
        self.lifter.eval()
        return predict(self.lifter, self.norm, x2d, batch)

    def validate(self) -> dict:
        pred = self.predict(self.val_x)
        err = pa_mpjpe(pred, self.val_gt)
        err_reflect = pa_mpjpe(pred, self.val_gt, allow_reflection=True)
        hist = torch.histc(err.clamp(max=299.0), bins=60, min=0, max=300)
        return {"val_pa_mpjpe": float(err.mean()),
                "val_pa_mpjpe_reflect": float(err_reflect.mean()),
                "val_hist": hist.int().tolist()}

    # ---- checkpoints -----------------------------------------------------------------

    def state(self) -> dict:
        return {
            "epoch": self.epoch, "config": self.cfg, "normalizer": self.norm.to_dict(),
            "lifter": self.lifter.state_dict(), "opt": self.opt.state_dict(),
            "disc": self.disc.state_dict() if self.disc is not None else None,
            "opt_d": self.opt_d.state_dict() if self.opt_d is not None else None,
            "device_type": self.device.type,
            "rng_cpu": torch.get_rng_state(), "rng_gen": self.gen.get_state(),
            "rng_cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda"
            else None,
        }

    def save(self, name: str = "checkpoint.pt") -> Path:
        path = self.out / name
        tmp = path.with_suffix(".pt.tmp")
        torch.save(self.state(), tmp)
        os.replace(tmp, path)
        return path

    def load(self, path: str | os.PathLike) -> None:
        """Restore a checkpoint of the same configuration (runtime keys may differ).

        Tensors are read onto the CPU and moved by ``load_state_dict`` to where the networks
        live, so a run checkpointed on one device resumes on another; the random-number
        streams continue exactly only on the device type that wrote them.
        """
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        changed = sorted(k for k in set(ckpt["config"]) | set(self.cfg)
                         if k not in RUNTIME_KEYS and ckpt["config"].get(k) != self.cfg.get(k))
        if changed:
            raise ConfigError(f"{path}: written with another configuration (differs in "
                              f"{changed}); train afresh without --resume")
        self.lifter.load_state_dict(ckpt["lifter"])
        self.opt.load_state_dict(ckpt["opt"])
        if self.disc is not None:
            self.disc.load_state_dict(ckpt["disc"])
            self.opt_d.load_state_dict(ckpt["opt_d"])
        torch.set_rng_state(ckpt["rng_cpu"])
        if ckpt.get("device_type") == self.device.type:
            self.gen.set_state(ckpt["rng_gen"])
            if ckpt["rng_cuda"] is not None:
                torch.cuda.set_rng_state(ckpt["rng_cuda"], self.device)
        else:
            warnings.warn(f"{path}: written on {ckpt.get('device_type')}, resumed on "
                          f"{self.device.type}: the random streams restart from the seed",
                          stacklevel=2)
        self.epoch = ckpt["epoch"]

    # ---- the loop ----------------------------------------------------------------------

    def fit(self, resume: bool = False, stop_after: int | None = None) -> list[dict]:
        """Train to ``cfg['epochs']`` (or for ``stop_after`` more epochs, for tests)."""
        c = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        history_path = self.out / "history.jsonl"
        ckpt_path = self.out / "checkpoint.pt"
        if resume and ckpt_path.is_file():
            self.load(ckpt_path)
            _truncate_history(history_path, self.epoch)
        else:
            # a fresh run: nothing of an earlier run in this folder may survive to be
            # resumed or reported under this configuration
            for stale in (history_path, ckpt_path, self.out / "done",
                          *self.out.glob("eval-*.json")):
                stale.unlink(missing_ok=True)
        (self.out / "config.yaml").write_text(yaml.safe_dump(c, sort_keys=False))
        last = c["epochs"] if stop_after is None else min(c["epochs"], self.epoch + stop_after)
        rows = []
        bar = tqdm(range(self.epoch, last), initial=self.epoch, total=c["epochs"],
                   desc=f"train {c['mode']}", unit="epoch", disable=not c["progress"])
        for _ in bar:
            row = self.train_epoch()
            self.epoch += 1
            if self.epoch % c["val_every"] == 0 or self.epoch == c["epochs"]:
                row.update(self.validate())
            rows.append(row)
            with open(history_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            bar.set_postfix(loss=f"{row['loss']:.4f}",
                            pa_mpjpe=f"{row.get('val_pa_mpjpe', float('nan')):.1f}")
            if self.epoch % c["checkpoint_every"] == 0 or self.epoch == c["epochs"]:
                self.save()
        if self.epoch >= c["epochs"]:
            (self.out / "done").write_text(f"{self.epoch}\n")
        return rows


def _truncate_history(path: Path, epoch: int) -> None:
    """Drop history lines written after the checkpoint being resumed from."""
    if not path.is_file():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln and json.loads(ln)["epoch"] <= epoch]
    path.write_text("".join(ln + "\n" for ln in keep))


def read_history(run: str | os.PathLike) -> list[dict]:
    path = Path(run) / "history.jsonl"
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln]


def load_run(run: str | os.PathLike, device: str = "auto") -> tuple[torch.nn.Module, Normalizer,
                                                                   dict]:
    """(lifter in eval mode, normaliser, config) of a finished or checkpointed run."""
    path = Path(run) / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint; train first with python -m lib.train")
    dev = pick_device(device)
    ckpt = torch.load(path, map_location=dev, weights_only=False)
    lifter = build_models(ckpt["config"])["lifter"].to(dev)
    lifter.load_state_dict(ckpt["lifter"])
    return lifter.eval(), Normalizer(**ckpt["normalizer"]), ckpt["config"]


def is_finished(run: str | os.PathLike, cfg: dict) -> bool:
    """True if ``run`` holds a finished training with exactly this configuration."""
    run = Path(run)
    if not (run / "done").is_file() or not (run / "config.yaml").is_file():
        return False
    return yaml.safe_load((run / "config.yaml").read_text()) == make_config(cfg)


def parse_overrides(items: list[str]) -> dict:
    """``key=value`` strings -> dict, values parsed as YAML (numbers, booleans, null)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m lib.train", description=__doc__.split("\n")[0])
    p.add_argument("--params", help="YAML parameter file (e.g. params/quick.yaml)")
    p.add_argument("--out", help="run folder (default runs/<params name>/<mode>)")
    p.add_argument("--resume", action="store_true", help="continue from the run's checkpoint")
    p.add_argument("overrides", nargs="*", metavar="key=value")
    args = p.parse_args(argv)
    try:
        params = load_params(args.params) if args.params else {}
        cfg = make_config(params, parse_overrides(args.overrides))
        name = Path(args.params).stem if args.params else "custom"
        out = Path(args.out or D.REPO / "runs" / name / cfg["mode"])
        trainer = Trainer(cfg, out)
    except (ConfigError, D.DataError) as e:
        sys.exit(f"error: {e}")
    rows = trainer.fit(resume=args.resume)
    last = rows[-1] if rows else {}
    print(json.dumps({"run": str(out), "epochs": trainer.epoch, "device": str(trainer.device),
                      "val_pa_mpjpe": last.get("val_pa_mpjpe"),
                      "seconds_per_epoch": (sum(r["seconds"] for r in rows) / len(rows))
                      if rows else None}))


if __name__ == "__main__":
    main()
