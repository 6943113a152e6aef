"""Reading and writing the recipe's audio files: raw WSJ0 samples in, atomic 16-bit/float wavs out.

Every reader names the file and the fix when something is wrong; every writer goes through a
temporary file in the same folder and ``os.replace``, so a killed job never leaves a truncated wav
behind, and a rerun can trust every wav it finds.
"""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import soundfile as sf

from binaural.io.atomic import atomic_bytes
from binaural.errors import RecipeError

INT16_MAX = 32767
INT16_MIN = -32768
# WSJ0 ships as NIST SPHERE ``.wv1``/``.wv2``; the public scripts expect ``.wav`` conversions.
SPHERE_SUFFIXES = (".wv1", ".WV1", ".wv2", ".WV2", ".sph", ".SPH")
#: The files that count as a WSJ0 utterance in a talker folder (lower case): the wav conversions,
#: and the SPHERE originals that :func:`resolve_utterance` finds in their place.
UTTERANCE_SUFFIXES = (".wav", ".wv1")
#: The files a user's folder of recordings (separate.py) or of estimates (metrics.py) is read for.
RECORDING_SUFFIXES = (".wav", ".flac")
#: soundfile subtypes that can hold NaN or infinity.
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")


class AudioFileError(RecipeError):
    """A wav that is missing, unreadable, or not what the recipe needs."""


def resolve_utterance(wsj_root: Path, relative_path: str) -> Path:
    """Find a WSJ0 utterance given as ``wsj0/.../x.wav``, accepting a SPHERE original instead.

    Returns the ``.wav`` path when it exists, else the first existing SPHERE sibling
    (``.wv1``...), else the ``.wav`` path (which the caller reports as missing).
    """
    wav = Path(wsj_root) / relative_path
    if wav.exists():
        return wav
    for suffix in SPHERE_SUFFIXES:
        candidate = wav.with_suffix(suffix)
        if candidate.exists():
            return candidate
    return wav


def _sphere_coding(path: Path) -> str:
    """The ``sample_coding`` field of a NIST SPHERE header ('' when absent or not SPHERE)."""
    with open(path, "rb") as handle:
        head = handle.read(1024)
    if not head.startswith(b"NIST_1A"):
        return ""
    match = re.search(rb"sample_coding\s+-s\d+\s+(\S+)", head)
    return match.group(1).decode("ascii", "replace") if match else ""


def wav_promised_frames(path: Path) -> int | None:
    """The frames the ``data`` chunk of a RIFF/WAVE header announces, or None (not a WAV, or a
    streaming header with no length).

    libsndfile reports the frames the file *holds*, clamped to its size: a wav cut short reads as
    a shorter recording without a word. The header's own count tells that it was cut.
    """
    with open(path, "rb") as handle:
        riff = handle.read(12)
        if len(riff) < 12 or riff[:4] not in (b"RIFF", b"RIFX") or riff[8:12] != b"WAVE":
            return None
        order = "little" if riff[:4] == b"RIFF" else "big"
        block_align = None
        while True:
            header = handle.read(8)
            if len(header) < 8:
                return None
            size = int.from_bytes(header[4:], order)
            if header[:4] == b"data":
                unknown = size in (0, 0xFFFFFFFF) or not block_align
                return None if unknown else size // block_align
            body = handle.read(size + (size & 1))
            if header[:4] == b"fmt " and len(body) >= 14:
                block_align = int.from_bytes(body[12:14], order)


def check_readable(path: Path, expected_rate: int | None = None) -> sf._SoundFileInfo:
    """Header-only check that ``path`` is a readable, whole audio file (at ``expected_rate`` Hz if given).

    Raises:
        AudioFileError: missing file, shorten-compressed SPHERE, unreadable or truncated file, or
            wrong rate, with the fix in the message.
    """
    path = Path(path)
    if not path.exists():
        raise AudioFileError(f"{path}: file not found")
    if "shorten" in _sphere_coding(path):
        raise AudioFileError(
            f"{path}: NIST SPHERE with shorten compression, which libsndfile cannot read. Convert WSJ0 "
            "to wav first, e.g. `sph2pipe -f wav X.wv1 X.wav` for every file (the public "
            "Binaural-WSJ0Mix scripts expect wsj0/.../*.wav)"
        )
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError) as error:
        raise AudioFileError(f"{path}: unreadable audio file ({error}); re-copy or re-convert it") from error
    promised = wav_promised_frames(path)
    if promised is not None and promised > info.frames:
        raise AudioFileError(
            f"{path}: truncated: its header announces {promised} samples but the file holds {info.frames} "
            "(an interrupted copy or download?); re-copy or regenerate it"
        )
    if info.frames == 0:
        raise AudioFileError(f"{path}: empty audio file (0 samples); re-copy it")
    if expected_rate is not None and info.samplerate != expected_rate:
        raise AudioFileError(
            f"{path}: sample rate {info.samplerate} Hz, expected {expected_rate} Hz; "
            f"resample the corpus to {expected_rate} Hz (e.g. with sox) or use the original WSJ0 files"
        )
    return info


def read_int16_first_channel(path: Path, expected_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read the first channel as raw int16 values (not scaled to ±1), as the public scripts do.

    Returns:
        samples: int16 ``[time]``; sample_rate: Hz.
    """
    info = check_readable(path, expected_rate)
    return _read_whole(path, info, "int16")[:, 0], info.samplerate


def _read_whole(path: Path, info: sf._SoundFileInfo, dtype: str) -> np.ndarray:
    """Every frame of ``path`` as ``[time, channel]`` ``dtype``, or an error when fewer decode."""
    try:
        data, _ = sf.read(str(path), dtype=dtype, always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as error:
        raise AudioFileError(f"{path}: corrupt audio data ({error}); re-copy or re-convert it") from error
    if len(data) < info.frames:
        raise AudioFileError(
            f"{path}: truncated: {len(data)} of its {info.frames} samples decode; re-copy or regenerate it"
        )
    return data


def check_channels(path: Path, info: sf._SoundFileInfo, channels: int) -> None:
    """Refuse a file (header ``info``) without exactly ``channels`` channels, counting them as they are."""
    if info.channels != channels:
        raise AudioFileError(
            f"{path}: {info.channels} channel{'s' if info.channels > 1 else ''}, expected {channels}"
            + (" (left, right)" if channels == 2 else "")
            + (": a mono file carries no interaural cues" if channels == 2 and info.channels == 1 else "")
        )


def read_float(
    path: Path, expected_rate: int | None = None, channels: int | None = None, dtype: str = "float64"
) -> tuple[np.ndarray, int]:
    """Read a whole audio file in [-1, 1] as ``[time, channel]`` ``dtype``, checking rate, channel
    count, length (against its header) and finiteness."""
    info = check_readable(path, expected_rate)
    if channels is not None:
        check_channels(path, info, channels)
    data = _read_whole(path, info, dtype)
    if not np.all(np.isfinite(data)):
        raise AudioFileError(f"{path}: contains NaN or infinite samples; regenerate it")
    return data, info.samplerate


def to_int16(samples: np.ndarray, overflow: str = "clip") -> tuple[np.ndarray, int]:
    """Quantise as MATLAB's old ``wavwrite`` did (``astype(int16)``: truncation toward zero).

    Args:
        overflow: what happens to samples beyond the int16 range. ``"wrap"`` reproduces the public
            scripts' ``astype(numpy.int16)`` on x86 (modulo 2**16, the published bits);
            ``"clip"`` saturates instead, which is what a new dataset should do.
    Returns:
        int16 array of the same shape; number of samples that were out of range.
    """
    truncated = np.trunc(samples)
    out_of_range = int(np.count_nonzero((truncated > INT16_MAX) | (truncated < INT16_MIN)))
    if not out_of_range:
        return truncated.astype(np.int16), 0
    if overflow == "clip":
        return np.clip(truncated, INT16_MIN, INT16_MAX).astype(np.int16), out_of_range
    if overflow == "wrap":
        wrapped = (truncated.astype(np.int64) - INT16_MIN) % 65536 + INT16_MIN
        return wrapped.astype(np.int16), out_of_range
    raise ValueError(f"overflow must be 'clip' or 'wrap', got {overflow!r}")


def write_atomic(path: Path, samples: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> None:
    """Write ``samples`` ``[time]`` or ``[time, channel]`` to ``path``: complete or not at all.

    The WAV is built in memory (the same bytes soundfile writes to a file) and written in one go:
    see :func:`binaural.io.atomic.atomic_bytes` for why.
    """
    buffer = io.BytesIO()
    sf.write(buffer, samples, sample_rate, subtype=subtype, format="WAV")
    atomic_bytes(path, _without_write_time(buffer.getbuffer()))


def _without_write_time(wav: memoryview) -> memoryview:
    """The WAV bytes with the time stamp of libsndfile's ``PEAK`` chunk (float files) zeroed.

    That stamp is the second the file was written: without this, two runs that compute the same
    samples would write different bytes.
    """
    header = bytes(wav[:512])
    at = header.find(b"PEAK")
    if at >= 12 and header[8:12] == b"WAVE":
        wav[at + 12 : at + 16] = b"\0\0\0\0"  # after the chunk id, its size and its version
    return wav
