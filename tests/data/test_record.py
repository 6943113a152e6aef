"""The dataset has one owner: variant objects, the dataset record, one writer at a time.

Each numbered scenario of the issue is a test here, run as a user would run it (the generator's
command line in a subprocess, killed with SIGKILL where the scenario says so), on own-mode data
from the real utterances and the spherical head; then the variants' own unit tests and a fourth,
fake variant that plugs in without touching another module.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import PROJECT_ROOT, official_subset, wsj_tree_for

import create_binaural_wsj0mix as generator
from binaural.io.atomic import exclusive
from binaural.data.generation import create_binaural_wsj0mix, ensure_dataset
from binaural.data.variants import BuildInputs, CleanVariant, DataVariant, NoiseVariant, Renderer, ReverbVariant
from binaural.data.record import (
    COMPLETE,
    IN_PROGRESS,
    DatasetError,
    DatasetMismatchError,
    DatasetRecord,
    GenerationOptions,
    missing_parts,
)
from binaural.errors import RecipeError
from binaural.data.layout import LOCK_NAME, RECORD_NAME, SPLITS, split_folder
from binaural.data.manifests import prepare_binaural_wsj0mix

SIZES = {"tr": 3, "cv": 1, "tt": 2}
#: The generator's command line for a tiny own-mode dataset (8 kHz, min: one part per split).
OWN = ["--own_metadata", "--hrtf_dir", "spherical", "--freqs", "8k", "--modes", "min", "--num_workers", "1", "--quiet"]


def own_options(**changes) -> GenerationOptions:
    options = GenerationOptions(freqs=["8k"], modes=["min"], own_metadata=True, hrtf_dir="spherical",
                                n_mixtures=dict(SIZES), seed=5, num_workers=1, progress=False)
    return replace(options, **changes)


def cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(PROJECT_ROOT / "create_binaural_wsj0mix.py"), *args],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    output = process.communicate(timeout=timeout)[0]
    return process.returncode, output


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (but the lock), with its bytes."""
    files = (p for p in sorted(root.rglob("*")) if p.is_file() and not p.name.endswith(".lock"))
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def wavs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.wav"))


def check_one_line_refusal(code: int, output: str, *needles: str) -> None:
    assert code == 1, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])


@pytest.fixture(scope="module")
def clean_tree(tiny_wsj_root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "data"
    create_binaural_wsj0mix(tiny_wsj_root, out, own_options())
    return out


# ==================================================================================================
# The record
# ==================================================================================================


def test_every_generated_tree_has_a_complete_record(clean_tree):
    record = json.loads((clean_tree / RECORD_NAME).read_text())
    assert record["format"] == 1 and record["dataset"] == "Binaural WSJ0-2mix"
    assert record["identity"] == {"n_spks": 2, "variant": "clean", "metadata": "own", "seed": 5, "hrtf": "spherical"}
    assert record["sources"]["metadata_dir"] == str(clean_tree / "metadata")
    digests = record["metadata_sha256"]
    assert set(digests) == set(SPLITS) and all(len(digest) == 64 for digest in digests.values())
    for split in SPLITS:
        part = record["parts"][f"wav8k/min/{split}"]
        n = SIZES[split]
        assert part == {"status": COMPLETE, "mixtures": n, "files": {"s1": n, "s2": n, "mix": n}}
    assert missing_parts(clean_tree, own_options()) == []


def test_a_rerun_with_the_same_options_writes_nothing(clean_tree, tiny_wsj_root):
    before = {p: p.stat().st_mtime_ns for p in clean_tree.rglob("*.wav")}
    assert create_binaural_wsj0mix(tiny_wsj_root, clean_tree, own_options()) == {"tr": 0, "cv": 0, "tt": 0}
    assert {p: p.stat().st_mtime_ns for p in clean_tree.rglob("*.wav")} == before


def test_scenario_1_clean_then_noise_into_one_folder_is_refused(clean_tree, tiny_wsj_root, demand):
    """Issue scenario 1: the noisy build reported success and kept the clean run's int16 sources."""
    before = snapshot(clean_tree)
    code, output = finish(cli("--wsj_root", str(tiny_wsj_root), "--output_dir", str(clean_tree), *OWN, "--seed", "5",
                              "--n_mixtures", "3", "1", "2", "--variant", "noise", "--noise_root", str(demand)))
    check_one_line_refusal(code, output, str(clean_tree), "variant='clean'", "variant='noise'", "another folder")
    assert snapshot(clean_tree) == before  # nothing written, nothing lost


def test_scenario_1_an_option_changed_within_a_variant_is_refused(demand, clean_tree, tiny_wsj_root, tmp_path):
    """Issue scenario 1, second half: --binaural_noise diffuse after the default wrote 0 files."""
    out = tmp_path / "noisy"
    options = own_options(variant=NoiseVariant(noise_root=demand), n_mixtures={"tr": 1, "cv": 1, "tt": 1})
    create_binaural_wsj0mix(tiny_wsj_root, out, options)
    tt = split_folder(out, "8k", "min", "tt")
    mix, s1, s2, noise = (sf.read(str(tt / folder / wavs(tt / folder)[0]))[0] for folder in ("mix_both", "s1", "s2", "noise"))
    np.testing.assert_allclose(mix, s1 + s2 + noise, atol=1e-6)  # float32 sources of the noisy build itself
    before = snapshot(out)
    code, output = finish(cli("--wsj_root", str(tiny_wsj_root), "--output_dir", str(out), *OWN, "--seed", "5",
                              "--n_mixtures", "1", "--variant", "noise", "--noise_root", str(demand),
                              "--binaural_noise", "diffuse"))
    check_one_line_refusal(code, output, str(out), "binaural_noise='none'", "binaural_noise='diffuse'")
    assert snapshot(out) == before
    for changed, needle in ((own_options(seed=6), "seed=5"), (own_options(hrtf_dir=str(PROJECT_ROOT)), "hrtf="),
                            (own_options(n_mixtures={"tr": 3, "cv": 1, "tt": 9}), "n_mixtures[tt]")):
        with pytest.raises(DatasetMismatchError, match=re.escape(needle)):
            missing_parts(clean_tree, changed)


def test_official_metadata_replaced_under_a_tree_is_refused(official_metadata_dir, cipic_dir, speech_dir, tmp_path):
    metadata = official_subset(official_metadata_dir, tmp_path / "metadata", 2, "tt", 2)
    wsj = wsj_tree_for(metadata, speech_dir, tmp_path / "wsj", 2, "tt")
    out = tmp_path / "out"
    options = GenerationOptions(freqs=["8k"], modes=["min"], splits=["tt"], metadata_dir=metadata, hrtf_dir=cipic_dir,
                                num_workers=1, progress=False)
    create_binaural_wsj0mix(wsj, out, options)
    assert DatasetRecord.read(out).identity == {"n_spks": 2, "variant": "clean", "metadata": "official"}
    scaling = metadata / "scaling_tt.npz"
    with np.load(scaling, allow_pickle=True) as npz:  # the official file: trusted test data
        arrays = {key: npz[key] for key in npz.files}
    arrays["scaling_wsjmix_8k_min"] = arrays["scaling_wsjmix_8k_min"] * 1.5  # another release's gains
    np.savez(scaling, **arrays)
    before = snapshot(out)
    with pytest.raises(DatasetMismatchError, match=r"metadata of split tt \(sha256\)"):
        create_binaural_wsj0mix(wsj, out, replace(options, modes=["min", "max"]))
    assert snapshot(out) == before


# ==================================================================================================
# Kills: the record says what is finished
# ==================================================================================================


def test_scenario_2_a_generation_killed_in_its_last_split_is_never_trained_on(tiny_wsj_root, tmp_path):
    """Issue scenario 2: killed in tt, the folder had a non-empty mix/ and train.py trained on it."""
    out, n_tt = tmp_path / "data", 24
    process = cli("--wsj_root", str(tiny_wsj_root), "--output_dir", str(out), *OWN, "--seed", "5",
                  "--n_mixtures", "3", "1", str(n_tt))
    mixtures = split_folder(out, "8k", "min", "tt") / "mix"
    deadline = time.time() + 120
    while time.time() < deadline and len(wavs(mixtures) if mixtures.is_dir() else []) < 1:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert 1 <= len(wavs(mixtures)) < n_tt, "not killed in the last split"
    record = DatasetRecord.read(out)
    assert record.status("8k", "min", "tr") == COMPLETE and record.status("8k", "min", "tt") == IN_PROGRESS
    options = own_options(n_mixtures={"tr": 3, "cv": 1, "tt": n_tt})
    assert missing_parts(out, options) == ["wav8k/min/tt"]

    # train.py without the corpus: refused (one line), no manifest of the partial split.
    experiment = tmp_path / "experiment"
    result = subprocess.run(
        [sys.executable, "train.py", "hparams/convtasnet-parallel.yaml", "--data_folder", str(out), "--wsj_root",
         str(tmp_path / "nowhere"), "--output_folder", str(experiment), "--own_metadata", "True", "--hrtf_dir",
         "spherical", "--generation_seed", "5", "--n_mixtures", f"{{tr: 3, cv: 1, tt: {n_tt}}}", "--num_workers", "1"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "has no wsj0/ folder" in result.stderr and str(out) in result.stderr
    assert not list((experiment / "save").glob("*.csv"))

    # What train.py calls, with the corpus: the split is resumed, and its manifest is whole.
    ensure_dataset(tiny_wsj_root, out, options)
    assert missing_parts(out, options) == []
    manifests = prepare_binaural_wsj0mix(out, tmp_path / "csv", variant=CleanVariant())
    assert len(manifests["tt"].read_text().splitlines()) == 1 + n_tt


KILL_AFTER_FIRST_METADATA_SPLIT = """
import os, signal, sys
from binaural.data import metadata
written = metadata.write_split
def write_then_die(*args, **kwargs):
    result = written(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)  # killed between a draw and the next
    return result
metadata.write_split = write_then_die
import create_binaural_wsj0mix
sys.exit(create_binaural_wsj0mix.main(sys.argv[1:]))
"""


def test_scenario_3_own_metadata_killed_mid_draw_is_resumed_only_with_its_seed(tiny_wsj_root, tmp_path):
    """Issue scenario 3: a kill between draw and record, then another --seed, mixed two draws."""
    out = tmp_path / "data"
    args = ["--wsj_root", str(tiny_wsj_root), "--output_dir", str(out), *OWN, "--n_mixtures", "3", "1", "2"]
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_METADATA_SPLIT, *args, "--seed", "5"],
                            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    assert (out / "metadata" / "mix_2_spk_filenames_tr.csv").exists()
    assert not (out / "metadata" / "mix_2_spk_filenames_tt.csv").exists()
    drawn = snapshot(out / "metadata")

    code, output = finish(cli(*args, "--seed", "6"))
    check_one_line_refusal(code, output, str(out / "metadata"), "seed=5", "seed=6")
    assert snapshot(out / "metadata") == drawn and not (out / "wav8k").exists()

    code, output = finish(cli(*args, "--seed", "5"))  # the same draw resumes
    assert code == 0, output
    assert (out / "metadata" / "mix_2_spk_filenames_tr.csv").read_bytes() == drawn["mix_2_spk_filenames_tr.csv"]
    assert missing_parts(out, own_options()) == []


# ==================================================================================================
# One writer at a time
# ==================================================================================================


@pytest.fixture(scope="module")
def larger_corpus(tmp_path_factory) -> Path:
    """A synthetic WSJ0-layout corpus with enough talkers for 150 distinct training mixtures."""
    from binaural.data.synthetic_speech import make_synthetic_wsj0

    return make_synthetic_wsj0(tmp_path_factory.mktemp("synthetic"), {"si_tr_s": 6, "si_dt_05": 2, "si_et_05": 2}, 8,
                               (1.0, 2.0))


def test_scenario_4_a_second_generation_waits_for_the_first(larger_corpus, tmp_path):
    """Issue scenario 4: two runs into one folder deleted each other's temporary files. Here the
    test holds the tree's lock as a live run would: the generator waits, writes nothing, and
    leaves the live run's temporary file alone until the lock is free."""
    out = tmp_path / "data"
    live_partial = split_folder(out, "8k", "min", "tr") / "mix" / ".x.wav.1.abcd.partial"
    live_partial.parent.mkdir(parents=True)
    live_partial.write_bytes(b"being written")
    log = tmp_path / "log.txt"
    with exclusive(out / LOCK_NAME, "the test's live run"), open(log, "w") as stream:
        waiting = subprocess.Popen(
            [sys.executable, str(PROJECT_ROOT / "create_binaural_wsj0mix.py"), "--wsj_root", str(larger_corpus),
             "--output_dir", str(out), *OWN, "--n_mixtures", "2", "1", "1"],
            cwd=PROJECT_ROOT, stdout=stream, stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 120
        while time.time() < deadline and "being written by another run" not in log.read_text():
            time.sleep(0.02)
        time.sleep(0.5)
        assert waiting.poll() is None, log.read_text()
        assert "being written by another run" in log.read_text() and str(out) in log.read_text()
        assert not list(out.rglob("*.wav")) and live_partial.exists() and not (out / RECORD_NAME).exists()
    assert waiting.wait(timeout=300) == 0, log.read_text()
    assert missing_parts(out, own_options(n_mixtures={"tr": 2, "cv": 1, "tt": 1}, seed=0)) == []


def test_scenario_4_two_generations_at_once_make_the_files_of_one(larger_corpus, tmp_path):
    reference, out = tmp_path / "reference", tmp_path / "data"
    args = ["--wsj_root", str(larger_corpus), "--own_metadata", "--hrtf_dir", "spherical", "--num_workers", "1",
            "--quiet", "--n_mixtures", "150", "1", "2"]
    assert finish(cli(*args, "--output_dir", str(reference)))[0] == 0
    first = cli(*args, "--output_dir", str(out))
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.rglob("*.wav")):
        time.sleep(0.005)  # the first one is writing wavs when the second starts
    second = cli(*args, "--output_dir", str(out))
    (code_1, output_1), (code_2, output_2) = finish(first), finish(second)
    assert code_1 == 0 and code_2 == 0, output_1 + output_2
    assert not list(out.rglob("*.partial"))
    made, expected = snapshot(out), snapshot(reference)
    wav_names = sorted(name for name in expected if name.endswith(".wav"))
    assert len(wav_names) == 4 * 3 * 153 and sorted(name for name in made if name.endswith(".wav")) == wav_names
    assert all(made[name] == expected[name] for name in wav_names)
    assert DatasetRecord.read(out).parts == DatasetRecord.read(reference).parts


# ==================================================================================================
# A tree without a record
# ==================================================================================================


def test_a_recordless_tree_is_accepted_when_whole_and_refused_when_partial(clean_tree, tiny_wsj_root, tmp_path, caplog):
    public = tmp_path / "public"
    shutil.copytree(clean_tree, public)
    (public / RECORD_NAME).unlink()  # as the public scripts leave it
    before = snapshot(public)
    assert create_binaural_wsj0mix(tmp_path / "no_corpus", public, own_options()) == {"tr": 0, "cv": 0, "tt": 0}
    assert "no dataset record" in caplog.text and "using it as it is" in caplog.text
    assert snapshot(public) == before

    victim = split_folder(public, "8k", "min", "tr") / "s2"
    (victim / wavs(victim)[0]).unlink()
    with pytest.raises(DatasetError, match=rf"{re.escape(str(victim))} holds 2 of the 3 files"):
        ensure_dataset(tiny_wsj_root, public, own_options())
    assert not (public / RECORD_NAME).exists() and len(wavs(victim)) == 2


# ==================================================================================================
# The variants
# ==================================================================================================


def test_the_variants_own_their_layout_format_and_options(tmp_path):
    clean, noise, reverb = CleanVariant(), NoiseVariant(binaural_noise=True), ReverbVariant("simulate", "published", 3)
    assert clean.folders(3) == ("s1", "s2", "s3", "mix") and clean.input_folder == "mix"
    assert noise.folders(2) == ("s1", "s2", "noise", "mix_clean", "mix_single", "mix_both")
    assert noise.manifest_columns(2) == {"mix_wav": "mix_both", "s1_wav": "s1", "s2_wav": "s2", "noise_wav": "noise"}
    assert reverb.manifest_columns(2) == {"mix_wav": "mix", "s1_wav": "s1", "s2_wav": "s2"}
    signal_ = np.array([[40000.7, -1.9], [-40000.0, 3.0]])
    assert clean.encode(signal_, "clip")[1:] == ("PCM_16", 2)
    np.testing.assert_array_equal(clean.encode(signal_, "clip")[0], [[32767, -1], [-32768, 3]])
    samples, subtype, _ = noise.encode(signal_ / 1e5, "clip")
    assert subtype == "FLOAT" and samples.dtype == np.float32
    assert (clean.overflow(True), clean.overflow(False)) == ("wrap", "clip")
    assert (reverb.overflow(True), ReverbVariant().overflow(True)) == ("wrap", "clip")
    assert noise.options() == {"binaural_noise": "demand"} and NoiseVariant().options() == {"binaural_noise": "none"}
    assert reverb.options() == {"reverb_mode": "published", "brir_set": "simulated", "room_seed": 3}
    assert ReverbVariant(tmp_path).options() == {"reverb_mode": "per_ear", "brir_set": "BRIR Sim Set"}
    assert NoiseVariant().dynamic_mixing_options() == {"diotic_noise": True}
    assert noise.dynamic_mixing_options() == {"diotic_noise": False} and not reverb.uses_hrtf
    for variant in (noise, reverb):
        with pytest.raises(RecipeError, match="two-talker"):
            variant.check_talkers(3)
    with pytest.raises(RecipeError, match="binaural_noise must be one of"):
        NoiseVariant(binaural_noise="stereo")
    with pytest.raises(RecipeError, match="reverb_mode must be one of"):
        ReverbVariant(reverb_mode="3d")
    assert {"clean", "noise", "reverb"} <= set(DataVariant.names()) and DataVariant.named("noise") is NoiseVariant
    assert NoiseVariant(binaural_noise="demand") == noise and NoiseVariant() != noise and clean != reverb


class DioticVariant(DataVariant):
    """A fourth data set, defined here only: the dry talkers (no HRIR) in both ears, float32."""

    name = "diotic_test"
    uses_hrtf = True  # own mode draws listeners with the HRTF set; this variant ignores them

    def encode(self, signal, overflow):
        return np.asarray(signal / 32768, dtype=np.float32), "FLOAT", 0

    def prepare(self, inputs: BuildInputs) -> Renderer:
        return _DioticRenderer(self, inputs)


class _DioticRenderer(Renderer):
    def render(self, spec, sources_at_rate, freq, mode):
        from binaural.data.mixing import fix_length

        dry = fix_length([s * g for s, g in zip(sources_at_rate, spec.gains[(freq, mode)])], mode)
        signals = {f"s{k + 1}": np.stack([d, d], axis=1) for k, d in enumerate(dry)}
        signals["mix"] = sum(signals.values())
        return signals


@pytest.fixture
def diotic_variant():
    yield DioticVariant
    del DataVariant._registry[DioticVariant.name]


def test_a_fourth_variant_is_one_class(diotic_variant, tiny_wsj_root, tmp_path):
    """Defined in this file alone, it is generated, recorded, refused as another variant, listed by
    the generator's command line and prepared as manifests."""
    out = tmp_path / "data"
    create_binaural_wsj0mix(tiny_wsj_root, out, own_options(variant=DioticVariant()))
    assert DatasetRecord.read(out).identity["variant"] == "diotic_test"
    tt = split_folder(out, "8k", "min", "tt")
    s1, rate = sf.read(str(tt / "s1" / wavs(tt / "s1")[0]), dtype="float32")
    assert rate == 8000 and np.array_equal(s1[:, 0], s1[:, 1])
    with pytest.raises(DatasetMismatchError, match="variant='diotic_test'"):
        missing_parts(out, own_options())
    assert generator.parse_args(["--wsj_root", "w", "--output_dir", "o", "--variant", "diotic_test"]).variant == "diotic_test"
    rows = prepare_binaural_wsj0mix(out, tmp_path / "csv", variant=DioticVariant())["tt"].read_text().splitlines()
    assert rows[0] == "ID,duration,mix_wav,s1_wav,s2_wav" and len(rows) == 1 + SIZES["tt"]


def test_generation_options_are_checked_once(tmp_path):
    assert own_options().n_mixtures == SIZES
    assert GenerationOptions(n_mixtures=7).n_mixtures == {"tr": 7, "cv": 7, "tt": 7}
    assert GenerationOptions(n_mixtures=[4, 2, 1]).n_mixtures == {"tr": 4, "cv": 2, "tt": 1}
    assert GenerationOptions(freqs=["16k"]).parts() == [("16k", m, s) for m in ("min", "max") for s in SPLITS]
    for bad, message in (({"freqs": ["44k"]}, "freqs must be"), ({"splits": []}, "splits must be"),
                         ({"n_spks": 4}, "n_spks must be 2 or 3"), ({"n_mixtures": [1, 2]}, "one value or three"),
                         ({"variant": "noise"}, r"binaural\.data\.variants\.DataVariant"),
                         ({"variant": NoiseVariant(), "n_spks": 3}, "two-talker")):
        with pytest.raises(RecipeError, match=message):
            GenerationOptions(**bad)
    (tmp_path / RECORD_NAME).write_text("{not json")
    with pytest.raises(DatasetError, match=rf"{RECORD_NAME}: unreadable dataset record"):
        missing_parts(tmp_path, own_options())


def test_a_refused_run_into_a_new_folder_leaves_no_folder(tiny_wsj_root, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(RecipeError):
        create_binaural_wsj0mix(tiny_wsj_root, out, GenerationOptions(metadata_dir=tmp_path / "absent", hrtf_dir="x"))
    assert not out.exists()
    assert not os.listdir(tmp_path)


def test_a_build_that_leaves_a_part_unfinished_never_reports_success(tiny_wsj_root, tmp_path, monkeypatch):
    """A file that never reached the disk (here: one write swallowed) keeps its part "in progress",
    and the build says so instead of returning as if done."""
    import binaural.data.generation as generation
    from binaural.data.record import DatasetError, DatasetRecord

    real_write = generation.write_atomic
    swallowed = []

    def write_but_one(path, *args, **kwargs):
        if not swallowed and Path(path).parent.name == "mix" and Path(path).parent.parent.name == "tt":
            swallowed.append(path)
            return
        real_write(path, *args, **kwargs)

    monkeypatch.setattr(generation, "write_atomic", write_but_one)
    with pytest.raises(DatasetError, match=r"wav8k/min/tt still in progress .* run the same command again"):
        create_binaural_wsj0mix(tiny_wsj_root, tmp_path / "out", own_options())
    assert swallowed
    assert DatasetRecord.read(tmp_path / "out").status("8k", "min", "tt") == "in progress"
