"""The configuration of a run: every parameter, its default, and the checks on its value.

A run is configured by ``DEFAULTS`` updated by a parameter file (``params/*.yaml``) and then
by ``key=value`` overrides; an unknown key or an ill-typed value is a :class:`ConfigError`.
The model, trainer, evaluation and book all read the same dict.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parent.parent  # the repository: params/, runs/, book/
MODES = ("vae_gan", "vae", "det_gan", "supervised")
PARAMS_DIR = REPO / "params"  # the built-in profiles

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
    "disc_features": "pose",  # what the discriminator sees: "pose" or "pose" + "kcs"
    "out_scale": 1.3,
    "sup_blocks": 2,  # the supervised baseline (Martinez et al.): residual blocks, dropout
    "sup_dropout": 0.5,
    # optimisation (the thesis's values)
    "epochs": 400,
    "batch_size": 2560,
    "lr": 2e-4,
    "lr_disc_scale": 1.0,  # the discriminator's learning rate, as a multiple of lr
    # R1 gradient penalty of the discriminator (Mescheder et al. 2018): lambda_r1 / 2 times
    # the mean squared norm of its logit's gradient at the real 2D poses (0: none)
    "lambda_r1": 0.0,
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
    # a 2D detector's error in training: every training 2D pose (the lifter's input and the
    # discriminator's real poses alike) gets Gaussian noise of u * input_noise of its 2D
    # height, u uniform in [0, 1] per pose (0: clean 2D, the thesis)
    "input_noise": 0.0,
    # fraction of training poses re-played on a random body (lib.bodies) before projection:
    # the 2D training set is then synthesised from the mocap with varied bone lengths
    "body_augment": 0.0,
    # at evaluation and lifting, average each prediction with the mirror of the prediction
    # for the mirrored input (test-time flip; changes no training)
    "flip_test": False,
    "real_label_low": 0.7,
    "real_label_high": 1.0,
    "real_noise": 0.005,
    # which 2D poses the discriminator sees with that noise: "real" (the thesis) or "both"
    # (real and novel views alike, so that the noise itself is no tell)
    "noise_on": "real",
    # novel views shown to the discriminator: azimuth and elevation ranges, degrees
    "azim_min": -180.0,
    "azim_max": 180.0,
    "elev_min": 0.0,
    "elev_max": 0.0,
    # the axis novel views turn about: "camera" (the camera's vertical y, the thesis) or "up"
    # (the world's vertical, estimated from each batch's lifted poses: geometry.up_direction)
    "view_axis": "camera",
    # with view_axis "up": the vertical the views turn about is a running average over steps
    # of the batches' estimates, with this momentum (0 = each batch's own estimate)
    "up_momentum": 0.0,
    # with view_axis "up": the range (degrees) the vertical's tilt towards the camera is held
    # in (the camera's elevation, as cameras look down on people: e.g. [0, 30]); null = free
    "up_tilt_range": None,
    # with view_axis "up": the first this many epochs' novel views turn about the camera's
    # vertical instead, so that the lifted world starts upright before it sets its own axis
    "up_warmup": 0,
    # with view_axis "up" and up_warmup > 0: the vertical is the mean of the batches'
    # estimates over the upright start's last epoch, held fixed from then on (false: each
    # batch's own estimate, which the lifter's own output moves)
    "up_freeze": False,
    # mirror-aware prior (the mirror fix): weight of the anatomical hinge loss, 0 = the thesis
    "lambda_hinge": 0.0,
    # levers of the unsupervised lifter "ours"; the defaults are the thesis's
    "depth_only": False,  # predict per-joint depth only; x, y come from the 2D input
    "lambda_cycle": 0.0,  # lift -> rotate -> project -> lift again -> rotate back consistency
    "lambda_sym": 0.0,  # left/right bone-length symmetry prior
    "lambda_tilt": 0.0,  # cameras look down: the batch's vertical must not tilt away from them
    "ema": 0.0,  # decay of an exponential moving average of the lifter's weights, 0 = none
    # keep the averaged weights of the last k epochs (all, if fewer) and let the 2D-only
    # realism test choose the model among them (lib.runs.Run.select); 0 = the last epoch's
    "select_epochs": 0,
    # at evaluation and lifting: the weights that selection chose (true) or the last epoch's
    "use_selection": True,
    # train the model this many times from different seeds (restart k of seed s is the run
    # of seed s + 100 k) and predict with the mean of those whose lifts agree, or else the
    # one the 2D-only realism test scores best (lib.experiment.choose_restarts); 1 = one
    # training
    "restarts": 1,
    # with restarts > 1: while fewer than `restarts` of the trainings agree, train up to this
    # many more (seeds s + 100 k, k = restarts, restarts + 1, ...) and choose again
    "spare_restarts": 0,
    "lr_schedule": "constant",  # "constant" or "cosine" (decays to 0 at the last epoch)
    # after training, pick the depth sign whose knees bend forwards on training 2D poses
    # (lib.priors.orientation); applied to predictions, the weights are not changed
    "orient": False,
    # runtime
    "device": "auto",  # "auto", "cpu", "cuda", "cuda:1", ...
    "seed": 0,
    # bfloat16 autocast of the matrix products: true, false, or "auto" (where the hardware
    # does bfloat16 natively: a CUDA GPU that supports it, a CPU with AVX-512 BF16 or AMX)
    "bf16": False,
    "compile": False,  # torch.compile the networks: false, true or "reduce-overhead"
    "tf32": True,  # TensorFloat-32 matrix products on CUDA
    "checkpoint_every": 10,
    "val_every": 1,
    "progress": True,
}


# keys that may change between a checkpoint and its resumption (how, not what, is trained)
RUNTIME_KEYS = frozenset({"device", "compile", "bf16", "tf32", "progress", "epochs",
                          "checkpoint_every", "val_every", "orient", "flip_test",
                          "use_selection", "restarts", "spare_restarts"})


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
    check_types(cfg)
    for key in ("epochs", "batch_size", "width", "latent", "checkpoint_every", "val_every",
                "frame_step", "val_size", "enc_blocks", "dec_blocks", "disc_blocks",
                "sup_blocks"):
        if cfg[key] <= 0:
            raise ConfigError(f"{key} must be a positive integer, got {cfg[key]!r}")
    if cfg["train_size"] is not None and (not _is_int(cfg["train_size"])
                                          or cfg["train_size"] <= 0):
        raise ConfigError(f"train_size must be a positive integer or null (all poses), got "
                          f"{cfg['train_size']!r}")
    for key in ("dropout", "disc_dropout", "sup_dropout"):
        if not 0 <= cfg[key] < 1:
            raise ConfigError(f"{key} is a probability in [0, 1), got {cfg[key]!r}")
    negative = [k for k in cfg if k.startswith(("lambda_", "clip_")) and cfg[k] < 0]
    if negative:
        raise ConfigError(f"{negative[0]} must not be negative, got {cfg[negative[0]]!r}")
    if cfg["mode"] not in MODES:
        raise ConfigError(f"mode must be one of {MODES}, got {cfg['mode']!r}")
    if not 0 <= cfg["p_miss"] <= 1 or not 0 <= cfg["flip_p"] <= 1:
        raise ConfigError("p_miss and flip_p must lie in [0, 1]")
    if not 0 <= cfg["body_augment"] <= 1:
        raise ConfigError(f"body_augment must lie in [0, 1], got {cfg['body_augment']!r}")
    if cfg["lr_disc_scale"] <= 0:
        raise ConfigError(f"lr_disc_scale must be positive, got {cfg['lr_disc_scale']!r}")
    if cfg["lambda_r1"] < 0:
        raise ConfigError(f"lambda_r1 must not be negative, got {cfg['lambda_r1']!r}")
    if cfg["lr"] <= 0:
        raise ConfigError(f"lr must be positive, got {cfg['lr']!r}")
    if cfg["noise_on"] not in ("real", "both"):
        raise ConfigError(f"noise_on must be 'real' or 'both', got {cfg['noise_on']!r}")
    if cfg["view_axis"] not in ("camera", "up"):
        raise ConfigError(f"view_axis must be 'camera' or 'up', got {cfg['view_axis']!r}")
    if cfg["disc_features"] not in ("pose", "kcs"):
        raise ConfigError(f"disc_features must be 'pose' or 'kcs', got {cfg['disc_features']!r}")
    rng = cfg["up_tilt_range"]
    if rng is not None and not (isinstance(rng, (list, tuple)) and len(rng) == 2
                                and all(isinstance(v, (int, float)) for v in rng)
                                and -90 <= rng[0] <= rng[1] <= 90):
        raise ConfigError(f"up_tilt_range must be null or [low, high] degrees with "
                          f"-90 <= low <= high <= 90, got {rng!r}")
    if not _is_int(cfg["up_warmup"]) or cfg["up_warmup"] < 0:
        raise ConfigError(f"up_warmup must be a whole number of epochs >= 0, "
                          f"got {cfg['up_warmup']!r}")
    if cfg["select_epochs"] < 0:  # more than there are epochs: all of them
        raise ConfigError(f"select_epochs must not be negative, got {cfg['select_epochs']!r}")
    if not _is_int(cfg["restarts"]) or cfg["restarts"] < 1:
        raise ConfigError(f"restarts must be a positive integer, got {cfg['restarts']!r}")
    if not _is_int(cfg["spare_restarts"]) or cfg["spare_restarts"] < 0:
        raise ConfigError(f"spare_restarts must be a whole number >= 0, "
                          f"got {cfg['spare_restarts']!r}")
    if cfg["up_freeze"] and (cfg["view_axis"] != "up" or cfg["up_warmup"] < 1
                             or cfg["up_momentum"] > 0):
        raise ConfigError("up_freeze holds the vertical found in the upright start: it needs "
                          "view_axis 'up', up_warmup >= 1 and up_momentum 0")
    if not isinstance(cfg["input_noise"], (int, float)) or not 0 <= cfg["input_noise"] < 0.5:
        raise ConfigError(f"input_noise must be a share of the pose's height in [0, 0.5), "
                          f"got {cfg['input_noise']!r}")
    if not 0 <= cfg["up_momentum"] < 1:
        raise ConfigError(f"up_momentum must lie in [0, 1), got {cfg['up_momentum']!r}")
    if not 0 <= cfg["ema"] < 1:
        raise ConfigError(f"ema must lie in [0, 1), got {cfg['ema']!r}")
    if cfg["lr_schedule"] not in ("constant", "cosine"):
        raise ConfigError(f"lr_schedule must be 'constant' or 'cosine', got {cfg['lr_schedule']!r}")
    if (cfg["lambda_cycle"] > 0 or cfg["depth_only"]) and cfg["mode"] == "supervised":
        raise ConfigError("depth_only and lambda_cycle apply to the unsupervised modes only")
    if cfg["body_augment"] > 0 and (cfg["mode"] == "supervised" or cfg["dataset"] != "bnmd17"):
        raise ConfigError("body_augment re-plays BNMD-17's mocap through its own cameras: it "
                          "applies to the unsupervised modes on dataset: bnmd17 only")
    if cfg["lambda_cycle"] > 0 and cfg["p_miss"] > 0:
        raise ConfigError("lambda_cycle compares whole poses, so it cannot train with missing "
                          "joints (p_miss > 0)")
    if cfg["orient"] and not cfg["depth_only"]:
        raise ConfigError("orient mirrors predicted depths, which keeps the input exactly only "
                          "for a depth_only lifter")
    if not (isinstance(cfg["bf16"], bool) or cfg["bf16"] == "auto"):
        raise ConfigError(f"bf16 must be true, false or 'auto', got {cfg['bf16']!r}")
    if cfg["compile"] not in (False, True, "reduce-overhead", "max-autotune"):
        raise ConfigError(f"compile must be false, true, 'reduce-overhead' or 'max-autotune', "
                          f"got {cfg['compile']!r}")
    try:
        dev = pick_device(cfg["device"])
    except (RuntimeError, TypeError) as e:
        raise ConfigError(f"device {cfg['device']!r} is not a device ({e}); use auto, cpu or "
                          f"cuda[:N]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {cfg['device']!r}: CUDA is not available on this machine; "
                          f"use device=auto or cpu")
    if dev.type != "cuda" and cfg["compile"] == "reduce-overhead":
        raise ConfigError(f"compile: reduce-overhead is a CUDA option and this run trains on "
                          f"{dev.type}; drop it or use a GPU")
    if cfg["depth_only"] and cfg["p_miss"] > 0:
        raise ConfigError("depth_only takes x, y from the input, so it cannot train with "
                          "missing joints (p_miss > 0)")
    return cfg


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_types(cfg: dict) -> None:
    """Each value has its default's type: whole numbers where the default is one (``true`` is
    not 1), finite numbers where it is a float, true/false where it is a boolean."""
    for key, default in DEFAULTS.items():
        v = cfg[key]
        if isinstance(default, bool) and key not in ("compile", "bf16"):
            ok, what = isinstance(v, bool), "true or false"
        elif _is_int(default) and key != "seed":
            ok, what = _is_int(v), "a whole number"
        elif key == "seed":
            ok, what = _is_int(v) and v >= 0, "a whole number >= 0"
        elif isinstance(default, float):
            ok = (_is_int(v) or isinstance(v, float)) and math.isfinite(v)
            what = "a finite number"
        else:
            continue
        if not ok:
            raise ConfigError(f"{key} must be {what}, got {v!r}")


def load_params(path: str | os.PathLike) -> dict:
    """A YAML parameter file as a dict (a missing or malformed file is a clear error)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameter file not found")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (a YAML file of key: value lines "
                          f"expected)") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(params, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value")
    return params


def is_builtin(path: str | os.PathLike, params_dir: str | os.PathLike = PARAMS_DIR) -> bool:
    """True for a built-in profile: a parameter file in the repository's ``params/`` (itself
    perhaps a link to a file elsewhere)."""
    return Path(path).expanduser().absolute().parent.resolve() == Path(params_dir).resolve()


def profile_source(path: str | os.PathLike, params_dir: str | os.PathLike = PARAMS_DIR) -> str:
    """Which parameter file a run was made by, as its run folder records it
    (:meth:`lib.runs.Run.made_by`): ``params/<name>.yaml`` for a built-in profile (wherever
    the repository lies), else the file's resolved absolute path."""
    if is_builtin(path, params_dir):
        return f"params/{Path(path).name}"
    return str(Path(path).expanduser().resolve())


def profile_name(path: str | os.PathLike, params_dir: str | os.PathLike = PARAMS_DIR) -> str:
    """The name a parameter file's runs are filed under (``runs/<name>/``): a built-in
    profile's stem (``default``), else the stem and a short hash of the file's resolved path
    (``default-1a2b3c4d``), so that a copy of ``params/default.yaml`` edited elsewhere never
    files its runs among the built-in profile's, nor two copies among each other's."""
    if is_builtin(path, params_dir):
        return Path(path).stem
    path = Path(path).expanduser().resolve()
    return f"{path.stem}-{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(str(name))


def bf16_enabled(setting, device: torch.device) -> bool:
    """Whether a run autocasts to bfloat16: ``setting`` (the ``bf16`` key) unless "auto",
    which means where the device computes bfloat16 natively (emulated, it is slower than
    float32: 2.2x on a 2-core AVX-512 CPU without BF16, ``python -m lib.bench --variants``)."""
    if setting != "auto":
        return bool(setting)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bf16()


def cpu_has_bf16(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> bool:
    """True if the CPU's flags (Linux's ``/proc/cpuinfo``) name AVX-512 BF16 or AMX-BF16;
    False where they cannot be read."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines()
                  if ln.startswith("flags")), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_model(cpuinfo: str | os.PathLike = "/proc/cpuinfo") -> str:
    """The CPU's model name (``/proc/cpuinfo``; the platform's name where it cannot be read),
    so that a measured time says which host it was measured on."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        import platform

        return platform.processor() or platform.machine()
    return next((ln.split(":", 1)[1].strip() for ln in text.splitlines()
                 if ln.startswith("model name")), "unknown")


def parse_overrides(items: list[str]) -> dict:
    """``key=value`` strings -> dict, values parsed as YAML (numbers, booleans, null)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} is not key=value")
        key, value = item.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out
