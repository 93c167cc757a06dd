"""What is installed and fetched: datasets, plugins."""

from __future__ import annotations

from breedscope.cli.app import app, out, plugin_registry
from breedscope.core import tables


@app.command()
def datasets() -> None:
    """List dataset plugins and fetched datasets.

    Example: `breedscope datasets`
    """
    from breedscope.data import store

    loaded = plugin_registry()

    def kaggle(spec) -> str:
        pinned = f" (version {spec.kaggle_version})" if spec.kaggle and spec.kaggle_version else ""
        return ", ".join(spec.kaggle) + pinned

    plugin_rows = [
        [name, ", ".join(spec.aliases), kaggle(spec), spec.default_preset or "", spec.description]
        for name, spec in sorted(loaded.datasets.items())
    ]
    tables.show(out, "Dataset plugins", ["name", "aliases", "Kaggle", "preset", "description"], plugin_rows)
    fetched = []
    for name in store.stored_names():
        stored = store.load(name)
        source = stored.info["source"]
        fetched.append(
            [
                name,
                stored.plugin,
                str(stored.info["images"]),
                source.get("handle") or source["location"] or "",
            ]
        )
    header = ["name", "plugin", "images", "source"]
    tables.show(out, f"Fetched (in {store.paths.datasets_dir()})", header, fetched, right=["images"])


def _grouped(provides: tuple[str, ...]) -> str:
    """``("reporter:md", "reporter:pdf")`` → ``"reporter: md, pdf"``."""
    kinds: dict[str, list[str]] = {}
    for item in provides:
        kind, _, name = item.partition(":")
        kinds.setdefault(kind, []).append(name)
    return "; ".join(f"{kind}: {', '.join(names)}" for kind, names in kinds.items())


@app.command()
def plugins() -> None:
    """List every plugin with the distribution and version it came from.

    Example: `breedscope plugins`
    """
    loaded = plugin_registry()
    rows = [
        [info.name, info.module, info.distribution, info.version, _grouped(info.provides)]
        for info in loaded.plugins
    ]
    header = ["plugin", "module", "distribution", "version", "provides"]
    tables.show(out, "Plugins (entry-point group 'breedscope')", header, rows)
