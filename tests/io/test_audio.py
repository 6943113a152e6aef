"""Audio reading and atomic writing."""
from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from binaural.io.atomic import remove_partial_files
from binaural.io.audio import (
    AudioFileError,
    check_readable,
    read_float,
    read_int16_first_channel,
    resolve_utterance,
    to_int16,
    write_atomic,
)


def test_int16_reading_gives_raw_values_of_the_first_channel(tmp_path):
    stereo = np.array([[100, -5], [-32768, 7], [32767, 0]], dtype=np.int16)
    sf.write(tmp_path / "a.wav", stereo, 16000, subtype="PCM_16")
    samples, rate = read_int16_first_channel(tmp_path / "a.wav", 16000)
    assert rate == 16000
    np.testing.assert_array_equal(samples, [100, -32768, 32767])


def test_wrong_rate_names_the_file_and_the_fix(tmp_path):
    sf.write(tmp_path / "b.wav", np.zeros(100), 8000)
    with pytest.raises(AudioFileError, match=r"b\.wav.*8000 Hz, expected 16000 Hz.*resample"):
        check_readable(tmp_path / "b.wav", 16000)


def test_missing_empty_and_corrupt_files(tmp_path):
    with pytest.raises(AudioFileError, match="not found"):
        check_readable(tmp_path / "none.wav")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage")
    with pytest.raises(AudioFileError, match=r"corrupt\.wav: unreadable"):
        check_readable(tmp_path / "corrupt.wav")
    sf.write(tmp_path / "empty.wav", np.zeros(0), 16000)
    with pytest.raises(AudioFileError, match="empty"):
        check_readable(tmp_path / "empty.wav")


def test_real_nist_sphere_is_read_directly(speech_dir):
    samples, rate = read_int16_first_channel(speech_dir / "example_nist_sphere.sph", 16000)
    assert rate == 16000 and len(samples) == 46242 and samples.dtype == np.int16


def test_shorten_sphere_gets_a_conversion_hint(tmp_path):
    # WSJ0's .wv1 files are shorten-compressed SPHERE, which libsndfile cannot decode.
    text = (
        b"NIST_1A\n   1024\nsample_rate -i 16000\nsample_coding -s26 pcm,embedded-shorten-v2.00\nend_head\n"
    )
    (tmp_path / "x.wv1").write_bytes(text.ljust(1024, b" ") + b"\x00" * 64)
    with pytest.raises(AudioFileError, match=r"x\.wv1.*shorten.*sph2pipe"):
        check_readable(tmp_path / "x.wv1")


def test_utterance_resolution_falls_back_to_sphere(tmp_path, speech_dir):
    folder = tmp_path / "wsj0" / "si_tr_s" / "01a"
    folder.mkdir(parents=True)
    shutil.copy(speech_dir / "example_nist_sphere.sph", folder / "01ac0101.wv1")
    assert resolve_utterance(tmp_path, "wsj0/si_tr_s/01a/01ac0101.wav") == folder / "01ac0101.wv1"
    assert resolve_utterance(tmp_path, "wsj0/si_tr_s/01a/none.wav").name == "none.wav"


def test_quantisation_truncates_like_astype_and_clips_new_data():
    samples, clipped = to_int16(np.array([1.9, -1.9, 40000.0, -40000.0]))
    np.testing.assert_array_equal(samples, [1, -1, 32767, -32768])
    assert clipped == 2


def test_quantisation_can_wrap_like_the_public_scripts():
    values = np.array([1.9, 32767.5, 40000.7, -40000.7, -32769.0])
    samples, count = to_int16(values, overflow="wrap")
    np.testing.assert_array_equal(samples, [1, 32767, 40000 - 65536, -40000 + 65536, 32767])
    assert count == 3


def test_float_reader_checks_channels_and_nan(tmp_path):
    sf.write(tmp_path / "mono.wav", np.zeros(10), 8000)
    with pytest.raises(AudioFileError, match="mono file carries no interaural cues"):
        read_float(tmp_path / "mono.wav", channels=2)
    sf.write(tmp_path / "nan.wav", np.array([[0.0, np.nan]] * 4), 8000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match="NaN"):
        read_float(tmp_path / "nan.wav")


def test_atomic_write_leaves_no_temporary_and_a_failed_write_leaves_nothing(tmp_path, monkeypatch):
    data = np.array([[1, -1], [2, -2]], dtype=np.int16)
    write_atomic(tmp_path / "out" / "x.wav", data, 8000)
    np.testing.assert_array_equal(sf.read(tmp_path / "out" / "x.wav", dtype="int16")[0], data)
    assert os.listdir(tmp_path / "out") == ["x.wav"]

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(sf, "write", broken)
    with pytest.raises(OSError):
        write_atomic(tmp_path / "out" / "y.wav", data, 8000)
    assert os.listdir(tmp_path / "out") == ["x.wav"]


@pytest.mark.parametrize("subtype, dtype", [("PCM_16", np.int16), ("FLOAT", np.float32)])
def test_atomic_write_gives_the_bytes_soundfile_writes(tmp_path, subtype, dtype):
    """The WAV is built in memory, yet the file is byte for byte what sf.write puts on disk (but for
    the clock: a float WAV's PEAK chunk stamps the second it was written, which two writes can
    straddle)."""
    data = (np.random.default_rng(1).standard_normal((1001, 2)) * 1000).astype(dtype)
    write_atomic(tmp_path / "ours.wav", data, 16000, subtype=subtype)
    sf.write(tmp_path / "direct.wav", data, 16000, subtype=subtype, format="WAV")
    ours, direct = (without_peak_time((tmp_path / name).read_bytes()) for name in ("ours.wav", "direct.wav"))
    assert ours == direct


def without_peak_time(wav: bytes) -> bytes:
    """``wav`` with the timestamp of its PEAK chunk (id, size, version, then 4 bytes of time) zeroed."""
    at = wav.find(b"PEAK")
    if at < 0:
        return wav
    stamp = at + 12
    return wav[:stamp] + bytes(4) + wav[stamp + 4:]


def test_without_peak_time_hides_only_the_clock():
    wav = b"RIFF....WAVEfmt PEAK\x18\x00\x00\x00\x01\x00\x00\x00\xb0_\x13kDATA"
    later = wav.replace(b"\xb0_\x13k", b"\xaf_\x13k")
    assert without_peak_time(wav) == without_peak_time(later) and without_peak_time(wav) != wav
    assert without_peak_time(wav.replace(b"DATA", b"DATB")) != without_peak_time(wav)


def test_a_failed_disk_write_leaves_nothing_and_keeps_the_old_file(tmp_path, monkeypatch):
    from binaural.io import atomic
    atomic_bytes = atomic.atomic_bytes
    atomic_bytes(tmp_path / "x.bin", b"old")

    def failing_replace(*args):
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(atomic.WriteError, match=r"x\.bin: cannot be written: disk full"):  # names the file
        atomic_bytes(tmp_path / "x.bin", b"new")
    assert os.listdir(tmp_path) == ["x.bin"] and (tmp_path / "x.bin").read_bytes() == b"old"


def test_written_files_have_ordinary_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        write_atomic(tmp_path / "x.wav", np.zeros(4, dtype=np.int16), 8000)
    finally:
        os.umask(previous)
    assert (tmp_path / "x.wav").stat().st_mode & 0o777 == 0o644


def test_partial_files_of_a_killed_run_are_removed(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / ".x.wav.123.partial").write_bytes(b"half")
    (tmp_path / "a" / "x.wav").write_bytes(b"whole")
    assert remove_partial_files(tmp_path) == 1
    assert os.listdir(tmp_path / "a") == ["x.wav"]


def test_a_float_wav_holds_no_write_time(tmp_path):
    """The same samples give the same bytes whenever they are written: write_atomic zeroes the
    write time libsndfile stamps into a float WAV's PEAK chunk (two generator runs from nothing
    must give identical files)."""
    data = np.random.default_rng(2).standard_normal((500, 2)).astype(np.float32)
    write_atomic(tmp_path / "x.wav", data, 8000, subtype="FLOAT")
    wav = (tmp_path / "x.wav").read_bytes()
    peak = wav.find(b"PEAK")
    assert peak > 0 and wav[peak + 12 : peak + 16] == bytes(4)
    np.testing.assert_array_equal(sf.read(str(tmp_path / "x.wav"), dtype="float32")[0], data)
