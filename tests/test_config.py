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

    from mona_pipeline.config import StageParams

    with pytest.raises(ValidationError, match=message):
        StageParams(classes=classes)


def test_label_for_uses_wildcard_and_skips_unknown_tags():
    from mona_pipeline.config import StageParams

    target = StageParams(classes={"mona": ["mona"], "others": ["*"]})
    assert [target.label_for(t) for t in ("mona", "kaito", "anything")] == [0, 1, 1]
    gender = StageParams(classes={"female": ["mona"], "male": ["kaito"]})
    assert [gender.label_for(t) for t in ("mona", "kaito", "unlisted")] == [0, 1, -1]
