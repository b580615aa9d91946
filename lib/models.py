"""Networks: the VAE lifter (encoder + decoder), the 2D pose discriminator and the baselines.

Shapes (see ``lib/losses.py`` for the conventions): a normalised 2D pose is ``(B, 32)`` =
16 joints x (x, y), root removed; a 3D pose is ``(B, 48)`` = 16 joints x (x, y, z),
root-relative, in camera axes.

The layers follow Appendix A of the thesis draft (width 1024, latent 51, Mish, BatchNorm,
dropout 0.2)::

    Encoder        Linear(32,1024)+BN+Mish+Dropout          ("upsampling block")
                   enc_blocks x 2 x [Linear(1024,1024,bias=False)+BN+Mish+Dropout]
                   Linear(1024,51) -> mu, Linear(1024,51) -> logvar
    Decoder        Linear(51,1024)+BN+Mish+Dropout
                   dec_blocks x 2 x [Linear(1024,1024,bias=False)+BN+Mish+Dropout]
                   Linear(1024,48)+Tanh, times out_scale = 1.3
    Discriminator  Linear(32,1024)+LeakyReLU
                   disc_blocks x 2 x [Linear(1024,1024)+LeakyReLU+Dropout(0.5)]
                   Linear(1024,1) -> logit

(each residual block is a pair of layers with a skip connection around the pair)

The draft's table has ONE residual block in the encoder and decoder and TWO in the
discriminator (DESIGN.md's prose says two everywhere); the defaults follow the table and the
counts are configurable. The draft's decoder table prints ``Linear(1024,48)`` twice; both rows
take 1024 inputs, so they cannot be chained, and only one can feed the Tanh: we build one
output layer (the duplicate row is discussed in ``tests/test_models.py``).

The draft's discriminator ends in a Sigmoid and is trained with BCELoss; ours returns logits
and the losses use BCE-with-logits (``lib/losses.py``), which is the same function computed
without the overflow of ``log(sigmoid(x))`` for large ``|x|``.

Lifters share one interface, ``lifter(x2d, sample=...) -> (pose3d, mu, logvar)``, so the
trainer treats the thesis model and the baselines alike:

- :class:`Lifter` over an ``Encoder(variational=True)``: the thesis VAE;
- :class:`Lifter` over an ``Encoder(variational=False)``: deterministic lifter (encoder mean
  -> decoder, no log-variance head, ``logvar`` is ``None``: no KL term);
- :class:`SupervisedLifter`: Martinez et al. 2017 style regressor, ``mu = logvar = None``.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import DEFAULTS, MODES, ConfigError
from .geometry import C, flip, on_device
from .skeleton import PARENTS

LOGVAR_BOUND = 10.0  # log-variance soft-clamped to (-10, 10): std in (0.0067, 148)


class Dropout(nn.Dropout):
    """``nn.Dropout`` made cheap on a CPU, where drawing its mask took a quarter of a training
    step: one 64-bit random integer gives the uniform 16-bit numbers of four elements, and an
    element is kept when its number is at or above ``p`` (to within 2**-16: 0.2 keeps
    0.800003). 3x faster than ``bernoulli_`` on the 2-core machine; like ``nn.Dropout`` it
    draws from the global generator and scales what it keeps by ``1 / (1 - p)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        n = x.numel()
        bits = torch.randint(-2**63, 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64,
                             device=x.device).view(torch.int16)[:n].view(x.shape)
        # keep = bits >= t as 1.0 or 0.0, written without a bool tensor (whose comparison and
        # conversion took 3x longer): bits - (t - 1) is >= 1 where kept and <= 0 elsewhere
        keep = bits.to(x.dtype).sub_(round(self.p * 65536) - 32769).clamp_(0.0, 1.0)
        return x * keep.mul_(1.0 / (1.0 - self.p))


class _Mish(torch.autograd.Function):
    """mish(x) = x tanh(softplus(x)) = x n / w, with n = e^x (e^x + 2) and w = n + 2: one
    exp and a few element-wise operations, mostly in place, where torch's own kernel is slow
    on a CPU, in float32 as in bfloat16. With lib.models' Dropout, a training step of ours
    takes 1.46x less time than with torch's layers (``OMP_NUM_THREADS=1 python -m lib.bench
    --variants``, one thread of the 2-core Xeon, float32), where the earlier bfloat16-only
    version gave 1.35x. d/dx = t + x (1 - t^2) sigmoid(x) with t = n / w, which is
    (w - 2 + 4 x e^x (e^x + 1) / w) / w."""

    @staticmethod
    def forward(ctx, x):
        e = x.clamp(max=20.0).exp_()  # above 20, t is 1 in every float format
        n = (e + 2).mul_(e)
        w = n + 2
        if ctx.needs_input_grad[0]:  # the derivative now, so that only it is kept, not x, e, w
            d = (e + 1).mul_(e).mul_(x).mul_(4).div_(w)
            ctx.save_for_backward(d.add_(w).sub_(2).div_(w))
        return n.div_(w).mul_(x)

    @staticmethod
    def backward(ctx, grad):
        (d,) = ctx.saved_tensors
        return d * grad


class Mish(nn.Mish):
    """``nn.Mish`` computed by ``_Mish`` (same values and gradients, faster on a CPU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Mish.apply(x)


def layer(in_dim: int, out_dim: int, act: nn.Module, bn: bool, dropout: float | None,
          bias: bool = True) -> nn.Sequential:
    """Linear [+ BatchNorm1d] + activation [+ Dropout]; ``dropout=None`` adds no Dropout."""
    mods = [nn.Linear(in_dim, out_dim, bias=bias)]
    if bn:
        mods.append(nn.BatchNorm1d(out_dim))
    mods.append(act)
    if dropout is not None:
        mods.append(Dropout(dropout))
    return nn.Sequential(*mods)


class ResBlock(nn.Module):
    """Two ``layer``s of the same width with a skip connection around the pair: x + f(x)."""

    def __init__(self, width: int, act: type[nn.Module], bn: bool, dropout: float, bias: bool):
        super().__init__()
        self.net = nn.Sequential(layer(width, width, act(), bn, dropout, bias),
                                 layer(width, width, act(), bn, dropout, bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class ResidualStack(nn.Module):
    """The shared trunk: a stem ``layer`` (in_dim -> width) and ``blocks`` residual blocks."""

    def __init__(self, in_dim: int, width: int, blocks: int, act: type[nn.Module], bn: bool,
                 dropout: float, res_bias: bool, stem_dropout: bool = True):
        super().__init__()
        self.stem = layer(in_dim, width, act(), bn, dropout if stem_dropout else None)
        self.blocks = nn.Sequential(*[ResBlock(width, act, bn, dropout, res_bias)
                                      for _ in range(blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x))


class Encoder(nn.Module):
    """2D pose (B, in_dim) -> (mu, logvar), each (B, latent).

    ``logvar`` is soft-clamped, ``LOGVAR_BOUND * tanh(raw / LOGVAR_BOUND)``: the identity
    near 0 and bounded in (-10, 10), so ``exp(logvar)`` cannot overflow. A hard clamp would
    zero the gradient outside the bounds, and a log-variance driven below -10 by the
    projection loss during the KL warm-up (beta = 0) could then never be pulled back by the
    KL term. With ``variational=False`` there is no log-variance head and ``logvar`` is None.
    """

    def __init__(self, in_dim: int = 32, width: int = 1024, latent: int = 51, blocks: int = 1,
                 dropout: float = 0.2, variational: bool = True):
        super().__init__()
        self.body = ResidualStack(in_dim, width, blocks, Mish, bn=True, dropout=dropout,
                                  res_bias=False)
        self.mu = nn.Linear(width, latent)
        self.logvar = nn.Linear(width, latent) if variational else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.body(x)
        if self.logvar is None:
            return self.mu(h), None
        logvar = LOGVAR_BOUND * torch.tanh(self.logvar(h) / LOGVAR_BOUND)
        return self.mu(h), logvar


class Decoder(nn.Module):
    """Latent (B, latent) -> root-relative 3D pose (B, out_dim), each coordinate in
    (-out_scale, out_scale) (Tanh output times ``out_scale``)."""

    def __init__(self, latent: int = 51, width: int = 1024, out_dim: int = 48, blocks: int = 1,
                 dropout: float = 0.2, out_scale: float = 1.3):
        super().__init__()
        self.body = ResidualStack(latent, width, blocks, Mish, bn=True, dropout=dropout,
                                  res_bias=False)
        self.out = nn.Linear(width, out_dim)
        self.out_scale = out_scale

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out_scale * torch.tanh(self.out(self.body(z)))


_PARENT16 = torch.as_tensor(PARENTS[1:])
_UPPER16 = torch.nonzero(torch.triu(torch.ones(16, 16, dtype=torch.bool)).flatten()).squeeze(1)


def kcs_features(x2d: torch.Tensor) -> torch.Tensor:
    """The kinematic chain space of 2D poses (Wandt et al., CVPR 2019), (B, 32) -> (B, 136):
    the upper triangle of the Gram matrix of the 16 bone vectors, i.e. every squared bone
    length (diagonal) and every product of two bones (their angles). A discriminator that
    sees it judges proportions and angles directly, not only joint positions."""
    joints = torch.cat([torch.zeros_like(x2d[:, :2]), x2d], 1).unflatten(1, (17, 2))
    bones = joints[:, 1:] - joints[:, on_device(_PARENT16, x2d.device)]  # child minus parent
    gram = bones @ bones.transpose(1, 2)
    return gram.flatten(1)[:, on_device(_UPPER16, x2d.device)]


class Discriminator(nn.Module):
    """2D pose (B, in_dim) -> real/fake LOGIT (B, 1); apply BCE-with-logits, not a Sigmoid.

    No BatchNorm, LeakyReLU(0.01), Dropout(0.5) in the residual blocks only (none in the stem).
    ``features="kcs"`` also feeds it the pose's kinematic chain space (:func:`kcs_features`,
    scaled by the projection distance squared so that it is of order one).
    """

    def __init__(self, in_dim: int = 32, width: int = 1024, blocks: int = 2,
                 dropout: float = 0.5, features: str = "pose"):
        super().__init__()
        if features not in ("pose", "kcs"):
            raise ValueError(f"discriminator features must be 'pose' or 'kcs', got {features!r}")
        self.features = features
        extra = 136 if features == "kcs" else 0
        self.body = ResidualStack(in_dim + extra, width, blocks, nn.LeakyReLU, bn=False,
                                  dropout=dropout, res_bias=True, stem_dropout=False)
        self.out = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.features == "kcs":
            x = torch.cat([x, C * C * kcs_features(x)], 1)
        return self.out(self.body(x))


class Lifter(nn.Module):
    """Encoder + decoder: 2D (B, 32) -> (pose3d (B, 48), mu, logvar).

    Sampling is chosen by the explicit ``sample`` argument, never by train/eval mode:
    ``sample=True`` decodes z = mu + eps * exp(logvar / 2), ``sample=False`` decodes mu. (Eval
    mode only switches off dropout and makes BatchNorm use running statistics; evaluation
    must pass ``sample=False`` for the thesis's single-hypothesis number.) A deterministic
    lifter (``variational=False``) always decodes mu and returns ``logvar = None``.
    """

    def __init__(self, encoder: Encoder, decoder: Decoder, depth_only: bool = False,
                 c: float = C):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.variational = encoder.logvar is not None
        self.depth_only = depth_only
        self.c = c
        self.depth_sign = 1.0  # -1 mirrors every prediction in depth (lib.priors.orientation)
        self.flip_test = False  # lift_all averages with the mirrored input's lift (flip_test)

    def encode(self, x2d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.encoder(x2d)

    def decode(self, z: torch.Tensor, x2d: torch.Tensor | None = None) -> torch.Tensor:
        """3D pose (B, 48) of latent codes ``z``; a depth-only lifter needs the 2D input."""
        out = self.decoder(z)
        if self.depth_only:
            return lift_depth(x2d, self.depth_sign * out, self.c)
        if self.depth_sign != 1.0:
            out = out * out.new_tensor([1.0, 1.0, self.depth_sign]).repeat(out.shape[-1] // 3)
        return out

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mu + eps * std, eps ~ N(0, I) (from ``generator`` if given: same device as mu)."""
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        return mu + eps * torch.exp(0.5 * logvar)

    def forward(self, x2d: torch.Tensor, sample: bool = True,
                generator: torch.Generator | None = None):
        mu, logvar = self.encode(x2d)
        z = self.reparameterize(mu, logvar, generator) if sample and self.variational else mu
        return self.decode(z, x2d), mu, logvar

    def hypotheses(self, x2d: torch.Tensor, k: int,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """``k`` sampled 3D poses per input, (B, k, 48), decoded in one batch of B * k
        (for the best-hypothesis protocol; call in eval mode)."""
        mu, logvar = self.encode(x2d)
        mu = mu.repeat_interleave(k, dim=0)
        if self.variational:
            z = self.reparameterize(mu, logvar.repeat_interleave(k, dim=0), generator)
        else:
            z = mu
        x_rep = x2d.repeat_interleave(k, dim=0) if self.depth_only else None
        return self.decode(z, x_rep).unflatten(0, (x2d.shape[0], k))


def lift_depth(x2d: torch.Tensor, depth: torch.Tensor, c: float = C) -> torch.Tensor:
    """Root-relative 3D poses (B, 48) from normalised 2D (B, 32) and per-joint depths (B, 16).

    Each joint is put on the ray through its 2D point: with the root at depth ``c``, joint j
    at relative depth d_j sits at ``(x_j (c + d_j), y_j (c + d_j), d_j)``, which projects back
    (``lib.losses.project``) exactly onto (x_j, y_j). A lifter that predicts only depths
    therefore reproduces its input by construction and spends all its capacity on depth
    (as in Drover et al. 2018 and Chen et al. 2019).
    """
    xy = x2d.unflatten(-1, (-1, 2))
    d = depth.unsqueeze(-1)
    return torch.cat([xy * (c + d), d], -1).flatten(-2)


class Ensemble(nn.Module):
    """The mean of several trained lifters' single-hypothesis lifts: a model made of several
    trainings of one configuration (restarts that agree, :func:`lib.experiment.choose_restarts`).
    Each member lifts as :func:`lift_all` lifts it (its own depth sign and test-time flip);
    depth-only members' lifts lie on the input's rays, and so does their mean, which thus
    still reprojects onto the input. Deterministic: ``sample`` is ignored."""

    variational = False

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)
        self.flip_test = False  # each member flips as its run says; flipping again is a no-op

    def forward(self, x2d: torch.Tensor, sample: bool = False, generator=None):
        pose = torch.stack([lift_all(m, x2d) for m in self.members]).mean(0)
        return pose, None, None


class SupervisedLifter(nn.Module):
    """Martinez et al. 2017 style baseline: Linear(32,w)+BN+ReLU+Dropout, ``blocks`` residual
    blocks of two Linear+BN+ReLU+Dropout, Linear(w,48); trained with MSE on 3D.

    Same call as :class:`Lifter`; returns ``(pose3d, None, None)`` (no latent, no sampling).
    """

    variational = False

    def __init__(self, in_dim: int = 32, width: int = 1024, out_dim: int = 48, blocks: int = 2,
                 dropout: float = 0.5):
        super().__init__()
        self.body = ResidualStack(in_dim, width, blocks, nn.ReLU, bn=True, dropout=dropout,
                                  res_bias=True)
        self.out = nn.Linear(width, out_dim)

    def forward(self, x2d: torch.Tensor, sample: bool = False,
                generator: torch.Generator | None = None):
        return self.out(self.body(x2d)), None, None


def build_models(cfg: dict) -> dict[str, nn.Module | None]:
    """``{"lifter": ..., "disc": Discriminator or None}`` for ``cfg["mode"]``:

    ``vae_gan`` (the thesis), ``vae`` (no discriminator), ``det_gan`` (deterministic lifter +
    discriminator), ``supervised`` (Martinez baseline, no discriminator). Missing keys take
    :data:`lib.config.DEFAULTS`; keys not used here are ignored, so a whole run config can
    be passed.
    """
    c = {**DEFAULTS, **cfg}
    mode = c["mode"]
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "supervised":
        lifter = SupervisedLifter(width=c["width"], blocks=c["sup_blocks"],
                                  dropout=c["sup_dropout"])
    else:
        encoder = Encoder(width=c["width"], latent=c["latent"], blocks=c["enc_blocks"],
                          dropout=c["dropout"], variational=mode != "det_gan")
        decoder = Decoder(latent=c["latent"], width=c["width"], blocks=c["dec_blocks"],
                          dropout=c["dropout"], out_scale=c["out_scale"],
                          out_dim=16 if c["depth_only"] else 48)
        lifter = Lifter(encoder, decoder, depth_only=c["depth_only"])
    disc = None
    if mode in ("vae_gan", "det_gan"):
        disc = Discriminator(width=c["width"], blocks=c["disc_blocks"],
                             dropout=c["disc_dropout"], features=c["disc_features"])
    return {"lifter": lifter, "disc": disc}


@torch.no_grad()
def lift_all(lifter: nn.Module, x2d: torch.Tensor, batch: int = 65536) -> torch.Tensor:
    """Single hypothesis (the decoded mean latent code) of every input, in batches, in
    network space (N, 48). Put the lifter in eval mode first.

    A lifter with ``flip_test`` set also lifts the mirrored input (x negated, left and right
    swapped, :func:`lib.geometry.flip`) and averages the mirror of that lift with the
    first. For a depth-only lifter both lie on the input's rays, and so does their mean:
    the average still reprojects exactly onto the input.
    """
    def one(x):
        pose = lifter(x, sample=False)[0].float()
        if getattr(lifter, "flip_test", False):
            pose = 0.5 * (pose + flip(lifter(flip(x, 2), sample=False)[0].float(), 3))
        return pose

    return torch.cat([one(x2d[i:i + batch]) for i in range(0, len(x2d), batch)])


def predict(lifter: nn.Module, norm, x2d: torch.Tensor, batch: int = 65536) -> torch.Tensor:
    """:func:`lift_all` through ``norm.to_mm`` (a :class:`lib.geometry.Normalizer`):
    (N, 17, 3) millimetres, root at the origin."""
    return norm.to_mm(lift_all(lifter, x2d, batch))


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (BatchNorm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def check_batch(cfg: dict, n: int, nets: dict) -> None:
    """A :class:`ConfigError` where a network with BatchNorm would train on batches of one
    pose (``n`` training poses, ``batch_size``): BatchNorm's statistics need two or more."""
    if min(cfg["batch_size"], n) >= 2 or not any(
            isinstance(m, torch.nn.BatchNorm1d)
            for net in nets.values() if net is not None for m in net.modules()):
        return
    if cfg["batch_size"] < 2:
        raise ConfigError(f"batch_size {cfg['batch_size']}: BatchNorm cannot train on a batch "
                          f"of one pose; use batch_size 2 or more")
    what = "the training split" if cfg["train_size"] is None else f"train_size {cfg['train_size']}"
    raise ConfigError(f"{what}: {n} training pose, and BatchNorm cannot train on a batch of "
                      f"one; use train_size 2 or more")


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float, steps: int) -> None:
    """ema <- d * ema + (1 - d) * weights after ``steps`` earlier updates, with the decay
    warmed up as d = min(decay, (1 + steps) / (10 + steps)) so that a short run's average is
    not dominated by the initial weights; BatchNorm statistics are copied."""
    d = min(decay, (1 + steps) / (10 + steps))
    torch._foreach_lerp_(list(ema.parameters()), list(model.parameters()), 1.0 - d)
    for e, b in zip(ema.buffers(), model.buffers(), strict=True):
        e.copy_(b)
