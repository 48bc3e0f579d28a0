"""A trained stage on disk: models/<stage>/model.keras and metadata.json, saved byte-reproducibly, loaded
into one typed object.

    trained = load_trained(Path("models/target"))   # a saved stage: keras model + typed metadata
    trained.positive_index, trained.metadata.threshold

Only keras and pydantic are imported here, so a sort loads a model without the training stack.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import keras
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mona_pipeline.errors import UserError
from mona_pipeline.images import file_hash

MODEL_FILE, METADATA_FILE = "model.keras", "metadata.json"
SHARED_OBJECT_ID = re.compile(r'("shared_object_id": )(\d+)')


class BadModel(UserError, ValueError):
    """The folder's metadata.json is not a trained model's metadata."""


class ModelNotFound(UserError, FileNotFoundError):
    """The folder holds no trained model (model.keras and metadata.json)."""


class ModelMetadata(BaseModel):
    """What travels with a saved model (models/<stage>/metadata.json): enough to use it without params.yaml."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: str = Field(description="gender | lookalike | target | baseline")
    class_names: list[str] = Field(min_length=2, max_length=2)
    positive_class: str = Field(description="the class whose probability is the score")
    target: str | None = Field(None, description="the character, for target-stage models")
    architecture: str | None = None
    image_size: int = Field(gt=0, description="side of the square model input")
    threshold: float = Field(gt=0.0, lt=1.0, description="the default P for decisions")
    temperature: float = Field(1.0, gt=0.0, description=(
        "scores are sigmoid(logit(p) / temperature): fitted on the validation split after training so that "
        "a score of 0.95 means about 95% of such pictures show the class"))
    precision_policy: str = "float32"
    parent: str | None = Field(None, description="the stage this one was transferred from")
    params_digest: str | None = None
    data_digest: str | None = None
    epochs: int | None = None
    metrics: dict[str, float] = Field(default_factory=dict, description="best epoch's validation numbers")
    history: dict[str, list[float]] = Field(default_factory=dict, description="per-epoch curves")

    @model_validator(mode="before")
    @classmethod
    def _drop_legacy_keys(cls, data):
        # Models saved before the folder became byte-reproducible carried their training time.
        if isinstance(data, dict):
            data = {key: value for key, value in data.items() if key != "train_seconds"}
        return data

    @model_validator(mode="after")
    def _positive_is_a_class(self) -> "ModelMetadata":
        if self.positive_class not in self.class_names:
            raise ValueError(f"positive_class {self.positive_class!r} is not one of {self.class_names}")
        return self

    @property
    def positive_index(self) -> int:
        return self.class_names.index(self.positive_class)


@dataclass(frozen=True)
class TrainedModel:
    """A saved stage loaded for use: the network and its metadata."""

    network: keras.Model
    metadata: ModelMetadata
    folder: Path

    @property
    def positive_index(self) -> int:
        return self.metadata.positive_index

    @property
    def image_size(self) -> int:
        return self.metadata.image_size


def save_trained(network: keras.Model, metadata: ModelMetadata, folder: Path) -> None:
    """model.keras and metadata.json; the same weights and metadata give the same bytes (one DVC hash)."""
    folder.mkdir(parents=True, exist_ok=True)
    network.save(folder / MODEL_FILE)
    _without_save_time(folder / MODEL_FILE)
    (folder / METADATA_FILE).write_text(metadata.model_dump_json(indent=2))


def _without_save_time(path: Path) -> None:
    """Rewrite a .keras zip without what differs between two saves of the same model, so two identical
    trainings give one DVC hash: the moment it was saved (metadata.json's `date_saved`, the zip entries'
    timestamps) and the memory addresses Keras writes as `shared_object_id` into config.json (a network built
    in this process shares one dtype policy object between its layers), renumbered 1, 2, ... in order."""
    with zipfile.ZipFile(path) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    partial = path.with_name(path.name + ".partial")
    with zipfile.ZipFile(partial, "w") as target:
        for info, data in entries:
            if info.filename == "metadata.json":
                data = json.dumps({k: v for k, v in json.loads(data).items() if k != "date_saved"}).encode()
            elif info.filename == "config.json":
                numbers: dict[str, str] = {}
                data = SHARED_OBJECT_ID.sub(
                    lambda found: f'{found[1]}{numbers.setdefault(found[2], str(len(numbers) + 1))}',
                    data.decode()).encode()
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type, fixed.external_attr = info.compress_type, info.external_attr
            target.writestr(fixed, data)
    os.replace(partial, path)


def read_metadata(folder: Path) -> ModelMetadata:
    """A saved model's metadata alone (no network loaded).

    Raises:
        ModelNotFound: the folder holds no trained model.
        BadModel: its metadata.json is not valid.
    """
    if not (folder / MODEL_FILE).is_file() or not (folder / METADATA_FILE).is_file():
        raise ModelNotFound(f"no trained model in {Path(folder).absolute()} (expected {MODEL_FILE} and "
                            f"{METADATA_FILE}); train it first (dvc repro), or give another model folder")
    try:
        return ModelMetadata.model_validate_json((folder / METADATA_FILE).read_text())
    except ValueError as error:
        raise BadModel(f"{folder / METADATA_FILE} is not valid model metadata: {error}") from None


def load_trained(folder: Path) -> TrainedModel:
    """A saved stage, usable without the params that built it."""
    metadata = read_metadata(folder)
    return TrainedModel(keras.models.load_model(folder / MODEL_FILE), metadata, folder)


def model_fingerprint(folder: Path) -> str:
    """The model's identity for run names: SHA-256 of its metadata and weights (hashed once per file version)."""
    weights = (folder / MODEL_FILE).resolve()
    status = weights.stat()
    return _content_fingerprint(weights, status.st_size, status.st_mtime_ns, (folder / METADATA_FILE).read_bytes())


@functools.lru_cache(maxsize=8)
def _content_fingerprint(weights: Path, size: int, modified_ns: int, metadata: bytes) -> str:
    return hashlib.sha256(metadata + file_hash(weights).encode()).hexdigest()[:16]
