"""bench/variant_pairs.py: two set-ups paired by the seed in each clone's params.yaml, with made-up metrics."""

import json

import pytest

from bench import variant_pairs


def clone(folder, seed: int, f1: dict[str, float]):
    (folder / "reports").mkdir(parents=True)
    (folder / "params.yaml").write_text(f"target: mona\ntrain:\n  seed: {seed}\n")
    (folder / "reports" / "metrics.json").write_text(json.dumps(
        {model: {"f1": value, "precision": 0.9} for model, value in f1.items()}))
    return folder


def test_pairs_by_seed_not_by_order_and_skips_seeds_one_side_lacks(tmp_path):
    a = [clone(tmp_path / "a42", 42, {"three_stage": 0.9, "baseline": 0.8}),
         clone(tmp_path / "a1", 1, {"three_stage": 0.7, "baseline": 0.8})]
    b = [clone(tmp_path / "b1", 1, {"three_stage": 0.6, "baseline": 0.8}),  # other order
         clone(tmp_path / "b42", 42, {"three_stage": 0.5, "baseline": 0.85}),
         clone(tmp_path / "b7", 7, {"three_stage": 0.0, "baseline": 0.0})]  # no partner: left out
    out = tmp_path / "pairs.json"
    result = variant_pairs.main(["--a", *map(str, a), "--b", *map(str, b), "--names", "new", "old",
                                 "--default-b", "baseline", "--out", str(out)])
    assert sorted(result["seeds"]) == [1, 42] and json.loads(out.read_text()) == result
    rows = {(row["model"], row["metric"]): row for row in result["rows"]}
    assert sorted(rows["three_stage", "f1"]["difference"]["values"]) == pytest.approx([0.1, 0.4])
    assert rows["baseline", "f1"]["difference"]["mean"] == pytest.approx(-0.025)
    default = rows["default: new three_stage minus old baseline", "f1"]
    assert sorted(default["difference"]["values"]) == pytest.approx([-0.1, 0.05])


def test_one_seed_in_common_is_refused(tmp_path):
    a = [clone(tmp_path / "a", 42, {"three_stage": 0.9, "baseline": 0.8})]
    b = [clone(tmp_path / "b", 42, {"three_stage": 0.5, "baseline": 0.8})]
    with pytest.raises(SystemExit, match="at least 2"):
        variant_pairs.main(["--a", str(a[0]), "--b", str(b[0]), "--out", str(tmp_path / "x.json")])
