"""The results report: parsing, figures (valid PNGs), skipped parts and errors, on a tiny folder."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from matplotlib.image import imread

from metrics import METRIC_NAMES, write_results_csv
from report import (
    FIGURES,
    REPORT_NAME,
    ReportError,
    angular_separation,
    find_example,
    main as report_main,
    parse_azimuths,
    parse_train_log,
    read_results,
    separation_of,
    snr_curves,
    write_report,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# train.py's log (SpeechBrain's FileTrainLogger formatting): the loss is the negative SNR.
TRAIN_LOG = """\
epoch: 1, lr: 1.50e-04 - train loss: -2.34e+00, train nonfinite_count: 0 - valid loss: -3.10e+00, valid snr: 3.10e+00
epoch: 2, lr: 1.50e-04 - train loss: -5.01e+00, train nonfinite_count: 0 - valid loss: -5.50e+00, valid snr: 5.50e+00
epoch: 3, lr: 7.50e-05 - train loss: -7.20e+00, train nonfinite_count: 1 - valid loss: -6.80e+00, valid snr: 6.80e+00
Epoch loaded: 3 - test loss: -6.50e+00, test snr: 6.50e+00, test snr_i: 6.61e+00
"""
# SpeechBrain's separation recipes log the loss as "si-snr".
SI_SNR_LOG = """\
epoch: 1, lr: 1.50e-04 - train si-snr: -2.34 - valid si-snr: -3.10
epoch: 2, lr: 1.50e-04 - train si-snr: -5.01e+00 - valid si-snr: -5.50
epoch: 3, lr: 7.50e-05 - train si-snr: -7.20, train loss: 1.2 - valid si-snr: -6.80
Epoch loaded: 3 - test si-snr: -6.5
"""
NAMES = [
    "subject15_01ca0102_30_56_209c0105_10_62",
    "subject03_40na010x_-45_0_01xo031a_30_90",
    "subject148_420c020h_-30_39_442c0203_5_101",
    "subject61_445c0206_10_0_22gc0105_-40_107",
    "sphere03_050a050a_-80_0_051a050b_80_0",
    "subject21_22ho010o_40_186_052a050y_45_73",
]


def _rows(names: list[str]) -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"snt_id": name, **{m: float(rng.normal(10, 3)) for m in METRIC_NAMES}} for name in names]


def _write_audio(folder: Path, names: list[str], rate: int = 8000) -> None:
    """train.py's ``save_audio`` files of the first two test mixtures, ``item<id>_...wav``, stereo."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    t = np.arange(int(0.3 * rate)) / rate
    sources = [np.stack([np.sin(2 * np.pi * f * t), 0.5 * np.sin(2 * np.pi * f * t)], axis=1) for f in (300, 900)]
    for name in names[:2]:
        sf.write(folder / f"item{name}_mix.wav", 0.4 * (sources[0] + sources[1]), rate)
        for k, source in enumerate(sources, start=1):
            sf.write(folder / f"item{name}_source{k}.wav", 0.4 * source, rate)
            noisy = 0.4 * source + 0.01 * rng.standard_normal(source.shape)
            sf.write(folder / f"item{name}_source{k}hat.wav", noisy, rate)


@pytest.fixture()
def results(tmp_path) -> Path:
    folder = tmp_path / "results" / "binaural-convtasnet" / "1234"
    folder.mkdir(parents=True)
    (folder / "train_log.txt").write_text(TRAIN_LOG)
    write_results_csv(_rows(NAMES), folder / "test_results.csv")  # the recipe's own writer
    _write_audio(folder / "audio_results", NAMES)  # hparams: audio_results_folder
    return folder


def _check_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC, f"{path.name}: not a PNG"
    image = imread(path)
    assert image.ndim == 3 and image.shape[2] in (3, 4)
    assert image.shape[0] >= 200 and image.shape[1] >= 300, image.shape
    assert image.std() > 0.01, f"{path.name}: blank image"


def _referenced_pngs(report: Path) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", report.read_text(encoding="utf-8"))


def test_report_references_every_figure_and_each_is_a_valid_png(results):
    report = write_report(results)
    assert report == results / REPORT_NAME
    referenced = _referenced_pngs(report)
    assert sorted(referenced) == sorted(FIGURES.values())
    for name in referenced:
        _check_png(results / name)
    text = report.read_text(encoding="utf-8")
    assert text.startswith("# Results")
    assert "| SNRi (`snr_i`) |" in text and "µs" in text  # the avg row as a table
    assert "## Notes" not in text  # nothing was skipped
    assert not list(results.glob("*.partial")) and not list(results.glob(".*"))


def test_cli_writes_the_report(results):
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "report.py"), str(results)],
        capture_output=True, text=True, cwd=results.parent, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()) == results / REPORT_NAME
    for name in _referenced_pngs(results / REPORT_NAME):
        _check_png(results / name)


def test_cli_names_a_missing_csv(tmp_path, capsys):
    assert report_main([str(tmp_path)]) == 1  # in-process: the subprocess path is tested above
    error = capsys.readouterr().err
    assert str(tmp_path) in error and "test_results.csv" in error


def test_missing_csv_is_a_clear_error(tmp_path):
    with pytest.raises(ReportError) as caught:
        write_report(tmp_path)
    message = str(caught.value)
    assert str(tmp_path) in message and "test_results.csv" in message
    assert "test stage" in message and "metrics.py" in message  # how to produce it
    assert not (tmp_path / REPORT_NAME).exists()


def test_missing_train_log_and_audio_are_skipped_with_notes(results):
    (results / "train_log.txt").unlink()
    for path in (results / "audio_results").iterdir():
        path.unlink()
    report = write_report(results)
    text = report.read_text(encoding="utf-8")
    referenced = _referenced_pngs(report)
    assert FIGURES["curve"] not in referenced and FIGURES["example"] not in referenced
    assert "## Notes" in text and "train_log.txt" in text and "audio_results" in text
    for name in referenced:
        _check_png(results / name)


def test_names_without_azimuths_skip_the_separation_figure(tmp_path):
    names = [f"445c020{k}_0.60431_22gc010{k}_-0.60431" for k in range(4)]  # WSJ0-2mix style: no azimuths
    write_results_csv(_rows(names), tmp_path / "test_results.csv")
    text = write_report(tmp_path).read_text(encoding="utf-8")
    assert FIGURES["separation"] not in _referenced_pngs(tmp_path / REPORT_NAME)
    assert "carry no azimuths" in text
    assert FIGURES["distributions"] in _referenced_pngs(tmp_path / REPORT_NAME)


@pytest.mark.parametrize(
    "name, azimuths, separation",
    [
        ("subject15_01ca0102_30_56_209c0105_10_62", [30.0, 10.0], 20.0),
        ("subject03_40na010x_-45_0_01xo031a_30_90", [-45.0, 30.0], 75.0),
        ("subject61_445c0206_-10_0_22gc0105_-40_107", [-10.0, -40.0], 30.0),
        ("sphere03_050a050a_-80_-45_051a050b_80_230.625.wav", [-80.0, 80.0], 160.0),
        ("/data/tt/mix/subject21_a01c0101_-30_0_b01c0101_40_0_c01c0101_-15_0", [-30.0, 40.0, -15.0], 15.0),
        ("subject08_x_-170_0_y_170_0", [-170.0, 170.0], 20.0),  # all-around azimuths wrap
        ("subject08_x_5_0_y_5_0", [5.0, 5.0], 0.0),  # co-located talkers: 0°, not "no azimuths"
    ],
)
def test_azimuths_and_angular_separation_from_names(name, azimuths, separation):
    assert parse_azimuths(name) == azimuths
    assert separation_of(name) == pytest.approx(separation)


@pytest.mark.parametrize(
    "name", ["445c0206_0.60431_22gc0105_-0.60431", "item3", "subject15_01ca0102_left_56_209c0105_10_62", "avg", ""]
)
def test_names_without_azimuths(name):
    assert parse_azimuths(name) is None and separation_of(name) is None


def test_angular_separation_needs_two_talkers():
    with pytest.raises(ValueError, match="two azimuths"):
        angular_separation([30.0])


def test_train_log_of_the_recipe_gives_snr_curves(tmp_path):
    path = tmp_path / "train_log.txt"
    path.write_text(TRAIN_LOG + "epoch: 2, lr: 1.00e-04 - train loss: -4.00e+00 - valid loss: nan\nnoise line\n")
    log = parse_train_log(path)
    assert log.keys() == ["loss", "nonfinite_count", "snr"]
    assert log.stats[("train", "loss")] == {1: -2.34, 2: -4.0, 3: -7.2}  # a re-logged epoch: the last wins
    assert np.isnan(log.stats[("valid", "loss")][2]) and log.stats[("valid", "snr")][3] == 6.8
    assert ("test", "loss") not in log.stats  # the final "Epoch loaded" line is not an epoch
    key, quantity, curves = snr_curves(log)
    assert (key, quantity) == ("loss", "SNR")
    assert curves["train"] == ([1, 2, 3], [2.34, 4.0, 7.2])  # SNR = −loss


def test_si_snr_log_of_speechbrain_recipes(tmp_path):
    path = tmp_path / "train_log.txt"
    path.write_text(SI_SNR_LOG)
    key, quantity, curves = snr_curves(parse_train_log(path))
    assert (key, quantity) == ("si-snr", "SI-SNR")
    assert curves["train"] == ([1, 2, 3], [2.34, 5.01, 7.2])
    assert curves["valid"] == ([1, 2, 3], [3.1, 5.5, 6.8])


def test_a_log_without_a_loss_is_plotted_as_logged(tmp_path):
    path = tmp_path / "train_log.txt"
    path.write_text("epoch: 1 - train acc: 0.5 - valid acc: 0.4\nepoch: 2 - train acc: 0.7 - valid acc: 0.6\n")
    key, quantity, curves = snr_curves(parse_train_log(path))
    assert (key, quantity, curves["valid"]) == ("acc", None, ([1, 2], [0.4, 0.6]))


def test_example_files_are_matched_by_their_id(tmp_path):
    audio = tmp_path / "audio_results"
    _write_audio(audio, ["subject15_a_30_0_b_10_0", "subject15_a_30_0_b_10_0_x_5_0"])  # the 2nd id extends the 1st
    mixture, targets, estimates = find_example(tmp_path)
    assert mixture.name == "itemsubject15_a_30_0_b_10_0_mix.wav"
    assert [p.name for p in targets] == [f"itemsubject15_a_30_0_b_10_0_source{k}.wav" for k in (1, 2)]
    assert [p.name for p in estimates] == [f"itemsubject15_a_30_0_b_10_0_source{k}hat.wav" for k in (1, 2)]


def test_other_example_names_are_accepted(tmp_path):
    audio = tmp_path / "save" / "audio_results"
    audio.mkdir(parents=True)
    for name in ("mix.wav", "s1.wav", "s2.wav", "s1_hat.wav", "s2_hat.wav"):
        sf.write(audio / name, np.zeros((64, 2)), 8000)
    mixture, targets, estimates = find_example(tmp_path)
    assert mixture.name == "mix.wav"
    assert [p.name for p in targets] == ["s1.wav", "s2.wav"]
    assert [p.name for p in estimates] == ["s1_hat.wav", "s2_hat.wav"]


def test_avg_row_is_kept_apart(results):
    rows, average = read_results(results / "test_results.csv")
    assert len(rows) == len(NAMES) and all(r["snt_id"] != "avg" for r in rows)
    assert average is not None and average["snr_i"] == pytest.approx(np.mean([r["snr_i"] for r in rows]))
