"""The scikit-learn peer of benches/svm.rs: LinearSVC(C=1, class_weight="balanced")
on the same feature matrices, fit time and test accuracy.

Usage: svm_linearsvc.py DIR N_TRAIN N_TEST DIM
Reads DIR/x_train.bin, x_test.bin (float32 LE, row-major), y_train.bin,
y_test.bin (uint8). Prints one JSON line: {"seconds": S, "accuracy": A}.
"""
import json
import sys
import time

import numpy as np
from sklearn.svm import LinearSVC

d, n_train, n_test, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
x_train = np.fromfile(f"{d}/x_train.bin", dtype="<f4").reshape(n_train, dim)
x_test = np.fromfile(f"{d}/x_test.bin", dtype="<f4").reshape(n_test, dim)
y_train = np.fromfile(f"{d}/y_train.bin", dtype="u1")
y_test = np.fromfile(f"{d}/y_test.bin", dtype="u1")
start = time.perf_counter()
clf = LinearSVC(C=1.0, class_weight="balanced", max_iter=1000).fit(x_train, y_train)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "accuracy": float((clf.predict(x_test) == y_test).mean())}))
