#!/usr/bin/env python3
"""Generation speed: mixtures per second with one worker and with all workers.

A "mixture" is one metadata row rendered at every rate and length mode (8k/16k x min/max), as a
full run does. Data: the built-in synthetic corpus (8 training talkers x 10 utterances of 2-4 s,
enough distinct pairs for a few hundred mixtures) and the real CIPIC database when present (else
the spherical head); own-mode metadata drawn once, outside the timing. The timing covers a whole
call (metadata checks, HRIR loading, rendering, writing), so small ``--n_mixtures`` understate the
parallel speed-up: the HRIR loading is done once, up front.

    python benchmarks/bench_generation.py [--n_mixtures 600] [--workers K] [--work_dir DIR]

The files go to a temporary folder under ``--work_dir`` (default ``.benchmarks/`` in the project,
on the disk a real run writes to). Not ``/tmp``: on some machines it is a different, slower
file system, and creating a file there can cost more than rendering it.

Last line: ``{"workers": K, "mixtures_per_s_1_worker": a, "mixtures_per_s_all_workers": b}``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from binaural.data.generation import create_binaural_wsj0mix

from binaural.data.generation import default_workers  # noqa: E402
from binaural.data.record import GenerationOptions  # noqa: E402
from binaural.data.synthetic_speech import make_synthetic_wsj0  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"


def timed_run(wsj_root: Path, output: Path, metadata: Path, hrtf: str, n: int, workers: int) -> float:
    """Seconds to build the ``tr`` split from existing metadata with ``workers`` processes."""
    start = time.perf_counter()
    create_binaural_wsj0mix(wsj_root, output, GenerationOptions(
        splits=["tr"], metadata_dir=metadata, hrtf_dir=hrtf, own_metadata=True, n_mixtures={"tr": n},
        num_workers=workers, progress=False,
    ))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n_mixtures", type=int, default=600)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per worker count; medians reported")
    parser.add_argument("--work_dir", type=Path, default=ROOT / ".benchmarks")
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    cipic = SHARED_DATA / "CIPIC_hrtf_database" / "wav_database"
    hrtf = str(cipic) if cipic.is_dir() else "spherical"
    with tempfile.TemporaryDirectory(dir=args.work_dir) as tmp:
        tmp = Path(tmp)
        wsj_root = make_synthetic_wsj0(tmp / "wsj", seed=0)
        metadata = tmp / "metadata"
        # Draw the metadata once (not timed), then time the rendering alone.
        timed_run(wsj_root, tmp / "warmup", metadata, hrtf, args.n_mixtures, 1)
        shutil.rmtree(tmp / "warmup")
        # Alternate the two settings so that a slow spell of the machine (disk write-back, a
        # neighbour) hits both alike; report medians.
        rates: dict[int, list[float]] = {1: [], args.workers: []}
        for repeat in range(args.repeats):
            for workers in rates:
                output = tmp / f"out_{workers}_{repeat}"
                rates[workers].append(args.n_mixtures / timed_run(wsj_root, output, metadata, hrtf, args.n_mixtures, workers))
                shutil.rmtree(output)
        one, every = statistics.median(rates[1]), statistics.median(rates[args.workers])
    print("mixtures/s per run:", {k: [round(r, 2) for r in v] for k, v in rates.items()}, f"speed-up {every / one:.2f}x")
    print(f"hrtf: {hrtf}; {args.n_mixtures} mixtures x (8k, 16k) x (min, max); files under {args.work_dir}")
    print(json.dumps({"workers": args.workers, "mixtures_per_s_1_worker": round(one, 3),
                      "mixtures_per_s_all_workers": round(every, 3)}))


if __name__ == "__main__":
    main()
