"""Separation metrics for binaural speech: SNR, SI-SNR, SDR and the interaural-cue errors ΔITD, ΔILD.

What is measured, for every utterance (Han, Luo & Mesgarani, ICASSP 2020; SpeechBrain's
BinauralWSJ0Mix recipe):

* ``snr`` / ``snr_i`` (dB): SpeechBrain's ``cal_snr`` per ear on zero-mean signals, averaged over
  both ears and all talkers; the improvement is over the mixture used as every talker's estimate.
* ``si_snr`` / ``si_snr_i`` (dB): the scale-invariant version (SpeechBrain's ``cal_si_snr``), per ear.
* ``sdr`` / ``sdr_i`` (dB): BSS-eval SDR (512-tap distortion filter) from ``fast_bss_eval``, per ear;
  on signals shorter than 16 × 512 samples the filter has one tap per 16 samples, so the SDR stays
  meaningful (see :func:`sdr_filter_length`).
* ``delta_ITD`` (µs): |ITD(target) − ITD(estimate)| with ITD from GCC-PHAT at integer-sample lags
  over every lag, as in the published table; ``delta_ITD_fine`` (µs) the same at 1/16-sample
  resolution, searching only the lags a head produces (|ITD| ≤ 1 ms by default, ``max_itd_us``).
* ``delta_ILD`` (dB): |ILD(target) − ILD(estimate)|, ILD = 10 log10(Σ left² / Σ right²).

All of them are taken under ONE talker permutation, the one that maximises the mean SNR (searched
over all n! permutations). The published recipe picks the ITD and ILD permutations separately and
only tries the reversed order, which is wrong for three talkers: for two talkers its ΔITD/ΔILD
can only be lower (better) than ours, for three they can be either.

Shapes: a binaural signal is ``[time, ear]`` (ear 0 = left, 1 = right); a set of talkers is
``[time, ear, speaker]``. Signs: ITD > 0 when the left ear lags (source on the right); ILD > 0
when the left ear is louder (so a source on the right has ITD > 0 and ILD < 0).

Command line::

    metrics.py --mix_dir D/mix --ref_dir D --est_dir E --out results.csv   (the command line)

scores ``E/s1, E/s2[, E/s3]`` against ``D/s1, D/s2[, D/s3]`` file by file (same names as in
``D/mix``) and writes a CSV like SpeechBrain's ``test_results.csv``: ``snt_id`` + ``METRIC_NAMES``,
one row per utterance and a last ``avg`` row.
"""
from __future__ import annotations

import csv
import itertools
import os
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from binaural.io.atomic import atomic_text
from binaural.io.audio import RECORDING_SUFFIXES, read_float
from binaural.errors import RecipeError

METRIC_NAMES = ["snr", "snr_i", "si_snr", "si_snr_i", "sdr", "sdr_i", "delta_ITD", "delta_ITD_fine", "delta_ILD"]
METRIC_UNITS = {
    "snr": "dB", "snr_i": "dB", "si_snr": "dB", "si_snr_i": "dB", "sdr": "dB", "sdr_i": "dB",
    "delta_ITD": "µs", "delta_ITD_fine": "µs", "delta_ILD": "dB",
}
CSV_COLUMNS = ["snt_id"] + METRIC_NAMES

# SpeechBrain's EPS in cal_snr, cal_si_snr and the recipe's ILD: same figures as its test_results.csv.
EPS = 1e-8
# mir_eval's bss_eval_sources default; the SDR of the published literature.
SDR_FILTER_LENGTH = 512
# At most one distortion-filter tap per this many samples. The SDR projects the estimate onto
# `taps` shifted copies of the target: of an unrelated estimate of T samples, a fraction taps / T
# of the energy lands in that space, so its SDR is about 10 log10(taps / (T - taps)), and +100 dB
# (the clamp) once taps >= T. With T / 16 taps an unrelated estimate scores about -11.8 dB at any
# length; from 16 x 512 = 8192 samples on (1.02 s at 8 kHz) the filter is the published 512 taps.
SDR_SAMPLES_PER_TAP = 16
# A perfect estimate has an infinite SDR and a silent one −∞; clamping keeps the avg row finite and
# leaves every realistic value (−30…+60 dB) untouched.
SDR_CLAMP_DB = 100.0
# Diagonal loading, only on a retry after a singular system (a silent reference ear): fast_bss_eval
# normalises signals to unit norm, so 1e-10 is relative and caps the SDR near the 100 dB clamp.
SDR_LOAD_DIAG = 1e-10
# Interpolation factor of the fine ITD: 1/16 sample = 7.8 µs at 8 kHz, 3.9 µs at 16 kHz.
ITD_FINE_INTERP = 16
# The largest |ITD| a human head produces is about 0.7-0.8 ms (CIPIC's widest heads, a source at
# 90°); the fine ITD searches lags up to 1 ms, so a badly separated estimate whose correlation
# peaks tens of ms away cannot add tens of ms to the average ΔITD.
MAX_ITD_US = 1000.0
# The permutation search is n!; beyond this it is no longer a "small" exhaustive search.
MAX_SPEAKERS = 6
# A mixture or target ear whose RMS level is below this (dB re full scale 1.0) is silent: one step
# of 16-bit audio is -90.3 dBFS, so below it the signal is at most rounding noise. Scoring it gives
# numbers without meaning (an all-zero mixture: SI-SNRi +98 dB, SDRi +118 dB), so it is refused.
# Estimates are not checked: a silent estimate is a (bad) separation, and scores as one.
SILENCE_DBFS = -90.0


class MetricsInputError(RecipeError):
    """Signals or files that cannot be scored as they are; the message says which and how to fix."""


class SilentSignalError(MetricsInputError):
    """A mixture or target too quiet to score (:data:`SILENCE_DBFS`)."""


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


def _to_numpy(signal: Any, name: str) -> np.ndarray:
    """Return ``signal`` (numpy array or torch tensor) as float64 numpy, refusing NaN/inf."""
    if hasattr(signal, "detach"):  # a torch tensor, possibly on GPU or requiring grad
        # .double() first: bf16/fp16 outputs of mixed-precision inference have no numpy dtype.
        signal = signal.detach().cpu().double().numpy()
    array = np.asarray(signal, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise MetricsInputError(
            f"{name} contains NaN or infinite samples; fix the model or file that produced it "
            "(metrics of non-finite signals are meaningless)"
        )
    return array


def _check_not_empty(signal: np.ndarray, name: str) -> None:
    """Require at least one sample (axis 0 is time)."""
    if signal.ndim == 0 or signal.shape[0] == 0:
        raise MetricsInputError(f"{name} is empty (shape {signal.shape}): there is nothing to score")


def _check_binaural(signal: np.ndarray, name: str) -> None:
    """Require ``[time, 2]`` with ``time > 0``."""
    if signal.ndim != 2 or signal.shape[1] != 2:
        raise MetricsInputError(
            f"{name} has shape {signal.shape}, expected [time, 2] (left, right); "
            "transpose [2, time] arrays and give mono signals a second ear"
        )
    _check_not_empty(signal, name)


def _check_talkers(signal: np.ndarray, name: str) -> None:
    """Require ``[time, 2, n_spk]`` with 1 ≤ n_spk ≤ MAX_SPEAKERS."""
    if signal.ndim != 3 or signal.shape[1] != 2:
        raise MetricsInputError(
            f"{name} has shape {signal.shape}, expected [time, 2, n_spk] (ear axis in the middle, "
            "as SpeechBrain's binaural recipe: [batch, time, ear, spk] minus the batch)"
        )
    if not 1 <= signal.shape[2] <= MAX_SPEAKERS:
        raise MetricsInputError(f"{name} has {signal.shape[2]} talkers; 1 to {MAX_SPEAKERS} are supported")
    _check_not_empty(signal, name)


def rms_dbfs(signal: np.ndarray) -> np.ndarray:
    """RMS level over time (axis 0) of each channel, in dB re full scale (1.0); -inf for zeros."""
    with np.errstate(divide="ignore"):
        return 10 * np.log10(np.mean(np.square(signal), axis=0))


def check_audible(signal: np.ndarray, name: str) -> None:
    """Refuse a ``[time, ear]`` ``signal`` with an ear below :data:`SILENCE_DBFS`, naming ``name``."""
    levels = rms_dbfs(signal)
    quiet = [ear for ear, level in zip(("left", "right"), levels) if not level >= SILENCE_DBFS]
    if quiet:
        raise SilentSignalError(
            f"{name}: silent ({' and '.join(quiet)} ear{'s' if len(quiet) > 1 else ''} at RMS "
            f"{float(np.min(levels)):.1f} dBFS, below {SILENCE_DBFS:g} dBFS, one step of 16-bit audio): it cannot "
            "be scored (an improvement over silence is a ratio of rounding noise); replace it with the real "
            "recording, or leave this mixture out"
        )


# --------------------------------------------------------------------------------------------
# Per-signal metrics
# --------------------------------------------------------------------------------------------


def _zero_mean(signal: np.ndarray) -> np.ndarray:
    """Subtract the mean over time (axis 0), as SpeechBrain does before SNR/SI-SNR."""
    return signal - signal.mean(axis=0, keepdims=True)


def _snr_per_channel(target: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """SpeechBrain's ``cal_snr`` per channel: ``[time, ch]`` → ``[ch]`` (dB)."""
    target, estimate = _zero_mean(target), _zero_mean(estimate)
    ratio = np.sum(target**2, axis=0) / (np.sum((estimate - target) ** 2, axis=0) + EPS)
    return 10.0 * np.log10(ratio + EPS)


def _si_snr_per_channel(target: np.ndarray, estimate: np.ndarray) -> np.ndarray:
    """SpeechBrain's ``cal_si_snr`` per channel: ``[time, ch]`` → ``[ch]`` (dB)."""
    target, estimate = _zero_mean(target), _zero_mean(estimate)
    scale = np.sum(estimate * target, axis=0) / (np.sum(target**2, axis=0) + EPS)
    projection = scale * target
    ratio = np.sum(projection**2, axis=0) / (np.sum((estimate - projection) ** 2, axis=0) + EPS)
    return 10.0 * np.log10(ratio + EPS)


def _as_channels(signal: Any, name: str) -> np.ndarray:
    """``[time]`` or ``[time, ear]`` → float64 ``[time, ch]``."""
    array = _to_numpy(signal, name)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise MetricsInputError(f"{name} has shape {array.shape}, expected [time] or [time, ear]")
    _check_not_empty(array, name)
    return array


def snr_db(target: Any, estimate: Any) -> float:
    """SNR (dB) of one talker, SpeechBrain's ``cal_snr``, averaged over ears.

    Per ear, on zero-mean signals: 10 log10(‖t‖² / (‖t − e‖² + 1e-8) + 1e-8). Not scale-invariant,
    on purpose: the binaural recipe trains on it so that the estimate keeps each ear's level (ILD).

    Args:
        target, estimate: ``[time, ear]`` (or ``[time]``), same shape.
    """
    target, estimate = _as_channels(target, "target"), _as_channels(estimate, "estimate")
    if target.shape != estimate.shape:
        raise MetricsInputError(f"target {target.shape} and estimate {estimate.shape} differ in shape")
    return float(np.mean(_snr_per_channel(target, estimate)))


def si_snr_db(target: Any, estimate: Any) -> float:
    """Scale-invariant SNR (dB) of one talker, SpeechBrain's ``cal_si_snr``, averaged over ears.

    Args:
        target, estimate: ``[time, ear]`` (or ``[time]``), same shape.
    """
    target, estimate = _as_channels(target, "target"), _as_channels(estimate, "estimate")
    if target.shape != estimate.shape:
        raise MetricsInputError(f"target {target.shape} and estimate {estimate.shape} differ in shape")
    return float(np.mean(_si_snr_per_channel(target, estimate)))


def sdr_filter_length(n_samples: int) -> int:
    """Taps of the BSS-eval distortion filter for signals of ``n_samples``: 512, fewer when short.

    ``min(512, n_samples // 16)`` (see ``SDR_SAMPLES_PER_TAP``): with as many taps as samples any
    estimate, white noise included, would score the +100 dB clamp, and the figure is biased upward
    while the filter is a sizable fraction of the signal.

    Raises:
        MetricsInputError: fewer than 16 samples, too short for one tap.
    """
    taps = min(SDR_FILTER_LENGTH, n_samples // SDR_SAMPLES_PER_TAP)
    if taps < 1:
        raise MetricsInputError(
            f"signals of {n_samples} samples are too short for BSS-eval SDR (at least {SDR_SAMPLES_PER_TAP} "
            "samples, one distortion-filter tap per 16); score longer segments"
        )
    return taps


def _sdr_matrix(targets: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """BSS-eval SDR (dB) of every estimate against every target, per ear.

    Args:
        targets: ``[time, ear, n_ref]``; estimates: ``[time, ear, n_est]`` (checked by the caller).

    Returns:
        ``[ear, n_ref, n_est]``.
    """
    import fast_bss_eval  # here: it imports torch (seconds), which `--help` does not need

    taps = sdr_filter_length(targets.shape[0])

    # fast_bss_eval wants [..., source, time]; both ears go in one batched call.
    reference = np.ascontiguousarray(targets.transpose(1, 2, 0))  # [ear, ref, time]
    estimate = np.ascontiguousarray(estimates.transpose(1, 2, 0))  # [ear, est, time]

    def _negative_sdr(load_diag: float | None) -> np.ndarray:
        # pairwise=True: the pairwise=False path of fast_bss_eval 0.1.4 crashes under numpy 2
        # (np.linalg.solve no longer treats a [..., M] right-hand side as a stack of vectors).
        return fast_bss_eval.sdr_loss(
            estimate, reference, filter_length=taps, clamp_db=SDR_CLAMP_DB,
            load_diag=load_diag, pairwise=True,
        )

    with np.errstate(divide="ignore", invalid="ignore"):  # ±inf are clamped by fast_bss_eval
        try:
            matrix = -_negative_sdr(None)
        except np.linalg.LinAlgError:
            matrix = -_negative_sdr(SDR_LOAD_DIAG)
    # NaN only from a system numerically singular yet not caught above: score it as the floor.
    return np.nan_to_num(matrix, nan=-SDR_CLAMP_DB)


def sdr_db(targets: Any, estimates: Any) -> np.ndarray:
    """BSS-eval SDR (dB) of each talker, averaged over ears: ``[time, ear, spk]`` ×2 → ``[spk]``.

    ``estimates[..., j]`` is scored against ``targets[..., j]`` (no permutation search here; put
    the estimates in target order first, see ``best_permutation``). Per ear, as
    ``mir_eval.separation.bss_eval_sources`` with its 512-tap distortion filter (fewer taps for
    signals under 8192 samples, :func:`sdr_filter_length`): the SDR of an estimate only depends
    on its own target (the projection onto the target's filtered versions).

    Why ``fast_bss_eval``: it solves the same projection as mir_eval (matching it to a fraction of
    a dB, see its paper, Scheibler ICASSP 2022) but through FFT correlations and one Toeplitz solve,
    tens of times faster, and it is maintained. Two robustness choices:

    * ``clamp_db=100``: a perfect estimate gives +100 dB instead of +∞, a silent one −100 dB;
    * a silent (all-zero) reference ear makes the system singular: we then retry with a tiny
      diagonal loading (1e-10, relative) instead of crashing; that ear's SDR is −100 dB.
    """
    targets, estimates = _to_numpy(targets, "targets"), _to_numpy(estimates, "estimates")
    _check_talkers(targets, "targets")
    _check_talkers(estimates, "estimates")
    if targets.shape != estimates.shape:
        raise MetricsInputError(f"targets {targets.shape} and estimates {estimates.shape} differ in shape")
    per_ear = np.diagonal(_sdr_matrix(targets, estimates), axis1=-2, axis2=-1)  # [ear, spk]
    return per_ear.mean(axis=0)


def _gcc_phat_defined(left: np.ndarray, right: np.ndarray) -> bool:
    """Whether pyroomacoustics' GCC-PHAT is defined: no zero-magnitude bin in either spectrum.

    Its PHAT weighting divides by |X| without an epsilon, so a silent ear (or any exact spectral
    zero, e.g. a constant) turns the whole correlation into NaN and argmax returns a garbage lag.
    Same zero-padding and float32 cast as ``tdoa`` so the check is exact.
    """
    n_fft = left.shape[0] + right.shape[0] - 1
    n_fft += n_fft % 2
    for ear in (left, right):
        spectrum = np.fft.rfft(ear.astype(np.float32), n=n_fft)
        if not np.all(np.abs(spectrum) > 0):
            return False
    return True


def _gcc_phat_delay(left: np.ndarray, right: np.ndarray, fs: int, interp: int, max_delay_s: float | None) -> float:
    """pyroomacoustics' ``tdoa(left, right, interp, fs, phat=True)`` (s), its peak searched only
    over ``|delay| <= max_delay_s`` (``None``: every lag, exactly ``tdoa``).

    ``tdoa`` has no max-lag argument; this is its computation (float32 spectra, PHAT weighting,
    the cross-power spectrum zero-padded ``interp`` times, the largest ``|correlation|``) with the
    peak search restricted, so that with ``max_delay_s=None`` it returns the same value.
    """
    n_fft = left.shape[0] + right.shape[0] - 1
    n_fft += n_fft % 2
    spectrum_left = np.fft.rfft(np.array(left, dtype=np.float32), n=n_fft)
    spectrum_right = np.fft.rfft(np.array(right, dtype=np.float32), n=n_fft)
    spectrum_left /= np.abs(spectrum_left)
    spectrum_right /= np.abs(spectrum_right)
    correlation = np.fft.irfft(spectrum_left * np.conj(spectrum_right), n=interp * n_fft)
    half = n_fft // 2 + 1
    correlation = np.concatenate((correlation[-half:], correlation[:half]))  # lags -half .. half-1 (1/interp samples)
    lags = np.arange(-half, half)
    if max_delay_s is not None:
        inside = np.abs(lags) <= max_delay_s * fs * interp + 1e-9
        correlation, lags = correlation[inside], lags[inside]
    return float(lags[np.argmax(np.abs(correlation))]) / (fs * interp)


def itd_us(binaural: Any, fs: int, fine: bool = False, max_itd_us: float | None = MAX_ITD_US) -> float:
    """Interaural time difference (µs) of a whole utterance by GCC-PHAT.

    Sign: positive when the LEFT ear lags, i.e. the right ear leads (source on the right).
    pyroomacoustics' ``tdoa(x1, x2)`` returns a positive delay when x1 lags x2 (its docstring says
    the opposite; checked on pyroomacoustics 0.10.1), and we call it as the recipe does:
    ``tdoa(left, right)``.

    * ``fine=False`` (``delta_ITD``, the published measure): ``tdoa`` itself, integer-sample peak
      (``interp=1``, 125 µs steps at 8 kHz) over every lag the correlation has; ``max_itd_us`` is
      ignored. For targets rendered with HRIRs the peak is within ±1 ms anyway; a badly separated
      estimate can peak far outside it and then counts as a large ΔITD, as in the recipe.
    * ``fine=True`` (``delta_ITD_fine``): the interpolated GCC-PHAT of ``tdoa`` (``interp=16``:
      the cross-power spectrum zero-padded 16×, band-limited interpolation of the correlation),
      1/16-sample steps, its peak searched only over ``|ITD| <= max_itd_us`` (default 1 ms, the
      lags a head produces; ``None``: every lag ``tdoa`` searches, ±len/16 samples).

    Degenerate input: if GCC-PHAT is undefined (a silent ear, see ``_gcc_phat_defined``) the ITD
    is 0 µs (no measurable lag), so ΔITD stays finite and charges |ITD(target)|.

    Args:
        binaural: ``[time, ear]``.
        fs: sample rate (Hz).
        fine: sub-sample resolution and bounded lags (see above).
        max_itd_us: largest |ITD| searched by the fine ITD (µs), or None.
    """
    from pyroomacoustics.experimental.localization import tdoa  # here: slow import, not for --help

    signal = _to_numpy(binaural, "binaural signal")
    _check_binaural(signal, "binaural signal")
    if max_itd_us is not None and not max_itd_us > 0:
        raise MetricsInputError(f"max_itd_us must be a positive number of µs (or None), got {max_itd_us}")
    left, right = signal[:, 0], signal[:, 1]
    if not _gcc_phat_defined(left, right):
        return 0.0
    if not fine:
        return float(tdoa(left, right, interp=1, fs=fs, phat=True)) * 1e6
    max_delay_s = None if max_itd_us is None else max_itd_us * 1e-6
    return _gcc_phat_delay(left, right, fs, ITD_FINE_INTERP, max_delay_s) * 1e6


def ild_db(binaural: Any) -> float:
    """Interaural level difference (dB): 10 log10(Σ left² / Σ right²); positive = louder left.

    Both energies get the recipe's epsilon, 10 log10((Σl² + 1e-8) / (Σr² + 1e-8)), so that a silent
    ear gives a large finite value instead of ±∞, the same magnitude whichever ear is silent
    (swapping the ears negates the ILD exactly). The recipe's 10 log10(Σl² / (Σr² + 1e-8) + 1e-8)
    gave -80 dB for a silent left ear but +98 to +110 dB for a silent right one; the two agree
    to within 1e-6 dB whenever both ears carry sound (energies far above 1e-8).

    Args:
        binaural: ``[time, ear]`` (not mean-removed, as in the recipe).
    """
    signal = _to_numpy(binaural, "binaural signal")
    _check_binaural(signal, "binaural signal")
    energy = np.sum(signal**2, axis=0)
    return float(10.0 * np.log10((energy[0] + EPS) / (energy[1] + EPS)))


# --------------------------------------------------------------------------------------------
# One utterance
# --------------------------------------------------------------------------------------------


def _pairwise_snr(targets: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """``[time, ear, spk]`` ×2 → ``[target, estimate]`` matrix of SNR (dB, mean over ears)."""
    n_spk = targets.shape[2]
    matrix = np.empty((n_spk, n_spk))
    for i in range(n_spk):
        for j in range(n_spk):
            matrix[i, j] = np.mean(_snr_per_channel(targets[:, :, i], estimates[:, :, j]))
    return matrix


def _best_from_matrix(snr_matrix: np.ndarray) -> tuple[int, ...]:
    """The permutation maximising the mean of ``snr_matrix[i, perm[i]]`` (exhaustive, n!)."""
    n_spk = snr_matrix.shape[0]
    rows = np.arange(n_spk)
    # max keeps the first of equal scores: the identity wins ties, so output is deterministic.
    return max(itertools.permutations(range(n_spk)), key=lambda perm: snr_matrix[rows, list(perm)].sum())


def best_permutation(targets: Any, estimates: Any) -> tuple[int, ...]:
    """The talker permutation that maximises the mean SNR over talkers.

    Returns ``perm`` such that ``estimates[..., perm]`` lines up with ``targets``: estimate
    ``perm[i]`` is the estimate of target ``i``.

    Args:
        targets, estimates: ``[time, ear, spk]``, same shape.
    """
    targets, estimates = _to_numpy(targets, "targets"), _to_numpy(estimates, "estimates")
    _check_talkers(targets, "targets")
    _check_talkers(estimates, "estimates")
    if targets.shape != estimates.shape:
        raise MetricsInputError(f"targets {targets.shape} and estimates {estimates.shape} differ in shape")
    return _best_from_matrix(_pairwise_snr(targets, estimates))


def evaluate_utterance(
    mixture: Any, targets: Any, estimates: Any, sample_rate: int, max_itd_us: float | None = MAX_ITD_US
) -> dict[str, float]:
    """All ``METRIC_NAMES`` for one utterance, under the single best-SNR permutation.

    Args:
        mixture: ``[time, ear]``.
        targets: ``[time, ear, spk]`` (the reverberant/spatialised sources, as in the dataset).
        estimates: ``[time, ear, spk]`` in any talker order; numpy arrays or torch tensors.
        sample_rate: Hz, for the ITDs.
        max_itd_us: the largest |ITD| the fine ITD searches (µs; ``delta_ITD`` is unbounded).

    Returns:
        ``{name: value}`` in dB (snr, si_snr, sdr and their improvements, delta_ILD) and µs
        (delta_ITD, delta_ITD_fine); ΔITD/ΔILD are means over talkers of absolute differences.
    """
    mixture = _to_numpy(mixture, "mixture")
    targets = _to_numpy(targets, "targets")
    estimates = _to_numpy(estimates, "estimates")
    _check_binaural(mixture, "mixture")
    _check_talkers(targets, "targets")
    _check_talkers(estimates, "estimates")
    if targets.shape != estimates.shape or mixture.shape[0] != targets.shape[0]:
        raise MetricsInputError(
            f"shapes disagree: mixture {mixture.shape}, targets {targets.shape}, estimates "
            f"{estimates.shape}; all need the same length and the same number of talkers"
        )
    if sample_rate <= 0:
        raise MetricsInputError(f"sample_rate must be a positive number of Hz, got {sample_rate}")
    check_audible(mixture, "mixture")
    for k in range(targets.shape[2]):
        check_audible(targets[:, :, k], f"target {k + 1}")
    n_spk = targets.shape[2]
    snr_matrix = _pairwise_snr(targets, estimates)
    perm = _best_from_matrix(snr_matrix)
    estimates = estimates[:, :, list(perm)]

    snr = float(np.mean(snr_matrix[np.arange(n_spk), list(perm)]))
    snr_mix = float(np.mean([snr_db(targets[:, :, i], mixture) for i in range(n_spk)]))
    si_snr = float(np.mean([si_snr_db(targets[:, :, i], estimates[:, :, i]) for i in range(n_spk)]))
    si_snr_mix = float(np.mean([si_snr_db(targets[:, :, i], mixture) for i in range(n_spk)]))
    sdr = float(np.mean(sdr_db(targets, estimates)))
    # The mixture as every talker's estimate: one estimate column scored against each target.
    sdr_mix = float(np.mean(_sdr_matrix(targets, mixture[:, :, None])))

    def _mean_abs_difference(cue) -> float:
        return float(np.mean([abs(cue(targets[:, :, i]) - cue(estimates[:, :, i])) for i in range(n_spk)]))

    return {
        "snr": snr,
        "snr_i": snr - snr_mix,
        "si_snr": si_snr,
        "si_snr_i": si_snr - si_snr_mix,
        "sdr": sdr,
        "sdr_i": sdr - sdr_mix,
        "delta_ITD": _mean_abs_difference(lambda s: itd_us(s, sample_rate, fine=False)),
        "delta_ITD_fine": _mean_abs_difference(lambda s: itd_us(s, sample_rate, fine=True, max_itd_us=max_itd_us)),
        "delta_ILD": _mean_abs_difference(ild_db),
    }


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------


def write_results_csv(rows: Sequence[dict], path: str | os.PathLike) -> dict:
    """Write ``rows`` plus an ``avg`` row (mean of each metric column) to ``path``, atomically.

    Columns: ``snt_id`` + ``METRIC_NAMES``, as SpeechBrain's ``test_results.csv``. The file is
    written to a temporary file in the same folder and moved into place with ``os.replace``, so a
    reader never sees half a table.

    Returns:
        The ``avg`` row, ``{"snt_id": "avg", name: mean, ...}``.
    """
    if not rows:
        raise MetricsInputError(f"no rows to write to {path}: nothing was scored")
    for index, row in enumerate(rows):
        missing = [column for column in CSV_COLUMNS if column not in row]
        extra = [key for key in row if key not in CSV_COLUMNS]
        if missing or extra:
            raise MetricsInputError(
                f"row {index} ({row.get('snt_id', '?')}) has missing columns {missing} / unexpected "
                f"{extra}; each row needs exactly {CSV_COLUMNS}"
            )
    average: dict[str, Any] = {"snt_id": "avg"}
    for name in METRIC_NAMES:
        average[name] = float(np.mean([float(row[name]) for row in rows]))

    with atomic_text(path) as stream:
        writer = csv.DictWriter(stream, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
        writer.writerow(average)
    return average


# --------------------------------------------------------------------------------------------
# Folders
# --------------------------------------------------------------------------------------------


def _read_binaural(path: Path, sample_rate: int | None, fix_missing: str) -> tuple[np.ndarray, int]:
    """Read ``path`` as float64 ``[time, 2]``, checking presence, length (a truncated file is refused),
    channels, rate and finiteness.

    Args:
        sample_rate: expected Hz, or None to accept any.
        fix_missing: what to tell the user when the file is absent.
    """
    if path.is_dir():
        raise MetricsInputError(f"{path}: a folder, not an audio file; move it out of {path.parent}")
    if not path.is_file():
        raise MetricsInputError(f"{path}: file not found; {fix_missing}")
    data, rate = read_float(path)  # binaural.io.audio.AudioFileError: unreadable, truncated, empty, NaN/inf
    if data.shape[1] != 2:
        kind = "mono" if data.shape[1] == 1 else f"{data.shape[1]} channels"
        raise MetricsInputError(
            f"{path}: {kind}, expected 2 channels (left, right) [time, 2]; binaural metrics need "
            "both ears: write the file as a stereo wav, left in channel 0"
        )
    if sample_rate is not None and rate != sample_rate:
        raise MetricsInputError(
            f"{path}: sample rate {rate} Hz, expected {sample_rate} Hz (from --sample_rate or the "
            "first mixture); score mixtures, targets and estimates at one rate (e.g. all wav8k)"
        )
    return data, rate


def _speaker_dirs(root: Path, role: str) -> list[Path]:
    """``root/s1, root/s2, ...`` that exist, consecutive from s1."""
    dirs = []
    while (root / f"s{len(dirs) + 1}").is_dir():
        dirs.append(root / f"s{len(dirs) + 1}")
    if not dirs:
        raise MetricsInputError(
            f"{root}: no s1/ folder; --{role} must be the folder that holds s1/, s2/[, s3/] "
            "(one wav per mixture in each, same names as in --mix_dir)"
        )
    return dirs


def score_folders(
    mix_dir: str | os.PathLike,
    ref_dir: str | os.PathLike,
    est_dir: str | os.PathLike,
    out_csv: str | os.PathLike,
    sample_rate: int | None = None,
    max_itd_us: float | None = MAX_ITD_US,
) -> dict:
    """Score every mixture in ``mix_dir`` and write ``out_csv``; returns the ``avg`` row.

    Layout: ``ref_dir/sN/<name>`` are the targets and ``est_dir/sN/<name>`` the estimates of each
    ``mix_dir/<name>`` (N = 1..n_spk, n_spk = number of sN folders in ``ref_dir``), all stereo.

    Lengths must match exactly: we neither trim nor pad, because either silently changes SNR/SDR,
    and SpeechBrain's separators already return estimates at the mixture's length. Score the raw
    estimates: the wavs of SpeechBrain's ``save_audio`` are peak-normalised, which SNR and ΔILD
    (not scale-invariant) would count as errors.

    Args:
        sample_rate: expected Hz; None takes the first mixture's rate. Every file must have it.
        max_itd_us: the largest |ITD| the fine ITD searches (µs), see :func:`itd_us`.
    """
    from tqdm import tqdm

    mix_dir, ref_dir, est_dir = Path(mix_dir), Path(ref_dir), Path(est_dir)
    if not mix_dir.is_dir():
        raise MetricsInputError(f"{mix_dir}: not a folder; --mix_dir must hold the mixture wavs")
    mixtures = sorted(p for p in mix_dir.iterdir() if p.suffix.lower() in RECORDING_SUFFIXES)
    if not mixtures:
        raise MetricsInputError(f"{mix_dir}: no .wav/.flac files; point --mix_dir at D/mix")
    ref_dirs = _speaker_dirs(ref_dir, "ref_dir")
    n_spk = len(ref_dirs)
    est_dirs = [est_dir / folder.name for folder in ref_dirs]
    for folder in est_dirs:
        if not folder.is_dir():
            raise MetricsInputError(
                f"{folder}: missing estimate folder; {ref_dir} has {n_spk} talkers, so --est_dir "
                f"needs s1/ to s{n_spk}/ with one wav per mixture"
            )
    if (est_dir / f"s{n_spk + 1}").is_dir():
        raise MetricsInputError(
            f"{est_dir / f's{n_spk + 1}'} exists but {ref_dir} has only {n_spk} talkers; "
            "score against the matching reference set (2speakers vs 3speakers)"
        )

    rows = []
    for mix_path in tqdm(mixtures, desc="scoring", unit="utt", file=sys.stderr):
        mixture, rate = _read_binaural(mix_path, sample_rate, "it vanished while scoring; rerun")
        check_audible(mixture, str(mix_path))
        sample_rate = rate  # the first mixture fixes the rate when none was given
        targets, estimates = [], []
        for ref_folder, est_folder in zip(ref_dirs, est_dirs):
            target, _ = _read_binaural(
                ref_folder / mix_path.name, sample_rate,
                f"every mixture needs its target in {ref_folder} under the same name",
            )
            estimate, _ = _read_binaural(
                est_folder / mix_path.name, sample_rate,
                f"missing estimate for mixture {mix_path}: write the separated talker to "
                f"{est_folder} under the mixture's file name",
            )
            for path, signal in ((ref_folder / mix_path.name, target), (est_folder / mix_path.name, estimate)):
                if signal.shape[0] != mixture.shape[0]:
                    raise MetricsInputError(
                        f"{path}: {signal.shape[0]} samples but the mixture {mix_path} has "
                        f"{mixture.shape[0]}; write estimates at the mixture's length (we do not trim "
                        "or pad: it would change SNR/SDR silently)"
                    )
            check_audible(target, str(ref_folder / mix_path.name))
            targets.append(target)
            estimates.append(estimate)
        try:
            metrics = evaluate_utterance(
                mixture, np.stack(targets, axis=2), np.stack(estimates, axis=2), sample_rate, max_itd_us
            )
        except MetricsInputError as error:  # name the files: "mixture is empty" alone says not which
            raise MetricsInputError(f"{mix_path} (and its targets and estimates): {error}") from error
        rows.append({"snt_id": mix_path.stem, **metrics})
    return write_results_csv(rows, out_csv)
