import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # CPU-only numbers: parity tolerances are float32 CPU

try:
    # TensorFlow and triton (loaded by torchvision through torch._dynamo) both carry LLVM; loading triton after
    # TensorFlow aborts the process ("Option 'bitcode-mdindex-threshold' registered more than once"), loading it
    # first does not. So the reference stack is imported before anything imports TensorFlow.
    import torch  # noqa: F401
    import torchvision  # noqa: F401
except ImportError:  # the test extra is missing: parity tests are skipped with their own message
    pass
