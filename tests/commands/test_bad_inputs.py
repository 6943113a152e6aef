"""Bad input files through every command line, as one table.

Each kind of bad file (missing, empty, mono, 3-channel, wrong rate, truncated header, truncated
data, zero-length, NaN/inf, silent, unicode name) goes where a user would give it: the input of
``separate.py``, an estimate for ``metrics.py``, a WSJ0 utterance for ``create_binaural_wsj0mix.py``
and a test mixture of ``train.py --test_only``. The table says, per command line, whether the file
must be refused or used; a refusal is a non-zero exit, one error line naming the file, no
traceback; either way nothing is written outside the output folder and no earlier output is lost.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf
from conftest import PROJECT_ROOT, make_experiment, official_subset, wsj_tree_for

RATE = 8000
REFUSED, USED = "refused", "used"


def write(path: Path, samples: np.ndarray, rate: int = RATE, subtype: str = "FLOAT") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, rate, subtype=subtype)
    return path


def cut(path: Path, n_bytes: int) -> Path:
    path.write_bytes(path.read_bytes()[:n_bytes])
    return path


def noise(n: int, channels: int, seed: int = 0) -> np.ndarray:
    return 0.1 * np.random.default_rng(seed).standard_normal((n, channels))


#: kind -> how to make it at ``path`` from a good ``[time, channels]`` signal at ``rate`` (returns the path used).
MAKERS: dict[str, Callable[[Path, np.ndarray, int, str], Path]] = {
    "missing": lambda p, x, r, t: (p.parent.mkdir(parents=True, exist_ok=True), p)[-1],  # its folder exists
    "empty": lambda p, x, r, t: (p.parent.mkdir(parents=True, exist_ok=True), p.write_bytes(b""), p)[-1],
    "mono": lambda p, x, r, t: write(p, x[:, :1], r, t),
    "3-channel": lambda p, x, r, t: write(p, np.concatenate([x, x[:, :1]], axis=1), r, t),
    "wrong rate": lambda p, x, r, t: write(p, x, 11025, t),
    "truncated header": lambda p, x, r, t: cut(write(p, x, r, t), 30),
    "truncated data": lambda p, x, r, t: cut(write(p, x, r, t), 2000),
    "zero-length": lambda p, x, r, t: write(p, x[:0], r, t),
    "NaN/inf": lambda p, x, r, t: write(p, np.where(np.arange(len(x))[:, None] == 5, np.nan, x), r, "FLOAT"),
    "silent": lambda p, x, r, t: write(p, np.zeros_like(x), r, t),
    "unicode name": lambda p, x, r, t: write(p.with_name("ünïcødé 混合 " + p.name), x, r, t),
}
#: What each command line must do with each kind (n/a: the kind cannot be given to it).
EXPECTED = {
    #                    separate  metrics  generator  train
    "missing":          (REFUSED, REFUSED, REFUSED, None),
    "empty":            (REFUSED, REFUSED, REFUSED, REFUSED),
    "mono":             (REFUSED, REFUSED, USED, REFUSED),      # an utterance is mono; a binaural mixture is not
    "3-channel":        (REFUSED, REFUSED, USED, REFUSED),      # the public scripts read an utterance's channel 0
    "wrong rate":       (USED, REFUSED, REFUSED, REFUSED),      # separate.py resamples; the dataset has one rate
    "truncated header": (REFUSED, REFUSED, REFUSED, REFUSED),
    "truncated data":   (REFUSED, REFUSED, REFUSED, REFUSED),
    "zero-length":      (REFUSED, REFUSED, REFUSED, REFUSED),
    "NaN/inf":          (REFUSED, REFUSED, REFUSED, REFUSED),
    "silent":           (USED, USED, USED, USED),
    "unicode name":     (USED, USED, None, None),
}
KINDS = list(EXPECTED)


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(PROJECT_ROOT / script), *args], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=timeout, env=os.environ | {"OMP_NUM_THREADS": "1"})


def check(result: subprocess.CompletedProcess, expected: str, bad: Path, prefix: str) -> None:
    """A refusal: non-zero exit, one error line naming the file, no traceback; a use: exit 0."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    if expected == USED:
        assert result.returncode == 0, output
        return
    assert result.returncode != 0, output
    errors = [line for line in result.stderr.splitlines() if line.startswith(prefix)]
    assert len(errors) == 1, result.stderr
    assert str(bad) in errors[0] or bad.name in errors[0], (bad, errors[0])


# ==================================================================================================
# separate.py: the mixture to separate
# ==================================================================================================


@pytest.fixture(scope="module")
def experiment(tmp_path_factory) -> Path:
    return make_experiment(tmp_path_factory.mktemp("experiment"), "convtasnet-parallel.yaml", "hyperparams.yaml")[0]


@pytest.mark.parametrize("kind", KINDS)
def test_separate(kind, experiment, tmp_path):
    inputs, out = tmp_path / "in", tmp_path / "out"
    bad = MAKERS[kind](inputs / "mix.wav", noise(4000, 2), RATE, "FLOAT")
    earlier = write(out / "earlier_s1.wav", noise(800, 2, 1))  # a user's earlier result
    around = files(tmp_path)
    result = run("separate.py", "--experiment", str(experiment), "--input", str(bad), "--output_dir", str(out))
    check(result, EXPECTED[kind][0], bad, "separate.py: error:")
    after = files(tmp_path)
    assert after[str(earlier.relative_to(tmp_path))] == around[str(earlier.relative_to(tmp_path))]
    new = set(after) - set(around)
    assert all(name.startswith("out/") for name in new), new  # nothing outside the output folder
    if EXPECTED[kind][0] == USED:
        assert {f"out/{bad.stem}_s1.wav", f"out/{bad.stem}_s2.wav"} <= new


# ==================================================================================================
# metrics.py: an estimate to score
# ==================================================================================================


@pytest.mark.parametrize("kind", KINDS)
def test_metrics(kind, tmp_path):
    data, estimates = tmp_path / "data", tmp_path / "estimates"
    name = "utt.wav"
    sources = [noise(4000, 2, seed) for seed in (1, 2)]
    write(data / "mix" / name, sources[0] + sources[1])
    for k, source in enumerate(sources, start=1):
        write(data / f"s{k}" / name, source)
    write(estimates / "s2" / name, sources[1] + 0.01 * noise(4000, 2, 3))
    bad = MAKERS[kind](estimates / "s1" / name, sources[0] + 0.01 * noise(4000, 2, 4), RATE, "FLOAT")
    if kind == "unicode name":  # the whole utterance carries the name
        for folder in (data / "mix", data / "s1", data / "s2", estimates / "s2"):
            (folder / name).rename(folder / bad.name)
    out = tmp_path / "results" / "scores.csv"
    out.parent.mkdir()
    out.write_text("an earlier result\n")
    around = files(tmp_path)
    result = run("metrics.py", "--mix_dir", str(data / "mix"), "--ref_dir", str(data), "--est_dir", str(estimates),
                 "--out", str(out))
    check(result, EXPECTED[kind][1], bad, "metrics.py: error:")
    after = files(tmp_path)
    assert set(after) == set(around)  # no other file
    if EXPECTED[kind][1] == REFUSED:
        assert after["results/scores.csv"] == b"an earlier result\n"
    else:
        assert after["results/scores.csv"].decode().count("\n") == 3  # header, the utterance, avg


# ==================================================================================================
# create_binaural_wsj0mix.py: a WSJ0 utterance
# ==================================================================================================


@pytest.fixture(scope="module")
def official_rows(official_metadata_dir, speech_dir, tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("official")
    metadata = official_subset(official_metadata_dir, root / "metadata", 2, "tt", 2)
    return metadata, wsj_tree_for(metadata, speech_dir, root / "wsj", 2, "tt")


@pytest.mark.parametrize("kind", [k for k in KINDS if EXPECTED[k][2] is not None])
def test_generator(kind, official_rows, cipic_dir, tmp_path):
    import csv

    from binaural.data.metadata import metadata_paths

    metadata, pristine = official_rows
    wsj = tmp_path / "wsj"
    shutil.copytree(pristine, wsj)
    with open(metadata_paths(metadata, 2, "tt")["filenames"], newline="") as handle:
        victim = wsj / next(csv.DictReader(handle))["s1_path"]
    speech, rate = sf.read(str(victim), dtype="float64", always_2d=True)
    victim.unlink()
    subtype = "FLOAT" if kind == "NaN/inf" else "PCM_16"
    bad = MAKERS[kind](victim, np.repeat(speech, 2, axis=1), 16000, subtype)
    out = tmp_path / "out"
    earlier = write(tmp_path / "out_earlier" / "keep.wav", noise(100, 2))  # beside it: untouched
    around = files(tmp_path)
    result = run("create_binaural_wsj0mix.py", "--wsj_root", str(wsj), "--output_dir", str(out), "--splits", "tt",
                 "--freqs", "8k", "--modes", "min", "--metadata_dir", str(metadata), "--hrtf_dir", str(cipic_dir),
                 "--num_workers", "1", "--quiet")
    check(result, EXPECTED[kind][2], bad, "error:")
    after = files(tmp_path)
    assert after[str(earlier.relative_to(tmp_path))] == around[str(earlier.relative_to(tmp_path))]
    assert all(name.startswith("out/") for name in set(after) - set(around))
    if EXPECTED[kind][2] == REFUSED:
        assert not out.exists()
    else:
        assert len(list((out / "wav8k" / "min" / "tt" / "mix").glob("*.wav"))) == 2


# ==================================================================================================
# train.py --test_only: a generated test mixture, damaged after the generation
# ==================================================================================================


@pytest.fixture(scope="module")
def trained(tiny_wsj_root, tmp_path_factory) -> tuple[Path, Path]:
    """A tiny own-mode dataset and one epoch of a tiny parallel model on it."""
    root = tmp_path_factory.mktemp("trained")
    data, experiment = root / "data", root / "experiment"
    result = run("train.py", *train_arguments(data, tiny_wsj_root, experiment), "--N_epochs", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    return data, experiment


def train_arguments(data: Path, wsj_root: Path, experiment: Path) -> list[str]:
    return [
        "hparams/convtasnet-parallel.yaml", "--data_folder", str(data), "--wsj_root", str(wsj_root),
        "--output_folder", str(experiment), "--own_metadata", "True", "--hrtf_dir", "spherical",
        "--n_mixtures", "{tr: 2, cv: 1, tt: 2}", "--num_workers", "1", "--N_encoder_out", "16", "--B", "8",
        "--H", "16", "--X", "2", "--R", "1", "--n_audio_to_save", "0", "--noprogressbar",
        "--test_dataloader_opts", "{batch_size: 1, num_workers: 1}",  # a worker process, as users run it
    ]


@pytest.mark.parametrize("kind", ["truncated data", "NaN/inf", "mono", "silent"])
def test_train_test_only(kind, trained, tiny_wsj_root, tmp_path):
    pristine_data, pristine_experiment = trained
    data, experiment = tmp_path / "data", tmp_path / "experiment"
    shutil.copytree(pristine_data, data)
    shutil.copytree(pristine_experiment, experiment)
    (experiment / "test_results.csv").unlink()
    victim = sorted((data / "wav8k" / "min" / "tt" / "mix").glob("*.wav"))[0]
    mixture, rate = sf.read(str(victim), dtype="float64", always_2d=True)
    bad = MAKERS[kind](victim, mixture, rate, "FLOAT" if kind == "NaN/inf" else "PCM_16")
    weights = {name: content for name, content in files(experiment / "save").items() if name.endswith(".ckpt")}
    result = run("train.py", *train_arguments(data, tiny_wsj_root, experiment), "--test_only")
    check(result, EXPECTED[kind][3], bad, "train.py: error:")
    assert {name: content for name, content in files(experiment / "save").items() if name.endswith(".ckpt")} == weights
    assert (experiment / "test_results.csv").exists() == (EXPECTED[kind][3] == USED)
    if kind == "silent":  # a silent mixture cannot be scored: its row is left out, with a warning naming it
        ids = [line.split(",")[0] for line in (experiment / "test_results.csv").read_text().splitlines()[1:]]
        assert ids == [next(name for name in (p.stem for p in bad.parent.glob("*.wav")) if name != bad.stem), "avg"]
        assert f"test utterance {bad.stem} left out of test_results.csv" in result.stdout + result.stderr
