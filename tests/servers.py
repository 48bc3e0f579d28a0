"""Real servers for the tests that run things the way users do: started on 127.0.0.1, stopped after.

    with start_process(["dask", "scheduler", ...], ready=port_open(port)) as process: ...

Each server is its own process group, so stopping it also stops what it started
(a Prefect server's workers, a Dask nanny's worker processes).
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

BIN = Path(sys.executable).parent  # the venv's prefect, dask, moto_server, mona
PROJECT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_open(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        with socket.socket() as probe:
            probe.settimeout(0.5)
            return probe.connect_ex(("127.0.0.1", port)) == 0
    return ready


def http_ok(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False
    return ready


def quiet_environment(**extra: str) -> dict[str, str]:
    """The test process's environment for a child: offline, quiet, the project importable."""
    environment = dict(os.environ)
    environment.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", DVC_NO_ANALYTICS="1",
                       PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="90", TF_CPP_MIN_LOG_LEVEL="3",
                       PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT), environment.get("PYTHONPATH")])))
    environment.update(extra)
    return environment


@contextlib.contextmanager
def start_process(command: list[str], ready: Callable[[], bool], environment: dict[str, str] | None = None,
                  timeout: float = 90.0, cwd: Path | None = None) -> Iterator[subprocess.Popen]:
    """Start a server, wait until `ready()`, yield it, then stop its whole process group.

    Raises:
        RuntimeError: the process exited, or was not ready within `timeout` seconds; with its log.
    """
    log = tempfile.TemporaryFile()
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment or quiet_environment(),
                               cwd=cwd, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not ready():
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"{' '.join(command)} did not start (exit code {process.poll()}):\n"
                                   + log.read().decode(errors="replace")[-4000:])
            time.sleep(0.3)
        yield process
    finally:
        stop_process(process)
        log.close()


def stop_process(process: subprocess.Popen, grace: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `grace` seconds."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # children that outlived their parent
    process.wait()


@contextlib.contextmanager
def prefect_server(home: Path) -> Iterator[str]:
    """A real `prefect server start` on a free loopback port with its own PREFECT_HOME; yields the API URL."""
    port = free_port()
    environment = quiet_environment(PREFECT_HOME=str(home), PREFECT_UI_ENABLED="false")
    environment.pop("PREFECT_API_URL", None)
    command = [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with start_process(command, http_ok(f"http://127.0.0.1:{port}/api/health"), environment, timeout=120):
        yield f"http://127.0.0.1:{port}/api"


def run(command: list[str], environment: dict[str, str], timeout: float = 180.0,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a command to its end; its output is kept for the assertion message."""
    return subprocess.run(command, env=environment, cwd=cwd, capture_output=True, text=True, timeout=timeout)
