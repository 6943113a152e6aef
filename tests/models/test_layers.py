"""Specification of the fused mask-network layers of ``binaural_tasnet``: each computes what the
SpeechBrain layer it replaces computes (random inputs and random parameters, forward and
backward) and holds the same state_dict, so SpeechBrain checkpoints load into it unchanged."""
from __future__ import annotations

import copy

import pytest
import torch
from speechbrain.lobes.models.conv_tasnet import (
    ChannelwiseLayerNorm,
    DepthwiseSeparableConv,
    GlobalLayerNorm,
    MaskNet,
)
from speechbrain.nnet.CNN import Conv1d as SBConv1d

from binaural.models import layers
from binaural.models import tasnet as bt
def randomised(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """``module`` with every parameter drawn at random (no identity gain, no zero bias left)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.5 + (1.0 if param.ndim == 3 and param.shape[0] == 1 else 0.0))
    return module


def assert_close_to_scale(got: torch.Tensor, expected: torch.Tensor, tolerance: float = 1e-5) -> None:
    """``|got - expected| <= tolerance * max |expected|`` everywhere (float rounding, compounded
    through layers whose random parameters make the values large)."""
    scale = expected.abs().max().item()
    assert scale > 0
    assert (got - expected).abs().max().item() <= tolerance * scale


def assert_same_function(reference: torch.nn.Module, fused: torch.nn.Module, x: torch.Tensor) -> None:
    """Same outputs, and same input gradients for a random upstream gradient."""
    x_ref, x_fused = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out_ref, out_fused = reference(x_ref), fused(x_fused)
    assert out_fused.shape == out_ref.shape
    assert_close_to_scale(out_fused, out_ref)
    upstream = torch.randn_like(out_ref)
    (out_ref * upstream).sum().backward()
    (out_fused * upstream).sum().backward()
    assert_close_to_scale(x_fused.grad, x_ref.grad)


@pytest.mark.parametrize(
    ("sb_class", "fused_class"),
    [(ChannelwiseLayerNorm, layers.FusedChannelwiseLayerNorm), (GlobalLayerNorm, layers.FusedGlobalLayerNorm)],
)
def test_fused_norms_equal_speechbrain_and_share_its_parameters(sb_class, fused_class):
    norm = randomised(sb_class(24))
    fused = fused_class.from_speechbrain(copy.deepcopy(norm))
    assert_same_function(norm, fused, 3 * torch.randn(2, 50, 24) + 1)
    assert isinstance(fused, sb_class)  # code that asks "is this cLN / gLN?" still gets the answer
    state = norm.state_dict()
    assert {k: v.shape for k, v in fused.state_dict().items()} == {k: v.shape for k, v in state.items()}
    fresh = fused_class(24)
    fresh.load_state_dict(state)  # strict: same names and shapes
    torch.testing.assert_close(fresh(torch.ones(1, 3, 24) * torch.arange(24.0)), norm(torch.ones(1, 3, 24) * torch.arange(24.0)))
    twin = fused_class.from_speechbrain(norm)
    assert twin.gamma is norm.gamma and twin.beta is norm.beta  # the very parameter objects


@pytest.mark.parametrize("bias", [False, True])
def test_pointwise_conv_equals_speechbrain_conv1d(bias):
    conv = randomised(SBConv1d(out_channels=12, kernel_size=1, in_channels=20, bias=bias))
    fused = layers.PointwiseConv1d(copy.deepcopy(conv).conv)
    assert_same_function(conv, fused, torch.randn(3, 40, 20))
    assert fused.state_dict().keys() == conv.state_dict().keys()
    assert (fused.in_channels, fused.out_channels) == (20, 12)
    with pytest.raises(ValueError, match="1x1"):
        layers.PointwiseConv1d(torch.nn.Conv1d(4, 4, 3))


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize(("kernel", "dilation"), [(3, 1), (3, 4), (5, 2)])
def test_depthwise_conv_equals_speechbrain_and_pads_once(causal, kernel, dilation):
    """conv_0 (+ Chomp1d when causal) of SpeechBrain's DepthwiseSeparableConv, as one module."""
    dsconv = randomised(DepthwiseSeparableConv((None, None, 16), 8, kernel, 1, "same", dilation, "cLN", causal))
    reference = torch.nn.Sequential(dsconv.conv_0, dsconv.chomp) if causal else dsconv.conv_0
    fused = layers.DepthwiseConv1d.from_speechbrain(copy.deepcopy(dsconv.conv_0))
    assert type(fused) is (layers.CausalDepthwiseConv1d if causal else layers.SameDepthwiseConv1d)
    assert_same_function(reference, fused, torch.randn(2, 70, 16))
    assert fused.state_dict().keys() == dsconv.conv_0.state_dict().keys()
    span = (kernel - 1) * dilation
    assert fused.left == (span + span // 2 if causal else span // 2)


def test_same_padding_refuses_inputs_too_short_to_reflect():
    dsconv = DepthwiseSeparableConv((None, None, 4), 4, 3, 1, "same", 8, "gLN", False)
    with pytest.raises(ValueError, match="too short"):
        layers.DepthwiseConv1d.from_speechbrain(dsconv.conv_0)(torch.randn(1, 8, 4))


@pytest.mark.parametrize(("norm_type", "causal"), [("cLN", True), ("gLN", False), ("cLN", False)])
def test_fused_masknet_equals_speechbrain_and_loads_its_checkpoints(norm_type, causal):
    torch.manual_seed(0)
    masknet = randomised(MaskNet(N=12, B=8, H=16, P=3, X=3, R=2, C=2, norm_type=norm_type, causal=causal))
    state = copy.deepcopy(masknet.state_dict())
    fused = layers.fuse_masknet(copy.deepcopy(masknet))
    kinds = {type(m) for m in fused.modules()}
    expected = {layers.PointwiseConv1d, layers.FusedChannelwiseLayerNorm}
    expected |= {layers.CausalDepthwiseConv1d} if causal else {layers.SameDepthwiseConv1d}
    expected |= {layers.FusedGlobalLayerNorm} if norm_type == "gLN" else set()
    assert expected <= kinds
    assert not kinds & {ChannelwiseLayerNorm, GlobalLayerNorm, SBConv1d}  # every layer swapped
    assert {k: v.shape for k, v in fused.state_dict().items()} == {k: v.shape for k, v in state.items()}
    assert_same_function(masknet, fused, torch.randn(2, 12, 300))  # [batch, N, K]

    other = layers.fuse_masknet(MaskNet(N=12, B=8, H=16, P=3, X=3, R=2, C=2, norm_type=norm_type, causal=causal))
    other.load_state_dict(state)  # a SpeechBrain checkpoint of the MaskNet, strict
    x = torch.randn(1, 12, 200)
    with torch.no_grad():
        assert_close_to_scale(other(x), masknet(x))


def test_fusing_keeps_the_parameter_objects_and_is_idempotent():
    masknet = MaskNet(N=8, B=4, H=8, P=3, X=2, R=1, C=2, norm_type="cLN", causal=True)
    params = dict(masknet.named_parameters())
    fused = layers.fuse_masknet(masknet)
    assert fused is masknet
    assert all(p is params[name] for name, p in fused.named_parameters())  # an optimiser's references hold
    again = {name: type(m) for name, m in layers.fuse_masknet(fused).named_modules()}
    assert again == {name: type(m) for name, m in fused.named_modules()}


def test_models_run_fused_lobes():
    """The YAML's MaskNet objects are the ones the model runs, fused in place by the constructor."""
    from speechbrain.lobes.models.dual_path import Decoder, Encoder

    masknets = [MaskNet(N=32, B=8, H=16, P=3, X=2, R=1, C=2, norm_type="cLN", causal=True) for _ in range(2)]
    model = bt.ParallelTasNet(
        Encoder(kernel_size=16, out_channels=16), Encoder(kernel_size=16, out_channels=16), *masknets,
        Decoder(in_channels=16, out_channels=1, kernel_size=16, stride=8, bias=False),
        Decoder(in_channels=16, out_channels=1, kernel_size=16, stride=8, bias=False),
    )
    assert model.masknetL is masknets[0] and model.masknetR is masknets[1]
    assert isinstance(masknets[0].layer_norm, layers.FusedChannelwiseLayerNorm)
    assert isinstance(masknets[1].temporal_conv_net.temporalblock_0_1.layers.DSconv.conv_0, layers.CausalDepthwiseConv1d)
