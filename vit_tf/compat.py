"""Living beside PyTorch in one process: TensorFlow and triton each carry their own LLVM.

Why `import triton` after TensorFlow used to kill the process (Linux, glibc)
---------------------------------------------------------------------------
TensorFlow's `pywrap_tensorflow` loads `_pywrap_tensorflow_internal.so` with RTLD_GLOBAL, which puts
`libtensorflow_framework.so.2` and `libtensorflow_cc.so.2` in the process-wide symbol scope. Both export tens of
thousands of LLVM and MLIR symbols (TensorFlow's own LLVM revision, for XLA). `triton/_C/libtriton.so` embeds a
different LLVM/MLIR revision and exports the same symbol names without binding them to itself, so when it is
dlopened after TensorFlow the dynamic linker resolves its references to TensorFlow's copies (LD_DEBUG=bindings shows
~16,000 such bindings). Triton's static initialisers then run against foreign data structures: a segmentation fault
in `llvm::DebugCounter` registration (`_GLOBAL__sub_I_PassBuilder.cpp`), or, with other version pairs, an abort
"Option '...' registered more than once" from the shared `llvm::cl` option registry. It does not matter who imports
triton: `import torchvision` and `import timm` reach it through `torch._dynamo`; `import torch` alone does not.
Triton loaded first is safe: Python dlopens it RTLD_LOCAL|RTLD_NOW, so TensorFlow never sees its symbols.

The fix
-------
`import vit_tf` calls `install_import_guards()`, which puts a finder at the front of `sys.meta_path`. When
`triton._C.libtriton` is about to be imported while TensorFlow is loaded, the finder dlopens that file first with
RTLD_DEEPBIND (its own symbols ahead of the global scope, so it binds to its own LLVM) and then lets the normal
import proceed, whose dlopen of the same file returns the library already loaded. Triton stays fully usable (it
compiles kernels; TensorFlow's XLA keeps working); nothing is done in any other case, and it costs nothing until
triton is imported. What vit_tf cannot fix is a process that imports TensorFlow and then triton (or torchvision,
timm) before vit_tf is imported: that crashes without vit_tf's involvement.

Where RTLD_DEEPBIND does not exist (non-glibc), `guard_triton` falls back to hiding triton after TensorFlow
(`import triton` then raises ImportError, which PyTorch handles: CPU inference never needs it).
"""

from __future__ import annotations

import ctypes
import importlib.machinery
import logging
import os
import sys

logger = logging.getLogger(__name__)

_LIBTRITON = "triton._C.libtriton"
_DEEPBIND = getattr(os, "RTLD_DEEPBIND", None)  # glibc only


class _TritonDeepBindFinder:
    """A `sys.meta_path` finder that only pre-loads libtriton with RTLD_DEEPBIND and always returns None, so the
    regular path finder imports the module (see the module docstring)."""

    def __init__(self):
        self.handle = None  # the ctypes handle, kept so that the library is never unloaded

    def find_spec(self, fullname, path=None, target=None):
        if fullname != _LIBTRITON or self.handle is not None or "tensorflow" not in sys.modules:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            return None
        try:
            self.handle = ctypes.CDLL(spec.origin, mode=os.RTLD_NOW | os.RTLD_LOCAL | _DEEPBIND)
        except OSError as e:  # let the regular import report it
            logger.debug("vit_tf: could not pre-load %s with RTLD_DEEPBIND: %s", spec.origin, e)
        return None


_FINDER = _TritonDeepBindFinder() if _DEEPBIND is not None else None


def install_import_guards() -> bool:
    """Let triton load after TensorFlow (called by `import vit_tf`; idempotent). Returns whether the guard is on."""
    if _FINDER is None:
        return False
    if _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)
    return True


def guard_triton():
    """Make `import triton` safe in a process that loaded (or will load) TensorFlow.

    Installs the import guard (triton then loads with its own LLVM and stays usable). Without RTLD_DEEPBIND, if
    TensorFlow is loaded and triton is not, triton is hidden instead: `import triton` raises ImportError.
    """
    if install_import_guards():
        return
    if "tensorflow" in sys.modules and "triton" not in sys.modules:
        logger.info("vit_tf: hiding triton in this process (it cannot load after TensorFlow here); "
                    "import triton before TensorFlow to keep it")
        sys.modules["triton"] = None


def import_timm():
    """`import timm`, safely after TensorFlow (see `guard_triton`)."""
    guard_triton()
    import timm

    return timm
