"""Load a TF.js graph model (model.json + weight shards) as a TensorFlow concrete function.

tensorflowjs_converter cannot do this: it converts *to* TF.js, and its package imports
TensorFlow Decision Forests and JAX, which pin TensorFlow versions older than the one we use. A
graph model is a GraphDef in JSON whose Const nodes lack their values, plus a manifest that says
how the values are packed in the .bin shards; that is all this reads.
"""
import json
import os

import numpy as np
import tensorflow as tf
from google.protobuf.json_format import ParseDict

DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
PACKED = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}


def read_weights(model_json):
    """name -> numpy array, from the manifest's groups and their shards in order."""
    manifest = json.load(open(model_json))["weightsManifest"]
    folder = os.path.dirname(model_json)
    out = {}
    for group in manifest:
        data = b"".join(open(os.path.join(folder, p), "rb").read() for p in group["paths"])
        at = 0
        for w in group["weights"]:
            count = int(np.prod(w["shape"], dtype=np.int64))
            q = w.get("quantization")
            if q is None:
                dtype = DTYPES[w["dtype"]]
                vals = np.frombuffer(data, dtype, count, at)
            else:
                if q["dtype"] not in PACKED:
                    raise SystemExit(f"tfjs2tf: {w['name']}: packing {q['dtype']} not supported")
                vals = np.frombuffer(data, PACKED[q["dtype"]], count, at)
                at += vals.nbytes
                if q["dtype"] == "float16":
                    vals = vals.astype(np.float32)
                else:  # affine: min + q * scale
                    vals = (vals.astype(np.float32) * q["scale"] + q["min"])
                out[w["name"]] = vals.astype(DTYPES[w["dtype"]]).reshape(w["shape"])
                continue
            at += vals.nbytes
            out[w["name"]] = vals.reshape(w["shape"])
        if at != len(data):
            raise SystemExit(f"tfjs2tf: {model_json}: manifest covers {at} of {len(data)} bytes")
    return out


def load(model_json, input_name, output_name, shape):
    """The sub-graph from `input_name` to `output_name` as a concrete function of one input."""
    topology = json.load(open(model_json))["modelTopology"]
    weights = read_weights(model_json)
    graph = tf.compat.v1.GraphDef()
    ParseDict({"node": topology["node"], "versions": topology.get("versions", {})}, graph)
    for node in graph.node:
        node.device = ""
        if node.op == "Const" and node.name in weights:
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(weights[node.name]))
    graph = tf.compat.v1.graph_util.extract_sub_graph(graph, [output_name])

    def imported():
        tf.compat.v1.import_graph_def(graph, name="")

    wrapped = tf.compat.v1.wrap_function(imported, [])
    pruned = wrapped.prune(feeds=f"{input_name}:0", fetches=f"{output_name}:0")

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def fn(x):
        return pruned(x)

    return fn
