"""Networks: sizes against the draft's Appendix A, shapes, sampling, gradients, baselines."""

import pytest
import torch

from lib.losses import projection_loss
from lib.models import (
    Decoder,
    Discriminator,
    Encoder,
    Lifter,
    SupervisedLifter,
    build_models,
    count_parameters,
)

# Parameter counts per row of the draft's Appendix A tables (activations/dropout rows: 0).
ENC_UP = 33792 + 2048                               # Linear(32,1024) + BatchNorm1d(1024)
ENC_RES = 1048576 + 2048 + 1048576 + 2048           # 2 x [Linear(1024,1024,bias=False) + BN]
ENC_HEADS = 52275 + 52275                           # Linear(1024,51) for mu and for logvar
DEC_UP = 53248 + 2048                               # Linear(51,1024) + BN
DEC_RES = 1048576 + 2048 + 1048576 + 2048
DEC_TABLE_EXTRA = 49200  # Linear(1024,48) printed at the end of the residual section
DEC_OUT = 49200          # Linear(1024,48), again, in the downsampling block, before Tanh
DISC_UP = 33792                                     # Linear(32,1024)
DISC_RES = 1049600 + 1049600                        # 2 x Linear(1024,1024,bias=True)
DISC_OUT = 1025                                     # Linear(1024,1)
# The decoder table lists Linear(1024,48) twice. Both rows take 1024 inputs, so they cannot
# be chained, and only one output can feed the Tanh: at most one of them is on the forward
# path; the other is a row printed twice (or a layer registered but never used). The network
# has one output layer, so its size is the table's sum less one 49200 row.


def test_parameter_counts_match_appendix_a():
    enc, dec, disc = Encoder(), Decoder(), Discriminator()
    assert count_parameters(enc.body.stem) == ENC_UP
    assert [count_parameters(b) for b in enc.body.blocks] == [ENC_RES]
    assert count_parameters(enc.mu) + count_parameters(enc.logvar) == ENC_HEADS
    assert count_parameters(enc) == ENC_UP + ENC_RES + ENC_HEADS == 2_241_638

    assert count_parameters(dec.body.stem) == DEC_UP
    assert [count_parameters(b) for b in dec.body.blocks] == [DEC_RES]
    assert count_parameters(dec.out) == DEC_OUT
    table = DEC_UP + DEC_RES + DEC_TABLE_EXTRA + DEC_OUT
    assert count_parameters(dec) == table - DEC_TABLE_EXTRA == 2_205_744

    assert count_parameters(disc.body.stem) == DISC_UP
    assert [count_parameters(b) for b in disc.body.blocks] == [DISC_RES, DISC_RES]
    assert count_parameters(disc.out) == DISC_OUT
    assert count_parameters(disc) == DISC_UP + 2 * DISC_RES + DISC_OUT == 4_233_217


def test_layer_types_match_appendix_a():
    enc, disc = Encoder(), Discriminator()
    stem = [type(m).__name__ for m in enc.body.stem]
    assert stem == ["Linear", "BatchNorm1d", "Mish", "Dropout"]
    assert enc.body.blocks[0].net[0][0].bias is None  # residual Linear(bias=False)
    assert [type(m).__name__ for m in disc.body.stem] == ["Linear", "LeakyReLU"]
    res = [type(m).__name__ for m in disc.body.blocks[0].net[0]]
    assert res == ["Linear", "LeakyReLU", "Dropout"]
    assert disc.body.blocks[0].net[0][2].p == 0.5


def test_blocks_configurable():
    enc = Encoder(blocks=2, width=64, latent=8)
    assert len(enc.body.blocks) == 2
    assert count_parameters(enc) == (32 * 64 + 64 + 128) + 2 * 2 * (64 * 64 + 128) + 2 * (65 * 8)


SMALL = dict(width=64, latent=8)


@pytest.mark.parametrize("mode", ["vae_gan", "vae", "det_gan", "supervised"])
def test_build_models_shapes(mode):
    m = build_models({"mode": mode, **SMALL, "unused_key": 1})
    lifter, disc = m["lifter"], m["disc"]
    assert (disc is None) == (mode in ("vae", "supervised"))
    x = torch.randn(5, 32)
    pose3d, mu, logvar = lifter(x, sample=True)
    assert pose3d.shape == (5, 48)
    if mode == "supervised":
        assert isinstance(lifter, SupervisedLifter) and mu is None and logvar is None
    else:
        assert mu.shape == (5, 8)
        assert (logvar is None) == (mode == "det_gan")
        assert lifter.variational == (mode != "det_gan")
    if disc is not None:
        assert disc(x).shape == (5, 1)


def test_build_models_defaults_and_bad_mode():
    m = build_models({})
    assert isinstance(m["lifter"], Lifter) and isinstance(m["disc"], Discriminator)
    assert len(m["disc"].body.blocks) == 2 and len(m["lifter"].encoder.body.blocks) == 1
    assert m["lifter"].decoder.out_scale == 1.3
    with pytest.raises(ValueError, match="mode"):
        build_models({"mode": "gan"})


def test_sampling_is_explicit_and_eval_is_deterministic():
    torch.manual_seed(0)
    lifter = build_models({"mode": "vae", **SMALL})["lifter"].eval()
    x = torch.randn(4, 32)
    a, mu, logvar = lifter(x, sample=False)
    b, _, _ = lifter(x, sample=False)
    assert torch.equal(a, b) and torch.equal(a, lifter.decode(mu))
    c, _, _ = lifter(x, sample=True)  # eval mode still samples when asked to
    assert not torch.allclose(a, c)
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(lifter(x, True, g1)[0], lifter(x, True, g2)[0])
    hyp = lifter.hypotheses(x, 3)
    assert hyp.shape == (4, 3, 48)

    det = build_models({"mode": "det_gan", **SMALL})["lifter"].eval()
    assert torch.equal(det(x, sample=True)[0], det(x, sample=False)[0])


def test_output_and_logvar_bounds():
    torch.manual_seed(0)
    lifter = build_models({"mode": "vae", **SMALL})["lifter"].eval()
    pose3d, _, logvar = lifter(1e4 * torch.randn(16, 32), sample=False)
    assert pose3d.abs().max() <= 1.3
    assert logvar.abs().max() <= 10.0 and torch.isfinite(logvar.exp()).all()


def test_gradient_reaches_every_lifter_parameter():
    torch.manual_seed(0)
    lifter = build_models({"mode": "vae_gan", **SMALL})["lifter"].train()
    x = 0.1 * torch.randn(8, 32)
    pose3d, _, _ = lifter(x, sample=True)
    projection_loss(pose3d, x).backward()
    for name, p in lifter.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_default_lifter_forward_backward():
    lifter = build_models({})["lifter"].train()
    pose3d, mu, logvar = lifter(0.1 * torch.randn(4, 32))
    assert pose3d.shape == (4, 48) and mu.shape == logvar.shape == (4, 51)
    pose3d.sum().backward()


def test_dropout_keeps_a_fraction_1_minus_p_and_scales_it():
    from lib.models import Dropout

    drop = Dropout(0.2).train()
    torch.manual_seed(0)
    out = drop(torch.ones(1000, 1003))  # an odd size: the last 64-bit draw is part-used
    kept = out != 0
    assert kept.float().mean().item() == pytest.approx(0.8, abs=0.002)
    assert torch.allclose(out[kept], torch.tensor(1.25))
    torch.manual_seed(0)
    assert torch.equal(drop(torch.ones(1000, 1003)), out)  # the global generator decides
    assert torch.equal(drop.eval()(out), out)
    rows = Dropout(0.2).train()(torch.ones(4000, 64)) != 0  # no pattern shared by elements
    assert abs(torch.corrcoef(rows.float().T)[0, 1:4]).max() < 0.1


def test_dropout_mask_is_the_comparison_it_replaces_bit_for_bit():
    from lib.models import Dropout

    x = torch.randn(300, 257, requires_grad=True)
    for p in (0.2, 0.5):
        torch.manual_seed(1)
        out = Dropout(p).train()(x)
        torch.manual_seed(1)  # the earlier form: a bool comparison, converted
        n = x.numel()
        bits = torch.randint(-2**63, 2**63 - 1, ((n + 3) // 4,),
                             dtype=torch.int64).view(torch.int16)[:n].view(x.shape)
        keep = (bits >= round(p * 65536) - 32768).to(x.dtype).mul_(1.0 / (1.0 - p))
        assert torch.equal(out, x * keep)
        grad, = torch.autograd.grad(out.sum(), x)
        assert torch.equal(grad, keep)


def test_mish_matches_torch_mish_and_its_gradient_in_every_float_format():
    from lib.models import _Mish

    x = torch.linspace(-40, 40, 20001, dtype=torch.float64, requires_grad=True)
    ref = torch.nn.functional.mish(x)
    fast = _Mish.apply(x)
    assert torch.allclose(fast, ref, atol=1e-12)
    g_ref, = torch.autograd.grad(ref.sum(), x)
    g_fast, = torch.autograd.grad(fast.sum(), x)
    assert torch.allclose(g_fast, g_ref, atol=1e-12)
    x32 = x.detach().float().requires_grad_(True)
    g32, = torch.autograd.grad(_Mish.apply(x32).sum(), x32)
    assert torch.allclose(g32.double(), g_ref, atol=1e-6)
    assert torch.autograd.gradcheck(_Mish.apply, torch.randn(64, dtype=torch.float64,
                                                              requires_grad=True) * 5)
    xb = x.detach().bfloat16()
    from lib.models import Mish

    assert Mish()(xb).dtype == torch.bfloat16
    assert torch.allclose(Mish()(xb).double(), torch.nn.functional.mish(xb.double()),
                          rtol=0.02, atol=0.02)


def test_bench_swaps_in_torch_layers_without_changing_the_function():
    from lib.bench import with_torch_layers
    from lib.models import Dropout, Mish

    enc = Encoder(width=32, latent=8)
    x = torch.randn(16, 32)
    enc.eval()
    before = enc(x)[0]
    with_torch_layers(enc)
    kinds = {type(m) for m in enc.modules()}
    assert Dropout not in kinds and Mish not in kinds and torch.nn.Mish in kinds
    assert torch.allclose(enc(x)[0], before)
