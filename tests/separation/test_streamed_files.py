"""separate.py streams a file to its estimates: equal to whole-file processing, never the whole input in memory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import PROJECT_ROOT, make_experiment

from binaural.separation.separator import BinauralSeparator


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    return make_experiment(tmp_path_factory.mktemp("experiment"), "convtasnet-parallel.yaml", "hyperparams.yaml")[0]


@pytest.fixture(scope="module")
def causal_experiment(tmp_path_factory) -> Path:
    return make_experiment(tmp_path_factory.mktemp("causal"), "convtasnet-parallel-causal.yaml", "hyperparams.yaml")[0]


def recording(path: Path, seconds: float, rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(rate)
    sf.write(str(path), 0.1 * rng.standard_normal((round(seconds * rate), 2)), rate, subtype="FLOAT")
    return path


@pytest.mark.parametrize("rate", [8000, 44100])
def test_a_file_of_several_blocks_equals_whole_file_processing(experiment, tmp_path, rate) -> None:
    """Through the command line with a small --block_seconds (six blocks), against the whole file in memory."""
    mix = recording(tmp_path / "in" / "long.wav", 2.9, rate)
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "separate.py"), "--experiment", str(experiment), "--input", str(mix),
         "--output_dir", str(tmp_path / "out"), "--block_seconds", "0.5"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    separator = BinauralSeparator.from_experiment(experiment, block_seconds=0.5)
    whole = separator.separate_array(sf.read(str(mix), dtype="float32")[0], rate)  # [time, 2, 2]
    for k in range(2):
        estimate, estimate_rate = sf.read(str(tmp_path / "out" / f"long_s{k + 1}.wav"), dtype="float32")
        assert estimate_rate == rate and estimate.shape == whole[..., k].shape
        np.testing.assert_allclose(estimate, whole[..., k], atol=1e-6)


def test_the_input_is_never_read_whole(experiment, causal_experiment, tmp_path, monkeypatch) -> None:
    """The offline and streaming paths read the file a block at a time (soundfile.read would load it whole)."""
    mix = recording(tmp_path / "in" / "x.wav", 1.5, 16000)

    def whole_read(*args, **kwargs):
        raise AssertionError("the whole file was read into memory")

    monkeypatch.setattr(sf, "read", whole_read)
    offline = BinauralSeparator.from_experiment(experiment, block_seconds=0.5)
    assert [p.name for p in offline.separate_file(mix, tmp_path / "out")] == ["x_s1.wav", "x_s2.wav"]
    streaming = BinauralSeparator.from_experiment(causal_experiment)
    written = streaming.separate_file(mix, tmp_path / "stream", streaming=True, chunk_ms=8)
    monkeypatch.undo()
    expected = streaming.separate_array(sf.read(str(mix), dtype="float32")[0], 16000, streaming=True, chunk_ms=8)
    for k, path in enumerate(written):
        np.testing.assert_allclose(sf.read(str(path), dtype="float32")[0], expected[..., k], atol=1e-6)


def test_pcm_output_streams_with_one_scale_per_talker(experiment, tmp_path, capsys) -> None:
    mix = recording(tmp_path / "in" / "loud.wav", 1.2, 8000)
    data, _ = sf.read(str(mix), dtype="float32")
    sf.write(str(mix), data * 40, 8000, subtype="FLOAT")  # estimates far above full scale
    separator = BinauralSeparator.from_experiment(experiment, block_seconds=0.5)
    written = separator.separate_file(mix, tmp_path / "out", subtype="PCM_16")
    whole = separator.separate_array(data * 40, 8000)
    for k, path in enumerate(written):
        estimate, _ = sf.read(str(path), dtype="float32")
        assert sf.info(str(path)).subtype == "PCM_16"
        peak = float(np.abs(whole[..., k]).max())
        scale = min(1.0, 0.999 / peak)
        np.testing.assert_allclose(estimate, whole[..., k] * scale, atol=2 / 32768)
    assert "above full scale for PCM_16" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["loud_s1.wav", "loud_s2.wav"]  # no scratch left


def test_memory_benchmark_runs_small_and_prints_its_json() -> None:
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "benchmarks" / "bench_separate_memory.py"), "--minutes", "0.05", "0.1"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures["peak_rss_mb"]) == {"0.05", "0.1"}
    assert all(value > 0 for value in figures["peak_rss_mb"].values())
