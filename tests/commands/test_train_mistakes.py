"""train.py under a user's mistakes, through the real command line: one line each, nothing lost.

Every case of issue 21's point 2 (a misspelt, mistyped, out-of-range or repeated option, an
hparams file that is not YAML or not text, an output folder that is a file, fp16 on a CPU, a full
disk while saving, ``--N_epochs 0``), two runs into one folder (point 6), and issue 22's point 4:
a missing WSJ0 is said before any download is tried, once.
"""
from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import (
    FAST,
    PROJECT_ROOT,
    TINY_MODEL,
    checkpoints,
    generate_dataset,
    recipe_command,
    run,
    train_log_epochs,
)

HPARAMS = "convtasnet-parallel.yaml"


def one_error_line(result: subprocess.CompletedProcess, *expected: str) -> str:
    """The run failed with exactly one line on stderr, ``train.py: error: ...`` holding ``expected``."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode != 0, result.stdout[-2000:]
    assert "Traceback" not in result.stderr + result.stdout, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("train.py: error: "), result.stderr[-3000:]
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def data_2spk(tiny_wsj_root, tmp_path_factory) -> Path:
    return generate_dataset(tiny_wsj_root, tmp_path_factory.mktemp("data2"), 2)


# --------------------------------------------------------------------------------------------------
# Options and hparams files: refused before any work
# --------------------------------------------------------------------------------------------------

#: (extra command-line arguments, what the one line must say). ``{tmp}`` is the test's folder.
OPTION_MISTAKES = {
    "misspelt option": (["--N_epoch", "3"], ["unknown option --N_epoch", "did you mean --N_epochs"]),
    "text for an integer": (["--N_epochs", "abc"], ["--N_epochs abc", "N_epochs takes an integer >= 0"]),
    "text for a number": (["--lr", "abc"], ["--lr abc", "lr takes a number > 0", "0.00015"]),
    "zero batch": (["--batch_size", "0"], ["--batch_size 0", "batch_size must be an integer >= 1"]),
    "negative learning rate": (["--lr", "-0.1"], ["--lr -0.1", "lr must be a number > 0"]),
    "foreign rate": (["--sample_rate", "44100"], ["--sample_rate 44100", "one of 8000, 16000"]),
    "zero length": (["--training_signal_len", "0"], ["--training_signal_len 0", "integer >= 1"]),
    "repeated option": (["--N_epochs", "1", "--N_epochs", "2"], ["--N_epochs is given twice (1 and 2)"]),
    "mapping for a number": (["--P", "{a: 1}"], ["--P a mapping", "P takes an integer >= 1"]),
    "unfinished list": (["--speed_changes", "[95, 100"], ["--speed_changes [95, 100: not a valid value"]),
    "bad run option": (["--max_grad_norm", "x"], ["--max_grad_norm", "invalid float value: 'x'"]),
    "fp16 on a CPU": (["--precision", "fp16"], ["--precision fp16", "CUDA", "--precision bf16"]),
}


@pytest.mark.parametrize("mistake", sorted(OPTION_MISTAKES))
def test_an_option_mistake_is_one_line_before_any_work(mistake, tmp_path):
    extra, expected = OPTION_MISTAKES[mistake]
    if mistake == "fp16 on a CPU" and torch.cuda.is_available():
        pytest.skip("fp16 runs on this machine's GPU")
    out = tmp_path / "exp"
    result = run(recipe_command(HPARAMS, tmp_path / "data", tmp_path / "wsj", out, *extra))
    one_error_line(result, *expected)
    assert not (tmp_path / "data").exists() and not (out / "log.txt").exists()  # nothing was started


HPARAMS_FILES = {
    "binary": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8", ["not a text file"]),
    "not YAML": (b"seed: 1\nmodel: [1, 2\nlr: 3\n", ["not valid YAML (line 3"]),
    "no mapping": (b"just some words\n", ["holds no `key: value` mapping"]),
}


@pytest.mark.parametrize("kind", sorted(HPARAMS_FILES))
def test_an_hparams_file_that_is_not_one_is_one_line(kind, tmp_path):
    content, expected = HPARAMS_FILES[kind]
    path = tmp_path / "hparams.yaml"
    path.write_bytes(content)
    result = run([sys.executable, "train.py", str(path), "--data_folder", str(tmp_path / "d"),
                  "--wsj_root", str(tmp_path / "w"), "--output_folder", str(tmp_path / "exp")])
    one_error_line(result, str(path), *expected)


@pytest.mark.parametrize("where", ["the folder", "a parent"])
def test_an_output_folder_that_is_a_file_is_one_line(where, tmp_path):
    file = tmp_path / "results.txt"
    file.write_text("the user's notes\n")
    out = file if where == "the folder" else file / "exp"
    result = run(recipe_command(HPARAMS, tmp_path / "data", tmp_path / "wsj", out))
    one_error_line(result, f"--output_folder {out}: not a folder")
    assert file.read_text() == "the user's notes\n"


# --------------------------------------------------------------------------------------------------
# What happens during a run
# --------------------------------------------------------------------------------------------------


def test_zero_epochs_says_nothing_was_trained(data_2spk, tiny_wsj_root, tmp_path):
    result = run(recipe_command(HPARAMS, data_2spk, tiny_wsj_root, tmp_path / "exp", "--N_epochs", "0"))
    line = one_error_line(result, "nothing was trained (N_epochs is 0)", "--N_epochs 1 or more")
    assert "--test_only" not in line


# train.py as the user runs it, except that the disk is full (torch.save writes to /dev/full) when
# epoch 2's masknetL.ckpt is saved.
FULL_DISK = """
import sys
import torch
from speechbrain.utils import checkpoints as sb_checkpoints

plain_save, saves = sb_checkpoints.DEFAULT_SAVE_HOOKS[torch.nn.Module], []

def save_on_a_full_disk(module, path):
    saves.append(path.name)
    plain_save(module, "/dev/full" if saves.count("masknetL.ckpt") == 2 else path)

sb_checkpoints.DEFAULT_SAVE_HOOKS[torch.nn.Module] = save_on_a_full_disk
import train
sys.exit(train.main(sys.argv[1:]))
"""


def test_a_full_disk_during_a_checkpoint_save_is_one_line_naming_the_folder(data_2spk, tiny_wsj_root, tmp_path):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    out = tmp_path / "exp"
    command = recipe_command(HPARAMS, data_2spk, tiny_wsj_root, out, "--N_epochs", "2")
    result = run([sys.executable, "-c", FULL_DISK, *command[2:]])
    one_error_line(result, f"{out / 'save'}: the checkpoint could not be saved", "is the disk full?")
    [kept] = checkpoints(out)  # epoch 1's, whole; epoch 2's never appeared
    assert (kept / "counter.ckpt").read_text() == "1"
    assert not [p for p in (out / "save").iterdir() if p.name.startswith(".")]
    assert "the checkpoint could not be saved" in (out / "log.txt").read_text()


# --------------------------------------------------------------------------------------------------
# One writer per experiment folder
# --------------------------------------------------------------------------------------------------

# train.py as the user runs it, paused after epoch 1 (its checkpoint saved) until RELEASE exists.
PAUSED_TRAINING = """
import sys, time
from pathlib import Path
import speechbrain as sb
import train

held, release = Path(sys.argv[1]), Path(sys.argv[2])
plain_end = train.Separation.on_stage_end

def on_stage_end(self, stage, stage_loss, epoch=None):
    plain_end(self, stage, stage_loss, epoch)
    if stage == sb.Stage.VALID and epoch == 1:
        held.touch()
        while not release.exists():
            time.sleep(0.05)

train.Separation.on_stage_end = on_stage_end
sys.exit(train.main(sys.argv[3:]))
"""


def test_a_second_run_into_a_busy_folder_stops_at_once_naming_the_running_one(data_2spk, tiny_wsj_root, tmp_path):
    out, held, release = tmp_path / "exp", tmp_path / "held", tmp_path / "release"
    command = recipe_command(HPARAMS, data_2spk, tiny_wsj_root, out, "--N_epochs", "2")
    first = subprocess.Popen([sys.executable, "-c", PAUSED_TRAINING, str(held), str(release), *command[2:]],
                             cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not held.exists():
            assert first.poll() is None, first.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "the first run never finished its first epoch"
            time.sleep(0.1)
        [epoch_1] = checkpoints(out)
        files = {p.name: p.read_bytes() for p in epoch_1.iterdir()}
        second = run(command)
        one_error_line(second, f"the experiment folder {out} is being written by another run", f"pid {first.pid} on ")
        assert checkpoints(out) == [epoch_1] and {p.name: p.read_bytes() for p in epoch_1.iterdir()} == files
    finally:
        release.touch()
        stderr = first.communicate(timeout=300)[1]
    assert first.returncode == 0, stderr[-3000:]
    assert [epoch for epoch, _ in train_log_epochs(out)] == [1, 2]  # each epoch once
    assert (out / "test_results.csv").exists()
    assert not (out / ".train.lock.owner").exists()


# --------------------------------------------------------------------------------------------------
# The user's folders first, before the network; every error once
# --------------------------------------------------------------------------------------------------


class _CountingHandler(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).requests.append(self.path)
        self.send_error(404)

    do_HEAD = do_GET

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def counting_server() -> Iterator[tuple[str, list[str]]]:
    """A local archive URL and the list of requests it received."""
    _CountingHandler.requests = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/BinauralWSJ0Mix-main.zip", _CountingHandler.requests
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("wsj_root", ["empty", "absent"])
def test_a_missing_wsj0_is_said_before_any_download_and_once(wsj_root, counting_server, tmp_path):
    from binaural.data.sources import URL_ENV_VAR

    url, requests = counting_server
    root = tmp_path / "wsj"
    if wsj_root == "empty":
        root.mkdir()
    out = tmp_path / "exp"
    # The official dataset (no own metadata): the generator would download its metadata first.
    command = [sys.executable, "train.py", f"hparams/{HPARAMS}", "--data_folder", str(tmp_path / "data"),
               "--wsj_root", str(root), "--output_folder", str(out), *TINY_MODEL, *FAST]
    result = run(command, **{URL_ENV_VAR: url})
    line = one_error_line(result, f"--wsj_root {root}", "wsj0/")
    assert requests == []
    message = line.removeprefix("train.py: error: ")
    assert message not in result.stdout  # printed once, on stderr
    assert (out / "log.txt").read_text().count(message) == 1  # and kept in the experiment's log
    assert not (tmp_path / "data").exists()


def test_no_false_torchvision_warning_but_the_others_pass(caplog):
    import logging

    from binaural.training.experiment import FALSE_MESSAGES, silence_false_messages

    silence_false_messages()
    [(name, messages)] = FALSE_MESSAGES.items()
    logger = logging.getLogger(name)
    with caplog.at_level(logging.WARNING, logger=name):
        for message in messages:
            logger.warning(message)
        logger.warning("another warning")
    assert [record.getMessage() for record in caplog.records] == ["another warning"]
    # SpeechBrain still emits it from that logger (a moved message would make the filter useless).
    import speechbrain.utils.train_logger as train_logger

    assert train_logger.__name__ == name and all(m in Path(train_logger.__file__).read_text() for m in messages)
