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
    repo, env, dvc = new_dvc_project(tmp_path / "repo")
    params = tiny_params(Path("."))  # paths relative to the repository, as in the real params.yaml
    write_params(repo / "params.yaml", params)
    small = params.demo.model_copy(update={"pictures_per_character": 2, "target_pictures": 3, "test_pictures": 10})
    demo.generate_raw(small, repo / params.data.raw_dir)
    demo.generate_test(small, repo / params.data.test_dir)
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
    # Each stage starts Prefect's temporary server (no PREFECT_API_URL); it is said once per repro, not per stage.
    assert first.count("Starting temporary server") == 1 and "Stopping temporary server" not in first
    assert (repo / "data/manifest/manifest.parquet").is_file()
    assert (repo / "data/shards/index.json").is_file()
    second = _run(dvc + ["repro", "shards"], repo, env)
    assert "Running stage" not in second
    # Changing the shards section re-runs shards only.
    params = (repo / "params.yaml").read_text().replace("image_size: 40", "image_size: 36")
    (repo / "params.yaml").write_text(params)
    third = _run(dvc + ["repro", "shards"], repo, env)
    assert "Running stage 'shards'" in third and "Running stage 'ingest'" not in third


def local_imports(module_file: Path, root: Path) -> set[Path]:
    """Every file of the project's packages (mona_pipeline, flows) that running module_file imports,
    transitively, including imports inside functions and the packages' __init__.py files."""
    import ast

    def file_of(name: str) -> Path | None:
        base = root / Path(*name.split("."))
        return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None)

    def names_in(path: Path) -> set[str]:
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        return found

    seen, todo = set(), [module_file]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in names_in(path):
            if name.split(".")[0] not in ("mona_pipeline", "flows"):
                continue
            parts = name.split(".")
            for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__, a/b/__init__, a/b/c
                found = file_of(".".join(parts[:depth]))
                if found:
                    todo.append(found)
    return {p.relative_to(root) for p in seen}


def code_dep_problems(stages: dict, root: Path) -> dict[str, str]:
    """Per stage: the project files its command runs but its deps omit, and listed code it never runs."""
    problems = {}
    for name, stage in stages.items():
        stage = stage.get("do", stage)  # a foreach stage (the characters'): its template
        entry = stage["cmd"].split()[2]  # python -m flows.<module> ...
        runs = local_imports(root / Path(*entry.split(".")).with_suffix(".py"), root)
        listed = {Path(dep) for dep in stage["deps"] if dep.endswith(".py")}
        missing, unused = runs - listed, listed - runs
        if missing or unused:
            problems[name] = f"missing {sorted(map(str, missing))}, listed but not run {sorted(map(str, unused))}"
    return problems


def test_every_stage_lists_exactly_the_code_it_runs():
    import yaml

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert code_dep_problems(stages, REPO) == {}
    assert Path("mona_pipeline/preprocess.py") in local_imports(REPO / "flows/train.py", REPO)  # augment
    # The check can fail: drop one module from a stage's deps and it is named.
    stages["evaluate"]["deps"].remove("mona_pipeline/preprocess.py")
    assert "mona_pipeline/preprocess.py" in code_dep_problems(stages, REPO)["evaluate"]


def test_editing_preprocessing_makes_dvc_rerun_the_stages_that_use_it(dvc_repo):
    repo, env, dvc = dvc_repo
    _run(dvc + ["repro", "shards"], repo, env)
    assert "up to date" in _run(dvc + ["status", "shards"], repo, env)
    with open(repo / "mona_pipeline/preprocess.py", "a") as handle:
        handle.write("\n# an edit of the preprocessing\n")
    status = _run(dvc + ["status", "shards"], repo, env)
    assert "shards" in status and "modified:" in status and "mona_pipeline/preprocess.py" in status
    assert "ingest" not in status.split("shards:")[0]  # ingest does not run the preprocessing


def test_the_pipeline_is_the_models_and_their_evaluation_and_nothing_more():
    """`dvc repro` rebuilds the models and the evaluation; comparing seeds is DVC experiments' job."""
    import yaml

    pipeline = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert list(pipeline["stages"]) == ["ingest", "shards", "train_gender", "train_lookalike", "train_target",
                                        "train_character", "baseline", "evaluate", "evaluate_character"]
    # The characters' stages: one per entry of params.yaml's characters (none in the demo), each her model and
    # its evaluation.
    for stage in ("train_character", "evaluate_character"):
        assert pipeline["stages"][stage]["foreach"] == "${characters}"
    assert pipeline["stages"]["train_character"]["do"]["outs"] == ["models/${key}"]
    assert "models/lookalike" in pipeline["stages"]["train_character"]["do"]["deps"]
    assert pipeline["stages"]["evaluate_character"]["do"]["outs"] == ["reports/characters/${key}"]
    # Every training stage's curves are DVC plots (`dvc plots diff` overlays experiments); the one metrics file,
    # evaluate's, holds the test archive's numbers and then each stage's kept epoch (`dvc exp show`).
    for stage, dvc_stage in (("gender", "train_gender"), ("lookalike", "train_lookalike"),
                             ("target", "train_target"), ("baseline", "baseline")):
        assert pipeline["stages"][dvc_stage]["plots"] == [{f"reports/train/{stage}/plots/metrics": {"x": "step"}}]
        assert "metrics" not in pipeline["stages"][dvc_stage]
    assert pipeline["stages"]["evaluate"]["metrics"] == [{"reports/metrics.json": {"cache": False}}]
    assert pipeline["artifacts"]["target-model"] == {**pipeline["artifacts"]["target-model"], "path": "models/target",
                                                     "type": "model"}


@pytest.mark.server
def test_a_retarget_from_scratch_is_checked_trained_and_compared_over_a_seed_experiment(tmp_path):
    """docs/retarget.md's steps in a fresh DVC project: the demo's data out, one folder per tag, labels.csv,
    the shipped params.yaml edited for aria, `mona check`, `dvc repro`. The traps stop `dvc repro` at its
    first stage before any work; once fixed, the pipeline trains aria's models, a seed experiment
    (`dvc exp run --queue -S train.seed=...`) is listed beside the workspace and `mona compare` pairs them."""
    import json

    import yaml

    from tests.servers import prefect_server
    from tests.test_check import RETARGET, break_labels_for_another_character, make_project

    repo, env, dvc = new_dvc_project(tmp_path / "repo")
    make_project(repo)  # data/raw/<tag>/ for aria's cast, data/test/ labelled for aria
    raw = yaml.safe_load((REPO / "params.yaml").read_text())  # the shipped file, edited as the guide says ...
    raw["target"] = RETARGET["target"]
    for stage, section in RETARGET["stages"].items():
        raw["stages"][stage]["classes"] = section["classes"]
        raw["stages"][stage].update(head_epochs=0, finetune_epochs=1)  # ... and made tiny to run in a test
    raw["model"].update(architecture="compactcnn", image_size=32)
    raw["shards"]["image_size"] = 40
    raw["train"].update(batch_size=8, augmentation="basic")
    raw["evaluate"]["timing_pictures"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    mona = [str(Path(sys.executable).parent / "mona")]

    break_labels_for_another_character(repo)  # the demo's labels left in place
    checked = subprocess.run(mona + ["check", "--quick"], cwd=repo, env=env, capture_output=True, text=True)
    assert checked.returncode == 1 and "its labels are not for 'aria'" in checked.stdout
    stopped = subprocess.run(dvc + ["repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert stopped.returncode != 0 and "the project's set-up has errors; nothing was run" in stopped.stderr
    assert not (repo / "data/manifest").exists() and "temporary server" not in stopped.stdout + stopped.stderr

    shutil.rmtree(repo / "data")
    make_project(repo, test={"aria": 3, "bella": 2, "dan": 3})  # labels for aria again (bella's in characters)
    with_bella = {**raw, "characters": {"bella": {"tags": ["bella"], "head_epochs": 0, "finetune_epochs": 1}}}
    (repo / "params.yaml").write_text(yaml.safe_dump(with_bella, sort_keys=False))  # make_project wrote its own
    checked = subprocess.run(mona + ["check"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "0 errors, 0 warnings" in checked.stdout and "dvc repro would run 9 stages:" in checked.stdout
    assert "train_character@bella" in checked.stdout and "evaluate_character@bella" in checked.stdout
    assert "compute: CPU only" in checked.stdout or "compute: 1 GPU" in checked.stdout
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))  # the seed experiment: aria alone
    _run(dvc + ["add", "-q", "data/raw", "data/test"], repo, env)
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "aria's pictures"], repo, env)
    with prefect_server(tmp_path / "prefect-home") as api_url:  # one server for every stage, not one each
        env = env | {"PREFECT_API_URL": api_url, "PREFECT_HOME": str(tmp_path / "prefect-home")}
        run_seed_experiment(repo, env, dvc)
        # Then bella joins: dvc repro runs her two stages (dvc.yaml's foreach) and nothing else.
        (repo / "params.yaml").write_text(yaml.safe_dump(with_bella, sort_keys=False))
        added = _run(dvc + ["repro"], repo, env)
        assert [line for line in added.splitlines() if line.startswith("Running stage")] == [
            "Running stage 'train_character@bella':", "Running stage 'evaluate_character@bella':"]
    metadata = json.loads((repo / "models/target/metadata.json").read_text())
    assert metadata["target"] == "aria" and metadata["class_names"] == ["aria", "others"]
    bella = json.loads((repo / "models/bella/metadata.json").read_text())
    assert bella["target"] == "bella" and bella["parent"] == "models/lookalike"
    judged = json.loads((repo / "reports/characters/bella/metrics_full.json").read_text())
    assert judged["bella"]["test"]["target_pictures"] == 2


def new_dvc_project(repo: Path) -> tuple[Path, dict, list[str]]:
    """The project's code and dvc.yaml in a new git + DVC repository, with no data yet."""
    repo.mkdir()
    for item in ("dvc.yaml", ".dvcignore", ".gitignore", "mona_pipeline", "flows"):
        source = REPO / item
        (shutil.copytree(source, repo / item, ignore=shutil.ignore_patterns("__pycache__"))
         if source.is_dir() else shutil.copy(source, repo / item))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}
    env.pop("PREFECT_API_URL", None)  # each stage's flow runs on Prefect's temporary local API
    dvc = [sys.executable, "-m", "dvc"]
    _run(["git", "init", "-q"], repo, env)
    _run(dvc + ["init", "-q"], repo, env)
    return repo, env, dvc


def run_seed_experiment(repo: Path, env: dict, dvc: list[str]) -> None:
    import json

    _run(dvc + ["repro"], repo, env)
    assert "up to date" in _run(dvc + ["status"], repo, env).lower()
    _run(["git", "add", "-A"], repo, env)
    _run(["git", "commit", "-qm", "pipeline"], repo, env)
    _run(dvc + ["exp", "run", "--queue", "-S", "train.seed=1", "-n", "seed-1"], repo, env)
    _run(dvc + ["exp", "run", "--run-all", "--jobs", "1"], repo, env)

    listed = subprocess.run(dvc + ["exp", "show", "--json"], cwd=repo, env=env, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    commits = json.loads(listed.stdout)
    experiments = [e for commit in commits for e in commit.get("experiments") or []]
    assert [e["name"] for e in experiments] == ["seed-1"]
    metrics = experiments[0]["revs"][0]["data"]["metrics"]["reports/metrics.json"]["data"]
    assert set(metrics["train"]) == {"gender", "lookalike", "target", "baseline"}
    assert set(metrics["train"]["gender"]) == {"accuracy", "val_accuracy"}
    assert {"f1", "precision", "recall"} <= set(metrics["three_stage"])
    assert experiments[0]["revs"][0]["data"]["params"]["params.yaml"]["data"]["train"]["seed"] == 1
    # The workspace (seed 42) and seed-1 are one variant over two seeds.
    compared = subprocess.run([str(Path(sys.executable).parent / "mona"), "compare"], cwd=repo, env=env,
                              capture_output=True, text=True, timeout=120)
    assert compared.returncode == 0, compared.stderr
    assert "seeds 1, 42" in compared.stdout and "| f1 |" in compared.stdout


def params_sections_read(module_file: Path, root: Path) -> set[str]:
    """The params.yaml sections the code a stage runs reads: every `params.<section>` in its flow module and
    the library modules it runs (not flows/stage.py, which reads train.seed only to name a flow run)."""
    import ast

    sections = set()
    for path in local_imports(module_file, root):
        if path.parts[0] != "mona_pipeline" and path != module_file.relative_to(root):
            continue
        for node in ast.walk(ast.parse((root / path).read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "params":
                sections.add(node.attr)
    return sections


# Reads no output depends on: one training module serves the training stages, so it reads sections that only
# another stage's outputs depend on (target: the target stage's name for its model; characters: whether a name
# is a character's) or that only a message names (data.raw_dir, in "add pictures to ... under data/raw").
# One evaluation module serves evaluate and evaluate_character: only the latter judges by a character's tags and
# the look-alike stage's classes.
NOT_OUTPUT_READS = {stage: {"data", "target", "characters"}
                    for stage in ("train_gender", "train_lookalike", "train_target", "baseline", "train_character")}
NOT_OUTPUT_READS["evaluate"] = {"characters", "stages"}
NOT_OUTPUT_READS["ingest"] = {"characters"}  # the set-up check looks their folders over; the manifest is all tags


def params_problems(stages: dict, root: Path) -> dict[str, str]:
    """Per stage: params sections its code reads that dvc.yaml does not list, and listed ones it never reads."""
    from mona_pipeline.config import Params

    problems = {}
    for name, stage in stages.items():
        stage = stage.get("do", stage)  # a foreach stage (the characters'): its template
        read = params_sections_read(root / Path(*stage["cmd"].split()[2].split(".")).with_suffix(".py"), root)
        read &= set(Params.model_fields)  # `params.model_copy(...)` and friends are not sections
        read -= NOT_OUTPUT_READS.get(name, set()) - {entry.split(".")[0] for entry in stage.get("params", [])}
        listed = {entry.split(".")[0] for entry in stage.get("params", [])}
        if read - listed or listed - read:
            problems[name] = f"read, not listed {sorted(read - listed)}; listed, not read {sorted(listed - read)}"
    return problems


def test_every_stage_lists_the_params_sections_its_code_reads():
    import yaml

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert params_problems(stages, REPO) == {}
    stages["evaluate"]["params"].remove("tiling")  # the check can fail
    assert "read, not listed ['tiling']" in params_problems(stages, REPO)["evaluate"]
