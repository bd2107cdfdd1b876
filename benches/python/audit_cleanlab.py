"""The peer of benches/audit.rs: cleanlab 2.9's find_label_issues (default
filter) on out-of-fold probabilities that scikit-learn's LogisticRegression
computes (cross_val_predict, 5 shuffled stratified folds, as cleanlab's
CleanLearning folds) from the same features.

Usage: audit_cleanlab.py DIR N DIM
Reads DIR/x.bin (float32 LE, N x DIM, row-major) and DIR/y.bin (uint8 labels).
Prints one JSON line: {"seconds": S, "flagged": [row indices]}.
"""
import json
import sys
import time

import numpy as np
from cleanlab.filter import find_label_issues
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict

d, n, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
x = np.fromfile(f"{d}/x.bin", dtype="<f4").reshape(n, dim)
y = np.fromfile(f"{d}/y.bin", dtype="u1").astype(int)
start = time.perf_counter()
folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
probs = cross_val_predict(LogisticRegression(max_iter=1000), x, y, cv=folds, method="predict_proba")
flagged = find_label_issues(y, probs)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "flagged": np.flatnonzero(flagged).tolist()}))
