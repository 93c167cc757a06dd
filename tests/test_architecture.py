"""The layout is the architecture: stage packages in pipeline order, imports pointing only down
that order (never up, never in a cycle), and plugins built only on the public ``breedscope`` names.
docs/architecture.md describes the same order."""

from __future__ import annotations

import ast
from pathlib import Path

import breedscope
from tests.helpers import REPO

SRC = REPO / "src" / "breedscope"

# Lowest first: a module may import its own layer and the layers before it, never a later one.
LAYERS = [
    "core",  # errors, atomic files, names, paths, locks, progress, signals: no stage of its own
    "config",  # settings, presets, and how they are layered
    "data",  # dataset sources, validation, the store, images, the split manifest
    "model",  # the backbone and the classifier head, as Keras models
    "features",  # augmentation, image loading, runtimes, the feature cache
    "evaluation",  # metrics with intervals (Evaluation), Grad-CAM
    "runs",  # RunDir: every file of a run directory, read and written typed
    "training",  # trainer state, checkpoints, the two phases, distribution
    "inference",  # a trained run's model on new images
    "export",  # TFLite, ONNX, SavedModel, int8
    "report",  # the document and its figures, built from stored results
    "hookspecs",  # the plugin contract
    "plugins",  # the registry of what installed plugins provide
    "pipeline",  # a whole run, cross-validation, external validation, reproduction
    "api",  # the Python API
    "cli",  # the command line, a thin layer over the API
]


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in SRC.rglob("*.py")}


def imported(path: Path, known: dict[str, Path]) -> set[str]:
    """The breedscope modules ``path`` imports anywhere (in functions and TYPE_CHECKING too)."""
    name = module_name(path)
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(package[: len(package) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else base)
    return {m for m in found if m in known and m != name}


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(path, known) for name, path in known.items()}


def test_every_module_lives_in_a_layer() -> None:
    outside = sorted(m for m in modules() if m != "breedscope" and layer_of(m) is None)
    assert outside == []


def test_no_module_imports_a_later_stage() -> None:
    upward = sorted(
        f"{module} imports {target}"
        for module, targets in import_graph().items()
        for target in targets
        if module != "breedscope" and layer_of(target) is not None and layer_of(target) > layer_of(module)
    )
    assert upward == []


def test_there_is_no_import_cycle() -> None:
    graph = import_graph()
    state: dict[str, int] = {}  # 1 on the path being walked, 2 finished
    cycles: list[list[str]] = []

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                walk(target, [*path, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            walk(node, [node])
    assert cycles == []


def test_first_party_plugins_import_only_public_names() -> None:
    private = []
    for path in sorted((REPO / "plugins").rglob("*.py")):
        if "build" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("breedscope."):
                private.append(f"{path.name}: from {node.module} import ...")
            elif isinstance(node, ast.ImportFrom) and node.module == "breedscope":
                private += [f"{path.name}: {a.name}" for a in node.names if a.name not in breedscope.__all__]
            elif isinstance(node, ast.Import):
                private += [
                    f"{path.name}: import {a.name}" for a in node.names if a.name.startswith("breedscope.")
                ]
    assert private == []


def test_every_public_name_resolves() -> None:
    for name in breedscope.__all__:
        assert getattr(breedscope, name) is not None, name
