"""The nightly sort as a deployment, run end to end against a real `prefect server start`:

    python -m flows.sort serve --inbox INBOX --out OUT          # served: the process runs the flows
    prefect work-pool create mona-local --type process          # or: a pool, prefect.yaml, a worker
    prefect deploy --all && prefect worker start --pool mona-local

Each run is started as a user starts one (`prefect deployment run ... --watch`) and
must reach Completed with the pictures sorted. `serve` once failed every run it started
(`from __future__ import annotations` hid the parameter types from the run's process).
"""

import json

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
            "overrides": {"model": str(colour_model), "action": "copy", "run": "worker-test"}})

    assert kept(out) == ["p0.jpg", "p3.jpg", "p6.jpg"]
    assert len(list(inbox.iterdir())) == 9  # copy leaves the inbox as it was
