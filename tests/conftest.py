"""Shared fixtures: the real data in ``../shared/data`` and small WSJ0-shaped trees."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

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
    import shutil

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


def sigkill_when_marked(command: list[str], marker: Path, timeout: float = 180) -> None:
    """Run ``command`` (from the project root) and SIGKILL it as soon as it creates ``marker``.

    The command signals the moment to kill (e.g. halfway through writing a checkpoint) by
    creating ``marker``; the test fails if it exits or takes ``timeout`` seconds before that.
    """
    import os
    import signal
    import subprocess
    import time

    environment = os.environ | {"PYTHONPATH": str(PROJECT_ROOT), "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=environment, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + timeout
        while not marker.exists():
            assert process.poll() is None, f"{command[:3]} ended before the kill: {process.stderr.read()[-3000:]}"
            assert time.monotonic() < deadline, f"{marker} never appeared"
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(timeout=60)
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
