"""Specification of ``benchmarks/gpu_check.py``, the one prepared run for a GPU machine, on the CPU:
each part works (DDP training over two processes, streaming on a device, the benchmarks' JSON) and
a failing or overlong part is reported in the summary instead of ending the run."""
from __future__ import annotations

import sys

import pytest
import torch
from conftest import PROJECT_ROOT, make_tasnet

sys.path.insert(0, str(PROJECT_ROOT / "benchmarks"))
import bench_streaming  # noqa: E402
import gpu_check  # noqa: E402


def test_the_ddp_part_trains_the_published_model_on_two_processes():
    result = gpu_check.ddp_check("cpu", steps=1, seconds=0.25)
    assert result["backend"] == "gloo" and result["world_size"] == 2
    assert result["finite"] is True and result["steps_per_s"] > 0


def test_streaming_on_a_device_gives_an_rtf_per_chunk():
    mix = 0.1 * torch.randn(800, 2)
    rtf = bench_streaming.device_streaming(make_tasnet(), mix, 8000, repeats=1, device="cpu")
    assert list(rtf) == [str(ms) for ms in bench_streaming.CHUNKS_MS]
    assert all(value > 0 for value in rtf.values())


def test_a_benchmark_json_is_returned(monkeypatch, tmp_path):
    script = tmp_path / "fake_bench.py"
    script.write_text('print("figures")\nprint(\'{"x": 1}\')\n')
    monkeypatch.setattr(gpu_check, "HERE", tmp_path)
    assert gpu_check.run_benchmark("fake_bench.py", []) == {"x": 1}


def test_a_failing_or_overlong_part_is_reported_not_raised(monkeypatch, tmp_path):
    (tmp_path / "fails.py").write_text('raise SystemExit("no CUDA device here")\n')
    (tmp_path / "sleeps.py").write_text("import time\ntime.sleep(30)\n")
    monkeypatch.setattr(gpu_check, "HERE", tmp_path)
    assert gpu_check.run_benchmark("fails.py", []) == {"error": "exit 1: no CUDA device here"}
    assert gpu_check.run_benchmark("sleeps.py", [], timeout=1) == {"error": "stopped after 1 s"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_says_so_in_one_line(capsys):
    with pytest.raises(SystemExit) as stop:
        gpu_check.main(["--device", "cuda"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "no CUDA device" in err
