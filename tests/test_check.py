"""`mona check` catches each trap of a retarget before any stage runs, and dvc repro's first stage stops on them."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mona_pipeline.check import check_project
from mona_pipeline.cli import main
from mona_pipeline.config import Params
from tests.conftest import picture_bytes

# A new cast (docs/retarget.md's example): aria is the target, bella her look-alike.
CAST = {"aria": 30, "bella": 30, "cora": 30, "dan": 26, "eli": 26}
RETARGET = {
    "target": "aria",
    "stages": {
        "gender": {"classes": {"female": ["aria", "bella", "cora"], "male": ["dan", "eli"]}},
        "lookalike": {"classes": {"lookalike": ["aria", "bella"], "different": ["cora", "dan", "eli"]}},
        "target": {"classes": {"aria": ["aria"], "others": ["*"]}},
    },
}


def make_project(root: Path, cast: dict[str, int] = CAST, test: dict[str, int] | None = None) -> Path:
    """Folders of tiny distinct pictures per tag, a test set labelled for aria (with its characters column),
    and params.yaml; returns params.yaml's path."""
    seed = 0
    for tag, count in cast.items():
        (root / "data/raw" / tag).mkdir(parents=True)
        for number in range(count):
            seed += 1
            (root / "data/raw" / tag / f"{number:03d}.png").write_bytes(picture_bytes("PNG", seed=seed))
    rows = ["path,target,characters"]
    for tag, count in (test or {"aria": 3, "dan": 3}).items():
        for number in range(count):
            seed += 1
            name = f"images/{tag}_{number}.png"
            (root / "data/test" / name).parent.mkdir(parents=True, exist_ok=True)
            (root / "data/test" / name).write_bytes(picture_bytes("PNG", seed=seed))
            rows.append(f"{name},{int(tag == 'aria')},{tag}")
    (root / "data/test/labels.csv").write_text("\n".join(rows) + "\n")
    params = {**RETARGET, "data": {"raw_dir": str(root / "data/raw"), "test_dir": str(root / "data/test")}}
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def findings(root: Path) -> list[tuple[str, str, str]]:
    params = Params.model_validate(yaml.safe_load((root / "params.yaml").read_text()))
    return [(finding.level, finding.where, finding.message) for finding in check_project(params).findings]


def test_a_ready_project_passes_with_its_counts(tmp_path, capsys):
    params = make_project(tmp_path)
    assert main(["check", "--quick", "--params", str(params)]) == 0
    printed = capsys.readouterr().out
    assert "| gender | female | aria, bella, cora | 90 |" in printed and "| target | others | * | 112 |" in printed
    assert "test set: 6 labelled pictures, 3 of them 'aria'" in printed
    assert "0 errors, 0 warnings, 1 notes: ready for `dvc repro`" in printed  # aria: 30, fewer than 200


def test_rejected_pictures_count_as_the_target_stages_others_and_are_said(tmp_path, capsys):
    params = make_project(tmp_path)
    folder = tmp_path / "data/raw/aria_rejected/learned/run1"
    folder.mkdir(parents=True)
    for number in range(4):
        (folder / f"{number}.png").write_bytes(picture_bytes("PNG", seed=500 + number))
    assert main(["check", "--quick", "--params", str(params)]) == 0
    printed = capsys.readouterr().out
    assert "| target | others | * | 116 |" in printed  # 112 + the 4 rejected, which '*' alone would not take
    assert "4 pictures rejected in reviews (mona learn)" in printed and "used by no stage" not in printed


def break_missing_folder(root):
    shutil.rmtree(root / "data/raw/cora")


def break_empty_folder(root):
    for picture in (root / "data/raw/cora").iterdir():
        picture.unlink()


def break_unused_folder(root):  # with the target's others listed, not "*": a folder no stage names is ignored
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["stages"]["target"]["classes"]["others"] = ["bella", "cora", "dan", "eli"]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "data/raw/zed").mkdir()
    (root / "data/raw/zed/forgotten.png").write_bytes(picture_bytes("PNG", seed=999))


def break_demo_left_over(root):  # the demo's folders kept beside the new cast: "*" would train them as others
    from mona_pipeline import demo

    (root / "data/raw" / demo.DEMO_MARKER).write_text("digest\n")
    (root / "data/raw/mona").mkdir()
    (root / "data/raw/mona/mona_0000.png").write_bytes(picture_bytes("PNG", seed=999))


def break_small_class(root):
    for tag in ("dan", "eli"):
        for picture in sorted((root / "data/raw" / tag).iterdir())[9:]:
            picture.unlink()


def break_labels_for_another_character(root):
    labels = root / "data/test/labels.csv"  # the demo's labels: target = 1 means mona
    labels.write_text("path,target,characters\n" + "".join(
        f"{path.relative_to(root / 'data/test').as_posix()},{int('dan' in path.name)},"
        f"{'mona' if 'dan' in path.name else 'stella'}\n" for path in sorted((root / "data/test/images").iterdir())))


def break_no_test_set(root):
    shutil.rmtree(root / "data/test")


def break_shared_picture(root):
    shutil.copy(root / "data/raw/bella/003.png", root / "data/test/images/dan_0.png")


def break_loose_files(root):
    (root / "data/raw/stray.png").write_bytes(picture_bytes("PNG", seed=1234))


@pytest.mark.parametrize("trap, level, where, words", [
    (break_missing_folder, "error", "data/raw/cora", "lists 'cora', but there is no folder"),
    (break_empty_folder, "error", "data/raw/cora", "folder 'cora' (stages.gender.classes.female) is empty"),
    (break_unused_folder, "warning", "data/raw/zed", "folder 'zed' (1 files) is used by no stage"),
    (break_demo_left_over, "warning", "data/raw", "still holds the demo's folders (mona) beside 'aria'"),
    (break_small_class, "error", "stages.gender.classes.male", "18 pictures; a class needs at least 20"),
    (break_labels_for_another_character, "error", "data/test/labels.csv", "its labels are not for 'aria'"),
    (break_no_test_set, "error", "data/test", "dvc.yaml's evaluate stage needs the folder"),
    (break_shared_picture, "error", "data/test", "1 test pictures are also training pictures"),
    (break_loose_files, "warning", "data/raw", "1 files lie directly in"),
], ids=lambda value: value.__name__ if callable(value) else None)
def test_each_trap_is_caught_and_named(tmp_path, capsys, trap, level, where, words):
    params = make_project(tmp_path)
    trap(tmp_path)
    found = [finding for finding in findings(tmp_path) if finding[0] != "note"]
    assert [finding for finding in found if finding[0] == level and finding[1].endswith(where) and
            words in finding[2]], found
    assert {finding[0] for finding in found} <= ({"error", "warning"} if level == "error" else {"warning"})
    assert main(["check", "--quick", "--params", str(params)]) == (1 if level == "error" else 0)
    assert words in capsys.readouterr().out


def test_a_characters_folders_are_looked_over_too(tmp_path):
    path = make_project(tmp_path)
    raw = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**raw, "characters": {"bella": {"tags": ["bella"]}}}, sort_keys=False))
    assert ("note", "characters.bella", "30 pictures of bella; 200 or more give its validation split about 40, "
            "enough to choose the epoch and calibrate P (fewer: P is a rough guess)") in findings(tmp_path)
    path.write_text(yaml.safe_dump({**raw, "characters": {"bella": {"tags": ["bella", "bela"]}}}, sort_keys=False))
    found = findings(tmp_path)
    assert [f for f in found if f[0] == "error" and f[1].endswith("data/raw/bela")
            and "characters.bella.tags lists 'bela', but there is no folder" in f[2]], found


def test_an_empty_test_folder_means_no_test_set_a_warning(tmp_path):
    make_project(tmp_path)
    shutil.rmtree(tmp_path / "data/test")
    (tmp_path / "data/test").mkdir()
    (level, where, message), = [finding for finding in findings(tmp_path) if finding[0] != "note"]
    assert level == "warning" and "no test set" in message and "validation split only" in message


def test_the_ingest_stage_stops_on_a_broken_set_up_before_any_work(tmp_path):
    params = make_project(tmp_path)
    break_labels_for_another_character(tmp_path)
    result = subprocess.run([sys.executable, "-m", "flows.ingest", "--params", str(params)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[1])})
    assert result.returncode == 2
    assert "the project's set-up has errors; nothing was run" in result.stderr
    assert "its labels are not for 'aria'" in result.stderr
    assert "temporary server" not in result.stderr + result.stdout  # stopped before Prefect started anything
    assert not (tmp_path / "data/manifest").exists()


def test_the_evaluate_estimate_counts_only_the_tiles_coarse_to_fine_scores():
    """`mona check`'s time estimate: every tile without `refine_from`, the coarse ones and a share of the
    finer ones with it (a 1280 x 720 picture has 15 tiles at scale 0.5 and 28 at 0.33)."""
    from mona_pipeline.config import TilingParams
    from mona_pipeline.plan import SHARE_REFINED, scored_tiles

    assert scored_tiles(TilingParams(refine_from=None)) == 15 + 28
    assert scored_tiles(TilingParams()) == 15 + 28 * SHARE_REFINED
    assert scored_tiles(TilingParams(scales=[0.5], refine_from=None)) == 15
    assert scored_tiles(TilingParams(min_tile_side=2000)) == 0
