"""binaural.training.experiment and .arguments in-process: the lock's folder, ranks, the rules."""
from __future__ import annotations

import pytest

from binaural.io.atomic import WriteError
from binaural.training.arguments import RULES, UsageError, check_values
from binaural.training.experiment import LOCK_NAME, check_output_folder, experiment_lock


def test_a_folder_made_for_a_refused_run_is_removed_and_an_existing_one_kept(tmp_path):
    new, old = tmp_path / "new" / "exp", tmp_path / "old"
    old.mkdir()
    for folder in (new, old):
        with pytest.raises(RuntimeError), experiment_lock(folder):
            assert (folder / LOCK_NAME).exists() and (folder / f"{LOCK_NAME}.owner").read_text().startswith("pid ")
            raise RuntimeError("refused before its first file")
    assert not new.exists() and old.is_dir()
    with experiment_lock(new):
        (new / "log.txt").write_text("a run's file\n")
    assert (new / "log.txt").exists() and not (new / f"{LOCK_NAME}.owner").exists()


def test_only_rank_0_of_a_launch_takes_the_lock(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    with experiment_lock(tmp_path / "exp"):
        assert not (tmp_path / "exp").exists()  # rank 0 makes it; rank 1 waits for it at the rendezvous


def test_an_output_folder_under_a_file_is_refused(tmp_path):
    (tmp_path / "f").write_text("")
    for folder in (tmp_path / "f", tmp_path / "f" / "a" / "b"):
        with pytest.raises(WriteError, match="not a folder"):
            check_output_folder(folder)
    check_output_folder(tmp_path / "new" / "exp")


@pytest.mark.parametrize("key, good, bad", [
    ("N_epochs", [0, 5], [-1, 1.5, True, "3"]),
    ("batch_size", [1, 4], [0, 2.0]),
    ("lr", [1, 1e-4], [0, -1e-3, float("nan"), float("inf")]),
    ("lr_decay_factor", [0.5, 1], [0, 1.5]),
    ("sample_rate", [8000, 16000], [44100, 8000.0]),
])
def test_rules(key, good, bad):
    assert all(RULES[key].accepts(value) for value in good)
    assert not any(RULES[key].accepts(value) for value in bad)
    with pytest.raises(UsageError, match=rf"^--{key} x: {key} must be "):
        check_values({key: bad[0]}, {key: "x"}, "h.yaml")
    with pytest.raises(UsageError, match=rf"^h.yaml: {key}: "):
        check_values({key: bad[0]}, {}, "h.yaml")
