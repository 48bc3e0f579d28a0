"""Flow runs are named and tagged from what they do, not with Prefect's random words."""

from pathlib import Path

from prefect import flow

from flows.stage import run_stage_flow, stage_run_name
from tests.conftest import tiny_params, write_params


@flow(name="train", flow_run_name=stage_run_name)
def fake_train(stage: str, params_file: Path = Path("params.yaml")) -> str:
    return stage


def _flow_run(state):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(state.state_details.flow_run_id)


def test_a_training_run_is_named_after_its_stage_and_seed(tmp_path, prefect_harness):
    params = tiny_params(tmp_path)
    params_file = write_params(tmp_path / "params.yaml", params)
    state = fake_train("gender", params_file, return_state=True)
    assert _flow_run(state).name == f"train gender seed {params.train.seed}"


def test_a_stage_run_carries_its_stage_tag(tmp_path, prefect_harness):
    params_file = write_params(tmp_path / "params.yaml", tiny_params(tmp_path))
    state = run_stage_flow(fake_train.with_options(), {"stage": "lookalike", "params_file": params_file,
                                                      "return_state": True}, ["stage", "stage:train_lookalike"])
    assert {"stage", "stage:train_lookalike"} <= set(_flow_run(state).tags)
