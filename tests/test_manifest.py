"""The split manifest: stratified, grouped, balanced as asked, byte-identical when repeated."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest

from breedscope.config.settings import BalanceConfig, SplitConfig
from breedscope.core.errors import ConfigError
from breedscope.data import manifest
from breedscope.data.validate import ImageRecord
from breedscope.runs.rundir import read_manifest, write_manifest


def _records(per_class: dict[str, int], group_size: int = 1) -> list[ImageRecord]:
    records = []
    for label, count in per_class.items():
        for i in range(count):
            group = f"{label}-g{i // group_size}" if group_size > 1 else ""
            records.append(
                ImageRecord(
                    f"{label}/{i:04d}.png",
                    label,
                    group,
                    "",
                    sha256=f"{label}{i}",
                    phash="0" * 16,
                    width=64,
                    height=64,
                )
            )
    return records


def test_same_inputs_give_byte_identical_files(tmp_path: Path) -> None:
    records = _records({"a": 50, "b": 30}, group_size=3)
    first = manifest.build(records, SplitConfig(seed=3), BalanceConfig())
    second = manifest.build(list(reversed(records)), SplitConfig(seed=3), BalanceConfig())
    write_manifest(tmp_path / "one", first)
    write_manifest(tmp_path / "two", second)
    for name in ("manifest.csv", "manifest.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    other_seed = manifest.build(records, SplitConfig(seed=4), BalanceConfig())
    assert other_seed.csv_text() != first.csv_text()


def test_groups_never_straddle_splits_and_classes_are_stratified() -> None:
    records = _records({"a": 300, "b": 120, "c": 60}, group_size=4)
    result = manifest.build(records, SplitConfig(train=0.7, val=0.15, test=0.15), BalanceConfig())
    splits_of_group: dict[str, set[str]] = defaultdict(set)
    for row in result.rows:
        splits_of_group[row.group].add(row.split)
    assert all(len(s) == 1 for s in splits_of_group.values())
    counts = result.counts()
    for label, total in (("a", 300), ("b", 120), ("c", 60)):
        assert abs(counts["train"][label] / total - 0.7) <= 4 / total + 0.01
        assert abs(counts["test"][label] / total - 0.15) <= 4 / total + 0.01


def test_class_too_small_for_every_split_is_left_out_with_a_warning() -> None:
    records = _records({"common": 40, "other": 30, "rare": 2})
    result = manifest.build(records, SplitConfig(), BalanceConfig())
    assert result.classes == ["common", "other"]
    assert any("rare" in w and "too few" in w for w in result.header["warnings"])


def test_cap_keeps_at_most_n_per_class() -> None:
    records = _records({"a": 130, "b": 90})
    result = manifest.build(
        records, SplitConfig(train=0.8, val=0, test=0.2), BalanceConfig(policy="cap", cap=100)
    )
    totals = Counter(row.label for row in result.rows)
    assert totals == {"a": 100, "b": 90}
    assert result.header["balance"]["found_per_class"] == {"a": 130, "b": 90}
    assert result.counts()["val"] == {}


def test_undersample_equalises_train_only() -> None:
    records = _records({"a": 100, "b": 40})
    result = manifest.build(records, SplitConfig(), BalanceConfig(policy="undersample"))
    counts = result.counts()
    assert counts["train"]["a"] == counts["train"]["b"] == 28
    assert counts["test"]["a"] == 15 and counts["test"]["b"] == 6


def test_source_split_is_honoured() -> None:
    records = [
        ImageRecord(
            f"{s}/{lab}/{i}.png", lab, "", s, sha256=f"{s}{lab}{i}", phash="0" * 16, width=1, height=1
        )
        for s in ("train", "val", "test")
        for lab in ("x", "y")
        for i in range(3)
    ]
    result = manifest.build(records, SplitConfig(use_source_split=True), BalanceConfig())
    assert all(row.split == row.source_split for row in result.rows)


def test_unknown_class_selection_names_the_available_ones() -> None:
    with pytest.raises(ConfigError, match="'Lion' not in this dataset; available: a, b"):
        manifest.build(_records({"a": 5, "b": 5}), SplitConfig(), BalanceConfig(), classes=["a", "Lion"])


def test_read_returns_what_was_written(tmp_path: Path) -> None:
    built = manifest.build(_records({"a": 20, "b": 20}), SplitConfig(), BalanceConfig())
    write_manifest(tmp_path, built)
    again = read_manifest(tmp_path)
    assert again.rows == built.rows
    assert again.header["csv_sha256"] == built.sha256()
