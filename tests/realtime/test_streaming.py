"""Specification of ``streaming``: causality, receptive field, and chunk-by-chunk = offline.

Models are built as ``hparams/convtasnet-parallel-causal.yaml`` builds them (SpeechBrain lobes,
``ParallelTasNet``), small (N=16, B=8, H=16, X=3, R=2) unless the test is about the published
size, with random weights: every cLN gain/bias and PReLU slope is randomised too, so that no
parameter keeps an identity value that would hide a mistake.
"""
from __future__ import annotations

import pytest
import torch
from speechbrain.lobes.models.conv_tasnet import ChannelwiseLayerNorm, DepthwiseSeparableConv, MaskNet
from speechbrain.lobes.models.dual_path import Decoder, Encoder

from binaural.models import tasnet as bt
from conftest import TASNET_KERNEL, TASNET_STRIDE, feed_stream, offline
from conftest import make_tasnet as make_model
from binaural.realtime.streaming import (
    NotStreamableError,
    StreamingTasNet,
    algorithmic_latency,
    conv_reach,
    masknet_reach,
    model_context,
)

KERNEL, STRIDE = TASNET_KERNEL, TASNET_STRIDE  # 2 ms window, 1 ms hop at 8 kHz


def stream(model: bt.BinauralTasNet, mix: torch.Tensor, chunk: int) -> torch.Tensor:
    """Feed ``mix`` ``[time, 2]`` to a new PyTorch streamer in chunks of ``chunk`` samples, then flush."""
    return feed_stream(StreamingTasNet(model), mix, chunk)


@pytest.fixture(scope="module")
def causal_model() -> bt.BinauralTasNet:
    return make_model()


# ---------------------------------------------------------------------------------- causality
def test_speechbrain_cln_looks_at_no_other_frame() -> None:
    """SpeechBrain's cLN is channel-wise (per frame): frame t is unchanged when other frames change."""
    norm = ChannelwiseLayerNorm(6)
    with torch.no_grad():
        norm.gamma.normal_()
        norm.beta.normal_()
    x = torch.randn(1, 50, 6)  # [batch, frames, channels]
    y = x.clone()
    y[:, 21:] += 5 * torch.randn(1, 29, 6)  # change the future of frame 20
    y[:, :20] *= 3  # and its past
    assert torch.equal(norm(x)[:, 20], norm(y)[:, 20])


@pytest.mark.parametrize(("causal", "dilation"), [(True, 1), (True, 4), (False, 2)])
def test_conv_reach_matches_the_impulse_response(causal: bool, dilation: int) -> None:
    """conv_reach's (before, after) is where an impulse shows up in SpeechBrain's depthwise conv."""
    conv = DepthwiseSeparableConv((None, None, 4), 4, 3, 1, "same", dilation, norm_type="cLN", causal=causal).eval()
    x = torch.zeros(1, 60, 4)
    x[0, 30] = 1.0
    with torch.no_grad():
        response = (conv(x) - conv(torch.zeros_like(x))).abs().sum(-1)[0]
    touched = (response > 1e-7).nonzero().flatten().tolist()
    before, after = conv_reach(conv)
    # Output t sees t - before ... t + after, so the impulse at 30 reaches 30 - after ... 30 + before.
    assert touched == list(range(30 - after, 30 + before + 1, dilation))
    if causal:  # SpeechBrain's causal conv: frames t - 3d, t - 2d, t - d (delayed by d, still causal)
        assert (before, after) == (3 * dilation, -dilation)


def test_receptive_field_of_the_published_sizes() -> None:
    """X=8, R=4, P=3: 1020 frames each side (non-causal); 3060 before and none after (causal)."""
    non_causal = MaskNet(N=8, B=4, H=4, P=3, X=8, R=4, C=2, norm_type="gLN", causal=False)
    causal = MaskNet(N=8, B=4, H=4, P=3, X=8, R=4, C=2, norm_type="cLN", causal=True)
    assert masknet_reach(non_causal) == (1020, 1020)
    assert masknet_reach(causal) == (3060, 0)


def test_block_context_in_samples() -> None:
    """Frames of reach times the hop, plus the encoder window (and one hop of slack after)."""
    reach = 2 * (2**3 - 1)  # R * (2**X - 1) for X=3, R=2
    assert model_context(make_model(causal=False, norm="gLN")) == (reach * STRIDE + KERNEL, reach * STRIDE + KERNEL + STRIDE)
    assert model_context(make_model()) == (3 * reach * STRIDE + KERNEL, KERNEL + STRIDE)


def test_changing_the_future_changes_no_earlier_output(causal_model: bt.BinauralTasNet) -> None:
    """Input changed from sample t on: output samples before t - L + 1 are bit-identical."""
    mix = torch.randn(3000, 2)
    for t in (800, 1603, 2401):
        changed = mix.clone()
        changed[t:] = torch.randn(3000 - t, 2)
        a, b = offline(causal_model, mix), offline(causal_model, changed)
        first_free = t - KERNEL + 1  # the first output sample whose frames reach sample t
        assert torch.equal(a[:first_free], b[:first_free])
        assert not torch.allclose(a[first_free : t + KERNEL], b[first_free : t + KERNEL])  # not vacuous


def test_the_non_causal_model_does_look_ahead() -> None:
    """Sanity check of the test above: the gLN / non-causal model changes earlier outputs."""
    model = make_model(causal=False, norm="gLN")
    mix = torch.randn(3000, 2)
    changed = mix.clone()
    changed[2000:] = torch.randn(1000, 2)
    assert not torch.allclose(offline(model, mix)[:1500], offline(model, changed)[:1500])


# ---------------------------------------------------------------------------------- streaming
@pytest.mark.parametrize("chunk", [STRIDE, 2 * STRIDE, 64, 200, 13, 4003])
def test_streaming_equals_offline(causal_model: bt.BinauralTasNet, chunk: int) -> None:
    """Any chunk size (one hop, several, not dividing the length, not even a hop multiple)."""
    mix = torch.randn(4003, 2)  # 4003 is a multiple of neither the hop nor any chunk above
    expected = offline(causal_model, mix)
    got = stream(causal_model, mix, chunk)
    assert got.shape == expected.shape == (4003, 2, 2)
    assert (got - expected).abs().max().item() <= 1e-4


@pytest.mark.parametrize("seed", [1, 2])
def test_streaming_equals_offline_other_weights_and_variants(seed: int) -> None:
    """Other random weights, three talkers, and the independent (per-ear) variant."""
    for model in (
        make_model(n_spks=3, seed=seed),
        make_model(bt.IndependentTasNet, seed=seed),
    ):
        mix = torch.randn(2500, 2) * (1 + 10 * seed)
        expected = offline(model, mix)
        for chunk in (STRIDE, 48):
            assert (stream(model, mix, chunk) - expected).abs().max().item() <= 1e-4 * (1 + 10 * seed)


def test_streaming_equals_offline_at_the_published_depth() -> None:
    """X=8, R=4 (dilations up to 128, histories of 384 frames) on more than the receptive field.

    Narrow layers keep the test fast (SpeechBrain's MaskNet infers shapes by running its layers
    at construction); the benchmark checks the published widths (B=64, H=128) too.
    """
    model = make_model(n_filters=16, bottleneck=16, hidden=16, blocks=8, repeats=4, seed=3)
    mix = torch.randn(30011, 2)  # 3.75 s: beyond the 3060-frame receptive field
    expected = offline(model, mix)
    assert (stream(model, mix, 256) - expected).abs().max().item() <= 1e-4


def test_reset_starts_a_new_stream(causal_model: bt.BinauralTasNet) -> None:
    mix = torch.randn(1500, 2)
    streamer = StreamingTasNet(causal_model)
    first = torch.cat([streamer.process_chunk(mix[i : i + 64]) for i in range(0, 1500, 64)] + [streamer.flush()])
    streamer.reset()
    second = torch.cat([streamer.process_chunk(mix[i : i + 64]) for i in range(0, 1500, 64)] + [streamer.flush()])
    assert torch.equal(first, second)


def test_chunk_outputs_and_latency(causal_model: bt.BinauralTasNet) -> None:
    """Each call returns the samples that are final; the worst delay is chunk + window - hop."""
    for chunk in (STRIDE, 64):
        streamer = StreamingTasNet(causal_model)
        received = emitted = worst = 0
        for _ in range(20):
            out = streamer.process_chunk(torch.randn(chunk, 2))
            received += chunk
            if out.shape[0]:
                worst = max(worst, received - emitted)  # the oldest sample of this output
            emitted += out.shape[0]
            assert emitted == max(0, received - (KERNEL - STRIDE))
        assert worst == algorithmic_latency(KERNEL, STRIDE, chunk) == chunk + KERNEL - STRIDE
    with pytest.raises(ValueError, match="multiple of the encoder stride"):
        algorithmic_latency(KERNEL, STRIDE, 12)


def test_short_stream_and_bad_chunk(causal_model: bt.BinauralTasNet) -> None:
    streamer = StreamingTasNet(causal_model)
    assert streamer.process_chunk(torch.randn(10, 2)).shape == (0, 2, 2)  # less than one window
    assert torch.equal(streamer.flush(), torch.zeros(10, 2, 2))
    with pytest.raises(ValueError, match=r"\[time, 2\]"):
        streamer.process_chunk(torch.randn(64))


@pytest.mark.parametrize(
    ("causal", "norm", "message"),
    [(True, "gLN", "gLN"), (False, "cLN", "non-causal")],
)
def test_non_causal_models_are_refused(causal: bool, norm: str, message: str) -> None:
    with pytest.raises(NotStreamableError, match=message) as error:
        StreamingTasNet(make_model(causal=causal, norm=norm))
    assert "convtasnet-parallel-causal.yaml" in str(error.value)


def test_the_cross_variant_is_refused() -> None:
    torch.manual_seed(0)

    def masknet() -> MaskNet:
        return MaskNet(N=32, B=8, H=16, P=3, X=2, R=1, C=2, norm_type="cLN", causal=True)

    def decoder() -> Decoder:
        return Decoder(in_channels=16, out_channels=1, kernel_size=KERNEL, stride=STRIDE, bias=False)

    model = bt.CrossChannelTasNet(
        Encoder(kernel_size=KERNEL, out_channels=16), Encoder(kernel_size=KERNEL, out_channels=16),
        masknet(), masknet(), decoder(), decoder(),
    )
    with pytest.raises(NotStreamableError, match="CrossChannelTasNet"):
        StreamingTasNet(model)
