"""``separate.py --report``: the listening page of a user's own recordings (mixtures and estimates,
no references, so no metrics), written into the output folder only."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import PROJECT_ROOT, Page, binaural_talkers
from speechbrain.utils.checkpoints import Checkpointer

from binaural.models.tasnet import published_recoverables
from binaural.evaluation.report import PAGE_FILES, PAGE_NAME
from binaural.separation.separator import load_hparams
from separate import main

YAML = PROJECT_ROOT / "hparams" / "convtasnet-parallel.yaml"
TINY = {"N_encoder_out": 8, "B": 8, "H": 16, "X": 2, "R": 1}
# Two recordings at a rate that is not the model's, one with a name a URL must encode.
RECORDINGS = ("kitchen.wav", "meeting room #2.wav")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """A CKPT+ folder of the tiny parallel model, saved by SpeechBrain's Checkpointer (random weights)."""
    save = tmp_path_factory.mktemp("experiment") / "save"
    model = load_hparams(YAML, TINY)["Model"]
    return Path(Checkpointer(save, recoverables=published_recoverables(model)).save_checkpoint(meta={"valid_snr": 1.0}).path)


def _recordings(folder: Path, rate: int = 16000) -> list[Path]:
    folder.mkdir()
    rng = np.random.default_rng(3)
    paths = []
    for name in RECORDINGS:
        mixture = binaural_talkers(rng, int(0.5 * rate), rate, 2).sum(axis=-1)
        sf.write(folder / name, mixture, rate, subtype="PCM_16")
        paths.append(folder / name)
    return paths


def _separate(checkpoint: Path, inputs: Path, out: Path, *extra: str) -> int:
    overrides = [item for key, value in TINY.items() for item in ("--override", f"{key}={value}")]
    return main(["--hparams", str(YAML), "--checkpoint", str(checkpoint), *overrides,
                 "--input", str(inputs), "--output_dir", str(out), *extra])


def test_report_of_two_recordings(tmp_path, checkpoint, capsys):
    recordings = _recordings(tmp_path / "recordings")
    before = {p: p.read_bytes() for p in recordings}
    out = tmp_path / "separated"
    assert _separate(checkpoint, tmp_path / "recordings", out, "--report") == 0
    assert f"listening page: {out / PAGE_NAME}" in capsys.readouterr().out
    page = Page(out / PAGE_NAME)
    players = [page.file(a["src"]) for a in page.all("audio")]
    expected = []
    for recording in recordings:  # per row: the mixture where it is, then each talker's estimate
        expected += [recording.resolve()] + [(out / f"{recording.stem}_s{k}.wav").resolve() for k in (1, 2)]
    assert players == expected and all(p.is_file() for p in players)
    assert [a["title"] for a in page.all("audio")] == ["mixture", "talker 1 estimate", "talker 2 estimate"] * 2
    thumbnails = [page.file(i["src"]) for i in page.all("img")]
    assert len(thumbnails) == 6 and all(p.parent == (out / PAGE_FILES).resolve() and p.is_file() for p in thumbnails)
    assert "SNRi" not in page.text and "target" not in page.text and "no references" in page.text
    assert re.findall(r"<th>(.*?)</th>", page.source) == ["#", "recording", "mixture", "talker 1", "talker 2"]
    assert "best" not in page.text and "worst" not in page.text  # nothing to rank without metrics
    assert all(stem in page.text for stem in ("kitchen", "meeting room #2"))
    assert "The model runs at 8000 Hz" in page.text and "nothing above 4 kHz" in page.text  # why they are blank there
    # Written in the output folder only: the recordings are as they were, and alone in theirs.
    assert {p: p.read_bytes() for p in recordings} == before
    assert sorted(p.name for p in (tmp_path / "recordings").iterdir()) == sorted(RECORDINGS)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [PAGE_NAME, PAGE_FILES] + [f"{Path(n).stem}_s{k}.wav" for n in RECORDINGS for k in (1, 2)]
    )


def test_no_report_unless_asked(tmp_path, checkpoint):
    _recordings(tmp_path / "recordings")
    assert _separate(checkpoint, tmp_path / "recordings" / "kitchen.wav", tmp_path / "out") == 0
    assert not (tmp_path / "out" / PAGE_NAME).exists() and not (tmp_path / "out" / PAGE_FILES).exists()


def test_a_failed_input_is_left_out_of_the_page(tmp_path, checkpoint):
    _recordings(tmp_path / "recordings")
    sf.write(tmp_path / "recordings" / "mono.wav", np.zeros(4000), 16000)  # refused: no interaural cues
    assert _separate(checkpoint, tmp_path / "recordings", tmp_path / "out", "--report") == 1
    page = Page(tmp_path / "out" / PAGE_NAME)
    assert len(page.all("audio")) == 6 and "mono" not in page.text
