"""Randomised kills: SIGKILL at random points of move and delete runs and of their undo, then rerun; census by hash.

Each kill lands exactly on a file-system change the sort makes (before or after the
N-th rename, link, unlink, fsync or copy under the sandbox, N drawn at random; see
instrumented_cli.py), so every kill hits the window between a journal write and a
file operation, or between two file operations, instead of the start-up. After every
kill no picture may be missing; after the rerun each is exactly once where it belongs;
after undo the source is byte-identical to before.

    MONA_KILL_SEED=123 pytest tests/sort/test_kills.py -s          # replay one draw
    MONA_LONG_TESTS=1 pytest -m long tests/sort/test_kills.py -s   # the long campaign
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import colour_picture
from tests.sort.harness import BLUE, PINK, RED, files_under, hashes, run_child

SEED = int(os.environ.get("MONA_KILL_SEED", random.SystemRandom().randrange(2**31)))


@dataclass
class Campaign:
    """What one randomised campaign did and found."""

    action: str
    pictures: int
    kills: int = 0
    undo_kills: int = 0
    runs: int = 0
    lost: int = 0
    duplicated: int = 0
    points: list = field(default_factory=list)


def make_inbox(root: Path, count: int) -> dict[bytes, str]:
    """count pictures (red: keep, pink: review, blue: drop) in a few folders, plus same names and a broken one."""
    for index in range(count):
        path = root / f"d{index % 3}" / f"p{index:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(colour_picture((RED, PINK, BLUE)[index % 3], "PNG", size=(30 + index % 50, 30 + index // 50)))
    (root / "d0" / "same.png").write_bytes(colour_picture(RED, "PNG", size=(90, 31)))
    (root / "d1" / "same.png").write_bytes(colour_picture(RED, "PNG", size=(91, 31)))
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    return files_under(root)


def census(originals, places, campaign: Campaign, moment: str, exact: bool) -> None:
    counts = hashes(*places)
    lost = [h for h in originals if counts[h] == 0]
    doubled = [h for h in originals if counts[h] > 1]
    campaign.lost += len(lost)
    campaign.duplicated += len(doubled) if exact else 0
    assert not lost, f"seed {SEED}: {len(lost)} pictures lost {moment}; kill points {campaign.points}"
    assert not (exact and doubled), f"seed {SEED}: {len(doubled)} duplicated {moment}; kill points {campaign.points}"


def run_campaign(root: Path, params_file: Path, model: Path, action: str, pictures: int, kills: int,
                 undo_kills: int, draw: random.Random) -> Campaign:
    inbox, out = root / "inbox", root / "O"
    before = make_inbox(inbox, pictures)
    originals = list(before.values())
    places = [inbox, out / "keep", out / "review", out / "runs"]
    moves = {digest for name, digest in before.items() if name.endswith(b"same.png") or (
        name != b"broken.png" and int(name[-8:-4]) % 3 != 2)}  # red and pink: keep and review
    to_change = moves if action == "move" else set(originals) - moves - {before[b"broken.png"]}
    changed = len(to_change)
    sort = ["sort", inbox, "--out", out, "--model", model, "--action", action, "--confidence", "0.9",
            "--review-from", "0.5", "--batch-size", "4", "--run", "killed", "--quiet"]
    campaign = Campaign(action, len(originals))

    def killed_run(arguments, most: int) -> None:
        point = (draw.randint(1, max(1, most)), draw.choice(["before", "after"]))
        outcome = run_child(params_file, *arguments, environment={
            "MONA_FAULT_AT": str(point[0]), "MONA_FAULT_WHEN": point[1], "MONA_FAULT_UNDER": str(root)})
        campaign.runs += 1
        assert outcome.code in (-9, 0), f"seed {SEED}, kill at {point}: {outcome.describe()}"
        if outcome.code == -9:
            campaign.points.append((arguments[0], *point))
            campaign.kills += arguments[0] == "sort"
            campaign.undo_kills += arguments[0] == "undo"
        census(originals, places, campaign, f"after a kill at {point}", exact=False)

    for _ in range(kills):
        killed_run(sort, sum(1 for digest in hashes(inbox).elements() if digest in to_change))
    final = run_child(params_file, *sort)
    campaign.runs += 1
    final.assert_clean(0)
    assert f"{pictures + 3} pictures" in final.stdout, final.describe()
    census(originals, places, campaign, "after the rerun", exact=True)
    assert not [p for p in out.rglob("*") if p.name.endswith(".partial")]
    for _ in range(undo_kills):
        killed_run(["undo", out / "runs" / "killed"], changed)
    undo = run_child(params_file, "undo", out / "runs" / "killed")
    campaign.runs += 1
    undo.assert_clean(0)
    assert files_under(inbox) == before, f"seed {SEED}: the inbox differs after undo; kill points {campaign.points}"
    assert files_under(out / "keep") == {} and files_under(out / "review") == {}
    return campaign


def report(campaigns: list[Campaign], path: Path) -> None:
    line = "; ".join(f"{c.action}: {c.kills} kills in sort, {c.undo_kills} in undo, {c.runs} runs, "
                     f"{c.pictures} pictures, lost {c.lost}, duplicated {c.duplicated}" for c in campaigns)
    print(f"\nrandomised kill test, seed {SEED}: {line}")
    path.write_text(json.dumps([c.__dict__ for c in campaigns], default=str))


def test_random_kills_during_move_and_delete_runs_lose_and_duplicate_nothing(tmp_path, params_file, model):
    draw = random.Random(SEED)
    campaigns = [run_campaign(tmp_path / "move", params_file, model, "move", 24, kills=2, undo_kills=1, draw=draw),
                 run_campaign(tmp_path / "delete", params_file, model, "delete", 24, kills=2, undo_kills=1,
                              draw=draw)]
    report(campaigns, tmp_path / "kills.json")
    # A drawn point past the run's last change is a run that finished: most draws hit, not every one.
    assert sum(c.kills + c.undo_kills for c in campaigns) >= 4, [c.points for c in campaigns]


@pytest.mark.long
@pytest.mark.skipif(os.environ.get("MONA_LONG_TESTS") != "1", reason="long: set MONA_LONG_TESTS=1 to run")
def test_many_random_kills_during_move_and_delete_runs_and_undo_lose_and_duplicate_nothing(tmp_path, params_file,
                                                                                           model):
    draw = random.Random(SEED)
    campaigns = [run_campaign(tmp_path / f"{action}{round_}", params_file, model, action, 150, kills=12,
                              undo_kills=4, draw=draw)
                 for round_ in range(2) for action in ("move", "delete")]
    report(campaigns, tmp_path / "kills.json")
    assert sum(c.kills + c.undo_kills for c in campaigns) >= 48, [c.points for c in campaigns]
