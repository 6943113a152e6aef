"""Long recordings in blocks: the block plan, and a file streamed from disk to disk through the model.

:func:`separate_in_blocks` separates an array block by block (each block extended by the model's
context, joined by linear cross-fades). :func:`stream_file` does the same from a file to files:
the input is read a second at a time (``soundfile.SoundFile``), resampled to the model's rate piece
by piece (:class:`binaural.data.mixing.StreamResampler`, equal to resampling the whole file), cut
into the same blocks, and the estimates are resampled back and written as they become final. Peak
memory is one block (plus context) at the model's rate, whatever the file's length; the results
equal whole-file processing (:meth:`BinauralSeparator.separate_array`).
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from binaural.data.mixing import StreamResampler
from binaural.io.atomic import PARTIAL_SUFFIX, WriteError, atomic_path
from binaural.io.audio import AudioFileError
from binaural.models.tasnet import BinauralTasNet
from binaural.realtime.streaming import model_context
from binaural.separation.files import SeparationError

PCM_PEAK = 0.999  # headroom below full scale for PCM output
#: Input frames read at a time, in seconds of the input (at least READ_MIN_FRAMES).
READ_SECONDS = 1.0
READ_MIN_FRAMES = 4096


@dataclass(frozen=True)
class Block:
    """One block of :func:`separate_in_blocks`, in samples of the model's rate.

    The model runs on input ``[start, stop)``; its output is used on ``[keep_start, keep_stop)``,
    weighted by a linear fade-in over the first ``fade_in`` samples and a fade-out over the last
    ``fade_out`` samples (the neighbour's fade is the complement: the weights sum to 1).
    """

    start: int
    stop: int
    keep_start: int
    keep_stop: int
    fade_in: int
    fade_out: int


def plan_blocks(n_samples: int, block: int, crossfade: int, before: int, after: int, stride: int) -> list[Block]:
    """Blocks covering ``n_samples``: hop ``block``, ``before``/``after`` samples of context.

    Block inputs start on multiples of ``stride`` so that their encoder frames are the whole
    file's frames. A file that fits in one block (plus the cross-fade) is one block: the whole file.
    """
    block = max(2 * stride, block // stride * stride)
    crossfade = max(0, min(crossfade, block // 2))
    # More than one block only when the last one holds more than the cross-fade: every ramp
    # then lies inside the file.
    n_blocks = max(1, math.ceil((n_samples - crossfade) / block))
    if n_blocks == 1:
        return [Block(0, n_samples, 0, n_samples, 0, 0)]
    half = crossfade // 2
    blocks = []
    for i in range(n_blocks):
        keep_start = 0 if i == 0 else i * block - half
        keep_stop = n_samples if i == n_blocks - 1 else (i + 1) * block - half + crossfade
        start = max(0, keep_start - before) // stride * stride
        stop = min(n_samples, keep_stop + after)
        blocks.append(
            Block(start, stop, keep_start, keep_stop, crossfade if i else 0, crossfade if i < n_blocks - 1 else 0)
        )
    return blocks


def _block_weights(block: Block) -> torch.Tensor:
    """``[keep_stop - keep_start]`` weights: linear ramps at the joins, 1 elsewhere.

    :func:`plan_blocks` makes every kept region at least ``fade_in + fade_out`` long and puts the
    fade-out of a block exactly on the fade-in of the next one, so the weights sum to 1.
    """
    weights = torch.ones(block.keep_stop - block.keep_start)
    if block.fade_in:
        weights[: block.fade_in] = (torch.arange(block.fade_in) + 0.5) / block.fade_in
    if block.fade_out:
        weights[-block.fade_out :] = 1.0 - (torch.arange(block.fade_out) + 0.5) / block.fade_out
    return weights


def separate_in_blocks(
    model: BinauralTasNet,
    mix: torch.Tensor,
    block: int,
    crossfade: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Separate a long ``[time, 2]`` mixture with bounded memory: ``[time, 2, n_spks]`` on the CPU.

    Context per block: :func:`binaural.realtime.streaming.model_context` (receptive field of the mask networks,
    in encoder frames times the stride, plus the encoder window and one frame of slack).
    """
    assert model.stride is not None
    before, after = model_context(model)
    plan = plan_blocks(mix.shape[0], block, crossfade, before, after, model.stride)
    out: torch.Tensor | None = None
    with torch.inference_mode():
        for piece in plan:
            segment = mix[piece.start : piece.stop].to(device, torch.float32).unsqueeze(0)  # [1, t, 2]
            est = _forward(model, segment)[0].cpu()  # [t, 2, C]
            if len(plan) == 1:
                return est
            if out is None:
                out = torch.zeros(mix.shape[0], 2, est.shape[-1])
            kept = est[piece.keep_start - piece.start : piece.keep_stop - piece.start]  # [keep, 2, C]
            out[piece.keep_start : piece.keep_stop] += kept * _block_weights(piece)[:, None, None]
    assert out is not None
    return out


def _forward(model: BinauralTasNet, mix: torch.Tensor) -> torch.Tensor:
    """``model(mix)`` with SpeechBrain's short-input failures turned into a clear error."""
    try:
        return model(mix)
    except (RuntimeError, ValueError) as error:
        if "padding" in str(error).lower() or "kernel size" in str(error).lower():
            raise SeparationError(
                f"the mixture ({mix.shape[1]} samples) is too short for this model: {error}"
            ) from error
        raise


# ============================================================================================== files
class _Window:
    """Samples ``[start, ...)`` of a stream of ``[time, ...]`` pieces, pulled as needed, dropped when used."""

    def __init__(self, pieces: Iterator[np.ndarray]) -> None:
        self._pieces = pieces
        self._data: np.ndarray | None = None
        self._start = 0

    def take(self, start: int, stop: int) -> np.ndarray:
        """Samples ``[start, stop)`` (fewer at the stream's end); ``start`` never before an earlier drop."""
        while self._data is None or self._start + len(self._data) < stop:
            piece = next(self._pieces, None)
            if piece is None:
                break
            self._data = piece if self._data is None else np.concatenate([self._data, piece])
        assert self._data is not None and start >= self._start
        return self._data[start - self._start : stop - self._start]

    def drop(self, before: int) -> None:
        """Forget the samples before ``before``."""
        if self._data is not None and before > self._start:
            self._data = self._data[before - self._start :]
            self._start = before


def blocks_of_stream(
    model: BinauralTasNet, pieces: Iterator[np.ndarray], n_samples: int, block: int, crossfade: int,
    device: torch.device | str = "cpu",
) -> Iterator[np.ndarray]:
    """:func:`separate_in_blocks` of a ``[time, 2]`` stream of ``n_samples`` (model rate) given in
    pieces: yields the ``[time, 2, n_spks]`` estimate in order, each sample once it is final."""
    assert model.stride is not None
    before, after = model_context(model)
    plan = plan_blocks(n_samples, block, crossfade, before, after, model.stride)
    window = _Window(pieces)
    pending: np.ndarray | None = None  # the summed output of the join after the last yield (a fade-out)
    for i, piece in enumerate(plan):
        segment = np.ascontiguousarray(window.take(piece.start, piece.stop), dtype=np.float32)
        if i + 1 < len(plan):
            window.drop(plan[i + 1].start)
        with torch.inference_mode():
            est = _forward(model, torch.from_numpy(segment).to(device).unsqueeze(0))[0].cpu()  # [t, 2, C]
            kept = (est[piece.keep_start - piece.start : piece.keep_stop - piece.start]
                    * _block_weights(piece)[:, None, None]).numpy()
        if pending is not None:  # the previous block's fade-out: add this block's fade-in to it
            overlap = len(pending)
            kept[:overlap] = pending + kept[:overlap]
        final = plan[i + 1].keep_start if i + 1 < len(plan) else n_samples
        yield kept[: final - piece.keep_start]
        pending = kept[final - piece.keep_start :]
        if not len(pending):
            pending = None


def chunks_of_stream(
    process_chunk: Callable[[np.ndarray], torch.Tensor], flush: Callable[[], torch.Tensor],
    pieces: Iterator[np.ndarray], chunk: int,
) -> Iterator[np.ndarray]:
    """A streaming engine fed ``chunk`` samples at a time from a stream of pieces (the last chunk
    may be shorter), then flushed: yields its ``[time, 2, n_spks]`` outputs in order."""
    window = _Window(pieces)
    start = 0
    while True:
        piece = np.ascontiguousarray(window.take(start, start + chunk), dtype=np.float32)
        if not len(piece):
            break
        yield process_chunk(piece).cpu().numpy()
        start += len(piece)
        window.drop(start)
    yield flush().cpu().numpy()


def read_stream(path: Path, info: sf._SoundFileInfo) -> Iterator[np.ndarray]:
    """The frames of ``path`` as float32 ``[time, channels]`` pieces of about a second, checked
    finite; an error naming the file when fewer frames decode than its header announces."""
    frames = max(READ_MIN_FRAMES, round(READ_SECONDS * info.samplerate))
    read = 0
    try:
        with sf.SoundFile(str(path)) as handle:
            for piece in handle.blocks(blocksize=frames, dtype="float32", always_2d=True):
                if not np.isfinite(piece).all():
                    raise AudioFileError(f"{path}: contains NaN or infinite samples; regenerate it")
                read += len(piece)
                yield piece
    except (RuntimeError, sf.LibsndfileError) as error:
        raise AudioFileError(f"{path}: corrupt audio data ({error}); re-copy or re-convert it") from error
    if read < info.frames:
        raise AudioFileError(f"{path}: truncated: {read} of its {info.frames} samples decode; re-copy or regenerate it")


def resampled(pieces: Iterator[np.ndarray], rate_in: int, rate_out: int) -> Iterator[np.ndarray]:
    """A stream of pieces at ``rate_in`` Hz as pieces at ``rate_out`` (equal to resampling it whole)."""
    resampler = StreamResampler(rate_in, rate_out)
    for piece in pieces:
        out = resampler.push(piece)
        if len(out):
            yield out
    last = resampler.finish()
    if len(last):
        yield last


def fitted(pieces: Iterator[np.ndarray], n_samples: int) -> Iterator[np.ndarray]:
    """The first ``n_samples`` samples of a stream, zero-padded at the end if it is shorter."""
    done = 0
    shape: tuple = ()
    for piece in pieces:
        shape = piece.shape[1:]
        piece = piece[: n_samples - done]
        done += len(piece)
        if len(piece):
            yield piece
    while done < n_samples:
        pad = min(n_samples - done, READ_MIN_FRAMES * 16)
        done += pad
        yield np.zeros((pad, *shape), dtype=np.float32)


@contextlib.contextmanager
def _scratch(target: Path) -> Iterator[Path]:
    """A hidden temporary file beside ``target`` (deleted at the end): float estimates before PCM."""
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", suffix=PARTIAL_SUFFIX, dir=target.parent) as folder:
        yield Path(folder) / "float.wav"


def write_stream(estimates: Iterator[np.ndarray], targets: Sequence[Path], rate: int, subtype: str) -> None:
    """Write a stream of ``[time, 2, n_spks]`` pieces as one stereo wav per talker, atomically.

    ``FLOAT`` files are written as the pieces come. For ``PCM_16``/``PCM_24`` the floats go to a
    scratch file first; an estimate whose peak exceeds full scale is then scaled down (both ears by
    the same factor, so its interaural level difference stays) and a line says so.
    """
    with contextlib.ExitStack() as outputs:
        finals = [outputs.enter_context(atomic_path(target)) for target in targets]
        floats = finals if subtype == "FLOAT" else [outputs.enter_context(_scratch(t)) for t in targets]
        peaks = np.zeros(len(targets))
        try:
            with contextlib.ExitStack() as files:
                handles = [files.enter_context(sf.SoundFile(str(p), "w", rate, 2, "FLOAT", format="WAV")) for p in floats]
                for piece in estimates:
                    for k, handle in enumerate(handles):
                        handle.write(piece[:, :, k])
                    if len(piece):
                        peaks = np.maximum(peaks, np.abs(piece).max(axis=(0, 1)))
            if subtype != "FLOAT":
                for target, source, final, peak in zip(targets, floats, finals, peaks):
                    _to_pcm(target, source, final, rate, subtype, float(peak))
        except (RuntimeError, sf.LibsndfileError) as error:  # libsndfile's write errors: a full disk...
            raise WriteError(f"{targets[0].parent}: the estimates cannot be written ({error}); check the disk") from error


def _to_pcm(target: Path, source: Path, final: Path, rate: int, subtype: str, peak: float) -> None:
    """Copy the float wav ``source`` to ``final`` as ``subtype``, scaled below full scale if ``peak`` exceeds it."""
    gain = 1.0
    if peak > PCM_PEAK:
        gain = PCM_PEAK / peak
        print(f"{target}: peak {peak:.3f} above full scale for {subtype}; scaled by {gain:.3f} (both ears alike)")
    with sf.SoundFile(str(source)) as reader, sf.SoundFile(str(final), "w", rate, 2, subtype, format="WAV") as writer:
        for piece in reader.blocks(blocksize=READ_MIN_FRAMES * 16, dtype="float32", always_2d=True):
            writer.write(piece * gain if gain != 1.0 else piece)


#: glibc's ``mallopt`` parameter for the size from which an allocation is its own ``mmap``.
_M_MMAP_THRESHOLD = -3
#: From this size (bytes) on, arrays are mapped on their own and unmapped when freed.
MMAP_THRESHOLD = 1 << 20


@functools.lru_cache(maxsize=1)
def return_freed_blocks() -> bool:
    """Make glibc give the memory of freed large arrays back to the system (once per process).

    glibc raises its ``mmap`` threshold each time a mapped array is freed (up to 32 MB), after
    which the block-sized arrays of a long file come from the heap, where they fragment it: the
    peak RSS then creeps up with the file's length (+180 MB from 2 to 20 minutes at 8 kHz) though
    no array outlives its block. A fixed threshold keeps every large array mapped on its own.
    Returns whether it applied (False off glibc).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False


def stream_file(
    path: Path, info: sf._SoundFileInfo, targets: Sequence[Path], model_rate: int,
    separate: Callable[[Iterator[np.ndarray], int], Iterator[np.ndarray]], subtype: str = "FLOAT",
) -> None:
    """Separate the file ``path`` (header ``info``, two channels) into ``targets``, streamed.

    ``separate(pieces, n_samples)`` turns the model-rate ``[time, 2]`` stream of ``n_samples``
    into the ``[time, 2, n_spks]`` estimate stream (:func:`blocks_of_stream`, :func:`chunks_of_stream`).
    The estimates are resampled back to the file's rate and cut to its length.
    """
    return_freed_blocks()
    rate = info.samplerate
    n_model = -(-info.frames * model_rate // rate)  # resample's length, in integers
    at_model_rate = resampled(read_stream(path, info), rate, model_rate)
    estimates = fitted(resampled(separate(at_model_rate, n_model), model_rate, rate), info.frames)
    write_stream(estimates, targets, rate, subtype)
