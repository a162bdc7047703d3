"""Serving the page: locally on 127.0.0.1 (`vit-tf app`), or as a Hugging Face Space (the repository's app.py, which
calls `space_app`)."""

from __future__ import annotations

import os
from typing import Mapping, Optional

from .common import MAX_FILE_SIZE, MAX_IMAGES, MAX_MODELS

# A Space's settings (Settings > Variables); see docs/app.md.
SPACE_VARIABLES = {
    "VIT_TF_APP_MODELS": "comma-separated registry names listed first in the model box, the first selected",
    "VIT_TF_APP_MAX_MODELS": f"models kept loaded (default {MAX_MODELS})",
    "VIT_TF_APP_MAX_IMAGES": f"forward passes kept and uploads remembered (default {MAX_IMAGES})",
}


def serve(demo, host: Optional[str] = "127.0.0.1", port: Optional[int] = None, **launch_kwargs):
    """Launch the app on `host` (127.0.0.1 unless told otherwise; None lets Gradio read $GRADIO_SERVER_NAME, as
    Hugging Face Spaces set it) and `port` (None: Gradio's first free port from 7860). `share=True` adds Gradio's
    temporary public link."""
    launch_kwargs.setdefault("max_file_size", MAX_FILE_SIZE)
    launch_kwargs.setdefault("ssr_mode", False)
    return demo.launch(server_name=host, server_port=port, **launch_kwargs)


def _count(environ: Mapping[str, str], name: str, default: int) -> int:
    text = environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"${name} must be a whole number of at least 1, got {text!r}")
    return int(text)


def space_app(environ: Optional[Mapping[str, str]] = None):
    """The app as a public host runs it (a Hugging Face Space): settings from `SPACE_VARIABLES` in `environ`
    (default: the process's environment), and no paths on the server opened from the page (local_paths=False)."""
    from .page import build_app

    environ = os.environ if environ is None else environ
    models = [m.strip() for m in environ.get("VIT_TF_APP_MODELS", "").split(",") if m.strip()]
    return build_app(models, local_paths=False,
                     max_models=_count(environ, "VIT_TF_APP_MAX_MODELS", MAX_MODELS),
                     max_images=_count(environ, "VIT_TF_APP_MAX_IMAGES", MAX_IMAGES))


__all__ = ["SPACE_VARIABLES", "serve", "space_app"]
