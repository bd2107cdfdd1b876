"""Reference for the SVM test (crates/cvtk-model/tests/svm.rs): overlapping
Gaussian classes, scikit-learn LinearSVC(C=1, class_weight="balanced") fitted on
them, its test accuracy.

Usage: python svm_reference.py OUT_DIR
Writes x_train.bin / x_test.bin (float32, little endian, row-major),
y_train.bin / y_test.bin (uint8) and meta.json.
"""
import json
import sys

import numpy as np
from sklearn.svm import LinearSVC

out = sys.argv[1]
rng = np.random.default_rng(0)
k, d, n_train, n_test = 6, 48, 1200, 1200
centres = rng.normal(0, 1.0, size=(k, d))
sizes = np.array([3, 1, 2, 1, 2, 1], dtype=float)  # imbalanced classes
p = sizes / sizes.sum()


def draw(n):
    y = rng.choice(k, size=n, p=p)
    x = centres[y] + rng.normal(0, 1.6, size=(n, d))
    return x.astype("<f4"), y.astype("u1")


x_train, y_train = draw(n_train)
x_test, y_test = draw(n_test)
clf = LinearSVC(C=1.0, class_weight="balanced", max_iter=10000).fit(x_train, y_train)
acc = float((clf.predict(x_test) == y_test).mean())
for name, arr in [("x_train", x_train), ("x_test", x_test), ("y_train", y_train), ("y_test", y_test)]:
    arr.tofile(f"{out}/{name}.bin")
with open(f"{out}/meta.json", "w") as f:
    json.dump({"dim": d, "classes": k, "sklearn_test_accuracy": acc}, f)
