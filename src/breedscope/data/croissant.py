"""A split manifest as Croissant JSON-LD (``croissant.json`` beside ``manifest.csv``): the MLCommons
format Kaggle, Hugging Face and TFDS read. It describes ``manifest.csv`` (with its SHA-256) and
its records: every image's path, SHA-256, class, group and split, and the classes and splits as
enumerations, so a Croissant reader (``mlcroissant``) loads the split exactly as breedscope made it.
"""

from __future__ import annotations

from typing import Any

from breedscope.core.versions import __version__
from breedscope.data.manifest import Manifest

CROISSANT = "croissant.json"
# The Croissant 1.0 JSON-LD context, as mlcroissant writes it.
_CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "dct": "http://purl.org/dc/terms/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
_COLUMNS = {  # manifest.csv column -> (field description, Croissant data type)
    "path": ("The image file, relative to the dataset's image folder.", "sc:Text"),
    "sha256": ("SHA-256 of the image file's bytes.", "sc:Text"),
    "label": ("The image's class.", "sc:Text"),
    "group": ("Images of one group (a patient, a set of duplicates) share a split.", "sc:Text"),
    "split": ("train, val or test.", "sc:Text"),
    "width": ("Width in pixels.", "sc:Integer"),
    "height": ("Height in pixels.", "sc:Integer"),
}


def _url(dataset: dict) -> str:
    handle = dataset.get("handle")
    if handle:
        return "https://www.kaggle.com/datasets/" + handle.split("/versions/")[0]
    return "https://github.com/breedscope/breedscope"  # the tool that made the split


def croissant(manifest: Manifest, manifest_sha256: str) -> dict[str, Any]:
    """The Croissant JSON-LD of ``manifest``, whose ``manifest.csv`` has ``manifest_sha256``."""
    header = manifest.header
    dataset = header.get("dataset", {})
    name = dataset.get("name") or "dataset"
    counts = {split: sum(by_class.values()) for split, by_class in manifest.counts().items()}
    source = (
        f"Kaggle {dataset['handle']}"
        if dataset.get("handle")
        else (dataset.get("source") or "a local folder")
    )
    return {
        "@context": _CONTEXT,
        "@type": "sc:Dataset",
        "name": name,
        "description": (
            f"The split breedscope {__version__} made of '{name}' (from {source}): "
            + ", ".join(f"{counts[s]} {s}" for s in ("train", "val", "test"))
            + f" images, seed {header.get('seed')}, "
            + (
                "grouped (a group never straddles splits)."
                if header.get("split", {}).get("grouped", True)
                else "per image."
            )
        ),
        "conformsTo": "http://mlcommons.org/croissant/1.0",
        "url": _url(dataset),
        "version": "1.0.0",
        "distribution": [
            {
                "@type": "cr:FileObject",
                "@id": "manifest.csv",
                "name": "manifest.csv",
                "description": "One row per image: its path, class, split, group and SHA-256.",
                "contentUrl": "manifest.csv",
                "encodingFormat": "text/csv",
                "sha256": manifest_sha256,
            }
        ],
        "recordSet": [
            _enumeration("classes", "The classes, in the model's output order.", manifest.classes),
            _enumeration("splits", "The splits.", ["train", "val", "test"]),
            {
                "@type": "cr:RecordSet",
                "@id": "images",
                "name": "images",
                "description": "The images of the split, as manifest.csv lists them.",
                "key": {"@id": "images/path"},
                "field": [
                    {
                        "@type": "cr:Field",
                        "@id": f"images/{column}",
                        "name": column,
                        "description": description,
                        "dataType": data_type,
                        **(
                            {"references": {"field": {"@id": f"{target}/name"}}}
                            if (target := {"label": "classes", "split": "splits"}.get(column))
                            else {}
                        ),
                        "source": {"fileObject": {"@id": "manifest.csv"}, "extract": {"column": column}},
                    }
                    for column, (description, data_type) in _COLUMNS.items()
                ],
            },
        ],
    }


def _enumeration(name: str, description: str, values: list[str]) -> dict[str, Any]:
    return {
        "@type": "cr:RecordSet",
        "@id": name,
        "name": name,
        "description": description,
        "dataType": "sc:Enumeration",
        "key": {"@id": f"{name}/name"},
        "field": [{"@type": "cr:Field", "@id": f"{name}/name", "name": "name", "dataType": "sc:Text"}],
        "data": [{f"{name}/name": value} for value in values],
    }
