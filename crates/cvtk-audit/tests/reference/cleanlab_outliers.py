"""cleanlab 2.9's outlier scores and Datalab's outlier flag on features, for
crates/cvtk-audit/tests/cleanlab_outliers.rs.

stdin: JSON list of cases, each {"features": [[float, ...], ...]} (float32).
stdout: JSON list, per case: {"scores": [...] (OutOfDistribution().fit_score),
"neighbours": [[int, ...], ...] and "distances" (the k nearest, cleanlab's
graph), "flagged": [bool, ...] (Datalab's outlier issue, default threshold)}.
"""
import contextlib
import json
import sys

import numpy as np
from cleanlab.datalab.internal.issue_manager.outlier import OutlierIssueManager
from cleanlab.internal.neighbor.knn_graph import correct_knn_distances_and_indices, features_to_knn
from cleanlab.outlier import OutOfDistribution

out = []
for case in json.load(sys.stdin):
    x = np.asarray(case["features"], dtype=np.float32)
    with contextlib.redirect_stdout(sys.stderr):  # it talks on stdout
        scores = OutOfDistribution().fit_score(features=x)
    # The graph Datalab builds (k = min(10, N - 1) here, as the score's).
    knn = features_to_knn(x)
    distances, indices = knn.kneighbors()
    distances, indices = correct_knn_distances_and_indices(x, distances, indices)
    # Datalab's own fence on the mean distances (OutlierIssueManager, features path).
    _, fence, flagged = OutlierIssueManager._compute_threshold_and_issue_column_from_distances(None, distances)
    out.append(
        {
            "scores": scores.tolist(),
            "neighbours": indices.tolist(),
            "distances": distances.astype(np.float64).tolist(),
            "fence": fence,
            "flagged": flagged.tolist(),
        }
    )
print(json.dumps(out))
