#!/usr/bin/env python3
"""A built-in synthetic speech corpus in the WSJ0 layout, so that the recipe runs offline without WSJ0.

    python synthetic_speech.py --root R [--seed 0] [--talkers 8 2 2] [--utterances_per_talker 10]
        [--duration 2.0 4.0] [--sample_rate 16000]

Output: ``R/wsj0/<set>/<talker>/<utterance>.wav`` and ``R/wsj0/corpus.json``; pass ``--wsj_root R``
to the generator or train.py. The same seed gives identical bytes; a rerun resumes. The voices and
the layout: :mod:`binaural.data.synthetic_speech`.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from binaural.data.synthetic_speech import DEFAULT_TALKERS, TALKER_SETS, make_synthetic_wsj0
from binaural.errors import RecipeError


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Write a synthetic speech corpus in the WSJ0 layout (root/wsj0/<set>/<talker>/<utt>.wav), "
        "for running the recipe without the licensed WSJ0."
    )
    parser.add_argument("--root", required=True, type=Path, help="output folder; pass it as --wsj_root afterwards")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed: identical files)")
    parser.add_argument(
        "--talkers", type=int, nargs=3, metavar=("SI_TR_S", "SI_DT_05", "SI_ET_05"),
        default=[DEFAULT_TALKERS[s] for s in TALKER_SETS], help="talkers per set (default: 8 2 2)",
    )
    parser.add_argument("--utterances_per_talker", type=int, default=10)
    parser.add_argument("--duration", type=float, nargs=2, metavar=("MIN_S", "MAX_S"), default=[2.0, 4.0],
                        help="utterance length range in seconds (default: 2 4)")
    parser.add_argument("--sample_rate", type=int, default=16000, help="Hz (default: 16000, as WSJ0)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        root = make_synthetic_wsj0(
            args.root,
            n_talkers=dict(zip(TALKER_SETS, args.talkers)),
            utterances_per_talker=args.utterances_per_talker,
            duration_s=tuple(args.duration),
            sample_rate=args.sample_rate,
            seed=args.seed,
        )
    except RecipeError as error:  # SyntheticCorpusError, or a folder that cannot be written (atomic.WriteError)
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(root / "wsj0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
