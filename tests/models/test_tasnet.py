"""Specification of ``binaural_tasnet``: the three binaural Conv-TasNet variants.

Small models (N=16, B=8, H=16, P=3, X=2, R=1, encoder kernel L=16 / stride 8) on CPU.
The published-checkpoint tests re-implement the forward pass of SpeechBrain's
``recipes/BinauralWSJ0Mix/separation/train.py`` (``Separation.compute_forward``) on six
separate lobes, save them with SpeechBrain's ``Checkpointer`` under the published names and
load them into our modules.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.lobes.models.conv_tasnet import MaskNet
from speechbrain.lobes.models.dual_path import Decoder, Encoder
from speechbrain.utils.checkpoints import Checkpointer
from torch import nn

from binaural.models import tasnet as bt
from reference.published_recipe import published_forward

N, B, H, P, X, R = 16, 8, 16, 3, 2, 1
KERNEL, STRIDE = 16, 8
VARIANTS = ("independent", "cross", "parallel")
CLASSES = {
    "independent": bt.IndependentTasNet,
    "cross": bt.CrossChannelTasNet,
    "parallel": bt.ParallelTasNet,
}
MASKNET_IN = {"independent": N, "cross": 2 * N, "parallel": 2 * N}


def make_lobes(
    variant: str,
    n_spks: int = 2,
    seed: int = 0,
    *,
    masknet_in: int | None = None,
    causal: bool = False,
) -> dict[str, nn.Module]:
    """The six lobes, built as the published YAML builds them (small sizes)."""
    torch.manual_seed(seed)
    n_in = MASKNET_IN[variant] if masknet_in is None else masknet_in
    norm = "cLN" if causal else "gLN"

    def masknet() -> MaskNet:
        return MaskNet(
            N=n_in, B=B, H=H, P=P, X=X, R=R, C=n_spks,
            norm_type=norm, causal=causal, mask_nonlinear="relu",
        )

    def decoder() -> Decoder:
        return Decoder(in_channels=N, out_channels=1, kernel_size=KERNEL, stride=STRIDE, bias=False)

    return {
        "encoderL": Encoder(kernel_size=KERNEL, out_channels=N),
        "encoderR": Encoder(kernel_size=KERNEL, out_channels=N),
        "masknetL": masknet(),
        "masknetR": masknet(),
        "decoderL": decoder(),
        "decoderR": decoder(),
    }


def make_model(variant: str, n_spks: int = 2, seed: int = 0, **kwargs) -> bt.BinauralTasNet:
    lobes = make_lobes(variant, n_spks, seed, causal=kwargs.pop("causal", False))
    return CLASSES[variant](**lobes, **kwargs)


def mixture(batch: int = 2, n_samples: int = 1001, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, n_samples, 2, generator=gen)  # [batch, time, 2]


# --------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("n_spks", [2, 3])
@pytest.mark.parametrize(("batch", "n_samples"), [(2, 1001), (1, 333), (3, 800)])
def test_forward_shape_is_batch_time_ear_speaker(variant, n_spks, batch, n_samples):
    model = make_model(variant, n_spks)
    est = model(mixture(batch, n_samples))
    assert est.shape == (batch, n_samples, 2, n_spks)
    assert torch.isfinite(est).all()


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("shape", [(2, 800), (2, 800, 1), (2, 2, 800), (2, 800, 2, 1)])
def test_rejects_non_binaural_input_naming_the_expected_shape(variant, shape):
    model = make_model(variant)
    with pytest.raises(ValueError, match=r"\[batch, time, 2\]"):
        model(torch.randn(*shape))


@pytest.mark.parametrize("variant", VARIANTS)
def test_rejects_input_shorter_than_the_encoder_kernel(variant):
    with pytest.raises(ValueError, match="kernel"):
        make_model(variant)(torch.randn(1, KERNEL - 1, 2))


def test_a_variant_must_say_how_it_encodes():
    """The base class is a template: building it, or a variant without ``forward_encoder``, fails."""

    class NoEncoder(bt.BinauralTasNet):
        pass

    for cls in (bt.BinauralTasNet, NoEncoder):
        with pytest.raises(TypeError, match="forward_encoder"):
            cls(**make_lobes("independent"))


@pytest.mark.parametrize(
    ("variant", "wrong_in"), [("independent", 2 * N), ("cross", N), ("parallel", N)]
)
def test_constructor_names_the_masknet_size_the_yaml_must_use(variant, wrong_in):
    lobes = make_lobes(variant, masknet_in=wrong_in)
    with pytest.raises(ValueError, match=f"N: {MASKNET_IN[variant]}"):
        CLASSES[variant](**lobes)


def test_constructor_checks_decoder_in_channels():
    lobes = make_lobes("parallel")
    lobes["decoderR"] = Decoder(in_channels=2 * N, out_channels=1, kernel_size=KERNEL, stride=STRIDE)
    with pytest.raises(ValueError, match=f"in_channels: {N}"):
        bt.ParallelTasNet(**lobes)


# --------------------------------------------------------------------------- training
@pytest.mark.parametrize("variant", VARIANTS)
def test_every_parameter_gets_a_gradient(variant):
    model = make_model(variant).train()
    model(mixture()).square().mean().backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, name
    if variant == "cross":
        assert model.interaural_projection.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("variant", VARIANTS)
def test_eval_is_deterministic_and_forward_creates_no_module(variant):
    model = make_model(variant).eval()
    params_before = {name: p for name, p in model.named_parameters()}
    modules_before = [name for name, _ in model.named_modules()]
    mix = mixture()
    with torch.no_grad():
        first, second = model(mix), model(mix)
    assert torch.equal(first, second)
    assert [name for name, _ in model.named_modules()] == modules_before
    assert all(p is params_before[name] for name, p in model.named_parameters())


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_round_trip_gives_identical_outputs(variant, tmp_path: Path):
    model = make_model(variant, seed=0).eval()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    fresh = make_model(variant, seed=123).eval()
    mix = mixture()
    with torch.no_grad():
        assert not torch.allclose(fresh(mix), model(mix))
        fresh.load_state_dict(torch.load(tmp_path / "model.pt"))
        assert torch.equal(fresh(mix), model(mix))


def test_cross_state_dict_holds_the_projection_but_not_the_stft_window():
    keys = make_model("cross").state_dict().keys()
    assert "interaural_projection.weight" in keys
    assert not any("window" in key for key in keys)


# --------------------------------------------------------------------------- published checkpoints
def test_published_recoverables_are_the_model_objects_under_the_published_names():
    model = make_model("parallel")
    rec = bt.published_recoverables(model)
    assert list(rec) == ["encoderL", "encoderR", "masknetL", "masknetR", "decoderL", "decoderR"]
    assert all(rec[name] is getattr(model, name) for name in rec)

    cross = make_model("cross")
    assert list(bt.published_recoverables(cross)) == list(rec) + ["interaural_projection"]
    assert bt.published_recoverables(cross)["interaural_projection"] is cross.interaural_projection
    assert list(bt.published_recoverables(cross, include_extra=False)) == list(rec)


def save_published(lobes: dict[str, nn.Module], folder: Path) -> None:
    Checkpointer(folder, recoverables=lobes).save_checkpoint()


@pytest.mark.parametrize("variant", ["parallel", "independent"])
@pytest.mark.parametrize("n_spks", [2, 3])
@pytest.mark.parametrize("causal", [False, True])
def test_published_checkpoint_loads_and_reproduces_the_published_forward(variant, n_spks, causal, tmp_path):
    """Our models run fused mask-network layers; the published lobes are SpeechBrain's own."""
    published = make_lobes(variant, n_spks, seed=7, causal=causal)
    save_published(published, tmp_path / "published")

    model = make_model(variant, n_spks, seed=99, causal=causal).eval()
    Checkpointer(tmp_path / "published", recoverables=bt.published_recoverables(model)).recover_if_possible()

    mix = mixture(2, 1001)
    with torch.no_grad():
        expected = published_forward({k: m.eval() for k, m in published.items()}, mix, variant, n_spks)
        got = model(mix)
    assert got.shape == expected.shape == (2, 1001, 2, n_spks)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_cross_loads_published_lobes_and_keeps_its_own_projection(tmp_path):
    published = make_lobes("cross", seed=7)
    save_published(published, tmp_path / "published")

    ours = make_model("cross", seed=1)
    Checkpointer(tmp_path / "ours", recoverables=bt.published_recoverables(ours)).save_checkpoint()

    model = make_model("cross", seed=2)
    Checkpointer(tmp_path / "ours", recoverables=bt.published_recoverables(model)).recover_if_possible()
    assert torch.equal(model.interaural_projection.weight, ours.interaural_projection.weight)

    # The published checkpoint has no projection: a strict load refuses (SpeechBrain 1.1.2
    # raises KeyError rather than its intended RuntimeError for constructor-given recoverables) ...
    with pytest.raises((RuntimeError, KeyError), match="interaural_projection"):
        Checkpointer(tmp_path / "published", recoverables=bt.published_recoverables(model)).recover_if_possible()
    # ... the six lobes load with include_extra=False (or allow_partial_load=True) ...
    Checkpointer(
        tmp_path / "published", recoverables=bt.published_recoverables(model, include_extra=False)
    ).recover_if_possible()
    for name in bt.PUBLISHED_NAMES:
        for key, value in published[name].state_dict().items():
            assert torch.equal(getattr(model, name).state_dict()[key], value), f"{name}.{key}"
    # ... and leave the projection from our own checkpoint untouched.
    assert torch.equal(model.interaural_projection.weight, ours.interaural_projection.weight)
    assert torch.equal(model.interaural_projection.bias, ours.interaural_projection.bias)

    partial = make_model("cross", seed=3)
    Checkpointer(
        tmp_path / "published", recoverables=bt.published_recoverables(partial), allow_partial_load=True
    ).recover_if_possible()
    assert torch.equal(partial.masknetL.mask_conv1x1.conv.weight, published["masknetL"].mask_conv1x1.conv.weight)


def test_yaml_declares_the_published_lobes_and_the_checkpointer_shares_them(tmp_path):
    yaml = textwrap.dedent(
        f"""
        num_spks: 2
        N_encoder_out: {N}
        kernel_size: {KERNEL}
        kernel_stride: {STRIDE}
        EncoderL: !new:speechbrain.lobes.models.dual_path.Encoder
            kernel_size: !ref <kernel_size>
            out_channels: !ref <N_encoder_out>
        EncoderR: !new:speechbrain.lobes.models.dual_path.Encoder
            kernel_size: !ref <kernel_size>
            out_channels: !ref <N_encoder_out>
        MaskNetL: !new:speechbrain.lobes.models.conv_tasnet.MaskNet
            N: {2 * N}
            B: {B}
            H: {H}
            P: {P}
            X: {X}
            R: {R}
            C: !ref <num_spks>
            norm_type: 'gLN'
            causal: False
            mask_nonlinear: 'relu'
        MaskNetR: !new:speechbrain.lobes.models.conv_tasnet.MaskNet
            N: {2 * N}
            B: {B}
            H: {H}
            P: {P}
            X: {X}
            R: {R}
            C: !ref <num_spks>
            norm_type: 'gLN'
            causal: False
            mask_nonlinear: 'relu'
        DecoderL: !new:speechbrain.lobes.models.dual_path.Decoder
            in_channels: !ref <N_encoder_out>
            out_channels: 1
            kernel_size: !ref <kernel_size>
            stride: !ref <kernel_stride>
            bias: False
        DecoderR: !new:speechbrain.lobes.models.dual_path.Decoder
            in_channels: !ref <N_encoder_out>
            out_channels: 1
            kernel_size: !ref <kernel_size>
            stride: !ref <kernel_stride>
            bias: False
        Model: !new:binaural.models.CrossChannelTasNet
            encoderL: !ref <EncoderL>
            encoderR: !ref <EncoderR>
            masknetL: !ref <MaskNetL>
            masknetR: !ref <MaskNetR>
            decoderL: !ref <DecoderL>
            decoderR: !ref <DecoderR>
            use_ipd: True
        checkpointer: !new:speechbrain.utils.checkpoints.Checkpointer
            checkpoints_dir: {tmp_path}
            recoverables:
                encoderL: !ref <EncoderL>
                encoderR: !ref <EncoderR>
                decoderL: !ref <DecoderL>
                decoderR: !ref <DecoderR>
                masknetL: !ref <MaskNetL>
                masknetR: !ref <MaskNetR>
                interaural_projection: !ref <Model.interaural_projection>
        """
    )
    hparams = load_hyperpyyaml(yaml)
    model = hparams["Model"]
    recoverables = hparams["checkpointer"].recoverables
    assert set(recoverables) == set(bt.published_recoverables(model))
    for name, module in bt.published_recoverables(model).items():
        assert recoverables[name] is module
    assert model(mixture(1, 400)).shape == (1, 400, 2, 2)


# --------------------------------------------------------------------------- spatial behaviour
@pytest.mark.parametrize(("variant", "crosses"), [("parallel", True), ("cross", True), ("independent", False)])
def test_which_variants_let_one_ear_input_reach_the_other_ear_output(variant, crosses):
    model = make_model(variant).eval()
    mix = mixture()
    right_changed = mix.clone()
    right_changed[:, :, 1] += torch.randn_like(mix[:, :, 1])
    left_changed = mix.clone()
    left_changed[:, :, 0] += torch.randn_like(mix[:, :, 0])
    with torch.no_grad():
        base = model(mix)
        after_right = model(right_changed)
        after_left = model(left_changed)
    # Each ear always depends on its own input.
    assert not torch.allclose(after_right[:, :, 1], base[:, :, 1])
    assert not torch.allclose(after_left[:, :, 0], base[:, :, 0])
    if crosses:
        assert not torch.allclose(after_right[:, :, 0], base[:, :, 0])
        assert not torch.allclose(after_left[:, :, 1], base[:, :, 1])
    else:
        assert torch.equal(after_right[:, :, 0], base[:, :, 0])
        assert torch.equal(after_left[:, :, 1], base[:, :, 1])


def test_parallel_matches_the_recipe_wiring_of_encoders_to_ears():
    """Right output ear: masknetR sees cat[encoderR(left in), encoderL(right in)]."""
    model = make_model("parallel").eval()
    mix = mixture()
    seen: list[torch.Tensor] = []
    model.masknetR.register_forward_hook(lambda mod, args, out: seen.append(args[0]))
    with torch.no_grad():
        model(mix)
        expected = torch.cat((model.encoderR(mix[:, :, 0]), model.encoderL(mix[:, :, 1])), dim=1)
    torch.testing.assert_close(seen[0], expected)


# --------------------------------------------------------------------------- cross features
@pytest.mark.parametrize("n_samples", [400, 401, 407, 1001])
@pytest.mark.parametrize("n_fft", [None, 8, 17, 64])
def test_interaural_features_have_one_frame_per_encoder_frame(n_samples, n_fft, monkeypatch):
    model = make_model("cross", n_fft=n_fft, use_ipd=True)

    def no_interpolation(*args, **kwargs):
        raise AssertionError("hop == encoder stride must not need interpolation")

    monkeypatch.setattr(bt.F, "interpolate", no_interpolation)
    mix = mixture(2, n_samples)
    n_frames = model.encoderL(mix[:, :, 0]).shape[-1]
    left, right = model.interaural_features(mix, n_frames)
    n_freq = (KERNEL if n_fft is None else n_fft) // 2 + 1
    assert left.shape == right.shape == (2, 3 * n_freq, n_frames)


def test_interaural_features_follow_another_hop_by_interpolation():
    model = make_model("cross", n_fft=32, hop=20)
    mix = mixture(2, 1001)
    n_frames = model.encoderL(mix[:, :, 0]).shape[-1]
    left, _ = model.interaural_features(mix, n_frames)
    assert left.shape == (2, 17, n_frames)
    assert model(mix).shape == (2, 1001, 2, 2)


def test_ild_frames_are_aligned_with_the_encoder_frames():
    """Right ear at half amplitude on [a, b): ILD = +6.02 dB exactly on encoder frames inside."""
    model = make_model("cross", use_ipd=True)
    left = torch.randn(1, 800, generator=torch.Generator().manual_seed(0))
    gain = torch.ones(1, 800)
    a, b = 200, 480
    gain[:, a:b] = 0.5
    mix = torch.stack((left, left * gain), dim=-1)  # [1, 800, 2]
    n_frames = (800 - KERNEL) // STRIDE + 1
    feats_left, feats_right = model.interaural_features(mix, n_frames)
    n_freq = KERNEL // 2 + 1
    ild, cos_ipd, sin_ipd = feats_left[0, :n_freq], feats_left[0, n_freq:2 * n_freq], feats_left[0, 2 * n_freq:]
    six_db = 20 * torch.log10(torch.tensor(2.0)).item()
    n_inside = 0
    for k in range(n_frames):
        start, stop = k * STRIDE, k * STRIDE + KERNEL
        if a <= start and stop <= b:
            torch.testing.assert_close(ild[:, k], torch.full((n_freq,), six_db), atol=1e-2, rtol=0)
            n_inside += 1
        elif stop <= a or start >= b:
            torch.testing.assert_close(ild[:, k], torch.zeros(n_freq), atol=1e-2, rtol=0)
        else:  # straddles a gain edge: neither 0 dB nor 6 dB throughout
            assert (ild[:, k] - six_db).abs().max() > 0.1 and ild[:, k].abs().max() > 0.1
    assert n_inside == (b - a - KERNEL) // STRIDE + 1
    # Where one ear is a scaled copy of the other: cos IPD = 1, sin IPD = 0.
    clean = [k for k in range(n_frames) if not (k * STRIDE < a < k * STRIDE + KERNEL or k * STRIDE < b < k * STRIDE + KERNEL)]
    torch.testing.assert_close(cos_ipd[:, clean], torch.ones(n_freq, len(clean)), atol=1e-3, rtol=0)
    torch.testing.assert_close(sin_ipd[:, clean], torch.zeros(n_freq, len(clean)), atol=1e-3, rtol=0)
    # The right ear sees its own cues: -ILD, the same cos IPD, -sin IPD.
    torch.testing.assert_close(feats_right[0], torch.cat((-ild, cos_ipd, -sin_ipd)))


@pytest.mark.parametrize("variant", VARIANTS)
def test_silent_ears_give_finite_outputs_and_gradients(variant):
    """Zero-padded batches contain silence: ILD/IPD must not produce NaN or inf."""
    model = make_model(variant, use_ipd=True) if variant == "cross" else make_model(variant)
    mix = mixture(2, 600)
    mix[0] = 0.0  # both ears silent
    mix[1, :, 1] = 0.0  # right ear silent
    mix.requires_grad_(True)
    est = model(mix)
    est.square().mean().backward()
    assert torch.isfinite(est).all()
    assert torch.isfinite(mix.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_cross_add_fusion_uses_an_n_channel_masknet():
    lobes = make_lobes("cross", masknet_in=N)
    model = bt.CrossChannelTasNet(**lobes, fusion="add")
    assert model(mixture()).shape == (2, 1001, 2, 2)
    with pytest.raises(ValueError, match=f"N: {N}"):
        bt.CrossChannelTasNet(**make_lobes("cross"), fusion="add")


# --------------------------------------------------------------------------- causal lobes
@pytest.mark.parametrize("variant", VARIANTS)
def test_causal_masknet_gives_a_causal_separator(variant):
    """With MaskNet(causal=True, norm_type='cLN') an output sample depends on no input more
    than one encoder kernel ahead of it."""
    model = make_model(variant, causal=True).eval()
    mix = mixture(1, 800)
    later = mix.clone()
    t0 = 500
    later[:, t0:] += torch.randn_like(later[:, t0:])
    with torch.no_grad():
        diff = (model(mix) - model(later)).abs().amax(dim=(0, 2, 3))
    assert diff[: t0 - KERNEL].max() == 0
    assert diff[t0:].max() > 0
