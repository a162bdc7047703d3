"""Hugging Face Space entry point: the same app as `vit-tf app`.

A Gradio Space runs `python app.py`; the Space's requirements.txt installs vit_tf with its app extra. Locally,
`python app.py` serves on 127.0.0.1:7860 (Gradio reads $GRADIO_SERVER_NAME / $GRADIO_SERVER_PORT, which Spaces set).
"""

from vit_tf.app import build_app, serve

demo = build_app()

if __name__ == "__main__":
    serve(demo, host=None)
