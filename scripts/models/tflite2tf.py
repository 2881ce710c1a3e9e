"""Rebuild a .tflite graph as a tf.function, op by op, with its weights as constants.

TFLiteConverter quantizes TensorFlow graphs, not .tflite files, and the originals ship only as
.tflite; their graphs are small and use a dozen ops, so they are re-expressed here. Only the ops
these face models use are implemented; anything else (or an option this does not honour, such as
dilation or a depth multiplier) stops with its name rather than building a different network.
"""
import numpy as np
import tensorflow as tf
import tflite

OPS = {v: k for k, v in tflite.BuiltinOperator.__dict__.items() if not k.startswith("_")}
DTYPES = {tflite.TensorType.FLOAT32: np.float32, tflite.TensorType.FLOAT16: np.float16,
          tflite.TensorType.INT32: np.int32, tflite.TensorType.INT64: np.int64}


class Unsupported(SystemExit):
    pass


def load(path):
    model = tflite.Model.GetRootAsModel(open(path, "rb").read(), 0)
    return model, model.Subgraphs(0)


def op_names(path):
    """The set of builtin op names the file's main graph uses."""
    model, g = load(path)
    return {_name(model, g.Operators(k)) for k in range(g.OperatorsLength())}


def _name(model, op):
    code = model.OperatorCodes(op.OpcodeIndex())
    return OPS[max(code.BuiltinCode(), code.DeprecatedBuiltinCode())]


def constant(model, tensor):
    buf = model.Buffers(tensor.Buffer()).DataAsNumpy()
    if isinstance(buf, int):  # no data: an activation
        return None
    if tensor.Type() not in DTYPES:
        raise Unsupported(f"tflite2tf: constant of type {tensor.Type()} not supported")
    return np.frombuffer(buf.tobytes(), DTYPES[tensor.Type()]).reshape(tensor.ShapeAsNumpy())


def activation(x, code):
    if code not in (0, 1, 3):
        raise Unsupported(f"tflite2tf: fused activation {code} not supported")
    return {0: x, 1: tf.nn.relu(x), 3: tf.nn.relu6(x)}[code]


def options(op, cls):
    o = cls()
    o.Init(op.BuiltinOptions().Bytes, op.BuiltinOptions().Pos)
    return o


def padding(o):
    return "SAME" if o.Padding() == tflite.Padding.SAME else "VALID"


def no_dilation(o, name):
    if (o.DilationHFactor(), o.DilationWFactor()) not in ((1, 1), (0, 0)):
        raise Unsupported(f"tflite2tf: {name} with dilation not supported")


def build(path, batch=1):
    """The graph of `path` as a tf.function taking a float batch of `batch`."""
    model, g = load(path)
    consts = {i: constant(model, g.Tensors(i)) for i in range(g.TensorsLength())}
    shape = list(g.Tensors(g.Inputs(0)).ShapeAsNumpy())
    file_batch = shape[0]
    shape[0] = batch

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def fn(*inputs):  # varargs: the input tensor is named inputs_0, as in the shipped files
        vals = {g.Inputs(0): inputs[0]}
        get = lambda i: vals[i] if i in vals else tf.constant(consts[i])
        for k in range(g.OperatorsLength()):
            op = g.Operators(k)
            name = _name(model, op)
            ins = [op.Inputs(i) for i in range(op.InputsLength())]
            out = op.Outputs(0)
            if name == "DEQUANTIZE":  # fp16 weights -> float32 constants
                consts[out] = consts[ins[0]].astype(np.float32)
                continue
            a = get(ins[0])
            if name == "CONV_2D":
                o = options(op, tflite.Conv2DOptions)
                no_dilation(o, name)
                w = np.transpose(consts[ins[1]], (1, 2, 3, 0))  # OHWI -> HWIO
                y = tf.nn.conv2d(a, w, [1, o.StrideH(), o.StrideW(), 1], padding(o)) + consts[ins[2]]
                y = activation(y, o.FusedActivationFunction())
            elif name == "DEPTHWISE_CONV_2D":
                o = options(op, tflite.DepthwiseConv2DOptions)
                no_dilation(o, name)
                if o.DepthMultiplier() not in (0, 1):
                    raise Unsupported("tflite2tf: depth multiplier > 1 not supported")
                w = np.transpose(consts[ins[1]], (1, 2, 3, 0))  # 1HWC -> HWC1
                y = tf.nn.depthwise_conv2d(a, w, [1, o.StrideH(), o.StrideW(), 1], padding(o))
                y = activation(y + consts[ins[2]], o.FusedActivationFunction())
            elif name in ("ADD", "SUB", "MUL"):
                cls = {"ADD": tflite.AddOptions, "SUB": tflite.SubOptions, "MUL": tflite.MulOptions}[name]
                f = {"ADD": tf.add, "SUB": tf.subtract, "MUL": tf.multiply}[name]
                y = activation(f(a, get(ins[1])), options(op, cls).FusedActivationFunction())
            elif name == "ABS":
                y = tf.abs(a)
            elif name == "RELU":
                y = tf.nn.relu(a)
            elif name == "MAX_POOL_2D":
                o = options(op, tflite.Pool2DOptions)
                y = tf.nn.max_pool2d(a, [o.FilterHeight(), o.FilterWidth()],
                                     [o.StrideH(), o.StrideW()], padding(o))
                y = activation(y, o.FusedActivationFunction())
            elif name == "PAD":
                y = tf.pad(a, consts[ins[1]])
            elif name == "RESIZE_BILINEAR":
                o = options(op, tflite.ResizeBilinearOptions)
                y = tf.compat.v1.image.resize_bilinear(a, consts[ins[1]],
                                                       align_corners=o.AlignCorners(),
                                                       half_pixel_centers=o.HalfPixelCenters())
            elif name == "RESHAPE":
                target = [int(d) for d in g.Tensors(out).ShapeAsNumpy()]
                if len(target) > 1 and target[0] == file_batch:
                    target[0] = batch
                y = tf.reshape(a, target)
            else:
                raise Unsupported(f"tflite2tf: op {name} not implemented")
            vals[out] = y
        # Outputs in the order of their names (BlazeFace: classifier, then regressor), which is
        # the order the shipped files have; the appliance matches them by shape anyway.
        ids = sorted((g.Outputs(i) for i in range(g.OutputsLength())),
                     key=lambda i: g.Tensors(i).Name())
        outs = [vals[i] for i in ids]
        return outs if len(outs) > 1 else outs[0]

    return fn
