#!/usr/bin/python3
"""Write the small quantized ONNX model the README imports (models/onnx/example_qdq.onnx).

    make_onnx_example.py [-o PATH]

A QDQ graph as ONNX Runtime's quantizer and torch.onnx.export write them: uint8 input,
int8 per-channel conv weights, int32 biases, conv -> relu -> maxpool -> conv -> relu ->
flatten -> fully connected, every activation re-quantized by a QuantizeLinear /
DequantizeLinear pair. Weights are fixed pseudo-random integers (seed 7), so the file is
the same on every run: `qsim import models/onnx/example_qdq.onnx -o example.qbin` turns it
into a .qbin, and tests/test_readme.py checks that the shipped file is this script's output.
Needs the onnx package (Debian python3-onnx, installed by scripts/setup-deps --tests).
"""
import argparse
import os
import sys

import numpy as np

try:
    import onnx
    from onnx import TensorProto as TP
    from onnx import helper as oh
    from onnx import numpy_helper as nph
except ImportError:
    sys.exit("make_onnx_example: needs the onnx package (Debian: apt-get install python3-onnx)")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = os.path.join(REPO, "models", "onnx", "example_qdq.onnx")


def build() -> "onnx.ModelProto":
    rng = np.random.default_rng(7)
    inits, nodes = [], []

    def const(name, arr):
        inits.append(nph.from_array(np.asarray(arr), name))
        return name

    def qdq(src, name, scale, zp=0):
        """QuantizeLinear + DequantizeLinear of an activation (uint8)."""
        s, z = const(name + "_s", np.float32(scale)), const(name + "_zp", np.uint8(zp))
        nodes.append(oh.make_node("QuantizeLinear", [src, s, z], [name + "_q"], name=name + "_quant"))
        nodes.append(oh.make_node("DequantizeLinear", [name + "_q", s, z], [name], name=name + "_dequant"))
        return name

    def weight(name, shape, in_scale):
        """int8 per-output-channel weights and int32 biases, dequantized in the graph."""
        w = rng.integers(-127, 128, size=shape).astype(np.int8)
        ws = (0.02 + 0.01 * rng.random(shape[0])).astype(np.float32)
        b = rng.integers(-200, 200, size=shape[0]).astype(np.int32)
        bs = (ws * np.float32(in_scale)).astype(np.float32)
        wq = const(name + "_wq", w)
        nodes.append(oh.make_node("DequantizeLinear", [wq, const(name + "_ws", ws),
                                                      const(name + "_wzp", np.zeros(shape[0], np.int8))],
                                  [name + "_w"], name=name + "_wdq", axis=0))
        nodes.append(oh.make_node("DequantizeLinear", [const(name + "_bq", b), const(name + "_bs", bs),
                                                      const(name + "_bzp", np.zeros(shape[0], np.int32))],
                                  [name + "_b"], name=name + "_bdq", axis=0))
        return name + "_w", name + "_b"

    s_in, s1, s2, s3 = 1.0 / 255, 0.05, 0.08, 0.1
    x = qdq("input", "x", s_in)
    w, b = weight("conv1", (8, 1, 3, 3), s_in)
    nodes.append(oh.make_node("Conv", [x, w, b], ["c1"], name="conv1", pads=[1, 1, 1, 1]))
    nodes.append(oh.make_node("Relu", ["c1"], ["r1"], name="relu1"))
    r1 = qdq("r1", "a1", s1)
    nodes.append(oh.make_node("MaxPool", [r1], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]))
    p1 = qdq("p1", "a2", s1)
    w, b = weight("conv2", (16, 8, 3, 3), s1)
    nodes.append(oh.make_node("Conv", [p1, w, b], ["c2"], name="conv2", pads=[1, 1, 1, 1]))
    nodes.append(oh.make_node("Relu", ["c2"], ["r2"], name="relu2"))
    r2 = qdq("r2", "a3", s2)
    nodes.append(oh.make_node("Flatten", [r2], ["f"], name="flatten", axis=1))
    wq = rng.integers(-127, 128, size=(16 * 4 * 4, 10)).astype(np.int8)
    nodes.append(oh.make_node("DequantizeLinear", [const("fc_wq", wq), const("fc_ws", np.float32(0.01)),
                                                  const("fc_wzp", np.int8(0))], ["fc_w"], name="fc_wdq"))
    nodes.append(oh.make_node("DequantizeLinear", [const("fc_bq", rng.integers(-500, 500, 10).astype(np.int32)),
                                                  const("fc_bs", np.float32(0.01 * s2)),
                                                  const("fc_bzp", np.int32(0))], ["fc_b"], name="fc_bdq"))
    nodes.append(oh.make_node("MatMul", ["f", "fc_w"], ["mm"], name="fc"))
    nodes.append(oh.make_node("Add", ["mm", "fc_b"], ["logits_f"], name="fc_bias"))
    qdq("logits_f", "logits", s3, 128)
    graph = oh.make_graph(nodes, "example_qdq",
                          [oh.make_tensor_value_info("input", TP.FLOAT, [1, 1, 8, 8])],
                          [oh.make_tensor_value_info("logits", TP.FLOAT, [1, 10])], inits)
    model = oh.make_model(graph, opset_imports=[oh.make_opsetid("", 13)], producer_name="qsim make_onnx_example.py")
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", default=DEFAULT, metavar="PATH", help="where to write (default models/onnx/example_qdq.onnx)")
    a = ap.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(a.o)), exist_ok=True)
    data = build().SerializeToString()
    with open(a.o, "wb") as f:
        f.write(data)
    print("wrote %s (%d bytes)" % (a.o, len(data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
