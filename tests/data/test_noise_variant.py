"""Noisy variant: official mode equal to the public chain, folders, float32, binaural noise, own mode, DEMAND."""
from __future__ import annotations

import csv
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.io import wavfile
from scipy.signal import coherence, fftconvolve, resample_poly

from conftest import demand_tree, official_subset, wsj_tree_for
from binaural.data.generation import create_binaural_wsj0mix
from create_binaural_wsj0mix import parse_args
from binaural.data.variants import NoiseVariant
from binaural.data.record import GenerationOptions
from binaural.io.download import DownloadError
from binaural.data.metadata import metadata_paths
from binaural.data.noise import DEMAND_URL_ENV_VAR, NoiseError, ensure_demand, read_noise_meta

ROWS = {"tr": 2, "cv": 2, "tt": 3}
FOLDERS = ["mix_clean", "mix_single", "mix_both", "s1", "s2", "noise"]


@pytest.fixture(scope="module")
def noisy_official(official_metadata_dir, speech_dir, noise_dir, tmp_path_factory):
    """A few official rows of every split (the public draws run over tr, cv, tt in turn), their speech,
    a DEMAND tree, and the tt split built with all rates and length modes."""
    root = tmp_path_factory.mktemp("noisy")
    metadata = root / "metadata"
    for split, rows in ROWS.items():
        official_subset(official_metadata_dir, metadata, 2, split, rows)
        wsj_tree_for(metadata, speech_dir, root / "wsj", 2, split)
    shutil.copy(official_metadata_dir / "file_splits.csv", metadata / "file_splits.csv")
    demand = demand_tree(noise_dir, metadata / "file_splits.csv", root / "demand")
    out = root / "out"
    create_binaural_wsj0mix(root / "wsj", out, GenerationOptions(variant=NoiseVariant(noise_root=demand), splits=["tt"], metadata_dir=metadata, hrtf_dir=Path(official_metadata_dir).parent
        / "CIPIC_hrtf_database" / "wav_database", num_workers=1, progress=False))
    return metadata, root / "wsj", demand, out


# --- the public chain, step by step (run_sample_noise + noisesampler + create_wav_2speakers_noise) ---


def public_noise_files(metadata: Path, wsj: Path, demand: Path) -> dict:
    """``sample_noise``: np.random.seed(28), then per split and row the NoiseSampler draws; the
    segment is what ``wavfile.write(..., noise.astype(np.float32))`` stores. The SNR check of
    ``_sample_noise`` compares the noise with itself and never ends: the first draw is taken."""
    rng = np.random.RandomState(28)
    with open(metadata / "file_splits.csv") as handle:
        table = list(csv.DictReader(handle))
    files = {}
    for split_long, split in {"Train": "tr", "Valid": "cv", "Test": "tt"}.items():
        names = [r["Filename"] for r in table if r["Split"] == split_long and int(r["Noise Band"]) == 0]
        paths = [demand / n.split("/", 1)[1] for n in names]
        weights = np.array([sf.info(str(p)).duration / 60 for p in paths])
        weights /= np.sum(weights)
        with open(metadata / f"mix_2_spk_filenames_{split}.csv") as handle:
            for row in csv.DictReader(handle):
                n_speech = max(len(wavfile.read(wsj / row["s1_path"])[1]), len(wavfile.read(wsj / row["s2_path"])[1]))
                noise_beginning, noise_end = rng.randint(0, 32000, size=2)
                rng.uniform(-2.5, 15.0)
                to_read = n_speech + noise_beginning + noise_end
                rng.randint(0, 1)
                chosen = rng.choice(paths, p=weights)
                start = rng.randint(0, sf.info(str(chosen)).frames - to_read)
                noise, _ = sf.read(str(chosen), start=start, stop=start + to_read)
                files[(split, row["output_filename"])] = noise.astype(np.float32)
    return files


def public_noisy_mixture(wsj, hrtf_root, row, noise_file, npz, i, freq, mode):
    sr, downsample = (8000, True) if freq == "8k" else (16000, False)
    sources = []
    for k in (1, 2):
        rate, x = wavfile.read(wsj / row[f"s{k}_path"])
        if downsample:
            x = resample_poly(x, 8000, rate)
        x = x * npz[f"scaling_wsjmix_{freq}_{mode}"][i][k - 1]
        sources.append(np.float64(x) / 2**15 * npz[f"scaling_wham_speech_{freq}_{mode}"][i])
    length = (min if mode == "min" else max)(len(s) for s in sources)
    sources = [s[:length] if mode == "min" else np.append(s, np.zeros(length - len(s))) for s in sources]
    noise = noise_file
    if downsample:
        noise = resample_poly(noise, 8000, 16000)
    noise = noise * npz[f"scaling_wham_noise_{freq}_{mode}"][i]
    binaural = []
    for k, s in enumerate(sources):
        out = np.zeros((len(s), 2))
        az = row[f"azimuth{k + 1}"].replace("-", "neg")
        for ear, side in enumerate(["left", "right"]):
            hrtf_rate, h = wavfile.read(hrtf_root / row["subject"] / f"{az}az{side}.wav")
            h = resample_poly(h, sr, hrtf_rate, axis=1)
            out[:, ear] = fftconvolve(s, h[int(row[f"elevation_index{k + 1}"])], mode="same")
        binaural.append(out * np.sqrt(np.sum(s**2) * 2 / np.sum(out**2)))
    noise = np.stack((noise, noise), 1)
    start = npz["speech_start_sample_16k"][i] // 2 if downsample else npz["speech_start_sample_16k"][i]
    s1, s2 = binaural
    if mode == "min":
        noise = noise[start : start + len(s1)]
    else:
        placed = []
        for s in (s1, s2):
            padded = np.zeros_like(noise)
            padded[start : start + len(s)] = s  # the public script fails here when the noise is too short
            placed.append(padded)
        s1, s2 = placed
    mixes = [s1 + s2, noise + s1, noise + s1 + s2]
    return {name: x.astype(np.float32) for name, x in zip(FOLDERS, mixes + [s1, s2, noise])}


def _rows(metadata: Path, split: str):
    paths = metadata_paths(metadata, 2, split)
    with open(paths["filenames"]) as handle:
        rows = list(csv.DictReader(handle))
    with open(paths["hrtf"]) as handle:
        hrtf = {r["utterance_id"]: r for r in csv.DictReader(handle)}
    return [row | hrtf[row["output_filename"]] for row in rows]


def _name(meta: dict) -> str:
    utts = meta["output_filename"][:-4].split("_")[0::2]
    return "_".join(
        [meta["subject"]] + [f"{u}_{meta[f'azimuth{k + 1}']}_{meta[f'elevation{k + 1}']}" for k, u in enumerate(utts)]
    ) + ".wav"


def test_official_noisy_mode_equals_the_public_chain(noisy_official, cipic_dir):
    metadata, wsj, demand, out = noisy_official
    noise_files = public_noise_files(metadata, wsj, demand)
    npz = np.load(metadata_paths(metadata, 2, "tt")["scaling"], allow_pickle=True)
    compared = 0
    for freq in ("8k", "16k"):
        for mode in ("min", "max"):
            folder = out / f"wav{freq}" / mode / "tt"
            assert sorted(p.name for p in folder.iterdir()) == sorted(FOLDERS)
            for i, meta in enumerate(_rows(metadata, "tt")):
                noise = noise_files[("tt", meta["output_filename"])]
                start = int(npz["speech_start_sample_16k"][i])
                speech = max(len(wavfile.read(wsj / meta[f"s{k}_path"])[1]) for k in (1, 2))
                if mode == "max" and start + speech > len(noise):
                    continue  # the public script fails on this row (see noise.covering_segment)
                want = public_noisy_mixture(wsj, cipic_dir, meta, noise, npz, i, freq, mode)
                for sub in FOLDERS:
                    info = sf.info(str(folder / sub / _name(meta)))
                    assert info.subtype == "FLOAT" and info.channels == 2 and info.samplerate == int(freq[:-1]) * 1000
                    got, _ = sf.read(str(folder / sub / _name(meta)), dtype="float32")
                    assert got.shape == want[sub].shape, (freq, mode, sub)
                    np.testing.assert_allclose(got, want[sub], rtol=1e-6, atol=1e-9, err_msg=f"{freq} {mode} {sub}")
                compared += 1
    assert compared >= 10


def test_mix_both_is_mix_clean_plus_noise_and_the_published_ears_are_identical(noisy_official):
    _, _, _, out = noisy_official
    for folder in (out / "wav8k" / "max" / "tt", out / "wav16k" / "min" / "tt"):
        for wav in (folder / "mix_both").iterdir():
            read = {sub: sf.read(str(folder / sub / wav.name), dtype="float32")[0] for sub in FOLDERS}
            np.testing.assert_allclose(read["mix_both"], read["mix_clean"] + read["noise"], atol=2e-7, rtol=2e-6)
            np.testing.assert_allclose(read["mix_single"], read["s1"] + read["noise"], atol=2e-7, rtol=2e-6)
            np.testing.assert_array_equal(read["noise"][:, 0], read["noise"][:, 1])
            assert np.std(read["noise"]) > 0


def test_a_noise_segment_too_short_for_the_speech_start_is_extended(noisy_official, cipic_dir, tmp_path):
    """The public build places the speech at WHAM!'s start, not at the seed-28 draw's: when the start
    exceeds the drawn paddings, its max mode fails. Ours reads further into the same recording."""
    metadata, wsj, demand, published = noisy_official
    local = tmp_path / "metadata"
    shutil.copytree(metadata, local)
    scaling = metadata_paths(local, 2, "tt")["scaling"]
    with np.load(scaling, allow_pickle=True) as npz:
        arrays = {k: npz[k] for k in npz.files}
    drawn = read_noise_meta(published / "noise_metadata" / "noise_meta_tt.csv")
    meta = _rows(local, "tt")[0]
    segment = drawn[meta["output_filename"]]
    speech = max(len(wavfile.read(wsj / meta[f"s{k}_path"])[1]) for k in (1, 2))
    start = segment.stop - segment.start - speech + 5000  # 5000 samples more than the segment holds
    arrays["speech_start_sample_16k"] = arrays["speech_start_sample_16k"].copy()
    arrays["speech_start_sample_16k"][0] = start
    np.savez(scaling, **arrays)
    out = tmp_path / "out"
    create_binaural_wsj0mix(wsj, out, GenerationOptions(
        variant=NoiseVariant(noise_root=demand), freqs=["16k"], splits=["tt"], metadata_dir=local, hrtf_dir=cipic_dir,
        num_workers=1, progress=False,
    ))
    folder = out / "wav16k" / "max" / "tt"
    noise, _ = sf.read(str(folder / "noise" / _name(meta)), dtype="float32")
    s1, _ = sf.read(str(folder / "s1" / _name(meta)))
    assert len(noise) == start + speech
    assert np.all(s1[:start] == 0) and np.any(s1[start : start + 2000] != 0)
    recording, _ = sf.read(str(demand / segment.file.split("/", 1)[1]), dtype="float64")
    expected = recording[segment.start : segment.start + start + speech].astype(np.float32)
    np.testing.assert_array_equal(noise[:, 0], expected * np.float64(arrays["scaling_wham_noise_16k_max"][0]))
    # min mode needs no extension: the noise under the speech is the drawn segment's
    cut, _ = sf.read(str(out / "wav16k" / "min" / "tt" / "noise" / _name(meta)), dtype="float32")
    np.testing.assert_array_equal(cut[:, 0], noise[start : start + len(cut), 0])


@pytest.mark.parametrize("mode", ["demand", "diffuse"])
def test_binaural_noise_gives_two_different_ears(noisy_official, cipic_dir, tmp_path, mode):
    metadata, wsj, demand, published = noisy_official
    out = tmp_path / mode
    create_binaural_wsj0mix(wsj, out, GenerationOptions(
        variant=NoiseVariant(noise_root=demand, binaural_noise=mode), freqs=["16k"], modes=["max"], splits=["tt"],
        metadata_dir=metadata, hrtf_dir=cipic_dir, num_workers=1, progress=False,
    ))
    for wav in (out / "wav16k" / "max" / "tt" / "noise").iterdir():
        noise, _ = sf.read(str(wav))
        left_published, _ = sf.read(str(published / "wav16k" / "max" / "tt" / "noise" / wav.name))
        np.testing.assert_array_equal(noise[:, 0], left_published[:, 0])  # the left ear is the published noise
        assert not np.allclose(noise[:, 0], noise[:, 1])
        level = 10 * np.log10(np.sum(noise[:, 1] ** 2) / np.sum(noise[:, 0] ** 2))
        if mode == "diffuse":
            freqs, gamma = coherence(noise[:, 0], noise[:, 1], fs=16000, nperseg=512)
            assert abs(level) < 1.0  # same power spectrum in both ears
            assert np.mean(gamma[(freqs > 30) & (freqs < 150)]) > 0.7  # a head is small at low frequencies
            assert np.mean(gamma[freqs > 2000]) < 0.2  # and large at high ones
        mix, _ = sf.read(str(wav.parent.parent / "mix_both" / wav.name))
        clean, _ = sf.read(str(wav.parent.parent / "mix_clean" / wav.name))
        np.testing.assert_allclose(mix, clean + noise, atol=2e-7, rtol=2e-6)


def test_own_mode_draws_noise_in_the_official_formats(tiny_wsj_root, noise_dir, official_metadata_dir, tmp_path):
    demand = demand_tree(noise_dir, official_metadata_dir / "file_splits.csv", tmp_path / "demand")
    options = GenerationOptions(
        variant=NoiseVariant(noise_root=demand), freqs=["8k"], modes=["min"], own_metadata=True,
        n_mixtures={"tr": 3, "cv": 1, "tt": 2}, seed=5, num_workers=1, progress=False,
    )
    out = tmp_path / "own"
    written = create_binaural_wsj0mix(tiny_wsj_root, out, options)
    assert written == {"tr": 3, "cv": 1, "tt": 2}
    metadata = out / "metadata"
    assert (metadata / "file_splits.csv").exists()
    for split in ("tr", "cv", "tt"):
        with np.load(metadata_paths(metadata, 2, split)["scaling"], allow_pickle=True) as npz:
            n = len(npz["utterance_id"])
            for f in ("8k", "16k"):
                for m in ("min", "max"):
                    assert npz[f"scaling_wham_speech_{f}_{m}"].shape == (n,)
                    assert npz[f"scaling_wham_noise_{f}_{m}"].shape == (n,)
            starts = npz["speech_start_sample_16k"]
            assert starts.dtype.kind == "i" and np.all((0 <= starts) & (starts < 32000))
        segments = read_noise_meta(metadata / f"noise_meta_{split}.csv")
        assert set(segments) == {str(u) for u in np.load(metadata_paths(metadata, 2, split)["scaling"])["utterance_id"]}
        environments = {s.file.split("/")[1] for s in segments.values()}
        assert environments <= {"DWASHING", "DKITCHEN", "NFIELD", "NPARK", "OOFFICE", "OMEETING"} or split != "tr"
        folder = out / "wav8k" / "min" / split
        for wav in (folder / "mix_both").iterdir():
            s1, _ = sf.read(str(folder / "s1" / wav.name))
            noise, _ = sf.read(str(folder / "noise" / wav.name))
            snr = 10 * np.log10(np.sum(s1**2) / np.sum(noise**2))
            assert -6.05 <= snr <= 3.05, snr  # WHAM!-like SNR of talker 1
            assert np.max(np.abs(sf.read(str(wav))[0])) < 1.0
    # Deterministic from the seed.
    again = tmp_path / "again"
    create_binaural_wsj0mix(tiny_wsj_root, again, options)
    for split in ("tr", "cv", "tt"):
        assert (metadata / f"noise_meta_{split}.csv").read_bytes() == (
            again / "metadata" / f"noise_meta_{split}.csv"
        ).read_bytes()
        a = np.load(metadata_paths(metadata, 2, split)["scaling"], allow_pickle=True)
        b = np.load(metadata_paths(again / "metadata", 2, split)["scaling"], allow_pickle=True)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])


def test_a_missing_demand_recording_is_reported_before_anything_is_written(noisy_official, cipic_dir, tmp_path):
    metadata, wsj, demand, _ = noisy_official
    partial = tmp_path / "demand"
    shutil.copytree(demand, partial, symlinks=True)
    (partial / "TCAR" / "ch01.wav").unlink()
    with pytest.raises(NoiseError, match=r"TCAR/ch01\.wav.*zenodo.*Nothing was written"):
        create_binaural_wsj0mix(wsj, tmp_path / "out", GenerationOptions(
            variant=NoiseVariant(noise_root=partial), splits=["tt"], metadata_dir=metadata, hrtf_dir=cipic_dir,
            progress=False,
        ))
    assert not (tmp_path / "out").exists()
    (partial / "TCAR" / "ch01.wav").symlink_to(demand / "TCAR" / "ch01.wav")
    (partial / "TBUS" / "ch02.wav").unlink()
    with pytest.raises(NoiseError, match=r"TBUS/ch02\.wav"):
        create_binaural_wsj0mix(wsj, tmp_path / "out", GenerationOptions(
            variant=NoiseVariant(noise_root=partial, binaural_noise=True), splits=["tt"], metadata_dir=metadata,
            hrtf_dir=cipic_dir, progress=False,
        ))
    assert not (tmp_path / "out").exists()


def test_demand_is_downloaded_through_the_real_code(noise_dir, tmp_path, monkeypatch):
    """Zips in the Zenodo layout from a local mirror (no network in tests): one 16 kHz environment,
    and SCAFE, which exists at 48 kHz only and is resampled."""
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    with zipfile.ZipFile(mirror / "DKITCHEN_16k.zip", "w") as bundle:
        for channel in (1, 2):
            bundle.write(noise_dir / f"noise{channel}.wav", f"DKITCHEN/ch{channel:02d}.wav")
    data, _ = sf.read(str(noise_dir / "noise3.wav"))
    sf.write(str(tmp_path / "scafe48.wav"), resample_poly(data, 3, 1), 48000, subtype="FLOAT")
    with zipfile.ZipFile(mirror / "SCAFE_48k.zip", "w") as bundle:
        bundle.write(tmp_path / "scafe48.wav", "SCAFE/ch01.wav")
    monkeypatch.setattr("binaural.io.download.RETRY_BACKOFF_S", 0.01)
    monkeypatch.setenv(DEMAND_URL_ENV_VAR, str(mirror))
    root = ensure_demand(None, ["demand/DKITCHEN/ch01.wav", "demand/SCAFE/ch01.wav"], (1,), tmp_path / "DEMAND", progress=False)
    assert sf.read(str(root / "DKITCHEN" / "ch01.wav"))[0].shape == sf.read(str(noise_dir / "noise1.wav"))[0].shape
    scafe, scafe_rate = sf.read(str(root / "SCAFE" / "ch01.wav"))
    assert scafe_rate == 16000 and abs(len(scafe) - len(data)) <= 1
    assert np.corrcoef(scafe[1000:-1000], data[1000 : len(scafe) - 1000])[0, 1] > 0.99
    assert not list(root.rglob("*.zip")) and not list(root.rglob("*.part"))
    # Offline: a clear error with the manual way, nothing half-written.
    monkeypatch.setenv(DEMAND_URL_ENV_VAR, "http://127.0.0.1:9/demand")
    with pytest.raises(DownloadError, match=r"(?s)127\.0\.0\.1.*To proceed by hand.*--noise_root"):
        ensure_demand(None, ["demand/TBUS/ch01.wav"], (1,), tmp_path / "DEMAND", progress=False)
    assert not (tmp_path / "DEMAND" / "TBUS").exists()


def test_cli_options():
    base = ["--wsj_root", "w", "--output_dir", "o"]
    assert parse_args(base).variant == "clean" and parse_args(base).binaural_noise == "none"
    args = parse_args(base + ["--variant", "noise", "--noise_root", "d", "--binaural_noise"])
    assert (args.variant, args.noise_root, args.binaural_noise) == ("noise", "d", "demand")
    assert parse_args(base + ["--binaural_noise", "diffuse"]).binaural_noise == "diffuse"
