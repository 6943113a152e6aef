"""Shared fixtures: the real data in ``../shared/data`` and small WSJ0-shaped trees."""
from __future__ import annotations

import csv
import math
import os
import re
import shutil
import socket
import subprocess
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


@pytest.fixture(scope="session")
def librimix_metadata_dir() -> Path:
    """The public LibriMix metadata (its MIT licence beside it)."""
    return _shared("librimix_metadata")


#: LibriMix's CSV of each split folder (the generator's own mapping is what the tests check).
LIBRIMIX_CSV_SUBSETS = {"train-100": "train-clean-100", "dev": "dev-clean", "test": "test-clean"}


def librimix_tree(metadata: Path, speech: Path, noise: Path, dest: Path, n_spks: int, rows: int,
                  short_noise: bool = True) -> tuple[Path, Path, Path]:
    """A tiny Binaural LibriMix input: ``(metadata_dir, librispeech_root, wham_root)`` under ``dest``.

    The first ``rows`` rows of each split's real LibriMix CSV; every LibriSpeech file they name
    written as FLAC (the 12 real utterances, in turn) at its LibriSpeech path; every WHAM! file
    they name written as a two-channel 16 kHz float wav of two different real noise recordings
    (the first one 0.75 s long when ``short_noise``, so LibriMix's noise extension runs).
    """
    metadata_dir, librispeech, wham = dest / "metadata", dest / "LibriSpeech", dest / "wham_noise"
    folder = metadata_dir / f"Libri{n_spks}Mix"
    folder.mkdir(parents=True, exist_ok=True)
    utterances = sorted(speech.glob("spk*_snt*.wav"))
    noises = sorted(noise.glob("noise*.wav"))
    written = 0
    for subset in LIBRIMIX_CSV_SUBSETS.values():
        name = f"libri{n_spks}mix_{subset}.csv"
        with open(metadata / folder.name / name, newline="") as handle:
            table = list(csv.DictReader(handle))[:rows]
        with open(folder / name, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
        for number, row in enumerate(table):
            for k in range(1, n_spks + 1):
                target = librispeech / row[f"source_{k}_path"]
                if not target.exists():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    data, rate = sf.read(str(utterances[written % len(utterances)]), dtype="int16")
                    sf.write(str(target), data, rate, format="FLAC", subtype="PCM_16")
                    written += 1
            target = wham / row["noise_path"]
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                left, _ = sf.read(str(noises[number % len(noises)]), dtype="float32")
                right, _ = sf.read(str(noises[(number + 1) % len(noises)]), dtype="float32")
                length = 12000 if short_noise and number == 0 else min(len(left), len(right), 80000)
                sf.write(str(target), np.stack([left[:length], right[:length]], axis=1), 16000, subtype="FLOAT")
    return metadata_dir, librispeech, wham


#: Taps of the fake room responses (3000 at 16 kHz: 0.19 s).
BRIR_TAPS = 3000


def fake_brir(rir_dir: Path, k: int) -> np.ndarray:
    """A stereo ``[taps, 2]`` room response from the real RIRs: two rooms' responses, the right
    ear 6 samples later and 3 dB quieter (a source on the left)."""
    rirs = [sf.read(str(rir_dir / f"rir{j}.wav"))[0] for j in (1, 2, 3, 4)]
    left = rirs[k % 4][:BRIR_TAPS]
    right = 0.7 * np.concatenate([np.zeros(6), rirs[(k + 1) % 4][: BRIR_TAPS - 6]])
    fade = np.linspace(1, 0, 200)
    brir = np.stack([np.pad(left, (0, BRIR_TAPS - len(left))), np.pad(right, (0, BRIR_TAPS - len(right)))], 1)
    brir[-200:] *= fade[:, None]
    return brir


def catt_tree(rir_dir: Path, dest: Path, pairs) -> Path:
    """``CATT_RIRs/Binaural/16k/<rt>/CATT_<rt>_<az>.wav`` (stereo int16, 16 kHz) for ``pairs``;
    four distinct responses, linked."""
    root = dest / "CATT_RIRs" / "Binaural" / "16k"
    stock = dest / ".stock"
    stock.mkdir(parents=True, exist_ok=True)
    for k in range(4):
        brir = fake_brir(rir_dir, k)
        sf.write(str(stock / f"{k}.wav"), brir / np.max(np.abs(brir)) * 0.9, 16000, subtype="PCM_16")
    for i, (rt, az) in enumerate(sorted(set(pairs))):
        (root / rt).mkdir(parents=True, exist_ok=True)
        os.symlink(stock / f"{i % 4}.wav", root / rt / f"CATT_{rt}_{az}.wav")
    return dest / "CATT_RIRs"


def official_subset(official_metadata_dir: Path, dest: Path, n_spks: int, split: str, rows: int) -> Path:
    """The first ``rows`` official mixtures of a split, in the official formats."""
    from binaural.data.metadata import metadata_paths

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
    from binaural.data.metadata import metadata_paths

    voices = sorted(speech_dir.glob("spk*_snt*.wav"))
    with open(metadata_paths(metadata_dir, n_spks, split)["filenames"]) as handle:
        rows = list(csv.DictReader(handle))
    for i, row in enumerate(rows):
        for k in range(n_spks):
            target = dest / row[f"s{k + 1}_path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(voices[(i * n_spks + k) % len(voices)], target)
    return dest


# --------------------------------------------------------------------------------------------------
# Results folders as train.py leaves them (test_results.csv, audio_results/), and the report pages
# --------------------------------------------------------------------------------------------------

#: train.py's log (SpeechBrain's FileTrainLogger formatting): the loss is the negative SNR.
RECIPE_TRAIN_LOG = """\
epoch: 1, lr: 1.50e-04 - train loss: -2.34e+00, train nonfinite_count: 0 - valid loss: -3.10e+00, valid snr: 3.10e+00
epoch: 2, lr: 1.50e-04 - train loss: -5.01e+00, train nonfinite_count: 0 - valid loss: -5.50e+00, valid snr: 5.50e+00
epoch: 3, lr: 7.50e-05 - train loss: -7.20e+00, train nonfinite_count: 1 - valid loss: -6.80e+00, valid snr: 6.80e+00
Epoch loaded: 3 - test loss: -6.50e+00, test snr: 6.50e+00, test snr_i: 6.61e+00
"""
#: A file name no page may show unescaped or link unencoded (``/`` is the only byte a name cannot hold).
HOSTILE_NAME = "sphere07_<img src=x onerror=alert(1)>&amp;\"'#?%41 ü_-20_0_b_30_0"


def demo_names(count: int) -> list[str]:
    """Test ids in the generator's spelling, ``listener_utt1_az1_el1_utt2_az2_el2`` (spherical head)."""
    return [f"sphere{k % 45 + 1:02d}_{k:03d}c010{k % 9}_{-80 + 5 * (k % 33)}_0_{k:03d}c020{k % 7}_{5 * (k % 17)}_0"
            for k in range(count)]


def binaural_talkers(rng, n_samples: int, rate: int, n_spks: int):
    """``[time, ear, speaker]`` talkers in bursts (harmonics over noise, so that GCC-PHAT finds one
    lag), each from its own side: the right ear delayed by ``2 + 3k`` samples and scaled by ``0.5 + 0.3k``."""
    import numpy as np

    t = np.arange(n_samples) / rate
    envelope = 0.5 - 0.5 * np.cos(2 * np.pi * 3 * t)  # syllable-rate bursts
    talkers = []
    for k in range(n_spks):
        f0 = 110.0 * (k + 1) + 20 * rng.random()
        voice = envelope * (sum(np.sin(2 * np.pi * h * f0 * t) / h for h in range(1, 6)) + rng.standard_normal(n_samples))
        delay, gain = 2 + 3 * k, 0.5 + 0.3 * k
        right = gain * np.concatenate([np.zeros(delay), voice[:-delay]])
        talkers.append(np.stack([voice, right], axis=1))
    return 0.2 * np.stack(talkers, axis=-1)


def make_results_folder(
    folder: Path, names: list[str], n_saved: int, noise: list[float] | None = None,
    rate: int = 8000, seconds: float = 0.4, n_spks: int = 2, train_log: str | None = RECIPE_TRAIN_LOG,
) -> Path:
    """A results folder as train.py's test stage leaves it: scored utterances and saved examples.

    Each utterance's estimates are its targets plus white noise of level ``noise[i]`` (so a smaller
    level scores a higher SNRi); metrics by ``metrics.evaluate_utterance`` and ``write_results_csv``,
    the first ``n_saved`` examples written by ``train.Separation.save_audio`` itself
    (``audio_results_folder``), the log as train.py's.
    """
    from types import SimpleNamespace

    import numpy as np
    import torch

    import train
    from binaural.evaluation.metrics import evaluate_utterance, write_results_csv

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    noise = noise if noise is not None else list(np.linspace(0.01, 0.3, len(names)))
    brain = SimpleNamespace(hparams=SimpleNamespace(audio_results_folder=str(folder / "audio_results"),
                                                    sample_rate=rate))
    rows = []
    for index, name in enumerate(names):
        targets = binaural_talkers(rng, int(seconds * rate), rate, n_spks)  # [time, ear, speaker]
        estimates = targets + noise[index] * rng.standard_normal(targets.shape)
        mixture = targets.sum(axis=-1)
        rows.append({"snt_id": name, **evaluate_utterance(mixture, targets, estimates, rate)})
        if index < n_saved:
            as_tensor = lambda a: torch.from_numpy(a).float()  # noqa: E731 - what score_test_batch hands over
            train.Separation.save_audio(brain, name, as_tensor(mixture), as_tensor(targets), as_tensor(estimates))
    write_results_csv(rows, folder / "test_results.csv")
    if train_log is not None:
        (folder / "train_log.txt").write_text(train_log)
    return folder


class Page:
    """A parsed HTML page: its elements in order (tag, attributes) and the text a reader sees."""

    def __init__(self, path: Path):
        from html.parser import HTMLParser

        self.path = Path(path)
        self.source = self.path.read_text(encoding="utf-8")
        self.elements: list[tuple[str, dict]] = []
        texts: list[str] = []
        hidden: list[str] = []  # inside <style> or <script>: not text

        class Parser(HTMLParser):
            def handle_starttag(parser, tag, attrs):
                self.elements.append((tag, dict(attrs)))
                if tag in ("style", "script"):
                    hidden.append(tag)

            def handle_endtag(parser, tag):
                if hidden and hidden[-1] == tag:
                    hidden.pop()

            def handle_data(parser, data):
                if not hidden:
                    texts.append(data)

        Parser(convert_charrefs=True).feed(self.source)
        self.text = "".join(texts)

    def all(self, tag: str) -> list[dict]:
        return [attrs for name, attrs in self.elements if name == tag]

    def urls(self) -> list[str]:
        """Every ``src`` and ``href`` of the page."""
        return [attrs[key] for _, attrs in self.elements for key in ("src", "href") if key in attrs]

    def file(self, url: str) -> Path:
        """The file a relative URL of the page names (percent-decoded, relative to the page's folder)."""
        from urllib.parse import unquote, urlsplit

        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and not url.startswith("/"), f"{url}: not a relative link"
        return (self.path.parent / unquote(parts.path)).resolve()


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


# --------------------------------------------------------------------------------------------------
# Trained experiments as train.py leaves them (for separate.py and friends)
# --------------------------------------------------------------------------------------------------

#: Tiny separator sizes (hparams overrides): seconds to build and run.
TINY_SEPARATOR = {"N_encoder_out": 8, "B": 8, "H": 16, "X": 2, "R": 1}


def make_experiment(root: Path, yaml_name: str, hparams_copy: str) -> tuple[Path, dict, dict]:
    """An experiment folder laid out as train.py leaves it, with two checkpoints.

    Returns ``(folder, best_state, latest_state)``: the best checkpoint (higher ``valid_snr``)
    is saved first, a worse one after it, so "best" and "latest" differ.
    """
    import torch
    from hyperpyyaml import load_hyperpyyaml, resolve_references

    folder = root / "exp"
    overrides = {"data_folder": str(root / "data"), "wsj_root": str(root / "wsj"), "output_folder": str(folder)}
    overrides.update(TINY_SEPARATOR)
    text = (PROJECT_ROOT / "hparams" / yaml_name).read_text(encoding="utf-8")
    hparams = load_hyperpyyaml(text, overrides)
    model = hparams["Model"]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):  # a few steps: the weights must differ from the YAML's initialisation
        sources = 0.1 * torch.randn(2, 1200, 2, hparams["num_spks"])
        loss = ((model(sources.sum(-1)) - sources) ** 2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    checkpointer = hparams["checkpointer"]
    best = {k: v.detach().clone() for k, v in model.state_dict().items()}
    checkpointer.save_and_keep_only(meta={"valid_snr": 5.0}, max_keys=["valid_snr"])
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.01)
    latest = {k: v.detach().clone() for k, v in model.state_dict().items()}
    checkpointer.save_and_keep_only(meta={"valid_snr": 1.0}, max_keys=["valid_snr"])
    (folder / hparams_copy).write_text(resolve_references(text, overrides).getvalue(), encoding="utf-8")
    return folder, best, latest


# --------------------------------------------------------------------------------------------------
# train.py end to end: tiny own-mode data, tiny separator, the real command line
# --------------------------------------------------------------------------------------------------

N_MIXTURES = {"tr": 2, "cv": 1, "tt": 2}
TINY_MODEL = ["--N_encoder_out", "16", "--B", "8", "--H", "16", "--X", "2", "--R", "1"]
FAST = [
    "--dataloader_opts", "{num_workers: 0}",
    "--valid_dataloader_opts", "{num_workers: 0}",
    "--test_dataloader_opts", "{num_workers: 0}",
    "--n_audio_to_save", "1",
    "--noprogressbar",
]
OWN_DATA = [
    "--own_metadata", "True",
    "--hrtf_dir", "spherical",
    "--n_mixtures", "{tr: 2, cv: 1, tt: 2}",
    "--num_workers", "1",
]


def generate_dataset(wsj_root: Path, data_folder: Path, n_spks: int) -> Path:
    """A tiny Binaural WSJ0-{n}mix (own metadata, spherical head) in ``data_folder``."""
    from binaural.data.generation import create_binaural_wsj0mix

    from binaural.data.record import GenerationOptions

    create_binaural_wsj0mix(wsj_root, data_folder, GenerationOptions(
        freqs=["8k"], modes=["min"], n_spks=n_spks, own_metadata=True, hrtf_dir="spherical",
        n_mixtures=dict(N_MIXTURES), num_workers=1, progress=False,
    ))
    return data_folder


def recipe_command(hparams: str, data_folder: Path, wsj_root: Path, output_folder: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "train.py", f"hparams/{hparams}",
        "--data_folder", str(data_folder), "--wsj_root", str(wsj_root),
        "--output_folder", str(output_folder), *OWN_DATA, *TINY_MODEL, *FAST, *extra,
    ]


def run(command: list[str], timeout: float = 180, **env) -> subprocess.CompletedProcess:
    environment = os.environ | {"PYTHONUNBUFFERED": "1"} | env
    return subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout, env=environment, check=False
    )


def check_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"


def train_log_epochs(output_folder: Path) -> list[tuple[int, float]]:
    """``(epoch, training loss)`` of every epoch line of train_log.txt, in order."""
    text = (output_folder / "train_log.txt").read_text()
    return [
        (int(m.group(1)), float(m.group(2)))
        for m in re.finditer(r"^epoch: (\d+), .*? train loss: ([-+.\de]+)", text, flags=re.MULTILINE)
    ]


def check_test_results(output_folder: Path, n_utterances: int) -> list[dict]:
    """test_results.csv: one finite row per test utterance, an ``avg`` row, all metrics."""
    from binaural.evaluation.metrics import METRIC_NAMES

    with open(output_folder / "test_results.csv", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        assert reader.fieldnames == ["snt_id"] + METRIC_NAMES
    assert len(rows) == n_utterances + 1
    assert rows[-1]["snt_id"] == "avg"
    for row in rows:
        assert all(math.isfinite(float(row[name])) for name in METRIC_NAMES), row
    for name in METRIC_NAMES:
        mean = np.mean([float(row[name]) for row in rows[:-1]])
        assert float(rows[-1][name]) == pytest.approx(mean)
    return rows


def checkpoints(output_folder: Path) -> list[Path]:
    return sorted((output_folder / "save").glob("CKPT+*"))


def noise_burst_talker(n: int, itd: int, gain: float, seed: int):
    """``[1, n, 2]``: a noise burst; the right ear delayed by ``itd`` samples and scaled by ``gain``."""
    import torch

    g = torch.Generator().manual_seed(seed)
    left = torch.randn(1, n, generator=g) * torch.hann_window(n)  # tapered: circular shifts wrap silence
    right = gain * torch.roll(left, itd, dims=1)
    return torch.stack((left, right), dim=-1)


# DDP launchers: both forms of the README, on CPU (gloo)

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


LAUNCHERS = {
    # `torchrun` is this module's console script; -m keeps the test independent of PATH.
    "torchrun": lambda port: [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                              f"--master_port={port}"],
    "legacy": lambda port: [sys.executable, "-m", "torch.distributed.launch", "--nproc_per_node=2",
                            f"--master_port={port}"],
}


# ---------------------------------------------------------------------------------- small separators
TASNET_KERNEL, TASNET_STRIDE = 16, 8  # encoder window and hop: 2 ms and 1 ms at 8 kHz


def make_tasnet(variant=None, *, n_filters: int = 16, bottleneck: int = 8, hidden: int = 16, blocks: int = 3,
                repeats: int = 2, n_spks: int = 2, causal: bool = True, norm: str = "cLN", seed: int = 0):
    """A small binaural TasNet (``binaural_tasnet.ParallelTasNet`` unless ``variant``) from SpeechBrain
    lobes, with random weights: every cLN gain/bias and PReLU slope too, so that no parameter keeps an
    identity value that would hide a mistake."""
    import torch
    from speechbrain.lobes.models.conv_tasnet import MaskNet
    from speechbrain.lobes.models.dual_path import Decoder, Encoder

    from binaural.models import tasnet as bt
    variant = variant or bt.ParallelTasNet
    torch.manual_seed(seed)
    n_in = 2 * n_filters if variant is bt.ParallelTasNet else n_filters

    def masknet() -> MaskNet:
        return MaskNet(N=n_in, B=bottleneck, H=hidden, P=3, X=blocks, R=repeats, C=n_spks,
                       norm_type=norm, causal=causal, mask_nonlinear="relu")

    def decoder() -> Decoder:
        return Decoder(in_channels=n_filters, out_channels=1, kernel_size=TASNET_KERNEL, stride=TASNET_STRIDE, bias=False)

    model = variant(
        Encoder(kernel_size=TASNET_KERNEL, out_channels=n_filters), Encoder(kernel_size=TASNET_KERNEL, out_channels=n_filters),
        masknet(), masknet(), decoder(), decoder(),
    )
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("gamma", "beta")) or ".act" in name:
                param.add_(0.3 * torch.randn_like(param))
    return model.eval()


def offline(model, mix):
    """``[time, 2] -> [time, 2, C]``: the model on the whole signal."""
    import torch

    with torch.inference_mode():
        return model(mix.unsqueeze(0))[0]


def feed_stream(engine, mix, chunk: int):
    """Feed ``mix`` ``[time, 2]`` to a streaming engine (``reset`` / ``process_chunk`` / ``flush``) in
    chunks of ``chunk`` samples, the last one shorter; returns the outputs concatenated."""
    import torch

    engine.reset()
    pieces = [engine.process_chunk(mix[i : i + chunk]) for i in range(0, mix.shape[0], chunk)]
    pieces.append(engine.flush())
    return torch.cat(pieces)


def stream_with_engines(experiment: list[str], folder: Path, engines: tuple[str, ...], chunk_ms: str,
                        seed: int) -> dict[str, list[np.ndarray]]:
    """``separate.py --streaming`` of one 4001-sample 8 kHz mixture with each ``--engine``; each
    engine's talker estimates (``[time, 2]`` arrays), read back from ``folder/<engine>/``."""
    from separate import main

    rng = np.random.default_rng(seed)
    sf.write(folder / "mix.wav", 0.1 * rng.standard_normal((4001, 2)), 8000, subtype="FLOAT")
    estimates = {}
    for engine in engines:
        status = main([*experiment, "--input", str(folder / "mix.wav"), "--output_dir", str(folder / engine),
                       "--streaming", "--chunk_ms", chunk_ms, "--engine", engine])
        assert status == 0
        estimates[engine] = [sf.read(folder / engine / f"mix_s{k}.wav")[0] for k in (1, 2)]
    return estimates


class CodeRunningPayload:
    """A crafted pickle: unpickling it creates ``proof``, the evidence that a load ran code."""

    def __init__(self, proof: Path) -> None:
        self.proof = proof

    def __reduce__(self):
        return (Path.touch, (self.proof,))
