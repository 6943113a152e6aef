"""The mixing chain, step by step, with known answers."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import resample_poly

from binaural.data.mixing import convolve_binaural, fix_length, match_energy, mix_sources, resample, spatialize


def test_delta_hrir_returns_the_source_in_both_ears():
    rng = np.random.default_rng(0)
    source = rng.standard_normal(1000)
    hrir = np.zeros((2, 9))
    hrir[:, 4] = 1.0  # centred delta: mode="same" keeps the alignment
    binaural = convolve_binaural(source, hrir)
    assert binaural.shape == (1000, 2)
    np.testing.assert_allclose(binaural[:, 0], source, atol=1e-12)
    np.testing.assert_allclose(binaural[:, 1], source, atol=1e-12)


def test_delayed_delta_in_one_ear_delays_that_ear():
    source = np.random.default_rng(1).standard_normal(500)
    hrir = np.zeros((2, 9))
    hrir[0, 4] = 1.0
    hrir[1, 7] = 1.0  # right ear 3 samples later
    binaural = convolve_binaural(source, hrir)
    np.testing.assert_allclose(binaural[3:, 1], source[:-3], atol=1e-12)


def test_convolve_rejects_a_mono_hrir():
    with pytest.raises(ValueError, match=r"\[2, taps\]"):
        convolve_binaural(np.ones(10), np.ones((1, 4)))


def test_energy_rescaling_matches_the_dry_source_per_ear():
    dry = np.random.default_rng(2).standard_normal(2000) * 300
    binaural = np.stack([0.1 * dry, 0.05 * dry], axis=1)
    rescaled = match_energy(dry, binaural)
    # Two ears together carry twice the dry energy: each ear on average as loud as the source.
    assert np.sum(rescaled**2) == pytest.approx(2 * np.sum(dry**2))
    # One common factor: the ILD is untouched.
    np.testing.assert_allclose(rescaled[:, 0] / rescaled[:, 1], 2.0)


def test_energy_rescaling_of_silence_is_silence():
    assert not np.any(match_energy(np.zeros(10), np.zeros((10, 2))))


def test_spatialize_is_convolution_then_rescaling():
    dry = np.random.default_rng(3).standard_normal(300)
    hrir = np.random.default_rng(4).standard_normal((2, 20))
    np.testing.assert_allclose(spatialize(dry, hrir), match_energy(dry, convolve_binaural(dry, hrir)))


def test_min_truncates_to_the_shortest_and_max_pads_zeros_at_the_end():
    a, b = np.arange(5, dtype=np.int16), np.arange(3, dtype=np.int16) + 10
    short = fix_length([a, b], "min")
    assert [len(s) for s in short] == [3, 3]
    np.testing.assert_array_equal(short[0], [0, 1, 2])
    long = fix_length([a, b], "max")
    np.testing.assert_array_equal(long[1], [10, 11, 12, 0, 0])
    assert all(s.dtype == np.float64 for s in short + long)
    with pytest.raises(ValueError, match="'min' or 'max'"):
        fix_length([a, b], "mean")


def test_mixture_is_the_sum_not_the_mean():
    s1, s2 = np.ones((4, 2)), 2 * np.ones((4, 2))
    np.testing.assert_array_equal(mix_sources([s1, s2]), 3 * np.ones((4, 2)))


def test_resample_equals_the_public_call_and_is_identity_at_equal_rates():
    x = np.random.default_rng(5).integers(-3000, 3000, 1601).astype(np.int16)
    np.testing.assert_array_equal(resample(x, 16000, 8000), resample_poly(x, 8000, 16000))
    assert resample(x, 16000, 16000) is x
    h = np.random.default_rng(6).standard_normal((50, 200))
    np.testing.assert_array_equal(resample(h, 44100, 8000, axis=1), resample_poly(h, 8000, 44100, axis=1))


@pytest.mark.parametrize("rate_in, rate_out", [(16000, 8000), (8000, 16000), (44100, 16000), (48000, 44100)])
@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64])
def test_resample_with_its_cached_filter_is_bit_exact(rate_in, rate_out, dtype):
    """The filter is designed once per ratio, yet every result equals resample_poly's own, whatever the dtype."""
    x = (np.random.default_rng(7).standard_normal((3, 441)) * 1000).astype(dtype)
    for _ in range(2):  # the second call uses the cached filter
        got = resample(x, rate_in, rate_out, axis=-1)
        want = resample_poly(x, rate_out, rate_in, axis=-1)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("rate_in, rate_out", [(44100, 8000), (8000, 44100), (16000, 8000), (11025, 8000), (8000, 8000)])
def test_stream_resampler_equals_resampling_the_whole(rate_in: int, rate_out: int) -> None:
    """Pieces of any length, pushed in order, give resample() of the whole signal, bit for bit."""
    from binaural.data.mixing import StreamResampler

    rng = np.random.default_rng(rate_in + rate_out)
    signal = rng.standard_normal((30011, 2)).astype(np.float32)
    resampler = StreamResampler(rate_in, rate_out)
    pieces, start = [], 0
    while start < len(signal):
        size = int(rng.integers(1, 5000))
        pieces.append(resampler.push(signal[start : start + size]))
        start += size
    pieces.append(resampler.finish())
    np.testing.assert_array_equal(np.concatenate(pieces), resample(signal, rate_in, rate_out))
