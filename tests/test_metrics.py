import numpy as np
import pytest

from mona_pipeline.metrics import (confusion, latency_stats, roc_auc, threshold_for_precision, threshold_sweep,
                                   wilson_interval)


def _paper_case(pictures, targets, flagged, missed):
    """Build truth/flagged arrays with the paper's counts."""
    hits = targets - missed
    truth = np.zeros(pictures, bool)
    truth[:targets] = True
    predicted = np.zeros(pictures, bool)
    predicted[:hits] = True
    predicted[targets:targets + flagged - hits] = True
    return truth, predicted


@pytest.mark.parametrize("flagged, missed, errors, recall, accuracy, precision", [
    (420, 55, 374, 0.6474, 0.8351, 0.2405),  # Table 2, first model
    (188, 25, 82, 0.8397, 0.9638, 0.6968),   # Table 2, final model
])
def test_paper_table_2_arithmetic(flagged, missed, errors, recall, accuracy, precision):
    result = confusion(*_paper_case(2268, 156, flagged, missed))
    assert result["pictures"] == 2268 and result["target_pictures"] == 156
    assert result["flagged"] == flagged and result["missed"] == missed
    assert result["false_alarms"] == flagged - (156 - missed)
    assert result["errors"] == errors
    assert result["recall"] == pytest.approx(recall, abs=5e-5)
    assert result["accuracy"] == pytest.approx(accuracy, abs=5e-5)
    assert result["precision"] == pytest.approx(precision, abs=5e-5)
    assert result["f1"] == pytest.approx(2 * precision * recall / (precision + recall), abs=1e-3)


def test_paper_table_3_random_archive():
    result = confusion(*_paper_case(3000, 463, 449, 79))
    # 449 flagged - 384 hits = 65 false alarms; the paper prints 68 (and 147 errors): its table is off by 3.
    assert result["false_alarms"] == 65 and result["errors"] == 144
    assert result["recall"] == pytest.approx(0.829, abs=1e-3)


def test_roc_auc_on_known_orderings():
    truth = np.array([1, 1, 0, 0], bool)
    assert roc_auc(truth, np.array([0.9, 0.8, 0.2, 0.1])) == 1.0
    assert roc_auc(truth, np.array([0.1, 0.2, 0.8, 0.9])) == 0.0
    assert roc_auc(truth, np.array([0.5, 0.5, 0.5, 0.5])) == 0.5
    assert roc_auc(truth, np.array([0.9, 0.3, 0.5, 0.1])) == 0.75


def test_threshold_for_precision_picks_the_highest_recall_that_reaches_it():
    truth = np.array([1, 1, 1, 0, 1, 0, 0], bool)
    scores = np.array([0.99, 0.9, 0.8, 0.7, 0.6, 0.5, 0.1])
    best = threshold_for_precision(truth, scores, 0.75)
    assert best["threshold"] == 0.6 and best["precision"] == 0.8 and best["recall"] == 1.0
    assert threshold_for_precision(truth, scores, 1.0)["threshold"] == 0.8
    assert threshold_for_precision(np.array([0, 0], bool), np.array([0.9, 0.8]), 0.5) is None


def test_threshold_sweep_is_monotone_in_flagged_pictures():
    rng = np.random.default_rng(0)
    truth = rng.random(200) < 0.2
    scores = np.clip(truth * 0.5 + rng.random(200) * 0.6, 0, 1)
    rows = threshold_sweep(truth, scores)
    recalls = [r["recall"] for r in rows]
    assert recalls == sorted(recalls, reverse=True)


def test_latency_stats_as_the_paper_reports():
    stats = latency_stats([0.06, 0.06, 0.07, 0.27, 0.06])
    assert stats["min_s"] == 0.06 and stats["max_s"] == 0.27 and stats["mode_s"] == 0.06
    assert stats["mean_s"] == pytest.approx(0.104) and stats["median_s"] == 0.06


def test_wilson_interval_known_values():
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-4) and high == pytest.approx(0.5962, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    low, high = wilson_interval(30, 30)
    assert high == 1.0 and low == pytest.approx(0.8865, abs=1e-4)
    # Fewer pictures, wider interval: what makes 22 targets too few to rank two models.
    assert wilson_interval(16, 22)[1] - wilson_interval(16, 22)[0] > wilson_interval(64, 88)[1] - wilson_interval(64, 88)[0]


def test_temperature_fit_recovers_overconfidence_and_reliability_measures_it():
    from mona_pipeline.metrics import fit_temperature, reliability, temper

    rng = np.random.default_rng(0)
    true_scores = rng.uniform(0.02, 0.98, 4000)
    truth = rng.uniform(size=4000) < true_scores  # calibrated by construction
    overconfident = temper(true_scores, 1 / 3)  # logits tripled: scores pushed to 0 and 1
    assert reliability(truth, true_scores)["ece"] < 0.03
    assert reliability(truth, overconfident)["ece"] > 0.1
    temperature = fit_temperature(truth, overconfident)
    assert 2.6 < temperature < 3.4
    fixed = temper(overconfident, temperature)
    assert reliability(truth, fixed)["ece"] < 0.03
    assert np.array_equal(np.argsort(fixed), np.argsort(overconfident))  # the ranking never changes


def test_temperature_fit_on_a_small_separated_split_stays_finite():
    """87 validation pictures that the model separates: the plain likelihood would drive T to the grid's
    floor (0.05) and score every look-alike with a positive logit above 0.95."""
    from mona_pipeline.metrics import fit_temperature, temper

    rng = np.random.default_rng(1)
    truth = np.r_[np.ones(11, bool), np.zeros(76, bool)]
    logits = np.where(truth, rng.uniform(0.5, 4.0, 87), rng.uniform(-6.0, -0.3, 87))
    scores = 1 / (1 + np.exp(-logits))
    temperature = fit_temperature(truth, scores)
    assert temperature > 0.2
    # A picture at logit 0.5 (the weakest positive's margin) is not called certain.
    assert temper(np.array([1 / (1 + np.exp(-0.5))]), temperature)[0] < 0.95


def test_reliability_bins_count_every_picture():
    from mona_pipeline.metrics import reliability

    result = reliability(np.array([1, 0, 1, 1], bool), np.array([0.0, 0.05, 0.95, 1.0]), bins=10)
    assert sum(b["pictures"] for b in result["bins"]) == 4
    assert result["bins"][-1]["pictures"] == 2 and result["bins"][0]["target_rate"] == 0.5
