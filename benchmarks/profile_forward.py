"""Where the forward pass spends its time: a TensorFlow profiler trace of vit_tf's graph, op by op, summed by kind.

    python benchmarks/profile_forward.py [--model vit_base_patch16_224] [--batch 8] [--dtype float32|bfloat16]
                                        [--maps all|none] [--steps 3] [--top 25]

The model runs as `tf.function` (warmed up first), `--steps` calls are traced with `tf.profiler.experimental`, and
the trace (`.xplane.pb`) is read back: every TensorFlow op event on the host threads, its kernel's wall time,
grouped into the kinds the speed issue asks about (matmuls and einsums, softmax, LayerNorm, GELU, casts,
transposes, other elementwise and data movement) and the host copy of the returned arrays (timed separately:
`.numpy()` on every output). Ops run on 2 threads at once are summed per op, so the kinds add up to more than
the wall time when ops overlap; the share column is of the summed op time. Reports only; no assertions.
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import re
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import vit_tf  # noqa: E402

# Kind of an op, from its TF op type and (for elementwise ops) the name scope it was traced in.
_MATMUL = re.compile(r"MatMul|Einsum|Conv2D|BatchMatMul|_MklFused|_FusedMatMul|_MklMatMul|Dot", re.I)
_SCOPES = (("softmax", re.compile(r"softmax", re.I)), ("LayerNorm", re.compile(r"norm", re.I)),
           ("GELU", re.compile(r"gelu|erf", re.I)))


def op_kind(name: str, op_type: str) -> str:
    if _MATMUL.search(op_type):
        return "matmul / einsum / conv"
    if op_type in ("Softmax", "_MklSoftmax"):
        return "softmax"
    if "LayerNorm" in op_type:
        return "LayerNorm"
    if op_type in ("Cast", "_MklCast"):
        return "cast"
    if op_type in ("Transpose", "_MklTranspose", "ConjugateTranspose"):
        return "transpose"
    for kind, pattern in _SCOPES:
        if pattern.search(name):
            return kind
    if op_type in ("Reshape", "Identity", "ConcatV2", "Pack", "Unpack", "Split", "SplitV", "StridedSlice",
                   "Tile", "GatherV2", "Slice", "_Retval", "_Arg", "Const", "Shape"):
        return "data movement / bookkeeping"
    return "other elementwise"


def read_trace(logdir: str):
    """{(op name, op type): total ns} from the host plane of the newest .xplane.pb under logdir."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True))[-1]
    space = xplane_pb2.XSpace()
    with open(path, "rb") as f:
        space.ParseFromString(f.read())
    totals = collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        meta = plane.event_metadata
        for line in plane.lines:
            for event in line.events:
                label = meta[event.metadata_id].name
                if ":" not in label:  # TF op events are named "op_name:OpType"
                    continue
                name, _, op_type = label.rpartition(":")
                if not op_type or " " in op_type or "/" in op_type or op_type in ("Process", "Run"):
                    continue
                totals[(name, op_type)] += event.duration_ps // 1000
    return totals


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="vit_base_patch16_224")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--maps", choices=("all", "none"), default="all")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()

    model = vit_tf.create_model(args.model, dtype=args.dtype)
    h, w = model.config.img_size
    x = tf.constant(np.random.RandomState(0).randn(args.batch, h, w, 3).astype("float32"))
    fn = tf.function(lambda images: model(images, return_attention=args.maps == "all"))
    for _ in range(2):
        tf.nest.map_structure(lambda t: t.numpy(), fn(x))
    start = time.perf_counter()
    for _ in range(args.steps):
        out = fn(x)
    tf.nest.map_structure(lambda t: t.numpy(), out)
    wall = (time.perf_counter() - start) / args.steps
    out = fn(x)
    start = time.perf_counter()
    copies = [np.array(t) for t in tf.nest.flatten(out)]  # a real copy: what a user keeping the maps pays
    copy = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        for _ in range(args.steps):
            tf.nest.map_structure(lambda t: t.numpy(), fn(x))
        tf.profiler.experimental.stop()
        totals = read_trace(logdir)
    kinds = collections.Counter()
    for (name, op_type), ns in totals.items():
        kinds[op_kind(name, op_type)] += ns
    summed = sum(kinds.values()) / args.steps / 1e6
    print(f"{args.model}, batch {args.batch}, {args.dtype}, maps: {args.maps}; wall {wall * 1000:.1f} ms/batch, "
          f"summed op time {summed:.1f} ms/batch; copying {sum(c.nbytes for c in copies) / 2 ** 20:.0f} MiB of "
          f"outputs to new host arrays {copy * 1000:.1f} ms")
    for kind, ns in kinds.most_common():
        ms = ns / args.steps / 1e6
        print(f"  {kind:30s} {ms:9.1f} ms {100 * ms / summed:6.1f} %")
    print(f"top {args.top} ops (ms per batch, summed over the batch's calls):")
    by_type = collections.Counter()
    for (name, op_type), ns in totals.items():
        by_type[(op_type, op_kind(name, op_type))] += ns
    for (op_type, kind), ns in by_type.most_common(args.top):
        print(f"  {op_type:36s} {kind:28s} {ns / args.steps / 1e6:9.2f}")


if __name__ == "__main__":
    main()
