"""vit_tf, TensorFlow and the PyTorch stack (torch, torchvision, timm, triton) in one process, in every import order.

TensorFlow exports its LLVM to the whole process; triton's LLVM, loaded after it, used to bind to TensorFlow's and
crash (see `vit_tf.compat`). Each order runs in a fresh interpreter (`-E`: no PYTHONSTARTUP / PYTHONPATH; conftest's
torch-first import does not apply) that imports the modules in that order and then uses both sides: a tiny timm ViT
forward and a tiny vit_tf forward, each printing a marker only after checking its output. The interpreters run two
at a time from one module fixture, so the file takes about as long as its slowest half.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TORCH_STACK = ("torch", "torchvision", "timm")
HAVE = {name: importlib.util.find_spec(name) is not None for name in TORCH_STACK + ("triton",)}
TRITON_LOADERS = ("torchvision", "timm", "triton")  # importing any of these loads triton (torchvision via torch._dynamo)

pytestmark = pytest.mark.skipif(not all(HAVE[n] for n in TORCH_STACK), reason="torch, torchvision and timm needed")

CHILD = r"""
import importlib, sys
sys.path.insert(0, sys.argv[1])  # the checkout's vit_tf, installed or not
args = sys.argv[2:]
compile_triton = "--compile-triton" in args
for name in [a for a in args if not a.startswith("--")]:
    importlib.import_module(name)
    print("IMPORTED", name, flush=True)

import numpy as np
import timm
import torch
import vit_tf

tm = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8, depth=1).eval()
with torch.no_grad():
    y = tm(torch.zeros(1, 3, 32, 32))
assert tuple(y.shape) == (1, 1000) and bool(torch.isfinite(y).all()), y.shape
print("TIMM_FORWARD_OK", flush=True)

model = vit_tf.create_model("vit_tiny_patch16_224", depth=1, embed_dim=48, num_heads=3, mlp_dim=96, patch_size=8,
                            img_size=32, num_classes=10)
logits, attention = model(np.zeros((1, 32, 32, 3), np.float32))
assert tuple(logits.shape) == (1, 10) and np.isfinite(np.asarray(logits)).all(), logits.shape
assert tuple(attention["transformer_block_0_att"].shape) == (1, 3, 17, 17)
print("VIT_TF_FORWARD_OK", flush=True)

print("TRITON", "hidden" if "triton" in sys.modules and sys.modules["triton"] is None
      else "loaded" if "triton" in sys.modules else "absent", flush=True)

if compile_triton:  # triton's own LLVM really works after TensorFlow's, and TensorFlow's (XLA) still does after it
    import tensorflow as tf
    import triton
    import triton.language as tl
    from triton.backends.compiler import GPUTarget

    @triton.jit
    def double(x_ptr, y_ptr, n, BLOCK: tl.constexpr):
        i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        tl.store(y_ptr + i, tl.load(x_ptr + i, mask=i < n) * 2.0, mask=i < n)

    src = triton.compiler.ASTSource(fn=double, constexprs={"BLOCK": 64},
                                    signature={"x_ptr": "*fp32", "y_ptr": "*fp32", "n": "i32", "BLOCK": "constexpr"})
    kernel = triton.compile(src, target=GPUTarget("cuda", 80, 32))  # no GPU needed: LLVM -> PTX -> ptxas
    assert ".entry double" in kernel.asm["ptx"] and len(kernel.asm["cubin"]) > 0
    print("TRITON_COMPILE_OK", flush=True)

    f = tf.function(lambda x: tf.nn.relu(x @ x) + 1.0, jit_compile=True)
    assert float(tf.reduce_sum(f(tf.ones((4, 4))))) == 80.0
    print("XLA_OK", flush=True)
"""


class CrashedBeforeVitTF(AssertionError):
    """The interpreter was killed by a signal while importing a module that loads triton after TensorFlow, before
    vit_tf was imported: nothing in vit_tf ran, so nothing in vit_tf can prevent it."""


def upstream_crash(order) -> bool:
    """TensorFlow, then something that loads triton, both before vit_tf."""
    before = order[:order.index("vit_tf")]
    return HAVE["triton"] and "tensorflow" in before and any(m in before[before.index("tensorflow"):] for m in TRITON_LOADERS)


ORDERS = (
    [("vit_tf", m) for m in TORCH_STACK + ("triton",)]
    + [(m, "vit_tf") for m in TORCH_STACK + ("triton",)]
    + [("tensorflow", m, "vit_tf") for m in TORCH_STACK + ("triton",)]
    + [("tensorflow", "vit_tf", "timm")]  # the remedy for the orders above: vit_tf before the PyTorch stack
)
# These also check that triton still compiles a kernel after loading behind TensorFlow (and TensorFlow's XLA still
# runs): for a user who imported torch first, and for one who imported vit_tf first.
COMPILE = [("torch", "vit_tf"), ("vit_tf", "triton")]


def order_params():
    params = []
    for order in ORDERS:
        marks = []
        if "triton" in order and not HAVE["triton"]:
            marks.append(pytest.mark.skip(reason="triton is not installed"))
        elif upstream_crash(order):
            marks.append(pytest.mark.xfail(raises=CrashedBeforeVitTF, strict=True, reason=(
                "TensorFlow (RTLD_GLOBAL) then triton, before vit_tf is imported: crashes in TensorFlow/triton")))
        params.append(pytest.param(order, marks=marks, id="-".join(order)))
    return params


def run_child(order, workdir: Path) -> subprocess.CompletedProcess:
    script = workdir / "child.py"  # a file, not -c: triton.jit reads its kernel's source
    script.write_text(CHILD, encoding="utf-8")
    flags = ["--compile-triton"] if order in COMPILE and HAVE["triton"] else []
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env.update(KERAS_BACKEND="tensorflow", CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
               TRITON_CACHE_DIR=str(workdir / "triton-cache"))
    return subprocess.run([sys.executable, "-E", "-B", "-X", "faulthandler", str(script), str(ROOT), *order, *flags],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def results(request, tmp_path_factory):
    """Every order selected in this module, run two at a time; order -> CompletedProcess."""
    wanted = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if item.module.__name__ == __name__ and callspec is not None and "order" in callspec.params:
            if not item.get_closest_marker("skip") and callspec.params["order"] not in wanted:
                wanted.append(callspec.params["order"])
    with ThreadPoolExecutor(max_workers=2) as pool:
        done = pool.map(lambda order: run_child(order, tmp_path_factory.mktemp("import-order")), wanted)
        return dict(zip(wanted, done))


def check(proc: subprocess.CompletedProcess, names) -> list:
    """Asserts the child imported everything in order and ran both forwards; returns its stdout lines."""
    lines = proc.stdout.splitlines()
    imported = [line.split()[1] for line in lines if line.startswith("IMPORTED ")]
    report = f"exit code {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr (tail)\n{proc.stderr[-4000:]}"
    if proc.returncode < 0 and "vit_tf" not in imported:
        raise CrashedBeforeVitTF(f"killed by signal {-proc.returncode} importing "
                                 f"{names[len(imported)]!r} after {imported}\n{report}")
    assert proc.returncode == 0, report
    assert imported == list(names), report
    assert "TIMM_FORWARD_OK" in lines and "VIT_TF_FORWARD_OK" in lines, report
    # The guard never hides triton: every order leaves it importable (timm loads it through torch._dynamo).
    assert ("TRITON loaded" if HAVE["triton"] else "TRITON absent") in lines, report
    return lines


@pytest.mark.parametrize("order", order_params())
def test_import_order(results, order):
    check(results[order], order)


@pytest.mark.skipif(not HAVE["triton"], reason="triton is not installed")
@pytest.mark.parametrize("order", COMPILE, ids="-".join)
def test_triton_compiles_after_tensorflow(results, order):
    lines = check(results[order], order)
    assert "TRITON_COMPILE_OK" in lines and "XLA_OK" in lines, results[order].stderr[-4000:]


def test_guard_is_installed_by_import_and_idempotent():
    import vit_tf  # noqa: F401
    from vit_tf import compat

    if not hasattr(os, "RTLD_DEEPBIND"):
        assert not sys.platform.startswith("linux"), "glibc Linux has RTLD_DEEPBIND: the guard must be testable"
        pytest.skip("no RTLD_DEEPBIND on this platform: guard_triton hides triton instead")
    assert compat.install_import_guards() is True
    assert compat.install_import_guards() is True
    assert sum(f is compat._FINDER for f in sys.meta_path) == 1
