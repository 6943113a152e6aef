"""Hostile or unlucky use of the command lines (issue 21): every mistake is one line, nothing is lost.

Each case is typed as a user would type it; a refusal is a non-zero exit, one error line naming the
file or option, no traceback, and the user's files keep their bytes.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import PROJECT_ROOT, make_experiment

RATE = 8000


def write(path: Path, samples: np.ndarray, rate: int = RATE, subtype: str = "FLOAT") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, rate, subtype=subtype)
    return path


def noise(n: int, channels: int = 2, seed: int = 0) -> np.ndarray:
    return 0.1 * np.random.default_rng(seed).standard_normal((n, channels))


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def command(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PROJECT_ROOT / script), *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=timeout, env=os.environ | {"OMP_NUM_THREADS": "1"})


def refused(result: subprocess.CompletedProcess, prefix: str, *words: str) -> str:
    """The one error line of a refusal (non-zero exit, no traceback), checked to hold ``words``."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert result.returncode != 0, output
    errors = [line for line in result.stderr.splitlines() if line.startswith(prefix)]
    assert len(errors) == 1, result.stderr
    for word in words:
        assert word in errors[0], (word, errors[0])
    return errors[0]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    return make_experiment(tmp_path_factory.mktemp("experiment"), "convtasnet-parallel.yaml", "hyperparams.yaml")[0]


# ==================================================================================================
# separate.py: an output never replaces an input
# ==================================================================================================


@pytest.mark.parametrize("output", ["F", "F/separated", "F/../F"])
def test_separate_refuses_an_output_folder_in_the_input_folder(experiment, tmp_path, output) -> None:
    """The issue's case: F holds x.wav and the user's own x_s1.wav; ``--input F --output_dir F``."""
    folder = tmp_path / "F"
    write(folder / "x.wav", noise(4000))
    write(folder / "x_s1.wav", noise(4000, seed=1))  # the user's own recording, not an estimate
    before = snapshot(tmp_path)
    result = command("separate.py", "--experiment", str(experiment), "--input", str(folder),
                     "--output_dir", str(tmp_path / output))
    refused(result, "separate.py: error:", "--output_dir", str(folder), "choose another --output_dir")
    assert snapshot(tmp_path) == before


def test_separate_never_writes_over_an_input_through_a_link(experiment, tmp_path) -> None:
    """An output name that is (a link to) a file given as input is refused before any work."""
    folder, out = tmp_path / "F", tmp_path / "out"
    write(folder / "x.wav", noise(4000))
    out.mkdir()
    (out / "x_s2.wav").symlink_to(folder / "x.wav")
    before = snapshot(tmp_path)
    result = command("separate.py", "--experiment", str(experiment), "--input", str(folder), "--output_dir", str(out))
    refused(result, "separate.py: error:", str(folder / "x.wav"), "--output_dir")
    assert snapshot(tmp_path) == before


def test_separate_into_a_sibling_folder_still_works(experiment, tmp_path) -> None:
    folder, out = tmp_path / "F", tmp_path / "F_separated"
    write(folder / "x.wav", noise(4000))
    write(folder / "x_s1.wav", noise(4000, seed=1))
    before = snapshot(folder)
    result = command("separate.py", "--experiment", str(experiment), "--input", str(folder), "--output_dir", str(out))
    assert result.returncode == 0, result.stderr
    assert snapshot(folder) == before
    assert sorted(p.name for p in out.iterdir()) == ["x_s1.wav", "x_s1_s1.wav", "x_s1_s2.wav", "x_s2.wav"]
