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


def test_separate_one_file_into_its_folder_keeps_a_recording_of_an_estimates_name(experiment, tmp_path) -> None:
    """``--input F/x.wav --output_dir F`` where F holds the user's own x_s1.wav: refused, bytes kept."""
    folder = tmp_path / "F"
    write(folder / "x.wav", noise(4000))
    write(folder / "x_s1.wav", noise(4000, seed=1))
    before = snapshot(tmp_path)
    result = command("separate.py", "--experiment", str(experiment), "--input", str(folder / "x.wav"),
                     "--output_dir", str(folder))
    refused(result, "separate.py: error:", str(folder / "x_s1.wav"), "another --output_dir")
    assert snapshot(tmp_path) == before


def test_separate_one_file_into_its_own_folder_still_works(experiment, tmp_path) -> None:
    folder = tmp_path / "F"
    write(folder / "x.wav", noise(4000))
    result = command("separate.py", "--experiment", str(experiment), "--input", str(folder / "x.wav"),
                     "--output_dir", str(folder))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["x.wav", "x_s1.wav", "x_s2.wav"]


# ==================================================================================================
# separate.py: the model's rate and sizes are facts of the experiment
# ==================================================================================================


@pytest.mark.parametrize("override", ["sample_rate=16000", "N_encoder_out=32", "num_spks=3"])
def test_separate_refuses_overriding_the_experiment(experiment, tmp_path, override) -> None:
    mix = write(tmp_path / "in" / "x.wav", noise(4000))
    result = command("separate.py", "--experiment", str(experiment), "--input", str(mix),
                     "--output_dir", str(tmp_path / "out"), "--override", override)
    refused(result, "separate.py: error:", f"--override {override.split('=')[0]}", "facts of the experiment")
    assert not (tmp_path / "out").exists()


def test_separate_refuses_an_input_below_4_khz(experiment, tmp_path) -> None:
    """The issue's 1 Hz, 200-sample file: refused naming the file, not upsampled x8000."""
    slow = write(tmp_path / "in" / "slow.wav", noise(200), rate=1)
    good = write(tmp_path / "in" / "good.wav", noise(4000))
    result = command("separate.py", "--experiment", str(experiment), "--input", str(tmp_path / "in"),
                     "--output_dir", str(tmp_path / "out"))
    refused(result, "separate.py: error:", str(slow), "1 Hz", "4000 Hz")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"{good.stem}_s1.wav", f"{good.stem}_s2.wav"]


# ==================================================================================================
# create_binaural_wsj0mix.py: validated before it is recorded
# ==================================================================================================


@pytest.fixture(scope="module")
def official_two(official_metadata_dir, speech_dir, tmp_path_factory) -> tuple[Path, Path]:
    """Two official tt mixtures (metadata) and real speech at the paths they name."""
    from conftest import official_subset, wsj_tree_for

    root = tmp_path_factory.mktemp("official")
    metadata = official_subset(official_metadata_dir, root / "metadata", 2, "tt", 2)
    return metadata, wsj_tree_for(metadata, speech_dir, root / "wsj", 2, "tt")


def generate(wsj: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return command("create_binaural_wsj0mix.py", "--wsj_root", str(wsj), "--output_dir", str(out), "--freqs", "8k",
                   "--modes", "min", "--num_workers", "1", "--quiet", *extra)


def nan_gain(metadata: Path) -> Path:
    from binaural.data.metadata import metadata_paths

    path = metadata_paths(metadata, 2, "tt")["scaling"]
    with np.load(path, allow_pickle=True) as npz:
        arrays = {key: npz[key] for key in npz.files}
    arrays["scaling_wsjmix_8k_min"] = arrays["scaling_wsjmix_8k_min"].astype(np.float64)
    arrays["scaling_wsjmix_8k_min"][1, 1] = np.nan
    np.savez(path, **arrays)
    return path


def same_name_twice(metadata: Path) -> Path:
    """The second row made a copy of the first (utterances, listener, directions), its gains kept."""
    from binaural.data.metadata import metadata_paths

    paths = metadata_paths(metadata, 2, "tt")
    for kind in ("filenames", "hrtf"):
        header, first, _second = paths[kind].read_text().splitlines()
        paths[kind].write_text("\n".join([header, first, first]) + "\n")
    return paths["filenames"]


@pytest.mark.parametrize("damage, words", [(nan_gain, ["scaling_wsjmix_8k_min", "non-finite", "row 3"]),
                                           (same_name_twice, ["rows 2 and 3"])])
def test_generator_refuses_bad_metadata_before_the_record(official_two, cipic_dir, tmp_path, damage, words) -> None:
    import shutil

    metadata = tmp_path / "metadata"
    shutil.copytree(official_two[0], metadata)
    bad = damage(metadata)
    out = tmp_path / "out"
    result = generate(official_two[1], out, "--splits", "tt", "--metadata_dir", str(metadata), "--hrtf_dir",
                      str(cipic_dir))
    refused(result, "error:", str(bad), *words)
    assert not out.exists()  # no record claimed, no folder left


def test_generator_refuses_a_count_of_zero_then_takes_the_corrected_one(tiny_wsj_root, tmp_path) -> None:
    out = tmp_path / "out"
    for wrong in (["0"], ["-5"], ["2", "0", "2"]):
        result = generate(tiny_wsj_root, out, "--own_metadata", "--hrtf_dir", "spherical", "--n_mixtures", *wrong)
        refused(result, "error:", "n_mixtures", "at least 1")
        assert not out.exists()
    result = generate(tiny_wsj_root, out, "--own_metadata", "--hrtf_dir", "spherical", "--n_mixtures", "2", "1", "2")
    assert result.returncode == 0, result.stderr
    assert len(list((out / "wav8k" / "min" / "tt" / "mix").glob("*.wav"))) == 2


def test_generator_refuses_a_negative_seed(tiny_wsj_root, tmp_path) -> None:
    result = generate(tiny_wsj_root, tmp_path / "out", "--own_metadata", "--hrtf_dir", "spherical", "--seed", "-1")
    refused(result, "error:", "seed", ">= 0")
    assert not (tmp_path / "out").exists()


def test_a_draw_that_failed_does_not_bind_the_rerun(tiny_wsj_root, tmp_path) -> None:
    """A draw refused after its claim (more mixtures than the talkers allow) leaves nothing that
    refuses the corrected command."""
    out = tmp_path / "out"
    result = generate(tiny_wsj_root, out, "--own_metadata", "--hrtf_dir", "spherical", "--splits", "tt",
                      "--n_mixtures", "5000")
    refused(result, "error:", "could not draw")
    result = generate(tiny_wsj_root, out, "--own_metadata", "--hrtf_dir", "spherical", "--splits", "tt",
                      "--n_mixtures", "2")
    assert result.returncode == 0, result.stderr


# ==================================================================================================
# metrics.py: refuses what it cannot score
# ==================================================================================================


def scoring_tree(root: Path, name: str = "utt.wav") -> dict[str, Path]:
    """D/mix, D/s1, D/s2 and E/s1, E/s2 of one utterance (noise talkers, estimates close to them)."""
    sources = [noise(4000, seed=seed) for seed in (1, 2)]
    paths = {"mix": write(root / "data" / "mix" / name, sources[0] + sources[1])}
    for k, source in enumerate(sources, start=1):
        paths[f"s{k}"] = write(root / "data" / f"s{k}" / name, source)
        paths[f"e{k}"] = write(root / "estimates" / f"s{k}" / name, source + 0.01 * noise(4000, seed=k + 5))
    return paths


def score(root: Path) -> subprocess.CompletedProcess:
    return command("metrics.py", "--mix_dir", str(root / "data" / "mix"), "--ref_dir", str(root / "data"),
                   "--est_dir", str(root / "estimates"), "--out", str(root / "scores.csv"))


@pytest.mark.parametrize("role, level", [("mix", 0.0), ("mix", 1e-6), ("s2", 0.0), ("s1", 1e-7)])
def test_metrics_refuses_a_silent_mixture_or_reference(tmp_path, role, level) -> None:
    """The issue's all-zero mixture (SI-SNRi +98 dB before), a near-silent one (-120 dBFS) and
    silent references: one line naming the file, no CSV."""
    paths = scoring_tree(tmp_path)
    write(paths[role], level * noise(4000, seed=9) / 0.1)
    result = score(tmp_path)
    refused(result, "metrics.py: error:", str(paths[role]), "silent", "-90 dBFS")
    assert not (tmp_path / "scores.csv").exists()


def test_metrics_scores_a_quiet_recording_and_a_silent_estimate(tmp_path) -> None:
    """-60 dBFS is quiet, not silent; a silent estimate is a bad separation, scored as one."""
    paths = scoring_tree(tmp_path)
    for role in ("mix", "s1", "s2"):
        data, _ = sf.read(str(paths[role]))
        write(paths[role], data * 1e-2)
    write(paths["e1"], np.zeros((4000, 2)))
    result = score(tmp_path)
    assert result.returncode == 0, result.stderr


def test_metrics_names_a_folder_named_like_a_mixture(tmp_path) -> None:
    scoring_tree(tmp_path)
    folder = tmp_path / "data" / "mix" / "x.wav"
    folder.mkdir()
    result = score(tmp_path)
    line = refused(result, "metrics.py: error:", str(folder), "a folder")
    assert "vanished" not in line


# ==================================================================================================
# Unreadable or foreign files and folders: report.py, separate.py, the generators
# ==================================================================================================


@pytest.mark.parametrize("damage", ["binary", "folder"])
def test_report_names_a_results_table_that_is_not_one(tmp_path, damage) -> None:
    table = tmp_path / "results" / "test_results.csv"
    table.parent.mkdir()
    if damage == "binary":
        table.write_bytes(bytes(range(256)) * 8)
    else:
        table.mkdir()
    result = command("report.py", str(tmp_path / "results"))
    refused(result, "error:", str(table), "test_results.csv")
    assert not (tmp_path / "results" / "report.md").exists()


def test_separate_calls_a_3_channel_input_3_channels(experiment, tmp_path) -> None:
    wide = write(tmp_path / "in" / "wide.wav", noise(4000, channels=3))
    result = command("separate.py", "--experiment", str(experiment), "--input", str(wide),
                     "--output_dir", str(tmp_path / "out"))
    line = refused(result, "separate.py: error:", str(wide), "3 channels, expected 2")
    assert "mono" not in line


def test_generator_output_dir_naming_a_file(tiny_wsj_root, tmp_path) -> None:
    blocker = tmp_path / "data"
    blocker.write_text("the user's notes\n")
    result = generate(tiny_wsj_root, blocker, "--own_metadata", "--hrtf_dir", "spherical", "--n_mixtures", "2")
    line = refused(result, "error:", f"--output_dir {blocker}", "not a folder")
    assert "Errno" not in line
    assert blocker.read_text() == "the user's notes\n"


def test_generator_names_a_binary_metadata_file(official_two, cipic_dir, tmp_path) -> None:
    import shutil

    from binaural.data.metadata import metadata_paths

    metadata = tmp_path / "metadata"
    shutil.copytree(official_two[0], metadata)
    bad = metadata_paths(metadata, 2, "tt")["hrtf"]
    bad.write_bytes(bytes(range(256)) * 8)
    result = generate(official_two[1], tmp_path / "out", "--splits", "tt", "--metadata_dir", str(metadata),
                      "--hrtf_dir", str(cipic_dir))
    refused(result, "error:", str(bad), "not a readable text CSV")


@pytest.mark.parametrize("blocked", ["root", "wsj0", "corpus.json"])
def test_synthetic_speech_names_a_file_or_folder_in_the_way(tmp_path, blocked) -> None:
    root = tmp_path / "corpus"
    place = {"root": root, "wsj0": root / "wsj0", "corpus.json": root / "wsj0" / "corpus.json"}[blocked]
    place.parent.mkdir(parents=True, exist_ok=True)
    if blocked == "corpus.json":
        place.mkdir()
    else:
        place.write_text("not a folder\n")
    result = command("synthetic_speech.py", "--root", str(root), "--talkers", "2", "1", "1",
                     "--utterances_per_talker", "1")
    refused(result, "error:", str(place))
