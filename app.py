"""Hugging Face Space entry point: the same app as `vit-tf app`, set up for a public host.

A Gradio Space runs `python app.py`; the Space's requirements.txt installs vit_tf with its app extra. The page opens
no paths on the server; the Space's variables VIT_TF_APP_MODELS, VIT_TF_APP_MAX_MODELS and VIT_TF_APP_MAX_IMAGES
choose the listed models and the cache sizes (`vit_tf.app.SPACE_VARIABLES`). Locally, `python app.py` serves on
127.0.0.1:7860 (Gradio reads $GRADIO_SERVER_NAME / $GRADIO_SERVER_PORT, which Spaces set).
"""

from vit_tf.app import serve, space_app

demo = space_app()

if __name__ == "__main__":
    serve(demo, host=None)
