"""The sort request: built in one place from params.yaml plus overrides, by the CLI and the flow alike."""

from pathlib import Path

import pytest
from pydantic import ValidationError

from mona_pipeline.config import MAX_IMAGE_PIXELS, SortParams
from mona_pipeline.sort import SortOverrides, SortRequest, build_request, overrides_from
from tests.conftest import tiny_params


def test_params_file_values_apply_and_overrides_win(tmp_path):
    params = tiny_params(tmp_path)
    params = params.model_copy(update={
        "sort": SortParams(action="move", review_from=0.4, batch_size=16, chunk_size=100),
        "data": params.data.model_copy(update={"max_image_pixels": 1234})})
    request = build_request(params, "inbox", Path("out"), SortOverrides(action="link", confidence=0.8))
    assert (request.action, request.confidence, request.review_from) == ("link", 0.8, 0.4)
    assert (request.batch_size, request.chunk_size, request.max_image_pixels) == (16, 100, 1234)
    assert request.model == Path("models/target") and request.source == "inbox"


def test_without_a_params_file_the_built_in_defaults_apply():
    request = build_request(None, "inbox", Path("out"))
    assert request.model_dump(exclude={"source", "out", "model", "run", "max_image_pixels"}) == \
        SortParams().model_dump()
    assert request.max_image_pixels == MAX_IMAGE_PIXELS


def test_overrides_are_every_request_setting_and_optional():
    assert set(SortOverrides.model_fields) == set(SortRequest.model_fields) - {"source", "out"}
    assert SortOverrides().model_dump() == dict.fromkeys(SortOverrides.model_fields)
    assert SortOverrides.model_fields["action"].description == SortParams.model_fields["action"].description


def test_overrides_from_a_namespace_take_only_known_names():
    import argparse

    namespace = argparse.Namespace(action="none", batch_size=None, quiet=True, source="x")
    assert overrides_from(namespace).model_dump(exclude_none=True) == {"action": "none"}


@pytest.mark.parametrize("overrides, message", [
    ({"confidence": 1.5}, "less than or equal to 1"),
    ({"action": "shred"}, "'copy', 'move', 'link', 'delete' or 'none'"),
    ({"batch_size": 0}, "greater than or equal to 1"),
    ({"confidence": 0.5, "review_from": 0.7}, "must be below confidence"),
])
def test_bad_overrides_name_the_problem(overrides, message):
    with pytest.raises(ValidationError, match=message):
        build_request(None, "inbox", Path("out"), overrides)


def test_an_unknown_override_is_an_error():
    with pytest.raises(ValidationError, match="batch_sise"):
        SortOverrides(batch_sise=3)
