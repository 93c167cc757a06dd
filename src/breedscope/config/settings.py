"""Every setting a run takes, validated by pydantic.

Precedence, lowest first: defaults, the preset, a config file (TOML or YAML), command-line flags.
"""

from __future__ import annotations

import difflib
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from breedscope.config.targets import Target
from breedscope.core.errors import ConfigError
from breedscope.core.names import component_problem


class _Section(BaseModel):
    # No setting is infinite or NaN: a learning rate of inf trains to NaN and fails at the end.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


# What NumPy, TensorFlow and Python's random all take as a seed.
Seed = Annotated[int, Field(ge=0, lt=2**32, description="0 to 2**32 - 1.")]
# A head layer's width: at least one unit, and a Dense layer that fits in memory.
HeadWidth = Annotated[int, Field(ge=1, le=65536)]
# Config files are a few sections deep; thousands of levels are a broken or hostile file.
MAX_NESTING = 32


class DatasetConfig(_Section):
    name: str = Field("demo", description="A dataset plugin or a fetched dataset name.")
    classes: list[str] | None = Field(None, description="Use only these classes (for example breeds).")
    min_side: int = Field(32, ge=1, description="Images smaller than this on a side are excluded.")
    exclude: Path | None = Field(
        None, description="Train without the images this CSV's path column lists (an audit's issues.csv)."
    )

    @field_validator("name")
    @classmethod
    def _known(cls, value: str, info: ValidationInfo) -> str:
        problem = component_problem(value)
        if problem:
            raise ValueError(f"'{value}' {problem}")
        known: list[str] | None = (info.context or {}).get("known_datasets")
        if known is not None and value not in known:
            close = difflib.get_close_matches(value, known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ValueError(f"unknown dataset '{value}'.{hint} Known: {', '.join(sorted(known))}")
        return value


class SplitConfig(_Section):
    train: float = Field(0.7, gt=0, lt=1)
    val: float = Field(0.15, ge=0, lt=1)
    test: float = Field(0.15, gt=0, lt=1)
    seed: Seed = 42
    use_source_split: bool = Field(False, description="Keep the publisher's train/val/test folders.")
    grouped: bool = Field(True, description="Keep groups (a patient, duplicates) on one side.")

    @model_validator(mode="after")
    def _sums_to_one(self) -> SplitConfig:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"split ratios train={self.train} val={self.val} test={self.test} sum to {total:g}, not 1"
            )
        return self

    def ratios(self) -> dict[str, float]:
        return {"train": self.train, "val": self.val, "test": self.test}


class BalanceConfig(_Section):
    policy: Literal["none", "cap", "undersample", "oversample", "class_weights"] = "none"
    cap: int | None = Field(None, gt=0, description="Images per class kept by the 'cap' policy.")

    @model_validator(mode="after")
    def _cap_needs_number(self) -> BalanceConfig:
        if self.policy == "cap" and self.cap is None:
            raise ValueError("balance policy 'cap' needs balance.cap (images per class)")
        return self


class AugmentConfig(_Section):
    preset: str = Field("light", description="An augmentation preset name (see docs).")
    views: int = Field(4, ge=1, le=64, description="Augmented views per training image cached as features.")


class ModelConfig(_Section):
    backbone: str = "mobilenet_v2"
    weights: str = Field("imagenet", description="'imagenet', 'none', or a path to a weights file.")
    alpha: float = Field(1.0, gt=0, le=1.4)
    image_size: int = Field(224, ge=32, le=1024)
    head: list[HeadWidth] = Field(
        default_factory=lambda: [128], description="Dense layer widths after pooling (1 to 65,536)."
    )
    dropout: float | list[float] = Field(0.2, description="One rate, or one per head layer.")
    train_base: bool = Field(False, description="Train the whole backbone (for weights='none').")
    pixel_range: Literal["backbone", "unit"] = Field(
        "backbone", description="'backbone': the backbone's own preprocessing; 'unit': [0, 1]."
    )

    @model_validator(mode="after")
    def _dropout_per_layer(self) -> ModelConfig:
        rates = self.dropout if isinstance(self.dropout, list) else [self.dropout]
        if isinstance(self.dropout, list) and len(rates) != len(self.head):
            raise ValueError(f"dropout has {len(rates)} rates for {len(self.head)} head layers")
        if any(not 0 <= rate < 1 for rate in rates):
            raise ValueError("dropout rates must be at least 0 and below 1")
        return self

    def dropout_rates(self) -> list[float]:
        if isinstance(self.dropout, list):
            return list(self.dropout)
        return [self.dropout] * len(self.head)


class TrainConfig(_Section):
    epochs: int = Field(10, gt=0)
    batch_size: int = Field(32, gt=0)
    learning_rate: float = Field(1e-3, gt=0)
    patience: int | None = Field(5, ge=1, description="Early stopping on val loss; null to disable.")
    feature_cache: bool = Field(True, description="Train the head on cached backbone features.")
    feature_runtime: Literal["auto", "litert", "keras"] = Field(
        "auto",
        description="What runs the frozen backbone for cached features: auto (LiteRT where installed, "
        "agreeing with Keras and the run is large enough to repay converting, else Keras), litert or keras.",
    )
    feature_memory_mb: int = Field(
        1024, ge=0, description="Hold cached features in memory up to this size; beyond it, read per batch."
    )
    seed: Seed = 42
    fine_tune_layers: int = Field(
        0, ge=0, description="Backbone layers (from the top) unfrozen after the head."
    )
    fine_tune_epochs: int = Field(0, ge=0, description="Epochs of fine-tuning after the head's epochs.")
    fine_tune_learning_rate: float = Field(1e-5, gt=0)
    strategy: Literal["auto", "one", "mirrored", "multiworker"] = Field(
        "auto",
        description="tf.distribute strategy: mirrored uses every GPU; multiworker trains on the machines "
        "TF_CONFIG lists, each running the same command.",
    )
    mixed_precision: bool = Field(False, description="float16 compute on GPUs (mixed_float16 policy).")

    @model_validator(mode="after")
    def _fine_tuning_complete(self) -> TrainConfig:
        if bool(self.fine_tune_layers) != bool(self.fine_tune_epochs):
            raise ValueError("fine-tuning needs both fine_tune_layers and fine_tune_epochs above 0")
        return self


class ReportConfig(_Section):
    formats: list[str] = Field(default_factory=lambda: ["markdown", "pdf"])


class DecisionConfig(_Section):
    """How a screening model is used: one class against the rest, at a threshold chosen for a
    sensitivity or a specificity on data the test never sees."""

    positive: str | None = Field(
        None, description="The class a screening calls positive (binary: the second)."
    )
    operating_point: str | None = Field(
        None, description="sensitivity=0.95, specificity=0.90 or youden: the threshold's target."
    )
    folds: int = Field(
        5, ge=2, le=20, description="Out-of-fold folds when the split has no validation images."
    )

    @field_validator("operating_point")
    @classmethod
    def _a_target(cls, value: str | None) -> str | None:
        return None if value is None else str(Target.parse(value))


class CVConfig(_Section):
    """Grouped, stratified K-fold cross-validation instead of one train/test split."""

    folds: int | None = Field(None, ge=2, le=20, description="K; none: one train/val/test split.")
    repeats: int = Field(1, ge=1, le=10, description="Repeats with other fold assignments.")


class RunConfig(_Section):
    name: str = Field("run", description="The run directory's name under RUNS_DIR/DATASET.")
    preset: str | None = None
    faithful: bool = Field(False, description="The preset's study protocol (--faithful) was applied.")
    runs_dir: Path = Path("runs")
    manifest: Path | None = Field(None, description="Reuse this folder's manifest.csv instead of splitting.")
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    balance: BalanceConfig = Field(default_factory=BalanceConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    cv: CVConfig = Field(default_factory=CVConfig)
    decision: DecisionConfig = Field(default_factory=DecisionConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)
    track: list[str] = Field(default_factory=list, description="Experiment trackers, e.g. [mlflow].")

    @field_validator("track", mode="before")
    @classmethod
    def _names(cls, value: object) -> object:
        """``track="mlflow"`` or ``--track mlflow,other``, as the list it stands for."""
        return (
            [name.strip() for name in value.split(",") if name.strip()] if isinstance(value, str) else value
        )

    @field_validator("name")
    @classmethod
    def _one_path_component(cls, value: str) -> str:
        problem = component_problem(value)
        if problem:
            raise ValueError(f"'{value}' {problem}")
        return value


def read_file(path: Path) -> dict[str, Any]:
    """Read a TOML or YAML config file into a plain dict (sections at its top level)."""
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist.")
    kind = path.suffix.lower()
    if kind not in (".toml", ".yaml", ".yml"):
        raise ConfigError(f"Config file {path} must end in .toml, .yaml or .yml.")
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if kind == ".toml" else yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"Config file {path} is not UTF-8 text ({exc.reason}); save it as UTF-8.") from exc
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"Config file {path} is not valid {kind[1:].upper()}: {exc}") from exc
    except RecursionError:
        data = None  # nested past what the parser can follow: refused below as too deep
        too_deep = True
    else:
        too_deep = _depth(data) > MAX_NESTING
    if too_deep:
        raise ConfigError(
            f"Config file {path} nests values more than {MAX_NESTING} levels deep; a breedscope config "
            "has sections such as 'train:' holding settings (see docs/configuration.md)."
        )
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"Config file {path} holds a {type(data).__name__} at its top level; it must hold sections "
            "such as 'train:' and 'model:' (see docs/configuration.md)."
        )
    return data


def _depth(data: object) -> int:
    """How deeply ``data``'s lists and mappings nest (counted without recursion)."""
    deepest, stack = 0, [(data, 0)]
    while stack:
        value, level = stack.pop()
        if isinstance(value, dict | list):
            if level + 1 > MAX_NESTING:
                return level + 1
            deepest = max(deepest, level + 1)
            stack.extend((item, level + 1) for item in (value.values() if isinstance(value, dict) else value))
    return deepest


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge ``override`` into ``base`` (new dict). A ``None`` in ``override`` is a value:
    ``patience: null`` in a config file or a preset turns early stopping off. (Flags and API
    settings that were not given never reach a layer: ``settings_layer`` leaves them out.)"""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the field: ``split: ratios ... sum to 1.1, not 1``."""
    problems = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "config"
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{location}: {message}")
    return "Invalid configuration: " + "; ".join(problems) + "."


def build(layers: list[dict[str, Any]], known_datasets: list[str] | None = None) -> RunConfig:
    """Merge config layers (lowest precedence first) and validate the result."""
    data: dict[str, Any] = {}
    for layer in layers:
        data = merge(data, layer)
    try:
        return RunConfig.model_validate(data, context={"known_datasets": known_datasets})
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from exc


def to_yaml(config: RunConfig) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
