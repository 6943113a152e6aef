"""One optimisation step outside a Brain, for timing and checking a model without the recipe's data
loop (``benchmarks/bench_training.py``, ``benchmarks/gpu_check.py``): the forward under autocast,
the loss in fp32 (:func:`binaural.training.losses.separation_loss`), a scaled backward, gradient
clipping and the optimiser's step, as ``train.Separation.fit_batch`` does them for a batch.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from binaural.training.losses import separation_loss


def training_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    mix: torch.Tensor,
    targets: torch.Tensor,
    dtype: torch.dtype | None,
    clip_norm: float,
    scaler: torch.amp.GradScaler,
) -> float:
    """One step on ``mix`` ``[batch, time, ear]`` and ``targets`` ``[batch, time, ear, speaker]``.

    ``dtype`` is the autocast precision (None: fp32). Returns the batch's loss (negative SNR, dB).
    """
    with torch.autocast(device_type=mix.device.type, dtype=dtype, enabled=dtype is not None):
        estimates = model(mix)  # [batch, time, ear, speaker]
    loss = separation_loss(loss_fn, estimates, targets).mean()
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())
