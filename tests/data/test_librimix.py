"""Binaural LibriMix (create_binaural_librimix.py) on a tiny LibriSpeech-shaped tree of real speech.

LibriMix's mono source is computed here with the formula of its ``create_librimix_from_metadata.py``
(read float32, times the CSV's gain, ``resample_poly`` to the rate, cut to the shortest), never
with the generator's code.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import LIBRIMIX_CSV_SUBSETS, PROJECT_ROOT, catt_tree, librimix_tree
from scipy.signal import fftconvolve, resample_poly

from binaural.data.corpora import Corpus, LibriSpeechCorpus, OwnWSJ0Corpus, WSJ0Corpus
from binaural.data.hrtf import open_hrtf_set
from binaural.data.librimix import LibriMixClean, LibriMixNoise, LibriMixOptions
from binaural.data.record import GenerationOptions

ROWS = 2


@pytest.fixture(scope="module")
def tree(librimix_metadata_dir, speech_dir, noise_dir, tmp_path_factory) -> tuple[Path, Path, Path]:
    return librimix_tree(librimix_metadata_dir, speech_dir, noise_dir, tmp_path_factory.mktemp("librimix"), 2, ROWS)


def generate(tree, output: Path, *extra: str, splits=("test",), n_spks: int = 2) -> subprocess.CompletedProcess:
    metadata, librispeech, wham = tree
    command = [sys.executable, str(PROJECT_ROOT / "create_binaural_librimix.py"), "--librispeech_root", str(librispeech),
               "--output_dir", str(output), "--n_spks", str(n_spks), "--freqs", "8k", "--modes", "min", "--splits", *splits,
               "--metadata_dir", str(metadata), "--wham_root", str(wham), "--quiet", "--num_workers", "1", *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=240)


def ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr


def rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def librimix_mono(tree, row: dict[str, str], rate: int) -> list[np.ndarray]:
    """LibriMix's sources of one row (create_librimix_from_metadata.py: gain, resample_poly, min)."""
    _, librispeech, _ = tree
    sources = [sf.read(str(librispeech / row[f"source_{k}_path"]), dtype="float32")[0] * float(row[f"source_{k}_gain"])
               for k in (1, 2)]
    resampled = [resample_poly(s, rate, 16000) for s in sources]
    length = min(len(s) for s in resampled)
    return [s[:length] for s in resampled]


def librimix_noise(tree, row: dict[str, str], rate: int, length: int, channel: int) -> np.ndarray:
    """LibriMix's noise of one row from one WHAM! channel (read to the longest source, looped, gain, resample, cut)."""
    _, librispeech, wham = tree
    longest = max(sf.info(str(librispeech / row[f"source_{k}_path"])).frames for k in (1, 2))
    noise = sf.read(str(wham / row["noise_path"]), dtype="float32", stop=longest)[0][:, channel]
    window = np.hanning(16001)
    rising, falling = window[: len(window) // 2 + 1], window[len(window) // 2 :: -1]
    extended = noise
    while len(extended) < longest:
        extended = np.concatenate((extended[: len(extended) - len(falling)],
                                   extended[len(extended) - len(falling):] * falling + noise[: len(rising)] * rising,
                                   noise[len(rising):]))
    return resample_poly(extended[:longest] * float(row["noise_gain"]), rate, 16000)[:length]


def placed(mono: np.ndarray, hrir: np.ndarray) -> np.ndarray:
    """A dry source through a left/right HRIR ("same" convolution) at the dry source's energy per ear."""
    wet = np.stack([fftconvolve(mono.astype(np.float64), hrir[ear], mode="same") for ear in (0, 1)], axis=1)
    return wet * np.sqrt(2 * np.sum(mono.astype(np.float64) ** 2) / np.sum(wet**2))


def test_talkers_are_librimix_sources_through_the_hrir_the_metadata_names(tree, cipic_dir, tmp_path):
    metadata, _, _ = tree
    output = tmp_path / "out"
    ok(generate(tree, output, "--hrtf_dir", str(cipic_dir)))
    hrtfs = open_hrtf_set(cipic_dir)
    placement = {r["mixture_ID"]: r for r in rows(output / "metadata" / "binaural_libri2mix_test-clean.csv")}
    table = rows(metadata / "Libri2Mix" / "libri2mix_test-clean.csv")
    assert set(placement) == {r["mixture_ID"] for r in table}
    for row in table:
        place = placement[row["mixture_ID"]]
        folder = output / "wav8k" / "min" / "test"
        talkers = []
        for k, mono in enumerate(librimix_mono(tree, row, 8000), start=1):
            hrir = hrtfs.hrir(place["subject"], place[f"azimuth{k}"], int(place[f"elevation_index{k}"]), 8000)
            written, rate = sf.read(str(folder / f"s{k}" / f"{row['mixture_ID']}.wav"), dtype="float64")
            assert rate == 8000 and written.shape == (len(mono), 2)
            np.testing.assert_allclose(written, placed(mono, hrir), atol=2e-7)
            talkers.append(written)
        mix, _ = sf.read(str(folder / "mix_clean" / f"{row['mixture_ID']}.wav"), dtype="float64")
        np.testing.assert_allclose(mix, talkers[0] + talkers[1], atol=2e-7)


def test_two_runs_from_nothing_give_identical_files(tree, cipic_dir, tmp_path):
    for name in ("a", "b"):
        ok(generate(tree, tmp_path / name, "--hrtf_dir", str(cipic_dir), splits=("dev", "test")))
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len([f for f in files if f.suffix == ".wav"]) == 2 * 3 * ROWS
    for relative in files:
        if relative.name != "binaural_wsj0mix.json":  # the record names its own folder's sources
            assert (tmp_path / "a" / relative).read_bytes() == (tmp_path / "b" / relative).read_bytes(), relative
    record = json.loads((tmp_path / "a" / "binaural_wsj0mix.json").read_text())
    assert record["dataset"] == "Binaural Libri2Mix" and record["identity"]["corpus"] == "librimix"
    assert set(record["metadata_sha256"]) == {"dev", "test"}


@pytest.mark.parametrize("change", [["--seed", "7"], ["--hrtf_dir", "spherical"], ["--variant", "noise"]])
def test_a_rerun_with_other_options_is_refused_by_the_record(tree, cipic_dir, tmp_path, change):
    output = tmp_path / "out"
    ok(generate(tree, output, "--hrtf_dir", str(cipic_dir)))
    before = {p: p.read_bytes() for p in output.rglob("*") if p.is_file()}
    options = ["--hrtf_dir", str(cipic_dir)] + change if change[0] != "--hrtf_dir" else change
    result = generate(tree, output, *options)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "nothing was written" in result.stderr and str(output) in result.stderr
    assert {p: p.read_bytes() for p in output.rglob("*") if p.is_file()} == before


def test_a_changed_placement_file_is_refused_by_its_digest(tree, cipic_dir, tmp_path):
    output = tmp_path / "out"
    ok(generate(tree, output, "--hrtf_dir", str(cipic_dir)))
    placement = output / "metadata" / "binaural_libri2mix_test-clean.csv"
    placement.write_text(placement.read_text().replace(",", ", ", 1))
    result = generate(tree, output, "--hrtf_dir", str(cipic_dir))
    assert result.returncode == 1 and "metadata of split test" in result.stderr


def test_listeners_are_disjoint_across_splits(tree, cipic_dir, tmp_path):
    output = tmp_path / "out"
    ok(generate(tree, output, "--hrtf_dir", "spherical", splits=("train-100", "dev", "test")))
    listeners = {split: {r["subject"] for r in rows(output / "metadata" / f"binaural_libri2mix_{subset}.csv")}
                 for split, subset in LIBRIMIX_CSV_SUBSETS.items()}
    assert all(listeners.values())
    assert not listeners["train-100"] & listeners["dev"] and not listeners["train-100"] & listeners["test"]
    assert not listeners["dev"] & listeners["test"]


def test_noisy_variant_keeps_both_wham_channels(tree, cipic_dir, tmp_path):
    metadata, _, _ = tree
    output = tmp_path / "out"
    ok(generate(tree, output, "--hrtf_dir", str(cipic_dir), "--variant", "noise"))
    folder = output / "wav8k" / "min" / "test"
    for row in rows(metadata / "Libri2Mix" / "libri2mix_test-clean.csv"):
        name = f"{row['mixture_ID']}.wav"
        noise, _ = sf.read(str(folder / "noise" / name), dtype="float64")
        for ear in (0, 1):
            np.testing.assert_allclose(noise[:, ear], librimix_noise(tree, row, 8000, len(noise), ear), atol=1e-6)
        assert not np.allclose(noise[:, 0], noise[:, 1])
        s1, s2, both, single, clean = (sf.read(str(folder / sub / name), dtype="float64")[0]
                                       for sub in ("s1", "s2", "mix_both", "mix_single", "mix_clean"))
        np.testing.assert_allclose(both, s1 + s2 + noise, atol=1e-6)
        np.testing.assert_allclose(single, s1 + noise, atol=1e-6)
        np.testing.assert_allclose(clean, s1 + s2, atol=1e-6)


def test_first_channel_option_is_librimix_noise_in_both_ears(tree, cipic_dir, tmp_path):
    metadata, _, _ = tree
    output = tmp_path / "out"
    ok(generate(tree, output, "--hrtf_dir", str(cipic_dir), "--variant", "noise", "--wham_channel", "first"))
    for row in rows(metadata / "Libri2Mix" / "libri2mix_test-clean.csv"):
        noise, _ = sf.read(str(output / "wav8k" / "min" / "test" / "noise" / f"{row['mixture_ID']}.wav"), dtype="float32")
        expected = librimix_noise(tree, row, 8000, len(noise), 0).astype(np.float32)
        np.testing.assert_array_equal(noise[:, 0], expected)
        np.testing.assert_array_equal(noise[:, 1], expected)


def test_absent_split_metadata_is_one_line_naming_the_file(tree, cipic_dir, tmp_path):
    result = generate(tree, tmp_path / "out", "--hrtf_dir", str(cipic_dir), splits=("train-360",))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "libri2mix_train-clean-360.csv: not found" in result.stderr and "--splits" in result.stderr
    assert not (tmp_path / "out").exists()  # nothing claimed: a corrected rerun (any seed) may start


def test_the_corpus_follows_from_the_options():
    assert type(Corpus.of(GenerationOptions())) is WSJ0Corpus
    assert type(Corpus.of(GenerationOptions(own_metadata=True))) is OwnWSJ0Corpus
    librimix = LibriMixOptions(variant=LibriMixNoise(), train_split="train-360")
    corpus = Corpus.of(librimix)
    assert type(corpus) is LibriSpeechCorpus and corpus.root_key == "librispeech_root"
    assert corpus.splits(librimix) == ("train-360", "dev", "test")
    assert corpus.manifest_name(3, "test") == "binaural_libri3mix_test.csv"
    assert WSJ0Corpus().manifest_name(2, "tt") == "binaural_wsj0-2mix_tt.csv"
    assert LibriMixClean().folders(3) == ("s1", "s2", "s3", "mix_clean")
    assert LibriMixNoise().folders(2) == ("s1", "s2", "noise", "mix_clean", "mix_single", "mix_both")
    # Dynamic mixing keeps WHAM!'s two ears unless the data has LibriMix's one channel in both.
    assert LibriMixNoise().dynamic_mixing_options() == {"diotic_noise": False}
    assert LibriMixNoise("first").dynamic_mixing_options() == {"diotic_noise": True}


def test_storage_estimate_is_the_bytes_written(tree, cipic_dir, tmp_path):
    """The README's disk figures come from storage_bytes: it must equal what a build writes."""
    from binaural.data.librimix import storage_bytes

    metadata, librispeech, _ = tree
    lengths = tmp_path / "metadata"
    (lengths / "LibriSpeech").mkdir(parents=True)
    (lengths / "Libri2Mix").symlink_to(metadata / "Libri2Mix")
    flacs = sorted(librispeech.rglob("*.flac"))
    (lengths / "LibriSpeech" / "all.csv").write_text("origin_path,length\n" + "".join(
        f"{p.relative_to(librispeech).as_posix()},{sf.info(str(p)).frames}\n" for p in flacs))
    for variant, mode in ((LibriMixClean(), "min"), (LibriMixNoise(), "max")):
        output = tmp_path / f"{variant.name}-{mode}"
        ok(generate(tree, output, "--hrtf_dir", str(cipic_dir), "--variant", variant.name, "--modes", mode))
        written = sum(p.stat().st_size for p in (output / "wav8k" / mode / "test").rglob("*.wav"))
        assert storage_bytes(lengths, 2, "test", "8k", mode, variant) == written


def test_dynamic_mixing_draws_librispeech_talkers_and_training_listeners(tree, cipic_dir, tmp_path):
    """A LibriMix experiment's dynamic mixing: LibriSpeech train-clean-100 speakers (their
    <speaker>/<chapter>/<id>.flac), placed by the training listeners of the placement draw only."""
    from binaural.data.dynamic_mixing import DynamicMixingDataset
    from binaural.data.metadata import split_subjects

    _, librispeech, _ = tree
    options = LibriMixOptions(hrtf_dir=cipic_dir, seed=3)
    dataset = DynamicMixingDataset(
        librispeech, cipic_dir, 2, 8000, training_signal_len=4000, epoch_size=2, talker_folders=["train-clean-100"],
        hrtf_split_seed=3, cache_dir=tmp_path / "cache", **Corpus.of(options).dynamic_mixing_options(options),
    )
    speakers = {p.parts[-3] for p in (librispeech / "train-clean-100").glob("*/*/*.flac")}
    assert set(dataset.planner.talker_names) == speakers
    assert set(dataset.placer.subjects) == set(split_subjects(open_hrtf_set(cipic_dir).subjects(), 3)["tr"])
    item = dataset[0]
    assert item["mix_sig"].shape == (4000, 2) and item["s1_sig"].shape == (4000, 2)


def zipped(folder: Path, top: str, destination: Path) -> Path:
    """``folder``'s files in a zip under ``top/`` (a repository or WHAM!-style archive)."""
    import zipfile

    with zipfile.ZipFile(destination, "w") as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, f"{top}/{path.relative_to(folder).as_posix()}")
    return destination


def test_absent_metadata_and_wham_are_downloaded_once(tree, cipic_dir, tmp_path, monkeypatch):
    from dataclasses import replace

    from binaural.data import sources
    from binaural.data.librimix import create_binaural_librimix

    metadata, librispeech, wham = tree
    import shutil

    for folder in ("Libri2Mix", "Libri3Mix", "LibriSpeech"):  # the repository's metadata/ layout
        shutil.copytree(metadata / "Libri2Mix", tmp_path / "repo" / "metadata" / folder)
    repo_zip = zipped(tmp_path / "repo", "LibriMix-master", tmp_path / "master.zip")
    wham_zip = zipped(wham, "wham_noise", tmp_path / "wham_noise.zip")  # the tree's tt/, cv/ and tr/ noises
    monkeypatch.setattr(sources, "LIBRIMIX_METADATA_ARCHIVE", replace(sources.LIBRIMIX_METADATA_ARCHIVE, url=repo_zip.as_uri()))
    monkeypatch.setattr(sources, "WHAM_NOISE_ARCHIVE", replace(sources.WHAM_NOISE_ARCHIVE, url=wham_zip.as_uri()))
    downloads = tmp_path / "downloads"
    options = LibriMixOptions(variant=LibriMixNoise(), splits=["test"], hrtf_dir=cipic_dir, download_dir=downloads,
                              num_workers=1, progress=False)
    assert create_binaural_librimix(librispeech, tmp_path / "out", options) == {"test": ROWS}
    assert (downloads / "LibriMix-master" / "metadata" / "Libri2Mix" / "libri2mix_test-clean.csv").is_file()
    assert sorted(p.name for p in (downloads / "wham_noise").iterdir()) == ["cv", "tr", "tt"]
    repo_zip.unlink(), wham_zip.unlink()  # a second download would fail now
    for mix in (tmp_path / "out" / "wav8k" / "min" / "test" / "mix_both").iterdir():
        mix.unlink()
    assert create_binaural_librimix(librispeech, tmp_path / "out", options) == {"test": ROWS}


def test_reverberant_talkers_are_librimix_sources_through_the_named_brirs(tree, rir_dir, tmp_path):
    """--variant reverb: each talker is LibriMix's mono source through the room response (each ear its
    own BRIR) the placement names; the rooms' reverb times are disjoint across splits."""
    from binaural.data.mixing import spatialize_reverb
    from binaural.data.rooms import BRIR_AZIMUTHS, PUBLIC_REVERB_TIMES, CattBRIRSet

    metadata, _, _ = tree
    pairs = [(rt, str(az)) for times in PUBLIC_REVERB_TIMES.values() for rt in times for az in BRIR_AZIMUTHS]
    brirs = catt_tree(rir_dir, tmp_path / "brirs", pairs)
    output = tmp_path / "out"
    ok(generate(tree, output, "--variant", "reverb", "--brir_dir", str(brirs), splits=("dev", "test")))
    rooms = {}
    for split in ("dev", "test"):
        subset = LIBRIMIX_CSV_SUBSETS[split]
        placement = {r["mixture_ID"]: r for r in rows(output / "metadata" / f"binaural_reverb_libri2mix_{subset}.csv")}
        rooms[split] = {r["reverb_time"] for r in placement.values()}
        for row in rows(metadata / "Libri2Mix" / f"libri2mix_{subset}.csv"):
            place = placement[row["mixture_ID"]]
            for k, mono in enumerate(librimix_mono(tree, row, 8000), start=1):
                brir = CattBRIRSet(brirs).brir(place["reverb_time"], place[f"azimuth{k}"], 8000)
                written, _ = sf.read(str(output / "wav8k" / "min" / split / f"s{k}" / f"{row['mixture_ID']}.wav"),
                                     dtype="float64")
                np.testing.assert_allclose(written, spatialize_reverb(mono.astype(np.float64), brir, "per_ear"),
                                           atol=2e-7)
    assert rooms["dev"] <= set(PUBLIC_REVERB_TIMES["cv"]) and rooms["test"] <= set(PUBLIC_REVERB_TIMES["tt"])
    assert json.loads((output / "binaural_wsj0mix.json").read_text())["identity"]["variant"] == "reverb"


def test_three_talkers(librimix_metadata_dir, speech_dir, noise_dir, cipic_dir, tmp_path):
    tree3 = librimix_tree(librimix_metadata_dir, speech_dir, noise_dir, tmp_path / "in", 3, 1)
    metadata, _, _ = tree3
    output = tmp_path / "out"
    ok(generate(tree3, output, "--hrtf_dir", str(cipic_dir), n_spks=3))
    (row,) = rows(metadata / "Libri3Mix" / "libri3mix_test-clean.csv")
    folder = output / "wav8k" / "min" / "test"
    talkers = [sf.read(str(folder / f"s{k}" / f"{row['mixture_ID']}.wav"))[0] for k in (1, 2, 3)]
    mix, _ = sf.read(str(folder / "mix_clean" / f"{row['mixture_ID']}.wav"))
    np.testing.assert_allclose(mix, sum(talkers), atol=2e-7)
    listeners = {r["subject"] for r in rows(output / "metadata" / "binaural_libri3mix_test-clean.csv")}
    assert len(listeners) == 1


def test_an_absent_librispeech_subset_is_downloaded_then_used(tree, cipic_dir, tmp_path, monkeypatch):
    """--librispeech_root without test-clean/: the subset's archive (size and MD5 checked) is fetched into it."""
    import hashlib
    import tarfile
    from dataclasses import replace

    from binaural.data import sources
    from binaural.data.librimix import create_binaural_librimix

    metadata, librispeech, _ = tree
    archive_path = tmp_path / "test-clean.tar.gz"
    with tarfile.open(archive_path, "w:gz") as archive:
        archive.add(librispeech / "test-clean", "LibriSpeech/test-clean")
    data = archive_path.read_bytes()
    published = sources.librispeech_archive

    def local(subset):
        return replace(published(subset), url=archive_path.as_uri(), size=len(data), md5=hashlib.md5(data).hexdigest())

    monkeypatch.setattr(sources, "librispeech_archive", local)
    root = tmp_path / "LibriSpeech"
    options = LibriMixOptions(splits=["test"], metadata_dir=metadata, hrtf_dir=cipic_dir, num_workers=1, progress=False)
    assert create_binaural_librimix(root, tmp_path / "out", options) == {"test": ROWS}
    assert sorted(p.relative_to(root) for p in root.rglob("*.flac")) == sorted(
        p.relative_to(librispeech) for p in (librispeech / "test-clean").rglob("*.flac"))
