"""More characters than the target (params.characters): checked params, her labels from the shards, her model
trained from the look-alike stage and evaluated on her pictures, through the flows and the command line."""

import collections
import csv
import json
from pathlib import Path

import pytest
import tensorflow as tf
import yaml

from mona_pipeline import shards, train
from mona_pipeline.characters import character_counts, character_label
from mona_pipeline.config import CharacterParams, Params, ParamsError, load_params
from mona_pipeline.ingest import read_manifest
from mona_pipeline.models import BACKBONE
from mona_pipeline.trained import load_trained
from tests.conftest import write_params

SHIPPED = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())


@pytest.mark.parametrize("characters, words", [
    ({"mona": {"tags": ["stella"]}}, "characters.mona: the name is taken"),
    ({"lookalike": {"tags": ["stella"]}}, "characters.lookalike: the name is taken"),
    ({"../x": {"tags": ["stella"]}}, "a character's name is a folder name"),
    ({"zoe": {"tags": ["zoe"]}}, "characters.zoe.tags: ['zoe'] are not tags of stages.target"),
    ({"zoe": {"tags": ["mona"]}}, "characters.zoe.tags: ['mona'] are the target's own pictures"),
    ({"zoe": {"tags": []}}, "characters.zoe.tags"),
    ({"zoe": {"tags": ["stella"], "finetune_epochs": -1}}, "characters.zoe.finetune_epochs"),
])
def test_a_bad_character_is_named_when_the_params_are_read(tmp_path, characters, words):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({**SHIPPED, "characters": characters}, sort_keys=False))
    with pytest.raises(ParamsError, match="problem") as caught:
        load_params(path)
    assert words in str(caught.value)


def test_the_shipped_params_train_no_character_and_one_is_a_few_lines():
    assert Params.model_validate(SHIPPED).characters == {}
    stella = Params.model_validate({**SHIPPED, "characters": {"stella": {"tags": ["stella"]}}}).characters["stella"]
    assert stella == CharacterParams(tags=["stella"]) and stella.head_epochs + stella.finetune_epochs > 0


def test_her_label_is_her_tags_and_leaves_out_her_tiles_rejected_pictures_and_other_stages():
    label = character_label(CharacterParams(tags=["stella", "stella_alt"]))

    def of(path: str, label_target: int) -> int:
        return int(label({"path": tf.constant(path), "label_target": tf.constant(label_target, tf.int64)}))

    assert of("stella/a.jpg", 1) == 0 and of("stella_alt/learned/run/b.png", 1) == 0  # hers
    assert of("mona/a.jpg", 0) == 1 and of("rosa/a.jpg", 1) == 1  # the target and the others: her others
    assert of("rosa/a.jpg#tile0", 1) == 1  # another's tile stays a negative
    assert of("stella/a.jpg#tile0", 1) == -1  # her own tile may show her
    assert of("mona_rejected/learned/run/c.jpg", 1) == -1  # a false alarm for mona may be her
    assert of("extra_female/a.jpg", -1) == -1  # not a target-stage picture


def test_her_counts_come_from_the_shards_as_the_manifest_says(demo_project, tmp_path):
    _, params = demo_project
    with_tiles = params.shards.model_copy(update={"dir": tmp_path / "shards", "tile_negatives": 1})
    shards.write_shards(params.data, with_tiles, params.stages)
    rows = read_manifest(params.data.manifest_dir).to_pylist()
    stella = CharacterParams(tags=["stella"])
    for split in ("train", "validation"):
        in_split = [r for r in rows if r["split"] == split and r["label_target"] >= 0]
        hers = sum(r["tag"] == "stella" for r in in_split)
        # every other target-stage picture, and a tile of each training picture of the others but hers
        others = len(in_split) - hers + (split == "train") * sum(
            r["label_target"] == 1 and r["tag"] != "stella" for r in in_split)
        assert character_counts(with_tiles.dir, split, stella, ["stella", "others"]) == {"stella": hers,
                                                                                       "others": others}
        assert hers > 0 and others > hers
    # the batches carry the same labels
    batches = shards.make_dataset(with_tiles.dir, "validation", "target", 8, 32, training=False,
                                  label=character_label(stella))
    found = collections.Counter(int(value) for _, labels in batches for value in labels.numpy())
    assert dict(found) == {0: character_counts(with_tiles.dir, "validation", stella, ["s", "o"])["s"],
                           1: character_counts(with_tiles.dir, "validation", stella, ["s", "o"])["o"]}


def test_her_model_starts_from_the_lookalike_stage_and_is_judged_on_her_test_pictures(
        demo_project, tmp_path, prefect_harness, monkeypatch):
    from flows.evaluate_character import evaluate_character_flow
    from flows.train import train_flow

    _, params = demo_project
    with_her = Params.model_validate({**params.model_dump(mode="json"), "characters": {
        "stella": {"tags": ["stella"], "head_epochs": 1, "finetune_epochs": 1}}})
    params_file = write_params(tmp_path / "params.yaml", with_her)
    monkeypatch.chdir(tmp_path)  # models/ and reports/ are written relative to the working directory
    plan = train.plan_stage("stella", with_her, tmp_path / "models")
    assert plan.parent == tmp_path / "models/lookalike" and plan.data_stage == "target" and plan.character
    with pytest.raises(train.ConfigurationError, match="train stage 'lookalike' first"):
        train.check_configuration(plan, with_her)
    for stage in ("gender", "lookalike", "stella"):
        trained = train_flow(stage, params_file)
    assert trained["target"] == "stella" and trained["class_names"] == ["stella", "others"]
    assert trained["parent"] == "models/lookalike" and trained["threshold"] == with_her.stages.target.threshold
    network = load_trained(tmp_path / "models/stella").network
    assert network.get_layer(BACKBONE).count_params() == load_trained(
        tmp_path / "models/lookalike").network.get_layer(BACKBONE).count_params()

    table = evaluate_character_flow("stella", params_file)
    with open(with_her.data.test_dir / "labels.csv") as handle:
        labels = list(csv.DictReader(handle))
    hers = sum("stella" in row["characters"].split(";") for row in labels)
    full = json.loads((tmp_path / "reports/characters/stella/metrics_full.json").read_text())
    assert full["stella"]["test"]["target_pictures"] == hers > 0
    assert full["stella"]["test"]["pictures"] == len(labels) and table["stella"]["test"]["pictures"] == len(labels)
    assert full["stella"]["test"]["target_pictures"] != sum(int(row["target"]) for row in labels)  # not mona's
    headline = json.loads((tmp_path / "reports/characters/stella/metrics.json").read_text())
    assert {"f1", "precision", "recall"} <= set(headline["stella"]) and set(headline["train"]) == {"stella"}


def test_the_train_command_offers_the_characters_and_names_a_wrong_one(tmp_path, capsys):
    from flows.stage import stage_main
    from flows.train import dvc_stage, train_flow

    params = Params.model_validate({**SHIPPED, "characters": {"stella": {"tags": ["stella"]}}})
    path = write_params(tmp_path / "params.yaml", params)
    with pytest.raises(SystemExit) as stopped:
        stage_main(train_flow, stages=train.trainable, dvc_stage=dvc_stage, argv=["stela", "--params", str(path)])
    assert stopped.value.code == 2
    said = capsys.readouterr().err
    assert "invalid choice: 'stela'" in said and "'baseline', 'stella')" in said  # the choices, hers among them
    assert train.trainable(params) == ("gender", "lookalike", "target", "baseline", "stella")
    assert dvc_stage("stella", params) == "train_character@stella" and dvc_stage("target", params) == "train_target"
