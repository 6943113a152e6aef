"""Generating Binaural WSJ0-2mix / WSJ0-3mix: the machinery behind ``create_binaural_wsj0mix.py``.

Official mode (the default) reproduces the public dataset sample for sample from the official
metadata and the CIPIC WAV database, downloading both when no local copy is given. Own mode draws
new metadata for any corpus in the WSJ0 layout and any HRTF set (CIPIC WAV, SOFA, or the built-in
spherical head), writes it in the official formats, then builds from it through the same code path.

Output: ``O/wav{8k,16k}/{min,max}/{tr,cv,tt}/{mix,s1,s2[,s3]}/NAME.wav`` and the dataset record
(:mod:`binaural.data.record`), written before the first wav: a rerun with the same options resumes
(writes are atomic and finished files are skipped), a run with other options into the same folder
stops before writing anything. One run writes into a folder at a time; a second one waits for it.
The data variants (:mod:`binaural.data.variants`) render the mixtures.
"""
from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

from tqdm import tqdm

from binaural.io.atomic import exclusive, inside, make_folder, remove_partial_files
from binaural.io.audio import write_atomic
from binaural.data.variants import BuildInputs, DataVariant, Renderer, metadata_digest
from binaural.data.record import (
    missing_parts,
    COMPLETE,
    IN_PROGRESS,
    DatasetError,
    DatasetRecord,
    GenerationOptions,
    check_recordless,
    holds_wavs,
    mismatch,
    part_files,
)
from binaural.data.sources import ensure_binaural_wsj0mix_repo
from binaural.data.hrtf import HRTFSet, open_hrtf_set
from binaural.data.layout import (
    LOCK_NAME,
    OWN_METADATA_FOLDER,
    REPO_FOLDER,
    SAMPLE_RATES,
    SPLITS,
    part_name,
    split_folder,
)
from binaural.data.metadata import (
    check_sources,
    check_unique_outputs,
    draw_split,
    metadata_paths,
    split_subjects,
    write_json_atomic,
    write_split,
)
from binaural.data.mixing import load_source

logger = logging.getLogger(__name__)
#: The public repository archive's CIPIC folder (official mode).
CIPIC_IN_REPO = Path("CIPIC_hrtf_database") / "wav_database"

# The renderer of this process. Set once per worker by :func:`_init_worker` (a forked worker gets
# the parent's object, HRTF cache warm, without pickling); a module slot because the pool's map
# function cannot carry it per task without pickling it every time.
_renderer: Renderer | None = None


def _init_worker(renderer: Renderer) -> None:
    global _renderer
    _renderer = renderer


def _build_mixture(task: tuple) -> int:
    """Write every missing (rate, mode) output of one mixture; returns the samples out of the int16 range.

    ``task`` is ``(spec, ((freq, mode), ...))``.
    """
    spec, targets = task
    renderer = _renderer
    variant = renderer.variant
    out_of_range = 0
    by_rate: dict = {}
    for freq, mode in targets:
        rate = SAMPLE_RATES[freq]
        if freq not in by_rate:
            by_rate[freq] = [load_source(renderer.wsj_root, p, rate, renderer.source_rate) for p in spec.source_paths]
        signals = renderer.render(spec, by_rate[freq], freq, mode)
        base = split_folder(renderer.output_root, freq, mode, spec.split)
        inside(renderer.output_root, base / spec.binaural_name)  # names from the metadata stay in the tree
        for name in variant.folders(spec.n_spks):
            path = base / name / spec.binaural_name
            if path.exists():  # finished by an interrupted run: atomic writes make it whole
                continue
            samples, subtype, count = variant.encode(signals[name], renderer.overflow)
            out_of_range += count
            write_atomic(path, samples, rate, subtype=subtype)
    return out_of_range


def pending_targets(
    specs: Sequence, output_root: Path, freqs: Sequence[str], modes: Sequence[str], variant: DataVariant
) -> list[tuple[object, tuple[tuple[str, str], ...]]]:
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
                exists(split_folder(output_root, freq, mode, spec.split) / name, spec.binaural_name)
                for name in variant.folders(spec.n_spks)
            )
        )
        if missing:
            tasks.append((spec, missing))
    return tasks


# ==================================================================================================
# Metadata: official (downloaded or local) or own (drawn)
# ==================================================================================================


def draw_own_metadata(wsj_root: Path, metadata_dir: Path, hrtf_set: HRTFSet, options: GenerationOptions) -> None:
    """Draw and write metadata for the splits that lack it; reuse it when its record matches.

    The record ``own_metadata_<n>spk.json`` claims the folder *before* anything is drawn, so a
    killed draw can only be resumed with the same seed, HRTF set and sizes, never mixed with
    another draw (whose test listeners would be training listeners of this one).
    """
    splits, n_mixtures = options.splits, options.n_mixtures
    requested = {"n_spks": options.n_spks, "seed": options.seed, "hrtf": options.hrtf_spec()}
    sizes = {split: n_mixtures[split] for split in splits}
    record_path = Path(metadata_dir) / f"own_metadata_{options.n_spks}spk.json"
    drawn = [split for split in SPLITS
             if all(p.exists() for p in metadata_paths(metadata_dir, options.n_spks, split).values())]
    if record_path.exists() and drawn:  # a claim that drew nothing (a refused start) binds nothing
        previous = json.loads(record_path.read_text())
        for key, value in requested.items():
            if previous.get(key) != value:
                raise mismatch(metadata_dir, key, previous.get(key), value, what="own metadata drawn")
        for split, size in sizes.items():
            if split in drawn and previous["n_mixtures"].get(split) not in (None, size):
                raise mismatch(metadata_dir, f"n_mixtures[{split}]", previous["n_mixtures"][split], size,
                               what="own metadata drawn")
        sizes = {**{split: previous["n_mixtures"][split] for split in drawn if split in previous["n_mixtures"]}, **sizes}
    subjects = split_subjects(hrtf_set.subjects(), options.seed)
    write_json_atomic(record_path, requested | {"n_mixtures": sizes, "subjects": subjects})
    for split in splits:
        if all(p.exists() for p in metadata_paths(metadata_dir, options.n_spks, split).values()):
            continue
        logger.info("drawing %d %d-talker mixtures for %s", n_mixtures[split], options.n_spks, split)
        specs = draw_split(wsj_root, hrtf_set, subjects[split], options.n_spks, split, n_mixtures[split], options.seed)
        write_split(specs, metadata_dir, options.n_spks, split)


def resolve_metadata(
    wsj_root: Path, output_root: Path, options: GenerationOptions
) -> tuple[Path, HRTFSet | None, dict[str, str]]:
    """The metadata folder of the build, its HRTF set (None when the variant uses none) and sources.

    Own mode draws what is missing; official mode downloads the public archive when no local copy
    is given (the reverberant variant needs no HRTF database).
    """
    variant = options.variant
    if options.own_metadata:
        spec = options.hrtf_spec()
        metadata_dir = Path(options.metadata_dir or output_root / OWN_METADATA_FOLDER)
        hrtf_set = open_hrtf_set(spec)
        draw_own_metadata(wsj_root, metadata_dir, hrtf_set, options)
        variant.draw_own_metadata(metadata_dir, options.n_spks, options.splits, options.seed)
        return metadata_dir, hrtf_set, {"metadata_dir": str(metadata_dir), "hrtf": spec}
    metadata_dir = Path(options.metadata_dir) if options.metadata_dir else None
    hrtf_dir = options.hrtf_dir
    if metadata_dir is None or (variant.uses_hrtf and hrtf_dir is None):
        repo = ensure_binaural_wsj0mix_repo(Path(options.repo_dir) if options.repo_dir else output_root.parent / REPO_FOLDER)
        metadata_dir = metadata_dir or repo / "metadata"
        hrtf_dir = hrtf_dir or repo / CIPIC_IN_REPO
    sources = {"metadata_dir": str(metadata_dir)}
    if not variant.uses_hrtf:
        return metadata_dir, None, sources
    return metadata_dir, open_hrtf_set(hrtf_dir), sources | {"hrtf": str(hrtf_dir)}


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# ==================================================================================================
# The build
# ==================================================================================================


def create_binaural_wsj0mix(
    wsj_root: str | Path, output_root: str | Path, options: GenerationOptions | None = None
) -> dict[str, int]:
    """Generate the dataset ``options`` describe into ``output_root``; returns the mixtures written per split.

    Holds the tree's lock throughout (a concurrent run into the same folder waits). Everything
    is checked before the first wav is written: the dataset record (other options are refused),
    the metadata, every utterance, every HRIR/BRIR/noise recording. Parts are recorded ``in
    progress`` before their first file and ``complete`` after their last.

    Raises
    ------
    errors.RecipeError
        Bad input or a folder made with other options (the message names the file and the fix).
    """
    wsj_root, output_root = Path(wsj_root), Path(output_root)
    options = options or GenerationOptions()
    created = not output_root.exists()
    make_folder(output_root, "--output_dir")
    try:
        with exclusive(output_root / LOCK_NAME, f"the dataset folder {output_root}"):
            return _build(wsj_root, output_root, options)
    except BaseException:
        if created and {p.name for p in output_root.iterdir()} <= {LOCK_NAME}:
            # Refused before writing anything: leave no trace of a folder the user had not made.
            (output_root / LOCK_NAME).unlink(missing_ok=True)
            output_root.rmdir()
        raise


def _build(wsj_root: Path, output_root: Path, options: GenerationOptions) -> dict[str, int]:
    """:func:`binaural.data.generation` once the lock is held."""
    variant, n_spks = options.variant, options.n_spks
    record = DatasetRecord.read(output_root)
    if record is not None:  # before anything is drawn, downloaded or written
        record.check_identity(options.identity(), output_root)
        record.check_sizes(options, output_root)
    if not (wsj_root / "wsj0").is_dir() and not holds_wavs(output_root):
        raise no_wsj0_error(wsj_root, output_root)  # before anything is downloaded or drawn
    metadata_dir, hrtf_set, sources = resolve_metadata(wsj_root, output_root, options)
    specs = {split: variant.load_specs(metadata_dir, n_spks, split, options.freqs, options.modes) for split in options.splits}
    for split in options.splits:
        check_unique_outputs(specs[split], metadata_dir)
    if record is None and check_recordless(output_root, options, specs):
        return {split: 0 for split in options.splits}
    everything = [spec for split in options.splits for spec in specs[split]]
    if not (wsj_root / "wsj0").is_dir():
        raise no_wsj0_error(wsj_root, output_root)
    check_sources(everything, wsj_root, check_rate=not options.own_metadata)
    workers_wanted = options.num_workers or default_workers()
    download_parent = Path(options.repo_dir).parent if options.repo_dir else output_root.parent
    inputs = BuildInputs(
        wsj_root, output_root, metadata_dir, tuple(everything), n_spks, tuple(options.freqs), tuple(options.modes),
        tuple(options.splits), not options.own_metadata, options.seed, hrtf_set, download_parent, workers_wanted,
        options.progress,
    )
    renderer = variant.prepare(inputs)
    digests = {split: metadata_digest(variant.metadata_files(metadata_dir, n_spks, split)) for split in options.splits}
    if record is not None:
        record.check_metadata(digests, output_root)

    # Claim the parts in the record before the first wav.
    tasks = pending_targets(everything, output_root, options.freqs, options.modes, variant)
    record = record or DatasetRecord(options.identity())
    record.sources |= sources | variant.sources()
    record.metadata_sha256 |= digests
    pending_parts = {(freq, mode, spec.split) for spec, targets in tasks for freq, mode in targets}
    for freq, mode, split in options.parts():
        if (freq, mode, split) in pending_parts or record.status(freq, mode, split) != COMPLETE:
            record.parts[part_name(freq, mode, split)] = {"status": IN_PROGRESS, "mixtures": len(specs[split])}
    record.write(output_root)

    def finish_split(split: str) -> None:
        """Record the split's parts complete once every file of them is on disk."""
        for freq, mode in itertools.product(options.freqs, options.modes):
            files = part_files(output_root, freq, mode, split, variant, n_spks)
            if all(count == len(specs[split]) for count in files.values()):
                record.parts[part_name(freq, mode, split)] = {"status": COMPLETE, "mixtures": len(specs[split]),
                                                              "files": files}
        record.write(output_root)

    renderer.before_build()
    removed = sum(
        remove_partial_files(split_folder(output_root, *part)) for part in options.parts()
    )  # ours: the lock guarantees no other writer in these folders
    if removed:
        logger.info("removed %d partial file(s) left by an interrupted run", removed)
    skipped = len(everything) - len(tasks)
    if skipped:
        logger.info("%d of %d mixtures already complete, skipped", skipped, len(everything))

    pending = collections.Counter(spec.split for spec, _ in tasks)
    for split in options.splits:
        if not pending[split]:
            finish_split(split)
    clipped = _run(tasks, renderer, workers_wanted, f"binaural wsj0-{n_spks}mix ({variant.name})", options.progress,
                   finish_split)
    unfinished = [part_name(*part) for part in options.parts() if record.status(*part) != COMPLETE]
    if unfinished:  # never "done" over a part the record still calls in progress
        raise DatasetError(
            f"{output_root}: {', '.join(unfinished)} still in progress after the build: its folders do not hold "
            "exactly one file per mixture of the metadata; run the same command again to finish it"
        )
    if clipped:
        logger.warning(
            "%d sample(s) exceeded the int16 range and were %s", clipped,
            "wrapped around, as the public scripts' astype(int16) does" if renderer.overflow == "wrap" else "clipped",
        )
    return {split: sum(1 for spec, _ in tasks if spec.split == split) for split in options.splits}


def no_wsj0_error(wsj_root: Path, output_root: Path) -> DatasetError:
    """Nothing to generate from: ``wsj_root`` has no ``wsj0/`` (or does not exist)."""
    absent = "" if wsj_root.is_dir() else " (it does not exist)"
    return DatasetError(
        f"{output_root} does not hold the mixtures yet and --wsj_root {wsj_root} has no wsj0/ folder{absent} to "
        "generate them from; point --wsj_root at the folder that contains wsj0/, or --data_folder at generated data"
    )


def _run(
    tasks: list, renderer: Renderer, workers_wanted: int, description: str, progress: bool,
    split_done: Callable[[str], None],
) -> int:
    """Build every task (in this process or a pool), calling ``split_done(split)`` after the last
    task of each split (tasks come split by split); returns the samples out of the int16 range."""
    workers = max(1, min(workers_wanted, len(tasks) or 1))
    remaining = collections.Counter(spec.split for spec, _ in tasks)
    clipped = 0
    bar = tqdm(total=len(tasks), desc=description, unit="mix", disable=not progress)
    _init_worker(renderer)  # before the pool forks: workers inherit the warm caches
    with contextlib.ExitStack() as stack:
        if workers == 1:
            counts = map(_build_mixture, tasks)
        else:
            pool = stack.enter_context(ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(renderer,)))
            # Small chunks: a mixture takes tens of ms, and a last big chunk would leave a core idle.
            counts = pool.map(_build_mixture, tasks, chunksize=max(1, min(4, len(tasks) // (4 * workers))))
        for (spec, _), count in zip(tasks, counts):  # in task order
            clipped += count
            bar.update()
            remaining[spec.split] -= 1
            if not remaining[spec.split]:
                split_done(spec.split)
    bar.close()
    return clipped


# ==================================================================================================
# Making sure it exists (what train.py calls)
# ==================================================================================================


def ensure_dataset(wsj_root: str | Path, output_root: str | Path, options: GenerationOptions) -> None:
    """Make the tree at ``output_root`` hold the complete parts of ``options``; generate what lacks.

    Called by ``train.py`` (main process only) before the manifests are written. A tree whose
    record says every part is complete is used at once; otherwise the generator runs: it resumes
    an interrupted build, accepts a complete record-less tree (with a warning), and refuses a tree
    made with other options or a partial record-less one, before writing anything.

    Raises
    ------
    DatasetError
        Other options, an unusable tree, or nothing to generate from (no ``wsj0/`` in ``wsj_root``).
    """
    output_root = Path(output_root)
    missing = missing_parts(output_root, options)
    if not missing:
        logger.info("Binaural WSJ0-%dmix found in %s (%s): every part complete", options.n_spks, output_root,
                    options.variant.name)
        return
    logger.info("Binaural WSJ0-%dmix: %s to check or generate in %s", options.n_spks, ", ".join(missing), output_root)
    create_binaural_wsj0mix(wsj_root, output_root, options)
