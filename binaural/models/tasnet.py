"""Binaural Conv-TasNet separators: the three variants of the SpeechBrain recipe as modules.

This reproduces ``recipes/BinauralWSJ0Mix/separation/train.py`` (``Separation.compute_forward``)
of SpeechBrain and the systems of Han, Luo & Mesgarani, "Real-time binaural speech
separation with preserved spatial cues", ICASSP 2020, in the style of torchaudio's
``conv_tasnet`` / Asteroid's ``BaseEncoderMaskerDecoder``: one ``nn.Module`` per variant,
built from the SpeechBrain lobes that the published YAML declares with ``!new:``.

* :class:`IndependentTasNet` (published ``"independent"``): one encoder / mask network /
  decoder per ear, each ear sees only itself.
* :class:`CrossChannelTasNet` (published ``"cross"``): per ear, with interaural features
  (ILD, optionally IPD) concatenated to the ear's encoding. Unlike the recipe, the projection
  of those features is a learned, checkpointed submodule created in ``__init__``.
* :class:`ParallelTasNet` (published ``"parallel"``, the paper's MIMO system): each ear's
  mask network sees both ears' encodings, and each output ear is the decoded sum of the
  masked encodings of both input ears.

Paper symbols (Luo & Mesgarani's Conv-TasNet, reused by Han et al.) and where they live:

=====  ==========================================  =========================================
 sym   meaning                                     SpeechBrain lobe argument
=====  ==========================================  =========================================
 N     number of encoder filters (basis signals)   ``Encoder(out_channels)``,
                                                   ``Decoder(in_channels)``
 L     filter length in samples                    ``Encoder(kernel_size)``,
                                                   ``Decoder(kernel_size)``; the encoder's
                                                   stride is fixed to ``L // 2`` by SpeechBrain
 B     bottleneck channels (1x1 conv)              ``MaskNet(B)``
 H     channels inside each conv block             ``MaskNet(H)``
 P     kernel size inside each conv block          ``MaskNet(P)``
 X     conv blocks per repeat                      ``MaskNet(X)``
 R     number of repeats                           ``MaskNet(R)``
 C     number of speakers                          ``MaskNet(C)``
=====  ==========================================  =========================================

Careful: SpeechBrain's ``MaskNet(N=...)`` is the mask network's *input* channel count, which
is ``N`` for the independent variant but ``2 * N`` for the cross and parallel variants (two
``N``-channel streams are concatenated). Its masks then have that many channels, and the
recipe (and this module) uses the first ``N`` (cross) or the two ``N``-channel halves
(parallel). The constructors check this and raise a ``ValueError`` naming the size to use.

Speed: the constructors swap the layers of SpeechBrain mask networks in place for fused
equivalents (:func:`fuse_masknet`: ``F.layer_norm`` for cLN / gLN, ``F.linear`` for the 1x1
convolutions, one pad for the depthwise convolutions, all channels last). Same parameters, same
``state_dict`` keys, same function up to float rounding: published checkpoints load unchanged.

Shapes: ``forward(mix)`` takes ``[batch, time, 2]`` (ear axis last, 0 = left, 1 = right, as
the recipe's dataloader delivers it) and returns ``[batch, time, 2, n_spks]``, trimmed or
zero-padded to the input length exactly as the recipe does.
"""
from __future__ import annotations

import abc
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from binaural.models.layers import fuse_masknet

__all__ = [
    "PUBLISHED_NAMES",
    "BinauralTasNet",
    "CrossChannelTasNet",
    "IndependentTasNet",
    "ParallelTasNet",
    "published_recoverables",
]

#: The checkpointer recoverable names of the six lobes in the published YAML files.
PUBLISHED_NAMES: tuple[str, ...] = (
    "encoderL",
    "encoderR",
    "masknetL",
    "masknetR",
    "decoderL",
    "decoderR",
)

#: One tensor per output ear: ``(left, right)``.
EarPair = tuple[torch.Tensor, torch.Tensor]


def _encoder_geometry(encoder: nn.Module) -> tuple[int | None, int | None, int | None]:
    """``(N, L, stride)`` of a SpeechBrain ``dual_path.Encoder`` (``None`` when unknown)."""
    conv = getattr(encoder, "conv1d", None)
    if not isinstance(conv, nn.Conv1d):
        return None, None, None
    return conv.out_channels, conv.kernel_size[0], conv.stride[0]


def _masknet_in_channels(masknet: nn.Module) -> int | None:
    """Input channels (SpeechBrain's ``MaskNet(N=...)``) of a ``conv_tasnet.MaskNet``."""
    bottleneck = getattr(masknet, "bottleneck_conv1x1", None)
    channels = getattr(bottleneck, "in_channels", None)
    return channels if isinstance(channels, int) else None


class BinauralTasNet(nn.Module, abc.ABC):
    """Encoder -> mask network -> decoder, once per ear, on a ``[batch, time, 2]`` mixture.

    The pipeline is split into overridable steps (Asteroid style)::

        encodings = forward_encoder(mix)           # 2 x [batch, I, N, K]
        masks     = forward_masker(mix, encodings) # 2 x [C, batch, M, K], M >= I * N
        masked    = apply_masks(encodings, masks)  # 2 x [C, batch, N, K]
        est       = forward_decoder(masked)        # [batch, time', 2, C]

    where ``I`` is the number of encoded streams feeding one output ear (1 for the
    per-ear variants, 2 for the parallel one), ``K`` the number of encoder frames and each
    pair holds (left output ear, right output ear). ``apply_masks`` follows the recipe:
    mask channel block ``i`` multiplies stream ``i`` and the masked streams are summed.

    Arguments
    ---------
    encoderL, encoderR : nn.Module
        ``speechbrain.lobes.models.dual_path.Encoder(kernel_size=L, out_channels=N)``:
        ``[batch, time] -> [batch, N, K]`` with ``K = (time - L) // (L // 2) + 1``.
    masknetL, masknetR : nn.Module
        ``speechbrain.lobes.models.conv_tasnet.MaskNet(N=N_in, B, H, P, X, R, C, norm_type,
        causal, mask_nonlinear)``: ``[batch, N_in, K] -> [C, batch, N_in, K]``. ``N_in`` is
        ``N * masknet_in_factor`` (see the subclasses).
    decoderL, decoderR : nn.Module
        ``speechbrain.lobes.models.dual_path.Decoder(in_channels=N, out_channels=1,
        kernel_size=L, stride=L // 2, bias=False)``: ``[batch, N, K] -> [batch, time']``.
    masknet_in_factor : int, optional
        Expected ``N_in / N``, checked against the lobes when their sizes can be read;
        defaults to the class's ``MASKNET_IN_FACTOR`` (a variant sets it, or passes it when it
        depends on an argument).

    The six lobes are stored under the published recoverable names (``self.encoderL``,
    ...), so a checkpointer can list the very same objects (see :func:`published_recoverables`).
    The layers of SpeechBrain mask networks are swapped in place for their fused equivalents
    (:func:`fuse_masknet`): same parameter objects and ``state_dict`` keys, same function, two
    to four times faster. The lobe objects a YAML file (and its checkpointer) holds are the ones
    the model runs.
    """

    MASKNET_IN_FACTOR = 1

    def __init__(
        self,
        encoderL: nn.Module,
        encoderR: nn.Module,
        masknetL: nn.Module,
        masknetR: nn.Module,
        decoderL: nn.Module,
        decoderR: nn.Module,
        *,
        masknet_in_factor: int | None = None,
    ) -> None:
        super().__init__()
        masknet_in_factor = masknet_in_factor or self.MASKNET_IN_FACTOR
        self.encoderL = encoderL
        self.encoderR = encoderR
        self.masknetL = fuse_masknet(masknetL)
        self.masknetR = fuse_masknet(masknetR)
        self.decoderL = decoderL
        self.decoderR = decoderR

        n_filters, kernel, stride = _encoder_geometry(encoderL)
        if _encoder_geometry(encoderR) != (n_filters, kernel, stride):
            raise ValueError(
                f"{type(self).__name__}: encoderL and encoderR must have the same geometry "
                f"(out_channels, kernel_size, stride), got {_encoder_geometry(encoderL)} "
                f"and {_encoder_geometry(encoderR)}"
            )
        #: N: encoder filters; L: encoder kernel (filter length); encoder stride (L // 2).
        self.n_filters: int | None = n_filters
        self.kernel_size: int | None = kernel
        self.stride: int | None = stride

        if n_filters is not None:
            expected = masknet_in_factor * n_filters
            for name, masknet in (("masknetL", masknetL), ("masknetR", masknetR)):
                got = _masknet_in_channels(masknet)
                if got is not None and got != expected:
                    raise ValueError(
                        f"{type(self).__name__}: {name} takes {got} input channels but this "
                        f"variant feeds it {expected} (= {masknet_in_factor} x the encoders' "
                        f"N={n_filters}); declare MaskNet with N: {expected}"
                    )
            for name, decoder in (("decoderL", decoderL), ("decoderR", decoderR)):
                got = getattr(decoder, "in_channels", None)
                if isinstance(got, int) and got != n_filters:
                    raise ValueError(
                        f"{type(self).__name__}: {name} has in_channels={got} but the "
                        f"encoders have N={n_filters} filters; declare Decoder with "
                        f"in_channels: {n_filters}"
                    )
        c_left = getattr(masknetL, "C", None)
        c_right = getattr(masknetR, "C", None)
        if c_left is not None and c_right is not None and c_left != c_right:
            raise ValueError(
                f"{type(self).__name__}: masknetL separates C={c_left} speakers but "
                f"masknetR C={c_right}"
            )
        #: C: number of speakers (``None`` if the mask networks do not say).
        self.n_spks: int | None = c_left

    # ------------------------------------------------------------------ pipeline steps
    @abc.abstractmethod
    def forward_encoder(self, mix: torch.Tensor) -> EarPair:
        """Encode the ears: ``[batch, time, 2]`` -> 2 x ``[batch, I, N, K]``; each variant says how."""

    def forward_masker(self, mix: torch.Tensor, encodings: EarPair) -> EarPair:
        """Masks per output ear: 2 x ``[C, batch, M, K]`` from the stacked encodings.

        The default feeds each ear's mask network the concatenation of its ``I`` streams
        along the channel axis (``[batch, I * N, K]``), in stream order.
        """
        enc_left, enc_right = encodings  # [batch, I, N, K] each
        masks_left = self.masknetL(enc_left.flatten(1, 2))  # [C, batch, I*N, K]
        masks_right = self.masknetR(enc_right.flatten(1, 2))  # [C, batch, I*N, K]
        return masks_left, masks_right

    def apply_masks(self, encodings: EarPair, masks: EarPair) -> EarPair:
        """Masked encodings per output ear: 2 x ``[C, batch, N, K]``.

        Mask channels ``[i*N, (i+1)*N)`` weight stream ``i`` (the recipe's
        ``torch.chunk(est_mask, 2, dim=2)[i]``); channels beyond ``I*N`` are unused (the
        cross variant's mask network outputs ``2N`` channels of which the recipe uses the
        first ``N``). The masked streams are summed.
        """
        return self._mask_ear(encodings[0], masks[0]), self._mask_ear(encodings[1], masks[1])

    def forward_decoder(self, masked: EarPair) -> torch.Tensor:
        """Decode every speaker of both ears: 2 x ``[C, batch, N, K]`` -> ``[batch, time', 2, C]``."""
        left = self._decode_ear(self.decoderL, masked[0])  # [batch, time', C]
        right = self._decode_ear(self.decoderR, masked[1])  # [batch, time', C]
        return torch.stack((left, right), dim=2)  # [batch, time', 2, C]

    # ------------------------------------------------------------------ forward
    def forward(self, mix: torch.Tensor) -> torch.Tensor:
        """Separate a binaural mixture.

        Arguments
        ---------
        mix : torch.Tensor
            ``[batch, time, 2]`` mixture, ear axis last (0 = left, 1 = right).

        Returns
        -------
        torch.Tensor
            ``[batch, time, 2, n_spks]`` binaural estimates of every speaker, with the input's
            ``time`` (the decoder's output is zero-padded or trimmed, as in the recipe).
        """
        self._check_input(mix)
        n_samples = mix.shape[1]
        encodings = self.forward_encoder(mix)  # 2 x [batch, I, N, K]
        masks = self.forward_masker(mix, encodings)  # 2 x [C, batch, M, K]
        masked = self.apply_masks(encodings, masks)  # 2 x [C, batch, N, K]
        est = self.forward_decoder(masked)  # [batch, time', 2, C]
        return self._fit_length(est, n_samples)  # [batch, time, 2, C]

    def extra_recoverables(self) -> dict[str, nn.Module]:
        """Learned submodules beyond the six published lobes, by attribute name."""
        return {
            name: module
            for name, module in self.named_children()
            if name not in PUBLISHED_NAMES and any(True for _ in module.parameters())
        }

    # ------------------------------------------------------------------ helpers
    def _check_input(self, mix: torch.Tensor) -> None:
        if mix.ndim != 3 or mix.shape[-1] != 2:
            raise ValueError(
                f"{type(self).__name__} expects a binaural mixture of shape [batch, time, 2] "
                f"(ear axis last: 0 = left, 1 = right); got shape {tuple(mix.shape)}"
            )
        if self.kernel_size is not None and mix.shape[1] < self.kernel_size:
            raise ValueError(
                f"{type(self).__name__}: the mixture has {mix.shape[1]} samples, fewer than "
                f"the encoder's kernel size L={self.kernel_size}"
            )

    @staticmethod
    def _mask_ear(encoding: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n_streams, n_filters = encoding.shape[1:3]  # encoding: [batch, I, N, K]; mask: [C, batch, M, K]
        if mask.shape[2] < n_streams * n_filters:
            raise ValueError(
                f"the mask network outputs {mask.shape[2]} mask channels per speaker but "
                f"{n_streams} stream(s) of N={n_filters} filters need {n_streams * n_filters}"
            )
        # Slices of the mask, as the recipe's torch.chunk: no copy of the mask (it is a permuted
        # view of MaskNet's output) and no reduction over a middle axis, forward or backward.
        masked = mask[:, :, :n_filters] * encoding[:, 0]  # [C, batch, N, K]
        for i in range(1, n_streams):
            masked = torch.addcmul(masked, mask[:, :, i * n_filters : (i + 1) * n_filters], encoding[:, i])
        return masked  # [C, batch, N, K]

    @staticmethod
    def _decode_ear(decoder: nn.Module, masked: torch.Tensor) -> torch.Tensor:
        n_spks, batch = masked.shape[:2]  # masked: [C, batch, N, K]
        wav = decoder(masked.flatten(0, 1))  # [C*batch, time']
        wav = wav.reshape(n_spks, batch, -1)  # [C, batch, time']
        return wav.permute(1, 2, 0)  # [batch, time', C]

    @staticmethod
    def _fit_length(est: torch.Tensor, n_samples: int) -> torch.Tensor:
        n_est = est.shape[1]  # est: [batch, time', 2, C]
        if n_samples > n_est:
            return F.pad(est, (0, 0, 0, 0, 0, n_samples - n_est))  # [batch, time, 2, C]
        return est[:, :n_samples]  # [batch, time, 2, C]


class IndependentTasNet(BinauralTasNet):
    """Published ``"independent"``: each ear separated on its own.

    ``left = decoderL(masknetL(encoderL(left)) * encoderL(left))``, same for the right ear
    with the ``R`` lobes. YAML sizes: ``MaskNet(N: N)`` (64 published), ``Decoder(in_channels: N)``.
    """

    MASKNET_IN_FACTOR = 1  # [batch, N, K] into each mask network

    def forward_encoder(self, mix: torch.Tensor) -> EarPair:
        enc_left = self.encoderL(mix[:, :, 0])  # [batch, N, K]
        enc_right = self.encoderR(mix[:, :, 1])  # [batch, N, K]
        return enc_left.unsqueeze(1), enc_right.unsqueeze(1)  # 2 x [batch, 1, N, K]


class ParallelTasNet(BinauralTasNet):
    """Published ``"parallel"``: the paper's multi-input multi-output (MIMO) TasNet.

    Both encoders are applied to both ears, exactly as in the recipe::

        left  = decoderL(mL[:N] * encoderL(left_in) + mL[N:] * encoderR(right_in)),
                mL = masknetL(cat[encoderL(left_in), encoderR(right_in)])
        right = decoderR(mR[:N] * encoderR(left_in) + mR[N:] * encoderL(right_in)),
                mR = masknetR(cat[encoderR(left_in), encoderL(right_in)])

    (note the recipe's order for the right ear: ``encoderR`` encodes the *left* input and
    ``encoderL`` the right one). YAML sizes: ``MaskNet(N: 2N)`` (128 published),
    ``Decoder(in_channels: N)`` (64 published).
    """

    MASKNET_IN_FACTOR = 2  # [batch, 2N, K] into each mask network

    def forward_encoder(self, mix: torch.Tensor) -> EarPair:
        left_in, right_in = mix[:, :, 0], mix[:, :, 1]  # [batch, time] each
        streams_left = torch.stack(
            (self.encoderL(left_in), self.encoderR(right_in)), dim=1
        )  # [batch, 2, N, K]
        streams_right = torch.stack(
            (self.encoderR(left_in), self.encoderL(right_in)), dim=1
        )  # [batch, 2, N, K]
        return streams_left, streams_right


class CrossChannelTasNet(BinauralTasNet):
    """Published ``"cross"``: per-ear TasNet with interaural features at the mask network.

    For each frame of the encoder, interaural features are computed from an STFT of the two
    ears whose window is centred on the encoder frame and whose hop equals the encoder's
    stride, so there is one feature frame per encoder frame (any other hop is linearly
    interpolated to the encoder's frame count):

    * ILD ``10 log10((|X_L|^2 + eps) / (|X_R|^2 + eps))`` per frequency bin, and, if
      ``use_ipd``, ``cos IPD`` and ``sin IPD`` with ``IPD = angle(X_L) - angle(X_R)``;
    * ``F = n_fft // 2 + 1`` bins times ``k = 1`` (ILD) or ``3`` (ILD, cos, sin) features;
    * projected to the encoder's ``N`` channels by the learned ``self.interaural_projection =
      nn.Conv1d(F * k, N, 1)`` (the recipe builds a fresh, untrained ``Conv1d`` inside every
      forward pass; here it is created once, trained and checkpointed);
    * the right ear uses its own view of the cues (``-ILD``, ``cos IPD``, ``-sin IPD``) through
      the same projection (for ILD only this is the recipe's ``-ILD_cat`` up to the bias);
    * ``fusion="concat"`` (the recipe): the mask network sees ``cat[encoding, projected]``
      (``2N`` channels), and its first ``N`` mask channels weight the encoding;
      ``fusion="add"``: it sees ``encoding + projected`` (``N`` channels).

    YAML sizes: ``MaskNet(N: 2N)`` (128 published) for ``concat``, ``MaskNet(N: N)`` for
    ``add``; ``Decoder(in_channels: N)``.

    Arguments
    ---------
    encoderL, encoderR, masknetL, masknetR, decoderL, decoderR : nn.Module
        The SpeechBrain lobes (see :class:`BinauralTasNet`); the encoders must be
        ``dual_path.Encoder`` (their ``conv1d`` gives N, L and the stride).
    n_fft : int, optional
        FFT size of the interaural STFT; defaults to the encoder's kernel size L.
    hop : int, optional
        STFT hop in samples; defaults to the encoder's stride (one feature frame per
        encoder frame).
    win_length : int, optional
        Hann window length (``<= n_fft``); defaults to ``n_fft``.
    use_ipd : bool
        Add ``cos IPD`` and ``sin IPD`` to the ILD (the recipe has them commented out).
    fusion : "concat" or "add"
        How the projected features join each ear's encoding.
    eps : float
        Flooring constant of the ILD and IPD.
    """

    def __init__(
        self,
        encoderL: nn.Module,
        encoderR: nn.Module,
        masknetL: nn.Module,
        masknetR: nn.Module,
        decoderL: nn.Module,
        decoderR: nn.Module,
        *,
        n_fft: int | None = None,
        hop: int | None = None,
        win_length: int | None = None,
        use_ipd: bool = False,
        fusion: Literal["concat", "add"] = "concat",
        eps: float = 1e-8,
    ) -> None:
        if fusion not in ("concat", "add"):
            raise ValueError(f"CrossChannelTasNet: fusion must be 'concat' or 'add', got {fusion!r}")
        super().__init__(
            encoderL,
            encoderR,
            masknetL,
            masknetR,
            decoderL,
            decoderR,
            masknet_in_factor=2 if fusion == "concat" else 1,
        )
        if self.n_filters is None or self.kernel_size is None or self.stride is None:
            raise TypeError(
                "CrossChannelTasNet needs speechbrain.lobes.models.dual_path.Encoder encoders "
                "(an nn.Conv1d at .conv1d) to size and align the interaural features"
            )
        self.n_fft: int = n_fft if n_fft is not None else self.kernel_size
        self.hop: int = hop if hop is not None else self.stride
        self.win_length: int = win_length if win_length is not None else self.n_fft
        if not 0 < self.win_length <= self.n_fft:
            raise ValueError(
                f"CrossChannelTasNet: need 0 < win_length <= n_fft, got win_length="
                f"{self.win_length}, n_fft={self.n_fft}"
            )
        if self.hop <= 0:
            raise ValueError(f"CrossChannelTasNet: hop must be positive, got {self.hop}")
        self.use_ipd: bool = use_ipd
        self.fusion: str = fusion
        self.eps: float = eps
        self.n_freq: int = self.n_fft // 2 + 1
        n_features = self.n_freq * (3 if use_ipd else 1)
        #: Learned projection of the interaural features to the encoder's N channels.
        self.interaural_projection = nn.Conv1d(n_features, self.n_filters, kernel_size=1)
        # A constant, not a parameter: kept out of the state_dict (checkpoints stay lobe-only).
        self.register_buffer("stft_window", torch.hann_window(self.win_length), persistent=False)

    def forward_encoder(self, mix: torch.Tensor) -> EarPair:
        enc_left = self.encoderL(mix[:, :, 0])  # [batch, N, K]
        enc_right = self.encoderR(mix[:, :, 1])  # [batch, N, K]
        return enc_left.unsqueeze(1), enc_right.unsqueeze(1)  # 2 x [batch, 1, N, K]

    def forward_masker(self, mix: torch.Tensor, encodings: EarPair) -> EarPair:
        enc_left = encodings[0][:, 0]  # [batch, N, K]
        enc_right = encodings[1][:, 0]  # [batch, N, K]
        feats_left, feats_right = self.interaural_features(mix, enc_left.shape[-1])  # [batch, F*k, K]
        proj_left = self.interaural_projection(feats_left)  # [batch, N, K]
        proj_right = self.interaural_projection(feats_right)  # [batch, N, K]
        if self.fusion == "concat":
            in_left = torch.cat((enc_left, proj_left), dim=1)  # [batch, 2N, K]
            in_right = torch.cat((enc_right, proj_right), dim=1)  # [batch, 2N, K]
        else:
            in_left = enc_left + proj_left  # [batch, N, K]
            in_right = enc_right + proj_right  # [batch, N, K]
        return self.masknetL(in_left), self.masknetR(in_right)  # 2 x [C, batch, M, K]

    def interaural_features(self, mix: torch.Tensor, n_frames: int) -> EarPair:
        """Interaural features seen from each ear, at the encoder's frame rate.

        Arguments
        ---------
        mix : torch.Tensor
            ``[batch, time, 2]`` mixture.
        n_frames : int
            ``K``, the encoder's frame count for this mixture.

        Returns
        -------
        tuple of torch.Tensor
            ``(left, right)``, each ``[batch, F * k, K]``: ``[ILD; cos IPD; sin IPD]`` (the
            IPD rows only with ``use_ipd``) for the left ear, and ``[-ILD; cos IPD; -sin IPD]``
            for the right ear.
        """
        batch, n_samples, _ = mix.shape
        assert self.kernel_size is not None and self.stride is not None
        wav = mix.transpose(1, 2).reshape(batch * 2, n_samples)  # [batch*2, time]
        # Centre each n_fft frame on an encoder frame [k*stride, k*stride + L): pad (or crop,
        # when n_fft < L) by (n_fft - L) / 2 on each side, so with hop == stride the frame
        # count is exactly K = (time - L) // stride + 1.
        extra = self.n_fft - self.kernel_size
        wav = F.pad(wav, (extra // 2, extra - extra // 2))  # [batch*2, time + n_fft - L]
        spec = torch.stft(
            wav,
            n_fft=self.n_fft,
            hop_length=self.hop,
            win_length=self.win_length,
            window=self.stft_window,
            center=False,
            return_complex=True,
        )  # [batch*2, F, K']
        spec = spec.reshape(batch, 2, self.n_freq, -1)  # [batch, 2, F, K']
        spec_left, spec_right = spec[:, 0], spec[:, 1]  # [batch, F, K'] each
        power_left = spec_left.real.square() + spec_left.imag.square()  # [batch, F, K']
        power_right = spec_right.real.square() + spec_right.imag.square()  # [batch, F, K']
        ild = 10.0 * torch.log10((power_left + self.eps) / (power_right + self.eps))  # [batch, F, K']
        if self.use_ipd:
            cross = spec_left * spec_right.conj()  # [batch, F, K'], angle = IPD
            norm = cross.abs() + self.eps  # [batch, F, K'] (abs' gradient at 0 is 0: no NaN)
            cos_ipd = cross.real / norm  # [batch, F, K']
            sin_ipd = cross.imag / norm  # [batch, F, K']
            feats_left = torch.cat((ild, cos_ipd, sin_ipd), dim=1)  # [batch, 3F, K']
            feats_right = torch.cat((-ild, cos_ipd, -sin_ipd), dim=1)  # [batch, 3F, K']
        else:
            feats_left, feats_right = ild, -ild  # [batch, F, K'] each
        if feats_left.shape[-1] != n_frames:
            # Only when hop != the encoder's stride: map feature frames onto encoder frames.
            feats_left = F.interpolate(
                feats_left, size=n_frames, mode="linear", align_corners=True
            )  # [batch, F*k, K]
            feats_right = F.interpolate(
                feats_right, size=n_frames, mode="linear", align_corners=True
            )  # [batch, F*k, K]
        return feats_left, feats_right


def published_recoverables(
    model: BinauralTasNet, *, include_extra: bool = True
) -> dict[str, nn.Module]:
    """Checkpointer recoverables of ``model`` under the published names.

    Returns ``{"encoderL": model.encoderL, ..., "decoderR": model.decoderR}`` (the very
    objects, so a SpeechBrain ``Checkpointer`` saves/loads the same files as the published
    recipe) plus, with ``include_extra``, the model's other learned submodules under their
    attribute names (``"interaural_projection"`` for :class:`CrossChannelTasNet`).

    To load a published checkpoint (six lobes only) into a cross model, either pass
    ``include_extra=False`` or give the ``Checkpointer`` ``allow_partial_load=True``.
    """
    recoverables: dict[str, nn.Module] = {name: getattr(model, name) for name in PUBLISHED_NAMES}
    if include_extra:
        for name, module in model.extra_recoverables().items():
            recoverables[name] = module
    return recoverables

