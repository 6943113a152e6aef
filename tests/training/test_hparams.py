"""The hparams files: they load, build the right separator, checkpoint every weight, use every key,
keep the published defaults, and differ only where they should."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
from conftest import PROJECT_ROOT
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.run_opts import RunOptions

from binaural.models import tasnet
from binaural.data import variants as data_variants
from binaural.errors import RecipeError

HPARAMS_DIR = PROJECT_ROOT / "hparams"
#: The published variants (other files may add, e.g., a causal one; every check below runs on all).
REQUIRED = {
    "convtasnet-independent": (tasnet.IndependentTasNet, 2),
    "convtasnet-cross": (tasnet.CrossChannelTasNet, 2),
    "convtasnet-parallel": (tasnet.ParallelTasNet, 2),
    "convtasnet-parallel-noise": (tasnet.ParallelTasNet, 2),
    "convtasnet-parallel-reverb": (tasnet.ParallelTasNet, 2),
    "convtasnet-independent-3spk": (tasnet.IndependentTasNet, 3),
    "convtasnet-cross-3spk": (tasnet.CrossChannelTasNet, 3),
    "convtasnet-parallel-3spk": (tasnet.ParallelTasNet, 3),
}
ALL_FILES = sorted(p.stem for p in HPARAMS_DIR.glob("*.yaml"))
TINY = {"N_encoder_out": 16, "B": 8, "H": 16, "X": 2, "R": 1}
MODEL_BANNER = "# Model: the only section that differs between the variant files"
NEXT_BANNER = "# Optimisation and logging"
# Keys SpeechBrain's Brain reads from the hparams itself: its run options (e.g. precision), which a
# command-line flag of the same name overrides.
BRAIN_RUN_OPTIONS = set(RunOptions().as_dict())
# Outside the Model section, files may differ in these values only.
PER_FILE_KEYS = {"experiment_name", "num_spks", "norm_type", "causal"}
# ... and the data-variant files, in these data keys (their entries, with the comment lines right
# above them, may differ from convtasnet-parallel.yaml's or be added): nothing else.
VARIANT_DATA_KEYS = {
    "convtasnet-parallel-noise": {"data_variant", "noise_root", "binaural_noise", "noise_folder_dm", "noise_files_dm",
                                  "dynamic_mixing_dataset"},
    "convtasnet-parallel-reverb": {"data_variant", "brir_dir", "reverb_mode", "reverb_times_dm", "azimuths_dm",
                                   "dynamic_mixing_dataset"},
}
# hparams/demo.yaml (`python train.py hparams/demo.yaml`, offline, minutes on a CPU) is
# convtasnet-parallel.yaml shrunk, Model section included: it may differ in these entries only (the
# synthetic-corpus hook and its arguments, own-mode generation with the spherical head, smaller
# sizes and training, no speed perturbation, flushing denormals on CPU).
DEMO_KEYS = {
    "__set_flush_denormal",
    "data_folder", "wsj_root", "corpus_talkers", "corpus_utterances_per_talker", "corpus_duration_s", "make_corpus",
    "hrtf_dir", "own_metadata", "n_mixtures",
    "N_epochs", "batch_size", "lr", "limit_training_signal_len", "training_signal_len", "use_speedperturb", "R",
    "dataloader_opts", "valid_dataloader_opts", "test_dataloader_opts",
}
# hparams/demo-causal.yaml is demo.yaml with the causal model's two settings (and its own name).
DEMO_FILES = {"demo": {}, "demo-causal": {"norm_type": "cLN", "causal": True}}


def load(name: str, tmp_path: Path, **overrides) -> dict:
    base = {"data_folder": str(tmp_path / "data"), "wsj_root": str(tmp_path / "wsj"),
            "output_folder": str(tmp_path / "out")}
    with open(HPARAMS_DIR / f"{name}.yaml", encoding="utf-8") as handle:
        return load_hyperpyyaml(handle, base | overrides)


def top_level_keys(text: str) -> list[str]:
    return re.findall(r"^([A-Za-z_]\w*):", text, flags=re.MULTILINE)


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_published_variant_files(name, tmp_path):
    model_class, n_spks = REQUIRED[name]
    hparams = load(name, tmp_path, **TINY)
    assert type(hparams["Model"]) is model_class and hparams["num_spks"] == n_spks


@pytest.mark.parametrize("name", ALL_FILES)
def test_loads_and_separates(name, tmp_path):
    hparams = load(name, tmp_path, **TINY)
    model, n_spks = hparams["Model"], hparams["num_spks"]
    assert isinstance(model, tasnet.BinauralTasNet) and n_spks in (2, 3)
    assert hparams["modules"]["model"] is model
    estimates = model(torch.randn(1, 800, 2))
    assert estimates.shape == (1, 800, 2, n_spks)
    assert hparams["train_data"].endswith(f"binaural_wsj0-{n_spks}mix_tr.csv")


@pytest.mark.parametrize("name", ALL_FILES)
def test_checkpointer_holds_every_weight(name, tmp_path):
    hparams = load(name, tmp_path, **TINY)
    recoverables = hparams["checkpointer"].recoverables
    saved = {id(p) for obj in recoverables.values() if isinstance(obj, torch.nn.Module) for p in obj.parameters()}
    model_params = {id(p) for p in hparams["Model"].parameters()}
    assert model_params <= saved, "some learned weights of Model are not checkpointed"
    for name_ in tasnet.PUBLISHED_NAMES:  # the published recoverable names, same objects
        assert recoverables[name_] is getattr(hparams["Model"], name_)
    assert recoverables["counter"] is hparams["epoch_counter"]
    assert recoverables["lr_scheduler"] is hparams["lr_scheduler"]


def unused_keys(yaml_text: str, source: str) -> list[str]:
    """Top-level keys of ``yaml_text`` that no other key references (``<key>``, ``<key.attr>``,
    ``<key[item]>``), that ``source`` does not read (``hparams["key"]``, ``hparams.get("key"``,
    ``hparams.key``, ``hp.key``), and that are no SpeechBrain run option. ``__`` keys are side effects."""
    unused = []
    for key in top_level_keys(yaml_text):
        if key.startswith("__") or key in BRAIN_RUN_OPTIONS:
            continue
        referenced = re.search(rf"<{key}(?:[>.\[ ])", yaml_text) is not None
        read = re.search(rf"""(?:hparams|hp)(?:\[["']{key}["']\]|\.get\(["']{key}["']|\.{key}\b)""", source)
        if not (referenced or read):
            unused.append(key)
    return unused


@pytest.mark.parametrize("name", ALL_FILES + sorted(f"librimix/{p.stem}" for p in (HPARAMS_DIR / "librimix").glob("*.yaml")))
def test_every_top_level_key_is_used(name):
    """Fails when someone adds a key that nothing reads (a silent no-op for users who override it)."""
    text = (HPARAMS_DIR / f"{name}.yaml").read_text()
    readers = [PROJECT_ROOT / "train.py", *sorted((PROJECT_ROOT / "binaural" / "training").glob("*.py"))]
    unused = unused_keys(text, "\n".join(path.read_text() for path in readers))
    assert not unused, f"{name}.yaml: keys that nothing uses: {unused}"


def test_the_unused_key_check_catches_one():
    text = "lr: 1\nsize: 3\nstale: 2\nprecision: fp32\nopt: !name:torch.optim.Adam\n    lr: !ref <lr>\n"
    assert unused_keys(text, 'x = hparams["opt"]; y = self.hparams.size') == ["stale"]


def _without_entries(text: str, keys: set[str]) -> str:
    """``text`` without the top-level entries of ``keys``: each key's line, its indented lines, and
    the full-line comments right above it."""
    if not keys:
        return text
    names = "|".join(sorted(keys))
    return re.sub(rf"(?:^#[^\n]*\n)*^(?:{names}):[^\n]*\n(?:^[ \t]+[^\n]*\n)*", "", text, flags=re.MULTILINE)


def _common_part(text: str, data_keys: set[str] = frozenset()) -> str:
    """The file without its header comment, its Model section, the entries of ``data_keys``,
    trailing comments and the values of PER_FILE_KEYS: what every variant must share."""
    body = text[text.index("# Seed"):]  # the header comment names the variant
    start, end = body.index(MODEL_BANNER), body.index(NEXT_BANNER)
    body = _without_entries(body[:start] + body[end:], set(data_keys))
    body = re.sub(r"^([^#\n]*?)\s+#.*$", r"\1", body, flags=re.MULTILINE)  # trailing comments
    keys = "|".join(sorted(PER_FILE_KEYS))
    return re.sub(rf"^({keys}):.*$", r"\1: ...", body, flags=re.MULTILINE)


def test_variant_files_differ_only_in_the_model_section():
    reference_text = (HPARAMS_DIR / "convtasnet-parallel.yaml").read_text()
    for name in ALL_FILES:
        data_keys = VARIANT_DATA_KEYS.get(name, set()) | (DEMO_KEYS if name in DEMO_FILES else set())
        text = _common_part((HPARAMS_DIR / f"{name}.yaml").read_text(), data_keys)
        assert text == _common_part(reference_text, data_keys), (
            f"{name}.yaml differs from convtasnet-parallel.yaml outside the Model section (and "
            f"{sorted(PER_FILE_KEYS | data_keys)}): keep the shared part identical in every file"
        )


def test_the_data_key_allowance_is_per_file_and_per_key():
    """The data-variant allowance hides nothing else: a stray change next to an allowed key, or the
    same data key in another file, is still caught."""
    reference = (HPARAMS_DIR / "convtasnet-parallel.yaml").read_text()
    noise = (HPARAMS_DIR / "convtasnet-parallel-noise.yaml").read_text()
    allowed = VARIANT_DATA_KEYS["convtasnet-parallel-noise"]
    assert _common_part(noise, allowed) == _common_part(reference, allowed)
    assert _common_part(noise.replace("lr: 0.00015", "lr: 0.001"), allowed) != _common_part(reference, allowed)
    assert _common_part(noise) != _common_part(reference)  # not allowed without the per-file key set
    tampered = reference.replace("data_variant: !new:binaural.data.variants.CleanVariant",
                                 "data_variant: !new:binaural.data.variants.CleanVariant\nnoise_root: null")
    assert _common_part(tampered) != _common_part(reference)


def _demo_comparable(text: str) -> str:
    """The file from ``# Seed`` on, Model section included, without DEMO_KEYS' entries, trailing
    comments and experiment_name's value."""
    body = _without_entries(text[text.index("# Seed"):], DEMO_KEYS)
    body = re.sub(r"^([^#\n]*?)\s+#.*$", r"\1", body, flags=re.MULTILINE)
    return re.sub(r"^experiment_name:.*$", "experiment_name: ...", body, flags=re.MULTILINE)


def test_demo_is_the_parallel_file_shrunk(tmp_path):
    """demo.yaml = convtasnet-parallel.yaml (same model, keys and structure) but for DEMO_KEYS, whose
    sizes only shrink; the allowance is the demo's alone and hides no other change."""
    reference = (HPARAMS_DIR / "convtasnet-parallel.yaml").read_text()
    demo = (HPARAMS_DIR / "demo.yaml").read_text()
    assert set(DEMO_FILES) <= set(ALL_FILES)
    assert _demo_comparable(demo) == _demo_comparable(reference), (
        "demo.yaml differs from convtasnet-parallel.yaml outside DEMO_KEYS: mirror the change")
    assert _demo_comparable(demo.replace("kernel_size: 16", "kernel_size: 32")) != _demo_comparable(reference)
    assert _common_part(demo, VARIANT_DATA_KEYS["convtasnet-parallel-noise"]) != _common_part(
        reference, VARIANT_DATA_KEYS["convtasnet-parallel-noise"])
    small, full = load("demo", tmp_path), load("convtasnet-parallel", tmp_path)
    assert type(small["Model"]) is type(full["Model"]) and small["num_spks"] == full["num_spks"] == 2
    for key in ("N_epochs", "R"):
        assert small[key] < full[key], key
    assert all(small["n_mixtures"][split] < full["n_mixtures"][split] for split in ("tr", "cv", "tt"))
    assert small["limit_training_signal_len"] and small["training_signal_len"] < full["training_signal_len"]
    assert sum(p.numel() for p in small["Model"].parameters()) < sum(p.numel() for p in full["Model"].parameters())


def test_the_causal_demo_is_the_demo_made_causal(tmp_path, monkeypatch):
    """demo-causal.yaml: demo.yaml but for experiment_name and the causal model's settings (a
    streamable model: every engine and the ONNX export accept it); the same data folders."""
    from binaural.realtime.streaming import check_streamable

    def settings(text: str) -> str:
        body = re.sub(r"^([^#\n]*?)\s+#.*$", r"\1", text[text.index("# Seed"):], flags=re.MULTILINE)
        return re.sub(r"^(experiment_name|norm_type|causal):.*$", r"\1: ...", body, flags=re.MULTILINE)

    demo, causal = ((HPARAMS_DIR / f"{name}.yaml").read_text() for name in ("demo", "demo-causal"))
    assert settings(causal) == settings(demo), "demo-causal.yaml differs from demo.yaml: mirror the change"
    hp, plain = load("demo-causal", tmp_path, **TINY), load("demo", tmp_path, **TINY)
    assert {key: hp[key] for key in DEMO_FILES["demo-causal"]} == DEMO_FILES["demo-causal"]
    check_streamable(hp["Model"])
    with pytest.raises(RecipeError, match="gLN"):
        check_streamable(plain["Model"])
    monkeypatch.chdir(tmp_path)  # loading makes the checkpoint folder: not in the repository
    demo_yaml = load_hyperpyyaml((HPARAMS_DIR / "demo-causal.yaml").read_text())
    assert demo_yaml["output_folder"] == "results/demo-causal/1234"
    assert demo_yaml["data_folder"] == "results/demo/data/binaural_wsj0-2mix"  # the demo's data, reused


@pytest.mark.parametrize("name", ALL_FILES)
def test_dynamic_mixing_is_wired_in_every_file(name, tmp_path):
    """--dynamic_mixing True just works: the factory is bound to the YAML's keys, for the file's variant."""
    from binaural.data import dynamic_mixing
    hp = load(name, tmp_path, **TINY)
    factory = hp["dynamic_mixing_dataset"]
    assert factory.func is dynamic_mixing.DynamicMixingDataset
    args = factory.keywords
    assert args["base_folder"] == hp["base_folder_dm"] and args["hrtf"] == hp["hrtf_dm"]
    assert (args["n_spks"], args["sample_rate"], args["seed"]) == (hp["num_spks"], hp["sample_rate"], hp["seed"])
    assert args["training_signal_len"] == hp["training_signal_len_dm"] == 32000
    assert args["epoch_size"] == hp["epoch_size_dm"] and args["cache_dir"] == str(tmp_path / "data") + "/dynamic_mixing_cache"
    assert hp["hrtf_dm"] == hp["datasets_generation"] + "/CIPIC_hrtf_database/wav_database"
    variant = hp["data_variant"].name
    assert variant == {"convtasnet-parallel-noise": "noise", "convtasnet-parallel-reverb": "reverb"}.get(name, "clean")
    assert ("noise_folder" in args) == (variant == "noise") and ("placer" in args) == (variant == "reverb")
    if variant == "noise":
        assert args["noise_folder"] == str(tmp_path / "data") + "/DEMAND"
        assert [f.split("/")[0] for f in args["noise_files"]] == ["DWASHING", "DKITCHEN", "NFIELD", "NPARK", "OOFFICE", "OMEETING"]
    if variant == "reverb":
        placer = args["placer"]  # built at load time, lazily: no file touched yet
        assert isinstance(placer, dynamic_mixing.BrirPlacer) and placer._brirs is None
        assert placer.reverb_times == ["0_1s", "0_2s", "0_4s", "0_7s", "0_8s"] and len(placer.azimuths) == 37
        assert placer.download_parent == tmp_path / "data" and placer.reverb_mode == "per_ear"
        assert hp["brir_dir"] is None


def test_variant_generation_defaults(tmp_path):
    """Each file's dataset_options: its variant object, with the generator's defaults, and every data key."""
    from binaural.data.layout import SPLITS
    from binaural.training.data import dataset_options
    noise = load("convtasnet-parallel-noise", tmp_path, **TINY)
    options = dataset_options(noise, ["tt"])
    assert options.variant == data_variants.NoiseVariant(noise_root=None, binaural_noise="none")
    assert options.splits == ("tt",) and options.variant is noise["data_variant"]
    assert (options.freqs, options.modes, options.n_spks) == (("8k",), ("min",), 2)
    assert options.repo_dir == noise["datasets_generation"] and not options.own_metadata
    reverb = load("convtasnet-parallel-reverb", tmp_path, **TINY)
    assert dataset_options(reverb, ["tt"]).variant == data_variants.ReverbVariant(None, "per_ear", room_seed=0)
    clean = load("convtasnet-parallel", tmp_path, **TINY, n_mixtures={"tr": 4, "cv": 2, "tt": 1}, generation_seed=7)
    options = dataset_options(clean, SPLITS)
    assert options.variant == data_variants.CleanVariant() and (options.seed, options.n_mixtures["cv"]) == (7, 2)
    three = load("convtasnet-parallel-3spk", tmp_path, **TINY)
    with pytest.raises(RecipeError, match="two-talker"):
        dataclasses.replace(three["dataset_options"], variant=data_variants.NoiseVariant())
    with pytest.raises(RecipeError, match="data_freqs"):
        dataset_options(load("convtasnet-parallel", tmp_path, **TINY, sample_rate=16000), ["tt"])
    with pytest.raises(RecipeError, match="no `dataset_options"):
        dataset_options({k: v for k, v in clean.items() if k != "dataset_options"}, ["tt"])


@pytest.mark.parametrize("name", ALL_FILES)
def test_experiment_name_matches_the_file(name, tmp_path):
    assert load(name, tmp_path, **TINY)["experiment_name"] == name


def test_published_defaults(tmp_path):
    """Han et al. / SpeechBrain's published configuration of the parallel (MIMO) system."""
    from speechbrain.nnet.losses import get_snr_with_pitwrapper
    from speechbrain.nnet.schedulers import ReduceLROnPlateau

    hp = load("convtasnet-parallel", tmp_path)
    expected = {
        "sample_rate": 8000, "length_mode": "min", "data_freqs": ["8k"], "data_modes": ["min"],
        "N_encoder_out": 64, "kernel_size": 16, "kernel_stride": 8,
        "B": 64, "H": 128, "P": 3, "X": 8, "R": 4, "norm_type": "gLN", "causal": False, "mask_nonlinear": "relu",
        "lr": 0.00015, "clip_grad_norm": 5, "N_epochs": 200, "batch_size": 1, "precision": "fp32",
        "speed_changes": [95, 100, 105], "use_speedperturb": True, "use_rand_shift": False, "use_wavedrop": False,
        "threshold_byloss": True, "threshold": -30, "lr_decay_factor": 0.5, "lr_patience": 2,
        "lr_dont_halve_until_epoch": 85, "dynamic_mixing": False, "skip_prep": False,
        "save_audio": True, "n_audio_to_save": 10,
    }
    assert {key: hp[key] for key in expected} == expected
    model = hp["Model"]
    assert (model.n_filters, model.kernel_size, model.stride) == (64, 16, 8)
    assert hp["MaskNetL"].C == 2
    assert getattr(hp["loss"], "func", hp["loss"]) is get_snr_with_pitwrapper  # !name: may give a partial
    assert isinstance(hp["lr_scheduler"], ReduceLROnPlateau)
    assert hp["lr_scheduler"].dont_halve_until_epoch == 85
    assert isinstance(hp["optimizer"](model.parameters()), torch.optim.Adam)
    assert hp["datasets_generation"] == str(tmp_path / "data") + "/Binaural-WSJ0Mix-main"
    assert hp["output_folder"] == str(tmp_path / "out") and hp["save_folder"] == str(tmp_path / "out") + "/save"


def test_mask_network_sizes_follow_the_encoder(tmp_path):
    """MaskNet's input is N (independent) or 2N (cross, parallel): overriding N_encoder_out keeps them
    consistent (the model's constructor would refuse a mismatch)."""
    for name, factor in (("convtasnet-independent", 1), ("convtasnet-cross", 2), ("convtasnet-parallel", 2)):
        hp = load(name, tmp_path, N_encoder_out=24, B=8, H=16, X=1, R=1)
        assert hp["MaskNetL"].bottleneck_conv1x1.in_channels == 24 * factor
