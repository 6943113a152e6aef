"""The training loss: per-example negative SNR (dB) under the best talker permutation, and which
examples of a batch it learns from."""
from __future__ import annotations

from collections.abc import Callable

import torch


def select_training_loss(
    losses: torch.Tensor, threshold: float | None, upper_limit: float
) -> tuple[torch.Tensor | None, str]:
    """The loss to back-propagate from per-example losses, or ``None`` to learn nothing.

    Examples already better than ``threshold`` (negative SNR in dB, e.g. -30 = 30 dB SNR) are
    dropped, so training time goes to the hard ones (the published ``threshold_byloss``).

    Arguments
    ---------
    losses : torch.Tensor
        ``[batch]`` negative SNR in dB.
    threshold : float or None
        Keep only ``losses > threshold``; ``None`` keeps all.
    upper_limit : float
        Losses at or above it (and non-finite ones) reject the batch (``loss_upper_lim``).

    Returns
    -------
    (loss, verdict)
        ``(mean of the kept losses, "ok")``, ``(None, "nonfinite")`` when the batch's loss is
        NaN/inf or not below ``upper_limit``, ``(None, "below_threshold")`` when every example
        is already better than the threshold.
    """
    if not bool(torch.isfinite(losses).all()):
        return None, "nonfinite"
    kept = losses if threshold is None else losses[losses > threshold]
    if kept.numel() == 0:
        return None, "below_threshold"
    loss = kept.mean()
    if not loss < upper_limit:
        return None, "nonfinite"
    return loss, "ok"


def separation_loss(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    estimates: torch.Tensor,
    targets: torch.Tensor,
) -> torch.Tensor:
    """Per-example permutation-invariant loss, computed in fp32 whatever the autocast state.

    ``loss_fn`` is the YAML's ``loss`` (``speechbrain.nnet.losses.get_snr_with_pitwrapper``:
    negative SNR of each ear, averaged over ears and talkers, under the best talker permutation;
    not SI-SNR, whose scale invariance lets each ear's gain drift and breaks the ILD). The SNR is
    a ratio of sums over the whole utterance and a log: in bf16 it would lose its decimals, so the
    loss always runs with autocast off.

    Arguments
    ---------
    estimates, targets : torch.Tensor
        ``[batch, time, ear, speaker]``.

    Returns
    -------
    torch.Tensor
        ``[batch]`` negative SNR in dB.
    """
    with torch.autocast(device_type=estimates.device.type, enabled=False):
        return loss_fn(targets.float(), estimates.float())
