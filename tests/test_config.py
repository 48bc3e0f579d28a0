from pathlib import Path

import pytest

from mona_pipeline.config import ParamsError, load_params

REPO = Path(__file__).resolve().parents[1]


def test_repository_params_file_is_valid():
    params = load_params(REPO / "params.yaml")
    assert params.target == "mona"
    assert params.stages.target.class_names == ["mona", "others"]
    assert params.data.validation_fraction == pytest.approx(0.2)


def test_unknown_key_is_named(tmp_path):
    text = (REPO / "params.yaml").read_text().replace("  batch_size: 32", "  batch_sise: 32")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError, match=r"train\.batch_sise: unknown key"):
        load_params(tmp_path / "params.yaml")


def test_bad_type_is_named(tmp_path):
    text = (REPO / "params.yaml").read_text().replace("  batch_size: 32", "  batch_size: lots")
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError, match=r"train\.batch_size"):
        load_params(tmp_path / "params.yaml")


def test_target_must_be_first_class_of_target_stage(tmp_path):
    text = (REPO / "params.yaml").read_text().replace("target: mona", "target: stella", 1)
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(ParamsError, match="first class of stages.target is 'mona'"):
        load_params(tmp_path / "params.yaml")


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ParamsError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("target: [unclosed")
    with pytest.raises(ParamsError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")


@pytest.mark.parametrize("classes, message", [
    ({"a": ["x"]}, "exactly two classes"),
    ({"a": ["x"], "b": []}, "lists no folder tags"),
    ({"a": ["x"], "b": ["x"]}, "in both classes"),
    ({"a": ["*"], "b": ["*"]}, "only one class"),
])
def test_stage_classes_are_checked(classes, message):
    from pydantic import ValidationError

    from mona_pipeline.config import STAGE_DEFAULTS, StageParams

    with pytest.raises(ValidationError, match=message):
        StageParams(**STAGE_DEFAULTS["target"] | {"classes": classes})


def test_label_for_uses_wildcard_and_skips_unknown_tags():
    from mona_pipeline.config import STAGE_DEFAULTS, StageParams

    target = StageParams(**STAGE_DEFAULTS["target"] | {"classes": {"mona": ["mona"], "others": ["*"]}})
    assert [target.label_for(t) for t in ("mona", "kaito", "anything")] == [0, 1, 1]
    gender = StageParams(**STAGE_DEFAULTS["gender"] | {"classes": {"female": ["mona"], "male": ["kaito"]}})
    assert [gender.label_for(t) for t in ("mona", "kaito", "unlisted")] == [0, 1, -1]


def test_rejected_pictures_are_the_target_stages_negatives_and_no_other_stages():
    from mona_pipeline.config import STAGE_DEFAULTS, StageParams, TargetStageParams, rejected_tag

    target = TargetStageParams(**STAGE_DEFAULTS["target"] | {"classes": {"mona": ["mona"], "others": ["*"]}})
    assert rejected_tag("mona") == "mona_rejected"
    assert target.label_for("mona_rejected") == 1
    assert target.label_for("kaeya_rejected") == -1  # another target's: not taken by '*'
    gender = StageParams(**STAGE_DEFAULTS["gender"] | {"classes": {"female": ["*"], "male": ["kaito"]}})
    assert gender.label_for("mona_rejected") == -1 and gender.label_for("stella") == 0


def test_params_yaml_restates_every_default_and_nothing_else():
    """One default per setting: the code's defaults are the shipped values and params.yaml says them again,
    every key of every section (the stages' classes, the demo cast's tags, aside)."""
    import yaml

    from mona_pipeline.config import STAGE_DEFAULTS, Params

    raw = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    defaults = Params().model_dump(mode="json")
    assert list(raw) == list(defaults), "params.yaml's sections are Params' sections, in order"
    for section, value in raw.items():
        if section == "stages":
            for stage, settings in value.items():
                expected = defaults["stages"][stage]
                assert {k: v for k, v in settings.items() if k != "classes"} == \
                    {k: v for k, v in expected.items() if k != "classes"}, f"stages.{stage}"
                assert settings["classes"] == STAGE_DEFAULTS[stage]["classes"]  # the demo cast
        else:
            assert value == defaults[section], f"params.yaml's {section} section is not its defaults"


def test_a_stage_given_in_part_keeps_its_own_defaults():
    from mona_pipeline.config import STAGE_DEFAULTS, Params

    params = Params.model_validate({"stages": {"target": {"finetune_epochs": 2}}})
    assert params.stages.target.finetune_epochs == 2
    assert params.stages.target.head_epochs == STAGE_DEFAULTS["target"]["head_epochs"]
    assert params.stages.gender.finetune_epochs == STAGE_DEFAULTS["gender"]["finetune_epochs"]
