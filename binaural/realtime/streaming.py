"""Chunk-by-chunk (stateful) inference of a causal binaural Conv-TasNet, and its receptive field.

:class:`StreamingTasNet` runs a trained :class:`binaural.models.tasnet.ParallelTasNet` (or
``IndependentTasNet``) built from SpeechBrain's ``conv_tasnet.MaskNet(causal=True,
norm_type="cLN")`` on a live stream: every call to :meth:`StreamingTasNet.process_chunk` takes
the next samples of the mixture and returns the samples of the separated sources that are final,
and the concatenation of all returned samples (plus :meth:`StreamingTasNet.flush`) equals the
offline model's output on the whole stream (to float rounding). Nothing of the past is
recomputed; the state kept between chunks is:

* the encoder's input overlap: samples received but not yet covered by a whole encoder frame
  (fewer than ``L`` samples, where ``L`` is the encoder window);
* for each TCN block of each mask network, the history of its dilated depthwise convolution
  (``shift = 3 * dilation`` frames for ``P = 3``, see :func:`conv_reach`) in a linear buffer
  with amortised compaction (:class:`_History`);
* the decoder's overlap-add tail: the last ``L - stride`` output samples of the last frame,
  which the next frame still adds to.

SpeechBrain's ``norm_type="cLN"`` is a *channel-wise* layer norm (``ChannelwiseLayerNorm``:
mean and variance over the channels of each frame on its own), not Luo's *cumulative* layer norm;
it looks at no other frame, so it is causal and needs no running sums. ``gLN`` (global layer
norm, the published non-causal model) normalises with statistics of the whole utterance, i.e.
with future samples, and cannot be streamed.

SpeechBrain's causal depthwise convolution pads twice (``padding="causal"`` on the SpeechBrain
``Conv1d`` *and* ``padding="same"`` on the inner ``torch.nn.Conv1d``, then ``Chomp1d`` trims the
end), so frame ``t`` of a block's depthwise convolution sees frames ``t - 3d, t - 2d, t - d``
(``P = 3``): it is causal, only delayed by ``d`` frames. The streaming state reproduces exactly
that (read from the modules, not assumed).

Units: samples at the model's rate unless a name ends in ``_ms``; a *frame* is one encoder hop
(``stride`` samples, ``L // 2`` in SpeechBrain).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from speechbrain.lobes.models.conv_tasnet import (
    ChannelwiseLayerNorm,
    DepthwiseSeparableConv,
    GlobalLayerNorm,
    MaskNet,
    TemporalBlock,
)
from speechbrain.nnet.CNN import get_padding_elem
from torch import nn

from binaural.models.layers import DepthwiseConv1d
from binaural.models.tasnet import BinauralTasNet, IndependentTasNet, ParallelTasNet
from binaural.errors import RecipeError

__all__ = [
    "NotStreamableError",
    "StreamingTasNet",
    "algorithmic_latency",
    "check_streamable",
    "conv_reach",
    "depthwise_window",
    "end_of_stream",
    "masknet_reach",
    "model_context",
]

#: SpeechBrain's ``conv_tasnet.EPS`` (inside the square root of its layer norms).
LN_EPS = 1e-8


class NotStreamableError(RecipeError):
    """The model looks at future samples (or has a layer this module cannot stream)."""


# ---------------------------------------------------------------------------------- geometry
def _inner_conv(conv: nn.Module) -> nn.Conv1d:
    """The ``torch.nn.Conv1d`` inside a SpeechBrain ``Conv1d`` wrapper."""
    inner = getattr(conv, "conv", None)
    if not isinstance(inner, nn.Conv1d):
        raise NotStreamableError(
            f"expected a speechbrain.nnet.CNN.Conv1d wrapping a torch.nn.Conv1d, got {type(conv).__name__}"
        )
    return inner


def conv_reach(dsconv: DepthwiseSeparableConv) -> tuple[int, int]:
    """Frames of input that one TCN block's depthwise convolution reaches, before and after.

    Output frame ``t`` is ``sum_j w[j] * x[t - left + j * dilation]`` for ``j < P``, so it sees
    frames ``t - left`` to ``t + right`` with ``right = (P - 1) * dilation - left``. A negative
    ``right`` means the frame does not even see itself (SpeechBrain's causal convolution,
    ``left = 3d`` and ``right = -d`` for ``P = 3``).

    Returns:
        ``(left, right)`` in encoder frames.
    """
    outer = dsconv.conv_0
    inner = _inner_conv(outer)
    kernel, dilation = inner.kernel_size[0], inner.dilation[0]
    if inner.stride[0] != 1:
        raise NotStreamableError(f"depthwise convolution with stride {inner.stride[0]} (expected 1)")
    span = (kernel - 1) * dilation
    if isinstance(outer, DepthwiseConv1d):  # binaural.models.layers' fused twin says it outright
        return outer.left, span - outer.left
    if outer.padding == "causal":
        outer_left = span
    elif outer.padding == "same":
        outer_left = get_padding_elem(outer.in_channels, outer.stride, kernel, dilation)[0]
    elif outer.padding == "valid":
        outer_left = 0
    else:
        raise NotStreamableError(f"unknown SpeechBrain padding {outer.padding!r}")
    if isinstance(inner.padding, str):
        inner_left = span // 2 if inner.padding == "same" else 0
    else:
        inner_left = inner.padding[0]
    left = outer_left + inner_left
    return left, span - left


def _temporal_blocks(masknet: MaskNet) -> list[TemporalBlock]:
    blocks = list(masknet.temporal_conv_net.values())
    if not all(isinstance(block, TemporalBlock) for block in blocks):
        raise NotStreamableError(
            "MaskNet.temporal_conv_net holds something other than conv_tasnet.TemporalBlock; this "
            "module follows speechbrain 1.1's layout"
        )
    return blocks


def masknet_reach(masknet: MaskNet) -> tuple[int, int]:
    """Receptive field of a Conv-TasNet mask network: frames seen before and after a frame.

    Every other layer is frame-wise (1x1 convolutions, PReLU, channel-wise norms), and each TCN
    block adds its depthwise convolution's reach to a residual path that has reach 0, so the
    reaches add up over the blocks (clipped at 0). Non-causal ``P``, ``X``, ``R``:
    ``R * (P - 1) / 2 * (2**X - 1)`` frames each side (1020 frames for 3, 8, 4). Causal:
    ``R * (P - 1) * 1.5 * (2**X - 1)`` frames before (3060) and none after. ``gLN`` is ignored
    here: its statistics span the whole input whatever the convolutions do.

    Returns:
        ``(before, after)`` in encoder frames.
    """
    before = after = 0
    for block in _temporal_blocks(masknet):
        left, right = conv_reach(block.layers.DSconv)
        before += max(left, 0)
        after += max(right, 0)
    return before, after


def _encoder_conv(model: BinauralTasNet) -> nn.Conv1d:
    conv = getattr(model.encoderL, "conv1d", None)
    if not isinstance(conv, nn.Conv1d) or model.kernel_size is None or model.stride is None:
        raise NotStreamableError(
            "the encoders must be speechbrain.lobes.models.dual_path.Encoder (an nn.Conv1d at .conv1d)"
        )
    if conv.padding[0] != 0 or conv.dilation[0] != 1:
        raise NotStreamableError("the encoder convolution must have padding 0 and dilation 1")
    return conv


def model_context(model: BinauralTasNet) -> tuple[int, int]:
    """Context (samples at the model's rate) that makes block processing exact.

    An output sample ``n`` is the overlap-add of the decoder frames that cover it (frames ``k``
    with ``k * stride <= n < k * stride + L``); each frame's mask depends on the encoder frames
    within the mask networks' receptive field (:func:`masknet_reach`), and each encoder frame on
    ``L`` input samples. A block whose input extends ``before`` samples before and ``after``
    samples after the samples kept from it therefore reproduces whole-file processing, as long
    as every normalisation is frame-wise (``cLN``; not ``gLN``, whose statistics are global).

    Returns:
        ``(before, after)`` in samples, multiples of the encoder stride:
        ``before = frames_before * stride + L`` and ``after = frames_after * stride + L + stride``
        (one frame of slack); 8176 and 8184 samples (1.02 s at 8 kHz) for the published
        non-causal model, 24 496 and 24 samples for its causal version.
    """
    _encoder_conv(model)
    assert model.kernel_size is not None and model.stride is not None
    stride, window = model.stride, model.kernel_size
    before = after = 0
    for masknet in (model.masknetL, model.masknetR):
        b, a = masknet_reach(masknet)
        before, after = max(before, b), max(after, a)
    window_frames = math.ceil(window / stride)
    # CrossChannelTasNet: its interaural STFT frames (n_fft samples) are centred on the encoder
    # frames and reach (n_fft - L) / 2 samples further on each side. (A hop other than the
    # encoder's stride interpolates over the whole input: blocks are then only close.)
    n_fft = getattr(model, "n_fft", window)
    window_frames += max(0, math.ceil((n_fft - window) / 2 / stride))
    return (before + window_frames) * stride, (after + window_frames + 1) * stride


def algorithmic_latency(window: int, stride: int, chunk: int) -> int:
    """Algorithmic latency (samples) of :class:`StreamingTasNet` fed ``chunk`` samples at a time.

    Output sample ``n`` is final once every encoder frame covering it is complete, which needs
    input up to ``window - 1`` samples later. Chunks start on frame boundaries, so a call
    returns all of its chunk but the last ``window - stride`` samples, which come out at the end
    of the next chunk: the oldest sample of a call's output arrived ``chunk + window - stride``
    samples before the call, e.g. 8 + 2 - 1 = 9 ms for 8 ms chunks and the 2 ms window / 1 ms
    hop encoder. With one-hop chunks this is the encoder window. Computation time not included.
    """
    if chunk <= 0 or chunk % stride:
        raise ValueError(f"chunk must be a positive multiple of the encoder stride ({stride} samples), got {chunk}")
    return chunk + window - stride


# ---------------------------------------------------------------------------------- streaming
def check_streamable(model: nn.Module) -> None:
    """Raise :class:`NotStreamableError` (saying what to change) unless ``model`` can be streamed."""
    if not isinstance(model, (ParallelTasNet, IndependentTasNet)):
        raise NotStreamableError(
            f"streaming supports ParallelTasNet and IndependentTasNet, not {type(model).__name__} "
            "(the cross variant's interaural STFT is centred on each frame)"
        )
    for step in ("forward_masker", "apply_masks", "forward_decoder"):
        if getattr(type(model), step) is not getattr(BinauralTasNet, step):
            raise NotStreamableError(f"{type(model).__name__} overrides {step}; the streaming state assumes the default")
    _encoder_conv(model)
    for name in ("masknetL", "masknetR"):
        masknet = getattr(model, name)
        if not isinstance(masknet, MaskNet):
            raise NotStreamableError(f"{name} is {type(masknet).__name__}, expected conv_tasnet.MaskNet")
        for index, block in enumerate(_temporal_blocks(masknet)):
            for layer in (block.layers.norm, block.layers.DSconv.act_0):
                if isinstance(layer, GlobalLayerNorm):
                    raise NotStreamableError(
                        f"{name} uses gLN (global layer norm): it normalises each layer with the mean "
                        "and variance of the whole input, i.e. with future samples. Train the causal "
                        "model (hparams/convtasnet-parallel-causal.yaml: norm_type: cLN, causal: True)"
                    )
                if not isinstance(layer, ChannelwiseLayerNorm):
                    raise NotStreamableError(
                        f"{name} block {index}: norm {type(layer).__name__} is not supported; use norm_type: cLN"
                    )
            _, right = conv_reach(block.layers.DSconv)
            if right > 0:
                raise NotStreamableError(
                    f"{name} has non-causal convolutions (block {index} looks {right} frames ahead); "
                    "train the causal model (hparams/convtasnet-parallel-causal.yaml: causal: True)"
                )
    for name in ("decoderL", "decoderR"):
        decoder = getattr(model, name)
        if not isinstance(decoder, nn.ConvTranspose1d) or decoder.out_channels != 1:
            raise NotStreamableError(f"{name} must be a dual_path.Decoder (ConvTranspose1d, out_channels=1)")
        if decoder.padding[0] or decoder.output_padding[0] or decoder.dilation[0] != 1 or decoder.groups != 1:
            raise NotStreamableError(f"{name} must have padding 0, output_padding 0, dilation 1, groups 1")
        if decoder.stride[0] != model.stride or decoder.kernel_size[0] != model.kernel_size:
            raise NotStreamableError(
                f"{name} has kernel {decoder.kernel_size[0]} / stride {decoder.stride[0]}, the encoder "
                f"{model.kernel_size} / {model.stride}"
            )


def _pointwise(conv: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``[in, out]`` matrix and bias (or ``None``) of a 1x1 convolution (SpeechBrain wrapper)."""
    inner = _inner_conv(conv)
    if inner.kernel_size[0] != 1 or inner.groups != 1:
        raise NotStreamableError("expected a 1x1 convolution")
    bias = inner.bias.detach() if inner.bias is not None else None
    return inner.weight.detach()[:, :, 0].t(), bias


def _stack_pointwise(convs: list[nn.Module]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per-ear 1x1 convolutions as ``[E, in, out]`` weights for ``bmm`` and ``[E, 1, out]`` biases."""
    pairs = [_pointwise(conv) for conv in convs]
    weight = torch.stack([w for w, _ in pairs])  # [E, in, out]
    if all(b is None for _, b in pairs):
        return weight, None
    bias = torch.stack([b if b is not None else torch.zeros(w.shape[1]) for w, b in pairs])
    return weight, bias.unsqueeze(1)  # [E, 1, out]


@dataclass
class _Slopes:
    """The PReLU slopes of one layer of every ear, in the two forms the engines use."""

    full: torch.Tensor  # [E, 1, C]: one slope per channel (ONNX PRelu broadcasts this fast)
    per_ear: torch.Tensor | None  # [E] when each ear has a single slope (one torch.prelu call)

    def to(self, device: torch.device) -> _Slopes:
        per_ear = None if self.per_ear is None else self.per_ear.to(device).contiguous()
        return _Slopes(self.full.to(device).contiguous(), per_ear)


def _stack_prelu(acts: list[nn.Module], channels: int) -> _Slopes:
    """The slopes of the ears' ``nn.PReLU`` (SpeechBrain's has one slope, ``nn.PReLU(C)`` one per channel)."""
    for act in acts:
        if not isinstance(act, nn.PReLU):
            raise NotStreamableError(f"expected nn.PReLU, got {type(act).__name__}")
    full = torch.stack([act.weight.detach().expand(channels) for act in acts]).unsqueeze(1)  # [E, 1, C]
    if all(act.weight.numel() == 1 for act in acts):
        return _Slopes(full, torch.cat([act.weight.detach().reshape(1) for act in acts]))  # [E]
    return _Slopes(full, None)


#: ``prelu(x, slopes)``: PReLU of ``[E, n, C]`` with a layer's :class:`_Slopes`; each engine has its own.
PReLU = Callable[[torch.Tensor, _Slopes], torch.Tensor]


def eager_prelu(x: torch.Tensor, slopes: _Slopes) -> torch.Tensor:
    """:data:`PReLU` in as few dispatches as possible (``torch.prelu``'s channel axis 1 is the ears)."""
    if slopes.per_ear is not None:
        ears, channels = x.shape[0], x.shape[2]
        return torch.prelu(x.view(1, ears, -1), slopes.per_ear).view(ears, -1, channels)
    return torch.where(x >= 0, x, x * slopes.full)


class _OnnxPReLU(torch.autograd.Function):
    """PReLU with ``[E, 1, C]`` slopes that exports as one ONNX ``PRelu`` node."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:  # noqa: ARG004
        return torch.where(x >= 0, x, x * slope)

    @staticmethod
    def symbolic(g, x, slope):  # noqa: ANN001, ANN205 (torch.onnx graph values)
        return g.op("PRelu", x, slope)


def onnx_prelu(x: torch.Tensor, slopes: _Slopes) -> torch.Tensor:
    """:data:`PReLU` for an ONNX export, as ``Mul`` + ``Max`` where it can be.

    ``PReLU(x) = max(x, a * x)`` for a slope ``a <= 1`` and ``min(x, a * x)`` for ``a >= 1``:
    onnxruntime runs those two elementwise nodes several times faster than its ``PRelu`` with a
    broadcast slope. A layer whose slopes lie on both sides of 1 keeps the ``PRelu`` node.
    """
    scaled = x * slopes.full
    if bool((slopes.full <= 1).all()):
        return torch.maximum(x, scaled)
    if bool((slopes.full >= 1).all()):
        return torch.minimum(x, scaled)
    return _OnnxPReLU.apply(x, slopes.full)


def _stack_norm(norms: list[nn.Module]) -> tuple[torch.Tensor, torch.Tensor]:
    """``cLN`` affine parameters as ``[E, 1, C]`` gamma and beta."""
    gamma = torch.stack([n.gamma.detach().reshape(-1) for n in norms]).unsqueeze(1)
    beta = torch.stack([n.beta.detach().reshape(-1) for n in norms]).unsqueeze(1)
    return gamma, beta


#: Most new frames for which :meth:`_History.convolve` reads the taps through one strided view
#: (measured on one CPU thread: 5 vs 8 us per block at 2 frames, 18 vs 10 us at 32).
STRIDED_MAX_FRAMES = 8

#: ``convolve(block_index, frames)``: store a block's new depthwise-conv input frames ``[E, n, H]``
#: with its past and return the depthwise convolution's output for them, ``[E, n, H]``.
Convolve = Callable[[int, torch.Tensor], torch.Tensor]


class _History:
    """The last ``length`` frames of an ``[E, time, C]`` stream, without a copy per chunk.

    A linear buffer with spare room: new frames are written after the kept history; only when
    the room runs out is the history moved back to the front (an amortised copy of ``length``
    frames every ``spare`` frames, instead of ``length`` frames every chunk). Starts as zeros:
    the offline convolution's zero padding.
    """

    def __init__(self, n_ears: int, length: int, channels: int, spare: int, device: torch.device) -> None:
        self.length = length
        self.buffer = torch.zeros(n_ears, length + max(spare, 1), channels, device=device)
        self.position = length  # frames [position - length, position) are the history

    def convolve(self, block: _Block, frames: torch.Tensor) -> torch.Tensor:
        """Store ``frames`` ``[E, n, C]``; returns ``block``'s depthwise convolution of them, ``[E, n, C]``.

        Up to :data:`STRIDED_MAX_FRAMES` new frames, the taps are read through one strided view of
        the buffer, ``[E, n, C, P]`` with element ``(e, t, c, j)`` the frame ``t + j * d`` of the
        window (the ``length`` frames before the new ones, then them): three ops whatever ``P``.
        More frames: :func:`depthwise_window`'s slices, whose contiguous reads are then faster
        than the reduction over the strided tap axis.
        """
        n = frames.shape[1]
        if self.position + n > self.buffer.shape[1]:
            kept = self.buffer[:, self.position - self.length : self.position].clone()
            if self.length + n > self.buffer.shape[1]:
                shape = (self.buffer.shape[0], 2 * (self.length + n), self.buffer.shape[2])
                self.buffer = torch.zeros(shape, device=self.buffer.device)
            self.buffer[:, : self.length] = kept
            self.position = self.length
        start = self.position
        self.position += n
        self.buffer[:, start : self.position] = frames
        if n > STRIDED_MAX_FRAMES:
            return depthwise_window(block, self.buffer[:, start - self.length : self.position])
        ears, frames_total, channels = self.buffer.shape
        view = self.buffer.as_strided(
            (ears, n, channels, block.tap_stack.shape[-1]),
            (frames_total * channels, channels, 1, block.dilation * channels),
            self.buffer.storage_offset() + (start - self.length) * channels,
        )  # [E, n, C, P]
        z = (view * block.tap_stack).sum(-1)  # [E, n, C]
        return z if block.b_dw is None else z + block.b_dw


@dataclass
class _Block:
    """One TCN block of every ear's mask network, weights stacked on a leading ear axis ``E``.

    The affine part of the block's second ``cLN`` is folded into the output 1x1 convolution
    (``w_out = gamma2 * W``); the constant it leaves, ``beta2 @ W``, is carried as an offset of
    the residual stream and folded into the next layer's bias (see :class:`_StreamingMaskNets`).
    """

    w_in: torch.Tensor  # [E, B, H] 1x1 conv B -> H
    b_in: torch.Tensor  # [E, 1, H] its bias plus (residual offset) @ w_in
    prelu1: _Slopes
    gamma1: torch.Tensor  # [E, 1, H]
    beta1: torch.Tensor  # [E, 1, H]
    taps: tuple[torch.Tensor, ...]  # P x [E, 1, H]: tap j multiplies frame t - left + j*d
    tap_stack: torch.Tensor  # [E, 1, H, P]: the same taps side by side
    b_dw: torch.Tensor | None  # [E, 1, H]
    dilation: int
    left: int  # frames the depthwise conv looks back (3d for SpeechBrain's causal P=3)
    hidden: int  # H
    prelu2: _Slopes
    w_out: torch.Tensor  # [E, H, B] gamma2-scaled 1x1 conv H -> B
    offset: torch.Tensor  # [E, 1, B] beta2 @ W (+ its bias): added to the residual stream's offset


def _block_input(block: _Block, x: torch.Tensor, prelu: PReLU) -> torch.Tensor:
    """The depthwise convolution's input for ``n`` new frames: ``[E, n, B] -> [E, n, H]``."""
    # bmm + add_ and torch.layer_norm: the same ops as baddbmm and F.layer_norm, fewer microseconds
    # of dispatch (baddbmm's scaling path, F's wrapper), which is what a 2-frame chunk costs.
    y = torch.bmm(x, block.w_in).add_(block.b_in)  # [E, n, H]
    y = torch.layer_norm(prelu(y, block.prelu1), (block.hidden,), None, None, LN_EPS)
    return torch.addcmul(block.beta1, y, block.gamma1)  # [E, n, H]


def depthwise_window(block: _Block, window: torch.Tensor) -> torch.Tensor:
    """Dilated depthwise convolution of the ``n`` newest frames of ``window`` ``[E, left + n, H]``.

    Frame ``t`` is ``sum_j taps[j] * window[t + j*d]`` (window index 0 is ``left`` frames before
    the first new frame). Every slice ends at a fixed offset from the window's end, so an ONNX
    export has no shape arithmetic: ``[E, left + n, H] -> [E, n, H]``.
    """
    z = window[:, : -block.left] * block.taps[0]
    for j in range(1, len(block.taps)):
        end = j * block.dilation - block.left
        z.addcmul_(window[:, j * block.dilation : end if end else None], block.taps[j])
    if block.b_dw is not None:
        z = z + block.b_dw
    return z  # [E, n, H]


def _block_output(block: _Block, x: torch.Tensor, z: torch.Tensor, prelu: PReLU) -> torch.Tensor:
    """PReLU, norm (affine folded into ``w_out``), 1x1 conv H -> B and the residual: ``[E, n, B]``."""
    z = torch.layer_norm(prelu(z, block.prelu2), (block.hidden,), None, None, LN_EPS)
    return torch.bmm(z, block.w_out).add_(x)


class _StreamingMaskNets:
    """``E`` causal ``conv_tasnet.MaskNet`` run side by side, one chunk of frames at a time.

    Activations are ``[E, frames, channels]`` (ears stacked in front), so each layer of all ears
    is one op: 1x1 convolutions one ``bmm``, PReLU one ``F.prelu``, each ``cLN`` one
    ``F.layer_norm`` (plus one ``addcmul`` where the affine cannot be folded: before the
    zero-padded depthwise convolution); the residual add rides on the ``baddbmm``.

    Affine folding: a ``cLN`` followed by a 1x1 convolution ``W`` gives ``(n * gamma + beta) @ W
    = n @ (gamma * W) + beta @ W``. The constant ``beta @ W`` is not added to the residual stream
    ``r``; the stream is kept as ``r - c`` with ``c`` the sum of those constants so far, and
    ``c @ W_next`` is added to the bias of each layer reading the stream. Same result, two ops
    fewer per block.

    The depthwise convolutions' pasts are not kept here: each call gets a ``convolve`` (see
    :data:`Convolve`) that stores a block's new frames with its past and convolves them: over a
    linear buffer for :class:`StreamingTasNet` (:meth:`_History.convolve`), over the
    concatenation with a state tensor in an ONNX export (:func:`depthwise_window`).
    """

    def __init__(self, masknets: list[MaskNet], device: torch.device) -> None:
        self.n_ears = len(masknets)
        self.device = device
        self.n_spks: int = masknets[0].C
        self.mask_nonlinear: str = masknets[0].mask_nonlinear
        if self.mask_nonlinear not in ("relu", "softmax"):
            raise NotStreamableError(f"unsupported mask_nonlinear {self.mask_nonlinear!r}")
        gamma0, beta0 = _stack_norm([m.layer_norm for m in masknets])  # [E, 1, N_in]
        self.n_in: int = gamma0.shape[-1]
        w_bottleneck, b_bottleneck = _stack_pointwise([m.bottleneck_conv1x1 for m in masknets])
        # Front cLN folded into the bottleneck; the stream starts with offset beta0 @ W (+ bias).
        self.w_bottleneck = gamma0.transpose(1, 2) * w_bottleneck  # [E, N_in, B]
        offset = torch.bmm(beta0, w_bottleneck) + (b_bottleneck if b_bottleneck is not None else 0)  # [E, 1, B]
        per_ear = [_temporal_blocks(m) for m in masknets]
        self.blocks = []
        for i in range(len(per_ear[0])):
            block = self._stack_block([ear[i] for ear in per_ear], offset)
            offset = offset + block.offset
            self.blocks.append(block)
        w_mask, b_mask = _stack_pointwise([m.mask_conv1x1 for m in masknets])
        self.w_mask = w_mask  # [E, B, C*N_in]
        self.b_mask = torch.bmm(offset, w_mask) + (b_mask if b_mask is not None else 0)  # [E, 1, C*N_in]
        for name in ("w_bottleneck", "w_mask", "b_mask"):
            setattr(self, name, getattr(self, name).to(device).contiguous())

    def _stack_block(self, blocks: list[TemporalBlock], offset: torch.Tensor) -> _Block:
        """Stack one block of every ear; ``offset`` ``[E, 1, B]`` is the stream's offset before it."""
        layers = [b.layers for b in blocks]
        dsconvs = [l.DSconv for l in layers]
        depthwise = [_inner_conv(d.conv_0) for d in dsconvs]
        reaches = {conv_reach(d) for d in dsconvs}
        dilations = {c.dilation[0] for c in depthwise}
        if len(reaches) != 1 or len(dilations) != 1 or any(c.groups != c.in_channels for c in depthwise):
            raise NotStreamableError("the ears' mask networks must have the same depthwise TCN geometry")
        hidden = depthwise[0].in_channels
        w_in, b_in = _stack_pointwise([l.conv for l in layers])
        w_out, b_out = _stack_pointwise([d.conv_1 for d in dsconvs])
        gamma1, beta1 = _stack_norm([l.norm for l in layers])
        gamma2, beta2 = _stack_norm([d.act_0 for d in dsconvs])
        taps = torch.stack([c.weight.detach()[:, 0, :].t() for c in depthwise], dim=1)  # [P, E, H]
        b_dw = None
        if any(c.bias is not None for c in depthwise):
            b_dw = torch.stack([c.bias.detach() if c.bias is not None else torch.zeros(hidden) for c in depthwise])
            b_dw = b_dw.unsqueeze(1)  # [E, 1, H]
        block = _Block(
            w_in=w_in,
            b_in=torch.bmm(offset, w_in) + (b_in if b_in is not None else 0),
            prelu1=_stack_prelu([l.act for l in layers], hidden),
            gamma1=gamma1, beta1=beta1,
            taps=tuple(tap.unsqueeze(1) for tap in taps),
            tap_stack=taps.permute(1, 2, 0).unsqueeze(1),
            b_dw=b_dw,
            dilation=dilations.pop(), left=reaches.pop()[0], hidden=hidden,
            prelu2=_stack_prelu([d.act for d in dsconvs], hidden),
            w_out=gamma2.transpose(1, 2) * w_out,
            offset=torch.bmm(beta2, w_out) + (b_out if b_out is not None else 0),
        )
        if block.left <= 0:
            raise NotStreamableError("a depthwise convolution that looks at no past frame is not supported")
        for name, value in vars(block).items():
            if isinstance(value, torch.Tensor):
                setattr(block, name, value.detach().to(self.device).contiguous())
            elif isinstance(value, _Slopes):
                setattr(block, name, value.to(self.device))
        block.taps = tuple(tap.to(self.device).contiguous() for tap in block.taps)
        return block

    def histories(self, spare: int = 256) -> list[_History]:
        """Fresh depthwise-convolution pasts, one per block: the zeros of the offline padding."""
        return [_History(self.n_ears, block.left, block.hidden, spare, self.device) for block in self.blocks]

    def __call__(self, x: torch.Tensor, convolve: Convolve, prelu: PReLU) -> torch.Tensor:
        """Masks for ``n`` new frames: ``[E, n, N_in] -> [E, n, C, N_in]``."""
        y = F.layer_norm(x, (self.n_in,), eps=LN_EPS)  # [E, n, N_in], affine folded into the bottleneck
        y = torch.bmm(y, self.w_bottleneck)  # [E, n, B]: the residual stream minus its offset
        for index, block in enumerate(self.blocks):
            y = _block_output(block, y, convolve(index, _block_input(block, y, prelu)), prelu)  # [E, n, B]
        score = torch.baddbmm(self.b_mask, y, self.w_mask).reshape(self.n_ears, -1, self.n_spks, self.n_in)
        if self.mask_nonlinear == "softmax":
            return F.softmax(score, dim=-1)  # MaskNet's softmax runs over its channel axis
        return F.relu(score)


def _encoder_wiring(model: BinauralTasNet) -> torch.Tensor:
    """Encoders as one ``[E, 2L, I*N]`` matrix per output ear, applied to interleaved frames.

    A frame is ``L`` samples of both ears, interleaved as they lie in a ``[time, 2]`` stream:
    row ``2 * l + ear`` of the matrix weights sample ``l`` of that ear. Reproduces
    ``forward_encoder`` + the default ``forward_masker`` input (streams concatenated on
    channels): for :class:`ParallelTasNet` ear L sees ``[encoderL(left), encoderR(right)]`` and
    ear R ``[encoderR(left), encoderL(right)]``; for :class:`IndependentTasNet` ear L sees
    ``encoderL(left)`` and ear R ``encoderR(right)``. The zeros cost nothing worth saving
    (``L`` = 16) and the whole encoder becomes one matmul.
    """
    w_left = _encoder_conv_of(model.encoderL).weight.detach()[:, 0, :].t()  # [L, N]
    w_right = _encoder_conv_of(model.encoderR).weight.detach()[:, 0, :].t()  # [L, N]
    zeros = torch.zeros_like(w_left)
    if isinstance(model, ParallelTasNet):
        ears = [[(w_left, zeros), (zeros, w_right)], [(w_right, zeros), (zeros, w_left)]]
    else:
        ears = [[(w_left, zeros)], [(zeros, w_right)]]
    # [L, 2 (ear of the sample), I*N] -> [2L, I*N] with row 2l + ear.
    return torch.stack([
        torch.cat([torch.stack(pair, dim=1) for pair in streams], dim=2).reshape(2 * w_left.shape[0], -1)
        for streams in ears
    ])  # [E, 2L, I*N]


def _encoder_conv_of(encoder: nn.Module) -> nn.Conv1d:
    conv = encoder.conv1d
    if conv.bias is not None:
        raise NotStreamableError("encoders with a bias are not supported (dual_path.Encoder has none)")
    return conv


class StreamingTasNet:
    """A causal :class:`binaural.models.tasnet.BinauralTasNet` run on a stream, chunk after chunk.

    ``process_chunk`` takes any number of new samples ``[time, 2]`` (multiples of the encoder
    stride give the lowest latency, see :func:`algorithmic_latency`) and returns the separated
    samples that no future input can change, ``[time', 2, n_spks]``: ``time' = time - (L -
    stride)`` on the first call and ``time`` afterwards when chunks are multiples of the stride.
    ``flush`` ends the stream and returns the rest, so that the outputs concatenated have the
    input's length and equal ``model(whole_stream)`` (float rounding aside).

    Every step is a few batched ops on all ears at once: the encoders one matmul on the
    unfolded frames (:func:`_encoder_wiring`), the mask networks :class:`_StreamingMaskNets`,
    the decoders one ``bmm`` followed by an overlap-add of ``L / stride`` slices
    (:meth:`separate_frames`, which an ONNX export traces as well). The weights are copied at
    construction; create a new object after changing the model's.

    Arguments
    ---------
    model : ParallelTasNet or IndependentTasNet
        Causal (``causal: True``, ``norm_type: cLN``); checked by :func:`check_streamable`.
    device : torch.device or str, optional
        Where to run; defaults to the model's device.
    """

    def __init__(self, model: BinauralTasNet, device: torch.device | str | None = None) -> None:
        check_streamable(model)
        model.eval()
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        assert model.kernel_size is not None and model.stride is not None and model.n_filters is not None
        self.window: int = model.kernel_size
        self.stride: int = model.stride
        self.n_filters: int = model.n_filters
        self.masknets = _StreamingMaskNets([model.masknetL, model.masknetR], self.device)
        self.n_spks: int = self.masknets.n_spks
        self.w_encoder = _encoder_wiring(model).to(self.device).contiguous()  # [E, 2L, I*N]
        self.n_streams: int = self.w_encoder.shape[-1] // self.n_filters  # I
        # The decoder kernel zero-padded to a whole number of hops, so overlap-add is slicing.
        self.hops_per_window: int = math.ceil(self.window / self.stride)
        if self.hops_per_window < 2:
            raise NotStreamableError("the encoder window must be longer than its hop")
        padded = self.hops_per_window * self.stride
        weights = [d.weight.detach()[:, 0, :] for d in (model.decoderL, model.decoderR)]  # [N, L]
        self.w_decoder = torch.stack([F.pad(w, (0, padded - self.window)) for w in weights]).to(self.device)
        biases = [d.bias for d in (model.decoderL, model.decoderR)]
        self.decoder_bias = (
            None if all(b is None for b in biases)
            else torch.stack(
                [b.detach().reshape(()) if b is not None else torch.zeros(()) for b in biases]
            ).to(self.device)[:, None]
        )  # [2, 1]: ConvTranspose1d adds it once per output sample, so it is added at emission
        self.reset()

    def reset(self) -> None:
        """Start a new stream: clear every state (input overlap, TCN histories, decoder tail)."""
        self.pending = torch.zeros(0, 2, device=self.device)  # samples not yet in a complete frame
        # Decoder overlap-add tail: the hops after the last emitted one, [E, hops - 1, C, stride].
        self.tail = self.initial_tail()
        self.received = 0  # samples received so far
        self.emitted = 0  # samples returned so far
        self._histories = self.masknets.histories()

    def initial_tail(self) -> torch.Tensor:
        """The decoder's overlap-add tail at the start of a stream: zeros ``[E, hops - 1, C, stride]``."""
        return torch.zeros(2, self.hops_per_window - 1, self.n_spks, self.stride, device=self.device)

    def latency(self, chunk: int) -> int:
        """Algorithmic latency (samples) for chunks of ``chunk`` samples (see :func:`algorithmic_latency`)."""
        return algorithmic_latency(self.window, self.stride, chunk)

    def _convolve(self, index: int, frames: torch.Tensor) -> torch.Tensor:
        return self._histories[index].convolve(self.masknets.blocks[index], frames)

    def separate_frames(
        self, frames: torch.Tensor, tail: torch.Tensor, convolve: Convolve, prelu: PReLU = eager_prelu
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode, mask and decode ``n`` complete frames; the step both engines run.

        Arguments
        ---------
        frames : torch.Tensor
            ``[n, 2L]``: frame ``k`` is samples ``k * stride ... k * stride + L - 1`` of both
            ears, interleaved (sample-major, as in a ``[time, 2]`` stream).
        tail : torch.Tensor
            ``[E, hops - 1, C, stride]`` overlap-add tail of the previous frames.
        convolve : Convolve
            The depthwise convolutions over their pasts (which it keeps).
        prelu : PReLU
            :func:`eager_prelu`, or :func:`onnx_prelu` for an ONNX export.

        Returns
        -------
        tuple of torch.Tensor
            The ``n * stride`` samples now final, ``[n * stride, 2, C]`` (decoder bias included),
            and the new tail.
        """
        x = F.relu(torch.matmul(frames, self.w_encoder))  # [E, n, I*N]: encoder streams per ear
        masks = self.masknets(x, convolve, prelu)  # [E, n, C, N_in]
        streams = self.n_streams * self.n_filters
        masked = masks[..., :streams] * x.unsqueeze(2)  # [E, n, C, I*N]
        if self.n_streams > 1:
            masked = masked.reshape(2, -1, self.n_spks, self.n_streams, self.n_filters).sum(3)  # [E, n, C, N]
        hops = self.hops_per_window
        pieces = torch.bmm(masked.reshape(2, -1, self.n_filters), self.w_decoder)  # [E, n*C, hops*S]
        pieces = pieces.reshape(2, -1, self.n_spks, hops, self.stride)  # [E, n, C, hops, S]
        # Overlap-add: hop q of frame k lands on output hop k + q (pads of fixed size, no shape arithmetic).
        full = F.pad(pieces[:, :, :, 0], (0, 0, 0, 0, 0, hops - 1))  # [E, n+hops-1, C, S]
        for q in range(1, hops):
            full = full + F.pad(pieces[:, :, :, q], (0, 0, 0, 0, q, hops - 1 - q))
        full = torch.cat((full[:, : hops - 1] + tail, full[:, hops - 1 :]), dim=1)
        out = full[:, : 1 - hops].permute(1, 3, 0, 2).reshape(-1, 2, self.n_spks)  # [n*S, 2, C]
        if self.decoder_bias is not None:
            out = out + self.decoder_bias
        return out, full[:, 1 - hops :]

    @torch.inference_mode()
    def process_chunk(self, chunk: torch.Tensor) -> torch.Tensor:
        """Feed the next ``[time, 2]`` samples; returns the newly final ``[time', 2, n_spks]``."""
        if chunk.ndim != 2 or chunk.shape[1] != 2:
            raise ValueError(f"a chunk is [time, 2] (left, right); got shape {tuple(chunk.shape)}")
        chunk = chunk.to(self.device, torch.float32)
        self.received += chunk.shape[0]
        self.pending = torch.cat((self.pending, chunk)) if self.pending.shape[0] else chunk
        if self.pending.shape[0] < self.window:
            return torch.zeros(0, 2, self.n_spks, device=self.device)
        # Interleaved samples: a frame is 2L consecutive values, frames 2 * stride values apart.
        frames = self.pending.reshape(-1).unfold(0, 2 * self.window, 2 * self.stride)  # [n, 2L]
        n = frames.shape[0]
        self.pending = self.pending[n * self.stride :]
        out, self.tail = self.separate_frames(frames, self.tail, self._convolve)
        self.emitted += n * self.stride
        return out

    @torch.inference_mode()
    def flush(self) -> torch.Tensor:
        """End of stream: the remaining ``[time', 2, n_spks]`` (decoder tail, then zeros as offline).

        Afterwards the samples returned add up to the samples received, as the offline model
        pads its decoder output with zeros up to the input length. A stream shorter than one
        encoder window gets zeros (the offline model refuses such an input).
        """
        out = end_of_stream(self.received - self.emitted, self.tail, self.emitted > 0,
                            self.window - self.stride, self.decoder_bias)
        self.emitted = self.received
        self.tail = self.initial_tail()
        return out


def end_of_stream(
    remaining: int, tail: torch.Tensor, decoded: bool, overlap: int, bias: torch.Tensor | None
) -> torch.Tensor:
    """The last ``remaining`` samples of a stream, ``[remaining, 2, C]``: the decoder tail, then zeros.

    Arguments
    ---------
    remaining : int
        Samples received but not yet returned.
    tail : torch.Tensor
        ``[E, hops - 1, C, stride]`` overlap-add tail of the last frames.
    decoded : bool
        Whether any frame was decoded (if not, the stream was shorter than one window: zeros).
    overlap : int
        ``L - stride``: how much of the tail is real output (the rest is the kernel's zero padding).
    bias : torch.Tensor or None
        ``[2, 1]`` decoder biases, added where a frame covers the sample (as ConvTranspose1d does).
    """
    n_spks = tail.shape[2]
    out = torch.zeros(remaining, 2, n_spks, device=tail.device, dtype=tail.dtype)
    if decoded:
        flat = tail.permute(1, 3, 0, 2).reshape(-1, 2, n_spks)  # [(hops-1)*S, 2, C]
        n_tail = min(remaining, overlap)
        out[:n_tail] = flat[:n_tail]
        if bias is not None:
            out[:n_tail] += bias
    return out
