"""The `prefect` command line against a real `prefect server start`: every listing works.

prefect 3.8.8 with fastapi 0.151+ answered `deployment ls`, `flow-run ls` ... with a 422
(`body.limit: Input should be a valid integer`); pyproject pins fastapi below that.
"""

import re
import pytest

from tests.servers import BIN, prefect_server, quiet_environment, run

pytestmark = pytest.mark.server

HELLO_FLOW = """
from prefect import flow

@flow(name="hello-cli")
def hello() -> int:
    return 1

hello()
"""


@pytest.fixture(scope="module")
def server_environment(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("prefect-home")
    with prefect_server(home) as api_url:
        yield quiet_environment(PREFECT_HOME=str(home), PREFECT_API_URL=api_url, COLUMNS="200")


def prefect(environment: dict[str, str], *arguments: str) -> str:
    result = run([str(BIN / "prefect"), *arguments], environment, timeout=60)
    assert result.returncode == 0, f"prefect {' '.join(arguments)} failed:\n{result.stdout}\n{result.stderr}"
    # The bug answered "422 Unprocessable Entity" (body.limit: Input should be a valid integer); a bare "422"
    # can be part of a run's UUID.
    assert not re.search(r"Unprocessable|\b422\b|body\.limit", result.stdout + result.stderr)
    return result.stdout


def test_every_listing_command_answers_against_a_real_server(server_environment):
    flow_run = run([str(BIN / "python"), "-c", HELLO_FLOW], server_environment, timeout=120)
    assert flow_run.returncode == 0, flow_run.stderr
    prefect(server_environment, "work-pool", "create", "mona-cli-test", "--type", "process")

    assert "hello-cli" in prefect(server_environment, "flow", "ls")
    assert "COMPLETED" in prefect(server_environment, "flow-run", "ls").upper()
    assert "mona-cli-test" in prefect(server_environment, "work-pool", "ls")
    prefect(server_environment, "deployment", "ls")
    prefect(server_environment, "artifact", "ls")
