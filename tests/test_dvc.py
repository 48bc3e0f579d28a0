"""`dvc repro` of the ingest and shards stages in a temporary git + DVC repository."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mona_pipeline import demo
from tests.conftest import tiny_params, write_params

REPO = Path(__file__).resolve().parents[1]


def _run(args, cwd, env):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


@pytest.fixture
def dvc_repo(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for item in ("dvc.yaml", ".dvcignore", ".gitignore", "mona_pipeline", "flows"):
        source = REPO / item
        (shutil.copytree(source, repo / item, ignore=shutil.ignore_patterns("__pycache__"))
         if source.is_dir() else shutil.copy(source, repo / item))
    params = tiny_params(Path("."))  # paths relative to the repository, as in the real params.yaml
    write_params(repo / "params.yaml", params)
    small = params.demo.model_copy(update={"pictures_per_character": 2, "target_pictures": 3, "test_pictures": 10})
    demo.generate_raw(small, repo / params.data.raw_dir)
    demo.generate_test(small, repo / params.data.test_dir)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("PREFECT_API_URL", None)  # each stage's flow runs on Prefect's temporary local API
    dvc = [sys.executable, "-m", "dvc"]
    _run(["git", "init", "-q"], repo, env)
    _run(dvc + ["init", "-q"], repo, env)
    _run(dvc + ["add", "-q", "data/raw", "data/test"], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "data"], repo, env)
    return repo, env, dvc


def test_repro_builds_manifest_and_shards_then_does_nothing(dvc_repo):
    repo, env, dvc = dvc_repo
    dag = _run(dvc + ["dag", "shards"], repo, env)
    assert "ingest" in dag and "shards" in dag
    first = _run(dvc + ["repro", "shards"], repo, env)
    assert "Running stage 'ingest'" in first and "Running stage 'shards'" in first
    assert (repo / "data/manifest/manifest.parquet").is_file()
    assert (repo / "data/shards/index.json").is_file()
    second = _run(dvc + ["repro", "shards"], repo, env)
    assert "Running stage" not in second
    # Changing the shards section re-runs shards only.
    params = (repo / "params.yaml").read_text().replace("image_size: 40", "image_size: 36")
    (repo / "params.yaml").write_text(params)
    third = _run(dvc + ["repro", "shards"], repo, env)
    assert "Running stage 'shards'" in third and "Running stage 'ingest'" not in third
