"""The study presets: the protocols of the five studies breedscope reproduces (``studies.md``)
and the figures they reported, contributed through the ``breedscope_presets`` hook like any
third party's preset."""

from __future__ import annotations

from breedscope import Preset, Study, hookimpl

CAT_BREEDS = ["American Curl", "Maine Coon", "Persian", "Scottish Fold", "Sphynx - Hairless Cat"]
BLOOD_CELLS = ["basophil", "eosinophil", "lymphocyte", "monocyte", "neutrophil"]

PRESETS: list[Preset] = [
    Preset(
        name="demo",
        description="Offline demo: a small MobileNetV2 (alpha 0.35) trained from scratch on digits",
        config={
            "dataset": {"name": "demo"},
            "split": {"train": 0.7, "val": 0.15, "test": 0.15},
            "augment": {"preset": "none"},
            "model": {
                "weights": "none",
                "train_base": True,
                "alpha": 0.35,
                "image_size": 32,
                "head": [64],
                "dropout": 0.1,
            },
            "train": {"epochs": 20, "batch_size": 32, "learning_rate": 2e-3, "patience": 5},
        },
    ),
    Preset(
        name="cats",
        description="Cat breeds: five breeds, 100 each, 80/20, frozen MobileNetV2, 2-layer head",
        config={
            "dataset": {"name": "cat_breeds", "classes": CAT_BREEDS},
            "balance": {"policy": "cap", "cap": 100},
            "split": {"train": 0.8, "val": 0.0, "test": 0.2},
            "augment": {"preset": "none"},
            "model": {"image_size": 224, "head": [256, 128], "dropout": [0.5, 0.3]},
            "train": {"epochs": 20, "batch_size": 32, "learning_rate": 1e-4, "patience": None},
        },
        study=Study(
            title="Cat breed classification with MobileNetV2 (500 images, 5 breeds)",
            images=500,
            test_images=100,
            classes=5,
            source="Kaggle ma7555/cat-breeds-dataset, 100 images per breed",
            reported={"accuracy": 0.91, "macro_precision": 0.91, "macro_recall": 0.91, "macro_f1": 0.91},
            per_class_f1={
                "American Curl": 0.79,
                "Maine Coon": 0.86,
                "Persian": 0.98,
                "Scottish Fold": 0.92,
                "Sphynx - Hairless Cat": 1.00,
            },
            notes=(
                "The study's 'Peaknose' is the Kaggle folder 'Persian'.",
                "Its best validation accuracy (epoch 17) was measured on the test images.",
            ),
        ),
        faithful={"model": {"pixel_range": "unit"}},
        differences=(
            "The study scaled pixels to [0, 1]; MobileNetV2's ImageNet weights expect [-1, 1], "
            "which this preset uses (--faithful restores [0, 1]).",
        ),
    ),
    Preset(
        name="breast",
        description="Breast images (benign/malignant/normal), 70/30, transfer learning",
        config={
            "dataset": {"name": "breast"},
            "decision": {"positive": "malignant"},
            "split": {"train": 0.7, "val": 0.0, "test": 0.3},
            "augment": {"preset": "ultrasound"},
            "model": {"image_size": 224, "head": [128], "dropout": 0.3},
            "train": {"epochs": 40, "batch_size": 32, "learning_rate": 1e-3, "patience": None},
        },
        study=Study(
            title="Breast cancer classification with AlexNet and ResNet50 (531 images)",
            images=531,
            classes=3,
            source="Kaggle anissaapril/kanker-payudara",
            reported={"accuracy": 0.7812},
            notes=("Reported accuracy is AlexNet's validation accuracy (0.7812); ResNet50 reached 0.6201.",),
        ),
        differences=(
            "The study's headline accuracy of 0.981 is a training-set score; its validation "
            "accuracy was 0.7812, which is the figure compared here.",
            "The study used 227x227 inputs for AlexNet; MobileNetV2 uses 224x224.",
        ),
    ),
    Preset(
        name="generic",
        description="Any folder of labelled images: 70/15/15, augmentation, frozen MobileNetV2",
        config={
            "split": {"train": 0.7, "val": 0.15, "test": 0.15},
            "augment": {"preset": "studies"},
            "model": {"image_size": 224, "head": [128], "dropout": 0.2},
            "train": {"epochs": 15, "batch_size": 32, "learning_rate": 1e-3},
        },
        study=Study(
            title="MobileNetV2 transfer learning on a small five-animal dataset",
            classes=5,
            source="the authors' own collection",
            reported={
                "accuracy": 0.9502,
                "macro_precision": 0.9507,
                "macro_recall": 0.9505,
                "macro_f1": 0.9503,
            },
        ),
        faithful={"train": {"fine_tune_layers": 20, "fine_tune_epochs": 5, "fine_tune_learning_rate": 1e-5}},
        differences=(
            "The study fine-tuned the backbone after training the head; this preset trains the head "
            "on the frozen backbone only, which is much faster on a CPU (--faithful adds 5 epochs of "
            "fine-tuning of the top 20 layers).",
        ),
    ),
    Preset(
        name="bccd",
        description="White blood cells, 5 types, 80/20, frozen MobileNetV2, Dense 128, 15 epochs",
        config={
            "dataset": {"name": "bccd"},
            "split": {"train": 0.8, "val": 0.0, "test": 0.2},
            "augment": {"preset": "none"},
            "model": {"image_size": 224, "head": [128], "dropout": 0.0},
            "train": {"epochs": 15, "batch_size": 32, "learning_rate": 1e-3, "patience": None},
        },
        study=Study(
            title="White blood cell classification with MobileNetV2 (BCCD, 3,500 images)",
            images=3500,
            test_images=620,
            classes=5,
            source="Kaggle brikwerk/bccd-white-blood-cell, 700 images per class",
            reported={"accuracy": 0.948},
            per_class_f1={
                "basophil": 1.00,
                "eosinophil": 0.89,
                "lymphocyte": 1.00,
                "monocyte": 0.99,
                "neutrophil": 0.89,
            },
        ),
        faithful={"split": {"grouped": False}},
        differences=(
            "The Kaggle BCCD set is augmented copies of a few hundred cells, so the study's "
            "per-image split can put copies of one cell on both sides; this manifest keeps exact and "
            "near-duplicates on one side (--faithful splits per image).",
        ),
    ),
    Preset(
        name="chest_xray",
        description="Pneumonia vs normal, 75/15/10 stratified, grouped by patient, 20 epochs",
        config={
            "dataset": {"name": "chest_xray"},
            "decision": {"positive": "PNEUMONIA"},
            "split": {"train": 0.75, "val": 0.15, "test": 0.10},
            "augment": {"preset": "xray"},
            "model": {"image_size": 224, "head": [128], "dropout": 0.2},
            "train": {"epochs": 20, "batch_size": 32, "learning_rate": 1e-3},
        },
        study=Study(
            title="Pneumonia detection in paediatric chest X-rays with MobileNetV2",
            images=5856,
            test_images=587,
            classes=2,
            source="Kaggle paultimothymooney/chest-xray-pneumonia",
            reported={
                "accuracy": 0.9540,
                "weighted_precision": 0.9562,
                "weighted_recall": 0.9540,
                "weighted_f1": 0.9546,
            },
        ),
        faithful={"split": {"grouped": False}},
        differences=(
            "The study split per image, so one child's X-rays could sit in train and test; this "
            "preset keeps each patient on one side (--faithful splits per image).",
        ),
    ),
]


@hookimpl
def breedscope_presets() -> list[Preset]:
    return PRESETS
