"""Reference for tests/logistic.rs: scikit-learn's LogisticRegression, run to
convergence, on the cases read from stdin (JSON: a list of {"x", "y", "c"}).
Prints, per case, the predicted probabilities of every row."""
import json
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression

out = []
for case in json.load(sys.stdin):
    x = np.asarray(case["x"], dtype=np.float64)
    y = np.asarray(case["y"])
    model = LogisticRegression(C=case["c"], tol=1e-10, max_iter=100_000).fit(x, y)
    out.append({"probabilities": model.predict_proba(x).tolist()})
print(json.dumps(out))
