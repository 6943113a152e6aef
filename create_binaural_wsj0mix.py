#!/usr/bin/env python3
"""Build Binaural WSJ0-2mix / WSJ0-3mix from a WSJ0 root and an HRTF set.

Official mode (the default) reproduces the public dataset sample for sample from the official
metadata and the CIPIC WAV database, downloading both when no local copy is given. Own mode
(``--own_metadata``) draws new metadata for any corpus in the WSJ0 layout and any HRTF set (CIPIC
WAV, SOFA, or the built-in spherical head), writes it in the official formats, then builds from it
through the same code path.

    python create_binaural_wsj0mix.py --wsj_root W --output_dir O [--n_spks 2|3]
        [--freqs 8k 16k] [--modes min max] [--splits tr cv tt]
        [--metadata_dir M] [--hrtf_dir H] [--num_workers K]

Output: ``O/wav{8k,16k}/{min,max}/{tr,cv,tt}/{mix,s1,s2[,s3]}/NAME.wav``, stereo int16. Writes are
atomic and finished files are skipped, so a killed run is resumed by running it again.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from tqdm import tqdm

from atomic import remove_partial_files
from audio_io import to_int16, write_atomic
from download import ensure_binaural_wsj0mix_repo
from hrtf import HRTFError, HRTFSet, open_hrtf_set
from metadata import (
    FREQS,
    MODES,
    SAMPLE_RATES,
    SPLITS,
    WSJ0_RATE,
    MetadataError,
    MixtureSpec,
    check_sources,
    draw_split,
    load_split,
    metadata_paths,
    split_subjects,
    write_json_atomic,
    write_split,
)
from mixing import fix_length, load_source, mix_sources, spatialize

logger = logging.getLogger(__name__)
REPO_FOLDER = "Binaural-WSJ0Mix-main"


@dataclass(frozen=True)
class Job:
    """What one worker process needs besides the mixture itself."""

    wsj_root: Path
    output_root: Path
    hrtf_spec: str
    source_rate: int | None  # required rate of the utterances (16 kHz in official mode), None: any
    overflow: str  # "wrap" reproduces the published int16 bits, "clip" saturates (own mode)


def output_dirs(output_root: Path, freq: str, mode: str, split: str, n_spks: int) -> dict[str, Path]:
    """``{"mix": .../mix, "s1": .../s1, ...}`` for one (rate, length mode, split)."""
    base = Path(output_root) / f"wav{freq}" / mode / split
    return {name: base / name for name in ["mix"] + [f"s{k}" for k in range(1, n_spks + 1)]}


def render(
    spec: MixtureSpec, sources_at_rate: Sequence, hrtf_set: HRTFSet, freq: str, mode: str
) -> dict[str, "object"]:
    """Binaural mixture and sources of one spec at one rate and length mode.

    Args:
        sources_at_rate: one ``[time_k]`` raw-int16-valued array per talker at ``freq``.
    Returns:
        ``{"mix": [time, 2], "s1": [time, 2], ...}`` float64, before quantisation.
    """
    rate = SAMPLE_RATES[freq]
    gains = spec.gains[(freq, mode)]
    dry = fix_length([s * g for s, g in zip(sources_at_rate, gains)], mode)
    binaural = [
        spatialize(source, hrtf_set.hrir(spec.subject, d.azimuth, d.elevation_index, rate))
        for source, d in zip(dry, spec.directions)
    ]
    signals = {f"s{k + 1}": b for k, b in enumerate(binaural)}
    signals["mix"] = mix_sources(binaural)
    return signals


_WORKER: dict = {}


def _init_worker(job: Job, hrtf_set: HRTFSet | None = None) -> None:
    """Give the process its HRTF set, so each HRIR is read and resampled once per process.

    Forked workers inherit the parent's set with every HRIR already cached (``check_hrtfs``
    loaded them); a spawned worker opens its own.
    """
    _WORKER["job"] = job
    _WORKER["hrtf"] = hrtf_set or _WORKER.get("hrtf") or open_hrtf_set(job.hrtf_spec)


def _build_mixture(task: tuple[MixtureSpec, tuple[tuple[str, str], ...]]) -> int:
    """Write every missing (rate, mode) output of one mixture; returns how many samples were out of the int16 range."""
    spec, targets = task
    job: Job = _WORKER["job"]
    out_of_range = 0
    by_rate = {}
    for freq, mode in targets:
        if freq not in by_rate:
            by_rate[freq] = [
                load_source(job.wsj_root, p, SAMPLE_RATES[freq], job.source_rate) for p in spec.source_paths
            ]
        signals = render(spec, by_rate[freq], _WORKER["hrtf"], freq, mode)
        folders = output_dirs(job.output_root, freq, mode, spec.split, spec.n_spks)
        # Sources first, mixture last: a mixture on disk means its sources are there too.
        for name in [n for n in folders if n != "mix"] + ["mix"]:
            path = folders[name] / spec.binaural_name
            if path.exists():  # finished by an interrupted run: atomic writes make it whole
                continue
            samples, count = to_int16(signals[name], job.overflow)
            out_of_range += count
            write_atomic(path, samples, SAMPLE_RATES[freq])
    return out_of_range


def pending_targets(
    specs: Sequence[MixtureSpec], output_root: Path, freqs: Sequence[str], modes: Sequence[str]
) -> list[tuple[MixtureSpec, tuple[tuple[str, str], ...]]]:
    """Mixtures with at least one (rate, mode) output missing, and which ones."""
    listings: dict[Path, set[str]] = {}

    def exists(folder: Path, name: str) -> bool:
        if folder not in listings:
            listings[folder] = set(os.listdir(folder)) if folder.is_dir() else set()
        return name in listings[folder]

    tasks = []
    for spec in specs:
        missing = tuple(
            (freq, mode)
            for freq in freqs
            for mode in modes
            if not all(
                exists(folder, spec.binaural_name)
                for folder in output_dirs(output_root, freq, mode, spec.split, spec.n_spks).values()
            )
        )
        if missing:
            tasks.append((spec, missing))
    return tasks


def check_hrtfs(specs: Iterable[MixtureSpec], hrtf_set: HRTFSet, rates: Sequence[int]) -> None:
    """Load every (subject, azimuth) the metadata uses at every rate, checking the elevation indices.

    This also fills ``hrtf_set``'s cache, which forked workers inherit.

    Raises:
        MetadataError: naming the mixture and the HRTF problem, before any output is written.
    """
    for spec in specs:
        for direction in spec.directions:
            try:
                for rate in rates:
                    hrtf_set.hrir(spec.subject, direction.azimuth, direction.elevation_index, rate)
            except HRTFError as error:
                raise MetadataError(f"{spec.split}/{spec.output_filename}: {error}. Nothing was written.") from error


def _resolve_public_files(
    metadata_dir: Path | None, hrtf_dir: str | Path | None, repo_dir: Path
) -> tuple[Path, str]:
    if metadata_dir is None or hrtf_dir is None:
        repo = ensure_binaural_wsj0mix_repo(Path(repo_dir))
        metadata_dir = metadata_dir or repo / "metadata"
        hrtf_dir = hrtf_dir or repo / "CIPIC_hrtf_database" / "wav_database"
    return Path(metadata_dir), str(hrtf_dir)


def _own_metadata(
    wsj_root: Path,
    metadata_dir: Path,
    hrtf_set: HRTFSet,
    hrtf_spec: str,
    n_spks: int,
    splits: Sequence[str],
    n_mixtures: dict[str, int],
    seed: int,
) -> None:
    """Draw and write metadata for the splits that lack it; reuse it when the record matches."""
    record = {"n_spks": n_spks, "seed": seed, "hrtf": hrtf_spec, "n_mixtures": n_mixtures}
    record_path = Path(metadata_dir) / f"own_metadata_{n_spks}spk.json"
    if record_path.exists():
        previous = json.loads(record_path.read_text())
        if any(previous.get(k) != record[k] for k in ("n_spks", "seed", "hrtf")) or any(
            previous["n_mixtures"].get(s) not in (None, n_mixtures[s]) for s in splits
        ):
            raise MetadataError(
                f"{metadata_dir} already holds own metadata drawn with {previous}, not {record}; "
                "use another --metadata_dir (or --output_dir) or delete it"
            )
        record["n_mixtures"] = {**previous["n_mixtures"], **n_mixtures}
    subjects = split_subjects(hrtf_set.subjects(), seed)
    for split in splits:
        if all(p.exists() for p in metadata_paths(metadata_dir, n_spks, split).values()):
            continue
        logger.info("drawing %d %d-talker mixtures for %s", n_mixtures[split], n_spks, split)
        specs = draw_split(wsj_root, hrtf_set, subjects[split], n_spks, split, n_mixtures[split], seed)
        write_split(specs, metadata_dir, n_spks, split)
    write_json_atomic(record_path, record | {"subjects": subjects})


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def create_binaural_wsj0mix(
    wsj_root: str | Path,
    output_root: str | Path,
    datafreqs: Sequence[str] = FREQS,
    datamodes: Sequence[str] = MODES,
    n_spks: int = 2,
    splits: Sequence[str] = SPLITS,
    metadata_dir: str | Path | None = None,
    hrtf_dir: str | Path | None = None,
    num_workers: int | None = None,
    own_metadata: bool = False,
    n_mixtures: int | dict[str, int] = (20000, 5000, 3000),
    seed: int = 0,
    repo_dir: str | Path | None = None,
    progress: bool = True,
) -> dict[str, int]:
    """Generate the dataset (see the module docstring); returns the mixtures written per split.

    Args:
        wsj_root: folder containing ``wsj0/`` (wav, or SPHERE that libsndfile reads).
        output_root: where ``wav{8k,16k}/...`` goes.
        metadata_dir, hrtf_dir: local copies of the public metadata and CIPIC WAV database; when
            either is missing in official mode, the public repository archive is downloaded to
            ``repo_dir`` (default ``<output_root>/../Binaural-WSJ0Mix-main``). In own mode
            ``hrtf_dir`` may be a CIPIC folder, a SOFA file/folder or ``"spherical"`` (default), and
            the drawn metadata goes to ``metadata_dir`` (default ``<output_root>/metadata``).
        n_mixtures: own mode, per split (an int for all, or tr/cv/tt values).
    """
    wsj_root, output_root = Path(wsj_root), Path(output_root)
    for value, allowed, what in ((datafreqs, FREQS, "freqs"), (datamodes, MODES, "modes"), (splits, SPLITS, "splits")):
        if not value or any(v not in allowed for v in value):
            raise ValueError(f"{what} must be a non-empty subset of {allowed}, got {list(value)}")
    if n_spks not in (2, 3):
        raise ValueError(f"n_spks must be 2 or 3, got {n_spks}")
    if own_metadata:
        hrtf_spec = str(hrtf_dir or "spherical")
        metadata_dir = Path(metadata_dir or output_root / "metadata")
        hrtf_set = open_hrtf_set(hrtf_spec)
        counts = n_mixtures if isinstance(n_mixtures, dict) else dict(zip(SPLITS, _per_split(n_mixtures)))
        _own_metadata(wsj_root, metadata_dir, hrtf_set, hrtf_spec, n_spks, splits, counts, seed)
    else:
        repo = Path(repo_dir) if repo_dir else output_root.parent / REPO_FOLDER
        metadata_dir, hrtf_spec = _resolve_public_files(
            Path(metadata_dir) if metadata_dir else None, hrtf_dir, repo
        )
        hrtf_set = open_hrtf_set(hrtf_spec)

    specs = {split: load_split(metadata_dir, n_spks, split, datafreqs, datamodes) for split in splits}
    everything = [spec for split in splits for spec in specs[split]]
    check_sources(everything, wsj_root, check_rate=not own_metadata)
    check_hrtfs(everything, hrtf_set, [SAMPLE_RATES[freq] for freq in datafreqs])

    output_root.mkdir(parents=True, exist_ok=True)
    removed = remove_partial_files(output_root)
    if removed:
        logger.info("removed %d partial file(s) left by an interrupted run", removed)
    tasks = pending_targets(everything, output_root, datafreqs, datamodes)
    skipped = len(everything) - len(tasks)
    if skipped:
        logger.info("%d of %d mixtures already complete, skipped", skipped, len(everything))
    job = Job(wsj_root, output_root, hrtf_spec, None if own_metadata else WSJ0_RATE, "clip" if own_metadata else "wrap")
    workers = max(1, min(num_workers or default_workers(), len(tasks) or 1))
    clipped = 0
    bar = tqdm(total=len(tasks), desc=f"binaural wsj0-{n_spks}mix", unit="mix", disable=not progress)
    _WORKER["hrtf"] = hrtf_set  # before the pool forks: workers inherit the warm cache
    if workers == 1:
        _init_worker(job, hrtf_set)
        for task in tasks:
            clipped += _build_mixture(task)
            bar.update()
    else:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(job,)) as pool:
            for count in pool.map(_build_mixture, tasks, chunksize=max(1, min(16, len(tasks) // (4 * workers)))):
                clipped += count
                bar.update()
    bar.close()
    if clipped:
        logger.warning(
            "%d sample(s) exceeded the int16 range and were %s", clipped,
            "clipped" if own_metadata else "wrapped around, as the public scripts' astype(int16) does",
        )
    written = {split: sum(1 for spec, _ in tasks if spec.split == split) for split in splits}
    return written


def _per_split(n_mixtures: int | Sequence[int]) -> tuple[int, int, int]:
    if isinstance(n_mixtures, int):
        return (n_mixtures,) * 3
    values = tuple(int(v) for v in n_mixtures)
    if len(values) == 1:
        return values * 3
    if len(values) != 3:
        raise ValueError(f"n_mixtures takes one value or three (tr cv tt), got {list(values)}")
    return values  # type: ignore[return-value]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wsj_root", required=True, help="folder that contains wsj0/")
    parser.add_argument("--output_dir", required=True, help="where wav8k/ and wav16k/ are written")
    parser.add_argument("--n_spks", type=int, default=2, choices=(2, 3))
    parser.add_argument("--freqs", nargs="+", default=list(FREQS), choices=FREQS)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--metadata_dir", help="official metadata folder (downloaded when absent)")
    parser.add_argument(
        "--hrtf_dir",
        help="CIPIC wav_database folder (downloaded when absent); own mode also takes a SOFA "
        "file/folder or 'spherical' (default there)",
    )
    parser.add_argument("--num_workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--own_metadata", action="store_true", help="draw new metadata instead of the official one")
    parser.add_argument("--n_mixtures", type=int, nargs="+", default=[20000, 5000, 3000], help="own mode: per split")
    parser.add_argument("--seed", type=int, default=0, help="own mode: seed of the metadata draw")
    parser.add_argument("--repo_dir", help=f"where the public archive goes (default: OUTPUT_DIR/../{REPO_FOLDER})")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        written = create_binaural_wsj0mix(
            args.wsj_root,
            args.output_dir,
            datafreqs=args.freqs,
            datamodes=args.modes,
            n_spks=args.n_spks,
            splits=args.splits,
            metadata_dir=args.metadata_dir,
            hrtf_dir=args.hrtf_dir,
            num_workers=args.num_workers,
            own_metadata=args.own_metadata,
            n_mixtures=_per_split(args.n_mixtures),
            seed=args.seed,
            repo_dir=args.repo_dir,
            progress=not args.quiet,
        )
    except (MetadataError, HRTFError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"done: {written} mixtures written under {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
