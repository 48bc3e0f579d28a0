"""mona ensemble: several models of one character saved as one, scoring the mean of their calibrated log-odds."""

import json

import numpy as np
import pytest

from mona_pipeline import cli
from mona_pipeline.ensemble import EnsembleError, combine, mean_log_odds
from mona_pipeline.inference import Scorer
from mona_pipeline.sort import sort_source
from mona_pipeline.trained import load_trained
from tests.conftest import colour_picture, make_colour_model
from tests.sort.conftest import sort_request


def with_temperature(folder, temperature: float):
    metadata = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps({**metadata, "temperature": temperature}))
    return folder


@pytest.fixture
def members(tmp_path):
    first = make_colour_model(tmp_path / "a")
    second = with_temperature(make_colour_model(tmp_path / "b", weights=(0.5, 0.3, -1.0)), 2.5)
    return first, second


def test_the_ensemble_scores_the_mean_of_its_members_calibrated_log_odds(members, tmp_path):
    import tensorflow as tf

    metadata = combine(list(members), tmp_path / "ensemble")
    assert (metadata.temperature, metadata.target, metadata.threshold) == (1.0, "mona", 0.9)
    pictures = tf.constant(np.random.default_rng(3).uniform(0, 255, (16, 32, 32, 3)).astype("float32"))
    alone = np.stack([Scorer(load_trained(folder))(pictures).numpy() for folder in members])
    together = Scorer(load_trained(tmp_path / "ensemble"))(pictures).numpy()
    assert np.allclose(together, mean_log_odds(alone), atol=1e-5)
    assert not np.allclose(together, alone.mean(axis=0), atol=1e-3)  # log-odds, not scores, are averaged
    recorded = json.loads((tmp_path / "ensemble" / "ensemble.json").read_text())
    assert [entry["temperature"] for entry in recorded] == [1.0, 2.5]


def test_a_sort_with_the_ensemble_keeps_what_both_members_call_her(members, tmp_path):
    combine(list(members), tmp_path / "ensemble")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "red.png").write_bytes(colour_picture((255, 0, 0), "PNG"))
    (inbox / "blue.png").write_bytes(colour_picture((0, 0, 255), "PNG"))
    summary = sort_source(sort_request(inbox, tmp_path / "out", tmp_path / "ensemble", tiling="off"))
    assert (summary.counts["keep"], summary.counts["drop"]) == (1, 1)
    assert (tmp_path / "out" / "keep" / "red.png").is_file()


def test_models_that_do_not_fit_together_are_refused_by_name(members, tmp_path, capsys):
    other = make_colour_model(tmp_path / "kaeya", target="kaeya")
    with pytest.raises(EnsembleError, match="target 'kaeya'"):
        combine([members[0], other], tmp_path / "ensemble")
    with pytest.raises(EnsembleError, match="at least two"):
        combine([members[0]], tmp_path / "ensemble")
    with pytest.raises(EnsembleError, match="one of the models"):
        combine(list(members), members[0])
    assert cli.main(["ensemble", str(members[0]), str(tmp_path / "nowhere"), "--out", str(tmp_path / "e")]) == 2
    assert "no trained model" in capsys.readouterr().err
    assert cli.main(["ensemble", *map(str, members), "--out", str(tmp_path / "e")]) == 0
    assert "ensemble of 2" in capsys.readouterr().out
