"""The published SpeechBrain recipe's separation forward, kept verbatim as a reference.

``recipes/BinauralWSJ0Mix/separation/train.py`` (``Separation.compute_forward``, separation and
decoding) picks its architecture by comparing the experiment's name, which is exactly what this
project's :mod:`binaural.models.tasnet` replaces with one class per variant. It is reproduced here, in its
structure, only as the yardstick our models are checked against (``tests/models/test_tasnet.py``: a
published checkpoint gives the same output) and timed against (``benchmarks/bench_training.py
--reference``). Nothing in the recipe runs it.

Shapes: ``mix`` is ``[batch, time, ear]``; the result ``[batch, time, ear, speaker]``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def published_forward(lobes: dict[str, nn.Module], mix: torch.Tensor, variant: str, num_spks: int):
    """The recipe's ``compute_forward`` separation + decoding, verbatim in structure."""
    EncoderL, EncoderR = lobes["encoderL"], lobes["encoderR"]
    MaskNetL, MaskNetR = lobes["masknetL"], lobes["masknetR"]
    DecoderL, DecoderR = lobes["decoderL"], lobes["decoderR"]
    if variant == "independent":
        mix_wl = EncoderL(mix[:, :, 0])
        est_maskl = MaskNetL(mix_wl)
        mix_wl = torch.stack([mix_wl] * num_spks)
        sep_hl = mix_wl * est_maskl

        mix_wr = EncoderR(mix[:, :, 1])
        est_maskr = MaskNetR(mix_wr)
        mix_wr = torch.stack([mix_wr] * num_spks)
        sep_hr = mix_wr * est_maskr
    elif variant == "parallel":
        mix_wl1 = EncoderL(mix[:, :, 0])
        mix_wr2 = EncoderR(mix[:, :, 1])
        mix_wl = torch.cat((mix_wl1, mix_wr2), dim=1)

        est_maskl = MaskNetL(mix_wl)
        mix_wl1 = torch.stack([mix_wl1] * num_spks)
        mix_wr2 = torch.stack([mix_wr2] * num_spks)
        sep_hl1 = mix_wl1 * torch.chunk(est_maskl, 2, dim=2)[0]
        sep_hr2 = mix_wr2 * torch.chunk(est_maskl, 2, dim=2)[1]

        mix_wl2 = EncoderR(mix[:, :, 0])
        mix_wr1 = EncoderL(mix[:, :, 1])
        mix_wr = torch.cat((mix_wl2, mix_wr1), dim=1)

        est_maskr = MaskNetR(mix_wr)
        mix_wl2 = torch.stack([mix_wl2] * num_spks)
        mix_wr1 = torch.stack([mix_wr1] * num_spks)
        sep_hl2 = mix_wl2 * torch.chunk(est_maskr, 2, dim=2)[0]
        sep_hr1 = mix_wr1 * torch.chunk(est_maskr, 2, dim=2)[1]
        sep_hl = sep_hl1 + sep_hr2
        sep_hr = sep_hl2 + sep_hr1
    else:
        raise AssertionError(variant)

    est_sourcel = torch.cat([DecoderL(sep_hl[i]).unsqueeze(-1) for i in range(num_spks)], dim=-1)
    est_sourcer = torch.cat([DecoderR(sep_hr[i]).unsqueeze(-1) for i in range(num_spks)], dim=-1)
    est_source = torch.cat([est_sourcel.unsqueeze(-2), est_sourcer.unsqueeze(-2)], dim=-2)
    T_origin = mix.size(1)
    T_est = est_source.size(1)
    if T_origin > T_est:
        est_source = F.pad(est_source, (0, 0, 0, 0, 0, T_origin - T_est))
    else:
        est_source = est_source[:, :T_origin, :]
    return est_source
