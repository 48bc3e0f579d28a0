"""A new user's first flow run: a fresh PREFECT_HOME, no server, none of the Makefile's variables."""

import pytest

from tests.servers import BIN, quiet_environment, run

FIRST_RUN = """
import flows  # sets the defaults before Prefect and TensorFlow are imported
import tensorflow
from prefect import flow
from prefect.settings import get_current_settings

@flow(name="first-run")
def first_run() -> int:
    return 41 + 1

print("result", first_run())
print("startup timeout", get_current_settings().server.ephemeral.startup_timeout_seconds)
"""


@pytest.mark.server
def test_a_first_flow_run_on_a_fresh_prefect_home_needs_no_extra_settings(tmp_path):
    environment = quiet_environment(PREFECT_HOME=str(tmp_path / "new-prefect-home"))
    for name in ("PREFECT_API_URL", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS",
                 "PREFECT_SERVER_ANALYTICS_ENABLED", "TF_CPP_MIN_LOG_LEVEL"):
        environment.pop(name, None)

    result = run([str(BIN / "python"), "-c", FIRST_RUN], environment, timeout=150, cwd=tmp_path)

    assert result.returncode == 0, result.stderr[-4000:]
    assert "result 42" in result.stdout
    # The temporary API's first start (database set-up) is given 90 s, not Prefect's 20 s.
    assert "startup timeout 90" in result.stdout
    # No alarming TensorFlow lines on a machine without a GPU.
    assert "Unable to register" not in result.stderr and "cuda" not in result.stderr.lower()
