"""Typed, validated project parameters.

`params.yaml` is read once, at the edge (CLI, flows), into a `Params` object;
library code receives the section it needs and never opens the file itself.

    params = load_params("params.yaml")
    params.stages.target.classes   # {'mona': ['mona'], 'others': ['*']}

Every model forbids unknown keys, so a typo such as `batch_sise` is an error
that names the key instead of a silently ignored setting.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mona_pipeline.errors import UserError

STAGE_ORDER = ("gender", "lookalike", "target")
WILDCARD = "*"
# What `mona learn` adds from a user's review (review/learn.py): pictures confirmed as the target under its own
# tag, pictures rejected (the user's false alarms) under rejected_tag(target), both in a LEARNED_FOLDER
# subfolder (data/raw/<tag>/learned/<run>/...). Ingest keeps learned pictures in the train split, so a picture
# a review judged never counts as held-out evidence of the next model.
LEARNED_FOLDER = "learned"
REJECTED_SUFFIX = "_rejected"


def rejected_tag(target: str) -> str:
    """The tag of a target's hard negatives: the target stage (and the baseline) train them as its second class,
    the other stages never see them (a false alarm is not known to be female, or a look-alike)."""
    return f"{target}{REJECTED_SUFFIX}"
# The paper's P: keep a picture when the target's probability is at least this. Stored with the model.
DEFAULT_THRESHOLD = 0.95
# Pictures with more pixels than this are refused as decompression bombs (ingest, evaluate and sort alike).
MAX_IMAGE_PIXELS = 64_000_000
# What a sort does with the pictures it keeps or reviews (`delete`: dropped ones go to the run's trash).
Action = Literal["copy", "move", "link", "delete", "none"]


class ParamsError(UserError, ValueError):
    """params.yaml is missing, unreadable or invalid; the message says which key and why."""


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataParams(Section):
    raw_dir: Path = Path("data/raw")
    test_dir: Path = Path("data/test")
    manifest_dir: Path = Path("data/manifest")
    validation_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    max_image_pixels: int = Field(MAX_IMAGE_PIXELS, gt=0, description="larger pictures are refused as decompression bombs")
    # Hamming distance between 64-bit perceptual hashes that counts as "near duplicate" (ingest groups them
    # by exact matches of 8 hash bands, which finds every pair up to 7 bits apart).
    near_duplicate_distance: int = Field(4, ge=0, le=7)
    min_class_pictures: int = Field(20, ge=1, description=(
        "fewer pictures in a stage's class stop `dvc repro` before ingest (`mona check`): a fifth of them "
        "validates, and 4 or fewer cannot choose an epoch"))


class DemoParams(Section):
    seed: int = 7
    pictures_per_character: int = Field(48, ge=2)
    target_pictures: int = Field(200, ge=2)
    extras_per_gender: int = Field(120, ge=0, description="randomly composed extras per gender (stage 1's broad cast)")
    test_pictures: int = Field(840, ge=10)
    test_target_fraction: float = Field(0.15, gt=0.0, lt=1.0)
    held_out_fraction: float = Field(0.5, ge=0.0, le=1.0, description="share of the test archive showing what "
                                     "training never does (new poses, outfits, styles, small, crowds, cut, hidden)")
    held_out_target_fraction: float = Field(0.4, gt=0.0, lt=1.0)
    min_side: int = Field(240, ge=32)
    max_side: int = Field(720, ge=32)

    @model_validator(mode="after")
    def _sides_ordered(self) -> "DemoParams":
        if self.min_side > self.max_side:
            raise ValueError(f"min_side ({self.min_side}) must not exceed max_side ({self.max_side})")
        return self


class ShardParams(Section):
    dir: Path = Path("data/shards")
    # Pictures are stored at this square size: the model input plus a margin for random crops.
    image_size: int = Field(144, ge=16)
    target_shard_mb: float = Field(100.0, gt=0)
    jpeg_quality: int = Field(92, ge=50, le=100)
    tile_negatives: int = Field(1, ge=0, le=16, description=(
        "per training picture of the target stage's negative class, this many tiles (cut as the sort's tiling "
        "cuts them, params.yaml's tiling.scales) stored as extra negatives: training then sees the crops a "
        "sort scores, backgrounds and parts of other characters"))


EmaMomentum = Annotated[float | None, Field(ge=0.5, lt=1.0, description=(
    "weight averaging: validation, the best epoch and the saved model use an exponential moving average of the "
    "weights with this momentum per training step (Keras's use_ema; e.g. 0.99); null = the raw weights"))]


class StageParams(Section):
    """One transfer stage: two classes, each a list of folder tags under data/raw.

    `"*"` stands for every tag not named by the other class. The first class
    is the positive one (female, lookalike, the target).
    """

    classes: dict[str, list[str]]
    head_epochs: int = Field(ge=0, description="epochs of the new head alone, the backbone frozen")
    finetune_epochs: int = Field(ge=0, description="epochs of the whole network after that")
    learning_rate: float = Field(gt=0, description="the head phase's rate (a first stage: its only rate)")
    finetune_learning_rate: float = Field(gt=0)
    ema_momentum: EmaMomentum = None

    @field_validator("classes")
    @classmethod
    def _two_classes(cls, classes: dict[str, list[str]]) -> dict[str, list[str]]:
        if len(classes) != 2:
            raise ValueError(f"a stage needs exactly two classes, got {len(classes)}: {sorted(classes)}")
        for name, tags in classes.items():
            if not tags:
                raise ValueError(f"class {name!r} lists no folder tags")
        wildcards = [name for name, tags in classes.items() if WILDCARD in tags]
        if len(wildcards) > 1:
            raise ValueError(f"only one class may use '*', got {wildcards}")
        first, second = (set(t) for t in classes.values())
        if first & second:
            raise ValueError(f"tags {sorted(first & second)} are in both classes")
        return classes

    @property
    def class_names(self) -> list[str]:
        return list(self.classes)

    def label_for(self, tag: str) -> int:
        """Class index of a folder tag in this stage, or -1 when the stage does not use it (a rejected tag is
        not taken by '*': only the target stage of its own target reads it)."""
        if tag.endswith(REJECTED_SUFFIX):
            return -1
        for index, tags in enumerate(self.classes.values()):
            if tag in tags:
                return index
        for index, tags in enumerate(self.classes.values()):
            if WILDCARD in tags:
                return index
        return -1


# Each stage's shipped settings, written once: a stage in params.yaml that leaves a key out gets it from here.
# The classes are the demo cast's tags (a retargeted project names its own).
STAGE_DEFAULTS: dict[str, dict] = {
    "gender": {"classes": {"female": ["mona", "stella", "wanda", "nova", "luna", "rosa", "yuki", "kiri", "extra_female"],
                           "male": ["kaito", "ren", "gil", "taro", "extra_male"]},
               "head_epochs": 0, "finetune_epochs": 5, "learning_rate": 0.002, "finetune_learning_rate": 0.002},
    "lookalike": {"classes": {"lookalike": ["mona", "stella", "wanda", "nova", "luna", "ren", "gil"],
                              "different": ["rosa", "yuki", "kiri", "kaito", "taro"]},
                  "head_epochs": 3, "finetune_epochs": 15, "learning_rate": 0.002, "finetune_learning_rate": 0.001},
    "target": {"classes": {"mona": ["mona"],
                           "others": ["stella", "wanda", "nova", "luna", "ren", "gil", "rosa", "yuki", "kiri", "kaito",
                                      "taro"]},
               "head_epochs": 3, "finetune_epochs": 57, "learning_rate": 0.002, "finetune_learning_rate": 0.002,
               "ema_momentum": 0.99},
}


class TargetStageParams(StageParams):
    """The target stage: a stage, and the decision its model makes (stages 1 and 2 only train: they decide at 0.5)."""

    # The paper's P, stored with the model.
    threshold: float = Field(DEFAULT_THRESHOLD, gt=0.0, lt=1.0)
    threshold_rule: Literal["fixed", "validation"] = Field("fixed", description=(
        "fixed stores `threshold` as the model's decision threshold; validation stores the lowest calibrated "
        "score at which the validation split's precision reaches `threshold` (P is then a precision, not a "
        "score; `threshold` itself when no cut reaches it)"))

    def label_for(self, tag: str) -> int:
        """As a stage's, and the target's rejected pictures (`rejected_tag`) are its second class: hard negatives."""
        return 1 if tag == rejected_tag(self.class_names[0]) else super().label_for(tag)


class StagesParams(Section):
    gender: StageParams = StageParams(**STAGE_DEFAULTS["gender"])
    lookalike: StageParams = StageParams(**STAGE_DEFAULTS["lookalike"])
    target: TargetStageParams = TargetStageParams(**STAGE_DEFAULTS["target"])

    @model_validator(mode="before")
    @classmethod
    def _stage_defaults(cls, data):
        """A stage given in part keeps the shipped value of every key it leaves out (its classes included)."""
        if isinstance(data, dict):
            data = {name: STAGE_DEFAULTS[name] | value if name in STAGE_DEFAULTS and isinstance(value, dict)
                    else value for name, value in data.items()}
        return data

    def items(self) -> list[tuple[str, StageParams]]:
        return [(name, getattr(self, name)) for name in STAGE_ORDER]


PRETRAINED_ARCHITECTURES = ("mobilenetv3small", "efficientnetv2b0")  # keras.applications ship ImageNet weights
WIDTH_ARCHITECTURES = ("compactcnn", "mobilenetv3small")  # the networks model.width scales (filters, alpha)


class ModelParams(Section):
    architecture: Literal["compactcnn", "mobilenetv3small", "efficientnetv2b0", "monacnn"] = "mobilenetv3small"
    image_size: int = Field(128, ge=16)
    # "imagenet" downloads weights (once, into ~/.keras/models): recommended where the internet is reachable.
    weights: Literal["none", "imagenet"] = "none"
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    width: float = Field(1.0, gt=0.0, description="filters x width (compactcnn), alpha (mobilenetv3small)")

    @model_validator(mode="after")
    def _width_applies(self) -> "ModelParams":
        if self.width != 1.0 and self.architecture not in WIDTH_ARCHITECTURES:
            raise ValueError(f"width scales only {', '.join(WIDTH_ARCHITECTURES)}; {self.architecture!r} has a "
                             f"fixed width: leave width at 1.0")
        return self

    @model_validator(mode="after")
    def _weights_exist(self) -> "ModelParams":
        if self.weights == "imagenet" and self.architecture not in PRETRAINED_ARCHITECTURES:
            raise ValueError(f"weights: imagenet exists only for {', '.join(PRETRAINED_ARCHITECTURES)}, "
                             f"not for architecture {self.architecture!r}; use weights: none")
        return self


class TrainParams(Section):
    seed: int = 42
    batch_size: int = Field(32, ge=1)
    patience: int = Field(8, ge=1)
    precision: Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"] = "auto"
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)
    shuffle_buffer: int = Field(2048, ge=1)
    augmentation: Literal["basic", "strong"] = Field("strong", description=(
        "basic: crop, flip, brightness, contrast; strong adds zoom in and out, random erasing, "
        "a colour cast of the light, blur and JPEG noise"))
    lookalike_weight: float = Field(1.0, gt=0.0, description=(
        "target stage and baseline: the loss weight of the other characters' look-alikes (stages.lookalike's "
        "first class), on top of the class weights; > 1 makes training work harder on the pictures it confuses"))
    # Budget for the no-curriculum baseline: epochs of the target stage trained from scratch.
    baseline_epochs: int = Field(0, ge=0, description="0 = the three stages' epochs added up")


class EvaluateParams(Section):
    target_precision: float = Field(0.95, gt=0.0, le=1.0)
    timing_pictures: int = Field(60, ge=1)
    batch_size: int = Field(64, ge=1, le=4096, description="pictures scored per batch")


TilingMode = Literal["off", "auto", "always"]


class TilingParams(Section):
    """Multi-scale scoring: the whole picture, then overlapping square tiles (aspect kept) at finer scales.
    A tile decides only when its softened score reaches the decision threshold (`tile_decides`): then it is
    the picture's score and where the character was found; below that the whole picture's score stands."""

    mode: TilingMode = Field("auto", description=(
        "off: the whole picture only; always: every picture's tiles too; auto: tiles only for pictures whose "
        "whole-picture score is below the decision threshold and at least auto_from"))
    scales: list[float] = Field([0.5, 0.33], min_length=1, description=(
        "tile side as a fraction of the picture's short side, one entry per scale (e.g. [0.5, 0.33])"))
    overlap: float = Field(0.25, ge=0.0, le=0.75, description="share of a tile's side its neighbour overlaps")
    min_tile_side: int = Field(64, ge=8, description=(
        "a scale is skipped for pictures whose tiles would be smaller than this many pixels (small pictures)"))
    auto_from: float = Field(0.0, ge=0.0, lt=1.0, description=(
        "auto: whole-picture scores below this skip the tiles (decisively not the target)"))
    refine_from: float | None = Field(0.2, ge=0.0, le=1.0, description=(
        "coarse to fine: a finer scale's tiles are scored only where they overlap a tile of the scale before it "
        "whose softened score reached this (for some model); null: every tile of every scale. At 0.2 the demo's "
        "test decisions were those of every tile, for about half the tiles (docs/results.md)"))
    tile_temperature: float = Field(1.5, ge=1.0, description=(
        "tile scores are sigmoid(logit(s) / T) before the best is taken: a picture has dozens of tiles, so "
        "dozens of chances for a false alarm; at 1.5 a tile needs 0.988 to reach a whole picture's 0.95"))

    @field_validator("scales")
    @classmethod
    def _fractions(cls, scales: list[float]) -> list[float]:
        if any(not 0.1 <= scale < 1.0 for scale in scales):
            raise ValueError(f"each scale is a tile side as a fraction of the short side, in [0.1, 1): {scales}")
        return sorted(set(scales), reverse=True)

    def tile_decides(self, whole: float, tile: float | None, decisive: float) -> bool:
        """Whether a picture's best tile decides it: the tile was looked at (`needs_tiles`), its softened
        score reaches the decision threshold and beats the whole picture's. The one rule for every path
        (the sort's stream, the evaluation's derived modes)."""
        return tile is not None and self.needs_tiles(whole, decisive) and tile >= decisive and tile > whole

    def needs_tiles(self, whole_score: float, decisive: float) -> bool:
        """Whether a picture scored `whole_score` as a whole goes on to its tiles (`decisive`: the decision
        threshold; a score at or above it is a keep whatever the tiles say)."""
        if self.mode == "always":
            return True
        return self.mode == "auto" and self.auto_from <= whole_score < decisive


# The sort's model when none is named: the three-stage curriculum, which led the baseline (models/baseline,
# also trained) on the demo over 5 seeds once training saw the tiles a sort scores (docs/results.md, V4).
DEFAULT_MODEL = Path("models/target")


def listed_models(value):
    """A sort's models as a list: one folder (`model: models/target`, `--model` once) is a list of one."""
    return [value] if isinstance(value, (str, Path)) else value


class SortParams(Section):
    """A sort's settings: params.yaml's `sort` section, and the fields a sort run form shows."""

    models: list[Path] = Field(
        [DEFAULT_MODEL], min_length=1, validation_alias=AliasChoices("models", "model"), description=(
            "trained model folders (model.keras + metadata.json), one per character: with several, every picture "
            "is decoded once and scored by each, and kept under keep/<target>/ of each target it matches. The "
            "default is the three-stage curriculum: on the demo over 5 seeds it led the baseline (models/baseline, "
            "also trained) in F1 on every seed (docs/results.md)"))
    confidence: float | None = Field(
        None, ge=0.0, le=1.0, description="P: keep a picture when its score is at least P; empty = the model's "
                                         "threshold (stored with it when it was trained)")
    review_from: float | None = Field(
        None, ge=0.0, le=1.0, description="R: pictures scoring in [R, P) go to review/; empty = no review band")
    action: Action = Field("copy", description=(
        "copy (default) or link the kept/review pictures into OUT; move takes them OUT of the source folder; "
        "delete moves the dropped ones into the run's trash (undo puts everything back); none only reports"))
    batch_size: int = Field(64, ge=1, le=4096, description="pictures scored per batch")
    chunk_size: int = Field(2048, ge=1, description="pictures per task in the Prefect flow")
    tiling: TilingMode | None = Field(None, description=(
        "off | auto | always: also score tiles of the picture (small figures, crowds); empty = params.yaml's "
        "tiling.mode"))

    @field_validator("models", mode="before")
    @classmethod
    def _one_or_more(cls, value):
        return listed_models(value)

    @model_validator(mode="after")
    def _band_below_confidence(self):
        if self.review_from is not None and self.confidence is not None and self.review_from >= self.confidence:
            raise ValueError(f"review_from ({self.review_from}) must be below confidence ({self.confidence})")
        return self


class CharacterParams(Section):
    """Another character of the cast: the target stage trained again for her, from the same look-alike model
    (models/lookalike) and on the same pictures relabelled (characters.py), so no shard is rebuilt. A sort then
    scores her and the target from one decode (`mona sort --model models/target --model models/<name>`)."""

    tags: list[str] = Field(min_length=1, description="her folder tags under data/raw: her pictures")
    # Tried on the demo's stella (38 training pictures): at the target stage's 0.002 the fine-tuning did not
    # settle; at 0.0005 it did (docs/results.md).
    head_epochs: int = Field(5, ge=0, description="epochs of the new head alone, the backbone frozen")
    finetune_epochs: int = Field(25, ge=0, description="epochs of the whole network after that")
    learning_rate: float = Field(0.002, gt=0)
    finetune_learning_rate: float = Field(0.0005, gt=0)
    ema_momentum: EmaMomentum = None


class Params(Section):
    target: str = Field("mona", min_length=1, description="the character to find; a class of stages.target")
    data: DataParams = DataParams()
    demo: DemoParams = DemoParams()
    shards: ShardParams = ShardParams()
    stages: StagesParams = StagesParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    tiling: TilingParams = TilingParams()
    sort: SortParams = SortParams()
    # More characters of the cast, each trained like the target into models/<name>: see CharacterParams.
    characters: dict[str, CharacterParams] = {}

    @model_validator(mode="after")
    def _characters_are_the_target_stages(self) -> "Params":
        stage_tags = {tag for tags in self.stages.target.classes.values() for tag in tags}
        for name, character in self.characters.items():
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name):
                raise ValueError(f"characters.{name}: a character's name is a folder name (models/<name>): "
                                 f"letters, digits, '_' and '-'")
            if name == self.target or name in (*STAGE_ORDER, "baseline"):
                raise ValueError(f"characters.{name}: the name is taken (the target or a stage's model); name it "
                                 f"after the character")
            # With '*' in stages.target any folder may be hers: training counts her pictures (train.check_configuration).
            unknown = [] if WILDCARD in stage_tags else sorted(set(character.tags) - stage_tags)
            if unknown or WILDCARD in character.tags:
                raise ValueError(f"characters.{name}.tags: {unknown or [WILDCARD]} are not tags of stages.target "
                                 f"(her model trains on the target stage's pictures: {sorted(stage_tags)})")
            own = sorted(set(character.tags) & set(next(iter(self.stages.target.classes.values()))))
            if own:
                raise ValueError(f"characters.{name}.tags: {own} are the target's own pictures")
        return self

    @model_validator(mode="after")
    def _target_is_positive_class(self) -> "Params":
        names = self.stages.target.class_names
        if names[0] != self.target:
            raise ValueError(
                f"target is {self.target!r} but the first class of stages.target is {names[0]!r}; "
                f"make them the same (classes: {names})"
            )
        return self


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml.

    Raises:
        ParamsError: naming the file and each bad key (dotted path) with the reason.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ParamsError(f"params file not found: {path}") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path} must hold a mapping of sections, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        problems = validation_problems(error)
        raise ParamsError(f"{path} has {len(problems)} problem(s):\n" + "\n".join(f"  {p}" for p in problems)) \
            from None


def validation_problems(error: ValidationError) -> list[str]:
    """Each problem of a validation as `dotted.key: what is wrong (got value)`."""
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        message = message.removeprefix("Value error, ")
        problems.append(f"{key}: {message[:1].lower() + message[1:]} (got {item.get('input')!r})")
    return problems


def digest(*sections: BaseModel) -> str:
    """A short stable hash of parameter sections, stored with artifacts."""
    payload = json.dumps([s.model_dump(mode="json") for s in sections], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]
