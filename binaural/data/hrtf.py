"""HRTF sources of the dataset generator: CIPIC WAV database, SOFA files, built-in spherical head.

Every source answers three questions (:class:`HRTFSet`): which listeners (``subjects``), which
directions per listener (``directions``), and the left/right impulse response of one direction at
a given sample rate (``hrir``, float64 ``[2, taps]``). Directions are spelled as the official
``hrtf_meta_*.csv`` files spell them, so metadata written with one source reads back unchanged.

Angles are in degrees in the CIPIC interaural-polar convention: azimuth is the lateral angle,
positive towards the listener's right; elevation is the polar angle around the interaural axis
(0 = front, 90 = above, 180 = behind).

Sources:
- :class:`CipicWavHRTF`: the CIPIC database in the WAV layout of the public Binaural-WSJ0Mix
  scripts, read and resampled exactly as they do (bit-exact).
- :class:`SofaHRTF`: AES69 SOFA files (``SimpleFreeFieldHRIR``), one file per listener.
- :class:`SphericalHeadHRTF`: Brown & Duda's (1998) structural spherical-head model, so that
  everything runs without any database.
"""
from __future__ import annotations

import abc
import math
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.io import wavfile
from scipy.special import i0

from binaural.data.mixing import resample
from binaural.errors import RecipeError


class HRTFError(RecipeError):
    """An HRTF request or file that cannot be served: unknown listener or direction, bad file."""


class HRTFFileNotFoundError(HRTFError, FileNotFoundError):
    """A file or folder an HRTF set needs is not there (both an HRTFError and a FileNotFoundError)."""


@dataclass(frozen=True)
class Direction:
    """One measured direction of a listener.

    ``azimuth``/``elevation`` are spelled as the metadata spells them (degrees); ``index`` is the
    row that :meth:`HRTFSet.hrir` takes: the CIPIC elevation index 0..49, the SOFA measurement row,
    or the spherical head's (CIPIC) elevation index.
    """

    azimuth: str
    elevation: str
    index: int
    azimuth_deg: float
    elevation_deg: float


@dataclass(frozen=True)
class _Block:
    """The HRIRs of one (subject, azimuth, sample rate): ``irs[k]`` is the ``[2, taps]`` of row ``indices[k]``."""

    indices: tuple[int, ...]
    irs: np.ndarray  # [rows, 2, taps] float64, read-only
    source: str  # what the rows came from, for error messages (file paths or a model name)


class HRTFSet(abc.ABC):
    """A set of listeners' HRIRs on a direction grid.

    Subclasses build one :class:`_Block` per (subject, azimuth, sample rate); this class caches
    it, so each file is read once per process whatever the number of mixtures. A set measured at
    one rate (:meth:`_native_rate`) keeps its blocks at that rate and resamples only the rows asked
    for, each once per rate: a mixture set uses a few of CIPIC's 50 elevations per azimuth, and
    resampling 44.1 kHz to 8 kHz (a 9261-tap filter) is the expensive step.
    """

    name: str

    def __init__(self) -> None:
        self._blocks: dict[tuple[str, str, int], _Block] = {}
        self._rows: dict[tuple[str, str, int, int], np.ndarray] = {}

    @abc.abstractmethod
    def subjects(self) -> list[str]:
        """Listener names, sorted (e.g. ``["subject03", "subject08", ...]``)."""

    @abc.abstractmethod
    def directions(self, subject: str) -> list[Direction]:
        """The direction grid of ``subject``."""

    @abc.abstractmethod
    def _load_block(self, subject: str, azimuth: str, sample_rate: int) -> _Block:
        """Read (and resample) every row of ``subject`` at ``azimuth``; raise HRTFError on bad input."""

    def _native_rate(self, subject: str) -> int | None:
        """The rate ``subject`` was measured at (Hz), or None for a model built at any rate."""
        return None

    def _block(self, subject: str, azimuth: str, sample_rate: int) -> _Block:
        key = (subject, azimuth, sample_rate)
        block = self._blocks.get(key)
        if block is None:
            block = self._load_block(subject, azimuth, sample_rate)
            block.irs.setflags(write=False)
            self._blocks[key] = block
        return block

    def hrir(self, subject: str, azimuth: str, index: int, sample_rate: int) -> np.ndarray:
        """Left/right impulse response of one direction.

        Args:
            subject: one of :meth:`subjects`.
            azimuth: degrees, spelled as in :meth:`directions` (e.g. ``"-45"``).
            index: the direction's row (:attr:`Direction.index`).
            sample_rate: Hz of the returned taps.
        Returns:
            float64 ``[2 (left, right), taps]`` at ``sample_rate``: a read-only cached array, copy
            it before modifying it.
        Raises:
            HRTFError: unknown subject or azimuth, index not on the grid, unreadable file.
        """
        rate = _check_rate(sample_rate)
        subject, azimuth = str(subject), str(azimuth)
        asked = index
        try:
            index = operator.index(index)
        except TypeError:
            index = None  # not an integer: reported below with the valid indices
        key = (subject, azimuth, index, rate)
        cached = self._rows.get(key)
        if cached is not None:
            return cached
        native = self._native_rate(subject)
        block = self._block(subject, azimuth, native or rate)
        try:
            row = block.indices.index(index)
        except ValueError:
            raise HRTFError(
                f"{block.source}: index {asked!r} is not on the grid at azimuth {azimuth} "
                f"(valid: {_compact(block.indices)})"
            ) from None
        ir = block.irs[row]  # [2, taps] at native or rate
        if native is not None and native != rate:
            # resample_poly filters each row on its own: one row gives the bits of the whole block's row.
            ir = np.asarray(resample(ir, native, rate, axis=-1), dtype=np.float64)
            ir.setflags(write=False)
        self._rows[key] = ir
        return ir


def _check_rate(sample_rate: int) -> int:
    try:
        valid = not isinstance(sample_rate, bool) and int(sample_rate) == sample_rate and sample_rate > 0
    except (TypeError, ValueError, OverflowError):
        valid = False
    if not valid:
        raise HRTFError(f"sample_rate must be a positive whole number of Hz, got {sample_rate!r}")
    return int(sample_rate)


def _compact(values: Sequence, shown: int = 8) -> str:
    """``"a, b, c"`` or ``"a, b, ... (N in all)"`` for long lists in error messages."""
    items = [str(v) for v in values]
    if len(items) > 2 and all(isinstance(v, int) for v in values):
        if list(values) == list(range(values[0], values[-1] + 1)):
            return f"{values[0]}..{values[-1]}"
    if len(items) <= shown:
        return ", ".join(items)
    return ", ".join(items[:shown]) + f", ... ({len(items)} in all)"


def _unknown_subject(subject: str, known: Sequence[str], where: object) -> HRTFError:
    return HRTFError(f"unknown subject {subject!r} in {where}; known subjects: {_compact(known)}")


def _spell_degrees(value: float) -> str:
    """Compact spelling of an angle: ``30.0 -> "30"``, ``-47.5 -> "-47.5"``, never ``"-0"``."""
    # Rounding first absorbs float noise (29.9999999 from a cartesian position spells "30").
    return f"{round(float(value), 4) + 0.0:g}"


# ---------------------------------------------------------------------------------------------
# CIPIC, WAV layout of the public Binaural-WSJ0Mix scripts
# ---------------------------------------------------------------------------------------------

CIPIC_RATE = 44100
CIPIC_AZIMUTHS: tuple[int, ...] = (-80, -65, -55, *range(-45, 50, 5), 55, 65, 80)
CIPIC_N_ELEVATIONS = 50
CIPIC_ELEVATION_STEP = 5.625  # degrees, 360 / 64
_SUBJECT_FOLDER = re.compile(r"subject\d+")


def cipic_elevation_deg(index: int) -> float:
    """True elevation of CIPIC row ``index`` (0..49): ``-45 + 5.625 * index`` degrees (exact in binary)."""
    return -45.0 + CIPIC_ELEVATION_STEP * index


def cipic_elevation_spelling(index: int) -> str:
    """Elevation of CIPIC row ``index`` as the official metadata and the database Readme spell it.

    Rounded half away from zero (MATLAB ``round``): row 2 (-33.75) is ``"-34"``, row 44 (202.5)
    is ``"203"``. Neither ``int()`` truncation (``"-33"``) nor Python's ``round`` (``"202"``) matches
    the 140 000 directions of the official ``hrtf_meta_*.csv`` files.
    """
    value = cipic_elevation_deg(index)
    return str(int(math.copysign(math.floor(abs(value) + 0.5), value)))


def cipic_azimuth_spelling(azimuth: int) -> str:
    """File-name spelling of an azimuth: ``-45 -> "neg45"``, ``30 -> "30"``."""
    return str(azimuth).replace("-", "neg")


def _read_cipic_wav(path: Path) -> tuple[int, np.ndarray]:
    """``scipy.io.wavfile.read`` exactly as the public scripts call it: ``(rate, raw int16 [50, taps])``.

    Module-level so tests can count reads.
    """
    return wavfile.read(path)


class CipicWavHRTF(HRTFSet):
    """CIPIC HRIRs in the WAV layout ``root/subjectNN/{az}az{left|right}.wav``.

    Each file holds one azimuth and ear of one subject: 44.1 kHz int16, 50 frames (the
    elevations, see :func:`cipic_elevation_deg`) of 200 channels (the taps). :meth:`hrir` reproduces
    the public Binaural-WSJ0Mix chain per ear, bit for bit::

        sr, h = scipy.io.wavfile.read(file)              # int16 [50, 200]
        h = scipy.signal.resample_poly(h, sample_rate, sr, axis=1)
        row = h[elevation_index]

    (resampling only the row used, which gives the same bits).
    """

    name = "cipic-wav"

    def __init__(self, root: str | Path) -> None:
        super().__init__()
        self.root = Path(root)
        if not self.root.is_dir():
            raise HRTFFileNotFoundError(
                f"{self.root}: no such folder; pass the CIPIC 'wav_database' folder that holds subjectNN/ folders"
            )
        self._subjects = sorted(p.name for p in self.root.iterdir() if p.is_dir() and _SUBJECT_FOLDER.fullmatch(p.name))
        if not self._subjects:
            raise HRTFError(
                f"{self.root}: no subjectNN/ folders; expected the CIPIC WAV layout "
                "subjectNN/{az}az{left|right}.wav (the 'wav_database' folder of Binaural-WSJ0Mix)"
            )
        self._grid = tuple(
            Direction(str(az), cipic_elevation_spelling(k), k, float(az), cipic_elevation_deg(k))
            for az in CIPIC_AZIMUTHS
            for k in range(CIPIC_N_ELEVATIONS)
        )

    def __repr__(self) -> str:
        return f"CipicWavHRTF({str(self.root)!r})"

    def subjects(self) -> list[str]:
        return list(self._subjects)

    def directions(self, subject: str) -> list[Direction]:
        """The 25 azimuths x 50 elevations of the database (azimuth-major, elevation index inner)."""
        self._check_subject(subject)
        return list(self._grid)

    def path(self, subject: str, azimuth: str, ear: str) -> Path:
        """``root/subject/{az}az{ear}.wav`` for ``ear`` in ``("left", "right")``."""
        return self.root / subject / f"{cipic_azimuth_spelling(self._parse_azimuth(subject, azimuth))}az{ear}.wav"

    def _check_subject(self, subject: str) -> None:
        if subject not in self._subjects:
            raise _unknown_subject(subject, self._subjects, self.root)

    def _parse_azimuth(self, subject: str, azimuth: str) -> int:
        try:
            value = int(azimuth)
        except ValueError:
            value = None
        if value not in CIPIC_AZIMUTHS:
            raise HRTFError(
                f"{self.root / subject}: azimuth {azimuth!r} is not on the CIPIC grid "
                f"({', '.join(map(str, CIPIC_AZIMUTHS))} degrees)"
            )
        return value

    def _native_rate(self, subject: str) -> int | None:
        return CIPIC_RATE

    def _load_block(self, subject: str, azimuth: str, sample_rate: int) -> _Block:
        self._check_subject(subject)
        ears = []
        paths = [self.path(subject, azimuth, ear) for ear in ("left", "right")]
        for path in paths:
            ears.append(self._read_ear(path, sample_rate))
        if ears[0].shape != ears[1].shape:
            raise HRTFError(
                f"{paths[0]} and {paths[1]}: left and right shapes differ ({ears[0].shape} vs {ears[1].shape})"
            )
        return _Block(
            tuple(range(CIPIC_N_ELEVATIONS)),
            np.stack(ears, axis=1),
            f"{paths[0]} (and {paths[1].name})",
        )

    def _read_ear(self, path: Path, sample_rate: int) -> np.ndarray:
        """``[50, taps]`` float64 of one ear at ``sample_rate``, the public chain exactly."""
        if not path.is_file():
            raise HRTFFileNotFoundError(
                f"{path}: file not found; the CIPIC WAV database must hold "
                "subjectNN/{az}az{left|right}.wav for every azimuth (re-extract or re-download it)"
            )
        try:
            rate, taps = _read_cipic_wav(path)
        except (ValueError, OSError) as error:
            raise HRTFError(f"{path}: not a readable WAV file ({error}); re-extract the CIPIC database") from error
        if rate != CIPIC_RATE:
            raise HRTFError(f"{path}: sample rate {rate} Hz, expected {CIPIC_RATE} Hz for the CIPIC database")
        if taps.ndim != 2 or taps.shape[0] != CIPIC_N_ELEVATIONS:
            hint = " (transposed?)" if taps.ndim == 2 and taps.shape[1] == CIPIC_N_ELEVATIONS else ""
            raise HRTFError(
                f"{path}: shape {taps.shape}{hint}, expected [{CIPIC_N_ELEVATIONS} elevations, taps] "
                "(one WAV frame per elevation, one channel per tap)"
            )
        # Same filter, same int16 input as the public script's resample_poly call: bit-exact.
        resampled = resample(taps, rate, sample_rate, axis=1)
        return np.asarray(resampled, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# SOFA (AES69), SimpleFreeFieldHRIR
# ---------------------------------------------------------------------------------------------

SOFA_CONVENTION = "SimpleFreeFieldHRIR"


def _attribute(node, name: str) -> str | None:
    """A netCDF/HDF5 string attribute as ``str`` (h5py returns bytes for netCDF's fixed-length strings)."""
    if name not in node.attrs:
        return None
    value = node.attrs[name]
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else ""
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode("utf-8", "replace")
    return str(value).strip()


def wrap_degrees(value: np.ndarray | float) -> np.ndarray:
    """Angles wrapped to ``(-180, 180]`` degrees."""
    wrapped = -((-np.asarray(value, dtype=np.float64) + 180.0) % 360.0 - 180.0)
    return wrapped + 0.0  # no -0.0


def cartesian_to_spherical(xyz: np.ndarray) -> np.ndarray:
    """SOFA cartesian ``[M, 3]`` (metres; x front, y left, z up) -> ``[M, 3]`` (azimuth deg, elevation deg, metres)."""
    x, y, z = np.asarray(xyz, dtype=np.float64).T
    return np.stack(
        [np.degrees(np.arctan2(y, x)), np.degrees(np.arctan2(z, np.hypot(x, y))), np.sqrt(x * x + y * y + z * z)],
        axis=1,
    )


@dataclass(frozen=True)
class _SofaSubject:
    path: Path
    sample_rate: int  # Hz
    ir: np.ndarray  # [M, 2, N]
    azimuths: tuple[str, ...]  # per row, our convention, spelled
    directions: tuple[Direction, ...]


def read_sofa(path: Path) -> _SofaSubject:
    """Read one SimpleFreeFieldHRIR file: IRs, sample rate and per-row directions in our convention.

    SOFA azimuths turn counter-clockwise from the front (left positive); ours are positive to the
    right: ``azimuth_ours = wrap(-azimuth_sofa)`` into ``(-180, 180]``.
    """
    try:
        import h5py
    except ImportError as error:  # pragma: no cover - h5py is pinned in extra_requirements.txt
        raise HRTFError(f"{path}: reading SOFA files needs h5py (pip install -r extra_requirements.txt)") from error
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise HRTFError(f"{path}: not a SOFA (netCDF-4/HDF5) file ({error})") from error
    with handle:
        convention = _attribute(handle, "SOFAConventions")
        if convention is not None and convention != SOFA_CONVENTION:
            raise HRTFError(
                f"{path}: SOFA convention {convention!r}, only {SOFA_CONVENTION!r} (time-domain HRIRs) is supported; "
                "convert the file, e.g. with the SOFA toolbox"
            )
        for variable in ("Data.IR", "Data.SamplingRate", "SourcePosition"):
            if variable not in handle:
                raise HRTFError(f"{path}: missing variable {variable!r}; not a {SOFA_CONVENTION} SOFA file")
        ir = np.asarray(handle["Data.IR"][()], dtype=np.float64)
        rates = np.asarray(handle["Data.SamplingRate"][()], dtype=np.float64).ravel()
        position_node = handle["SourcePosition"]
        positions = np.asarray(position_node[()], dtype=np.float64)
        position_type = (_attribute(position_node, "Type") or "spherical").lower()
        position_units = (_attribute(position_node, "Units") or "").lower()
        delays = np.asarray(handle["Data.Delay"][()], dtype=np.float64) if "Data.Delay" in handle else np.zeros(1)

    if ir.ndim != 3 or ir.shape[1] != 2 or ir.shape[0] == 0 or ir.shape[2] == 0:
        raise HRTFError(
            f"{path}: Data.IR has shape {ir.shape}, expected [measurements, 2 receivers (left, right), taps]"
        )
    if rates.size == 0 or np.any(rates != rates[0]) or rates[0] <= 0 or rates[0] != round(rates[0]):
        raise HRTFError(f"{path}: Data.SamplingRate {rates.tolist()} must be one positive whole number of Hz")
    if np.any(delays != 0):
        # Some files store the onset delay apart from minimum-phase IRs; adding it back is not supported.
        raise HRTFError(f"{path}: non-zero Data.Delay is not supported; use a file with the delay inside Data.IR")
    n_measurements = ir.shape[0]
    if positions.ndim != 2 or positions.shape[1] != 3 or positions.shape[0] not in (1, n_measurements):
        raise HRTFError(f"{path}: SourcePosition has shape {positions.shape}, expected [{n_measurements}, 3]")
    positions = np.broadcast_to(positions, (n_measurements, 3))
    if position_type == "cartesian":
        positions = cartesian_to_spherical(positions)
    elif position_type != "spherical":
        raise HRTFError(f"{path}: SourcePosition Type {position_type!r}, expected 'spherical' or 'cartesian'")
    elif position_units and not position_units.startswith("degree"):
        raise HRTFError(f"{path}: SourcePosition Units {position_units!r}, expected 'degree, degree, metre'")

    azimuth_deg = wrap_degrees(-positions[:, 0])
    elevation_deg = positions[:, 1] + 0.0
    spelled = tuple(_spell_degrees(a) for a in azimuth_deg)
    directions = tuple(
        Direction(spelled[m], _spell_degrees(elevation_deg[m]), m, float(azimuth_deg[m]), float(elevation_deg[m]))
        for m in range(n_measurements)
    )
    return _SofaSubject(path, int(rates[0]), ir, spelled, directions)


class SofaHRTF(HRTFSet):
    """HRIRs from AES69 SOFA files (``SimpleFreeFieldHRIR``): one file, or a folder of ``*.sofa`` files.

    One file is one listener, named after the file's stem. ``Direction.index`` is the measurement
    row, ``Direction.azimuth`` the row's azimuth in our convention (positive right, ``(-180, 180]``).
    Files are read on first use, once.
    """

    name = "sofa"

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        if self.path.is_file():
            files = [self.path]
        elif self.path.is_dir():
            files = sorted(self.path.glob("*.sofa"))
            if not files:
                raise HRTFError(f"{self.path}: no *.sofa files in this folder")
        else:
            raise HRTFFileNotFoundError(f"{self.path}: no such SOFA file or folder")
        self._files = {f.stem: f for f in files}
        self._loaded: dict[str, _SofaSubject] = {}

    def __repr__(self) -> str:
        return f"SofaHRTF({str(self.path)!r})"

    def subjects(self) -> list[str]:
        return sorted(self._files)

    def directions(self, subject: str) -> list[Direction]:
        """One direction per measurement row, in file order."""
        return list(self._subject(subject).directions)

    def _subject(self, subject: str) -> _SofaSubject:
        if subject not in self._files:
            raise _unknown_subject(subject, self.subjects(), self.path)
        if subject not in self._loaded:
            self._loaded[subject] = read_sofa(self._files[subject])
        return self._loaded[subject]

    def _native_rate(self, subject: str) -> int | None:
        return self._subject(subject).sample_rate

    def _load_block(self, subject: str, azimuth: str, sample_rate: int) -> _Block:
        data = self._subject(subject)
        try:
            wanted = _spell_degrees(wrap_degrees(float(azimuth)))
        except ValueError:
            wanted = None
        rows = tuple(m for m, spelled in enumerate(data.azimuths) if spelled == wanted)
        if not rows:
            known = sorted(set(data.azimuths), key=float)
            raise HRTFError(f"{data.path}: no measurement at azimuth {azimuth!r}; azimuths: {_compact(known, 12)}")
        irs = resample(data.ir[list(rows)], data.sample_rate, sample_rate, axis=-1)
        return _Block(rows, np.array(irs, dtype=np.float64), f"{data.path} (azimuth {wanted})")


# ---------------------------------------------------------------------------------------------
# Spherical head (Brown & Duda 1998)
# ---------------------------------------------------------------------------------------------

SPEED_OF_SOUND = 343.0  # m/s
ALPHA_MIN = 0.1  # head-shadow high-frequency gain directly behind the ear (-20 dB)
THETA_MIN_DEG = 150.0  # where the shadow is deepest, degrees from the ear axis
SPHERE_RADII = tuple(float(r) for r in np.linspace(0.075, 0.10, 45))  # m, one "subject" per radius
SPHERE_ELEVATION_INDICES = (8,)  # CIPIC row 8 = 0 degrees: see SphericalHeadHRTF
_SPHERE_LEAD_S = 1.0e-3  # room before the earliest arrival for the fractional delay's pre-ringing
_SPHERE_KAISER_BETA = 4.0  # window of the band-limited pulse: < 0.5 dB magnitude error, ITD < 1 sample


def ear_angles_deg(lateral_deg: float) -> tuple[float, float]:
    """Angles (degrees, 0..180) between the source and the (left, right) ear axis, ears at +-90 degrees."""
    return 90.0 + lateral_deg, 90.0 - lateral_deg


def head_shadow_alpha(theta_deg: np.ndarray | float) -> np.ndarray:
    """Brown–Duda high-frequency gain ``alpha(theta)``: 2 (+6 dB) facing the ear, ALPHA_MIN at THETA_MIN_DEG."""
    theta = np.asarray(theta_deg, dtype=np.float64)
    return (1 + ALPHA_MIN / 2) + (1 - ALPHA_MIN / 2) * np.cos(np.radians(theta / THETA_MIN_DEG * 180.0))


def head_shadow_response(freq_hz: np.ndarray, theta_deg: float, radius_m: float) -> np.ndarray:
    """One-pole/one-zero head shadow ``(1 + j alpha w / 2w0) / (1 + j w / 2w0)``, ``w0 = c / a``.

    Args:
        freq_hz: ``[F]`` frequencies, Hz.
    Returns:
        ``[F]`` complex response (minimum phase, as in the paper).
    """
    omega = 2 * np.pi * np.asarray(freq_hz, dtype=np.float64)
    omega0 = SPEED_OF_SOUND / radius_m
    return (1 + 1j * head_shadow_alpha(theta_deg) * omega / (2 * omega0)) / (1 + 1j * omega / (2 * omega0))


def ear_delay_s(theta_deg: float, radius_m: float) -> float:
    """Causal per-ear delay (s): Woodworth's ``T(theta)`` plus ``a / c``, so the nearest ear has 0.

    ``T = -(a/c) cos(theta)`` within 90 degrees of the ear axis, ``(a/c)(theta - pi/2)`` beyond
    (the path wraps around the sphere).
    """
    theta = math.radians(abs(theta_deg))
    a_over_c = radius_m / SPEED_OF_SOUND
    wrapped = -a_over_c * math.cos(theta) if theta < math.pi / 2 else a_over_c * (theta - math.pi / 2)
    return wrapped + a_over_c


def woodworth_itd_s(lateral_deg: float, radius_m: float) -> float:
    """Woodworth's interaural time difference (s), left minus right arrival: ``(a/c)(phi + sin phi)``."""
    phi = math.radians(lateral_deg)
    return radius_m / SPEED_OF_SOUND * (phi + math.sin(phi))


def spherical_head_taps(sample_rate: int, max_radius_m: float) -> int:
    """HRIR length that holds the lead, the largest ear delay ``(a/c)(1 + pi/2)`` and the decay."""
    longest_delay = max_radius_m / SPEED_OF_SOUND * (1 + math.pi / 2)
    return math.ceil(sample_rate * (2 * _SPHERE_LEAD_S + longest_delay)) + 1


def _kaiser(x: np.ndarray, beta: float) -> np.ndarray:
    """Continuous Kaiser window on ``x`` in [-1, 1] (0 outside), so it can be centred between samples."""
    inside = np.clip(1 - np.square(x), 0.0, None)
    return np.where(np.abs(x) <= 1, i0(beta * np.sqrt(inside)) / i0(beta), 0.0)


def spherical_head_hrir(lateral_deg: float, radius_m: float, sample_rate: int, taps: int) -> np.ndarray:
    """Brown–Duda spherical-head HRIR pair.

    Per ear: the head-shadow filter times a delay of ``_SPHERE_LEAD_S + ear_delay_s``, evaluated
    on a fine FFT grid (so the delay is fractional: the ITD is sub-sample accurate), brought back to
    the time domain and windowed around the arrival.

    Args:
        lateral_deg: lateral angle, degrees, positive right (CIPIC azimuth).
        radius_m: head radius, m.
        sample_rate: Hz.
        taps: length, at least :func:`spherical_head_taps`.
    Returns:
        float64 ``[2 (left, right), taps]``.
    """
    n_fft = max(4096, 1 << math.ceil(math.log2(8 * taps)))  # long enough that the pulse does not wrap
    freqs = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    time_s = np.arange(taps) / sample_rate
    ears = []
    for theta in ear_angles_deg(lateral_deg):
        delay = _SPHERE_LEAD_S + ear_delay_s(theta, radius_m)
        spectrum = head_shadow_response(freqs, theta, radius_m) * np.exp(-2j * np.pi * freqs * delay)
        spectrum[-1] = 0.0  # irfft would keep only the real part of the Nyquist bin
        pulse = np.fft.irfft(spectrum, n_fft)[:taps]
        ears.append(pulse * _kaiser((time_s - delay) / _SPHERE_LEAD_S, _SPHERE_KAISER_BETA))
    return np.stack(ears)


class SphericalHeadHRTF(HRTFSet):
    """Built-in analytic HRTFs: Brown & Duda's (1998) spherical head, no database needed.

    Subjects ``sphere00``..``sphere44`` are heads of radius 7.5 to 10 cm (evenly spread), so the
    listener-independent tr/cv/tt split still means something. The grid is the 25 CIPIC azimuths
    (lateral angles) at CIPIC elevation row 8 (0 degrees) by default: a sphere with its ears on the
    interaural axis has no elevation cue (in interaural-polar coordinates the response depends on
    the lateral angle only), so more elevations would only give two talkers identical HRIRs.
    ``elevation_indices`` adds CIPIC rows if the metadata should vary anyway.
    """

    name = "spherical-head"

    def __init__(
        self,
        radii_m: Sequence[float] = SPHERE_RADII,
        elevation_indices: Sequence[int] = SPHERE_ELEVATION_INDICES,
    ) -> None:
        super().__init__()
        if not radii_m or any(not 0.01 <= r <= 1.0 for r in radii_m):
            raise HRTFError(f"radii_m must be head radii between 0.01 and 1 m, got {list(radii_m)}")
        if not elevation_indices or any(not 0 <= k < CIPIC_N_ELEVATIONS for k in elevation_indices):
            raise HRTFError(f"elevation_indices must be CIPIC rows 0..49, got {list(elevation_indices)}")
        self.radii_m = {f"sphere{k:02d}": float(r) for k, r in enumerate(radii_m)}
        self.elevation_indices = tuple(int(k) for k in elevation_indices)
        self._grid = tuple(
            Direction(str(az), cipic_elevation_spelling(k), k, float(az), cipic_elevation_deg(k))
            for az in CIPIC_AZIMUTHS
            for k in self.elevation_indices
        )

    def __repr__(self) -> str:
        return f"SphericalHeadHRTF({len(self.radii_m)} heads)"

    def subjects(self) -> list[str]:
        return sorted(self.radii_m)

    def directions(self, subject: str) -> list[Direction]:
        self._radius(subject)
        return list(self._grid)

    def taps(self, sample_rate: int) -> int:
        """HRIR length at ``sample_rate`` (the same for every head)."""
        return spherical_head_taps(_check_rate(sample_rate), max(self.radii_m.values()))

    def _radius(self, subject: str) -> float:
        if subject not in self.radii_m:
            raise _unknown_subject(subject, self.subjects(), "the spherical-head model")
        return self.radii_m[subject]

    def _load_block(self, subject: str, azimuth: str, sample_rate: int) -> _Block:
        radius = self._radius(subject)
        try:
            lateral = float(azimuth)
        except ValueError:
            lateral = math.nan
        if lateral not in CIPIC_AZIMUTHS:
            raise HRTFError(
                f"spherical head {subject}: azimuth {azimuth!r} is not on the grid "
                f"({', '.join(map(str, CIPIC_AZIMUTHS))} degrees)"
            )
        pair = spherical_head_hrir(lateral, radius, sample_rate, self.taps(sample_rate))
        irs = np.repeat(pair[np.newaxis], len(self.elevation_indices), axis=0)
        return _Block(self.elevation_indices, irs, f"spherical head {subject} (radius {radius * 100:.2f} cm)")


# ---------------------------------------------------------------------------------------------

SPHERICAL_SPECS = ("spherical", "spherical-head")


def open_hrtf_set(spec: str | Path) -> HRTFSet:
    """The HRTF set named by ``spec``.

    Accepted: ``"spherical"`` or ``"spherical-head"`` (built-in model); a CIPIC ``wav_database``
    folder (``subjectNN/`` WAV folders); a ``.sofa`` file or a folder of ``.sofa`` files.
    Raises:
        HRTFError: anything else, saying what is accepted.
    """
    if str(spec).strip().lower() in SPHERICAL_SPECS:
        return SphericalHeadHRTF()
    path = Path(spec).expanduser()
    accepted = (
        "expected 'spherical', a CIPIC wav_database folder (subjectNN/{az}az{left|right}.wav), "
        "a .sofa file or a folder of .sofa files"
    )
    if path.is_file():
        if path.suffix.lower() == ".sofa":
            return SofaHRTF(path)
        raise HRTFError(f"{path}: not a .sofa file; {accepted}")
    if path.is_dir():
        if any(p.is_dir() and _SUBJECT_FOLDER.fullmatch(p.name) for p in path.iterdir()):
            return CipicWavHRTF(path)
        if any(path.glob("*.sofa")):
            return SofaHRTF(path)
        raise HRTFError(f"{path}: neither subjectNN/ folders nor .sofa files in this folder; {accepted}")
    raise HRTFFileNotFoundError(f"{path}: no such file or folder; {accepted}")
