"""An ensemble of trained models of one character, saved as one model that every sort and evaluation loads
like any other.

    mona ensemble models/target seed-1/models/target seed-2/models/target --out models/ensemble
    mona sort ~/Pictures --out ~/sorted --model models/ensemble

The seeds of one set-up disagree by 5-10 F1 points on the demo (docs/results.md): which pictures a single
training gets right is partly chance. The ensemble's score is the mean of its members' calibrated log-odds,
so one member's confident mistake is outvoted by the others. It is one Keras model of built-in layers: each
member's backbone, its head as a linear layer with the member's temperature folded into the weights
(logits / T), the average, and a float32 softmax. So it needs no custom code to load, scores a picture from
one decode, and carries temperature 1 (its members' are inside). Its cost at sort time is the members'
networks, measured by `bench/ensemble_cost.py`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keras
import numpy as np

from mona_pipeline.errors import UserError
from mona_pipeline.models import BACKBONE, HEAD
from mona_pipeline.trained import ModelMetadata, TrainedModel, load_trained, model_fingerprint, save_trained

MEMBERS_FILE = "ensemble.json"  # beside model.keras: which model folders went in, by fingerprint


class EnsembleError(UserError, ValueError):
    """Models that cannot be combined: fewer than two, or not the same character, classes, input size or
    threshold."""


def check_members(members: list[TrainedModel]) -> None:
    if len(members) < 2:
        raise EnsembleError(f"an ensemble needs at least two models; got {len(members)}")
    first = members[0].metadata
    for member in members[1:]:
        found = member.metadata
        for field in ("target", "class_names", "positive_class", "image_size"):
            if getattr(found, field) != getattr(first, field):
                raise EnsembleError(f"{member.folder} has {field} {getattr(found, field)!r}, {members[0].folder} has "
                                    f"{getattr(first, field)!r}: an ensemble's models score one character the same way")
        if found.threshold != first.threshold:
            raise EnsembleError(f"{member.folder} has threshold {found.threshold}, {members[0].folder} has "
                                f"{first.threshold}: give models trained with one P")


def build_network(members: list[TrainedModel]) -> keras.Model:
    """One network: the mean over members of (member's head logits / member's temperature), then softmax."""
    size = members[0].image_size
    inputs = keras.Input((size, size, 3), name="pictures")
    calibrated = []
    for index, member in enumerate(members):
        backbone = member.network.get_layer(BACKBONE)
        backbone.name = f"{BACKBONE}_{index}"  # the combined model's layer names must be unique
        kernel, bias = member.network.get_layer(HEAD).get_weights()
        temperature = member.metadata.temperature
        logits = keras.layers.Dense(kernel.shape[1], dtype="float32", name=f"logits_{index}")
        calibrated.append(logits(backbone(inputs)))
        logits.set_weights([kernel / temperature, bias / temperature])
    mean = keras.layers.Average(name="mean_log_odds", dtype="float32")(calibrated)
    outputs = keras.layers.Activation("softmax", dtype="float32", name=HEAD)(mean)
    return keras.Model(inputs, outputs, name="ensemble")


def combine(folders: list[Path], out: Path) -> ModelMetadata:
    """Save the ensemble of the models in `folders` to `out` (model.keras, metadata.json, ensemble.json).

    Raises:
        EnsembleError: the models cannot be combined (see check_members), or `out` is one of them.
    """
    out = Path(out)
    if any(Path(folder).resolve() == out.resolve() for folder in folders):
        raise EnsembleError(f"{out} is one of the models; write the ensemble to another folder")
    members = [load_trained(Path(folder)) for folder in folders]
    check_members(members)
    first = members[0].metadata
    prints = [model_fingerprint(member.folder) for member in members]
    architectures = sorted({member.metadata.architecture or "unknown" for member in members})
    metadata = ModelMetadata(
        stage=first.stage, class_names=first.class_names, positive_class=first.positive_class, target=first.target,
        architecture=f"ensemble of {len(members)}: {', '.join(architectures)}", image_size=first.image_size,
        threshold=first.threshold, temperature=1.0, precision_policy="float32",
        params_digest=hashlib.sha256("|".join(prints).encode()).hexdigest()[:16], data_digest=first.data_digest,
        metrics={f"member_{i}_val_loss": m.metadata.metrics["val_loss"]
                 for i, m in enumerate(members) if "val_loss" in m.metadata.metrics})
    save_trained(build_network(members), metadata, out)
    (out / MEMBERS_FILE).write_text(json.dumps(
        [{"folder": str(Path(m.folder).absolute()), "fingerprint": p, "temperature": m.metadata.temperature}
         for m, p in zip(members, prints)], indent=2))
    return metadata


def mean_log_odds(scores: np.ndarray) -> np.ndarray:
    """What the ensemble scores, from its members' calibrated scores (members x pictures): the rule its
    network computes, for its test and for replays of seeds' scores (bench/seed_ensemble.py)."""
    clipped = np.clip(np.asarray(scores, float), 1e-7, 1 - 1e-7)
    return 1 / (1 + np.exp(-np.mean(np.log(clipped / (1 - clipped)), axis=0)))
