"""Shared fixtures: the real data in ``../shared/data`` and small WSJ0-shaped trees."""
from __future__ import annotations

import csv
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"

if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

try:  # Tiny test tensors run faster on one thread than with intra-op threading on 2 cores.
    import torch

    torch.set_num_threads(1)
except ImportError:  # the data-side tests do not need torch
    pass


def _shared(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.exists():
        pytest.skip(f"{path} is absent: the real test data lives in ../shared (always there in CI)")
    return path


@pytest.fixture(scope="session")
def cipic_dir() -> Path:
    """The CIPIC HRIR database in the public WAV layout."""
    return _shared("CIPIC_hrtf_database/wav_database")


@pytest.fixture(scope="session")
def official_metadata_dir() -> Path:
    """The official Binaural-WSJ0Mix metadata files."""
    return _shared("binaural_wsj0mix_metadata")


@pytest.fixture(scope="session")
def speech_dir() -> Path:
    """Twelve real 16 kHz utterances of two talkers and one NIST SPHERE file."""
    return _shared("speech")


@pytest.fixture(scope="session")
def noise_dir() -> Path:
    return _shared("noise")


@pytest.fixture(scope="session")
def rir_dir() -> Path:
    return _shared("rirs")


def make_tiny_wsj_root(speech: Path, dest: Path) -> Path:
    """A WSJ0-shaped tree from the 12 real utterances: two si_tr_s talkers, one in each test set.

    The test talkers reuse the same recordings under other names (the corpus has two voices only);
    utterance ids follow WSJ0's 8-character, underscore-free spelling.
    """
    layout = {"si_tr_s": {"01a": "spk1", "02b": "spk2"}, "si_dt_05": {"22g": "spk1"}, "si_et_05": {"44c": "spk2"}}
    for folder, talkers in layout.items():
        for talker, voice in talkers.items():
            target = dest / "wsj0" / folder / talker
            target.mkdir(parents=True, exist_ok=True)
            for k in range(1, 7):
                shutil.copy(speech / f"{voice}_snt{k}.wav", target / f"{talker}c010{k}.wav")
    return dest


@pytest.fixture(scope="session")
def tiny_wsj_root(speech_dir: Path, tmp_path_factory) -> Path:
    """Folder with ``wsj0/{si_tr_s,si_dt_05,si_et_05}/<talker>/<utt>.wav`` (real speech, 16 kHz)."""
    return make_tiny_wsj_root(speech_dir, tmp_path_factory.mktemp("wsj_root"))


def demand_tree(noise_dir: Path, file_splits: Path, dest: Path) -> Path:
    """A DEMAND-shaped tree of the real noise recordings: ``<ENV>/ch01.wav`` and ``ch02.wav`` for every
    environment ``file_splits.csv`` names (the four recordings long enough for an utterance, reused;
    the second microphone is the recording played backwards: as long, and different)."""
    recordings = [noise_dir / f"noise{k}.wav" for k in (1, 3, 4, 5)]
    reversed_dir = dest / ".second_microphone"
    reversed_dir.mkdir(parents=True, exist_ok=True)
    for recording in recordings:
        data, rate = sf.read(str(recording), dtype="int16")
        sf.write(str(reversed_dir / recording.name), data[::-1], rate, subtype="PCM_16")
    with open(file_splits) as handle:
        environments = [row["Filename"].split("/")[1] for row in csv.DictReader(handle)]
    for i, environment in enumerate(environments):
        (dest / environment).mkdir(parents=True, exist_ok=True)
        recording = recordings[i % len(recordings)]
        os.symlink(recording, dest / environment / "ch01.wav")
        os.symlink(reversed_dir / recording.name, dest / environment / "ch02.wav")
    return dest


@pytest.fixture(scope="session")
def demand(noise_dir, official_metadata_dir, tmp_path_factory) -> Path:
    """``<ENV>/ch01.wav`` (and ch02) for every environment of the public file_splits.csv."""
    return demand_tree(noise_dir, official_metadata_dir / "file_splits.csv", tmp_path_factory.mktemp("demand"))


def official_subset(official_metadata_dir: Path, dest: Path, n_spks: int, split: str, rows: int) -> Path:
    """The first ``rows`` official mixtures of a split, in the official formats."""
    from metadata import metadata_paths

    src = metadata_paths(official_metadata_dir, n_spks, split)
    dst = metadata_paths(dest, n_spks, split)
    dest.mkdir(parents=True, exist_ok=True)
    with open(src["filenames"]) as handle:
        lines = handle.readlines()[: rows + 1]
    dst["filenames"].write_text("".join(lines))
    names = {line.split(",")[0] for line in lines[1:]}
    with open(src["hrtf"]) as handle:
        header, *body = handle.readlines()
    dst["hrtf"].write_text(header + "".join(line for line in body if line.split(",")[0] in names))
    with np.load(src["scaling"], allow_pickle=True) as npz:
        np.savez(dst["scaling"], **{key: npz[key][:rows] for key in npz.files})
    return dest


def wsj_tree_for(metadata_dir: Path, speech_dir: Path, dest: Path, n_spks: int, split: str) -> Path:
    """Put real 16 kHz speech at every path the metadata names."""
    from metadata import metadata_paths

    voices = sorted(speech_dir.glob("spk*_snt*.wav"))
    with open(metadata_paths(metadata_dir, n_spks, split)["filenames"]) as handle:
        rows = list(csv.DictReader(handle))
    for i, row in enumerate(rows):
        for k in range(n_spks):
            target = dest / row[f"s{k + 1}_path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(voices[(i * n_spks + k) % len(voices)], target)
    return dest
