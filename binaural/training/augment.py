"""Training augmentations: small pure functions on ``[batch, time, ear, speaker]`` tensors.

Each acts on the talkers before they are summed into the mixture, with one draw for both ears of a
talker, so that the interaural time and level differences of every talker stay as recorded.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from binaural.errors import RecipeError


def speed_perturb_sources(
    sources: torch.Tensor, perturb: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Speed-perturb each talker, with ONE factor for both ears of that talker.

    ``perturb`` maps ``[batch, time, ear] -> [batch, time', ear]`` with a single (random) speed per
    call, as ``speechbrain.augment.time_domain.SpeedPerturb`` does; it is called once per talker
    on both ears together, so the resampling of the two ears is the same linear operation and
    the interaural level and time differences survive (the ITD scales with the speed like every
    other duration). Talkers get independent factors, as in the published recipe.

    Arguments
    ---------
    sources : torch.Tensor
        ``[batch, time, ear, speaker]``.
    perturb : callable
        ``[batch, time, ear] -> [batch, time', ear]``.

    Returns
    -------
    torch.Tensor
        ``[batch, time'', ear, speaker]``, cut to the shortest perturbed talker.
    """
    perturbed = [perturb(sources[..., k]) for k in range(sources.shape[-1])]  # S x [batch, time_k, ear]
    length = min(p.shape[1] for p in perturbed)
    return torch.stack([p[:, :length] for p in perturbed], dim=-1)  # [batch, time'', ear, speaker]


def draw_shifts(
    n_spks: int,
    min_shift: int,
    max_shift: int,
    independent: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random circular shifts in samples, uniform in ``[min_shift, max_shift)``.

    Returns ``[speaker]`` (int64): one value repeated for every talker when ``independent`` is
    False (the whole scene moves), a value per talker when True (the published recipe: talkers
    move relative to each other). Both ears of a talker always share its shift.
    """
    if max_shift <= min_shift:
        raise RecipeError(f"the random shift needs min_shift < max_shift, got {min_shift} and {max_shift}")
    n_draws = n_spks if independent else 1
    shifts = torch.randint(min_shift, max_shift, (n_draws,), generator=generator)  # [n_draws]
    return shifts.expand(n_spks).clone()  # [speaker]


def shift_sources(sources: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    """Roll talker ``k`` by ``shifts[k]`` samples along time, both ears alike (ITD kept).

    Arguments
    ---------
    sources : torch.Tensor
        ``[batch, time, ear, speaker]``.
    shifts : torch.Tensor
        ``[speaker]`` integer shifts in samples (positive: later).

    Returns
    -------
    torch.Tensor
        ``[batch, time, ear, speaker]``.
    """
    if shifts.shape != (sources.shape[-1],):
        raise ValueError(f"need one shift per talker ({sources.shape[-1]}), got shape {tuple(shifts.shape)}")
    rolled = [torch.roll(sources[..., k], shifts=int(shifts[k]), dims=1) for k in range(sources.shape[-1])]
    return torch.stack(rolled, dim=-1)  # [batch, time, ear, speaker]


def sum_sources(sources: torch.Tensor) -> torch.Tensor:
    """The mixture of perturbed talkers: ``[batch, time, ear, speaker] -> [batch, time, ear]``.

    After speed perturbation or shifting, the stored mixture no longer matches the targets; the
    sum of the perturbed binaural talkers is the mixture they make.
    """
    return sources.sum(dim=-1)


def with_noise(targets: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
    """The signals an augmentation must move together: the talkers, and the noise as one more.

    ``[batch, time, ear, speaker]`` and ``[batch, time, ear]`` -> ``[batch, time, ear, speaker + 1]``
    (the noise last); ``targets`` itself without noise. The noisy mixture is talkers + noise: when
    the talkers are speed-perturbed or shifted, the mixture is rebuilt from them, and the noise
    goes through the same steps (its own speed factor, the scene's shift) so it is added back,
    cut to the same length, instead of being silently dropped.
    """
    if noise is None:
        return targets
    if noise.shape != targets.shape[:3]:
        raise RecipeError(
            f"noise_sig has shape {tuple(noise.shape)} but the talkers {tuple(targets.shape[:3])} (batch, time, ear): "
            "the noise file of a noisy mixture must be as long as its sources; regenerate the data"
        )
    return torch.cat([targets, noise.unsqueeze(-1)], dim=-1)


def random_segment(
    mix: torch.Tensor, sources: torch.Tensor, length: int, start: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same ``length``-sample window of the mixture and of every talker and ear.

    Arguments
    ---------
    mix : torch.Tensor
        ``[batch, time, ear]``.
    sources : torch.Tensor
        ``[batch, time, ear, speaker]``.
    length : int
        Window length in samples (signals shorter than that are returned whole).
    start : int, optional
        First sample; drawn uniformly when not given.

    Returns
    -------
    tuple of torch.Tensor
        ``[batch, time', ear]`` and ``[batch, time', ear, speaker]``, ``time' = min(time, length)``.
    """
    if length <= 0:
        raise RecipeError(f"training_signal_len must be a positive number of samples, got {length}")
    if start is None:
        start = int(torch.randint(0, 1 + max(0, mix.shape[1] - length), (1,)))
    return mix[:, start : start + length], sources[:, start : start + length]
