"""Untrusted and broken input on the data side: crafted metadata, crafted npz files, truncated
audio, archives that unpack to more than they should, and full disks.

Each case as the issue states it, through the code a user runs (the generator's command line in a
subprocess where the scenario is a user's), and each checks that nothing is written outside the
folder the user named and that the error is one line naming the file.
"""
from __future__ import annotations

import csv
import errno
import subprocess
import sys
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
from conftest import PROJECT_ROOT, CodeRunningPayload, official_subset, wsj_tree_for

from binaural.io import atomic
from binaural.io import download
from binaural.io.atomic import WriteError, atomic_bytes, inside
from binaural.io.audio import AudioFileError, check_readable, read_float, read_int16_first_channel
from binaural.io.download import DownloadError, RemoteArchive, fetch_archive
from binaural.data.metadata import MetadataError, load_split, metadata_paths, read_npz


def run_generator(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PROJECT_ROOT / "create_binaural_wsj0mix.py"), *args, "--quiet"],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)


def one_line_error(result: subprocess.CompletedProcess, *needles: str) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


@pytest.fixture
def official_tt(official_metadata_dir, speech_dir, tmp_path) -> tuple[Path, Path]:
    """Two official tt rows (metadata in the official formats) and real speech at their paths."""
    metadata = official_subset(official_metadata_dir, tmp_path / "metadata", 2, "tt", 2)
    return metadata, wsj_tree_for(metadata, speech_dir, tmp_path / "wsj", 2, "tt")


def rewrite_csv(path: Path, row: int, column: str, value: str) -> None:
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[row][column] = value
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


# ==================================================================================================
# Names from metadata: no write outside the output folder
# ==================================================================================================


@pytest.mark.parametrize(
    "kind, column, value",
    [
        ("filenames", "output_filename", "x/../../../tmp/ESCAPED.wav"),  # the name
        ("filenames", "output_filename", "/tmp/ESCAPED.wav"),
        ("hrtf", "subject", "../../../ESCAPED"),
        ("hrtf", "azimuth1", "..\\..\\ESCAPED"),
        ("filenames", "s1_path", "../../../etc/passwd"),  # a read outside the corpus
    ],
)
def test_a_crafted_name_in_the_metadata_is_refused_before_anything_is_written(
    official_tt, cipic_dir, tmp_path, kind, column, value
):
    metadata, wsj = official_tt
    path = metadata_paths(metadata, 2, "tt")[kind]
    rewrite_csv(path, 0, column, value)
    if column == "output_filename":  # the files stay consistent: the same mixture in hrtf_meta
        rewrite_csv(metadata_paths(metadata, 2, "tt")["hrtf"], 0, "utterance_id", value)
    out = tmp_path / "out"
    before = files_under(tmp_path) - files_under(out)
    result = run_generator("--wsj_root", str(wsj), "--output_dir", str(out), "--splits", "tt", "--freqs", "8k",
                           "--modes", "min", "--metadata_dir", str(metadata), "--hrtf_dir", str(cipic_dir),
                           "--num_workers", "1")
    one_line_error(result, str(path), "row 2", f"column {column}", "Nothing was written")
    assert not out.exists() and files_under(tmp_path) == before
    assert not (Path("/tmp") / "ESCAPED.wav").exists() and not list(tmp_path.parent.glob("ESCAPED*"))


def test_writes_outside_the_tree_are_refused_even_through_a_link(tmp_path):
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (root / "wav8k").symlink_to(elsewhere)  # a part folder that leads out of the tree
    assert inside(root, root / "a" / "b.wav") == root / "a" / "b.wav"
    for path in (root / "wav8k" / "x.wav", root / ".." / "x.wav", Path("/tmp/x.wav")):
        with pytest.raises(WriteError, match="outside the output folder"):
            inside(root, path)


# ==================================================================================================
# No pickle
# ==================================================================================================


def test_a_crafted_npz_runs_no_code(official_tt, tmp_path):
    metadata, _ = official_tt
    scaling = metadata_paths(metadata, 2, "tt")["scaling"]
    marker = tmp_path / "code_ran"
    with np.load(scaling, allow_pickle=True) as npz:  # the real file: trusted test data
        arrays = {key: npz[key] for key in npz.files}
    crafted = np.empty((2, 2), dtype=object)
    crafted[:] = CodeRunningPayload(marker)
    arrays["scaling_wsjmix_8k_min"] = crafted
    np.savez(scaling, **arrays)
    with pytest.raises(MetadataError, match=rf"{scaling.name}: unreadable numeric arrays"):
        load_split(metadata, 2, "tt", ["8k"], ["min"])
    assert not marker.exists()
    # The official object array of utterance ids is never read: the CSVs carry the same ids.
    assert "utterance_id" in np.load(scaling, allow_pickle=False).files
    assert set(read_npz(scaling, ["scaling_wsjmix_16k_max"])) == {"scaling_wsjmix_16k_max"}


def test_no_source_file_loads_with_pickle():
    for path in PROJECT_ROOT.glob("*.py"):
        text = path.read_text()
        assert "allow_pickle=True" not in text and "weights_only=False" not in text, path


# ==================================================================================================
# Truncated audio
# ==================================================================================================


def truncated_copy(source: Path, dest: Path, n_bytes: int = 2000) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(source.read_bytes()[:n_bytes])
    return dest


def test_a_truncated_wav_is_refused_by_every_reader(speech_dir, tmp_path):
    source = sorted(speech_dir.glob("spk1_*.wav"))[0]
    cut = truncated_copy(source, tmp_path / "cut.wav")
    promised, holds = sf.info(str(source)).frames, sf.info(str(cut)).frames
    assert holds < promised  # libsndfile reads it as a shorter recording, without a word
    for read in (check_readable, read_int16_first_channel, read_float):
        with pytest.raises(AudioFileError, match=rf"cut\.wav: truncated: its header announces {promised} samples"):
            read(cut)
    assert check_readable(source).frames == promised  # whole files are unaffected


def test_the_generator_refuses_a_truncated_source_before_writing(official_tt, cipic_dir, tmp_path):
    """The issue: a source cut to 2000 bytes became a 489-sample mixture instead of 22960."""
    metadata, wsj = official_tt
    victim = wsj / next(csv.DictReader(open(metadata_paths(metadata, 2, "tt")["filenames"])))["s1_path"]
    truncated_copy(victim, victim)
    out = tmp_path / "out"
    result = run_generator("--wsj_root", str(wsj), "--output_dir", str(out), "--splits", "tt", "--metadata_dir",
                           str(metadata), "--hrtf_dir", str(cipic_dir), "--num_workers", "1")
    one_line_error(result, str(victim), "truncated", "Nothing was written")
    assert not out.exists()


def test_training_data_and_metrics_refuse_a_truncated_file(tmp_path):
    from binaural.training.data import read_binaural
    from metrics import main as metrics_main

    stereo = np.random.default_rng(0).uniform(-0.5, 0.5, (8000, 2))
    whole = tmp_path / "whole.wav"
    sf.write(str(whole), stereo, 8000, subtype="PCM_16")
    cut = truncated_copy(whole, tmp_path / "data" / "mix" / "utt.wav", 4000)
    with pytest.raises(AudioFileError, match="truncated"):
        read_binaural(str(cut), 8000)
    assert read_binaural(str(whole), 8000).shape == (8000, 2)
    for sub in ("s1", "s2"):
        (tmp_path / "data" / sub).mkdir()
        sf.write(str(tmp_path / "data" / sub / "utt.wav"), stereo, 8000, subtype="PCM_16")
    assert metrics_main(["--mix_dir", str(tmp_path / "data" / "mix"), "--ref_dir", str(tmp_path / "data"),
                         "--est_dir", str(tmp_path / "data"), "--out", str(tmp_path / "r.csv")]) == 2
    assert not (tmp_path / "r.csv").exists()


# ==================================================================================================
# Downloads and full disks
# ==================================================================================================


def test_an_archive_that_unpacks_to_more_than_it_should_is_refused(tmp_path):
    """The issue: a 306 KB zip expanding to 300 MB filled the disk with a raw OSError."""
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("top/ch01.wav", b"\0" * (40 << 20))  # 40 MB of zeros: a few tens of KB zipped
    assert bomb.stat().st_size < (1 << 20)
    dest = tmp_path / "dest"
    archive = RemoteArchive(url=bomb.as_uri(), top_folder="top", required=("ch01.wav",))
    with pytest.raises(DownloadError, match=r"would unpack to 41\.9 MB, more than the .* MB this archive should hold"):
        fetch_archive(archive, dest, progress=False)
    assert not (dest / "top").exists() and not any(p.name.endswith(".extracting") for p in dest.iterdir())
    with pytest.raises(DownloadError, match="more than the 1.0 MB"):
        fetch_archive(RemoteArchive(bomb.as_uri(), "top", ("ch01.wav",), max_unpacked_bytes=10**6), dest, progress=False)


def test_an_archive_larger_than_the_free_space_is_refused(tmp_path, monkeypatch):
    source = tmp_path / "a.zip"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("top/ch01.wav", b"x" * 100_000)
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: SimpleNamespace(total=10**9, used=0, free=50_000))
    with pytest.raises(DownloadError, match=r"dest: not enough free space to unpack top\.zip \(100 kB needed, 50 kB free\)"):
        fetch_archive(RemoteArchive(source.as_uri(), "top", ("ch01.wav",)), tmp_path / "dest", progress=False)


def test_a_full_disk_names_the_file_that_could_not_be_written(tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fdopen", disk_full)
    target = tmp_path / "folder" / "file.wav"
    with pytest.raises(WriteError, match=rf"{target}: cannot be written: the disk is full"):
        atomic_bytes(target, b"data")
    assert list(target.parent.iterdir()) == []  # no temporary file left


FULL_DISK_AFTER_THREE_FILES = """
import errno, sys
from binaural.io import atomic
created = atomic._create_partial
calls = []
def fill_up(path):
    calls.append(path)
    if len(calls) > 3:
        raise OSError(errno.ENOSPC, "No space left on device")
    return created(path)
atomic._create_partial = fill_up
import create_binaural_wsj0mix
sys.exit(create_binaural_wsj0mix.main(sys.argv[1:]))
"""


def test_a_generation_on_a_full_disk_names_the_file(tiny_wsj_root, tmp_path):
    out = tmp_path / "data"
    result = subprocess.run(
        [sys.executable, "-c", FULL_DISK_AFTER_THREE_FILES, "--wsj_root", str(tiny_wsj_root), "--output_dir", str(out),
         "--own_metadata", "--hrtf_dir", "spherical", "--freqs", "8k", "--modes", "min", "--n_mixtures", "2", "1", "1",
         "--num_workers", "1", "--quiet"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )
    line = one_line_error(result, "cannot be written: the disk is full")
    assert line.startswith(f"error: {out}")  # the file, in the folder the user named
