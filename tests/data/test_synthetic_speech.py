"""The synthetic WSJ0 stand-in: layout, determinism, and speech-like properties measured from the audio."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from binaural.data.metadata import active_rms, list_talkers
from binaural.data.synthetic_speech import CORPUS_JSON, LEVEL_DBFS, PEAK_DBFS, SyntheticCorpusError, load_talkers, make_synthetic_wsj0, make_utterance, synthesize, talker_profiles

PROJECT_ROOT = Path(__file__).resolve().parents[2]
RATE = 16000
SMALL = {
    "n_talkers": {"si_tr_s": 3, "si_dt_05": 1, "si_et_05": 1},
    "utterances_per_talker": 2,
    "duration_s": (1.0, 1.5),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_synthetic_wsj0(tmp_path_factory.mktemp("synthetic"), seed=0, **SMALL)


def _wavs(root: Path) -> list[Path]:
    return sorted((root / "wsj0").glob("*/*/*.wav"))


def _frames(x: np.ndarray, ms: float = 40.0, hop_ms: float = 10.0) -> np.ndarray:
    """``[frame, sample]`` views of ``x`` (``ms``-long frames every ``hop_ms``)."""
    length, hop = int(RATE * ms / 1000), int(RATE * hop_ms / 1000)
    return x[np.arange(0, len(x) - length, hop)[:, None] + np.arange(length)]


def _energy_db(frames: np.ndarray) -> np.ndarray:
    return 10 * np.log10(np.mean(frames**2, axis=1) + 1e-20)


def _zcr(frames: np.ndarray) -> np.ndarray:
    """Zero crossings per sample: ~0.05 for voiced speech, 0.3+ for /s/-like noise."""
    return np.mean(np.abs(np.diff(np.sign(frames), axis=1)) > 0, axis=1)


def _voiced(x: np.ndarray) -> np.ndarray:
    frames = _frames(x)
    energy = _energy_db(frames)
    return frames[(energy > energy.max() - 20) & (_zcr(frames) < 0.15)]


def _pitch_hz(x: np.ndarray) -> np.ndarray:
    """Autocorrelation pitch of the voiced frames (60–400 Hz), frames with a clear peak only."""
    estimates = []
    low, high = int(RATE / 400), int(RATE / 60)
    for frame in _voiced(x):
        frame = (frame - frame.mean()) * np.hanning(len(frame))
        correlation = np.correlate(frame, frame, "full")[len(frame) - 1 :]
        correlation /= correlation[0]
        lag = low + int(np.argmax(correlation[low:high]))
        if correlation[lag] > 0.5:
            estimates.append(RATE / lag)
    return np.asarray(estimates)


def _centroid_hz(signals: list[np.ndarray]) -> float:
    """Centroid (Hz, below 5 kHz) of the mean magnitude spectrum of the voiced frames."""
    spectra = np.concatenate([np.abs(np.fft.rfft(_voiced(x) * np.hanning(640), axis=1)) for x in signals])
    mean = spectra.mean(axis=0)
    freqs = np.fft.rfftfreq(640, 1 / RATE)
    band = freqs < 5000
    return float((mean * freqs)[band].sum() / mean[band].sum())


def _read(path: Path) -> np.ndarray:
    return sf.read(str(path), dtype="float64")[0]


def test_layout_and_wsj0_ids(corpus):
    wsj0 = corpus / "wsj0"
    assert sorted(p.name for p in wsj0.iterdir() if p.is_dir()) == ["si_dt_05", "si_et_05", "si_tr_s"]
    talkers = {}
    for folder, count in SMALL["n_talkers"].items():
        names = sorted(p.name for p in (wsj0 / folder).iterdir())
        assert len(names) == count
        for talker in names:
            assert len(talker) == 3 and "_" not in talker
            talkers.setdefault(talker, []).append(folder)
            utterances = sorted((wsj0 / folder / talker).iterdir())
            assert len(utterances) == SMALL["utterances_per_talker"]
            for path in utterances:
                assert path.suffix == ".wav" and len(path.stem) == 8 and "_" not in path.stem
                assert path.stem.startswith(talker)  # WSJ0: the first 3 characters name the talker
                info = sf.info(str(path))
                assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16")
    assert all(len(sets) == 1 for sets in talkers.values()), "a talker id is reused across sets"
    assert set(load_talkers(corpus)) == set(talkers)
    # The recipe's own reader accepts the tree.
    assert len(list_talkers(corpus, ["si_tr_s"])) == 3
    assert len(list_talkers(corpus, ["si_dt_05", "si_et_05"])) == 2


def test_same_seed_gives_identical_bytes_and_another_seed_differs(corpus, tmp_path):
    again = make_synthetic_wsj0(tmp_path / "again", seed=0, **SMALL)
    other = make_synthetic_wsj0(tmp_path / "other", seed=1, **SMALL)
    reference = _wavs(corpus)
    assert [p.relative_to(again) for p in _wavs(again)] == [p.relative_to(corpus) for p in reference]
    for path in reference:
        assert (again / path.relative_to(corpus)).read_bytes() == path.read_bytes()
        assert (other / path.relative_to(corpus)).read_bytes() != path.read_bytes()
    assert (again / "wsj0" / CORPUS_JSON).read_bytes() == (corpus / "wsj0" / CORPUS_JSON).read_bytes()


def test_durations_level_and_no_clipping(corpus):
    low, high = SMALL["duration_s"]
    for path in _wavs(corpus):
        info = sf.info(str(path))
        assert low - 1 / RATE <= info.duration <= high + 1 / RATE
        samples = sf.read(str(path), dtype="int16")[0].astype(np.int64)
        assert np.abs(samples).max() <= 32767 * 10 ** (PEAK_DBFS / 20) + 1
        level = 20 * np.log10(active_rms(samples / 32768.0, RATE))
        assert abs(level - LEVEL_DBFS) < 0.5, f"{path.name}: active level {level:.2f} dBFS"


def test_measured_pitch_follows_each_talker_and_separates_the_sexes(corpus):
    talkers = load_talkers(corpus)
    medians = {}
    for talker, info in talkers.items():
        paths = sorted((corpus / "wsj0" / info["set"] / talker).glob("*.wav"))
        pitch = np.concatenate([_pitch_hz(_read(p)) for p in paths])
        assert len(pitch) >= 20, f"{talker}: too few voiced frames"
        medians[talker] = float(np.median(pitch))
        low, high = info["f0_range_hz"]
        assert low <= medians[talker] <= high, (talker, medians[talker], info)
        assert abs(medians[talker] / info["f0_hz"] - 1) < 0.15, (talker, medians[talker], info)
    males = [medians[t] for t, i in talkers.items() if i["sex"] == "male"]
    females = [medians[t] for t, i in talkers.items() if i["sex"] == "female"]
    assert males and females, "both sexes are expected among the 3 training talkers (sexes alternate)"
    assert max(males) * 1.2 < min(females)


def test_vocal_tract_length_shifts_the_spectrum():
    # Same plan, pitch and noise (same random stream); only the formant scale differs.
    profile = talker_profiles("si_tr_s", 1, 0)[0]
    short = synthesize(dataclasses.replace(profile, formant_scale=1.2), 2.0, RATE, np.random.default_rng(5))
    long = synthesize(dataclasses.replace(profile, formant_scale=1.0), 2.0, RATE, np.random.default_rng(5))
    assert _centroid_hz([short]) > 1.1 * _centroid_hz([long])


def test_talkers_differ_in_spectrum(corpus):
    talkers = load_talkers(corpus)
    centroids = {}
    for talker, info in talkers.items():
        paths = sorted((corpus / "wsj0" / info["set"] / talker).glob("*.wav"))
        centroids[talker] = _centroid_hz([_read(p) for p in paths])
    female = np.mean([c for t, c in centroids.items() if talkers[t]["sex"] == "female"])
    male = np.mean([c for t, c in centroids.items() if talkers[t]["sex"] == "male"])
    assert female > 1.05 * male, centroids


def _longest_internal_pause_s(x: np.ndarray) -> float:
    """Longest run of quiet (< −40 dB re. the loudest) 10 ms hops between the first and last sound (s)."""
    energy = _energy_db(_frames(x, ms=20, hop_ms=10))
    quiet = energy < energy.max() - 40
    active = np.flatnonzero(~quiet)
    inside = quiet[active[0] : active[-1]].astype(int)
    edges = np.flatnonzero(np.diff(np.r_[0, inside, 0]))
    runs = edges[1::2] - edges[::2]
    return float(runs.max()) * 0.01 if len(runs) else 0.0


def test_pauses_and_unvoiced_sounds(corpus):
    unvoiced = 0
    for path in _wavs(corpus):
        frames = _frames(_read(path), ms=20, hop_ms=10)
        energy = _energy_db(frames)
        quiet = energy < energy.max() - 40
        assert quiet[0] and quiet[-1], f"{path.name}: no leading/trailing silence"
        loud = energy > energy.max() - 25
        # A short utterance may hold stops only (~3 % of 1 s ones), so unvoiced frames are counted.
        unvoiced += bool(np.any(loud & (_zcr(frames) > 0.3)))
        assert np.any(loud & (_zcr(frames) < 0.1)), f"{path.name}: no voiced-like frame"
    assert unvoiced >= 0.75 * len(_wavs(corpus)), "too few utterances with fricative-like (noisy, loud) frames"
    # 1–1.5 s is mostly one phrase whose words often run together, but some have a gap.
    assert max(_longest_internal_pause_s(_read(p)) for p in _wavs(corpus)) >= 0.05


def test_longer_utterances_have_phrase_pauses():
    profile = talker_profiles("si_et_05", 1, 0)[0]
    for utterance in range(4):
        samples = make_utterance(profile, 0, utterance, 0, (4.0, 4.0), RATE) / 32768.0
        assert _longest_internal_pause_s(samples) >= 0.15, f"utterance {utterance}: no pause between phrases"


def test_rerun_keeps_files_and_resumes(corpus, tmp_path):
    root = make_synthetic_wsj0(tmp_path / "resume", seed=0, **SMALL)
    files = _wavs(root)
    reference = {p: p.read_bytes() for p in files}
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    files[0].unlink()  # as if killed before this file
    files[1].write_bytes(files[1].read_bytes()[:100])  # a truncated file (not by this code, but still)
    leftover = files[2].parent / f".{files[2].name}.abc.partial"
    leftover.write_bytes(b"junk")
    make_synthetic_wsj0(root, seed=0, **SMALL)
    assert not leftover.exists()
    for path in files:
        assert path.read_bytes() == reference[path]
    assert all(p.stat().st_mtime_ns == mtimes[p] for p in files[2:])


def test_rerun_with_other_parameters_is_refused(corpus):
    with pytest.raises(SyntheticCorpusError, match=r"other parameters.*utterances_per_talker.*--root"):
        make_synthetic_wsj0(corpus, seed=0, **{**SMALL, "utterances_per_talker": 3})
    with pytest.raises(SyntheticCorpusError, match="seed"):
        make_synthetic_wsj0(corpus, seed=7, **SMALL)


def test_a_foreign_wsj0_folder_is_not_touched(tmp_path):
    real = tmp_path / "wsj0" / "si_tr_s" / "01a"
    real.mkdir(parents=True)
    (real / "01aa0101.wav").write_bytes(b"RIFF")
    with pytest.raises(SyntheticCorpusError, match="not a synthetic corpus"):
        make_synthetic_wsj0(tmp_path, **SMALL)


@pytest.mark.parametrize(
    "override, message",
    [
        ({"n_talkers": {"si_tr_x": 2}}, "unknown talker set"),
        ({"duration_s": (2.0, 1.0)}, "duration_s"),
        ({"utterances_per_talker": 0}, "utterances_per_talker"),
        ({"sample_rate": 4000}, "sample_rate"),
    ],
)
def test_bad_parameters_are_named(tmp_path, override, message):
    with pytest.raises(SyntheticCorpusError, match=message):
        make_synthetic_wsj0(tmp_path, **{**SMALL, **override})


def test_cli(tmp_path):
    command = [
        sys.executable, str(PROJECT_ROOT / "synthetic_speech.py"), "--root", str(tmp_path), "--seed", "3",
        "--talkers", "2", "1", "1", "--utterances_per_talker", "1", "--duration", "0.5", "0.8",
    ]
    done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    assert len(_wavs(tmp_path)) == 4
    assert json.loads((tmp_path / "wsj0" / CORPUS_JSON).read_text())["parameters"]["seed"] == 3
    refused = subprocess.run(command + ["--seed", "4"], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert refused.returncode == 1 and "other parameters" in refused.stderr
