"""hparams/demo.yaml: the offline demo (synthetic talkers, spherical head, a small parallel model).

The demo itself (``python train.py hparams/demo.yaml``, a few minutes) is measured by
``benchmarks/bench_demo.py``; here the same command runs with overrides that shrink it further
(a few talkers, utterances and mixtures, one epoch, a tiny model) so it takes seconds: the corpus
hook, the generation, training, test, audio examples and the report, and a rerun that reuses the
corpus. The report hook of the test stage is covered too, failure included.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import soundfile
from conftest import PROJECT_ROOT

import train


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# The demo, shrunk further: 3 + 1 + 1 talkers of 3 short utterances, 4/2/2 mixtures, 1 epoch, tiny model.
SHRINK = [
    "--corpus_talkers", "{si_tr_s: 3, si_dt_05: 1, si_et_05: 1}",
    "--corpus_utterances_per_talker", "3",
    "--corpus_duration_s", "[0.6, 0.9]",
    "--n_mixtures", "{tr: 4, cv: 2, tt: 2}",
    "--num_workers", "1",
    "--N_epochs", "1",
    "--N_encoder_out", "16", "--B", "8", "--H", "16", "--X", "2", "--R", "1",
    "--training_signal_len", "4000",
    "--n_audio_to_save", "1",
    "--noprogressbar",
]


def demo_command(tmp: Path, *extra: str, yaml: str = "hparams/demo.yaml") -> list[str]:
    return [
        sys.executable, "train.py", yaml,
        "--data_folder", str(tmp / "data" / "binaural"),
        "--wsj_root", str(tmp / "data" / "synthetic"),
        "--output_folder", str(tmp / "out"),
        *SHRINK, *extra,
    ]


def run_demo(command: list[str]) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result


def corpus_wavs(root: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in sorted((root / "wsj0").glob("*/*/*.wav"))}


def check_results(out: Path, n_test: int) -> None:
    rows = (out / "test_results.csv").read_text().strip().splitlines()
    assert rows[0].startswith("snt_id,") and len(rows) == n_test + 2 and rows[-1].startswith("avg,")
    audio = sorted(p.name for p in (out / "audio_results").glob("*.wav"))
    scored = sorted((float(row.split(",")[header.index("snr_i")]), row.split(",")[0])
                    for row in rows[1:-1] for header in [rows[0].split(",")])
    best, worst = scored[-1][1], scored[0][1]
    # The first (n_audio_to_save 1), and the test set's true worst and best (chosen after scoring, the
    # one that is not the first separated again): each a mix, 2 targets and 2 estimates, no `item` prefix.
    assert sorted(name for name in audio if name.endswith("_mix.wav")) == sorted({f"{best}_mix.wav", f"{worst}_mix.wav"})
    assert len(audio) == 5 * len({best, worst})
    chosen = json.loads((out / "audio_results" / "chosen_examples.json").read_text())["examples"]
    assert "best SNRi" in chosen[best] and "worst SNRi" in chosen[worst]
    page = (out / "report.html").read_text()
    assert f"<code>{best}</code>" in page and f"<code>{worst}</code>" in page and "chosen as: " in page
    report = (out / "report.md").read_text()
    assert "## Test averages" in report and "SNRi" in report
    assert len(re.findall(r"<audio ", (out / "report.html").read_text())) == len(audio)  # the listening page
    pngs = sorted(out.glob("*.png"))
    assert {p.name for p in pngs} >= {"training_curve.png", "test_distributions.png", "example_spectrograms.png"}
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_MAGIC, png
        assert f"]({png.name})" in report  # the report shows it


def test_demo_end_to_end_and_rerun_reuses_the_corpus(tmp_path):
    corpus = tmp_path / "data" / "synthetic"
    run_demo(demo_command(tmp_path))
    wavs = corpus_wavs(corpus)
    assert len(wavs) == (3 + 1 + 1) * 3  # the synthetic talkers, in the WSJ0 layout
    assert (corpus / "wsj0" / "corpus.json").is_file()
    mixtures = sorted((tmp_path / "data" / "binaural" / "wav8k" / "min" / "tt" / "mix").glob("*.wav"))
    assert len(mixtures) == 2 and all(p.name.startswith("sphere") for p in mixtures)  # spherical-head listeners
    out = tmp_path / "out"
    check_results(out, n_test=2)
    assert "synthetic WSJ0 under" in (out / "log.txt").read_text()

    (out / "report.md").unlink()
    (out / "test_results.csv").unlink()
    run_demo(demo_command(tmp_path))
    assert corpus_wavs(corpus) == wavs  # the same files, not rewritten
    log = (out / "log.txt").read_text()
    assert "0 wav(s) written, 15 kept" in log and "Binaural WSJ0-2mix found in" in log
    check_results(out, n_test=2)  # evaluated and reported again


def test_demo_with_cipic_listeners(tmp_path, cipic_dir):
    """--hrtf_dir PATH: the demo's listeners from a local CIPIC copy instead of the spherical head."""
    run_demo(demo_command(tmp_path, "--hrtf_dir", str(cipic_dir)))
    mixtures = sorted((tmp_path / "data" / "binaural" / "wav8k" / "min" / "tt" / "mix").glob("*.wav"))
    assert len(mixtures) == 2 and all(p.name.startswith("subject") for p in mixtures)


def readme_causal_demo_block() -> list[list[str]]:
    """The README's causal-demo commands (the indented block that starts with its train.py line), split."""
    text = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    block = text[text.index("    python train.py hparams/demo-causal.yaml\n"):].split("\n\n", 1)[0]
    return [shlex.split(line) for line in block.replace("\\\n", " ").splitlines()]


def test_the_causal_demo_streams_with_every_engine_and_exports_onnx(tmp_path, monkeypatch, capsys):
    """The README's causal-demo block as written, from a folder holding nothing: the demo (shrunk, in
    its default folders) trains the causal model offline; its experiment streams the demo's test
    mixtures with torch, numba and onnx (the same estimates within 1e-4; each file with its RTF and
    latency) and exports the ONNX step."""
    from separate import main

    train_line, *separate_lines = readme_causal_demo_block()
    assert train_line == ["python", "train.py", "hparams/demo-causal.yaml"]
    assert {line[-1] for line in separate_lines[:3]} == {"8", "numba", "onnx"}
    command = [sys.executable, str(PROJECT_ROOT / "train.py"), str(PROJECT_ROOT / train_line[2]), *SHRINK]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    for line in separate_lines:
        assert line[:2] == ["python", "separate.py"]
        assert main(line[2:]) == 0, line
    printed = capsys.readouterr().out
    mixtures = sorted(Path("results/demo/data/binaural_wsj0-2mix/wav8k/min/tt/mix").glob("*.wav"))
    assert len(mixtures) == 2
    figures = re.findall(r"\.wav: RTF \d+\.\d{3} \(\d+\.\d\d s for \d\.\d\d s of audio\), "
                         r"algorithmic latency (\d+) ms", printed)
    assert figures == ["9", "9", "3", "3", "9", "9"], printed  # two files per engine: 8, 2, 8 ms chunks
    for mixture in mixtures:
        for talker in (1, 2):
            name = f"{mixture.stem}_s{talker}.wav"
            torch_estimate, rate = soundfile.read(Path("out/demo-causal/torch") / name)
            assert rate == 8000 and torch_estimate.shape == soundfile.read(mixture)[0].shape
            for engine in ("numba", "onnx"):
                estimate = soundfile.read(Path("out/demo-causal") / engine / name)[0]
                assert np.abs(estimate - torch_estimate).max() <= 1e-4, (engine, name)
    assert Path("model.onnx").stat().st_size > 0 and Path("model.json").is_file()


def test_demo_defaults(tmp_path, monkeypatch):
    """The demo's own values: offline (own metadata, spherical head, synthetic corpus into wsj_root),
    results in results/demo/<seed>, 8 kHz two talkers, the parallel model."""
    from hyperpyyaml import load_hyperpyyaml

    from binaural.models import tasnet as binaural_tasnet
    from binaural.data.synthetic_speech import make_synthetic_wsj0
    monkeypatch.chdir(tmp_path)  # loading makes the checkpoint folder: not in the repository
    with open(PROJECT_ROOT / "hparams" / "demo.yaml", encoding="utf-8") as handle:
        hp = load_hyperpyyaml(handle)
    assert hp["output_folder"] == f"results/demo/{hp['seed']}"
    assert (hp["own_metadata"], hp["hrtf_dir"], hp["sample_rate"], hp["num_spks"]) == (True, "spherical", 8000, 2)
    assert hp["wsj_root"].startswith("results/demo/data/") and hp["data_folder"].startswith("results/demo/data/")
    corpus = hp["make_corpus"]
    assert corpus.func is make_synthetic_wsj0 and corpus.keywords["root"] == hp["wsj_root"]
    assert type(hp["Model"]) is binaural_tasnet.ParallelTasNet
    assert not hp["dynamic_mixing"] and not hp["skip_prep"]


def test_make_corpus_null_uses_wsj_root_as_is(tmp_path):
    """--make_corpus null (e.g. with --wsj_root pointing at real WSJ0): no hook, train.py skips it."""
    from hyperpyyaml import load_hyperpyyaml

    with open(PROJECT_ROOT / "hparams" / "demo.yaml", encoding="utf-8") as handle:
        hp = load_hyperpyyaml(handle, {"make_corpus": None, "output_folder": str(tmp_path / "out")})
    assert hp["make_corpus"] is None


# --------------------------------------------------------------------------------------------------
# The report at the end of the test stage
# --------------------------------------------------------------------------------------------------


def fake_brain(out: Path) -> SimpleNamespace:
    """What ``Separation.write_test_results`` reads: two scored utterances and the loggers."""
    metrics = {name: 1.0 for name in __import__("metrics").METRIC_NAMES}
    logged = []
    hparams = SimpleNamespace(
        output_folder=str(out),
        epoch_counter=SimpleNamespace(current=1),
        train_logger=SimpleNamespace(log_stats=lambda **stats: logged.append(stats)),
    )
    return SimpleNamespace(hparams=hparams, test_rows=[{"snt_id": "a"} | metrics, {"snt_id": "b"} | metrics])


def test_the_test_stage_writes_the_report(tmp_path):
    brain = fake_brain(tmp_path)
    train.Separation.write_test_results(brain, -1.0)
    assert (tmp_path / "test_results.csv").is_file()
    assert "## Test averages" in (tmp_path / "report.md").read_text()
    assert "Test averages" in (tmp_path / "report.html").read_text()


def test_a_report_failure_is_logged_and_keeps_the_results(tmp_path, monkeypatch, caplog):
    from binaural.evaluation import report

    def broken(folder):
        raise RuntimeError("no figures today")

    monkeypatch.setattr(report, "write_report", broken)
    brain = fake_brain(tmp_path)
    with caplog.at_level(logging.ERROR):
        train.Separation.write_test_results(brain, -1.0)  # does not raise
    assert (tmp_path / "test_results.csv").is_file() and not (tmp_path / "report.md").exists()
    assert "no figures today" in caplog.text and "report.py" in caplog.text


def test_examples_that_cannot_be_saved_keep_the_test_results(tmp_path, caplog):
    """A failure while saving the chosen examples (a full disk...) is logged; the results are still written."""
    import speechbrain as sb

    from binaural.io.atomic import WriteError

    written = []

    def no_room() -> None:
        raise WriteError(f"{tmp_path}/audio_results: no space left on device")

    brain = SimpleNamespace(hparams=SimpleNamespace(save_audio=True), save_chosen_examples=no_room,
                            write_test_results=written.append)
    with caplog.at_level(logging.ERROR):
        train.Separation.on_stage_end(brain, sb.Stage.TEST, -1.0)
    assert written == [-1.0] and "no space left on device" in caplog.text
