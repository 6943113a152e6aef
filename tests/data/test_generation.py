"""create_binaural_wsj0mix: official mode bit-exact, own mode, bad inputs, kill-and-resume."""
from __future__ import annotations

import csv
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.io import wavfile
from scipy.signal import fftconvolve, resample_poly

from conftest import PROJECT_ROOT, official_subset, wsj_tree_for
from binaural.data.generation import create_binaural_wsj0mix
from binaural.data.record import DatasetMismatchError, GenerationOptions
from binaural.data.metadata import MetadataError, load_split, metadata_paths
from binaural.data.manifests import ManifestError, prepare_binaural_wsj0mix

N_ROWS = 3


def public_chain(wsj_root: Path, hrtf_root: Path, row: dict, gains, mode: str, sr: int, n_spks: int):
    """The public generation scripts' processing, written out step by step as the issue states it."""
    sources = []
    for k in range(n_spks):
        rate, x = wavfile.read(wsj_root / row[f"s{k + 1}_path"])
        if x.ndim > 1:
            x = x[:, 0]
        if sr == 8000:
            x = resample_poly(x, 8000, rate)
        sources.append(x * gains[k])
    length = (min if mode == "min" else max)(len(s) for s in sources)
    sources = [s[:length] if mode == "min" else np.append(s, np.zeros(length - len(s))) for s in sources]
    out = []
    for k, s in enumerate(sources):
        binaural = np.zeros((len(s), 2))
        az = row[f"azimuth{k + 1}"].replace("-", "neg")
        for ear, side in enumerate(["left", "right"]):
            hrtf_rate, h = wavfile.read(hrtf_root / row["subject"] / f"{az}az{side}.wav")
            h = resample_poly(h, sr, hrtf_rate, axis=1)
            binaural[:, ear] = fftconvolve(s, h[int(row[f"elevation_index{k + 1}"])], mode="same")
        out.append(binaural * np.sqrt(np.sum(s**2) * 2 / np.sum(binaural**2)))
    return [sum(out).astype(np.int16)] + [b.astype(np.int16) for b in out]


@pytest.fixture(scope="module")
def official_2spk(official_metadata_dir, speech_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("official2")
    metadata = official_subset(official_metadata_dir, root / "metadata", 2, "tt", N_ROWS)
    return metadata, wsj_tree_for(metadata, speech_dir, root / "wsj", 2, "tt")


@pytest.mark.parametrize("n_spks", [2, 3])
def test_official_mode_equals_the_public_chain(
    n_spks, official_metadata_dir, cipic_dir, speech_dir, official_2spk, tmp_path
):
    if n_spks == 2:
        metadata, wsj = official_2spk
    else:
        metadata = official_subset(official_metadata_dir, tmp_path / "metadata", 3, "tt", 2)
        wsj = wsj_tree_for(metadata, speech_dir, tmp_path / "wsj", 3, "tt")
    out = tmp_path / "out"
    create_binaural_wsj0mix(wsj, out, GenerationOptions(
        n_spks=n_spks, splits=["tt"], metadata_dir=metadata, hrtf_dir=cipic_dir, num_workers=1, progress=False,
    ))
    with open(metadata_paths(metadata, n_spks, "tt")["filenames"]) as handle:
        rows = list(csv.DictReader(handle))
    with open(metadata_paths(metadata, n_spks, "tt")["hrtf"]) as handle:
        hrtf = {r["utterance_id"]: r for r in csv.DictReader(handle)}
    npz = np.load(metadata_paths(metadata, n_spks, "tt")["scaling"], allow_pickle=True)
    for freq, sr in (("8k", 8000), ("16k", 16000)):
        for mode in ("min", "max"):
            for i, row in enumerate(rows):
                meta = row | hrtf[row["output_filename"]]
                utts = row["output_filename"][:-4].split("_")[0::2]
                name = "_".join(
                    [meta["subject"]]
                    + [f"{u}_{meta[f'azimuth{k + 1}']}_{meta[f'elevation{k + 1}']}" for k, u in enumerate(utts)]
                )
                expected = public_chain(
                    wsj, cipic_dir, meta, npz[f"scaling_wsjmix_{freq}_{mode}"][i], mode, sr, n_spks
                )
                folder = out / f"wav{freq}" / mode / "tt"
                for sub, want in zip(["mix"] + [f"s{k + 1}" for k in range(n_spks)], expected):
                    got, rate = sf.read(folder / sub / f"{name}.wav", dtype="int16")
                    assert rate == sr and got.shape == want.shape == (len(want), 2)
                    assert np.max(np.abs(got.astype(int) - want.astype(int))) <= 1, (freq, mode, sub, name)


def test_names_follow_the_public_dataset(official_metadata_dir):
    spec = load_split(official_metadata_dir, 2, "tr")[0]
    # 40na010x_1.9857_01xo031a_-1.9857.wav, subject135, az -10/65, el 146/62 in hrtf_meta_tr.csv
    assert spec.binaural_name == "subject135_40na010x_-10_146_01xo031a_65_62.wav"
    spec3 = load_split(official_metadata_dir, 3, "tt")[0]
    assert spec3.binaural_name == "subject134_22ho010o_40_186_052a050y_45_73_445o030v_-10_203.wav"


def test_the_missing_official_scaling_file_is_named(official_metadata_dir):
    with pytest.raises(MetadataError, match=r"scaling_tr3\.npz"):
        load_split(official_metadata_dir, 3, "tr")


def test_a_mixture_without_hrtf_row_is_an_error(official_metadata_dir, tmp_path):
    metadata = official_subset(official_metadata_dir, tmp_path, 2, "tt", 2)
    path = metadata_paths(metadata, 2, "tt")["hrtf"]
    path.write_text(path.read_text().splitlines()[0] + "\n" + path.read_text().splitlines()[1] + "\n")
    with pytest.raises(MetadataError, match=r"no row for mixture '420c020h"):
        load_split(metadata, 2, "tt")


def test_missing_utterances_are_reported_before_anything_is_written(official_2spk, cipic_dir, tmp_path):
    metadata, wsj = official_2spk
    broken = tmp_path / "wsj"
    shutil.copytree(wsj, broken)
    victims = sorted(broken.rglob("*.wav"))[:2]
    for victim in victims:
        victim.unlink()
    with pytest.raises(MetadataError, match=r"not found.*1 other utterance.*Nothing was written"):
        create_binaural_wsj0mix(broken, tmp_path / "out", GenerationOptions(
            splits=["tt"], metadata_dir=metadata, hrtf_dir=cipic_dir, progress=False,
        ))
    assert not (tmp_path / "out").exists()


def test_wrong_sample_rate_is_reported(official_2spk, cipic_dir, tmp_path):
    metadata, wsj = official_2spk
    broken = tmp_path / "wsj"
    shutil.copytree(wsj, broken)
    victim = sorted(broken.rglob("*.wav"))[0]
    sf.write(victim, np.zeros(8000, dtype=np.int16), 8000)
    with pytest.raises(MetadataError, match=rf"{victim.name}: sample rate 8000 Hz, expected 16000"):
        create_binaural_wsj0mix(broken, tmp_path / "out", GenerationOptions(
            splits=["tt"], metadata_dir=metadata, hrtf_dir=cipic_dir, progress=False,
        ))


@pytest.mark.parametrize("column,value,message", [("subject", "subject999", "subject999"), ("azimuth1", "7", "7")])
def test_unknown_subject_or_azimuth_is_reported(official_2spk, cipic_dir, tmp_path, column, value, message):
    metadata, wsj = official_2spk
    local = tmp_path / "metadata"
    shutil.copytree(metadata, local)
    path = metadata_paths(local, 2, "tt")["hrtf"]
    with open(path) as handle:
        rows = list(csv.DictReader(handle))
    rows[1][column] = value
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(MetadataError, match=rf"{rows[1]['utterance_id']}.*{message}.*Nothing was written"):
        create_binaural_wsj0mix(wsj, tmp_path / "out", GenerationOptions(
            splits=["tt"], metadata_dir=local, hrtf_dir=cipic_dir,
        ))
    assert not (tmp_path / "out").exists()


def test_own_mode_draws_shareable_metadata_and_builds_from_it(tiny_wsj_root, tmp_path):
    out = tmp_path / "own"
    options = GenerationOptions(
        n_spks=2, freqs=["8k"], modes=["min"], own_metadata=True, n_mixtures={"tr": 4, "cv": 2, "tt": 2},
        seed=3, hrtf_dir="spherical", num_workers=1, progress=False,
    )
    written = create_binaural_wsj0mix(tiny_wsj_root, out, options)
    assert written == {"tr": 4, "cv": 2, "tt": 2}
    specs = {split: load_split(out / "metadata", 2, split, ["8k"], ["min"]) for split in ("tr", "cv", "tt")}
    listeners = {split: {s.subject for s in specs[split]} for split in specs}
    assert not listeners["tr"] & listeners["tt"] and not listeners["tr"] & listeners["cv"]
    for split, rows in specs.items():
        for spec in rows:
            talkers = [Path(p).parent.name for p in spec.source_paths]
            assert len(set(talkers)) == 2, "different talkers within a mixture"
            assert all(p.split("/")[1] in (("si_tr_s",) if split != "tt" else ("si_dt_05", "si_et_05"))
                       for p in spec.source_paths)
            levels = [float(x) for x in spec.output_filename[:-4].split("_")[1::2]]
            assert 0 <= abs(levels[0] - levels[1]) <= 5
            assert len({d.azimuth + "/" + d.elevation for d in spec.directions}) == 2
            wav = out / "wav8k" / "min" / split / "mix" / spec.binaural_name
            data, rate = sf.read(wav, dtype="int16")
            assert rate == 8000 and data.shape[1] == 2 and np.abs(data).max() > 1000
    # Deterministic from the seed: a second draw elsewhere gives the same metadata files.
    again = tmp_path / "again"
    create_binaural_wsj0mix(tiny_wsj_root, again, options)
    for split in specs:
        for kind, path in metadata_paths(out / "metadata", 2, split).items():
            if kind != "scaling":
                assert path.read_bytes() == metadata_paths(again / "metadata", 2, split)[kind].read_bytes()
    # A different draw into the same metadata folder is refused rather than mixed in.
    with pytest.raises(DatasetMismatchError, match=r"seed=3, but this run asks for seed=4"):
        create_binaural_wsj0mix(tiny_wsj_root, out, replace(options, seed=4))


def test_manifests_list_every_mixture_with_real_durations(tiny_wsj_root, tmp_path):
    out = tmp_path / "data"
    create_binaural_wsj0mix(tiny_wsj_root, out, GenerationOptions(
        freqs=["8k"], modes=["min"], own_metadata=True, n_mixtures={"tr": 3, "cv": 1, "tt": 1}, num_workers=1,
        progress=False,
    ))
    paths = prepare_binaural_wsj0mix(out, tmp_path / "csv", n_spks=2, freq="8k", mode="min")
    with open(paths["tr"]) as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["ID", "duration", "mix_wav", "s1_wav", "s2_wav"]
    assert len(rows) == 3
    for row in rows:
        assert float(row["duration"]) == pytest.approx(sf.info(row["mix_wav"]).duration, abs=1e-4)
        assert float(row["duration"]) != 1.0
        assert Path(row["s2_wav"]).name == Path(row["mix_wav"]).name
    os.remove(rows[0]["s2_wav"])
    with pytest.raises(ManifestError, match="missing although"):
        prepare_binaural_wsj0mix(out, tmp_path / "csv", n_spks=2, freq="8k", mode="min")
    with pytest.raises(ManifestError, match="Generate the data first"):
        prepare_binaural_wsj0mix(tmp_path / "nothing", tmp_path / "csv")


def _cli(args, **kwargs):
    return subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "create_binaural_wsj0mix.py"), *args],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs,
    )


def test_kill_and_resume_finishes_without_redoing_finished_files(official_metadata_dir, cipic_dir, speech_dir, tmp_path):
    rows = 12
    metadata = official_subset(official_metadata_dir, tmp_path / "metadata", 2, "tt", rows)
    wsj = wsj_tree_for(metadata, speech_dir, tmp_path / "wsj", 2, "tt")
    out = tmp_path / "out"
    args = ["--wsj_root", str(wsj), "--output_dir", str(out), "--splits", "tt", "--metadata_dir", str(metadata),
            "--hrtf_dir", str(cipic_dir), "--num_workers", "1", "--quiet"]
    process = _cli(args)
    mix_dir = out / "wav8k" / "min" / "tt" / "mix"
    deadline = time.time() + 120
    while time.time() < deadline and (not mix_dir.is_dir() or len(os.listdir(mix_dir)) < 2):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    finished = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    assert finished, "the run was killed before writing anything"
    for path in finished:
        sf.read(path)  # every wav on disk is complete
    assert len(list(mix_dir.iterdir())) < rows, "the run finished before it was killed"

    resumed = _cli(args)
    output = resumed.communicate(timeout=300)[0].decode()
    assert resumed.returncode == 0, output
    assert "already complete" in output or len(finished) < 4
    assert not list(out.rglob("*.partial"))
    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was rewritten"
    for freq in ("8k", "16k"):
        for mode in ("min", "max"):
            for sub in ("mix", "s1", "s2"):
                assert len(os.listdir(out / f"wav{freq}" / mode / "tt" / sub)) == rows


def test_cli_reports_bad_input_with_exit_code(tmp_path):
    (tmp_path / "wsj0").mkdir()  # a WSJ0 root (a missing one is named first: tests/commands/test_train_mistakes.py)
    process = _cli(["--wsj_root", str(tmp_path), "--output_dir", str(tmp_path / "o"), "--metadata_dir",
                    str(tmp_path), "--hrtf_dir", "spherical", "--splits", "cv"])
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 1
    assert "mix_2_spk_filenames_cv.csv" in output


def test_official_mode_without_local_copies_downloads_the_public_archive(
    official_2spk, official_metadata_dir, cipic_dir, tmp_path, monkeypatch
):
    """The archive comes from a local file URL here (no network in tests), through the real code."""
    import zipfile

    metadata, wsj = official_2spk
    archive = tmp_path / "main.zip"
    top = "BinauralWSJ0Mix-main"  # the archive's folder; the target keeps the recipe's name
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in list(metadata.iterdir()) + [official_metadata_dir / f for f in
                                                ("mix_2_spk_filenames_tr.csv", "scaling_tr.npz", "hrtf_meta_tr.csv")]:
            bundle.write(path, f"{top}/metadata/{path.name}")
        for subject in {r.split(",")[1] for r in metadata_paths(metadata, 2, "tt")["hrtf"].read_text().splitlines()[1:]}:
            for wav in (cipic_dir / subject).glob("*.wav"):
                bundle.write(wav, f"{top}/CIPIC_hrtf_database/wav_database/{subject}/{wav.name}")
    monkeypatch.setenv("BINAURAL_WSJ0MIX_URL", archive.as_uri())
    out = tmp_path / "data" / "2speakers"
    create_binaural_wsj0mix(wsj, out, GenerationOptions(
        freqs=["8k"], modes=["min"], splits=["tt"], num_workers=1, progress=False,
    ))
    repo = tmp_path / "data" / "Binaural-WSJ0Mix-main"
    assert (repo / "metadata" / "hrtf_meta_tt.csv").exists()
    assert len(list((out / "wav8k" / "min" / "tt" / "mix").iterdir())) == N_ROWS
    # Second run: the folder is there, nothing is downloaded (the URL now points nowhere).
    monkeypatch.setenv("BINAURAL_WSJ0MIX_URL", "http://127.0.0.1:9/none.zip")
    create_binaural_wsj0mix(wsj, out, GenerationOptions(
        freqs=["8k"], modes=["min"], splits=["tt"], num_workers=1, progress=False,
    ))
