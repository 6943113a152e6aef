"""Known-answer tests of metrics.py: each test states a property of the metric, not its code."""
from __future__ import annotations

import csv
import itertools
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import metrics

from binaural.evaluation.metrics import ITD_FINE_INTERP, MAX_ITD_US, sdr_filter_length
from binaural.errors import RecipeError
from binaural.evaluation.metrics import METRIC_NAMES, MetricsInputError, SilentSignalError, best_permutation, evaluate_utterance, ild_db, itd_us, score_folders, sdr_db, si_snr_db, snr_db, write_results_csv

FS = 8000
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _noise(seed: int, length: int) -> np.ndarray:
    """White Gaussian noise ``[time]``, unit variance."""
    return np.random.default_rng(seed).standard_normal(length)


def _delay(signal: np.ndarray, samples: float) -> np.ndarray:
    """Delay ``[time]`` by a (fractional) number of samples in the frequency domain (circular)."""
    spectrum = np.fft.rfft(signal)
    frequencies = np.fft.rfftfreq(signal.shape[0])  # cycles per sample
    return np.fft.irfft(spectrum * np.exp(-2j * np.pi * frequencies * samples), n=signal.shape[0])


def _shift(signal: np.ndarray, samples: int) -> np.ndarray:
    """Delay ``[time]`` by an integer number of samples, zero-filled (negative: advance)."""
    out = np.zeros_like(signal)
    if samples >= 0:
        out[samples:] = signal[: signal.shape[0] - samples]
    else:
        out[:samples] = signal[-samples:]
    return out


def _binaural(source: np.ndarray, right_delay: int = 0, left_gain_db: float = 0.0) -> np.ndarray:
    """A crude binaural rendering ``[time, 2]``: the right ear delayed, the left ear scaled."""
    return np.stack([source * 10 ** (left_gain_db / 20), _shift(source, right_delay)], axis=1)


def _talkers(n_spk: int, length: int = 4000, seed: int = 0) -> np.ndarray:
    """``[time, 2, n_spk]`` talkers with distinct interaural cues."""
    cues = [(2, 3.0), (-3, -4.0), (0, 8.0)]
    return np.stack(
        [_binaural(_noise(seed + i, length), *cues[i]) for i in range(n_spk)], axis=2
    )


# ------------------------------------------------------------------ interaural cues


@pytest.mark.parametrize("k", [1, 3, -2, 7])
def test_integer_delay_in_one_ear_gives_k_over_fs(k: int) -> None:
    source = _noise(1, 4000)
    target = _binaural(source)[:, :, None]  # ITD 0
    estimate = _binaural(source, right_delay=k)[:, :, None]
    result = evaluate_utterance(target[:, :, 0], target, estimate, FS)
    expected_us = abs(k) / FS * 1e6
    assert result["delta_ITD"] == pytest.approx(expected_us, abs=1e-6)
    assert result["delta_ITD_fine"] == pytest.approx(expected_us, abs=1e-6)


def test_itd_sign_positive_when_left_ear_lags() -> None:
    source = _noise(2, 4000)
    left_lags = np.stack([_shift(source, 4), source], axis=1)
    assert itd_us(left_lags, FS) == pytest.approx(4 / FS * 1e6)
    assert itd_us(left_lags[:, ::-1], FS) == pytest.approx(-4 / FS * 1e6)


@pytest.mark.parametrize("delay", [2.5, 2.3, -1.7])
def test_fractional_delay_found_within_quarter_sample_by_fine_itd(delay: float) -> None:
    source = _noise(3, 8400)
    binaural = np.stack([source, _delay(source, delay)], axis=1)[200:-200]  # drop the circular wrap
    fine_samples = -itd_us(binaural, FS, fine=True) * 1e-6 * FS  # right lags: negative ITD
    coarse_samples = -itd_us(binaural, FS, fine=False) * 1e-6 * FS
    assert abs(fine_samples - delay) <= 0.25
    assert coarse_samples == pytest.approx(round(coarse_samples))  # integer-sample lag
    assert abs(coarse_samples - delay) <= 1.0


def test_itd_of_silent_ear_is_zero_not_a_crash() -> None:
    binaural = np.zeros((1000, 2))
    binaural[:, 0] = _noise(4, 1000)
    assert itd_us(binaural, FS) == 0.0
    assert itd_us(np.zeros((1000, 2)), FS, fine=True) == 0.0


@pytest.mark.parametrize("azimuth", ["45", "neg45"])
def test_itd_of_real_speech_through_cipic_hrirs(azimuth: str, cipic_dir: Path, speech_dir: Path) -> None:
    """Real speech rendered at ±45° (CIPIC subject 3, 0° elevation) and resampled to 8 kHz."""
    from scipy.signal import fftconvolve, resample_poly

    speech, speech_rate = sf.read(speech_dir / "spk1_snt1.wav")
    hrirs = []
    for ear in ("left", "right"):
        data, hrir_rate = sf.read(cipic_dir / "subject03" / f"{azimuth}az{ear}.wav")
        taps_by_elevation = data if data.shape[1] == 200 else data.T  # [elevation, 200 taps]
        hrirs.append(taps_by_elevation[8])  # elevation index 8 = 0°
    speech = resample_poly(speech, hrir_rate, speech_rate)
    binaural = np.stack([fftconvolve(speech, hrir)[: speech.shape[0]] for hrir in hrirs], axis=1)
    binaural = resample_poly(binaural, FS, hrir_rate, axis=0)
    # Reference: the lag of the HRIR pair's own cross-correlation at 44.1 kHz (left lags: positive).
    correlation = np.correlate(hrirs[0], hrirs[1], "full")
    expected_us = (np.argmax(correlation) - (hrirs[1].shape[0] - 1)) / hrir_rate * 1e6
    assert (expected_us > 0) == (azimuth == "45")  # positive azimuth = right side = left ear lags
    assert itd_us(binaural, FS, fine=True) == pytest.approx(expected_us, abs=40)
    assert itd_us(binaural, FS) == pytest.approx(expected_us, abs=1e6 / FS)
    assert (ild_db(binaural) < 0) == (azimuth == "45")  # right side: right ear louder


@pytest.mark.parametrize("gain_db", [-6.0, 3.5, 12.0])
def test_gain_on_one_ear_gives_that_ild_error(gain_db: float) -> None:
    source = _noise(5, 4000)
    target = _binaural(source)[:, :, None]
    estimate = _binaural(source, left_gain_db=gain_db)[:, :, None]
    assert ild_db(estimate[:, :, 0]) == pytest.approx(gain_db, abs=1e-6)  # louder left: positive
    result = evaluate_utterance(target[:, :, 0], target, estimate, FS)
    assert result["delta_ILD"] == pytest.approx(abs(gain_db), abs=1e-6)


# ------------------------------------------------------------------ SNR family


@pytest.mark.parametrize("snr", [-5.0, 0.0, 7.3, 25.0])
def test_additive_error_of_known_energy_gives_that_snr(snr: float) -> None:
    target = np.stack([_noise(6, 4000), _noise(7, 4000)], axis=1)
    error = np.stack([_noise(8, 4000), _noise(9, 4000)], axis=1)
    target -= target.mean(axis=0)  # zero-mean, so SpeechBrain's mean removal changes nothing
    error -= error.mean(axis=0)
    error *= np.sqrt(np.sum(target**2, axis=0) / np.sum(error**2, axis=0) / 10 ** (snr / 10))
    assert snr_db(target, target + error) == pytest.approx(snr, abs=1e-6)


@pytest.mark.parametrize("scale", [0.5, 0.9, 1.2, -1.0])
def test_scaled_copy_has_snr_minus_20log_abs_one_minus_a(scale: float) -> None:
    target = np.stack([_noise(10, 4000), _noise(11, 4000)], axis=1)
    assert snr_db(target, scale * target) == pytest.approx(20 * math.log10(1 / abs(1 - scale)), abs=1e-6)


def test_snr_is_not_scale_invariant_but_si_snr_is() -> None:
    target = _binaural(_noise(12, 4000), 2, 3.0)
    estimate = target + 0.2 * np.stack([_noise(13, 4000), _noise(14, 4000)], axis=1)
    assert abs(snr_db(target, 2.0 * estimate) - snr_db(target, estimate)) > 1.0
    assert si_snr_db(target, 2.0 * estimate) == pytest.approx(si_snr_db(target, estimate), abs=1e-6)
    assert si_snr_db(target, 0.3 * estimate) == pytest.approx(si_snr_db(target, estimate), abs=1e-6)


def test_improvements_are_metric_of_estimate_minus_metric_of_mixture() -> None:
    targets = _talkers(2)
    mixture = targets.sum(axis=2)
    estimates = targets + 0.3 * np.stack([_talkers(2, seed=20)[:, :, 1], _talkers(2, seed=30)[:, :, 0]], axis=2)
    result = evaluate_utterance(mixture, targets, estimates, FS)
    n_spk = targets.shape[2]
    snr_mix = np.mean([snr_db(targets[:, :, i], mixture) for i in range(n_spk)])
    si_snr_mix = np.mean([si_snr_db(targets[:, :, i], mixture) for i in range(n_spk)])
    sdr_mix = np.mean(sdr_db(targets, np.repeat(mixture[:, :, None], n_spk, axis=2)))
    assert result["snr_i"] == pytest.approx(result["snr"] - snr_mix, abs=1e-9)
    assert result["si_snr_i"] == pytest.approx(result["si_snr"] - si_snr_mix, abs=1e-9)
    assert result["sdr_i"] == pytest.approx(result["sdr"] - sdr_mix, abs=1e-6)
    assert result["snr"] == pytest.approx(np.mean([snr_db(targets[:, :, i], estimates[:, :, i]) for i in range(2)]))


# ------------------------------------------------------------------ permutation


@pytest.mark.parametrize("n_spk", [2, 3])
def test_best_permutation_undoes_every_talker_order(n_spk: int) -> None:
    targets = _talkers(n_spk)
    noise = 0.1 * _talkers(n_spk, seed=40)
    reference = evaluate_utterance(targets.sum(axis=2), targets, targets + noise, FS)
    for order in itertools.permutations(range(n_spk)):
        estimates = (targets + noise)[:, :, list(order)]  # estimate j is target order[j]
        perm = best_permutation(targets, estimates)
        assert perm == tuple(int(i) for i in np.argsort(order))
        np.testing.assert_array_equal(estimates[:, :, list(perm)], targets + noise)
        # Every metric, ΔITD/ΔILD included, follows that one permutation.
        result = evaluate_utterance(targets.sum(axis=2), targets, estimates, FS)
        for name in METRIC_NAMES:
            assert result[name] == pytest.approx(reference[name], abs=1e-6), name


# ------------------------------------------------------------------ SDR


def test_sdr_of_perfect_estimate_is_large() -> None:
    targets = _talkers(2)
    assert np.all(sdr_db(targets, targets) > 50)


def test_sdr_of_target_plus_white_noise_at_10_db_is_about_10_db() -> None:
    targets = _talkers(2, length=16000)
    noise = np.stack(
        [np.stack([_noise(50 + 2 * i, 16000), _noise(51 + 2 * i, 16000)], axis=1) for i in range(2)], axis=2
    )
    noise *= np.sqrt(np.sum(targets**2, axis=0) / np.sum(noise**2, axis=0) / 10.0)  # 10 dB per ear
    assert sdr_db(targets, targets + noise) == pytest.approx([10.0, 10.0], abs=0.5)


def test_sdr_survives_silent_and_degenerate_signals() -> None:
    targets = _talkers(2)
    silent = np.zeros_like(targets)
    assert np.all(np.isfinite(sdr_db(targets, silent)))
    one_silent_ear = targets.copy()
    one_silent_ear[:, 1, 0] = 0.0
    assert np.all(np.isfinite(sdr_db(one_silent_ear, targets)))
    assert np.all(np.isfinite(sdr_db(silent, silent)))



def test_a_silent_mixture_or_target_is_refused_naming_it() -> None:
    """Below SILENCE_DBFS there is nothing to score: an all-zero mixture gave SI-SNRi +98 dB."""
    targets = _talkers(2)
    with pytest.raises(SilentSignalError, match=r"^mixture: silent .* -90 dBFS"):
        evaluate_utterance(np.zeros_like(targets[:, :, 0]), targets, targets, FS)
    quiet = targets.copy()
    quiet[:, 1, 1] *= 1e-6 / np.sqrt(np.mean(quiet[:, 1, 1] ** 2))  # -120 dBFS in the right ear of talker 2
    with pytest.raises(SilentSignalError, match=r"^target 2: silent \(right ear"):
        evaluate_utterance(quiet.sum(axis=2), quiet, targets, FS)
    result = evaluate_utterance(targets.sum(axis=2), targets, np.zeros_like(targets), FS)  # a silent estimate scores
    assert all(np.isfinite(value) for value in result.values())


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_is_refused_naming_the_signal(bad: float) -> None:
    targets = _talkers(2)
    estimates = targets.copy()
    estimates[10, 0, 1] = bad
    with pytest.raises(ValueError, match="estimates"):
        evaluate_utterance(targets.sum(axis=2), targets, estimates, FS)
    mixture = targets.sum(axis=2)
    mixture[5, 1] = bad
    with pytest.raises(ValueError, match="mixture"):
        evaluate_utterance(mixture, targets, targets, FS)


def test_torch_tensors_give_the_numpy_answer() -> None:
    torch = pytest.importorskip("torch")
    targets = _talkers(2)
    estimates = targets + 0.2 * _talkers(2, seed=60)
    expected = evaluate_utterance(targets.sum(axis=2), targets, estimates, FS)
    got = evaluate_utterance(
        torch.from_numpy(targets.sum(axis=2)), torch.from_numpy(targets), torch.from_numpy(estimates), FS
    )
    assert got == pytest.approx(expected)


# ------------------------------------------------------------------ CSV and command line


def _write_tree(root: Path, n_spk: int, n_files: int = 3, length: int = 2000) -> tuple[Path, Path]:
    """Write ``root/D/{mix,s1..}`` and ``root/E/{s1..}`` (estimates in swapped order, float wavs)."""
    data, est = root / "D", root / "E"
    for index in range(n_files):
        targets = 0.1 * _talkers(n_spk, length=length, seed=100 * index)
        estimates = targets + 0.02 * _talkers(n_spk, length=length, seed=100 * index + 50)
        estimates = estimates[:, :, ::-1]  # talker order need not match
        name = f"utt{index}_x.wav"
        for folder, signal in [(data / "mix", targets.sum(axis=2))] + [
            (data / f"s{i + 1}", targets[:, :, i]) for i in range(n_spk)
        ] + [(est / f"s{i + 1}", estimates[:, :, i]) for i in range(n_spk)]:
            folder.mkdir(parents=True, exist_ok=True)
            sf.write(folder / name, signal, FS, subtype="FLOAT")
    return data, est


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.DictReader(stream)
        return list(reader.fieldnames or []), list(reader)


def _check_table(path: Path, n_files: int) -> None:
    header, rows = _read_csv(path)
    assert header == ["snt_id"] + METRIC_NAMES
    assert [row["snt_id"] for row in rows] == [f"utt{i}_x" for i in range(n_files)] + ["avg"]
    for name in METRIC_NAMES:
        column = [float(row[name]) for row in rows[:-1]]
        assert float(rows[-1][name]) == pytest.approx(np.mean(column), abs=1e-9)
    assert float(rows[-1]["snr"]) > 10  # estimates found despite the swapped order


def test_cli_end_to_end_two_talkers(tmp_path: Path) -> None:
    data, est = _write_tree(tmp_path, n_spk=2)
    out = tmp_path / "results.csv"
    completed = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "metrics.py"), "--mix_dir", str(data / "mix"), "--ref_dir",
         str(data), "--est_dir", str(est), "--out", str(out), "--sample_rate", str(FS)],
        capture_output=True, text=True, check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "avg" in completed.stdout
    _check_table(out, n_files=3)


def test_cli_three_talkers_and_returned_avg(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data, est = _write_tree(tmp_path, n_spk=3)
    out = tmp_path / "sub" / "results.csv"
    assert metrics.main(["--mix_dir", str(data / "mix"), "--ref_dir", str(data), "--est_dir", str(est),
                         "--out", str(out)]) == 0
    _check_table(out, n_files=3)
    average = score_folders(data / "mix", data, est, out)
    _, rows = _read_csv(out)
    assert average["snt_id"] == "avg"
    assert average["snr"] == pytest.approx(float(rows[-1]["snr"]))
    assert not [p for p in out.parent.iterdir() if p.name != "results.csv"]  # no temp file left


def test_cli_help_mentions_every_option(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        metrics.main(["--help"])
    assert exit_info.value.code == 0
    usage = capsys.readouterr().out
    for option in ("--mix_dir", "--ref_dir", "--est_dir", "--out", "--sample_rate"):
        assert option in usage


def test_missing_estimate_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data, est = _write_tree(tmp_path, n_spk=2)
    (est / "s2" / "utt1_x.wav").unlink()
    with pytest.raises(MetricsInputError, match=r"missing estimate.*utt1_x\.wav"):
        score_folders(data / "mix", data, est, tmp_path / "r.csv")
    assert metrics.main(["--mix_dir", str(data / "mix"), "--ref_dir", str(data), "--est_dir", str(est),
                         "--out", str(tmp_path / "r.csv")]) == 2
    assert "utt1_x.wav" in capsys.readouterr().err
    assert not (tmp_path / "r.csv").exists()


def test_mono_input_is_refused(tmp_path: Path) -> None:
    data, est = _write_tree(tmp_path, n_spk=2)
    sf.write(est / "s1" / "utt0_x.wav", _noise(1, 2000) * 0.1, FS)
    with pytest.raises(MetricsInputError, match=r"utt0_x\.wav: mono, expected 2 channels"):
        score_folders(data / "mix", data, est, tmp_path / "r.csv")


def test_rate_and_length_mismatches_are_refused(tmp_path: Path) -> None:
    data, est = _write_tree(tmp_path, n_spk=2)
    with pytest.raises(MetricsInputError, match="sample rate 8000 Hz, expected 16000 Hz"):
        score_folders(data / "mix", data, est, tmp_path / "r.csv", sample_rate=16000)
    stereo, _ = sf.read(est / "s2" / "utt2_x.wav")
    sf.write(est / "s2" / "utt2_x.wav", stereo, 16000, subtype="FLOAT")
    with pytest.raises(MetricsInputError, match=r"s2/utt2_x\.wav: sample rate 16000 Hz"):
        score_folders(data / "mix", data, est, tmp_path / "r.csv")
    sf.write(est / "s2" / "utt2_x.wav", stereo[:-10], FS, subtype="FLOAT")
    with pytest.raises(MetricsInputError, match="1990 samples but the mixture"):
        score_folders(data / "mix", data, est, tmp_path / "r.csv")


def test_write_results_csv_needs_every_column(tmp_path: Path) -> None:
    row = {"snt_id": "a", **{name: 1.0 for name in METRIC_NAMES}}
    average = write_results_csv([row, {**row, "snt_id": "b", "snr": 3.0}], tmp_path / "r.csv")
    assert average["snr"] == 2.0 and average["sdr"] == 1.0
    del row["delta_ILD"]
    with pytest.raises(ValueError, match="delta_ILD"):
        write_results_csv([row], tmp_path / "r.csv")
    with pytest.raises(ValueError, match="no rows"):
        write_results_csv([], tmp_path / "r.csv")


# ------------------------------------------------------------------ short, empty and silent signals


@pytest.mark.parametrize("length", [200, 256, 1000, 4000])
def test_sdr_of_an_unrelated_estimate_stays_low_on_short_signals(length: int) -> None:
    """White noise is no estimate of a talker at any length: with a 512-tap filter it scored the
    +100 dB clamp at 256 samples and -4.6 dB at 2000; one tap per 16 samples keeps it near
    10 log10(1/15) = -11.8 dB, the share of unrelated energy the filter can explain."""
    targets = _talkers(2, length=length)
    noise = np.stack([_talkers(2, length=length, seed=70 + k)[:, :, k] for k in range(2)], axis=2)
    assert sdr_filter_length(length) == length // 16
    assert np.all(sdr_db(targets, noise) < -8.0)


def test_sdr_of_target_plus_noise_is_right_on_a_short_signal() -> None:
    targets = _talkers(2, length=1000)
    noise = np.stack([_talkers(2, length=1000, seed=80 + k)[:, :, k] for k in range(2)], axis=2)
    noise *= np.sqrt(np.sum(targets**2, axis=0) / np.sum(noise**2, axis=0) / 10.0)  # 10 dB per ear
    # 10 dB, plus what 62 taps explain of 1000 noise samples: 10 log10(16 / 15) = 0.28 dB.
    assert sdr_db(targets, targets + noise) == pytest.approx([10.28, 10.28], abs=0.4)


def test_sdr_filter_is_the_published_512_taps_from_8192_samples() -> None:
    assert [sdr_filter_length(n) for n in (16, 8191, 8192, 10**6)] == [1, 511, 512, 512]
    with pytest.raises(MetricsInputError, match="15 samples are too short for BSS-eval SDR"):
        sdr_filter_length(15)


@pytest.mark.parametrize(
    "score",
    [
        lambda e: evaluate_utterance(e[:, :, 0], e, e, FS),
        lambda e: sdr_db(e, e),
        lambda e: snr_db(e[:, :, 0], e[:, :, 0]),
        lambda e: si_snr_db(e[:, :, 0], e[:, :, 0]),
        lambda e: itd_us(e[:, :, 0], FS, fine=True),
        lambda e: ild_db(e[:, :, 0]),
        lambda e: best_permutation(e, e),
    ],
)
def test_empty_signals_are_a_clear_error(score) -> None:
    with pytest.raises(MetricsInputError, match=r"is empty \(shape \(0, 2"):
        score(np.zeros((0, 2, 2)))


def test_a_silent_ear_gives_the_same_ild_magnitude_on_either_side() -> None:
    talker = _noise(90, 4000)
    energy = float(np.sum(talker**2))
    silent_left = np.stack([np.zeros(4000), talker], axis=1)
    silent_right = silent_left[:, ::-1]
    assert ild_db(silent_right) == pytest.approx(10 * math.log10(energy / 1e-8), abs=1e-6)
    assert ild_db(silent_left) == pytest.approx(-ild_db(silent_right), abs=1e-9)
    assert ild_db(np.zeros((100, 2))) == 0.0
    ordinary = _binaural(talker, left_gain_db=3.0)
    assert ild_db(ordinary[:, ::-1]) == pytest.approx(-ild_db(ordinary), abs=1e-9)


# ------------------------------------------------------------------ bounded fine ITD


def test_fine_itd_searches_only_the_lags_a_head_produces() -> None:
    """An estimate whose ears are 5 ms apart (no head does that): the published ΔITD counts the
    5 ms, the fine one finds the best lag within ±1 ms (or ±max_itd_us)."""
    source = _noise(91, 8000)
    target = _binaural(source)[:, :, None]  # ITD 0
    estimate = _binaural(source, right_delay=40)[:, :, None]  # 40 samples = 5000 µs at 8 kHz
    result = evaluate_utterance(target[:, :, 0], target, estimate, FS)
    assert result["delta_ITD"] == pytest.approx(5000.0)
    assert result["delta_ITD_fine"] <= MAX_ITD_US
    assert itd_us(estimate[:, :, 0], FS, fine=True, max_itd_us=None) == pytest.approx(-5000.0)
    assert itd_us(estimate[:, :, 0], FS, fine=True, max_itd_us=6000) == pytest.approx(-5000.0)
    wide = evaluate_utterance(target[:, :, 0], target, estimate, FS, max_itd_us=6000)
    assert wide["delta_ITD_fine"] == pytest.approx(5000.0)


def test_unbounded_fine_itd_is_pyroomacoustics_tdoa() -> None:
    from pyroomacoustics.experimental.localization import tdoa

    rng = np.random.default_rng(92)
    for length in (999, 1000, 3001):
        left, right = rng.standard_normal(length), rng.standard_normal(length)
        expected = tdoa(left, right, interp=ITD_FINE_INTERP, fs=FS, phat=True) * 1e6
        assert itd_us(np.stack([left, right], axis=1), FS, fine=True, max_itd_us=None) == expected


def test_cli_max_itd_option_and_a_folder_as_out(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data, est = _write_tree(tmp_path, n_spk=2, n_files=1)
    args = ["--mix_dir", str(data / "mix"), "--ref_dir", str(data), "--est_dir", str(est)]
    assert metrics.main([*args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"metrics.py: error: {tmp_path}: is a folder") and err.count("\n") == 1
    assert metrics.main([*args, "--out", str(tmp_path / "r.csv"), "--max_itd_us", "500"]) == 0
    with pytest.raises(SystemExit):
        metrics.main([*args, "--out", str(tmp_path / "r.csv"), "--max_itd_us", "0"])
    assert "'0' is not a positive number of µs" in capsys.readouterr().err


def test_an_empty_file_is_named(tmp_path: Path) -> None:
    data, est = _write_tree(tmp_path, n_spk=2, n_files=1)
    for folder in (data / "mix", data / "s1", data / "s2", est / "s1", est / "s2"):
        sf.write(folder / "utt0_x.wav", np.zeros((0, 2)), FS, subtype="FLOAT")
    with pytest.raises(RecipeError, match=r"mix/utt0_x\.wav: empty audio file"):  # audio_io's reader says it
        score_folders(data / "mix", data, est, tmp_path / "r.csv")
