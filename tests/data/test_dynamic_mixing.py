"""dynamic_mixing.py: each pure step with known answers, draw statistics, listeners, sharding,
reproducibility, start-up errors and DataLoader workers."""
from __future__ import annotations

import csv
import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.dataio.batch import PaddedBatch

from binaural.data import dynamic_mixing
from binaural.data.dynamic_mixing import (
    LEVEL_FIRST_DB,
    LEVEL_RELATIVE_DB,
    OFFICIAL_LISTENERS,
    DynamicMixingDataset,
    DynamicMixingError,
    HrtfPlacer,
    MixturePlanner,
    binaural_noise,
    crop_or_pad,
    draw_crop_start,
    draw_levels_db,
    draw_noise_starts,
    draw_talkers,
    looped_segment,
    noise_gain,
    peak_factor,
    resampled_length,
    set_level,
    signal_level,
    sum_sources,
    training_listeners,
)
from binaural.data.hrtf import HRTFError, SphericalHeadHRTF, open_hrtf_set
from binaural.data.metadata import active_rms, split_subjects
from binaural.data.mixing import resample

RATE = 8000


@pytest.fixture(scope="module")
def sphere() -> SphericalHeadHRTF:
    """One spherical-head set for the module: its HRIR cache is shared by every dataset."""
    return SphericalHeadHRTF()


@pytest.fixture(scope="module")
def cipic(cipic_dir):
    return open_hrtf_set(cipic_dir)


@pytest.fixture(scope="module")
def dataset(tiny_wsj_root, sphere) -> DynamicMixingDataset:
    return DynamicMixingDataset(tiny_wsj_root, sphere, sample_rate=RATE, training_signal_len=RATE, epoch_size=8)


def make_wsj(root: Path, speech_dir: Path, talkers: dict[str, list[str]]) -> Path:
    """``root/wsj0/si_tr_s/<talker>/<utt>.wav`` copied from real utterances (names ``spk1_snt1``...)."""
    for talker, sources in talkers.items():
        folder = root / "wsj0" / "si_tr_s" / talker
        folder.mkdir(parents=True, exist_ok=True)
        for k, source in enumerate(sources):
            shutil.copy(speech_dir / f"{source}.wav", folder / f"{talker}c01{k:02d}.wav")
    return root


def items_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        (a[k] == b[k]) if isinstance(a[k], str) else torch.equal(a[k], b[k]) for k in a
    )


# ------------------------------------------------------------------------------------------------
# Pure steps
# ------------------------------------------------------------------------------------------------


def test_levels_are_clipped_to_the_allowed_range():
    rng = np.random.default_rng(0)
    levels = np.array([draw_levels_db(rng, 3, first=(-20.0, 30.0), relative=(0.0, 30.0)) for _ in range(500)])
    assert levels.min() == -45.0 and levels.max() == 0.0  # wide spreads hit both clips
    assert np.all((levels >= -45.0) & (levels <= 0.0))
    # A first level far below the range sits at the floor, and the others are relative to it.
    low = draw_levels_db(np.random.default_rng(1), 2, first=(-100.0, 0.0), relative=(-3.0, 0.0))
    np.testing.assert_array_equal(low, [-45.0, -45.0])
    rel = draw_levels_db(np.random.default_rng(1), 2, first=(-20.0, 0.0), relative=(-3.0, 0.0))
    np.testing.assert_array_equal(rel, [-20.0, -23.0])


def test_crop_and_pad_give_the_requested_length():
    x = np.arange(10.0)
    np.testing.assert_array_equal(crop_or_pad(x, 3, 4), [3, 4, 5, 6])
    np.testing.assert_array_equal(crop_or_pad(x, 8, 4), [8, 9, 0, 0])
    np.testing.assert_array_equal(crop_or_pad(x[:3], 0, 5), [0, 1, 2, 0, 0])
    stereo = crop_or_pad(np.ones((3, 2)), 0, 5)
    assert stereo.shape == (5, 2) and stereo[3:].sum() == 0 and stereo.dtype == np.float64
    rng = np.random.default_rng(0)
    starts = {draw_crop_start(rng, 12, 10) for _ in range(200)}
    assert starts == {0, 1, 2}  # every window inside the signal, the last one included
    assert draw_crop_start(rng, 7, 10) == 0 and draw_crop_start(rng, 10, 10) == 0


@pytest.mark.parametrize("reference", ["active_rms", "rms", "mean_abs"])
def test_set_level_reaches_the_level_in_dbfs(reference):
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(4000) * 0.3, np.zeros(4000)])  # speech-like: half silence
    y = set_level(x, RATE, -27.0, reference)
    assert signal_level(y, RATE, reference) == pytest.approx(10 ** (-27 / 20))
    assert not np.any(set_level(np.zeros(100), RATE, -20.0, reference))  # silence stays silence


def test_active_level_ignores_padding_while_rms_does_not():
    x = np.random.default_rng(0).standard_normal(8000)
    padded = np.concatenate([x, np.zeros(8000)])
    assert signal_level(padded, RATE, "active_rms") == pytest.approx(active_rms(x, RATE))
    assert signal_level(padded, RATE, "rms") == pytest.approx(signal_level(x, RATE, "rms") / np.sqrt(2))
    with pytest.raises(ValueError, match="level reference"):
        signal_level(x, RATE, "peak")


def test_peak_normalisation_scales_only_loud_mixtures_and_keeps_the_sum():
    s1 = np.array([[0.2, -0.1], [0.3, 0.0]])
    s2 = np.array([[0.1, 0.1], [0.9, -0.2]])
    assert peak_factor([sum_sources([s1, s2]), s1, s2], 0.9) == pytest.approx(0.9 / 1.2)
    assert peak_factor([s1, s2], 0.9) == 1.0  # nothing above 0.9: drawn levels kept
    assert peak_factor([10 * s1], None) == 1.0
    # A source may peak higher than the mixture (cancellation): it counts too.
    assert peak_factor([np.zeros((2, 2)), np.full((2, 2), 2.0)], 0.9) == pytest.approx(0.45)
    factor = peak_factor([sum_sources([s1, s2]), s1, s2], 0.9)
    scaled = [(s * factor).astype(np.float32) for s in (s1, s2)]
    mixture = sum_sources(scaled)
    assert np.abs(mixture).max() == pytest.approx(0.9, rel=1e-6)
    assert torch.equal(torch.from_numpy(mixture), torch.from_numpy(scaled[0]) + torch.from_numpy(scaled[1]))


def test_mixture_is_the_exact_sum_not_the_mean():
    rng = np.random.default_rng(0)
    sources = [rng.standard_normal((1000, 2)).astype(np.float32) for _ in range(3)]
    noise = rng.standard_normal((1000, 2)).astype(np.float32)
    a, b, c = map(torch.from_numpy, sources)
    assert torch.equal(torch.from_numpy(sum_sources(sources)), a + b + c)
    assert torch.equal(torch.from_numpy(sum_sources(sources, noise)), a + b + c + torch.from_numpy(noise))
    assert sum_sources(sources) is not sources[0]  # the first source is not modified in place


def test_talkers_are_distinct_and_never_weightless():
    rng = np.random.default_rng(0)
    for _ in range(200):
        picks = draw_talkers(rng, [3, 0, 1, 5, 0], 3)
        assert len(set(picks.tolist())) == 3 and not {1, 4} & set(picks.tolist())
    with pytest.raises(ValueError, match="at least 3"):
        draw_talkers(rng, [1, 0, 2], 3)


def test_noise_segments_loop_and_differ_between_ears():
    x = np.arange(5.0)
    np.testing.assert_array_equal(looped_segment(x, 3, 7), [3, 4, 0, 1, 2, 3, 4])
    mono = np.arange(100.0)[:, None]
    starts = draw_noise_starts(np.random.default_rng(0), 100, 1, 30)
    assert len(starts) == 2 and (starts[1] - starts[0]) % 100 >= 30  # disjoint segments
    ears = binaural_noise(mono, starts, 30)
    assert ears.shape == (30, 2) and not set(ears[:, 0]) & set(ears[:, 1])
    stereo = np.stack([np.arange(10.0), -np.arange(10.0)], axis=1)
    assert draw_noise_starts(np.random.default_rng(0), 10, 2, 4).__len__() == 1
    np.testing.assert_array_equal(binaural_noise(stereo, (8,), 4), [[8, -8], [9, -9], [0, 0], [1, -1]])


def test_noise_gain_gives_the_snr():
    rng = np.random.default_rng(0)
    speech, noise = rng.standard_normal((4000, 2)), 5 * rng.standard_normal((4000, 2))
    scaled = noise * noise_gain(speech, noise, 3.0)
    assert 10 * np.log10(np.mean(speech**2) / np.mean(scaled**2)) == pytest.approx(3.0)
    assert noise_gain(speech, np.zeros((10, 2)), 0.0) == 0.0


@pytest.mark.parametrize("n", [1, 999, 16000, 16001, 44099])
@pytest.mark.parametrize("rates", [(16000, 8000), (8000, 16000), (44100, 8000)])
def test_resampled_length_predicts_resample(n, rates):
    assert resampled_length(n, *rates) == len(resample(np.zeros(n), *rates))


# ------------------------------------------------------------------------------------------------
# Draw statistics (plans only: no audio is read)
# ------------------------------------------------------------------------------------------------


def planner(sphere, counts, n_spks=2, lengths=40000) -> MixturePlanner:
    """Talkers ``t0, t1, ...`` with ``counts[k]`` utterances of ``lengths`` samples."""
    utterances, start = [], 0
    for count in counts:
        utterances.append(list(range(start, start + count)))
        start += count
    placer = HrtfPlacer(sphere, split_subjects(sphere.subjects(), 0)["tr"], RATE, n_spks)
    return MixturePlanner([f"t{k}" for k in range(len(counts))], utterances, np.full(start, lengths), n_spks, 32000, placer)


def test_level_statistics_follow_wsj0_2mix(sphere):
    plans = [planner(sphere, [5] * 6).draw(np.random.default_rng([0, 0, i])) for i in range(600)]
    levels = np.array([p.levels_db for p in plans])
    # The clip at [-45, 0] is ~7 standard deviations away: the clipped normal's moments are the normal's.
    assert levels[:, 0].mean() == pytest.approx(LEVEL_FIRST_DB[0], abs=0.35)
    assert levels[:, 0].std() == pytest.approx(LEVEL_FIRST_DB[1], abs=0.3)
    relative = levels[:, 1] - levels[:, 0]
    assert relative.mean() == pytest.approx(LEVEL_RELATIVE_DB[0], abs=0.35)
    assert relative.std() == pytest.approx(LEVEL_RELATIVE_DB[1], abs=0.3)


def test_talkers_are_drawn_in_proportion_to_their_utterances(sphere):
    counts = np.array([1, 2, 3, 4, 5, 6, 7, 8])
    draw = planner(sphere, counts, n_spks=3)
    plans = [draw.draw(np.random.default_rng([1, 0, i])) for i in range(3000)]
    assert all(len(set(p.talkers)) == 3 for p in plans)  # distinct talkers in every mixture
    assert all(len(set(p.placement.positions)) == 3 for p in plans)  # and distinct directions
    first = np.bincount([int(p.talkers[0][1:]) for p in plans], minlength=len(counts))
    expected = 3000 * counts / counts.sum()
    chi2 = float(np.sum((first - expected) ** 2 / expected))
    assert chi2 < 24.3  # 7 degrees of freedom, p = 0.001
    # Every utterance of a talker is used.
    assert {u for p in plans for u in p.utterances} == set(range(counts.sum()))


# ------------------------------------------------------------------------------------------------
# Listeners: training ones only
# ------------------------------------------------------------------------------------------------


def test_official_listener_sets_are_those_of_the_metadata(official_metadata_dir):
    for split, listeners in OFFICIAL_LISTENERS.items():
        with open(official_metadata_dir / f"hrtf_meta_{split}.csv", newline="") as handle:
            assert {row["subject"] for row in csv.DictReader(handle)} == set(listeners)


def test_cipic_mixtures_use_official_training_listeners_only(tiny_wsj_root, cipic):
    ds = DynamicMixingDataset(tiny_wsj_root, cipic, sample_rate=RATE, training_signal_len=RATE, epoch_size=400)
    drawn = {ds.plan(i).placement.listener for i in range(len(ds))}
    held_out = set(OFFICIAL_LISTENERS["cv"]) | set(OFFICIAL_LISTENERS["tt"])
    assert drawn == set(OFFICIAL_LISTENERS["tr"]) and not drawn & held_out
    own = DynamicMixingDataset(tiny_wsj_root, cipic, sample_rate=RATE, epoch_size=400, listener_split="own", hrtf_split_seed=3)
    split = split_subjects(cipic.subjects(), 3)
    drawn_own = {own.plan(i).placement.listener for i in range(len(own))}
    assert drawn_own <= set(split["tr"]) and not drawn_own & (set(split["cv"]) | set(split["tt"]))


def test_spherical_mixtures_avoid_the_held_out_heads(tiny_wsj_root, sphere):
    ds = DynamicMixingDataset(tiny_wsj_root, sphere, sample_rate=RATE, epoch_size=300)
    split = split_subjects(sphere.subjects(), 0)
    drawn = {ds.plan(i).placement.listener for i in range(len(ds))}
    assert drawn == set(split["tr"]) and not drawn & (set(split["cv"]) | set(split["tt"]))


def test_explicit_test_listeners_are_refused(tiny_wsj_root, sphere):
    test_head = split_subjects(sphere.subjects(), 0)["tt"][0]
    with pytest.raises(DynamicMixingError, match=rf"{test_head}.*leak"):
        DynamicMixingDataset(tiny_wsj_root, sphere, sample_rate=RATE, subjects=[test_head, "sphere00"])
    chosen = DynamicMixingDataset(tiny_wsj_root, sphere, sample_rate=RATE, subjects=[test_head], listener_split="none")
    assert {chosen.plan(i).placement.listener for i in range(len(chosen))} == {test_head}
    with pytest.raises(DynamicMixingError, match="official"):
        training_listeners(sphere.subjects(), "official")


# ------------------------------------------------------------------------------------------------
# Items
# ------------------------------------------------------------------------------------------------


def test_items_have_the_static_pipeline_format(dataset, tiny_wsj_root, sphere):
    item = dataset[0]
    assert set(item) == {"id", "mix_sig", "s1_sig", "s2_sig"}
    for key in ("mix_sig", "s1_sig", "s2_sig"):
        assert item[key].shape == (RATE, 2) and item[key].dtype == torch.float32
    assert torch.equal(item["mix_sig"], item["s1_sig"] + item["s2_sig"])
    plan = dataset.plan(0)
    assert item["id"].startswith(f"dm0-0000000_{plan.placement.listener}_")
    three = DynamicMixingDataset(tiny_wsj_root, sphere, n_spks=3, sample_rate=RATE, training_signal_len=4 * RATE,
                                 epoch_size=2, talker_folders=("si_tr_s", "si_dt_05"))
    item3 = three[1]
    assert set(item3) == {"id", "mix_sig", "s1_sig", "s2_sig", "s3_sig"}
    assert item3["mix_sig"].shape == (4 * RATE, 2)  # padded: the utterances are shorter than 4 s
    assert torch.equal(item3["mix_sig"], item3["s1_sig"] + item3["s2_sig"] + item3["s3_sig"])
    assert len(set(three.plan(1).talkers)) == 3


def test_rendered_sources_have_the_drawn_levels(tiny_wsj_root, sphere):
    # RMS reference, crops inside the utterances (1 s < 1.7 s), no peak scaling: the mean power of
    # each binaural source over both ears is the drawn level exactly (energy-matched HRIR filtering).
    ds = DynamicMixingDataset(tiny_wsj_root, sphere, sample_rate=RATE, training_signal_len=RATE, epoch_size=6,
                              level_reference="rms", max_peak=None)
    for i in range(len(ds)):
        plan, item = ds.plan(i), ds[i]
        for k, level in enumerate(plan.levels_db, start=1):
            power = float(np.mean(item[f"s{k}_sig"].double().numpy() ** 2))
            assert 10 * np.log10(power) == pytest.approx(level, abs=1e-4)


def test_loud_mixtures_are_scaled_with_their_sources(dataset):
    loud = dataclasses.replace(dataset.plan(2), levels_db=(-3.0, -3.0))
    item = dataset.render(loud)
    peak = max(float(item[k].abs().max()) for k in ("mix_sig", "s1_sig", "s2_sig"))
    assert peak == pytest.approx(0.9, rel=1e-5)
    assert torch.equal(item["mix_sig"], item["s1_sig"] + item["s2_sig"])
    quiet = dataset.render(dataclasses.replace(loud, levels_db=(-30.0, -30.0)))
    ratio = float(item["s1_sig"].norm() / quiet["s1_sig"].norm())
    assert 20 * np.log10(ratio) < 27.0  # scaled down from the 27 dB difference of the drawn levels


def test_noise_is_added_at_the_snr_and_returned(tiny_wsj_root, sphere, noise_dir, tmp_path):
    common = dict(sample_rate=RATE, training_signal_len=RATE, epoch_size=6, max_peak=None)
    clean = DynamicMixingDataset(tiny_wsj_root, sphere, **common)
    noisy = DynamicMixingDataset(tiny_wsj_root, sphere, noise_folder=noise_dir, cache_dir=tmp_path / "cache",
                                 noise_snr_db=(-2.0, 2.0), **common)
    for i in range(len(noisy)):
        item, plan = noisy[i], noisy.plan(i)
        assert set(item) == {"id", "mix_sig", "s1_sig", "s2_sig", "noise_sig"}
        assert torch.equal(item["mix_sig"], item["s1_sig"] + item["s2_sig"] + item["noise_sig"])
        # The noise was drawn last: the talkers are those of the clean dataset.
        assert torch.equal(item["s1_sig"], clean[i]["s1_sig"])
        loudest = max(float(item[k].pow(2).mean()) for k in ("s1_sig", "s2_sig"))
        snr = 10 * np.log10(loudest / float(item["noise_sig"].pow(2).mean()))
        assert snr == pytest.approx(plan.snr_db, abs=1e-3) and -2.0 <= snr <= 2.0
        left, right = item["noise_sig"].T
        assert abs(float(torch.corrcoef(torch.stack([left, right]))[0, 1])) < 0.5  # different noise per ear
    assert not any(Path(noise_dir.parent).glob("noise_processed"))  # the read-only data stays untouched


# ------------------------------------------------------------------------------------------------
# Epochs, seeds and ranks
# ------------------------------------------------------------------------------------------------


def test_same_seed_and_epoch_give_identical_items(tiny_wsj_root, sphere, dataset):
    twin = DynamicMixingDataset(tiny_wsj_root, sphere, sample_rate=RATE, training_signal_len=RATE, epoch_size=8)
    assert all(items_equal(dataset[i], twin[i]) for i in range(3))
    twin.set_epoch(1)
    assert twin.epoch == 1 and not any(torch.equal(dataset[i]["mix_sig"], twin[i]["mix_sig"]) for i in range(3))
    twin.set_epoch(0)
    assert items_equal(dataset[1], twin[1])
    other_seed = DynamicMixingDataset(tiny_wsj_root, sphere, sample_rate=RATE, training_signal_len=RATE, epoch_size=8, seed=1)
    assert not torch.equal(dataset[0]["mix_sig"], other_seed[0]["mix_sig"])


def test_ranks_share_the_epoch_without_overlap(tiny_wsj_root, sphere, dataset):
    kwargs = dict(sample_rate=RATE, training_signal_len=RATE, epoch_size=8)
    ranks = [DynamicMixingDataset(tiny_wsj_root, sphere, rank=r, world_size=2, **kwargs) for r in (0, 1)]
    assert [len(r) for r in ranks] == [4, 4]
    ids = [[r[i]["id"] for i in range(len(r))] for r in ranks]
    assert not set(ids[0]) & set(ids[1])
    assert sorted(ids[0] + ids[1]) == sorted(dataset[i]["id"] for i in range(8))  # the single-process epoch
    assert items_equal(ranks[1][2], dataset[5])  # rank 1's item 2 is global item 1 + 2 * 2
    odd = DynamicMixingDataset(tiny_wsj_root, sphere, rank=1, world_size=2, **{**kwargs, "epoch_size": 9})
    assert len(odd) == 4 and odd.epoch_size == 8  # equal steps per rank, or DDP would hang
    with pytest.raises(IndexError):
        odd[4]


def test_dataloader_workers_give_the_same_items(dataset):
    loader = torch.utils.data.DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=PaddedBatch,
                                         persistent_workers=True)
    for epoch in (0, 3):
        dataset.set_epoch(epoch)  # reaches the persistent workers through shared memory
        batches = list(loader)
        assert [i for b in batches for i in b.id] == [dataset[i]["id"] for i in range(len(dataset))]
        for b, batch in enumerate(batches):
            for j in range(2):
                expected = dataset[2 * b + j]
                assert torch.equal(batch.mix_sig.data[j], expected["mix_sig"])
                assert torch.equal(batch.s2_sig.data[j], expected["s2_sig"])
    dataset.set_epoch(0)


# ------------------------------------------------------------------------------------------------
# Start-up errors and the resampled copy
# ------------------------------------------------------------------------------------------------


def test_empty_talker_folder_is_named(tmp_path, speech_dir, sphere):
    root = make_wsj(tmp_path / "wsj", speech_dir, {"01a": ["spk1_snt1", "spk1_snt2"], "02b": ["spk2_snt1"]})
    (root / "wsj0" / "si_tr_s" / "03c").mkdir()
    with pytest.raises(DynamicMixingError, match=r"si_tr_s/03c: talker folder without"):
        DynamicMixingDataset(root, sphere, sample_rate=RATE)


def test_too_few_talkers_or_too_short_utterances_are_refused(tmp_path, speech_dir, sphere):
    one = make_wsj(tmp_path / "one", speech_dir, {"01a": ["spk1_snt1", "spk1_snt2"]})
    with pytest.raises(DynamicMixingError, match="1 talker.*needs 2 different talkers"):
        DynamicMixingDataset(one, sphere, sample_rate=RATE)
    two = make_wsj(tmp_path / "two", speech_dir, {"01a": ["spk1_snt1"], "02b": ["spk2_snt2", "spk2_snt3"]})
    with pytest.raises(DynamicMixingError, match=r"02b.*all 2 utterance\(s\) of talker 02b are shorter"):
        DynamicMixingDataset(two, sphere, sample_rate=RATE, min_utterance_len=int(2.5 * RATE))
    with pytest.raises(DynamicMixingError, match="no such folder"):
        DynamicMixingDataset(tmp_path / "absent", sphere)


def test_corrupt_wav_is_named_at_start_up(tmp_path, speech_dir, sphere):
    root = make_wsj(tmp_path / "wsj", speech_dir, {"01a": ["spk1_snt1"], "02b": ["spk2_snt1"]})
    bad = root / "wsj0" / "si_tr_s" / "02b" / "02bc0199.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(DynamicMixingError, match=r"02bc0199\.wav: unreadable audio file.*re-copy"):
        DynamicMixingDataset(root, sphere, sample_rate=RATE)


def test_missing_hrtf_files_are_named_at_start_up(tmp_path, tiny_wsj_root, cipic_dir):
    subset = tmp_path / "cipic"
    names = ["subject03", "subject08", "subject09", "subject10"]
    for subject in names:
        shutil.copytree(cipic_dir / subject, subset / subject)
    listener = training_listeners(names, "auto", 0)[0][0]  # not all official listeners: the own split
    (subset / listener / "0azright.wav").unlink()
    with pytest.raises(HRTFError, match=rf"{listener}.*0azright\.wav not found"):
        DynamicMixingDataset(tiny_wsj_root, str(subset), sample_rate=RATE)
    with pytest.raises(HRTFError, match="no such file or folder"):
        DynamicMixingDataset(tiny_wsj_root, str(tmp_path / "no_hrtf"), sample_rate=RATE)


def test_bad_options_are_refused(tiny_wsj_root, sphere, tmp_path):
    with pytest.raises(DynamicMixingError, match="n_spks"):
        DynamicMixingDataset(tiny_wsj_root, sphere, n_spks=4)
    with pytest.raises(DynamicMixingError, match="rank"):
        DynamicMixingDataset(tiny_wsj_root, sphere, rank=2, world_size=2)
    with pytest.raises(DynamicMixingError, match="smaller than world_size"):
        DynamicMixingDataset(tiny_wsj_root, sphere, epoch_size=1, rank=0, world_size=2)
    (tmp_path / "quiet").mkdir()
    with pytest.raises(DynamicMixingError, match="no .wav noise files"):
        DynamicMixingDataset(tiny_wsj_root, sphere, noise_folder=tmp_path / "quiet")


def test_resampled_copy_is_made_once_and_resumed(tmp_path, speech_dir, sphere, monkeypatch):
    root = make_wsj(tmp_path / "wsj", speech_dir, {"01a": ["spk1_snt1", "spk1_snt2"], "02b": ["spk2_snt1"]})
    first = DynamicMixingDataset(root, sphere, sample_rate=RATE, cache_dir=tmp_path / "cache")
    copies = sorted((tmp_path / "cache" / "speech" / "wav8k").rglob("*.wav"))
    assert len(copies) == 3 and all(sf.info(str(c)).samplerate == RATE for c in copies)
    original, _ = sf.read(str(root / "wsj0/si_tr_s/01a/01ac0100.wav"))
    np.testing.assert_allclose(sf.read(str(copies[0]))[0], resample(original, 16000, RATE), atol=1e-6)

    converted: list[Path] = []
    real = dynamic_mixing._resample_to_cache
    monkeypatch.setattr(dynamic_mixing, "_resample_to_cache", lambda o, c, r: (converted.append(c), real(o, c, r)))
    copies[1].unlink()  # as if the preparation had been killed before this file
    again = DynamicMixingDataset(root, sphere, sample_rate=RATE, cache_dir=tmp_path / "cache")
    assert converted == [copies[1]]  # only the missing copy is redone
    assert items_equal(first[0], again[0])
    wide = DynamicMixingDataset(root, sphere, sample_rate=16000)  # 16 kHz corpus at 16 kHz: no copy at all
    assert all(Path(p).is_relative_to(root) for p in wide.catalogue.paths)


def test_recipe_keys_and_the_published_talker_set_layout(tiny_wsj_root, tmp_path):
    hparams = {
        "base_folder_dm": str(tiny_wsj_root / "wsj0" / "si_tr_s"),  # published: the talker-set folder itself
        "hrtf_wav_path": "spherical", "num_spks": 2, "sample_rate": RATE, "training_signal_len": RATE,
        "seed": 3, "dm_epoch_size": 4, "dm_cache_dir": str(tmp_path / "cache"),
    }
    ds = DynamicMixingDataset.from_hparams(hparams, preload_hrirs=True)
    assert (len(ds), ds.seed, ds.n_utterances) == (4, 3, 12)
    assert ds[0]["mix_sig"].shape == (RATE, 2) and "01a" in ds.planner.talker_names
