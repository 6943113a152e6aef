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
        [--variant clean|noise|reverb] [--noise_root D] [--binaural_noise [demand|diffuse]]
        [--brir_dir B|simulate] [--reproduce_published_reverb]

Output: ``O/wav{8k,16k}/{min,max}/{tr,cv,tt}/{mix,s1,s2[,s3]}/NAME.wav``, stereo int16. Writes are
atomic and finished files are skipped, so a killed run is resumed by running it again.

Variants (``--variant``, two talkers), as the public ``create_wav_2speakers_{noise,reverb}.py``:

- ``noise``: WHAM!-style DEMAND noise (:mod:`noise`): ``{mix_clean,mix_single,mix_both,s1,s2,noise}``,
  float32; the noise from ``--noise_root`` (``<ENV>/ch01.wav``) or downloaded from Zenodo; the
  published identical ears by default, ``--binaural_noise [demand|diffuse]`` for two different ears.
- ``reverb``: binaural room impulse responses (:mod:`rooms`) from the BRIR Sim Set (``--brir_dir``,
  downloaded when absent) or simulated (``--brir_dir simulate``): ``{mix,s1,s2}`` int16, named
  ``<rt>_<utt1>_<az1>_<utt2>_<az2>.wav``; the sources are the reverberant binaural images. Each ear
  is convolved with its own BRIR, aligned on the direct sound (nothing of the utterance is cut), and
  int16 overflow saturates; ``--reproduce_published_reverb`` reproduces the published convolution
  (right ear through the sum of both BRIRs, ``mode="same"`` centring, wrap-around) bit for bit, for
  comparisons with published numbers.
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

import numpy as np
from tqdm import tqdm

from atomic import remove_partial_files
from audio_io import to_int16, write_atomic
from download import DownloadError, ensure_binaural_wsj0mix_repo
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
from mixing import (
    fix_length,
    load_source,
    mix_sources,
    place_in_noise,
    spatialize,
    spatialize_reverb,
    wham_mixtures,
    wham_speech_sources,
)
from noise import (
    BINAURAL_MODES,
    DEMAND_FOLDER,
    FILE_SPLITS_NAME,
    NoiseError,
    NoiseInfo,
    add_wham_keys,
    binaural_noise,
    check_recordings,
    covering_segment,
    default_file_splits,
    draw_noise,
    ensure_demand,
    load_wham_scaling,
    noise_channels,
    public_segments,
    read_file_splits,
    read_noise_meta,
    save_public_segments,
    utterance_length,
    write_file_splits,
    write_noise_meta,
)
from rooms import (
    REVERB_MODES,
    ReverbSpec,
    draw_reverb_meta,
    load_reverb_split,
    open_brir_set,
    reopen_brir_set,
    reverb_meta_path,
    write_reverb_meta,
)

logger = logging.getLogger(__name__)
REPO_FOLDER = "Binaural-WSJ0Mix-main"
VARIANTS = ("clean", "noise", "reverb")
# Output folders per variant, in writing order: sources first, mixtures last (a mixture on disk
# means the rest of its files are there too).
NOISE_FOLDERS = ("s1", "s2", "noise", "mix_clean", "mix_single", "mix_both")
SIMULATED_BRIR_FOLDER = "simulated_brirs"
NOISE_DRAWS_FOLDER = "noise_metadata"


@dataclass(frozen=True)
class Job:
    """What one worker process needs besides the mixture itself."""

    wsj_root: Path
    output_root: Path
    hrtf_spec: str
    source_rate: int | None  # required rate of the utterances (16 kHz in official mode), None: any
    overflow: str  # "wrap" reproduces the published int16 bits, "clip" saturates (own mode)
    variant: str = "clean"
    noise_root: Path | None = None  # DEMAND tree (noise variant)
    binaural_noise: str = "none"  # "none" (published), "demand" or "diffuse"
    brir_spec: str | None = None  # rooms.reopen_brir_set spec (reverb variant)
    reverb_mode: str = "per_ear"  # or "published"


def output_dirs(
    output_root: Path, freq: str, mode: str, split: str, n_spks: int, variant: str = "clean"
) -> dict[str, Path]:
    """``{"mix": .../mix, "s1": .../s1, ...}`` for one (rate, length mode, split).

    The noisy variant has ``s1, s2, noise, mix_clean, mix_single, mix_both`` instead.
    """
    base = Path(output_root) / f"wav{freq}" / mode / split
    if variant == "noise":
        return {name: base / name for name in NOISE_FOLDERS}
    return {name: base / name for name in ["mix"] + [f"s{k}" for k in range(1, n_spks + 1)]}


def _writing_order(names: Iterable[str]) -> list[str]:
    """Sources first, mixtures last, ``mix_both`` (the noisy training input) very last."""
    return sorted(names, key=lambda n: (n.startswith("mix"), n == "mix_both"))


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


def render_noise(
    spec: MixtureSpec, info: NoiseInfo, sources_at_rate: Sequence, hrtf_set: HRTFSet, noise, freq: str, mode: str
) -> dict[str, "object"]:
    """The noisy variant of one spec at one rate and length mode, as ``create_wav_2speakers_noise``.

    Args:
        noise: ``[noise_time, 2]`` at ``freq``, already scaled (``scaling_wham_noise``).
    Returns:
        ``{"s1", "s2", "noise", "mix_clean", "mix_single", "mix_both"}``, each ``[time, 2]`` float64.
    """
    rate = SAMPLE_RATES[freq]
    dry = wham_speech_sources(sources_at_rate, spec.gains[(freq, mode)], info.speech_gains[(freq, mode)])
    dry = fix_length(dry, mode)
    binaural = [
        spatialize(source, hrtf_set.hrir(spec.subject, d.azimuth, d.elevation_index, rate))
        for source, d in zip(dry, spec.directions)
    ]
    placed, noise = place_in_noise(binaural, noise, mode, info.speech_start_16k, rate)
    signals = {f"s{k + 1}": b for k, b in enumerate(placed)}
    signals["noise"] = noise
    signals.update(wham_mixtures(placed, noise))
    return signals


def render_reverb(
    spec: ReverbSpec, sources_at_rate: Sequence, brir_set, freq: str, mode: str, reverb_mode: str = "per_ear"
) -> dict[str, "object"]:
    """The reverberant variant of one spec: reverberant binaural sources and their sum, float64."""
    rate = SAMPLE_RATES[freq]
    dry = fix_length([s * g for s, g in zip(sources_at_rate, spec.gains[(freq, mode)])], mode)
    binaural = [
        spatialize_reverb(source, brir_set.brir(spec.reverb_time, azimuth, rate), reverb_mode, onset=None)
        for source, azimuth in zip(dry, spec.azimuths)
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
    if job.variant == "reverb":
        _WORKER["brirs"] = _WORKER.get("brirs") or reopen_brir_set(job.brir_spec)
        return
    _WORKER["hrtf"] = hrtf_set or _WORKER.get("hrtf") or open_hrtf_set(job.hrtf_spec)


def _build_mixture(task: tuple) -> int:
    """Write every missing (rate, mode) output of one mixture; returns how many samples were out of the int16 range.

    ``task`` is ``(spec, targets)`` or ``(spec, targets, extra)`` (a :class:`noise.NoiseInfo` for the
    noisy variant).
    """
    spec, targets = task[0], task[1]
    extra = task[2] if len(task) > 2 else None
    job: Job = _WORKER["job"]
    out_of_range = 0
    by_rate: dict = {}
    noise_by_rate: dict = {}
    for freq, mode in targets:
        rate = SAMPLE_RATES[freq]
        if freq not in by_rate:
            by_rate[freq] = [load_source(job.wsj_root, p, rate, job.source_rate) for p in spec.source_paths]
        if job.variant == "noise":
            if freq not in noise_by_rate:
                noise_by_rate[freq] = {}
            if mode not in noise_by_rate[freq]:
                noise_by_rate[freq][mode] = binaural_noise(
                    job.noise_root, extra.segment, rate, extra.noise_gains[(freq, mode)], job.binaural_noise,
                    extra.frames,
                )
            signals = render_noise(spec, extra, by_rate[freq], _WORKER["hrtf"], noise_by_rate[freq][mode], freq, mode)
        elif job.variant == "reverb":
            signals = render_reverb(spec, by_rate[freq], _WORKER["brirs"], freq, mode, job.reverb_mode)
        else:
            signals = render(spec, by_rate[freq], _WORKER["hrtf"], freq, mode)
        folders = output_dirs(job.output_root, freq, mode, spec.split, spec.n_spks, job.variant)
        for name in _writing_order(folders):
            path = folders[name] / spec.binaural_name
            if path.exists():  # finished by an interrupted run: atomic writes make it whole
                continue
            if job.variant == "noise":  # float32, as the public noisy scripts write it
                write_atomic(path, np.asarray(signals[name], dtype=np.float32), rate, subtype="FLOAT")
                continue
            samples, count = to_int16(signals[name], job.overflow)
            out_of_range += count
            write_atomic(path, samples, rate)
    return out_of_range


def pending_targets(
    specs: Sequence[MixtureSpec], output_root: Path, freqs: Sequence[str], modes: Sequence[str], variant: str = "clean"
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
                for folder in output_dirs(output_root, freq, mode, spec.split, spec.n_spks, variant).values()
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


def _noise_mode(binaural_noise: bool | str | None) -> str:
    if binaural_noise in (None, False, "", "none", "None"):
        return "none"
    if binaural_noise is True:
        return "demand"
    if binaural_noise not in BINAURAL_MODES:
        raise ValueError(f"binaural_noise must be one of {BINAURAL_MODES} (or True for 'demand'), got {binaural_noise!r}")
    return str(binaural_noise)


def _noise_files(metadata_dir: Path, own_metadata: bool) -> dict[str, list[str]]:
    """The recordings per split: the metadata's ``file_splits.csv`` (own mode writes the public one)."""
    path = Path(metadata_dir) / FILE_SPLITS_NAME
    if own_metadata and not path.exists():
        write_file_splits(path, default_file_splits())
    return read_file_splits(path)


def _own_noise_metadata(
    wsj_root: Path, metadata_dir: Path, root: Path, frames: dict, files: dict, n_spks: int,
    splits: Sequence[str], seed: int, hrtf_set: HRTFSet,
) -> None:
    """Draw the noise of the own-mode splits that lack it: ``noise_meta_<split>.csv`` and the WHAM!
    keys of ``scaling_<split>.npz`` (for every rate and length mode, as the WSJ gains)."""
    for split in splits:
        paths = metadata_paths(metadata_dir, n_spks, split)
        with np.load(paths["scaling"], allow_pickle=True) as npz:
            has_keys = "speech_start_sample_16k" in npz.files
        meta = Path(metadata_dir) / f"noise_meta_{split}.csv"
        if has_keys and meta.exists():
            continue
        logger.info("drawing the noise of the %s mixtures", split)
        specs = load_split(metadata_dir, n_spks, split)
        infos = draw_noise(specs, split, wsj_root, root, files[split], frames, seed, FREQS, MODES, hrtf_set)
        add_wham_keys(paths["scaling"], infos, FREQS, MODES)
        write_noise_meta(meta, {name: info.segment for name, info in infos.items()})


def _prepare_noise(
    specs: Sequence[MixtureSpec], wsj_root: Path, metadata_dir: Path, noise_root, own_metadata: bool,
    binaural: str, n_spks: int, splits: Sequence[str], seed: int, freqs: Sequence[str], modes: Sequence[str],
    download_parent: Path, output_root: Path, progress: bool, hrtf_set: HRTFSet,
) -> tuple[Path, dict, tuple | None]:
    """Everything the noisy build needs, checked before any output is written.

    Returns:
        the DEMAND root, ``{(split, output_filename): NoiseInfo}``, and (official mode, fresh
        replay) what to cache once the build starts.
    """
    files = _noise_files(metadata_dir, own_metadata)
    every_file = sorted({name for split in files for name in files[split]})
    channels = noise_channels(binaural)
    root = ensure_demand(noise_root, every_file, channels, download_parent / DEMAND_FOLDER, progress)
    frames, shortest = check_recordings(root, every_file, channels)
    pending_cache = None
    if own_metadata:
        _own_noise_metadata(wsj_root, metadata_dir, root, frames, files, n_spks, splits, seed, hrtf_set)
        segments = {split: read_noise_meta(Path(metadata_dir) / f"noise_meta_{split}.csv") for split in splits}
    else:
        cache_dir = output_root / NOISE_DRAWS_FOLDER
        segments, stamp = public_segments(metadata_dir, wsj_root, root, frames, cache_dir)
        if stamp is not None:
            pending_cache = (cache_dir, segments, stamp)
    scaling = {
        split: load_wham_scaling(
            metadata_paths(metadata_dir, n_spks, split)["scaling"],
            [s.output_filename for s in specs if s.split == split], freqs, modes,
        )
        for split in splits
    }
    infos = {}
    for spec in specs:
        segment = segments[spec.split].get(spec.output_filename)
        if segment is None:
            raise NoiseError(f"no noise segment for {spec.split}/{spec.output_filename}. Nothing was written.")
        if segment.file not in frames:
            raise NoiseError(f"{spec.output_filename}: noise {segment.file} is not in {FILE_SPLITS_NAME}")
        speech_gains, noise_gains, start = scaling[spec.split][spec.output_filename]
        speech = max(utterance_length(wsj_root, p) for p in spec.source_paths)
        segment = covering_segment(segment, start + speech, frames[segment.file])
        if segment.stop > shortest[segment.file]:
            raise NoiseError(
                f"{segment.file}: a channel of this recording ends before sample {segment.stop}, which "
                f"{spec.split}/{spec.output_filename} needs (the DEMAND channels are equally long). Nothing was written."
            )
        infos[(spec.split, spec.output_filename)] = NoiseInfo(segment, start, speech_gains, noise_gains, frames[segment.file])
    return root, infos, pending_cache


def _own_reverb_metadata(metadata_dir: Path, splits: Sequence[str], seed: int) -> None:
    """Draw ``hrtf_reverb_meta_<split>.csv`` for the own-mode splits that lack it."""
    for split in splits:
        path = reverb_meta_path(metadata_dir, split)
        if path.exists():
            continue
        names = [spec.output_filename for spec in load_split(metadata_dir, 2, split)]
        write_reverb_meta(path, draw_reverb_meta(names, split, seed))


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
    variant: str = "clean",
    noise_root: str | Path | None = None,
    brir_dir: str | Path | None = None,
    binaural_noise: bool | str = False,
    reverb_mode: str = "per_ear",
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
        variant: ``"clean"`` (default), ``"noise"`` or ``"reverb"`` (two talkers).
        noise_root: noise variant: a DEMAND tree (``<ENV>/ch01.wav``, 16 kHz); None downloads the
            environments ``file_splits.csv`` names from Zenodo into ``<output_root>/../DEMAND``.
        binaural_noise: noise variant: False/``"none"`` copies the mono noise to both ears (the
            published data), True/``"demand"`` takes the right ear from DEMAND channel 2,
            ``"diffuse"`` synthesises it with a diffuse field's interaural coherence.
        brir_dir: reverb variant: the BRIR Sim Set (``CATT_RIRs``, its ``Binaural/16k`` folder, or
            their parent), ``"simulate"`` for simulated rooms (cached in
            ``<output_root>/../simulated_brirs``, seeded by ``seed``), or None to download the set
            into ``<output_root>/../CATT_RIRs``.
        reverb_mode: ``"per_ear"`` (each ear through its own BRIR) or ``"published"`` (the public
            2-D convolution, flaw included).
    """
    wsj_root, output_root = Path(wsj_root), Path(output_root)
    for value, allowed, what in ((datafreqs, FREQS, "freqs"), (datamodes, MODES, "modes"), (splits, SPLITS, "splits")):
        if not value or any(v not in allowed for v in value):
            raise ValueError(f"{what} must be a non-empty subset of {allowed}, got {list(value)}")
    if n_spks not in (2, 3):
        raise ValueError(f"n_spks must be 2 or 3, got {n_spks}")
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    if variant != "clean" and n_spks != 2:
        raise ValueError(f"the {variant} variant is a two-talker set (as published), got n_spks={n_spks}")
    binaural = _noise_mode(binaural_noise)
    if reverb_mode not in REVERB_MODES:
        raise ValueError(f"reverb_mode must be one of {REVERB_MODES}, got {reverb_mode!r}")
    download_parent = Path(repo_dir).parent if repo_dir else output_root.parent
    hrtf_set, hrtf_spec = None, ""
    if own_metadata:
        hrtf_spec = str(hrtf_dir or "spherical")
        metadata_dir = Path(metadata_dir or output_root / "metadata")
        hrtf_set = open_hrtf_set(hrtf_spec)
        counts = n_mixtures if isinstance(n_mixtures, dict) else dict(zip(SPLITS, _per_split(n_mixtures)))
        _own_metadata(wsj_root, metadata_dir, hrtf_set, hrtf_spec, n_spks, splits, counts, seed)
        if variant == "reverb":
            _own_reverb_metadata(metadata_dir, splits, seed)
    else:
        repo = Path(repo_dir) if repo_dir else output_root.parent / REPO_FOLDER
        if variant == "reverb":  # no HRTF database needed
            metadata_dir = Path(metadata_dir) if metadata_dir else ensure_binaural_wsj0mix_repo(repo) / "metadata"
        else:
            metadata_dir, hrtf_spec = _resolve_public_files(
                Path(metadata_dir) if metadata_dir else None, hrtf_dir, repo
            )
            hrtf_set = open_hrtf_set(hrtf_spec)

    if variant == "reverb":
        specs = {split: load_reverb_split(metadata_dir, split, datafreqs, datamodes) for split in splits}
    else:
        specs = {split: load_split(metadata_dir, n_spks, split, datafreqs, datamodes) for split in splits}
    everything = [spec for split in splits for spec in specs[split]]
    check_sources(everything, wsj_root, check_rate=not own_metadata)
    workers_wanted = num_workers or default_workers()
    extras: dict = {}
    noise_dir, brir_spec, pending_cache, brir_set = None, None, None, None
    if variant != "reverb":
        # Every rate: each file is read once and only the rows used are resampled, so this costs
        # well under a second for thousands of mixtures, and forked workers start with it all.
        check_hrtfs(everything, hrtf_set, [SAMPLE_RATES[f] for f in datafreqs])
    if variant == "noise":
        noise_dir, extras, pending_cache = _prepare_noise(
            everything, wsj_root, Path(metadata_dir), noise_root, own_metadata, binaural, n_spks, splits, seed,
            datafreqs, datamodes, download_parent, output_root, progress, hrtf_set,
        )
    if variant == "reverb":
        brir_set, brir_spec = open_brir_set(
            brir_dir, download_parent, download_parent / SIMULATED_BRIR_FOLDER, seed, progress
        )
        # Every BRIR is there (or simulated into the cache) before any output is written.
        brir_set.check({(s.reverb_time, az) for s in everything for az in s.azimuths}, workers_wanted, progress)

    output_root.mkdir(parents=True, exist_ok=True)
    if pending_cache is not None:
        save_public_segments(*pending_cache)
    removed = remove_partial_files(output_root)
    if removed:
        logger.info("removed %d partial file(s) left by an interrupted run", removed)
    tasks = [
        (spec, missing, extras.get((spec.split, spec.output_filename)))
        for spec, missing in pending_targets(everything, output_root, datafreqs, datamodes, variant)
    ]
    skipped = len(everything) - len(tasks)
    if skipped:
        logger.info("%d of %d mixtures already complete, skipped", skipped, len(everything))
    # astype(int16) wraps around: kept only where it reproduces published bits.
    wrap = not own_metadata and (variant == "clean" or (variant == "reverb" and reverb_mode == "published"))
    job = Job(
        wsj_root, output_root, hrtf_spec, None if own_metadata else WSJ0_RATE, "wrap" if wrap else "clip",
        variant, noise_dir, binaural, brir_spec, reverb_mode,
    )
    workers = max(1, min(workers_wanted, len(tasks) or 1))
    clipped = 0
    bar = tqdm(total=len(tasks), desc=f"binaural wsj0-{n_spks}mix ({variant})", unit="mix", disable=not progress)
    _WORKER["hrtf"] = hrtf_set  # before the pool forks: workers inherit the warm cache
    _WORKER["brirs"] = brir_set
    if workers == 1:
        _init_worker(job, hrtf_set)
        for task in tasks:
            clipped += _build_mixture(task)
            bar.update()
    else:
        with ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(job,)) as pool:
            # Small chunks: a mixture takes tens of ms, and a last big chunk would leave a core idle.
            for count in pool.map(_build_mixture, tasks, chunksize=max(1, min(4, len(tasks) // (4 * workers)))):
                clipped += count
                bar.update()
    bar.close()
    if clipped:
        logger.warning(
            "%d sample(s) exceeded the int16 range and were %s", clipped,
            "wrapped around, as the public scripts' astype(int16) does" if wrap else "clipped",
        )
    written = {split: sum(1 for task in tasks if task[0].split == split) for split in splits}
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
    parser.add_argument("--variant", choices=VARIANTS, default="clean", help="clean (default), noise or reverb")
    parser.add_argument(
        "--noise_root",
        help=f"noise variant: local DEMAND copy (<ENV>/ch01.wav, 16 kHz); downloaded from Zenodo into "
        f"OUTPUT_DIR/../{DEMAND_FOLDER} when absent",
    )
    parser.add_argument(
        "--binaural_noise", nargs="?", const="demand", default="none", choices=BINAURAL_MODES,
        help="noise variant: give the noise two different ears: 'demand' (the default when the flag has no "
        "value: DEMAND channel 2 for the right ear) or 'diffuse' (diffuse-field coherence model); without "
        "the flag both ears get the same noise, as published",
    )
    parser.add_argument(
        "--brir_dir",
        help="reverb variant: the BRIR Sim Set (CATT_RIRs folder), or 'simulate' for simulated rooms; "
        "downloaded into OUTPUT_DIR/../CATT_RIRs when absent",
    )
    parser.add_argument(
        "--reproduce_published_reverb", action="store_true",
        help="reverb variant: reproduce the published convolution (its right ear is the source through the "
        "sum of both BRIRs), only to compare with published numbers",
    )
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
            variant=args.variant,
            noise_root=args.noise_root,
            brir_dir=args.brir_dir,
            binaural_noise=args.binaural_noise,
            reverb_mode="published" if args.reproduce_published_reverb else "per_ear",
        )
    except (MetadataError, HRTFError, ValueError, OSError, DownloadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"done: {written} mixtures written under {args.output_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
