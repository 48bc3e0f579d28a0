"""The nightly sort as a deployment, run end to end against a real `prefect server start`:

    python -m flows.sort serve --inbox INBOX --out OUT          # served: the process runs the flows
    prefect work-pool create mona-local --type process          # or: a pool, prefect.yaml, a worker
    prefect deploy --all && prefect worker start --pool mona-local

Each run is started as a user starts one (`prefect deployment run ... --watch`) and
must reach Completed with the pictures sorted. `serve` once failed every run it started
(`from __future__ import annotations` hid the parameter types from the run's process).
"""

import json
import time
import urllib.request

import pytest

from tests.conftest import colour_picture
from tests.servers import BIN, PROJECT, http_ok, prefect_server, quiet_environment, run, start_process

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server_environment(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("prefect-home")
    with prefect_server(home) as api_url:
        yield quiet_environment(PREFECT_HOME=str(home), PREFECT_API_URL=api_url, COLUMNS="200")


def make_inbox(folder):
    folder.mkdir()
    for index in range(9):
        colour = (220, 20, 20) if index % 3 == 0 else (20, 20, 220)
        (folder / f"p{index}.jpg").write_bytes(colour_picture(colour, size=(40 + index, 40)))
    return folder


def run_deployment(name: str, environment: dict[str, str], parameters: dict | None = None) -> str:
    command = [str(BIN / "prefect"), "deployment", "run", name, "--watch", "--watch-timeout", "150"]
    if parameters:
        command += ["--params", json.dumps(parameters)]
    result = run(command, environment, timeout=180)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "Completed" in result.stdout
    return result.stdout


def artifact_keys(api_url: str) -> set[str]:
    body = json.dumps({"sort": "CREATED_DESC", "limit": 200, "offset": 0}).encode()
    request = urllib.request.Request(f"{api_url}/artifacts/filter", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return {artifact["key"] for artifact in json.load(response) if artifact["key"]}


def flow_run_logs(api_url: str, deployment: str, state: str) -> list[str]:
    """The log lines of the deployment's newest run in that state."""
    runs = [r for r in flow_runs_of(deployment, api_url) if r["state_type"] == state]
    newest = max(runs, key=lambda r: r["expected_start_time"])
    body = json.dumps({"logs": {"flow_run_id": {"any_": [newest["id"]]}}, "limit": 200, "offset": 0,
                       "sort": "TIMESTAMP_ASC"}).encode()
    request = urllib.request.Request(f"{api_url}/logs/filter", data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return [entry["message"] for entry in json.load(response)]


def kept(out) -> list[str]:
    return sorted(path.name for path in (out / "keep").iterdir())


def test_a_served_deployment_runs_a_sort_to_completed(server_environment, colour_model, tmp_path):
    inbox, out = make_inbox(tmp_path / "inbox"), tmp_path / "sorted"
    command = [str(BIN / "python"), "-m", "flows.sort", "serve", "--inbox", str(inbox), "--out", str(out),
               "--model", str(colour_model), "--name", "inbox-served-test"]
    registered = http_ok(f"{server_environment['PREFECT_API_URL']}/deployments/name/sort/inbox-served-test")
    with start_process(command, registered, server_environment, timeout=120, cwd=tmp_path):
        run_deployment("sort/inbox-served-test", server_environment)

    assert kept(out) == ["p0.jpg", "p3.jpg", "p6.jpg"]
    assert sorted(path.name for path in inbox.iterdir()) == ["p1.jpg", "p2.jpg", "p4.jpg", "p5.jpg", "p7.jpg",
                                                             "p8.jpg"]  # the served nightly sort moves
    # Keyed by deployment and run: the served deployment's history is its own.
    assert "sort-inbox-served-test-nightly-inbox-summary" in artifact_keys(server_environment["PREFECT_API_URL"])


def test_the_prefect_yaml_deployment_runs_on_a_process_worker(server_environment, colour_model, tmp_path):
    inbox, out = make_inbox(tmp_path / "inbox"), tmp_path / "sorted"
    prefect = str(BIN / "prefect")
    created = run([prefect, "work-pool", "create", "mona-local", "--type", "process"], server_environment)
    assert created.returncode == 0, created.stdout + created.stderr
    # Deployed from the project folder, as the README says; no MONA_PIPELINE_HOME needed.
    deployed = run([prefect, "--no-prompt", "deploy", "--all"], server_environment, cwd=PROJECT, timeout=120)
    assert deployed.returncode == 0, deployed.stdout[-4000:] + deployed.stderr[-4000:]

    worker = [prefect, "worker", "start", "--pool", "mona-local", "--limit", "1"]
    with start_process(worker, lambda: True, server_environment, cwd=tmp_path):
        run_deployment("sort/nightly-inbox", server_environment, {
            "source": str(inbox), "out": str(out),
            "overrides": {"models": [str(colour_model)], "action": "copy", "run": "worker-test"}})
        # A user's mistake: a source that does not exist (nor its folder) is one line, not a traceback.
        refused = run([prefect, "deployment", "run", "sort/nightly-inbox", "--watch", "--watch-timeout", "150",
                       "--params", json.dumps({"source": str(tmp_path / "no" / "such"), "out": str(out),
                                               "overrides": {"models": [str(colour_model)]}})],
                      server_environment, timeout=180)
    assert "Refused" in refused.stdout, refused.stdout[-3000:]
    logs = flow_run_logs(server_environment["PREFECT_API_URL"], "sort/nightly-inbox", state="FAILED")
    assert any(f"source not found: {tmp_path / 'no' / 'such'}." in line for line in logs), "\n".join(logs)
    assert not any("Traceback" in line for line in logs), logs

    assert kept(out) == ["p0.jpg", "p3.jpg", "p6.jpg"]
    assert len(list(inbox.iterdir())) == 9  # copy leaves the inbox as it was
    assert "sort-nightly-inbox-worker-test-summary" in artifact_keys(server_environment["PREFECT_API_URL"])


def flow_runs_of(deployment: str, api_url: str) -> list[dict]:
    """Every flow run of a deployment (`flow/deployment`), as the API returns them."""
    with urllib.request.urlopen(f"{api_url}/deployments/name/{deployment}", timeout=10) as response:
        deployment_id = json.load(response)["id"]
    query = json.dumps({"flow_runs": {"deployment_id": {"any_": [deployment_id]}}}).encode()
    request = urllib.request.Request(f"{api_url}/flow_runs/filter", data=query,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_the_schedule_fires_and_a_worker_completes_the_scheduled_run(server_environment, colour_model, tmp_path):
    """No hand-triggered run: Prefect's own scheduler must create the run and a worker must finish it.

    The deployment is prefect.yaml's nightly-inbox as `prefect deploy` makes it, with its daily cron swapped
    for a 20-second interval (and the test's inbox); with SQLAlchemy 2.1 the server's scheduler fails
    (`Can't evaluate bulk DML statement`) and no scheduled run ever appears.
    """
    inbox, out = make_inbox(tmp_path / "inbox"), tmp_path / "sorted"
    prefect, api_url = str(BIN / "prefect"), server_environment["PREFECT_API_URL"]
    run([prefect, "work-pool", "create", "mona-scheduled", "--type", "process"], server_environment)
    parameters = {"source": str(inbox), "out": str(out),
                  "overrides": {"models": [str(colour_model)], "action": "copy", "run": "scheduled-test"}}
    deployed = run([prefect, "--no-prompt", "deploy", "--name", "nightly-inbox", "--pool", "mona-scheduled",
                    "--interval", "20", "--params", json.dumps(parameters)], server_environment, cwd=PROJECT,
                   timeout=120)
    assert deployed.returncode == 0, deployed.stdout[-4000:] + deployed.stderr[-4000:]
    assert "interval" in json.dumps(deployment_schedules("sort/nightly-inbox", api_url))

    worker = [prefect, "worker", "start", "--pool", "mona-scheduled", "--limit", "1"]
    environment = server_environment | {"PREFECT_WORKER_QUERY_SECONDS": "2"}
    deadline, runs = time.monotonic() + 240, []
    with start_process(worker, lambda: True, environment, cwd=tmp_path):
        while time.monotonic() < deadline:
            runs = flow_runs_of("sort/nightly-inbox", api_url)
            if any(r["auto_scheduled"] and r["state_type"] == "COMPLETED" for r in runs):
                break
            time.sleep(3)
    # auto_scheduled: created by the server's scheduler, not by `prefect deployment run` (earlier tests' runs)
    states = sorted((r["auto_scheduled"], r["state_type"], r["expected_start_time"]) for r in runs)
    assert any(r["auto_scheduled"] and r["state_type"] == "COMPLETED" for r in runs), \
        f"no scheduled run completed within 4 minutes; runs (auto_scheduled, state, start): {states}"
    assert kept(out) == ["p0.jpg", "p3.jpg", "p6.jpg"]


def deployment_schedules(deployment: str, api_url: str) -> list[dict]:
    """The deployment's schedules, as the API returns them."""
    with urllib.request.urlopen(f"{api_url}/deployments/name/{deployment}", timeout=10) as response:
        return json.load(response)["schedules"]
