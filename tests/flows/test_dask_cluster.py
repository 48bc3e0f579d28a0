"""The sort flow on a real Dask cluster, the way the README tells users to run it:

    dask scheduler --host 127.0.0.1 --port PORT
    dask worker tcp://127.0.0.1:PORT --nworkers 2 --preload flows.sort
    python -m flows.sort SOURCE --out OUT --dask tcp://127.0.0.1:PORT

Scheduler, workers and the flow are separate processes sharing this disk. The chunks'
tasks must be importable by module name on the workers: a flow whose tasks lived in
`__main__` (the module `python -m` runs) failed there with "Can't get attribute".
"""

import pytest

from tests.conftest import colour_picture
from tests.servers import BIN, free_port, port_open, quiet_environment, run, start_process

pytestmark = pytest.mark.server


@pytest.fixture
def dask_cluster(tmp_path) -> str:
    """A scheduler and a worker process with two worker processes of one thread; yields the address."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    environment = quiet_environment(DASK_DISTRIBUTED__WORKER__DAEMON="false")
    scheduler = [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    # --preload: each worker imports the flow module (and TensorFlow) while it starts, not at its first chunk.
    workers = [str(BIN / "dask"), "worker", address, "--nworkers", "2", "--nthreads", "1", "--host", "127.0.0.1",
               "--no-dashboard", "--preload", "flows.sort", "--local-directory", str(tmp_path / "dask-worker-space")]
    with start_process(scheduler, port_open(port), environment, cwd=tmp_path):
        with start_process(workers, lambda: True, environment, cwd=tmp_path):
            yield address


def test_sort_flow_runs_on_an_external_scheduler_with_separate_workers(dask_cluster, colour_model, tmp_path):
    pile = tmp_path / "pile"
    pile.mkdir()
    for index in range(24):
        colour = (220, 20, 20) if index % 3 == 0 else (20, 20, 220)
        (pile / f"p{index:02d}.jpg").write_bytes(colour_picture(colour, size=(40 + index, 40)))
    out = tmp_path / "out"
    environment = quiet_environment(PREFECT_HOME=str(tmp_path / "prefect-home"))
    environment.pop("PREFECT_API_URL", None)

    result = run([str(BIN / "python"), "-m", "flows.sort", str(pile), "--out", str(out),
                  "--model", str(colour_model), "--chunk-size", "6", "--dask", dask_cluster],
                 environment, timeout=240, cwd=tmp_path)

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    assert sorted(path.name for path in (out / "keep").iterdir()) == [f"p{i:02d}.jpg" for i in range(0, 24, 3)]
    # The scheduler unpickled the chunk tasks (so imported flows.sort) without loading the model code.
    from distributed import Client

    with Client(dask_cluster, timeout=30) as client:
        loaded = client.run_on_scheduler(lambda: sorted({name.split(".")[0] for name in __import__("sys").modules}))
    assert "flows" in loaded and not {"tensorflow", "keras", "tensorflow_io"} & set(loaded)


def test_the_flow_module_imports_without_tensorflow(tmp_path):
    """What a Dask scheduler host needs: flows.sort must import with TensorFlow and Keras absent."""
    blocker = ("import sys, importlib.abc\n"
               "class Block(importlib.abc.MetaPathFinder):\n"
               "    def find_spec(self, name, path, target=None):\n"
               "        if name.split('.')[0] in ('tensorflow', 'keras', 'tensorflow_io'):\n"
               "            raise ImportError(f'blocked: {name}')\n"
               "sys.meta_path.insert(0, Block())\n"
               "import flows.sort\n"
               "print('imported')\n")
    result = run([str(BIN / "python"), "-c", blocker], quiet_environment(), timeout=120, cwd=tmp_path)
    assert result.returncode == 0 and "imported" in result.stdout, result.stderr[-3000:]
