"""Living beside PyTorch in one process."""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger(__name__)


def guard_triton():
    """Keep triton out of a process that already loaded TensorFlow.

    TensorFlow and triton both bundle LLVM and register the same command-line options; the second registration
    aborts the process ("Option 'bitcode-mdindex-threshold' registered more than once"). torch._dynamo, which
    torchvision and timm's imports reach, loads triton. CPU inference never needs it, so when TensorFlow came
    first, `import triton` is made to raise ImportError, which PyTorch handles. Importing torch before TensorFlow
    keeps triton usable.
    """
    if "tensorflow" in sys.modules and "triton" not in sys.modules:
        logger.info("vit_tf: hiding triton from PyTorch in this process (it cannot load after TensorFlow); "
                    "import torch before vit_tf to keep it")
        sys.modules["triton"] = None


def import_timm():
    """`import timm`, safely after TensorFlow (see `guard_triton`)."""
    guard_triton()
    import timm

    return timm
