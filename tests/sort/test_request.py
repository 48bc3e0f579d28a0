"""The sort request: built in one place from params.yaml plus overrides, by the CLI and the flow alike."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from mona_pipeline.config import MAX_IMAGE_PIXELS, SortParams, TilingParams
from mona_pipeline.errors import UserError
from mona_pipeline.sort import SortOverrides, SortRequest, build_request, overrides_from
from mona_pipeline.sort.request import SettingsError
from tests.conftest import tiny_params


def test_params_file_values_apply_and_overrides_win(tmp_path):
    params = tiny_params(tmp_path)
    params = params.model_copy(update={
        "sort": SortParams(action="move", review_from=0.4, batch_size=16, chunk_size=100),
        "data": params.data.model_copy(update={"max_image_pixels": 1234})})
    request = build_request(params, "inbox", Path("out"), SortOverrides(action="link", confidence=0.8))
    assert (request.action, request.confidence, request.review_from) == ("link", 0.8, 0.4)
    assert (request.batch_size, request.chunk_size, request.max_image_pixels) == (16, 100, 1234)
    assert request.models == [Path("models/target")] and request.source == str(Path("inbox").resolve())


def test_without_a_params_file_the_built_in_defaults_apply():
    request = build_request(None, "inbox", Path("out"))
    assert request.model_dump(exclude={"source", "out", "model", "run", "max_image_pixels", "tiles"}) == \
        SortParams().model_dump()
    assert request.max_image_pixels == MAX_IMAGE_PIXELS and request.tiling_params == TilingParams()


def test_the_tiling_grid_comes_from_params_and_a_run_chooses_only_the_mode(tmp_path):
    params = tiny_params(tmp_path)
    params = params.model_copy(update={"tiling": TilingParams(scales=[0.4], auto_from=0.02)})
    request = build_request(params, "inbox", Path("out"))
    assert request.tiling_params == params.tiling  # mode auto, the file's grid and rule
    request = build_request(params, "inbox", Path("out"), SortOverrides(tiling="off"))
    assert request.tiling_params.mode == "off" and request.tiling_params.scales == [0.4]
    assert "tiles" not in SortOverrides.model_fields  # the grid is the project's, not a run form's box


def test_overrides_are_every_request_setting_and_optional():
    assert set(SortOverrides.model_fields) == set(SortRequest.model_fields) - {"source", "out", "tiles"}
    assert SortOverrides().model_dump() == dict.fromkeys(SortOverrides.model_fields)
    assert SortOverrides.model_fields["action"].description == SortParams.model_fields["action"].description


def test_overrides_from_a_namespace_take_only_known_names():
    import argparse

    namespace = argparse.Namespace(action="none", batch_size=None, quiet=True, source="x")
    assert overrides_from(namespace).model_dump(exclude_none=True) == {"action": "none"}


@pytest.mark.parametrize("overrides, message", [
    ({"confidence": 1.5}, r"^sort setting confidence: input should be less than or equal to 1 \(got 1.5\)$"),
    ({"action": "shred"}, r"^sort setting action: input should be 'copy', 'move', 'link', 'delete' or 'none'"),
    ({"batch_size": 0}, "sort setting batch_size: input should be greater than or equal to 1 \\(got 0\\)"),
    ({"confidence": 0.5, "review_from": 0.7}, "review_from \\(0.7\\) must be below confidence \\(0.5\\)"),
])
def test_bad_overrides_are_one_line_naming_the_setting_and_the_value(overrides, message):
    with pytest.raises(SettingsError, match=message) as raised:
        build_request(None, "inbox", Path("out"), overrides)
    assert "\n" not in str(raised.value) and isinstance(raised.value, UserError)


def test_an_unknown_override_is_an_error():
    with pytest.raises(ValidationError, match="batch_sise"):
        SortOverrides(batch_sise=3)
