"""Metrics and the validation threshold, checked against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hmspar.errors import HmsparError
from hmspar.metrics import binary_metrics, choose_threshold, json_safe, multiclass_metrics

Y = np.array([0, 0, 1, 1])
P = np.array([0.1, 0.4, 0.35, 0.8])


def test_choose_threshold_max_f1():
    # thresholds 0.1 / 0.35 / 0.4 / 0.8 give F1 = 4/6, 4/5, 2/4, 2/3
    assert choose_threshold(Y, P) == 0.35
    assert choose_threshold(Y, np.stack([1 - P, P], axis=1)) == 0.35


def test_choose_threshold_ties_pick_the_smaller():
    # thresholds 0.1 and 0.9 both give F1 = 2/3
    assert choose_threshold(np.array([1, 0, 0, 1]), np.array([0.1, 0.5, 0.6, 0.9])) == 0.1
    # with repeated probabilities the candidates are the distinct values
    assert choose_threshold(np.array([0, 1, 1, 0]), np.array([0.2, 0.7, 0.7, 0.7])) == 0.7


def test_choose_threshold_without_positives_is_half():
    assert choose_threshold(np.array([0, 0]), np.array([0.2, 0.3])) == 0.5


def test_binary_metrics_hand_values():
    m = binary_metrics(Y, P, 0.5)  # predictions [0, 0, 0, 1]
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["auprc"] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert m["precision"] == 1.0 and m["recall"] == 0.5
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["accuracy"] == 0.75
    assert m["brier"] == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    at = binary_metrics(Y, P, 0.35)  # predictions [0, 1, 1, 1]
    assert at["f1"] == pytest.approx(0.8) and at["precision"] == pytest.approx(2 / 3) and at["recall"] == 1.0
    assert set(m) == {"roc_auc", "auprc", "f1", "precision", "recall", "accuracy", "balanced_accuracy", "brier"}


def test_binary_metrics_degenerate_and_errors():
    m = binary_metrics(np.array([0, 0]), np.array([0.2, 0.9]), 0.5)
    assert math.isnan(m["roc_auc"]) and m["precision"] == 0.0 and m["accuracy"] == 0.5
    with pytest.raises(HmsparError, match="labels 0/1"):
        binary_metrics(np.array([0, 2]), np.array([0.2, 0.9]))
    with pytest.raises(HmsparError, match="NaN"):
        binary_metrics(np.array([0, 1]), np.array([np.nan, 0.9]))


def test_multiclass_metrics_hand_values():
    y = np.array([0, 1, 2, 2])
    Pm = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])  # argmax 0, 1, 2, 0
    m = multiclass_metrics(y, Pm)
    assert m["accuracy"] == 0.75
    assert m["f1_macro"] == pytest.approx((2 / 3 + 1 + 2 / 3) / 3)
    assert m["roc_auc"] == pytest.approx((1 + 1 + 0.75) / 3)
    assert m["log_loss"] == pytest.approx(-(math.log(0.7) + math.log(0.8) + math.log(0.5) + math.log(0.1)) / 4)
    assert m["brier"] == pytest.approx((0.14 + 0.06 + 0.38 + 1.26) / 4)
    assert m["balanced_accuracy"] == pytest.approx((1 + 1 + 0.5) / 3)
    with pytest.raises(HmsparError, match="labels in 0..2"):
        multiclass_metrics(np.array([0, 3]), Pm[:2])


def test_json_safe():
    assert json_safe({"a": float("nan"), "b": [np.float32(1.5), np.int64(2)], "c": None}) == \
        {"a": None, "b": [1.5, 2], "c": None}


# One definition per edge case (hand-checked), and the same numbers from the trainer, the runner's metric
# functions and the leaderboard.

def test_binary_one_class_absent():
    m = binary_metrics(np.array([0, 0, 0]), np.array([0.2, 0.6, 0.1]), 0.5)  # predictions [0, 1, 0]
    assert math.isnan(m["roc_auc"]) and math.isnan(m["auprc"])
    assert m["brier"] == pytest.approx((0.04 + 0.36 + 0.01) / 3)
    assert m["accuracy"] == pytest.approx(2 / 3) and m["balanced_accuracy"] == pytest.approx(2 / 3)
    assert m["f1"] == m["precision"] == m["recall"] == 0.0
    only_pos = binary_metrics(np.array([1, 1]), np.array([0.3, 0.9]), 0.5)  # predictions [0, 1]
    assert math.isnan(only_pos["roc_auc"]) and math.isnan(only_pos["auprc"])  # AP would be a trivial 1.0
    assert only_pos["brier"] == pytest.approx((0.49 + 0.01) / 2) and only_pos["balanced_accuracy"] == 0.5


def test_multiclass_one_class_absent_and_auprc():
    P3 = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.5, 0.3]])  # argmax 0, 1, 1
    m = multiclass_metrics(np.array([0, 1, 1]), P3)  # class 2 absent
    assert math.isnan(m["roc_auc"]) and math.isnan(m["auprc"])
    assert m["balanced_accuracy"] == 1.0  # mean recall over the classes present (0 and 1)
    assert m["brier"] == pytest.approx((0.14 + 0.06 + 0.38) / 3)
    y = np.array([0, 1, 2, 2])
    Pm = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    # one-vs-rest AP: class 0 and 1 ranked first -> 1; class 2: 0.5 at recall 1/2, then 2/4 at recall 1 -> 0.75
    assert multiclass_metrics(y, Pm)["auprc"] == pytest.approx((1 + 1 + 0.75) / 3)


def test_multiclass_brier_is_twice_binary_on_two_columns():
    p = np.array([0.1, 0.4, 0.35, 0.8])
    two = multiclass_metrics(Y, np.stack([1 - p, p], axis=1))
    assert two["brier"] == pytest.approx(2 * binary_metrics(Y, p)["brier"])
    assert two["roc_auc"] == pytest.approx(binary_metrics(Y, p)["roc_auc"])


def test_trainer_runner_and_leaderboard_agree():
    from hmspar.report.leaderboard import compute_metrics
    from hmspar.training.trainer import validation_auc

    rb = binary_metrics(Y, P, 0.35)  # what the runner writes for a binary task
    lb = compute_metrics(Y, P, 0.35)
    assert validation_auc(Y, np.stack([1 - P, P], axis=1)) == rb["roc_auc"] == lb["roc_auc"] == 0.75
    for key in ("auprc", "f1", "precision", "recall", "accuracy", "balanced_accuracy", "brier"):
        assert lb[key] == rb[key], key
    assert lb["accuracy_at_0.5"] == binary_metrics(Y, P, 0.5)["accuracy"] == 0.75
    y = np.array([0, 1, 2, 2])
    Pm = np.array([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    rm, lm = multiclass_metrics(y, Pm), compute_metrics(y, Pm, None)
    assert validation_auc(y, Pm) == rm["roc_auc"] == lm["roc_auc"] == pytest.approx((1 + 1 + 0.75) / 3)
    assert (lm["f1"], lm["precision"], lm["recall"]) == (rm["f1_macro"], rm["precision_macro"], rm["recall_macro"])
    for key in ("auprc", "accuracy", "balanced_accuracy", "brier"):
        assert lm[key] == rm[key], key
    # undefined cases agree too: one class absent -> NaN everywhere; a diverged model -> NaN in the trainer
    assert math.isnan(validation_auc(np.array([0, 1, 1]), Pm[:3])) and math.isnan(compute_metrics(
        np.array([0, 1, 1]), Pm[:3], None)["auprc"])
    assert math.isnan(validation_auc(Y, np.array([[np.nan, 1.0]] * 4)))
