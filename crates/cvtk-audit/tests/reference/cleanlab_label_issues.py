"""cleanlab's answers for crates/cvtk-audit/tests/cleanlab.rs.

Reads a JSON list of cases {"labels": [...], "probs": [[...], ...]} on stdin;
prints, per case, the mask of cleanlab.filter.find_label_issues with its
defaults and cleanlab.rank.get_label_quality_scores (self_confidence).
"""
import json
import sys
import warnings

import numpy as np
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores

warnings.simplefilter("ignore")

# cleanlab orders equal margins (and equal rounding remainders) with
# np.argsort's default sort, whose order of ties depends on the CPU (numpy's
# SIMD sorts are not stable). cvtk breaks ties in image order: a stable sort.
_argsort = np.argsort


def _stable_argsort(a, axis=-1, kind=None, order=None, **kwargs):
    return _argsort(a, axis=axis, kind="stable", order=order, **kwargs)


np.argsort = _stable_argsort
out = []
for case in json.load(sys.stdin):
    labels = np.asarray(case["labels"], dtype=np.int64)
    probs = np.asarray(case["probs"], dtype=np.float64)
    # n_jobs=1: the same answer as any other count, without forking the test.
    flagged = find_label_issues(labels, probs, n_jobs=1)
    quality = get_label_quality_scores(labels, probs)
    out.append({"flagged": [bool(f) for f in flagged], "quality": [float(q) for q in quality]})
json.dump(out, sys.stdout)
