"""Metrics of the published tables on hand-checked examples."""

from __future__ import annotations

import math

import numpy as np

from eoreps.data.datasets.base import IGNORE_INDEX
from eoreps.evaluation.metrics import classification_metrics, multilabel_metrics, segmentation_metrics


def test_classification_average_and_overall_accuracy() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    p = np.array([0, 0, 0, 1, 1, 0, 2, 2])
    m = classification_metrics(y, p, ["a", "b", "c", "d"])
    assert m["oa"] == 6 / 8
    assert m["acc/a"] == 3 / 4 and m["acc/b"] == 1 / 2 and m["acc/c"] == 1.0
    assert math.isnan(m["acc/d"])  # absent from the test set: not part of the average
    assert math.isclose(m["aa"], (3 / 4 + 1 / 2 + 1) / 3)


def test_multilabel_f1_over_present_labels() -> None:
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]])
    prob = np.array([[0.9, 0.1, 0.7], [0.8, 0.2, 0.1], [0.3, 0.6, 0.2], [0.1, 0.1, 0.1]])
    m = multilabel_metrics(y, prob, ["a", "b", "c"])
    assert m["f1/a"] == 1.0
    assert math.isclose(m["f1/b"], 2 * 1 / (2 * 1 + 1 + 0))  # tp=1, fn=1, fp=0
    assert math.isnan(m["f1/c"])
    assert math.isclose(m["f1_macro"], (1.0 + 2 / 3) / 2)
    assert math.isclose(m["f1_micro"], 2 * 3 / (2 * 3 + 1 + 1))  # tp=3, fp=1 (c), fn=1 (b)


def test_segmentation_iou_ignores_unlabelled() -> None:
    t = np.array([[[0, 0], [1, IGNORE_INDEX]]])
    p = np.array([[[0, 1], [1, 1]]])
    m = segmentation_metrics(t, p, ["x", "y", "z"])
    assert m["iou/x"] == 1 / 2 and m["iou/y"] == 1 / 2 and math.isnan(m["iou/z"])
    assert m["miou"] == 0.5 and math.isclose(m["pixel_acc"], 2 / 3)
