"""Finding plugins (entry-point group ``breedscope``) and collecting what they register.

Loading is defensive: a plugin that fails to import, or whose hook raises, becomes one line in
:attr:`Registry.problems` and is skipped; everything else keeps working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Any

import pluggy

from breedscope import hookspecs
from breedscope.config.presets import Preset
from breedscope.core.errors import ConfigError
from breedscope.data.spec import DatasetSpec
from breedscope.features.augment import AugmentPreset
from breedscope.model.backbone import BackboneSpec
from breedscope.report.reporter import ReporterSpec
from breedscope.runs.tracking import TrackerSpec

GROUP = "breedscope"


@dataclass(frozen=True)
class PluginInfo:
    name: str
    module: str
    distribution: str
    version: str
    provides: tuple[str, ...] = ()


@dataclass
class Registry:
    """Everything the installed plugins provide, by kind and name."""

    plugins: list[PluginInfo] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    datasets: dict[str, DatasetSpec] = field(default_factory=dict)
    backbones: dict[str, BackboneSpec] = field(default_factory=dict)
    augmentations: dict[str, AugmentPreset] = field(default_factory=dict)
    reporters: dict[str, ReporterSpec] = field(default_factory=dict)
    trackers: dict[str, TrackerSpec] = field(default_factory=dict)
    presets: dict[str, Preset] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)

    def dataset(self, name: str) -> DatasetSpec | None:
        return self.datasets[self.aliases.get(name, name)] if self.has_dataset(name) else None

    def dataset_plugin(self, name: str) -> DatasetSpec | None:
        """The dataset plugin behind ``name``: a plugin (or alias) itself, or a fetched dataset's."""
        from breedscope.data import store

        spec = self.dataset(name)
        if spec is not None:
            return spec
        stored = store.load(name)
        return self.dataset(stored.plugin) if stored else None

    def default_preset(self, dataset: str) -> str | None:
        """The preset a dataset's plugin names for it, if any."""
        owner = self.dataset_plugin(dataset)
        return owner.default_preset if owner else None

    def require_dataset_plugin(self, name: str) -> DatasetSpec:
        """:meth:`dataset_plugin`, or a sentence with the closest known name."""
        spec = self.dataset_plugin(name)
        if spec is None:
            known = self.known_datasets()
            close = difflib.get_close_matches(name, known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(f"Unknown dataset '{name}'.{hint} Known: {', '.join(known)}.")
        return spec

    def known_datasets(self) -> list[str]:
        """Every name ``--dataset`` accepts: plugins, their aliases and fetched datasets."""
        from breedscope.data import store

        return sorted(set(self.dataset_names()) | set(store.stored_names()))

    def has_dataset(self, name: str) -> bool:
        return name in self.datasets or name in self.aliases

    def dataset_names(self) -> list[str]:
        return sorted([*self.datasets, *self.aliases])

    def pick(self, kind: str, name: str) -> Any:
        """The ``kind`` (``backbones``, ``augmentations``, ``reporters``, ``presets``, ``trackers``)
        called ``name``."""
        table: dict[str, Any] = getattr(self, kind)
        if name not in table:
            close = difflib.get_close_matches(name, table, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"No {kind[:-1]} is called '{name}'.{hint} Installed: {', '.join(sorted(table))}."
            )
        return table[name]


def _manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    return manager


def _context() -> hookspecs.PluginContext:
    from breedscope.core import paths
    from breedscope.core.versions import __version__

    return hookspecs.PluginContext(home=paths.home(), version=__version__)


def _collect(manager: pluggy.PluginManager, hook_name: str, registry: Registry) -> Iterable[tuple[str, Any]]:
    """Call every implementation of ``hook_name`` on its own, so one failure skips one plugin.
    An implementation receives the arguments it names (``context``, or none)."""
    arguments = {"context": _context()}
    for impl in getattr(manager.hook, hook_name).get_hookimpls():
        try:
            for item in impl.function(*[arguments[name] for name in impl.argnames]) or []:
                yield impl.plugin_name, item
        except Exception as exc:
            registry.problems.append(
                f"plugin '{impl.plugin_name}' failed in {hook_name} ({type(exc).__name__}: {exc}); skipped"
            )


def _register(manager: pluggy.PluginManager, module: Any, name: str | None, registry: Registry) -> bool:
    """Register ``module``; a hook whose arguments do not match its spec is a problem, not a crash."""
    try:
        manager.register(module, name=name)
    except pluggy.PluginValidationError as exc:
        registry.problems.append(f"plugin '{name or module.__name__}' is invalid ({exc}); skipped")
        return False
    return True


def _check_pending(manager: pluggy.PluginManager, registry: Registry) -> None:
    """Report hooks no spec knows (a misspelt ``breedscope_dataset``), as pluggy's
    ``check_pending`` finds them, and leave them out."""
    for hook_name, caller in vars(manager.hook).items():
        if not hook_name.startswith("_") and not caller.has_spec():
            for impl in caller.get_hookimpls():
                registry.problems.append(
                    f"plugin '{impl.plugin_name}' implements '{hook_name}', which is not a breedscope "
                    f"hook (see breedscope.hookspecs); ignored"
                )


def load(extra_modules: Iterable[Any] = ()) -> Registry:
    """Load every plugin in the entry-point group, plus ``extra_modules`` (for tests)."""
    registry = Registry()
    manager = _manager()
    for entry in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        try:
            module = entry.load()
        except Exception as exc:
            registry.problems.append(
                f"plugin '{entry.name}' ({entry.value}) failed to import "
                f"({type(exc).__name__}: {exc}); skipped"
            )
            continue
        if manager.is_registered(module) or manager.has_plugin(entry.name):
            continue
        if not _register(manager, module, entry.name, registry):
            continue
        dist = entry.dist
        registry.plugins.append(
            PluginInfo(
                entry.name,
                entry.value,
                dist.metadata["Name"] if dist else "?",
                dist.version if dist else "?",
            )
        )
    for module in extra_modules:
        if _register(manager, module, None, registry):
            name = manager.get_name(module) or "?"
            registry.plugins.append(PluginInfo(name, module.__name__, "(local)", "-"))
    _check_pending(manager, registry)

    provided: dict[str, list[str]] = {}
    tables = {
        "breedscope_datasets": registry.datasets,
        "breedscope_presets": registry.presets,
        "breedscope_backbones": registry.backbones,
        "breedscope_augmentations": registry.augmentations,
        "breedscope_reporters": registry.reporters,
        "breedscope_trackers": registry.trackers,
    }
    for hook_name, table in tables.items():
        kind = hook_name.removeprefix("breedscope_")[:-1]
        owners: dict[str, str] = {}
        for plugin_name, item in _collect(manager, hook_name, registry):
            if item.name in owners:
                registry.problems.append(
                    f"plugins '{owners[item.name]}' and '{plugin_name}' both provide the {kind} "
                    f"'{item.name}'; '{owners[item.name]}' is used (uninstall one, or rename)"
                )
                continue
            owners[item.name] = plugin_name
            table[item.name] = item
            provided.setdefault(plugin_name, []).append(f"{kind}:{item.name}")
            for alias in getattr(item, "aliases", ()):
                registry.aliases[alias] = item.name
    registry.plugins = [
        PluginInfo(p.name, p.module, p.distribution, p.version, tuple(provided.get(p.name, ())))
        for p in registry.plugins
    ]
    return registry


@cache
def registry() -> Registry:
    """The process-wide registry, loaded once; what went wrong loading it is said once."""
    from breedscope.core.progress import console

    loaded = load()
    for problem in loaded.problems:
        console.print(f"[yellow]warning:[/] {problem}")
    return loaded
