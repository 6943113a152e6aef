#!/usr/bin/env python3
"""A built-in synthetic speech corpus in the WSJ0 layout, so that the recipe runs offline without WSJ0.

WSJ0 (LDC93S6A) is licensed; a newcomer can still run every stage of the recipe (generation,
training, evaluation) on this stand-in and check the plumbing before getting the real corpus.
Separation results on it say nothing about real speech.

    python synthetic_speech.py --root R [--seed 0] [--talkers 8 2 2] [--utterances_per_talker 10]
        [--duration 2.0 4.0] [--sample_rate 16000]

Output: ``R/wsj0/<set>/<talker>/<utterance>.wav`` (mono, PCM_16) for the sets ``si_tr_s`` (training
and validation talkers), ``si_dt_05`` and ``si_et_05`` (unseen test talkers), and
``R/wsj0/corpus.json`` with the parameters and each talker's voice. Ids are spelled as WSJ0's:
3-character talkers whose first letter names the set (``t01`` in si_tr_s, ``d01`` in si_dt_05,
``e01`` in si_et_05, so talkers of different sets never share an id) and 8-character utterances
that start with the talker (``t01c0101``). Pass ``--wsj_root R`` to the generator.

The voice is a source-filter model. Source: a Rosenberg glottal pulse train whose pitch follows a
per-phrase contour (declination, pitch accents on stressed syllables, a final fall or rise, slow
wander and cycle-scale jitter, shimmer), plus breath noise. Filter: a cascade of four 2nd-order
resonators (F1–F4) whose frequencies are interpolated between vowel, diphthong, nasal and
consonant-locus targets, updated every 4 ms. Unvoiced sounds: band-passed noise fricatives,
stops (closure silence, burst, aspiration through the formants). Words are separated by short
pauses, phrases by long ones. Each talker has a sex, a mean pitch (male 100–140 Hz, female
180–240 Hz), a vocal-tract length (formant scale factor), a speaking rate, a glottal pulse shape
and small vowel idiosyncrasies, so that talkers are distinguishable.

Each file is a function of (seed, set, talker, utterance) only: the same seed gives identical
bytes, and a resumed run writes exactly what an uninterrupted one would. Writes are atomic
(temporary file + ``os.replace``), complete files are kept on a rerun, and a rerun with other
parameters into the same root is refused.
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
