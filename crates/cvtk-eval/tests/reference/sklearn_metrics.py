"""scikit-learn's metrics on score matrices, for crates/cvtk-eval/tests/sklearn.rs.

Usage: python sklearn_metrics.py OUT.json

Cases: random scores; scores rounded to one decimal (many ties); imbalanced
labels; a label with no test images; all-equal scores. For each: the inputs
(y, scores) and scikit-learn 1.7's confusion_matrix, accuracy_score,
balanced_accuracy_score, precision_recall_fscore_support (zero_division=0),
per-label precision_recall_curve / average_precision_score / roc_curve
(drop_intermediate=True) / roc_auc_score, micro curves and scores on the
binarised problem, and macro scores over the labels where they are defined.
Calibration, with the scores taken as logits (probabilities = their softmax):
scikit-learn's multi-class brier_score_loss, and the expected calibration
error over 15 equal-width bins as Guo et al. (2017) compute it (their
`_ECELoss`, in numpy). Infinite thresholds are written as null.
"""
import json
import sys
import warnings

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    precision_recall_curve,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

warnings.filterwarnings("ignore")
rng = np.random.default_rng(42)


def fl(a):
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(a, dtype=float)]


def softmax(s):
    e = np.exp(s - s.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def ece(probs, y, n_bins=15):
    """Guo et al.'s _ECELoss: top-label confidence in (lower, upper] bins."""
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    right = pred == y
    bounds = np.linspace(0, 1, n_bins + 1)
    total = 0.0
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        m = (conf > lo) & (conf <= hi)
        if m.any():
            total += m.mean() * abs(right[m].mean() - conf[m].mean())
    return float(total)


def case(name, y, s):
    y = np.asarray(y)
    s = np.asarray(s, dtype=np.float32)
    k = s.shape[1]
    pred = s.argmax(axis=1)
    onehot = np.eye(k, dtype=int)[y]
    out = {
        "name": name,
        "k": k,
        "y": y.tolist(),
        "scores": s.astype(float).tolist(),
        "confusion": confusion_matrix(y, pred, labels=list(range(k))).tolist(),
        "accuracy": accuracy_score(y, pred),
        "balanced_accuracy": balanced_accuracy_score(y, pred),
    }
    p, r, f, sup = precision_recall_fscore_support(y, pred, labels=list(range(k)), zero_division=0)
    out["precision"], out["recall"], out["f1"], out["support"] = fl(p), fl(r), fl(f), sup.tolist()
    s64 = s.astype(np.float64)
    per = []
    for c in range(k):
        yc = (y == c).astype(int)
        entry = {"pr": None, "roc": None}
        if yc.sum() > 0:
            pc, rc, tc = precision_recall_curve(yc, s64[:, c])
            entry["pr"] = {"precision": fl(pc), "recall": fl(rc), "thresholds": fl(tc), "ap": average_precision_score(yc, s64[:, c])}
        if 0 < yc.sum() < len(yc):
            fpr, tpr, th = roc_curve(yc, s64[:, c])
            entry["roc"] = {"fpr": fl(fpr), "tpr": fl(tpr), "thresholds": fl(th), "auc": roc_auc_score(yc, s64[:, c])}
        per.append(entry)
    out["per_label"] = per
    pc, rc, tc = precision_recall_curve(onehot.ravel(), s64.ravel())
    out["micro_pr"] = {"precision": fl(pc), "recall": fl(rc), "thresholds": fl(tc), "ap": average_precision_score(onehot, s64, average="micro")}
    fpr, tpr, th = roc_curve(onehot.ravel(), s64.ravel())
    out["micro_roc"] = {"fpr": fl(fpr), "tpr": fl(tpr), "thresholds": fl(th), "auc": roc_auc_score(onehot, s64, average="micro")}
    has_pos = [c for c in range(k) if onehot[:, c].sum() > 0]
    both = [c for c in has_pos if onehot[:, c].sum() < len(y)]
    out["macro_ap"] = average_precision_score(onehot[:, has_pos], s64[:, has_pos], average="macro") if has_pos else None
    out["macro_auc"] = roc_auc_score(onehot[:, both], s64[:, both], average="macro") if len(both) > 0 else None
    probs = softmax(s64)
    out["brier"] = float(brier_score_loss(y, probs, labels=list(range(k))))
    out["ece"] = ece(probs, y)
    return out


cases = []
y = rng.integers(0, 4, 200)
cases.append(case("random", y, rng.normal(size=(200, 4)) + np.eye(4)[y] * 1.2))
y = rng.integers(0, 3, 150)
cases.append(case("ties", y, np.round(rng.uniform(size=(150, 3)) + np.eye(3)[y] * 0.4, 1)))
sizes = [100, 30, 10, 5, 2]
y = np.concatenate([np.full(n, c) for c, n in enumerate(sizes)])
cases.append(case("imbalanced", y, rng.normal(size=(len(y), 5)) + np.eye(5)[y] * 1.5))
y = rng.integers(0, 3, 60)  # label 3 has no test images
s = rng.normal(size=(60, 4)) + np.eye(4)[y] * 1.0
s[:5, 3] += 5.0  # and is predicted for a few
cases.append(case("label_without_images", y, s))
y = rng.integers(0, 3, 30)
cases.append(case("all_equal", y, np.full((30, 3), 0.5)))
with open(sys.argv[1], "w") as f:
    json.dump(cases, f)
