"""The fused mask-network layers: SpeechBrain's Conv-TasNet layers, same parameters, faster.

SpeechBrain's conv_tasnet.MaskNet spends most of its time around its arithmetic: cLN as separate
mean / var / sub / div / mul / add passes, every 1x1 convolution as a transpose to channels-first,
a (0, 0) reflect "padding" that copies the whole tensor, the convolution and a transpose back,
and the causal depthwise convolution as two paddings and a Chomp1d copy. The modules below
compute the same functions on the same [batch, time, channels] layout with fused operations and
hold the very same parameters under the same names, so SpeechBrain checkpoints load unchanged.
:func:`fuse_masknet` swaps them into a MaskNet in place; BinauralTasNet does so for its two.

Shapes: every layer takes and returns ``[batch, time, channels]`` (channels last).
"""
from __future__ import annotations

import abc

import torch
import torch.nn.functional as F
from speechbrain.lobes.models import conv_tasnet as sb_tasnet
from speechbrain.nnet import CNN as sb_CNN
from torch import nn

__all__ = [
    "CausalDepthwiseConv1d",
    "DepthwiseConv1d",
    "FusedChannelwiseLayerNorm",
    "FusedGlobalLayerNorm",
    "PointwiseConv1d",
    "SameDepthwiseConv1d",
    "fuse_masknet",
]


class _FusedNorm(nn.Module):
    """A fused twin of a SpeechBrain norm (``gamma``, ``beta``: ``[1, 1, C]``)."""

    gamma: nn.Parameter
    beta: nn.Parameter

    @classmethod
    def from_speechbrain(cls, norm: nn.Module) -> _FusedNorm:
        """The fused twin of ``norm``, sharing its parameter objects."""
        fused = cls(norm.gamma.shape[-1])
        fused.gamma, fused.beta = norm.gamma, norm.beta
        return fused


class FusedChannelwiseLayerNorm(_FusedNorm, sb_tasnet.ChannelwiseLayerNorm):
    """SpeechBrain's ``cLN`` (statistics over the channels of each frame) as one ``F.layer_norm``.

    Same parameters (``gamma``, ``beta``: ``[1, 1, C]``), same function:
    ``gamma * (y - mean) / sqrt(var + 1e-8) + beta`` with the biased variance over ``C``.
    Shapes: ``[batch, time, C] -> [batch, time, C]``.
    """

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(y, (y.shape[-1],), self.gamma.view(-1), self.beta.view(-1), eps=sb_tasnet.EPS)


class FusedGlobalLayerNorm(_FusedNorm, sb_tasnet.GlobalLayerNorm):
    """SpeechBrain's ``gLN`` (statistics over all frames and channels of an utterance), fused.

    ``F.layer_norm`` over ``(time, C)`` without affine, then one ``addcmul`` with the per-channel
    ``gamma`` and ``beta`` (``[1, 1, C]``). Shapes: ``[batch, time, C] -> [batch, time, C]``.
    """

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.beta, F.layer_norm(y, y.shape[1:], eps=sb_tasnet.EPS), self.gamma)


class PointwiseConv1d(nn.Module):
    """SpeechBrain's ``CNN.Conv1d(kernel_size=1)`` on ``[batch, time, C_in]`` as one ``F.linear``.

    Holds the same ``torch.nn.Conv1d`` at ``.conv`` (state_dict key ``conv.weight``, ``[C_out,
    C_in, 1]``), without the wrapper's two transposes and its zero-width reflect padding (a full
    copy). Shapes: ``[batch, time, C_in] -> [batch, time, C_out]``.
    """

    def __init__(self, conv: nn.Conv1d) -> None:
        super().__init__()
        if conv.kernel_size[0] != 1 or conv.stride[0] != 1 or conv.groups != 1:
            raise ValueError("PointwiseConv1d needs a 1x1 convolution with stride 1 and one group")
        self.conv = conv
        self.in_channels: int = conv.in_channels
        self.out_channels: int = conv.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.conv.weight.squeeze(-1), self.conv.bias)


class DepthwiseConv1d(nn.Module, abc.ABC):
    """A depthwise, dilated convolution along time on ``[batch, time, H]``, channels last.

    ``P`` shifted multiply-adds on the padded input (``out[t] = sum_j w[j] * padded[t + j*d]``)
    instead of a transpose to channels-first, the convolution and a transpose back: with ``P = 3``
    taps and ``H`` channels per frame this is memory-bound either way, and the channels-last
    layout is the one every other layer of the mask network uses. Holds the same
    ``torch.nn.Conv1d`` at ``.conv`` (``[H, 1, P]`` weights) as SpeechBrain's wrapper.

    ``left``: padding frames before the input (output ``t`` sees input frames ``t - left`` to
    ``t - left + (P - 1) * d``); the subclass says how the padding is made. Only the weights of
    ``.conv`` are read (its own ``padding`` setting is not used).
    """

    def __init__(self, conv: nn.Conv1d, left: int) -> None:
        super().__init__()
        if conv.stride[0] != 1 or conv.groups != conv.in_channels or conv.out_channels != conv.in_channels:
            raise ValueError("expected a depthwise convolution (groups = channels) with stride 1")
        self.conv = conv
        self.dilation: int = conv.dilation[0]
        self.span: int = (conv.kernel_size[0] - 1) * self.dilation  # frames between first and last tap
        self.left: int = left

    @staticmethod
    def from_speechbrain(conv: nn.Module) -> DepthwiseConv1d | None:
        """The fused twin of a SpeechBrain ``DSconv.conv_0`` (sharing its ``torch.nn.Conv1d``).

        :class:`CausalDepthwiseConv1d` for ``causal=True`` blocks, :class:`SameDepthwiseConv1d`
        for non-causal ones; ``None`` for another layout (or a layer already fused).
        """
        inner = getattr(conv, "conv", None)
        if isinstance(conv, DepthwiseConv1d) or type(inner) is not nn.Conv1d:
            return None
        if inner.stride[0] != 1 or inner.groups != inner.in_channels or inner.out_channels != inner.in_channels:
            return None
        span = (inner.kernel_size[0] - 1) * inner.dilation[0]
        padding, mode = getattr(conv, "padding", None), getattr(conv, "padding_mode", None)
        if padding == "causal" and inner.padding == "same":
            return CausalDepthwiseConv1d(inner, left=span + span // 2)
        if padding == "same" and inner.padding in (0, (0,)) and mode == "reflect" and span % 2 == 0:
            return SameDepthwiseConv1d(inner, left=span // 2)
        return None

    @abc.abstractmethod
    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """``[batch, time, H] -> [batch, time + span, H]``, ``left`` frames added in front."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_frames = x.shape[1]
        padded = self.pad(x)  # [batch, time + span, H]
        taps = self.conv.weight[:, 0, :]  # [H, P]
        out = padded[:, :n_frames] * taps[:, 0]
        for j in range(1, taps.shape[1]):
            start = j * self.dilation
            out = torch.addcmul(out, padded[:, start : start + n_frames], taps[:, j])
        if self.conv.bias is not None:
            out = out + self.conv.bias
        return out  # [batch, time, H]


class CausalDepthwiseConv1d(DepthwiseConv1d):
    """SpeechBrain's causal depthwise convolution (``padding="causal"`` + ``Chomp1d``), one pad.

    SpeechBrain pads ``span = (P - 1) * d`` zeros in front, lets ``torch.nn.Conv1d(padding=
    "same")`` pad ``span // 2`` more in front and the rest behind, and chomps the last ``span``
    outputs: output ``t`` sees frames ``t - left ... t - left + span`` with ``left = span + span //
    2`` (``t - 3d, t - 2d, t - d`` for ``P = 3``). Here: ``left`` zeros in front and the last
    ``left - span`` frames dropped, in one ``F.pad``.
    """

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x, (0, 0, self.left, self.span - self.left))  # negative: trims the end


class SameDepthwiseConv1d(DepthwiseConv1d):
    """SpeechBrain's non-causal depthwise convolution: ``span / 2`` frames reflected on each side.

    (SpeechBrain's ``CNN.Conv1d`` pads ``padding="same"`` in its default ``padding_mode="reflect"``.)
    """

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        right = self.span - self.left
        if x.shape[1] <= max(self.left, right):
            raise ValueError(
                f"reflect padding of {max(self.left, right)} frames needs more than that many encoder "
                f"frames; got {x.shape[1]} (the input is too short for this mask network)"
            )
        before = x[:, 1 : self.left + 1].flip(1)  # x[left], ..., x[1]
        after = x[:, x.shape[1] - 1 - right : x.shape[1] - 1].flip(1)  # x[T-2], ..., x[T-1-right]
        return torch.cat((before, x, after), dim=1)


def _fused_pointwise(conv: nn.Module) -> nn.Module:
    """``conv`` as a :class:`PointwiseConv1d` when it is a plain SpeechBrain 1x1 ``CNN.Conv1d``."""
    inner = getattr(conv, "conv", None)
    plain = (
        isinstance(conv, sb_CNN.Conv1d)
        and type(inner) is nn.Conv1d
        and inner.kernel_size[0] == 1
        and inner.stride[0] == 1
        and inner.groups == 1
        and not getattr(conv, "skip_transpose", True)
        and not getattr(conv, "unsqueeze", True)
    )
    return PointwiseConv1d(inner) if plain else conv


def _fused_norm(norm: nn.Module) -> nn.Module:
    if type(norm) is sb_tasnet.ChannelwiseLayerNorm:
        return FusedChannelwiseLayerNorm.from_speechbrain(norm)
    if type(norm) is sb_tasnet.GlobalLayerNorm:
        return FusedGlobalLayerNorm.from_speechbrain(norm)
    return norm


def fuse_masknet(masknet: nn.Module) -> nn.Module:
    """Swap the layers of a SpeechBrain ``conv_tasnet.MaskNet`` for their fused equivalents, in place.

    cLN / gLN -> :class:`FusedChannelwiseLayerNorm` / :class:`FusedGlobalLayerNorm`, 1x1
    ``CNN.Conv1d`` -> :class:`PointwiseConv1d`, each block's depthwise ``conv_0`` (+ ``chomp``) ->
    :class:`CausalDepthwiseConv1d` / :class:`SameDepthwiseConv1d`. The parameter objects are kept,
    so ``state_dict()`` keys, shapes and values are unchanged (a SpeechBrain checkpoint of the
    MaskNet loads as before) and the function is the same up to float rounding. Layers of another
    kind (BatchNorm, a non-default padding) are left as they are. Returns ``masknet``.
    """
    if not isinstance(masknet, sb_tasnet.MaskNet):
        return masknet
    masknet.layer_norm = _fused_norm(masknet.layer_norm)
    masknet.bottleneck_conv1x1 = _fused_pointwise(masknet.bottleneck_conv1x1)
    masknet.mask_conv1x1 = _fused_pointwise(masknet.mask_conv1x1)
    for block in masknet.temporal_conv_net.values():
        if not isinstance(block, sb_tasnet.TemporalBlock):
            continue
        layers = block.layers  # speechbrain Sequential (a ModuleDict): conv, act, norm, DSconv
        layers.conv = _fused_pointwise(layers.conv)
        layers.norm = _fused_norm(layers.norm)
        dsconv = layers.DSconv  # conv_0, [chomp], act (PReLU), act_0 (norm), conv_1
        depthwise = DepthwiseConv1d.from_speechbrain(dsconv.conv_0)
        if depthwise is not None:
            dsconv.conv_0 = depthwise
            if "chomp" in dsconv:
                del dsconv["chomp"]  # the causal pad already drops the frames Chomp1d would cut
        dsconv.act_0 = _fused_norm(dsconv.act_0)
        dsconv.conv_1 = _fused_pointwise(dsconv.conv_1)
    return masknet
