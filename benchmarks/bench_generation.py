#!/usr/bin/env python3
"""Generation speed: mixtures per second with one worker and with all workers.

A "mixture" is one metadata row rendered at every rate and length mode (8k/16k x min/max), as a
full run does. Data: the built-in synthetic corpus (8 training talkers x 10 utterances of 2-4 s,
enough distinct pairs for a few hundred mixtures) and the real CIPIC database when present (else
the spherical head); own-mode metadata drawn once, outside the timing. The timing covers a whole
call (metadata checks, HRIR loading, rendering, writing), so small ``--n_mixtures`` understate the
parallel speed-up: the HRIR loading is done once, up front.

    python benchmarks/bench_generation.py [--n_mixtures 600] [--workers K]

Last line: ``{"workers": K, "mixtures_per_s_1_worker": a, "mixtures_per_s_all_workers": b}``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from create_binaural_wsj0mix import create_binaural_wsj0mix, default_workers  # noqa: E402
from synthetic_speech import make_synthetic_wsj0  # noqa: E402

SHARED_DATA = ROOT.parent / "shared" / "data"


def timed_run(wsj_root: Path, output: Path, metadata: Path, hrtf: str, n: int, workers: int) -> float:
    """Seconds to build the ``tr`` split from existing metadata with ``workers`` processes."""
    start = time.perf_counter()
    create_binaural_wsj0mix(
        wsj_root, output, splits=["tr"], metadata_dir=metadata, hrtf_dir=hrtf, own_metadata=True,
        n_mixtures={"tr": n}, num_workers=workers, progress=False,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n_mixtures", type=int, default=600)
    parser.add_argument("--workers", type=int, default=default_workers())
    args = parser.parse_args()
    cipic = SHARED_DATA / "CIPIC_hrtf_database" / "wav_database"
    hrtf = str(cipic) if cipic.is_dir() else "spherical"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        wsj_root = make_synthetic_wsj0(tmp / "wsj", seed=0)
        metadata = tmp / "metadata"
        # Draw the metadata once (not timed), then time the rendering alone.
        timed_run(wsj_root, tmp / "warmup", metadata, hrtf, args.n_mixtures, 1)
        shutil.rmtree(tmp / "warmup")
        one = args.n_mixtures / timed_run(wsj_root, tmp / "one", metadata, hrtf, args.n_mixtures, 1)
        every = args.n_mixtures / timed_run(wsj_root, tmp / "all", metadata, hrtf, args.n_mixtures, args.workers)
    print(f"hrtf: {hrtf}; {args.n_mixtures} mixtures x (8k, 16k) x (min, max)")
    print(json.dumps({"workers": args.workers, "mixtures_per_s_1_worker": round(one, 3),
                      "mixtures_per_s_all_workers": round(every, 3)}))


if __name__ == "__main__":
    main()
