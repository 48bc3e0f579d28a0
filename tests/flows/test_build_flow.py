"""`python -m flows.build`: one `build` flow run around `dvc repro`, each stage DVC runs as its child,
all on one real server (no temporary server per stage), named and tagged from what they do."""

import os
import sys
from pathlib import Path

import pytest

from tests.servers import prefect_server, quiet_environment, run
from tests.test_dvc import dvc_repo  # noqa: F401  (fixture: a git + DVC repository with tiny demo data)

pytestmark = pytest.mark.server


def flow_runs(api_url: str) -> list[dict]:
    import httpx

    response = httpx.post(f"{api_url}/flow_runs/filter", json={"sort": "EXPECTED_START_TIME_ASC", "limit": 50,
                                                              "offset": 0}, timeout=30)
    response.raise_for_status()
    return response.json()


def task_run(api_url: str, task_run_id: str) -> dict:
    import httpx

    response = httpx.get(f"{api_url}/task_runs/{task_run_id}", timeout=30)
    response.raise_for_status()
    return response.json()


def test_a_build_is_one_parent_run_with_the_stages_dvc_ran_as_children(dvc_repo, tmp_path):  # noqa: F811
    repo, dvc_environment, _ = dvc_repo
    with prefect_server(tmp_path / "prefect-home") as api_url:
        environment = quiet_environment(PREFECT_API_URL=api_url, PREFECT_HOME=str(tmp_path / "prefect-home"),
                                        PATH=dvc_environment["PATH"], **{
                                            name: dvc_environment[name] for name in dvc_environment
                                            if name.startswith("GIT_")})
        # From outside the venv's PATH, as a user who did not activate it: flows.build puts its Python first.
        environment["PATH"] = os.pathsep.join(p for p in environment["PATH"].split(os.pathsep)
                                              if Path(p) != Path(sys.executable).parent)
        result = run([sys.executable, "-m", "flows.build", "--", "shards"], environment, timeout=300, cwd=repo)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
        runs = flow_runs(api_url)
        parents = {run["id"]: task_run(api_url, run["parent_task_run_id"])["flow_run_id"]
                   for run in runs if run["parent_task_run_id"]}

    by_name = {flow_run["name"]: flow_run for flow_run in runs}
    assert set(by_name) == {"build: dvc repro shards", "ingest", "shards"}, sorted(by_name)
    build = by_name["build: dvc repro shards"]
    assert "build" in build["tags"] and build["state"]["type"] == "COMPLETED"
    for stage in ("ingest", "shards"):
        child = by_name[stage]
        assert child["state"]["type"] == "COMPLETED" and f"stage:{stage}" in child["tags"]
        assert parents[child["id"]] == build["id"]
    assert (repo / "data/shards/index.json").is_file()
