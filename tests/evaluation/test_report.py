"""The results report and its listening page: parsing, figures (valid PNGs), the page's examples,
links and escaping, skipped parts and errors, on small folders laid out as train.py leaves them."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import HOSTILE_NAME, RECIPE_TRAIN_LOG, Page, demo_names, make_results_folder
from matplotlib.image import imread
from scipy.signal import spectrogram

from binaural.evaluation.metrics import METRIC_NAMES, write_results_csv
from binaural.evaluation.report import FIGURES, PAGE_FILES, PAGE_NAME, REPORT_NAME, ReportError, _spectrogram_db, angular_separation, draw_example, find_example, find_examples, parse_azimuths, parse_train_log, read_results, separation_of, snr_curves, spectrogram_image, write_report
from report import main as report_main

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRAIN_LOG = RECIPE_TRAIN_LOG
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
# The demo's evaluation, in small: 12 scored test mixtures, the first 10 saved (n_audio_to_save: 10),
# with noise levels in shuffled order so that the SNRi order is not the saving order.
DEMO_NOISE = [0.12, 0.02, 0.3, 0.07, 0.2, 0.01, 0.15, 0.05, 0.25, 0.1, 0.04, 0.09]


def _rows(names: list[str]) -> list[dict]:
    rng = np.random.default_rng(0)
    return [{"snt_id": name, **{m: float(rng.normal(10, 3)) for m in METRIC_NAMES}} for name in names]


@pytest.fixture(scope="module")
def _results_source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("results_source") / "results" / "binaural-convtasnet" / "1234"
    return make_results_folder(root, NAMES, n_saved=2)


@pytest.fixture()
def results(tmp_path, _results_source) -> Path:
    """A fresh copy of a folder with train.py's log, 6 scored mixtures and 2 saved examples."""
    folder = tmp_path / "results" / "binaural-convtasnet" / "1234"
    shutil.copytree(_results_source, folder)
    return folder


@pytest.fixture(scope="module")
def _demo_source(tmp_path_factory) -> Path:
    names = demo_names(len(DEMO_NOISE))
    return make_results_folder(tmp_path_factory.mktemp("demo_source") / "demo" / "1234", names, 10, DEMO_NOISE)


@pytest.fixture()
def demo_results(tmp_path, _demo_source) -> Path:
    folder = tmp_path / "demo" / "1234"
    shutil.copytree(_demo_source, folder)
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


def test_cli_writes_the_report_and_the_page(results):
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "report.py"), str(results)],
        capture_output=True, text=True, cwd=results.parent, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert [Path(line) for line in done.stdout.splitlines()] == [results / REPORT_NAME, results / PAGE_NAME]
    assert (results / PAGE_NAME).is_file()
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
    ids = ["subject15_a_30_0_b_10_0", "subject15_a_30_0_b_10_0_x_5_0"]  # the 2nd id extends the 1st
    make_results_folder(tmp_path, ids, n_saved=2, seconds=0.1)
    mixture, targets, estimates = find_example(tmp_path)
    assert mixture.name == "subject15_a_30_0_b_10_0_mix.wav"  # the test id, no `item` prefix
    assert [p.name for p in targets] == [f"subject15_a_30_0_b_10_0_source{k}.wav" for k in (1, 2)]
    assert [p.name for p in estimates] == [f"subject15_a_30_0_b_10_0_source{k}hat.wav" for k in (1, 2)]


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


# --------------------------------------------------------------------------------------------------
# The listening page (report.html)
# --------------------------------------------------------------------------------------------------


def _example_rows(page: Page) -> list[list[dict]]:
    """The examples table's rows: per row, the attributes of its ``tr`` then of every element in it."""
    rows, current = [], None
    for tag, attrs in page.elements:
        if tag == "tr" and attrs.get("id", "").startswith("example-"):
            current = [attrs]
            rows.append(current)
        elif current is not None:
            current.append({"tag": tag, **attrs})
    return rows


def _example_cells(page: Page) -> list[list[str]]:
    """The text of every cell of the examples table, row by row (the header excluded)."""
    section = page.source[page.source.index('<table class="examples">'):]
    body = section[section.index("<tbody>"): section.index("</tbody>")]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, flags=re.S)
    return [[re.sub(r"<[^>]+>", "", re.sub(r'<br><span class="note">.*?</span>', "", cell))
             for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, flags=re.S)] for row in rows]


def _example_notes(page: Page) -> list[list[str]]:
    """The notes under each example's name (directions, why chosen), row by row."""
    section = page.source[page.source.index('<table class="examples">'):]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", section[section.index("<tbody>"): section.index("</tbody>")], flags=re.S)
    return [re.findall(r'<span class="note">(.*?)</span>', row) for row in rows]


def test_page_links_every_saved_file_and_thumbnail(demo_results):
    write_report(demo_results)
    page = Page(demo_results / PAGE_NAME)
    saved = sorted((demo_results / "audio_results").glob("*.wav"))
    assert len(saved) == 10 * 5  # all n_audio_to_save examples: mixture, 2 targets, 2 estimates
    players = [page.file(a["src"]) for a in page.all("audio")]
    assert sorted(players) == [p.resolve() for p in saved]  # each saved file, once
    assert all("controls" in a and a.get("preload") == "metadata" for a in page.all("audio"))
    for url in page.urls():  # every link relative, and its file there
        assert page.file(url).is_file(), url
        assert page.file(url).is_relative_to(demo_results.resolve()), url
    images = [page.file(i["src"]) for i in page.all("img")]
    assert {p.name for p in images} >= set(FIGURES.values())  # the figures of report.md
    thumbnails = [p for p in images if p.parent.name == PAGE_FILES]
    assert len(thumbnails) == len(players) == len(set(thumbnails))  # one spectrogram per player
    for thumbnail in thumbnails:
        _check_thumbnail(thumbnail)
    assert sorted(p.name for p in (demo_results / PAGE_FILES).iterdir()) == sorted(p.name for p in thumbnails)
    # One page, readable without JavaScript, nothing from the network.
    assert not page.all("script") and not page.all("link") and not page.all("iframe")
    assert not [a for _, a in page.elements if any(k.startswith("on") for k in a)]
    assert "@import" not in page.source and "url(" not in page.source and "//" not in "".join(page.urls())
    assert "## Test averages" in (demo_results / REPORT_NAME).read_text() and "Test averages" in page.text
    assert f"]({PAGE_NAME})" in (demo_results / REPORT_NAME).read_text()  # report.md points to the page


def _check_thumbnail(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC, path
    image = imread(path)
    assert image.shape[0] >= 60 and image.shape[1] >= 30 and image.std() > 0.01, (path, image.shape)


def test_examples_are_ordered_by_snri_with_best_and_worst_marked(demo_results):
    write_report(demo_results)
    rows, _ = read_results(demo_results / "test_results.csv")
    saved = rows[:10]  # the first test mixtures are the saved ones
    expected = sorted(saved, key=lambda r: -r["snr_i"])
    assert [r["snt_id"] for r in expected] != [r["snt_id"] for r in saved]  # the order is the page's own
    page = Page(demo_results / PAGE_NAME)
    cells = _example_cells(page)
    assert [c[1] for c in cells] == [r["snt_id"] for r in expected]
    # rank, name, SNRi, ΔITD, ΔILD: the CSV's values, as shown.
    assert [c[2:5] for c in cells] == [[f"{r[m]:.2f}" for m in ("snr_i", "delta_ITD", "delta_ILD")] for r in expected]
    # The known answer: less noise, higher SNRi.
    noise_of = dict(zip(demo_names(len(DEMO_NOISE)), DEMO_NOISE))
    assert [c[1] for c in cells] == sorted((r["snt_id"] for r in saved), key=noise_of.get)
    assert cells[0][0] == "1 best" and cells[-1][0] == "10 worst"
    assert [c[0] for c in cells[1:-1]] == [str(k) for k in range(2, 10)]
    classes = [row[0].get("class") for row in _example_rows(page)]
    assert classes == ["best"] + [None] * 8 + ["worst"]
    header = re.findall(r"<th>(.*?)</th>", page.source[page.source.index('<table class="examples">'):])
    assert header == ["#", "example", "SNRi (dB)", "ΔITD (µs)", "ΔILD (dB)", "mixture", "talker 1", "talker 2"]
    # Each row's players: its own files, in the header's order (a talker's target above its estimate).
    for record, row in zip(expected, _example_rows(page)):
        sources = [page.file(e["src"]).name for e in row[1:] if e["tag"] == "audio"]
        stem = f"{record['snt_id']}_"
        assert sources == [stem + s for s in ("mix.wav", "source1.wav", "source1hat.wav", "source2.wav", "source2hat.wav")]


def test_hostile_file_names_are_escaped_and_encoded(tmp_path):
    names = [HOSTILE_NAME, "sphere01_a_-20_0_b_30_0"]
    folder = make_results_folder(tmp_path / "out", names, n_saved=2, seconds=0.2)
    write_report(folder)
    page = Page(folder / PAGE_NAME)
    assert "<img src=x" not in page.source and "onerror" not in {k for _, a in page.elements for k in a}
    assert [a["src"] for a in page.all("img") if a["src"] == "x"] == []
    assert HOSTILE_NAME in page.text  # shown as the text it is, "&amp;" included
    hostile = [page.file(a["src"]) for a in page.all("audio") if HOSTILE_NAME in page.file(a["src"]).name]
    assert len(hostile) == 5 and all(p.is_file() for p in hostile)  # '#', '?', '%41' percent-encoded
    assert all("#" not in url and "?" not in url and " " not in url for url in page.urls())


def test_page_without_saved_examples_says_how_to_get_them(results):
    shutil.rmtree(results / "audio_results")
    write_report(results)
    page = Page(results / PAGE_NAME)
    assert not page.all("audio") and "save_audio" in page.text
    assert "Test averages" in page.text


def test_a_rerun_with_fewer_examples_leaves_no_stale_thumbnail(demo_results):
    write_report(demo_results)
    for path in (demo_results / "audio_results").glob("*.wav"):
        if demo_names(12)[0] not in path.name:
            path.unlink()
    write_report(demo_results)
    page = Page(demo_results / PAGE_NAME)
    assert len(page.all("audio")) == 5
    assert len(list((demo_results / PAGE_FILES).iterdir())) == 5


def test_find_examples_returns_all_in_natural_order(demo_results):
    examples = find_examples(demo_results)
    assert [e.name for e in examples] == sorted(demo_names(12)[:10], key=lambda n: [
        int(t) if t.isdigit() else t for t in re.split(r"(\d+)", f"{n}_mix.wav")])
    assert all(len(e.targets) == len(e.estimates) == 2 and not e.metrics for e in examples)


def test_thumbnail_shows_each_ear_left_on_top():
    """A tone in the left ear only: the top panel holds it at its frequency, the bottom one is silent."""
    rate = 8000
    t = np.arange(rate) / rate
    signal = np.stack([np.sin(2 * np.pi * 1000 * t), 1e-3 * np.sin(2 * np.pi * 1000 * t)], axis=1)
    image = spectrogram_image(signal, rate)
    gap = int(np.flatnonzero(np.isnan(image).all(axis=1))[0])
    right, left = image[:gap], image[gap + 1:]  # row 0 is drawn at the bottom
    assert right.shape == left.shape and left.shape[0] <= 96 and left.shape[1] <= 320
    assert np.median(left.max(axis=0)) - np.median(right.max(axis=0)) == pytest.approx(60, abs=0.5)  # 1e-3
    tone_row = int(np.median(left.argmax(axis=0)))
    assert tone_row / left.shape[0] == pytest.approx(1000 / 4000, abs=1.5 / left.shape[0])


def test_spectrogram_is_scipys_and_a_long_file_costs_no_more_frames():
    rng = np.random.default_rng(0)
    rate, samples = 8000, rng.standard_normal(4000)
    freqs, times, power_db = _spectrogram_db(samples, rate)
    ref_freqs, ref_times, reference = spectrogram(samples, fs=rate, window="hann", nperseg=256, noverlap=192)
    np.testing.assert_allclose(freqs, ref_freqs)
    np.testing.assert_allclose(times, ref_times)
    np.testing.assert_allclose(power_db, 10 * np.log10(reference + 1e-12), atol=1e-9)
    long = np.zeros(600 * rate, dtype=np.float32)
    long[:: rate] = 1.0
    _, long_times, long_power = _spectrogram_db(long, rate, max_frames=320)
    assert long_power.shape == (129, 320)
    assert long_times[0] == pytest.approx(0.016) and long_times[-1] == pytest.approx(600 - 0.016)  # all 10 minutes


def _text_boxes(figure) -> list[tuple[str, object]]:
    renderer = figure.canvas.get_renderer()
    boxes = [(figure._suptitle.get_text(), figure._suptitle.get_window_extent(renderer))]
    for axes in figure.axes:
        if axes.get_title():
            boxes.append((axes.get_title(), axes.title.get_window_extent(renderer)))
    return boxes


def test_example_figure_titles_do_not_overlap_for_real_names(tmp_path):
    names = ["subject148_420c020h_-30_39_442c0203_5_101_050a050a_-80_0_051a050b_80_0"]
    folder = make_results_folder(tmp_path, names, n_saved=1, n_spks=3, seconds=0.2)
    figure = draw_example(find_examples(folder)[0])
    figure.canvas.draw()
    boxes = _text_boxes(figure)
    assert len(boxes) == 1 + 7 * 2  # the title, then mixture + 3 targets + 3 estimates, two ears
    whole = figure.bbox
    for index, (text, box) in enumerate(boxes):
        assert whole.x0 <= box.x0 and box.x1 <= whole.x1 and whole.y0 <= box.y0 and box.y1 <= whole.y1, text
        for other, other_box in boxes[index + 1:]:
            assert not box.overlaps(other_box), f"{text!r} overlaps {other!r}"
    assert names[0] in boxes[0][0].replace("\n", "")


def test_example_figure_of_an_unreadable_file_is_a_note(results):
    broken = sorted((results / "audio_results").glob("*source1hat.wav"))[0]
    broken.write_bytes(b"RIFF0000WAVEjunk")
    text = write_report(results).read_text(encoding="utf-8")
    assert "## Notes" in text and broken.name in text and FIGURES["example"] not in _referenced_pngs(results / REPORT_NAME)
    page = Page(results / PAGE_NAME)
    assert len(page.all("audio")) == 10 and "no spectrogram" in page.text  # the page still links it


def test_saved_examples_are_pcm16_stereo_at_the_models_rate_with_one_factor(tmp_path):
    """What train.py's save_audio writes, which the page plays: 16-bit PCM wavs, two ears, the model's
    rate, each file peak-normalised by one factor for both ears (the talkers' ILD kept)."""
    folder = make_results_folder(tmp_path, ["sphere01_a_-20_0_b_30_0"], n_saved=1, rate=16000, seconds=0.3)
    (example,) = find_examples(folder)
    for _, path in example.files():
        info = sf.info(str(path))
        assert (info.format, info.subtype, info.channels, info.samplerate) == ("WAV", "PCM_16", 2, 16000), path
        assert info.frames == int(0.3 * 16000)
        assert np.abs(sf.read(str(path), dtype="int16")[0].astype(int)).max() == 32767  # full scale, once scaled
    for k, target in enumerate(example.targets):  # binaural_talkers: right ear = (0.5 + 0.3k) x left, delayed
        samples, _ = sf.read(str(target))
        ild = 10 * np.log10(np.sum(samples[:, 0] ** 2) / np.sum(samples[:, 1] ** 2))
        assert ild == pytest.approx(-20 * np.log10(0.5 + 0.3 * k), abs=0.05)


# ---------------------------------------------------------------------------------- a true report
def _table_rows(markdown: str) -> list[list[str]]:
    """The cells of each Markdown table row, split as GFM does: on unescaped ``|`` only."""
    rows = []
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line.strip())[1:-1]
            rows.append([cell.strip() for cell in cells])
    return rows


def test_the_markdown_table_keeps_every_value_in_its_column(results):
    """ΔITD (1/16 sample, |ITD| ≤ 1 ms) holds pipes: escaped, its row still has three cells, the value second."""
    text = write_report(results).read_text(encoding="utf-8")
    rows = _table_rows(text)
    assert rows[0] == ["metric", "average", "unit"]
    assert all(len(row) == 3 for row in rows), [row for row in rows if len(row) != 3]
    fine = [row for row in rows if "`delta_ITD_fine`" in row[0]]
    assert len(fine) == 1 and r"\|ITD\|" in fine[0][0] and fine[0][2] == "µs"
    _, avg = read_results(results / "test_results.csv")
    assert float(fine[0][1]) == pytest.approx(float(avg["delta_ITD_fine"]), abs=0.006)


def _saved_figures(monkeypatch) -> dict[str, object]:
    """The report's matplotlib figures by file name, kept as they are saved."""
    from binaural.evaluation import report

    figures, save = {}, report._save
    monkeypatch.setattr(report, "_save", lambda figure, path: (figures.__setitem__(path.name, figure), save(figure, path)))
    return figures


def test_fine_itd_beside_itd_counts_per_bin_and_whole_epochs(results, monkeypatch):
    figures = _saved_figures(monkeypatch)
    write_report(results)
    histograms = [axes.get_xlabel() for axes in figures[FIGURES["distributions"]].axes]
    assert histograms[1:3] == ["ΔITD (µs)", "ΔITD (1/16 sample, |ITD| ≤ 1 ms) (µs)"], histograms
    separation = figures[FIGURES["separation"]].axes[0]
    counts = [int(t.get_text()[2:]) for t in separation.texts if t.get_text().startswith("n=")]
    usable = sum(separation_of(name) is not None for name in NAMES)
    assert sum(counts) == usable and counts  # every mixture in one bin, each bin labelled
    hollow = [line for line in separation.lines if line.get_markerfacecolor() == "none"]
    assert hollow and len(hollow[0].get_xdata()) == sum(c <= 2 for c in counts)
    curve = figures[FIGURES["curve"]].axes[0]
    ticks = [tick for tick in curve.get_xticks() if curve.get_xlim()[0] <= tick <= curve.get_xlim()[1]]
    assert ticks and all(float(tick).is_integer() for tick in ticks), ticks


def test_the_page_says_how_examples_were_chosen_and_where_the_talkers_are(demo_results):
    """With train.py's chosen_examples.json: only its examples (an earlier run's wavs left out), each
    with its reasons and its talkers' directions from the name, and the rule above them; without it,
    the page says the choice is not recorded."""
    import json

    write_report(demo_results)
    assert "is not recorded" in Page(demo_results / PAGE_NAME).text
    names = demo_names(len(DEMO_NOISE))
    record = {"rule": "Saved examples: the rule.", "examples": {names[0]: ["first 1"], names[3]: ["worst SNRi", "x"]}}
    (demo_results / "audio_results" / "chosen_examples.json").write_text(json.dumps(record))
    write_report(demo_results)
    page = Page(demo_results / PAGE_NAME)
    assert "Saved examples: the rule." in page.text and "is not recorded" not in page.text
    cells, notes = _example_cells(page), _example_notes(page)
    by_name = {row[1]: note for row, note in zip(cells, notes)}
    assert set(by_name) == {names[0], names[3]}
    assert by_name[names[3]][1] == "chosen as: worst SNRi, x" and by_name[names[0]][1] == "chosen as: first 1"
    # sphere04_003c0103_-65_0_003c0204_15_0: the spherical head, two talkers
    assert by_name[names[3]][0] == "listener sphere04: talker 1 az -65° el 0°; talker 2 az 15° el 0°", names[3]


def test_thumbnails_have_time_and_frequency_axes(demo_results):
    """Each thumbnail: time (s) below, kHz from 0 to half the file's rate for each ear (L above R)."""
    from matplotlib import colormaps

    from binaural.evaluation.report import THUMBNAIL_SIZE, thumbnail_figure

    write_report(demo_results)
    thumbnail = sorted((demo_results / PAGE_FILES).glob("*.png"))[0]
    assert imread(thumbnail).shape[:2] == (THUMBNAIL_SIZE[1], THUMBNAIL_SIZE[0])
    samples, rate = sf.read(sorted((demo_results / "audio_results").glob("*_mix.wav"))[0])
    image = spectrogram_image(samples, rate)
    figure = thumbnail_figure(image, rate, len(samples) / rate, colormaps["magma"], (-80.0, 0.0))
    axes = figure.axes[0]
    assert axes.get_xlabel() == "time (s)" and axes.get_ylabel() == "kHz"
    assert axes.get_xlim() == pytest.approx((0.0, len(samples) / rate))
    labels = [label.get_text() for label in axes.get_yticklabels()]
    assert labels == ["0", "2", "0", "2", "4"]  # 8 kHz files: 0-4 kHz per ear
    assert sorted(text.get_text() for text in axes.texts) == ["L", "R"]
