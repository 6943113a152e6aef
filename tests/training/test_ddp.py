"""Both multi-process launch forms of the README, on CPU: 2 processes, the gloo backend.

``torchrun --nproc_per_node=2 train.py ...`` and the legacy
``python -m torch.distributed.launch --nproc_per_node=2 train.py ... --distributed_launch``
(which adds ``--local-rank=N``); tiny model, tiny data, one epoch.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import (
    LAUNCHERS,
    N_MIXTURES,
    check_ok,
    check_test_results,
    checkpoints,
    free_port,
    generate_dataset,
    recipe_command,
    run,
)


@pytest.fixture(scope="module")
def data_2spk(tiny_wsj_root, tmp_path_factory) -> Path:
    return generate_dataset(tiny_wsj_root, tmp_path_factory.mktemp("data2"), 2)


@pytest.mark.parametrize("launcher", sorted(LAUNCHERS))
def test_two_process_training(launcher, data_2spk, tiny_wsj_root, tmp_path):
    out = tmp_path / "out"
    command = recipe_command("convtasnet-parallel.yaml", data_2spk, tiny_wsj_root, out, "--N_epochs", "1")
    extra = ["--distributed_backend=gloo"]
    if launcher == "legacy":
        extra.insert(0, "--distributed_launch")  # as the published README writes it
    launch = LAUNCHERS[launcher](free_port()) + command[1:] + extra  # command[0] is the interpreter
    result = run(launch, timeout=240, OMP_NUM_THREADS="1")
    check_ok(result)

    log = (out / "log.txt").read_text()
    # Two training mixtures, one per rank: both processes trained (DistributedSampler sharding).
    assert "epoch 1: training batches per rank [1, 1]" in log
    assert checkpoints(out), "no checkpoint saved"
    check_test_results(out, N_MIXTURES["tt"])


def test_a_launch_into_a_busy_folder_stops_at_once_and_writes_nothing(data_2spk, tiny_wsj_root, tmp_path):
    """One launch is one writer: its rank 0 holds the lock, so a second launch into the folder another
    run holds is refused by its rank 0 before the process group forms, and none of its ranks writes."""
    import os

    from binaural.training.experiment import experiment_lock

    out = tmp_path / "out"
    command = recipe_command("convtasnet-parallel.yaml", data_2spk, tiny_wsj_root, out, "--N_epochs", "1")
    launch = LAUNCHERS["torchrun"](free_port()) + command[1:] + ["--distributed_backend=gloo"]
    with experiment_lock(out):  # another run (this test) is writing into out
        before = sorted(p.relative_to(out) for p in out.rglob("*"))
        result = run(launch, timeout=240, OMP_NUM_THREADS="1")
        assert result.returncode != 0 and 'train.py", line' not in result.stderr, result.stderr[-3000:]
        refusals = [line for line in result.stderr.splitlines() if line.startswith("train.py: error: ")]
        assert len(refusals) == 1, result.stderr[-3000:]  # rank 0's; rank 1 never got past the rendezvous
        assert f"the experiment folder {out} is being written by another run (pid {os.getpid()} on " in refusals[0]
        # SpeechBrain's checkpointer makes save/ when the hparams are loaded: nothing else appeared.
        assert {p for p in out.rglob("*")} <= {out / p for p in before} | {out / "save"}
        assert not (out / "log.txt").exists() and not (out / "train_log.txt").exists()


def _rank_step(rank: int, init_file: str, results: str) -> None:
    """One DDP step where rank 1 rejects its batch (train.Separation._zero_loss) and rank 0 does not."""
    from types import SimpleNamespace

    import torch
    import torch.distributed as dist

    import train

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.manual_seed(0)  # the same initial weights on both ranks
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(4, 2))
    out = model(torch.randn(3, 4))
    if rank == 0:
        loss = out.square().mean()
    else:
        loss = train.Separation._zero_loss(SimpleNamespace(modules=model))
        assert float(loss) == 0.0
    loss.backward()  # would block forever if rank 1 skipped the all-reduce
    grads = torch.cat([p.grad.flatten() for p in model.parameters()])
    torch.save(grads, f"{results}.{rank}")
    dist.destroy_process_group()


def test_a_rejected_batch_on_one_rank_does_not_stall_the_other(tmp_path):
    import torch
    import torch.multiprocessing as mp

    context = mp.start_processes(
        _rank_step, args=(str(tmp_path / "init"), str(tmp_path / "grads")), nprocs=2, join=False, start_method="spawn"
    )
    start = time.monotonic()
    try:
        while not context.join(timeout=5):
            assert time.monotonic() - start < 120, "DDP step hung: a rank skipped the gradient all-reduce"
    finally:
        for process in context.processes:  # only on failure: the two ranks spawned above
            if process.is_alive():
                process.kill()
    grads = [torch.load(tmp_path / f"grads.{rank}") for rank in (0, 1)]
    torch.testing.assert_close(grads[0], grads[1])  # averaged: the same update on both ranks
    assert grads[0].abs().sum() > 0
