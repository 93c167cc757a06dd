"""Configuration: one readable message naming the field for every invalid value."""

from __future__ import annotations

from pathlib import Path

import pytest

from breedscope.config import settings as config
from breedscope.core.errors import ConfigError


def test_ratios_that_do_not_sum_to_one_name_the_split() -> None:
    with pytest.raises(
        ConfigError, match=r"split: split ratios train=0.8 val=0.2 test=0.2 sum to 1.2, not 1"
    ):
        config.build([{"split": {"train": 0.8, "val": 0.2, "test": 0.2}}])


def test_negative_epochs_name_the_field() -> None:
    with pytest.raises(ConfigError, match=r"train\.epochs: Input should be greater than 0"):
        config.build([{"train": {"epochs": -3}}])


def test_unknown_dataset_suggests_the_close_match() -> None:
    with pytest.raises(ConfigError, match=r"dataset\.name: unknown dataset 'bcdd'\. Did you mean 'bccd'\?"):
        config.build([{"dataset": {"name": "bcdd"}}], known_datasets=["bccd", "chest_xray", "demo"])


def test_unknown_setting_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"train\.epoch: Extra inputs are not permitted"):
        config.build([{"train": {"epoch": 3}}])


def test_cap_policy_needs_a_number() -> None:
    with pytest.raises(ConfigError, match=r"balance: balance policy 'cap' needs balance\.cap"):
        config.build([{"balance": {"policy": "cap"}}])


def test_dropout_per_layer_must_match_the_head() -> None:
    with pytest.raises(ConfigError, match="dropout has 1 rates for 2 head layers"):
        config.build([{"model": {"head": [256, 128], "dropout": [0.5]}}])


@pytest.mark.parametrize(
    "suffix,text",
    [
        (".toml", "[train]\nepochs = 7\n[model]\nhead = [64]\n"),
        (".yaml", "train:\n  epochs: 7\nmodel:\n  head: [64]\n"),
    ],
)
def test_files_load_and_later_layers_override(tmp_path: Path, suffix: str, text: str) -> None:
    path = tmp_path / f"run{suffix}"
    path.write_text(text)
    layer = config.read_file(path)
    built = config.build([{"train": {"epochs": 3, "batch_size": 8}}, layer, {"train": {"batch_size": 16}}])
    assert built.train.epochs == 7
    assert built.train.batch_size == 16
    assert built.model.head == [64]


def test_broken_file_is_reported_by_name(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[train\nepochs = ")
    with pytest.raises(ConfigError, match=r"bad\.toml is not valid TOML"):
        config.read_file(path)


def test_layers_put_the_datasets_preset_under_files_and_flags(tmp_path: Path) -> None:
    from breedscope.config.layering import config_layers
    from breedscope.plugins import registry

    # No dataset named: the default dataset (demo) brings its own preset, which needs no download.
    built = config.build(config_layers(None, {}, {}, False, registry()))
    assert (built.preset, built.dataset.name, built.model.weights) == ("demo", "demo", "none")
    # A named preset, then --faithful, then a file, then flags.
    layers = config_layers("cats", {"train": {"epochs": 3}}, {"train": {"batch_size": 8}}, True, registry())
    built = config.build(layers)
    assert built.model.pixel_range == "unit"  # the study's [0, 1] pixels, from --faithful
    assert built.balance.cap == 100 and built.train.epochs == 3 and built.train.batch_size == 8


def test_faithful_without_a_study_is_refused() -> None:
    from breedscope.config.layering import config_layers
    from breedscope.core.errors import BreedscopeError
    from breedscope.plugins import registry

    with pytest.raises(BreedscopeError, match="preset 'demo' has none; use one of cats, breast"):
        config_layers(None, {}, {"dataset": {"name": "demo"}}, True, registry())


@pytest.mark.parametrize(
    ("layer", "field"),
    [
        ({"train": {"seed": 2**32}}, r"train\.seed: Input should be less than 4294967296"),
        ({"train": {"seed": -1}}, r"train\.seed: Input should be greater than or equal to 0"),
        ({"split": {"seed": -5}}, r"split\.seed: Input should be greater than or equal to 0"),
        ({"model": {"head": [0]}}, r"model\.head\.0: Input should be greater than or equal to 1"),
        ({"model": {"head": [128, 10**8]}}, r"model\.head\.1: Input should be less than or equal to 65536"),
        (
            {"train": {"learning_rate": float("inf")}},
            r"train\.learning_rate: Input should be a finite number",
        ),
        ({"train": {"fine_tune_learning_rate": float("nan")}}, r"fine_tune_learning_rate: .*finite number"),
    ],
)
def test_values_no_library_can_take_are_refused_by_name(layer: dict, field: str) -> None:
    # Each used to reach NumPy, Keras or TensorFlow and end in "Unexpected error".
    with pytest.raises(ConfigError, match=field):
        config.build([layer])


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.yaml", "train: " + "[" * 5000 + "]" * 5000),
        ("deep.toml", "train = " + "[" * 5000 + "]" * 5000),
        ("wide-but-deep.yaml", "a:\n" + "".join("  " * i + f"k{i}:\n" for i in range(1, 60))),
    ],
)
def test_a_config_nested_thousands_deep_is_one_sentence(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=r"nests values more than 32 levels deep"):
        config.read_file(tmp_path / name)


def test_null_in_a_config_file_is_a_value() -> None:
    # `patience: null` ("null to disable", docs/configuration.md) used to be ignored.
    assert config.build([{"train": {"patience": 5}}, {"train": {"patience": None}}]).train.patience is None


def test_every_setting_is_a_run_flag_and_every_run_flag_a_setting() -> None:
    """``breedscope run`` and ``breedscope.run()`` take the same settings: the flags of ``run``
    (beyond how the layers are chosen) are exactly the one settings table, so neither can drift."""
    import inspect

    from breedscope.cli.runs import run
    from breedscope.config.layering import SETTINGS

    layer_choices = {"preset", "config_file", "faithful", "resume"}
    renamed = {"split_ratios": "split", "report_format": "formats"}  # --split, --format
    flags = {renamed.get(name, name) for name in inspect.signature(run).parameters} - layer_choices
    assert flags == set(SETTINGS)
