"""Specification of ``checkpoints.py``: a checkpoint is complete or absent, a damaged one is skipped.

The checkpointer is the hparams files' (``hparams/convtasnet-parallel.yaml``, tiny sizes); the
kill test runs a real process, SIGKILLed while ``torch.save`` is halfway through ``masknetL.ckpt``.
"""
from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import torch
from conftest import PROJECT_ROOT, CodeRunningPayload, sigkill_when_marked
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.checkpoints import Checkpointer

from binaural.training.checkpoints import KNOWN_CHECKPOINT_KEYS, CheckpointError, IntactCheckpointer, file_damage

TINY = {"N_encoder_out": 8, "B": 8, "H": 8, "X": 1, "R": 1}


RECIPE = PROJECT_ROOT / "hparams" / "convtasnet-parallel.yaml"


def recipe_overrides(output_folder: Path, **extra) -> dict:
    return {"data_folder": "/nonexistent", "wsj_root": "/nonexistent", "output_folder": str(output_folder), **TINY, **extra}


def recipe_hparams(output_folder: Path, **extra) -> dict:
    """hparams/convtasnet-parallel.yaml with tiny sizes, writing under ``output_folder``."""
    with open(RECIPE, encoding="utf-8") as handle:
        return load_hyperpyyaml(handle, recipe_overrides(output_folder, **extra))


def state(module: torch.nn.Module) -> dict:
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


def same(module: torch.nn.Module, expected: dict) -> bool:
    return all(torch.equal(value, expected[key]) for key, value in module.state_dict().items())


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def bump(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(1.0)


@pytest.fixture
def recipe(tmp_path):
    """``(hparams, checkpointer)`` of the recipe YAML, checkpoints under ``tmp_path/exp/save``."""
    hparams = recipe_hparams(tmp_path / "exp")
    return hparams, hparams["checkpointer"]


# ------------------------------------------------------------------------------------------ saving
def test_the_recipe_files_declare_it(recipe):
    _, checkpointer = recipe
    assert type(checkpointer) is IntactCheckpointer


def test_save_then_load_is_identical_and_leaves_only_the_checkpoint(recipe):
    hparams, checkpointer = recipe
    model = hparams["Model"]
    saved = state(model)
    checkpoint = checkpointer.save_checkpoint(meta={"valid_snr": 3.0})
    assert sorted(p.name for p in checkpointer.checkpoints_dir.iterdir()) == [checkpoint.path.name]
    assert sorted(p.name for p in checkpoint.path.iterdir()) == sorted(
        ["CKPT.yaml", "encoderL.ckpt", "encoderR.ckpt", "masknetL.ckpt", "masknetR.ckpt", "decoderL.ckpt",
         "decoderR.ckpt", "counter.ckpt", "lr_scheduler.ckpt"]
    )
    assert all(path.parent == checkpoint.path for path in checkpoint.paramfiles.values())
    bump(model)
    assert checkpointer.recover_if_possible() == checkpoint
    assert same(model, saved)
    # A plain SpeechBrain Checkpointer (the published recipe's) reads it as its own.
    plain = Checkpointer(checkpointer.checkpoints_dir, recoverables=checkpointer.recoverables)
    assert [c.path for c in plain.list_checkpoints()] == [checkpoint.path]


def test_a_named_checkpoint_saved_again_is_replaced_whole(recipe):
    hparams, checkpointer = recipe
    checkpointer.save_checkpoint(name="fixed")
    bump(hparams["Model"])
    newer = state(hparams["Model"])
    checkpointer.save_checkpoint(name="fixed")
    assert sorted(p.name for p in checkpointer.checkpoints_dir.iterdir()) == ["CKPT+fixed"]
    bump(hparams["Model"])
    checkpointer.recover_if_possible()
    assert same(hparams["Model"], newer)


KILLED_SAVE = """
import io, json, sys, time
from pathlib import Path
import torch
from hyperpyyaml import load_hyperpyyaml

with open(sys.argv[3], encoding="utf-8") as handle:
    hparams = load_hyperpyyaml(handle, json.loads(sys.argv[4]))
checkpointer = hparams["checkpointer"]
checkpointer.save_checkpoint(meta={"valid_snr": 1.0})  # a whole checkpoint first

def half_then_hang(module, path):  # torch.save caught halfway through by the kill
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    with open(path, "wb") as handle:
        handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    Path(sys.argv[2]).touch()
    time.sleep(600)

checkpointer.custom_save_hooks["masknetL"] = half_then_hang
with torch.no_grad():
    for parameter in hparams["Model"].parameters():
        parameter.add_(1.0)
checkpointer.save_checkpoint(meta={"valid_snr": 9.0})  # better, but never finished
"""


def kill_during_save(output_folder: Path, marker: Path) -> None:
    """Run :data:`KILLED_SAVE`; SIGKILL it once ``masknetL.ckpt`` of its second save is half written."""
    sigkill_when_marked([sys.executable, "-c", KILLED_SAVE, str(output_folder), str(marker), str(RECIPE),
                         json.dumps(recipe_overrides(output_folder))], marker)


def test_a_save_killed_halfway_leaves_no_checkpoint(tmp_path, caplog):
    kill_during_save(tmp_path / "exp", tmp_path / "halfway")
    hparams = recipe_hparams(tmp_path / "exp")
    checkpointer = hparams["checkpointer"]
    [intact] = checkpointer.list_checkpoints()  # the killed save is not a checkpoint
    assert intact.meta["valid_snr"] == 1.0
    assert checkpointer.find_best_checkpoint() == (intact, "best by max valid_snr")
    assert checkpointer.recover_if_possible() == intact
    # Its files were in a staging folder, which the next save removes.
    leftovers = [p.name for p in checkpointer.checkpoints_dir.iterdir() if p != intact.path]
    assert len(leftovers) == 1 and leftovers[0].startswith(".CKPT+") and leftovers[0].endswith(".saving")
    checkpointer.save_checkpoint(meta={"valid_snr": 2.0})
    assert all(p.name.startswith("CKPT+") for p in checkpointer.checkpoints_dir.iterdir())
    assert len(checkpointer.list_checkpoints()) == 2


# ------------------------------------------------------------------------------------------ loading
def test_a_truncated_savefile_is_skipped_for_the_newest_intact_one(recipe, caplog):
    hparams, checkpointer = recipe
    model = hparams["Model"]
    older_state = state(model)
    older = checkpointer.save_checkpoint(meta={"valid_snr": 1.0})
    bump(model)
    newer = checkpointer.save_checkpoint(meta={"valid_snr": 5.0})
    truncate(newer.path / "masknetL.ckpt")
    bump(model)
    with caplog.at_level(logging.WARNING):
        assert checkpointer.recover_if_possible() == older  # resume: the newest intact one
        assert checkpointer.find_best_checkpoint() == (older, "best by max valid_snr")  # evaluation: the next best
    assert same(model, older_state)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # once per damaged checkpoint
    assert str(newer.path) in warnings[0] and "masknetL.ckpt is truncated" in warnings[0]


def test_with_no_intact_checkpoint_resume_starts_from_scratch(recipe, caplog):
    hparams, checkpointer = recipe
    checkpoint = checkpointer.save_checkpoint(meta={"valid_snr": 1.0})
    (checkpoint.path / "counter.ckpt").write_bytes(b"")
    bump(hparams["Model"])
    fresh = state(hparams["Model"])
    with caplog.at_level(logging.WARNING):
        assert checkpointer.recover_if_possible() is None
    assert same(hparams["Model"], fresh)  # nothing loaded
    assert any("starting from scratch" in r.getMessage() and str(checkpoint.path.parent) in r.getMessage()
               for r in caplog.records)
    best, _ = checkpointer.find_best_checkpoint()
    assert best is None
    assert "counter.ckpt is empty" in checkpointer.unusable_message()


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda c: (c / "CKPT.yaml").write_text("unixtime: [1,"), "CKPT.yaml cannot be read"),
        (lambda c: (c / "CKPT.yaml").write_text(""), "CKPT.yaml lacks unixtime"),
        (lambda c: (c / "decoderR.ckpt").unlink(), "has no decoderR.ckpt"),
        (lambda c: truncate(c / "lr_scheduler.ckpt"), "lr_scheduler.ckpt is truncated"),
    ],
)
def test_every_kind_of_damage_is_named(recipe, damage, reason):
    _, checkpointer = recipe
    checkpoint = checkpointer.save_checkpoint(meta={"valid_snr": 1.0})
    damage(checkpoint.path)
    assert checkpointer.find_checkpoint() is None
    assert list(checkpointer.damaged) == [checkpoint.path]
    assert reason in checkpointer.damaged[checkpoint.path]


def test_a_flipped_byte_fails_the_crc_check(tmp_path):
    path = tmp_path / "weights.ckpt"
    torch.save({"w": torch.arange(4096.0)}, path)
    assert file_damage(path) is None
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    assert "fails its CRC check" in file_damage(path)
    for text, verdict in (("3", None), ("", "is empty"), ("step: 4\n", None)):
        (tmp_path / "text.ckpt").write_text(text)
        assert file_damage(tmp_path / "text.ckpt") == verdict


def test_a_crafted_savefile_runs_no_code(recipe, tmp_path):
    _, checkpointer = recipe
    checkpoint = checkpointer.save_checkpoint(meta={"valid_snr": 1.0})
    proof = tmp_path / "code_ran"
    torch.save({"weight": CodeRunningPayload(proof)}, checkpoint.path / "masknetL.ckpt")  # a whole zip: it passes the CRCs
    with pytest.raises(CheckpointError, match=r"masknetL|holds more than weights") as error:
        checkpointer.recover_if_possible()
    assert str(checkpoint.path) in str(error.value) and "\n" not in str(error.value)
    assert not proof.exists()


def test_a_checkpoint_of_other_sizes_is_one_line_error(recipe, tmp_path):
    _, checkpointer = recipe
    checkpointer.save_checkpoint(meta={"valid_snr": 1.0})
    bigger = recipe_hparams(tmp_path / "exp", H=12)["checkpointer"]  # the same folder, other sizes
    with pytest.raises(CheckpointError, match="does not fit the model") as error:
        bigger.recover_if_possible()
    assert "\n" not in str(error.value)


# ------------------------------------------------------------------------------------------ selection
def test_train_key_first_then_the_published_negative_snr(recipe):
    hparams, checkpointer = recipe
    assert KNOWN_CHECKPOINT_KEYS[:2] == (("valid_snr", "max"), ("snr", "min"))
    worse = checkpointer.save_checkpoint(meta={"snr": -10.0})  # the published recipe's meta: negative SNR
    best = checkpointer.save_checkpoint(meta={"snr": -16.9})
    latest = checkpointer.save_checkpoint(meta={"snr": -12.0})
    assert checkpointer.find_best_checkpoint() == (best, "best by min snr")
    assert checkpointer.find_best_checkpoint(max_key="snr") == (worse, "best by max snr")
    assert checkpointer.recover_if_possible() == latest


# ------------------------------------------------------------------------------------------ a full disk
def _enospc(module, path):
    import errno
    import os

    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


def _torch_to_full_device(module, path):
    torch.save(module.state_dict(), "/dev/full")  # the kernel's full disk: torch's writer fails as on one


@pytest.mark.parametrize("failing_save, reason", [(_enospc, "the disk is full"), (_torch_to_full_device, "is the disk full?")])
def test_a_full_disk_during_a_save_is_one_line_naming_the_folder_and_keeps_the_checkpoints(
    recipe, monkeypatch, failing_save, reason
):
    from speechbrain.utils import checkpoints as sb_checkpoints

    if failing_save is _torch_to_full_device and not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    hparams, checkpointer = recipe
    first = checkpointer.save_checkpoint(meta={"valid_snr": 3.0})
    saved = state(hparams["Model"])
    monkeypatch.setitem(sb_checkpoints.DEFAULT_SAVE_HOOKS, torch.nn.Module, failing_save)
    with pytest.raises(CheckpointError) as raised:
        checkpointer.save_checkpoint(meta={"valid_snr": 4.0})
    message = str(raised.value)
    assert "\n" not in message and str(checkpointer.checkpoints_dir) in message and reason in message
    assert "complete and kept" in message
    # Complete or absent: the failed save left nothing, the first checkpoint is whole.
    assert [p.name for p in checkpointer.checkpoints_dir.iterdir()] == [first.path.name]
    bump(hparams["Model"])
    assert checkpointer.recover_if_possible() == first and same(hparams["Model"], saved)
