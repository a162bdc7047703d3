"""Serving the page: locally on 127.0.0.1 (`vit-tf app`), or as a Hugging Face Space (the repository's app.py)."""

from __future__ import annotations

from typing import Optional

from .common import MAX_FILE_SIZE


def serve(demo, host: Optional[str] = "127.0.0.1", port: Optional[int] = None, **launch_kwargs):
    """Launch the app on `host` (127.0.0.1 unless told otherwise; None lets Gradio read $GRADIO_SERVER_NAME, as
    Hugging Face Spaces set it) and `port` (None: Gradio's first free port from 7860)."""
    launch_kwargs.setdefault("max_file_size", MAX_FILE_SIZE)
    launch_kwargs.setdefault("ssr_mode", False)
    return demo.launch(server_name=host, server_port=port, **launch_kwargs)


__all__ = ["serve"]
