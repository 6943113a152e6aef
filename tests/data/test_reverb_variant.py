"""Reverberant variant: per-ear and published convolutions, simulated rooms, names, checks, download."""
from __future__ import annotations

import csv
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from pyroomacoustics.experimental import measure_rt60
from scipy.io import wavfile
from scipy.signal import fftconvolve, resample_poly

from conftest import catt_tree, official_subset, wsj_tree_for
from binaural.data.generation import create_binaural_wsj0mix
from create_binaural_wsj0mix import parse_args
from binaural.data.variants import ReverbVariant
from binaural.data.record import GenerationOptions
from binaural.io.download import DownloadError
from binaural.data.metadata import MetadataError, metadata_paths
from binaural.data.mixing import convolve_brir, convolve_brir_published, direct_path_onset, spatialize_reverb
from binaural.data.rooms import (
    BRIR_AZIMUTHS,
    CATT_URL_ENV_VAR,
    PUBLIC_REVERB_TIMES,
    BRIRFileNotFoundError,
    ensure_catt,
    simulate_brir,
)



def reverb_rows(metadata: Path, split: str) -> list[dict]:
    with open(metadata_paths(metadata, 2, split)["filenames"]) as handle:
        rows = list(csv.DictReader(handle))
    with open(metadata / f"hrtf_reverb_meta_{split}.csv") as handle:
        meta = {r["utterance_id"]: r for r in csv.DictReader(handle)}
    return [row | meta[row["output_filename"]] for row in rows]


def reverb_subset(official_metadata_dir: Path, dest: Path, split: str, rows: int) -> Path:
    official_subset(official_metadata_dir, dest, 2, split, rows)
    names = {line.split(",")[0] for line in metadata_paths(dest, 2, split)["filenames"].read_text().splitlines()[1:]}
    header, *body = (official_metadata_dir / f"hrtf_reverb_meta_{split}.csv").read_text().splitlines(keepends=True)
    (dest / f"hrtf_reverb_meta_{split}.csv").write_text(header + "".join(l for l in body if l.split(",")[0] in names))
    return dest


@pytest.fixture(scope="module")
def reverb_official(official_metadata_dir, speech_dir, rir_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("reverb")
    metadata = reverb_subset(official_metadata_dir, root / "metadata", "tt", 3)
    wsj = wsj_tree_for(metadata, speech_dir, root / "wsj", 2, "tt")
    pairs = [(r["reverb_time"], r[f"azimuth{k}"]) for r in reverb_rows(metadata, "tt") for k in (1, 2)]
    return metadata, wsj, catt_tree(rir_dir, root / "brirs", pairs)


# --- the convolutions ---


def test_per_ear_convolution_is_each_ear_through_its_own_brir():
    rng = np.random.default_rng(0)
    source = rng.standard_normal(3000)
    brir = np.zeros((700, 2))
    brir[126:] = 0.1 * rng.standard_normal((574, 2)) * np.exp(-np.arange(574) / 80)[:, None]
    brir[120, 0] = 5.0  # direct sound, left ear first
    brir[125, 1] = 4.0
    onset = direct_path_onset(brir)
    assert onset == 120 - 16
    got = convolve_brir(source, brir)
    assert got.shape == (3000, 2)
    for ear in range(2):
        np.testing.assert_allclose(got[:, ear], np.convolve(source, brir[:, ear])[onset : onset + 3000], atol=1e-10)
    # The ears keep their own responses: the interaural delay of the direct sound survives.
    impulse = np.zeros(400)
    impulse[50] = 1.0
    image = convolve_brir(impulse, brir)
    assert np.argmax(np.abs(image[:, 0])) == 50 + 16 and np.argmax(np.abs(image[:, 1])) == 50 + 16 + 5
    # Energy rescaling as the clean variant: the binaural image has the dry source's energy per ear.
    heard = spatialize_reverb(source, brir, "per_ear")
    assert np.sum(heard**2) == pytest.approx(2 * np.sum(source**2))


def test_the_published_option_is_the_2d_fftconvolve_with_its_flaw():
    rng = np.random.default_rng(1)
    source = rng.standard_normal(2000)
    brir = rng.standard_normal((301, 2)) * np.exp(-np.arange(301) / 50)[:, None]
    got = convolve_brir_published(source, brir)
    np.testing.assert_allclose(got, fftconvolve(np.stack((source, source), 1), brir, mode="same"), atol=1e-12)
    # Its left ear is the source through the left BRIR, its right ear through the SUM of both,
    # both cropped around the BRIR's middle tap.
    centre = (brir.shape[0] - 1) // 2
    np.testing.assert_allclose(got[:, 0], np.convolve(source, brir[:, 0])[centre : centre + 2000], atol=1e-10)
    np.testing.assert_allclose(got[:, 1], np.convolve(source, brir[:, 0] + brir[:, 1])[centre : centre + 2000], atol=1e-10)
    per_ear = convolve_brir(source, brir, onset=centre)
    np.testing.assert_allclose(got[:, 0], per_ear[:, 0], atol=1e-10)
    assert not np.allclose(got[:, 1], per_ear[:, 1])
    with pytest.raises(ValueError, match="per_ear"):
        spatialize_reverb(source, brir, "both")


# --- the build, official mode ---


def public_dry_sources(wsj: Path, row: dict, gains, mode: str, sr: int) -> list:
    """The public scripts' dry talkers: raw int16 read, 8 kHz resampling, gain, min/max length."""
    sources = []
    for k in (1, 2):
        rate, x = wavfile.read(wsj / row[f"s{k}_path"])
        if sr == 8000:
            x = resample_poly(x, 8000, rate)
        sources.append(x * gains[k - 1])
    length = (min if mode == "min" else max)(len(s) for s in sources)
    return [s[:length] if mode == "min" else np.append(s, np.zeros(length - len(s))) for s in sources]


def public_reverb_chain(wsj: Path, catt: Path, row: dict, gains, mode: str, sr: int):
    """``create_wav_2speakers_reverb`` + ``utils.convolve_hrtf_reverb``, step by step."""
    sources = public_dry_sources(wsj, row, gains, mode, sr)
    out = []
    for k, s in enumerate(sources):
        stacked = np.stack((s, s), 1)
        rt, az = row["reverb_time"], row[f"azimuth{k + 1}"]
        rate, h = wavfile.read(catt / "Binaural" / "16k" / rt / f"CATT_{rt}_{az}.wav")
        h = resample_poly(h, sr, rate)
        samples = fftconvolve(stacked, h, mode="same")
        out.append(samples * np.sqrt(np.sum(stacked**2) / np.sum(samples**2)))
    return [(out[0] + out[1]).astype(np.int16)] + [o.astype(np.int16) for o in out]


def per_ear_chain(wsj: Path, catt: Path, row: dict, gains, mode: str, sr: int):
    """The same, each ear through its own BRIR (np.convolve), aligned on the direct sound."""
    sources = public_dry_sources(wsj, row, gains, mode, sr)
    out = []
    for k, s in enumerate(sources):
        rt, az = row["reverb_time"], row[f"azimuth{k + 1}"]
        h, rate = sf.read(str(catt / "Binaural" / "16k" / rt / f"CATT_{rt}_{az}.wav"))
        h = resample_poly(h, sr, rate, axis=0)
        envelope = np.max(np.abs(h), axis=1)
        onset = max(0, int(np.argmax(envelope >= 0.1 * envelope.max())) - 16)
        image = np.stack([np.convolve(s, h[:, ear])[onset : onset + len(s)] for ear in range(2)], 1)
        out.append(image * np.sqrt(2 * np.sum(s**2) / np.sum(image**2)))
    # Not the published bits: what exceeds int16 is clipped rather than wrapped around.
    return [np.clip(np.trunc(x), -32768, 32767) for x in [out[0] + out[1], *out]]


@pytest.mark.parametrize("reverb_mode", ["published", "per_ear"])
def test_official_reverb_build_equals_the_public_chain(reverb_official, tmp_path, reverb_mode):
    metadata, wsj, catt = reverb_official
    out = tmp_path / "out"
    create_binaural_wsj0mix(wsj, out, GenerationOptions(
        variant=ReverbVariant(brir_dir=catt, reverb_mode=reverb_mode), splits=["tt"], metadata_dir=metadata,
        num_workers=1, progress=False,
    ))
    npz = np.load(metadata_paths(metadata, 2, "tt")["scaling"], allow_pickle=True)
    chain = public_reverb_chain if reverb_mode == "published" else per_ear_chain
    for freq, sr in (("8k", 8000), ("16k", 16000)):
        for mode in ("min", "max"):
            folder = out / f"wav{freq}" / mode / "tt"
            assert sorted(p.name for p in folder.iterdir()) == ["mix", "s1", "s2"]
            for i, row in enumerate(reverb_rows(metadata, "tt")):
                utts = row["output_filename"][:-4].split("_")[0::2]
                name = f"{row['reverb_time']}_{utts[0]}_{row['azimuth1']}_{utts[1]}_{row['azimuth2']}.wav"
                assert re.fullmatch(r"\d_\ds_[0-9a-z]{8}_-?\d+_[0-9a-z]{8}_-?\d+\.wav", name)
                want = chain(wsj, catt, row, npz[f"scaling_wsjmix_{freq}_{mode}"][i], mode, sr)
                for sub, expected in zip(["mix", "s1", "s2"], want):
                    got, rate = sf.read(str(folder / sub / name), dtype="int16")
                    assert rate == sr and got.shape == expected.shape == (len(expected), 2)
                    assert np.max(np.abs(got.astype(int) - expected.astype(int))) <= 1, (freq, mode, sub, name)


def test_a_missing_brir_is_reported_before_anything_is_written(reverb_official, tmp_path):
    metadata, wsj, catt = reverb_official
    row = reverb_rows(metadata, "tt")[1]
    victim = catt / "Binaural" / "16k" / row["reverb_time"] / f"CATT_{row['reverb_time']}_{row['azimuth2']}.wav"
    target = victim.resolve()
    victim.unlink()
    try:
        with pytest.raises(BRIRFileNotFoundError, match=rf"CATT_{row['reverb_time']}_{row['azimuth2']}\.wav.*Nothing was written"):
            create_binaural_wsj0mix(wsj, tmp_path / "out", GenerationOptions(
                variant=ReverbVariant(brir_dir=catt), splits=["tt"], metadata_dir=metadata, progress=False,
            ))
        assert not (tmp_path / "out").exists()
    finally:
        victim.symlink_to(target)
    with pytest.raises(MetadataError, match=r"hrtf_reverb_meta_cv\.csv"):
        create_binaural_wsj0mix(wsj, tmp_path / "out", GenerationOptions(
            variant=ReverbVariant(brir_dir=catt), splits=["cv"], metadata_dir=metadata, progress=False,
        ))
    with pytest.raises(ValueError, match="two-talker"):
        create_binaural_wsj0mix(wsj, tmp_path / "out", GenerationOptions(
            variant=ReverbVariant(), n_spks=3, metadata_dir=metadata,
        ))
    assert not (tmp_path / "out").exists()


# --- simulated rooms ---


@pytest.mark.parametrize("rt60", [0.3, 0.6])
def test_simulated_brirs_have_the_reverb_time_asked_for(rt60):
    brir = simulate_brir(rt60, 60.0)
    assert brir.ndim == 2 and brir.shape[1] == 2
    measured = [measure_rt60(brir[:, ear], 16000, decay_db=20) for ear in range(2)]
    print(f"RT60 asked {rt60} s, measured (T20, Schroeder) {measured[0]:.3f} / {measured[1]:.3f} s")
    for value in measured:
        assert abs(value - rt60) <= 0.2 * rt60, measured
    # A source on the right: the right ear hears the direct sound first and louder.
    onsets = [int(np.argmax(np.abs(brir[:, ear]) > 0.3 * np.max(np.abs(brir[:, ear])))) for ear in range(2)]
    assert onsets[1] < onsets[0]
    direct = slice(0, min(onsets) + 40)
    assert np.sum(brir[direct, 1] ** 2) > 2 * np.sum(brir[direct, 0] ** 2)


def test_simulated_build_caches_the_brirs(official_metadata_dir, speech_dir, tmp_path):
    metadata = reverb_subset(official_metadata_dir, tmp_path / "metadata", "tt", 2)
    rows = reverb_rows(metadata, "tt")
    with open(metadata / "hrtf_reverb_meta_tt.csv", "w", newline="") as handle:  # short rooms: a fast test
        writer = csv.writer(handle)
        writer.writerow(["utterance_id", "reverb_time", "azimuth1", "azimuth2"])
        writer.writerows([(rows[0]["output_filename"], "0_2s", "-45", "30"), (rows[1]["output_filename"], "0_3s", "0", "30")])
    wsj = wsj_tree_for(metadata, speech_dir, tmp_path / "wsj", 2, "tt")
    out = tmp_path / "data" / "reverb"
    options = GenerationOptions(variant=ReverbVariant(brir_dir="simulate", room_seed=3), freqs=["8k"], modes=["min"],
                                splits=["tt"], metadata_dir=metadata, num_workers=1, progress=False, seed=3)
    create_binaural_wsj0mix(wsj, out, options)
    cache = tmp_path / "data" / "simulated_brirs"
    names = sorted(p.name for p in cache.iterdir())
    assert names == sorted(
        f"sim1_rt{rt}_az{az}_fs16000_seed3.wav" for rt, az in [("0_2s", -45), ("0_2s", 30), ("0_3s", 0), ("0_3s", 30)]
    )
    for path in cache.iterdir():
        assert sf.info(str(path)).channels == 2
    mtimes = {p: p.stat().st_mtime_ns for p in cache.iterdir()}
    written = sorted(p.name for p in (out / "wav8k" / "min" / "tt" / "mix").iterdir())
    utts = [r["output_filename"][:-4].split("_")[0::2] for r in rows]
    assert written == sorted([f"0_2s_{utts[0][0]}_-45_{utts[0][1]}_30.wav", f"0_3s_{utts[1][0]}_0_{utts[1][1]}_30.wav"])
    mix, rate = sf.read(str(out / "wav8k" / "min" / "tt" / "mix" / written[0]), dtype="int16")
    assert rate == 8000 and mix.shape[1] == 2 and np.abs(mix).max() > 1000
    # A second build elsewhere reuses the cache.
    create_binaural_wsj0mix(wsj, tmp_path / "data" / "again", options)
    assert {p: p.stat().st_mtime_ns for p in cache.iterdir()} == mtimes


# --- own mode, download, CLI ---


def test_own_mode_draws_reverb_metadata_in_the_official_format(tiny_wsj_root, rir_dir, tmp_path):
    pairs = [(rt, str(az)) for times in PUBLIC_REVERB_TIMES.values() for rt in times for az in BRIR_AZIMUTHS]
    catt = catt_tree(rir_dir, tmp_path / "brirs", pairs)
    out = tmp_path / "own"
    written = create_binaural_wsj0mix(tiny_wsj_root, out, GenerationOptions(
        variant=ReverbVariant(brir_dir=catt, room_seed=2), freqs=["8k"], modes=["min"], own_metadata=True,
        n_mixtures={"tr": 3, "cv": 1, "tt": 2}, seed=2, num_workers=1, progress=False,
    ))
    assert written == {"tr": 3, "cv": 1, "tt": 2}
    for split in ("tr", "cv", "tt"):
        rows = reverb_rows(out / "metadata", split)
        assert list(rows[0])[-4:] == ["utterance_id", "reverb_time", "azimuth1", "azimuth2"]
        for row in rows:
            assert row["reverb_time"] in PUBLIC_REVERB_TIMES[split]
            assert row["azimuth1"] != row["azimuth2"] and {int(row["azimuth1"]), int(row["azimuth2"])} <= set(BRIR_AZIMUTHS)
            utts = row["output_filename"][:-4].split("_")[0::2]
            name = f"{row['reverb_time']}_{utts[0]}_{row['azimuth1']}_{utts[1]}_{row['azimuth2']}.wav"
            data, rate = sf.read(str(out / "wav8k" / "min" / split / "s1" / name), dtype="int16")
            assert rate == 8000 and data.shape[1] == 2


def test_the_brir_set_is_downloaded_through_the_real_code(rir_dir, tmp_path, monkeypatch):
    source = catt_tree(rir_dir, tmp_path / "src", [("0_3s", "-90"), ("0_3s", "5")])
    archive = tmp_path / "CATT_RIRs.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in source.rglob("*.wav"):
            bundle.write(path.resolve(), "CATT_RIRs/" + str(path.relative_to(source)))
    monkeypatch.setenv(CATT_URL_ENV_VAR, str(archive))
    root = ensure_catt(tmp_path / "data", progress=False)
    assert (root / "Binaural" / "16k" / "0_3s" / "CATT_0_3s_-90.wav").exists()
    monkeypatch.setattr("binaural.io.download.RETRY_BACKOFF_S", 0.01)
    monkeypatch.setenv(CATT_URL_ENV_VAR, "http://127.0.0.1:9/CATT_RIRs.zip")
    with pytest.raises(DownloadError, match=r"(?s)127\.0\.0\.1.*To proceed by hand.*--brir_dir simulate"):
        ensure_catt(tmp_path / "elsewhere", progress=False)
    assert not (tmp_path / "elsewhere" / "CATT_RIRs").exists()


def test_cli_options():
    base = ["--wsj_root", "w", "--output_dir", "o", "--variant", "reverb"]
    args = parse_args(base + ["--brir_dir", "simulate"])
    assert (args.variant, args.brir_dir, args.reproduce_published_reverb) == ("reverb", "simulate", False)
    assert parse_args(base + ["--reproduce_published_reverb"]).reproduce_published_reverb
