"""Analysis reduced inside the forward pass's tf.function equals the NumPy analysis of the returned maps; the same
over two devices (MirroredStrategy on two logical CPUs) and two worker processes (MultiWorkerMirroredStrategy on
127.0.0.1)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import vit_tf
from vit_tf import analysis as A
from vit_tf.analysis.graph import GraphAnalysis
from helpers import random_images

TINY = dict(depth=3, img_size=32, patch_size=8, embed_dim=48, num_heads=3, mlp_dim=96)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def distilled():
    import keras
    keras.utils.set_random_seed(3)
    return vit_tf.create_model("deit_tiny_distilled_patch16_224", **TINY, num_classes=5)


@pytest.mark.parametrize("size", [(32, 32), (24, 40)])
@pytest.mark.parametrize("fusion,discard,start,token", [("mean", 0.0, 0, "cls"), ("max", 0.5, 1, "dist"),
                                                       ("min", 0.9, -1, "cls")])
def test_graph_reductions_equal_numpy(distilled, size, fusion, discard, start, token):
    images = random_images(3, *size, seed=2)
    logits, attention = distilled(images)
    grid = (size[0] // 8, size[1] // 8)
    common = dict(num_prefix_tokens=2, grid_size=grid)
    graph = GraphAnalysis(distilled, rollout=True, head_fusion=fusion, discard_ratio=discard, start_block=start,
                          token=token, token_maps_block=1)
    got = graph(images)
    np.testing.assert_allclose(got["logits"], logits, atol=1e-5)
    expected = A.mean_attention_distance(attention, patch_size=8, **common)
    np.testing.assert_allclose(got["mean_distance"], expected, rtol=1e-5, atol=1e-5)
    roll = A.attention_rollout(attention, head_fusion=fusion, discard_ratio=discard, start_block=start, token=token,
                               **common)
    np.testing.assert_allclose(got["rollout"], roll, atol=1e-6)
    maps = A.token_attention(attention, block=1, token=token, **common)
    np.testing.assert_allclose(got["token_maps"], maps, atol=1e-7)
    assert got["mean_distance"].shape == (3, 3, 3) and got["rollout"].shape == (3, *grid)


def test_graph_renormalize_and_selected_blocks(distilled):
    images = random_images(2, 32, 32, seed=5)
    _, attention = distilled(images)
    got = GraphAnalysis(distilled, renormalize=True, outputs=False)(images)
    assert set(got) == {"mean_distance"}
    np.testing.assert_allclose(got["mean_distance"], A.mean_attention_distance(
        attention, patch_size=8, num_prefix_tokens=2, renormalize=True), rtol=1e-5)
    only_maps = GraphAnalysis(distilled, mean_distance=False, token_maps_block=-1)
    assert only_maps._requested_blocks() == [2]  # only the block that is reduced is materialised
    assert set(only_maps(images)) == {"logits", "features", "cls_logits", "dist_logits", "token_maps"}
    with pytest.raises(ValueError, match="start_block 7 is out of range for 3 blocks"):
        GraphAnalysis(distilled, rollout=True, start_block=7)


def test_graph_on_a_saved_model_and_under_xla(distilled, tmp_path):
    path = vit_tf.export_saved_model(distilled, tmp_path / "sm")
    saved = vit_tf.load(path)
    images = random_images(2, 24, 40, seed=7)
    _, attention = distilled(images)
    got = GraphAnalysis(saved, rollout=True)(images)
    np.testing.assert_allclose(got["mean_distance"], A.mean_attention_distance(
        attention, patch_size=8, num_prefix_tokens=2, grid_size=(3, 5)), rtol=1e-5)
    xla = GraphAnalysis(distilled, rollout=True, jit_compile=True)(images)
    np.testing.assert_allclose(xla["rollout"], got["rollout"], atol=1e-5)


def test_dataset_mean_distance_streams_like_the_numpy_path(distilled):
    import tensorflow as tf

    from vit_tf.analysis.graph import dataset_mean_distance

    images = random_images(5, 32, 32, seed=9)
    seen = []
    stats = dataset_mean_distance(distilled, tf.data.Dataset.from_tensor_slices(images).batch(2),
                                  on_batch=seen.append)
    reference = A.accumulate_mean_distance(A.KerasSource(distilled), [images[:2], images[2:4], images[4:]])
    assert stats.count == 5 and seen == [2, 2, 1]
    np.testing.assert_allclose(stats.mean, reference.mean, rtol=1e-5)
    np.testing.assert_allclose(stats.std, reference.std, rtol=1e-4, atol=1e-5)


MIRRORED = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras, vit_tf
    from vit_tf import distribute
    from vit_tf.analysis.graph import GraphAnalysis
    keras.utils.set_random_seed(0)
    model = vit_tf.create_model("vit_tiny_patch16_224", depth=2, img_size=32, patch_size=8, embed_dim=48,
                                num_heads=3, mlp_dim=96, num_classes=4)
    images = np.random.RandomState(1).randn(7, 32, 32, 3).astype("float32")
    single = GraphAnalysis(model, rollout=True)(images)
    strategy = distribute.make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    replica = distribute.replicate_model(model, strategy)
    graph = GraphAnalysis(replica, rollout=True, strategy=strategy)
    batches = distribute.distribute_batches(strategy, tf.data.Dataset.from_tensor_slices(images).batch(4))
    parts = [graph(b) for b in batches]
    for key in ("logits", "mean_distance", "rollout"):
        got = np.concatenate([p[key] for p in parts])
        assert got.shape == single[key].shape, (key, got.shape)
        err = float(np.max(np.abs(got - single[key])))
        assert err < 1e-5, (key, err)
    # Evaluation: the same top-1 / top-5 counts over 7 labelled images, batches split over both replicas.
    from vit_tf.evaluation import evaluate
    labels = np.array([0, 1, 2, 3, 0, 1, 2], np.int32)
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(3)
    one = evaluate(model, data, 7, progress=False)
    two = evaluate(model, data, 7, progress=False, strategy=strategy)
    assert two["replicas"] == 2 and two["images"] == one["images"] == 7, two
    assert (two["top1"], two["top5"]) == (one["top1"], one["top5"]), (one, two)
    print("MIRRORED-OK", strategy.num_replicas_in_sync)
""")


def _env():
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CONFIG",)}
    env.update(PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    return env


def test_mirrored_strategy_on_two_logical_cpus_equals_one_device():
    run = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True, env=_env(), timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "MIRRORED-OK 2" in run.stdout


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


WORKER = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import tensorflow as tf
    from vit_tf import distribute
    strategy = distribute.make_strategy("multiworker")  # first, before other TensorFlow work
    import keras, vit_tf
    from vit_tf.analysis import RunningMoments
    from vit_tf.analysis.graph import GraphAnalysis
    keras.utils.set_random_seed(0)
    model = vit_tf.create_model("vit_tiny_patch16_224", depth=2, img_size=32, patch_size=8, embed_dim=48,
                                num_heads=3, mlp_dim=96, num_classes=4)
    images = np.random.RandomState(1).randn(10, 32, 32, 3).astype("float32")
    graph = GraphAnalysis(distribute.replicate_model(model, strategy), strategy=strategy)
    stats = RunningMoments()
    for batch in distribute.distribute_batches(strategy, tf.data.Dataset.from_tensor_slices(images).batch(4)):
        stats.update(graph(batch)["mean_distance"])
    single = GraphAnalysis(model)(images)["mean_distance"]
    out = {"count": stats.count, "mean_err": float(np.max(np.abs(stats.mean - single.mean(0)))),
           "std_err": float(np.max(np.abs(stats.std - single.std(0)))), "chief": distribute.is_chief(strategy)}
    print("RESULT " + json.dumps(out))
""")


def test_multiworker_strategy_with_two_processes_on_localhost(tmp_path):
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = _env()
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err[-3000:]
            results.append(json.loads(out.split("RESULT ", 1)[1].splitlines()[0]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for r in results:  # every worker sees the global result: all 10 images, the single-device moments
        assert r["count"] == 10 and r["mean_err"] < 1e-5 and r["std_err"] < 1e-5, r
    assert [r["chief"] for r in results] == [True, False]


def test_distance_command_dtype_and_strategy(tmp_path):
    """`vit-tf distance --dtype bfloat16` stays close to float32; `--strategy mirrored` gives the same numbers."""
    from PIL import Image

    from vit_tf.cli import main

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(
            folder / f"{i}.jpg")
    runs = {}
    for label, extra in (("f32", []), ("bf16", ["--dtype", "bfloat16"]), ("mirrored", ["--strategy", "mirrored"])):
        out = tmp_path / label
        assert main(["distance", str(folder), "--model", "vit_tiny_patch16_224", "--random-weights",
                     "--batch-size", "2", "--out", str(out), *extra]) == 0
        report = json.loads((out / "distances.json").read_text())
        runs[label] = report["models"][0]
    assert runs["bf16"]["dtype"] == "bfloat16" and runs["f32"]["images"] == runs["bf16"]["images"] == 5
    f32 = np.asarray(runs["f32"]["mean"])
    np.testing.assert_allclose(np.asarray(runs["mirrored"]["mean"]), f32, atol=1e-4)
    assert float(np.max(np.abs(np.asarray(runs["bf16"]["mean"]) - f32))) < 0.5  # pixels, of ~100
