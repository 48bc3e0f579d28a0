"""The learn flow, run for real against a temporary Prefect API: a review's verdicts into data/raw."""

from flows.learn import learn_flow
from mona_pipeline.review import verdicts
from mona_pipeline.sort.journal import open_run
from tests.conftest import tiny_params, write_params
from tests.flows.test_flows import _artifact_data
from tests.review.conftest import rows_by_name, sorted_run  # noqa: F401 (a fixture)


def test_the_learn_flow_adds_the_verdicts_and_says_how_to_retrain(sorted_run, tmp_path, prefect_harness):  # noqa: F811
    run_dir, _, _ = sorted_run
    with open_run(run_dir) as journal:
        ids = rows_by_name(journal)
        verdicts.mark(journal, ids["pink/0.png"], "yes", queued=True)
        verdicts.mark(journal, ids["red/1.png"], "no", queued=True)
    params_file = write_params(tmp_path / "params.yaml", tiny_params(tmp_path, data={"raw_dir": "raw"}))
    lines = learn_flow(run_dir, params_file=params_file)
    assert lines[0].startswith("1 pictures of mona added") and lines[1].startswith("1 rejected pictures")
    assert len([path for path in (tmp_path / "raw").rglob("*.png")]) == 2
    assert f"dvc add {tmp_path / 'raw'} && dvc repro" in _artifact_data("learn")
    assert learn_flow(run_dir, params_file=params_file)[2] == "2 already learned"  # twice: nothing copied again
