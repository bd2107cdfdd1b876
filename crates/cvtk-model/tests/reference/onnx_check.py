"""Checks an ONNX file cvtk exported and runs it in Python's onnxruntime, for
crates/cvtk-model/tests/onnx.rs.

Usage: python onnx_check.py MODEL.onnx INPUT.bin N C H W OUT_DIR

onnx.checker.check_model(full_check=True) must accept the file (it raises
otherwise); then onnxruntime (CPU, 2 threads) scores the float32 NCHW input and
OUT_DIR gets scores.bin and probabilities.bin (float32, row-major),
exact.bin (the scores computed in float64 by onnx's reference evaluator from
the same graph and weights: the exact answer both float32 engines round
towards), and meta.json: the graph's metadata_props, its inputs and outputs with their
shapes, and its opset.
"""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, numpy_helper
from onnx.reference import ReferenceEvaluator

path, inp, n, c, h, w, out = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7]), sys.argv[7]
model = onnx.load(path)
onnx.checker.check_model(model, full_check=True)
x = np.fromfile(inp, dtype=np.float32).reshape(n, c, h, w)
options = ort.SessionOptions()
options.intra_op_num_threads = 2
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
scores, probabilities = session.run(["scores", "probabilities"], {"images": x})
scores.astype(np.float32).tofile(f"{out}/scores.bin")
probabilities.astype(np.float32).tofile(f"{out}/probabilities.bin")


def in_float64(model):
    """The same graph with every float32 weight, constant and value in float64."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    for init in model.graph.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype == np.float32:
            init.CopyFrom(numpy_helper.from_array(a.astype(np.float64), init.name))
    for v in list(model.graph.input) + list(model.graph.output):
        v.type.tensor_type.elem_type = TensorProto.DOUBLE
    for node in model.graph.node:
        for a in node.attribute:
            if a.name == "value" and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float64), a.t.name))
    return model


(exact,) = ReferenceEvaluator(in_float64(model)).run(["scores"], {"images": x.astype(np.float64)})
exact.astype(np.float32).tofile(f"{out}/exact.bin")


def dims(v):
    return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]


meta = {
    "metadata": {p.key: p.value for p in model.metadata_props},
    "inputs": {i.name: dims(i) for i in model.graph.input},
    "outputs": {o.name: dims(o) for o in model.graph.output},
    "opset": [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")],
}
with open(f"{out}/meta.json", "w") as f:
    json.dump(meta, f)
