"""One VGG16 convolution (block 3: 256 -> 256 channels, 3x3, 56x56) as two ONNX models: f32
(Conv + Relu) and int8 the way the trainer's int8 export writes it (QuantizeLinear -> QLinearConv
with uint8 activations, int8 weights, int32 bias -> DequantizeLinear). Random weights: the timing
does not depend on them. usage: make_models.py OUT_DIR"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

C, S = 256, 56
out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
w = (rng.standard_normal((C, C, 3, 3)) * 0.02).astype(np.float32)
b = np.zeros(C, np.float32)
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, S, S])
y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, C, S, S])
conv = dict(kernel_shape=[3, 3], pads=[1, 1, 1, 1])


def save(name, nodes, initializers):
    graph = helper.make_graph(nodes, name, [x], [y], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, f"{name}.onnx"))


save(
    "conv_f32",
    [helper.make_node("Conv", ["x", "w", "b"], ["c"], **conv), helper.make_node("Relu", ["c"], ["y"])],
    [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
)
w_scale = np.float32(np.abs(w).max() / 127)
constants = {
    "x_scale": np.float32(1 / 255), "x_zero": np.uint8(0),
    "w_q": np.clip(np.round(w / w_scale), -127, 127).astype(np.int8), "w_scale": w_scale, "w_zero": np.int8(0),
    "y_scale": np.float32(0.05), "y_zero": np.uint8(0), "b_q": np.zeros(C, np.int32),
}
save(
    "conv_int8",
    [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zero"], ["xq"]),
        helper.make_node("QLinearConv", ["xq", "x_scale", "x_zero", "w_q", "w_scale", "w_zero", "y_scale", "y_zero", "b_q"], ["yq"], **conv),
        helper.make_node("DequantizeLinear", ["yq", "y_scale", "y_zero"], ["y"]),
    ],
    [numpy_helper.from_array(np.array(v), k) for k, v in constants.items()],
)
print(f"wrote {out}/conv_f32.onnx and {out}/conv_int8.onnx ({2 * C * C * 9 * S * S / 1e9:.2f} GFLOP each)")
