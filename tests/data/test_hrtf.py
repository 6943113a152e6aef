"""Known-answer tests of hrtf.py: the CIPIC chain against the public scripts, SOFA conventions,
the spherical head against Woodworth's ITD, and the dispatch of ``open_hrtf_set``."""
from __future__ import annotations

import csv
import math
from fractions import Fraction
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.io import wavfile
from scipy.signal import resample_poly

from binaural.data import hrtf
from binaural.data.hrtf import (
    CIPIC_AZIMUTHS,
    CipicWavHRTF,
    HRTFError,
    SofaHRTF,
    SphericalHeadHRTF,
    head_shadow_response,
    open_hrtf_set,
    woodworth_itd_s,
)

# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def public_chain(path: Path, sample_rate: int, elevation_index: int) -> np.ndarray:
    """One ear exactly as the public Binaural-WSJ0Mix scripts compute it."""
    sr, h = wavfile.read(path)
    h = resample_poly(h, sample_rate, sr, axis=1)
    return h[elevation_index]


def fake_cipic(root: Path, azimuths=(0, -45), rate: int = 44100, shape=(50, 200), subject: str = "subject01") -> Path:
    """A CIPIC-shaped folder of random int16 WAVs (one subject, the given azimuths, both ears)."""
    rng = np.random.default_rng(0)
    folder = root / subject
    folder.mkdir(parents=True, exist_ok=True)
    for az in azimuths:
        for ear in ("left", "right"):
            data = rng.integers(-3000, 3000, size=shape, dtype=np.int16)
            wavfile.write(folder / f"{str(az).replace('-', 'neg')}az{ear}.wav", rate, data)
    return root


def write_sofa(
    path: Path,
    ir: np.ndarray,
    rate: float,
    positions: np.ndarray,
    convention: str | None = "SimpleFreeFieldHRIR",
    position_type: str = "spherical",
) -> Path:
    """A minimal SOFA file as netCDF-4 writes it: HDF5 datasets, fixed-length byte-string attributes."""
    with h5py.File(path, "w") as f:
        if convention is not None:
            f.attrs["Conventions"] = np.bytes_("SOFA")
            f.attrs["SOFAConventions"] = np.bytes_(convention)
            f.attrs["DataType"] = np.bytes_("FIR")
        f["Data.IR"] = ir
        f["Data.SamplingRate"] = np.array([rate])
        f["Data.SamplingRate"].attrs["Units"] = np.bytes_("hertz")
        f["Data.Delay"] = np.zeros((1, ir.shape[1]))
        f["SourcePosition"] = positions
        f["SourcePosition"].attrs["Type"] = np.bytes_(position_type)
        units = "degree, degree, metre" if position_type == "spherical" else "metre"
        f["SourcePosition"].attrs["Units"] = np.bytes_(units)
    return path


def measured_itd_s(pair: np.ndarray, sample_rate: int, upsample: int = 32) -> float:
    """Left-minus-right delay (s) at the cross-correlation peak: FFT-interpolated, then parabolic."""
    n = 1 << math.ceil(math.log2(4 * pair.shape[1]))
    left, right = np.fft.rfft(pair[0], n), np.fft.rfft(pair[1], n)
    cross = np.fft.irfft(left * np.conj(right), n * upsample)  # lag k / upsample samples, circular
    k = int(np.argmax(cross))
    before, peak, after = cross[k - 1], cross[k], cross[(k + 1) % len(cross)]
    lag = k + 0.5 * (before - after) / (before - 2 * peak + after)
    if lag > len(cross) / 2:
        lag -= len(cross)
    return lag / upsample / sample_rate


# Spelled elevations of the 50 CIPIC rows as the database Readme lists them.
README_ELEVATIONS = (
    "-45 -39 -34 -28 -23 -17 -11 -6 0 6 11 17 23 28 34 39 45 51 56 62 68 73 79 84 90 96 101 107 113 118 "
    "124 129 135 141 146 152 158 163 169 174 180 186 191 197 203 208 214 219 225 231"
).split()


# ------------------------------------------------------------------------------------------------
# CIPIC on the real database
# ------------------------------------------------------------------------------------------------


def test_cipic_has_45_subjects_sorted(cipic_dir):
    subjects = CipicWavHRTF(cipic_dir).subjects()
    assert len(subjects) == 45
    assert subjects == sorted(subjects)
    assert subjects[:3] == ["subject03", "subject08", "subject09"]


def test_cipic_grid_is_25_azimuths_by_50_elevations(cipic_dir):
    grid = CipicWavHRTF(cipic_dir).directions("subject03")
    assert len(grid) == 25 * 50
    assert sorted({d.azimuth_deg for d in grid}) == [float(a) for a in CIPIC_AZIMUTHS]
    assert {d.index for d in grid} == set(range(50))
    assert [d.elevation for d in grid[:50]] == README_ELEVATIONS
    row_45 = next(d for d in grid if d.azimuth == "-45" and d.index == 45)
    assert (row_45.elevation, row_45.elevation_deg) == ("208", 208.125)


def test_cipic_spelling_matches_every_direction_of_the_official_metadata(cipic_dir, official_metadata_dir):
    spelled = {(d.azimuth, d.index): d.elevation for d in CipicWavHRTF(cipic_dir).directions("subject03")}
    with open(official_metadata_dir / "hrtf_meta_tr.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    checked = 0
    for row in rows:
        for k in (1, 2):
            key = (row[f"azimuth{k}"], int(row[f"elevation_index{k}"]))
            assert spelled[key] == row[f"elevation{k}"], row
            checked += 1
    assert checked == 40000
    # Rounded half away from zero, as MATLAB does; int() would give "-33" and "202" here.
    assert (spelled[("0", 2)], spelled[("0", 44)], spelled[("0", 1)], spelled[("0", 21)]) == ("-34", "203", "-39", "73")


@pytest.mark.parametrize("sample_rate", [8000, 16000])
def test_cipic_hrir_is_bit_exact_with_the_public_chain(cipic_dir, official_metadata_dir, sample_rate):
    hrtf_set = CipicWavHRTF(cipic_dir)
    with open(official_metadata_dir / "hrtf_meta_tr.csv", newline="") as handle:
        rows = [row for _, row in zip(range(4), csv.DictReader(handle))]
    for row in rows:
        for k in (1, 2):
            azimuth, index = row[f"azimuth{k}"], int(row[f"elevation_index{k}"])
            pair = hrtf_set.hrir(row["subject"], azimuth, index, sample_rate)
            folder = cipic_dir / row["subject"]
            spelled = azimuth.replace("-", "neg")
            assert pair.dtype == np.float64 and pair.shape[0] == 2
            assert np.array_equal(pair[0], public_chain(folder / f"{spelled}azleft.wav", sample_rate, index))
            assert np.array_equal(pair[1], public_chain(folder / f"{spelled}azright.wav", sample_rate, index))


@pytest.mark.parametrize("sample_rate,taps", [(8000, 37), (16000, 73), (44100, 200)])
def test_cipic_taps_are_resampled_from_200_at_44k1(cipic_dir, sample_rate, taps):
    pair = CipicWavHRTF(cipic_dir).hrir("subject03", "-80", 8, sample_rate)
    assert pair.shape == (2, taps) == (2, math.ceil(200 * sample_rate / 44100))
    if sample_rate == 44100:
        _, raw = wavfile.read(cipic_dir / "subject03" / "neg80azright.wav")
        assert np.array_equal(pair[1], raw[8].astype(np.float64))


def test_cipic_reads_each_file_once_and_resamples_each_row_once(cipic_dir, monkeypatch):
    reads: list[Path] = []
    real_reader = hrtf._read_cipic_wav
    resampled: list[tuple] = []
    real_resample = hrtf.resample

    def counting_reader(path):
        reads.append(Path(path))
        return real_reader(path)

    def counting_resample(samples, rate_in, rate_out, axis=0):
        resampled.append((samples.shape, rate_in, rate_out))
        return real_resample(samples, rate_in, rate_out, axis)

    monkeypatch.setattr(hrtf, "_read_cipic_wav", counting_reader)
    monkeypatch.setattr(hrtf, "resample", counting_resample)
    hrtf_set = CipicWavHRTF(cipic_dir)
    first = hrtf_set.hrir("subject10", "25", 3, 8000)
    assert sorted(p.name for p in reads) == ["25azleft.wav", "25azright.wav"]
    again = hrtf_set.hrir("subject10", "25", 3, 8000)
    hrtf_set.hrir("subject10", "25", 40, 8000)
    hrtf_set.hrir("subject10", "25", 3, 16000)
    assert len(reads) == 2, "a file is read once per process, whatever the rows and rates asked for"
    # Only the rows asked for are resampled, each once per rate: [2 ears, 200 taps] at 44.1 kHz.
    assert [r for r in resampled if r[1] != r[2]] == [((2, 200), 44100, 8000)] * 2 + [((2, 200), 44100, 16000)]
    assert np.array_equal(first, again)
    with pytest.raises(ValueError):
        first[0, 0] = 1.0  # the cache is read-only, so no caller can corrupt it


def test_cipic_one_row_equals_the_row_of_the_whole_resampled_file(cipic_dir):
    """The public chain resamples all 50 rows; resampling one row gives its exact bits."""
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    hrtf_set = CipicWavHRTF(cipic_dir)
    for rate in (8000, 16000):
        whole = [resample_poly(wavfile.read(cipic_dir / "subject10" / f"neg45az{ear}.wav")[1], rate, 44100, axis=1)
                 for ear in ("left", "right")]
        for index in (0, 8, 49):
            np.testing.assert_array_equal(hrtf_set.hrir("subject10", "-45", index, rate), np.stack([w[index] for w in whole]))


def test_cipic_unknown_subject_names_the_folder_and_known_subjects(cipic_dir):
    with pytest.raises(HRTFError, match=r"'subject999'.*wav_database.*subject03, subject08"):
        CipicWavHRTF(cipic_dir).hrir("subject999", "0", 8, 8000)
    with pytest.raises(HRTFError, match="subject999"):
        CipicWavHRTF(cipic_dir).directions("subject999")


@pytest.mark.parametrize("azimuth", ["7", "50", "-90", "north", "45.5"])
def test_cipic_unknown_azimuth_lists_the_grid(cipic_dir, azimuth):
    grid = r"is not on the CIPIC grid \(-80, -65, -55, -45"
    with pytest.raises(HRTFError, match=rf"subject03: azimuth '{azimuth}' {grid}"):
        CipicWavHRTF(cipic_dir).hrir("subject03", azimuth, 8, 8000)


@pytest.mark.parametrize("index", [50, -1, 2.0])
def test_cipic_index_off_the_grid_is_an_error(cipic_dir, index):
    with pytest.raises(HRTFError, match=r"0azleft\.wav.*index .* not on the grid.*0\.\.49"):
        CipicWavHRTF(cipic_dir).hrir("subject03", "0", index, 8000)


# ------------------------------------------------------------------------------------------------
# CIPIC: damaged databases (synthetic)
# ------------------------------------------------------------------------------------------------


def test_cipic_missing_file_names_the_path(tmp_path):
    root = fake_cipic(tmp_path / "db", azimuths=(0,))
    (root / "subject01" / "0azright.wav").unlink()
    with pytest.raises(HRTFError, match=r"subject01/0azright\.wav: file not found") as caught:
        CipicWavHRTF(root).hrir("subject01", "0", 0, 8000)
    assert isinstance(caught.value, FileNotFoundError)
    with pytest.raises(HRTFError, match=r"subject01/neg45azleft\.wav: file not found"):
        CipicWavHRTF(root).hrir("subject01", "-45", 0, 8000)


def test_cipic_wrong_sample_rate_names_the_file(tmp_path):
    root = fake_cipic(tmp_path / "db", azimuths=(0,), rate=48000)
    with pytest.raises(HRTFError, match=r"0azleft\.wav: sample rate 48000 Hz, expected 44100"):
        CipicWavHRTF(root).hrir("subject01", "0", 0, 8000)


def test_cipic_transposed_file_is_reported(tmp_path):
    root = fake_cipic(tmp_path / "db", azimuths=(0,), shape=(200, 50))
    with pytest.raises(HRTFError, match=r"0azleft\.wav: shape \(200, 50\) \(transposed\?\), expected \[50 elevations"):
        CipicWavHRTF(root).hrir("subject01", "0", 0, 8000)


def test_cipic_folder_without_subjects_is_an_error(tmp_path):
    with pytest.raises(HRTFError, match=r"no subjectNN/ folders"):
        CipicWavHRTF(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such folder"):
        CipicWavHRTF(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------------
# SOFA
# ------------------------------------------------------------------------------------------------

SOFA_RATE = 48000
# SOFA azimuths (counter-clockwise, left positive) and what they are in ours (positive right).
SOFA_POSITIONS = np.array([[0, 0, 1.2], [90, 0, 1.2], [270, 0, 1.2], [30, 10, 1.2], [-47.5, -20, 1.2], [180, 0, 1.2]])
OUR_AZIMUTHS = ["0", "-90", "90", "-30", "47.5", "180"]


def delta_irs(taps: int = 64) -> np.ndarray:
    """``[6, 2, taps]``: row m has a unit impulse at 10 + m (left) and 20 + m (right)."""
    ir = np.zeros((len(SOFA_POSITIONS), 2, taps))
    for m in range(len(ir)):
        ir[m, 0, 10 + m] = 1.0
        ir[m, 1, 20 + m] = 1.0
    return ir


@pytest.fixture()
def sofa_file(tmp_path) -> Path:
    return write_sofa(tmp_path / "listener7.sofa", delta_irs(), SOFA_RATE, SOFA_POSITIONS)


def test_sofa_directions_are_converted_to_positive_right(sofa_file):
    hrtf_set = SofaHRTF(sofa_file)
    assert hrtf_set.subjects() == ["listener7"]
    grid = hrtf_set.directions("listener7")
    assert [d.azimuth for d in grid] == OUR_AZIMUTHS
    assert [d.index for d in grid] == list(range(6))
    assert [d.elevation for d in grid] == ["0", "0", "0", "10", "-20", "0"]
    assert grid[4].azimuth_deg == 47.5 and grid[4].elevation_deg == -20.0


def test_sofa_hrir_is_the_row_at_the_file_rate_and_resampled_otherwise(sofa_file):
    hrtf_set = SofaHRTF(sofa_file)
    native = hrtf_set.hrir("listener7", "-30", 3, SOFA_RATE)
    assert native.dtype == np.float64
    assert np.array_equal(native, delta_irs()[3])
    assert (np.argmax(native[0]), np.argmax(native[1])) == (13, 23)  # receiver 0 is the left ear
    for rate in (16000, 44100, 8000):
        ratio = Fraction(rate, SOFA_RATE)
        expected = resample_poly(delta_irs()[3], ratio.numerator, ratio.denominator, axis=-1)
        np.testing.assert_allclose(hrtf_set.hrir("listener7", "-30", 3, rate), expected, rtol=0, atol=1e-15)
    # 48 -> 16 kHz keeps the 10-sample interaural delay as 10/3 samples.
    low = hrtf_set.hrir("listener7", "-30", 3, 16000)
    assert low.shape == (2, math.ceil(64 / 3))


def test_sofa_azimuth_must_match_the_row(sofa_file):
    hrtf_set = SofaHRTF(sofa_file)
    with pytest.raises(HRTFError, match=r"listener7\.sofa.*index 1 is not on the grid at azimuth 90"):
        hrtf_set.hrir("listener7", "90", 1, SOFA_RATE)  # row 1 is at -90 (SOFA's +90 is the left)
    with pytest.raises(HRTFError, match=r"listener7\.sofa: no measurement at azimuth '12'; azimuths: -90, -30, 0, 47"):
        hrtf_set.hrir("listener7", "12", 0, SOFA_RATE)
    with pytest.raises(HRTFError, match=r"unknown subject 'someone'.*listener7"):
        hrtf_set.directions("someone")


def test_sofa_cartesian_positions_give_the_same_directions(tmp_path):
    az, el, dist = np.radians(SOFA_POSITIONS[:, 0]), np.radians(SOFA_POSITIONS[:, 1]), SOFA_POSITIONS[:, 2]
    xyz = np.stack([dist * np.cos(el) * np.cos(az), dist * np.cos(el) * np.sin(az), dist * np.sin(el)], axis=1)
    path = write_sofa(tmp_path / "cart.sofa", delta_irs(), SOFA_RATE, xyz, position_type="cartesian")
    grid = SofaHRTF(path).directions("cart")
    assert [d.azimuth for d in grid] == OUR_AZIMUTHS
    assert [d.elevation for d in grid] == ["0", "0", "0", "10", "-20", "0"]


def test_sofa_folder_is_one_subject_per_file(tmp_path):
    for name in ("b", "a"):
        write_sofa(tmp_path / f"{name}.sofa", delta_irs(), SOFA_RATE, SOFA_POSITIONS)
    assert SofaHRTF(tmp_path).subjects() == ["a", "b"]


def test_sofa_other_convention_is_refused(tmp_path):
    path = write_sofa(tmp_path / "x.sofa", delta_irs(), SOFA_RATE, SOFA_POSITIONS, convention="SimpleFreeFieldHRTF")
    with pytest.raises(HRTFError, match=r"x\.sofa: SOFA convention 'SimpleFreeFieldHRTF', only 'SimpleFreeFieldHRIR'"):
        SofaHRTF(path).directions("x")


@pytest.mark.parametrize("shape", [(6, 1, 64), (6, 64), (6, 3, 64)])
def test_sofa_ir_shape_is_checked(tmp_path, shape):
    path = write_sofa(tmp_path / "x.sofa", np.zeros(shape), SOFA_RATE, SOFA_POSITIONS)
    with pytest.raises(HRTFError, match=r"x\.sofa: Data\.IR has shape .*expected \[measurements, 2 receivers"):
        SofaHRTF(path).directions("x")


def test_sofa_positions_must_match_the_measurements(tmp_path):
    path = write_sofa(tmp_path / "x.sofa", delta_irs(), SOFA_RATE, SOFA_POSITIONS[:4])
    with pytest.raises(HRTFError, match=r"x\.sofa: SourcePosition has shape \(4, 3\), expected \[6, 3\]"):
        SofaHRTF(path).directions("x")


def test_a_non_hdf5_sofa_file_is_reported(tmp_path):
    path = tmp_path / "broken.sofa"
    path.write_text("not netCDF")
    with pytest.raises(HRTFError, match=r"broken\.sofa: not a SOFA"):
        SofaHRTF(path).directions("broken")


# ------------------------------------------------------------------------------------------------
# Spherical head
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sphere() -> SphericalHeadHRTF:
    return SphericalHeadHRTF()


def test_sphere_subjects_are_45_heads_of_7_5_to_10_cm(sphere):
    assert sphere.subjects() == [f"sphere{k:02d}" for k in range(45)]
    radii = [sphere.radii_m[s] for s in sphere.subjects()]
    assert radii[0] == pytest.approx(0.075) and radii[-1] == pytest.approx(0.10)
    assert radii == sorted(radii) and len(set(radii)) == 45
    grid = sphere.directions("sphere00")
    assert [d.azimuth for d in grid] == [str(a) for a in CIPIC_AZIMUTHS]
    assert {(d.elevation, d.index) for d in grid} == {("0", 8)}


@pytest.mark.parametrize("sample_rate", [8000, 16000, 44100])
@pytest.mark.parametrize("subject", ["sphere00", "sphere22", "sphere44"])
def test_sphere_itd_follows_woodworth_within_a_sample(sphere, sample_rate, subject):
    radius = sphere.radii_m[subject]
    errors = []
    for azimuth in CIPIC_AZIMUTHS:
        pair = sphere.hrir(subject, str(azimuth), 8, sample_rate)
        errors.append((measured_itd_s(pair, sample_rate) - woodworth_itd_s(azimuth, radius)) * sample_rate)
    assert max(abs(e) for e in errors) < 1.0, errors
    # Woodworth at 80 degrees for a 10 cm head is 0.80 ms: the formula is not trivially small.
    assert woodworth_itd_s(80, 0.10) == pytest.approx(0.10 / 343 * (math.radians(80) + math.sin(math.radians(80))))


def test_sphere_front_source_gives_identical_ears(sphere):
    for rate in (8000, 16000):
        pair = sphere.hrir("sphere10", "0", 8, rate)
        assert np.array_equal(pair[0], pair[1])


@pytest.mark.parametrize("azimuth", [5, 30, 80])
def test_sphere_right_source_is_louder_and_earlier_on_the_right(sphere, azimuth):
    pair = sphere.hrir("sphere30", str(azimuth), 8, 16000)
    energy = np.sum(pair**2, axis=1)
    assert energy[1] > energy[0]
    assert np.argmax(np.abs(pair[1])) <= np.argmax(np.abs(pair[0]))
    assert measured_itd_s(pair, 16000) > 0  # left ear later
    mirrored = sphere.hrir("sphere30", str(-azimuth), 8, 16000)
    assert np.array_equal(mirrored, pair[::-1])  # the head is left/right symmetric


def test_sphere_magnitude_is_the_brown_duda_head_shadow(sphere):
    rate, radius = 16000, sphere.radii_m["sphere20"]
    pair = sphere.hrir("sphere20", "65", 8, rate)
    n = 4096
    freqs = np.fft.rfftfreq(n, 1 / rate)
    for ear, theta in enumerate((90 + 65, 90 - 65)):
        measured = 20 * np.log10(np.abs(np.fft.rfft(pair[ear], n)))
        model = 20 * np.log10(np.abs(head_shadow_response(freqs, theta, radius)))
        band = (freqs > 100) & (freqs < 6000)
        assert np.max(np.abs(measured - model)[band]) < 0.6
    # The paper's end points: +6 dB facing the ear, alpha_min = 0.1 (-20 dB) at theta_min = 150 degrees.
    np.testing.assert_allclose(hrtf.head_shadow_alpha(np.array([0.0, 150.0])), [2.0, 0.1], atol=1e-12)
    ild_6k = 20 * np.log10(np.abs(np.fft.rfft(pair[1], n) / np.fft.rfft(pair[0], n)))[np.searchsorted(freqs, 6000)]
    assert ild_6k > 15  # the far ear is deep in the shadow at high frequencies


def test_sphere_is_deterministic_and_bigger_heads_have_bigger_itds():
    first, second = SphericalHeadHRTF(), SphericalHeadHRTF()
    assert np.array_equal(first.hrir("sphere07", "45", 8, 8000), second.hrir("sphere07", "45", 8, 8000))
    small = measured_itd_s(first.hrir("sphere00", "80", 8, 44100), 44100)
    large = measured_itd_s(first.hrir("sphere44", "80", 8, 44100), 44100)
    assert large / small == pytest.approx(0.10 / 0.075, rel=0.02)


def test_sphere_taps_hold_the_longest_delay(sphere):
    for rate in (8000, 16000, 44100):
        pair = sphere.hrir("sphere44", "-80", 8, rate)
        assert pair.shape == (2, sphere.taps(rate))
        # 2 ms of window around the arrival plus the farthest ear's (a/c)(1 + pi/2) = 0.75 ms
        assert pair.shape[1] / rate >= 2.75e-3
        assert abs(pair[:, -1]).max() < 1e-3 * abs(pair).max()


def test_sphere_extra_elevations_share_the_lateral_response():
    hrtf_set = SphericalHeadHRTF(elevation_indices=(8, 24, 40))
    grid = hrtf_set.directions("sphere00")
    assert len(grid) == 75 and {d.elevation for d in grid} == {"0", "90", "180"}
    front, back = hrtf_set.hrir("sphere00", "30", 8, 8000), hrtf_set.hrir("sphere00", "30", 40, 8000)
    assert np.array_equal(front, back)


def test_sphere_errors(sphere):
    with pytest.raises(HRTFError, match=r"unknown subject 'subject03' in the spherical-head model.*sphere00"):
        sphere.hrir("subject03", "0", 8, 8000)
    with pytest.raises(HRTFError, match=r"sphere00: azimuth '7' is not on the grid \(-80"):
        sphere.hrir("sphere00", "7", 8, 8000)
    with pytest.raises(HRTFError, match=r"spherical head sphere00.*index 9 is not on the grid at azimuth 0 \(valid: 8"):
        sphere.hrir("sphere00", "0", 9, 8000)
    with pytest.raises(HRTFError, match=r"sample_rate must be a positive whole number of Hz, got 8000\.5"):
        sphere.hrir("sphere00", "0", 8, 8000.5)


# ------------------------------------------------------------------------------------------------
# open_hrtf_set
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["spherical", "spherical-head", " Spherical "])
def test_open_spherical(spec):
    assert isinstance(open_hrtf_set(spec), SphericalHeadHRTF)


def test_open_dispatches_on_what_the_path_holds(tmp_path, sofa_file):
    assert isinstance(open_hrtf_set(fake_cipic(tmp_path / "cipic", azimuths=(0,))), CipicWavHRTF)
    assert isinstance(open_hrtf_set(str(sofa_file)), SofaHRTF)
    assert isinstance(open_hrtf_set(sofa_file.parent), SofaHRTF)


def test_open_real_cipic(cipic_dir):
    hrtf_set = open_hrtf_set(str(cipic_dir))
    assert isinstance(hrtf_set, CipicWavHRTF) and len(hrtf_set.subjects()) == 45


@pytest.mark.parametrize("kind", ["missing", "empty folder", "text file"])
def test_open_anything_else_says_what_is_accepted(tmp_path, kind):
    target = {"missing": tmp_path / "nowhere", "empty folder": tmp_path, "text file": tmp_path / "hrtf.txt"}[kind]
    if kind == "text file":
        target.write_text("x")
    with pytest.raises(HRTFError, match=r"expected 'spherical', a CIPIC wav_database folder .*\.sofa file"):
        open_hrtf_set(target)
    assert issubclass(HRTFError, ValueError)
