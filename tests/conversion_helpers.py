"""Shared by the conversion tests: tiny configs, random checkpoints in each official layout, the timm side."""

from __future__ import annotations

import os

import numpy as np

import vit_tf  # noqa: F401  (TensorFlow first, then keep triton out; see vit_tf.compat.guard_triton)
from vit_tf.compat import guard_triton

guard_triton()

# A tiny ViT: 32x32 images, 8x8 patches (16 + prefix tokens), width 48, 3 heads.
TINY = dict(embed_dim=48, num_heads=3, mlp_dim=96, depth=2, patch_size=8, img_size=32, num_classes=10)


def rand(rng, *shape, scale=0.2):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def google_npz(path, config, seed=0, prefix="", style="vit", scanned=False, grid_only_pos=False,
               pre_logits=None, head=True, grid=None):
    """Write a random checkpoint in Google's `.npz` layout for `config` (a ViTConfig); returns the arrays."""
    rng = np.random.default_rng(seed)
    d, heads, m, p = config.embed_dim, config.num_heads, config.mlp_dim, config.patch_size
    hd = d // heads
    gh, gw = grid or config.grid_size
    mha, mlp, ln1, ln2 = {"vit": ("MultiHeadDotProductAttention_1", "MlpBlock_3", "LayerNorm_0", "LayerNorm_2"),
                          "big_vision": ("MultiHeadDotProductAttention_0", "MlpBlock_0", "LayerNorm_0",
                                         "LayerNorm_1")}[style]
    w = {"embedding/kernel": rand(rng, p, p, 3, d), "embedding/bias": rand(rng, d), "cls": rand(rng, 1, 1, d),
         "Transformer/encoder_norm/scale": 1 + rand(rng, d), "Transformer/encoder_norm/bias": rand(rng, d)}
    pos = rand(rng, 1, gh * gw + (0 if grid_only_pos else 1), d)
    w["pos_embedding" if style == "big_vision" else "Transformer/posembed_input/pos_embedding"] = pos
    block = {f"{ln1}/scale": (d,), f"{ln1}/bias": (d,), f"{ln2}/scale": (d,), f"{ln2}/bias": (d,),
             f"{mha}/query/kernel": (d, heads, hd), f"{mha}/key/kernel": (d, heads, hd),
             f"{mha}/value/kernel": (d, heads, hd), f"{mha}/query/bias": (heads, hd),
             f"{mha}/key/bias": (heads, hd), f"{mha}/value/bias": (heads, hd), f"{mha}/out/kernel": (heads, hd, d),
             f"{mha}/out/bias": (d,), f"{mlp}/Dense_0/kernel": (d, m), f"{mlp}/Dense_0/bias": (m,),
             f"{mlp}/Dense_1/kernel": (m, d), f"{mlp}/Dense_1/bias": (d,)}
    for name, shape in block.items():
        offset = 1.0 if name.endswith("scale") else 0.0
        if scanned:
            w[f"Transformer/encoderblock/{name}"] = offset + rand(rng, config.depth, *shape)
        else:
            for i in range(config.depth):
                w[f"Transformer/encoderblock_{i}/{name}"] = offset + rand(rng, *shape)
    head_in = d
    if pre_logits:
        w["pre_logits/kernel"], w["pre_logits/bias"] = rand(rng, d, pre_logits), rand(rng, pre_logits)
        head_in = pre_logits
    if head:
        w["head/kernel"], w["head/bias"] = rand(rng, head_in, config.num_classes), rand(rng, config.num_classes)
    w = {prefix + k: v for k, v in w.items()}
    np.savez(path, **w)
    return w


def timm_layout(config, seed=0):
    """A random timm-layout state dict (NumPy, no torch needed) of `config`, shaped by the model's own export."""
    from vit_tf.weights import timm_state_dict

    rng = np.random.default_rng(seed)
    return {key: rng.normal(0, 0.2, value.shape).astype(np.float32)
            for key, value in timm_state_dict(vit_tf.VisionTransformer(config)).items()}


def random_timm_state_dict(config, seed=0):
    """State dict of a timm model of `config` with every parameter ~ N(0, 0.2) (norm scales around 1)."""
    import torch

    from conversion.reference import build_timm_model

    torch.manual_seed(seed)
    model = build_timm_model(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(0, 0.2)
            if "norm" in name and name.endswith("weight"):
                param.add_(1.0)
    return {k: v.clone() for k, v in model.state_dict().items()}


def dinov2_official(config, seed=0):
    """A random DINOv2 backbone of `config` in the official `*_pretrain.pth` layout (facebookresearch/dinov2):
    `mask_token`; with registers, `register_tokens` and the class position inside `pos_embed` (random, so that
    folding it back is tested); SwiGLU as `mlp.w12` / `mlp.w3`. Returns the torch state dict."""
    import torch

    sd = random_timm_state_dict(config, seed)
    g = torch.Generator().manual_seed(seed + 1)
    sd["mask_token"] = 0.2 * torch.randn(1, config.embed_dim, generator=g)
    if config.num_register_tokens:
        class_pos = 0.2 * torch.randn(1, 1, config.embed_dim, generator=g)
        sd["register_tokens"] = sd.pop("reg_token")
        sd["cls_token"] = sd["cls_token"] - class_pos
        sd["pos_embed"] = torch.cat([class_pos, sd["pos_embed"]], dim=1)
    if config.mlp_type == "swiglu":
        for key in [k for k in sd if ".mlp.fc" in k]:
            sd[key.replace("mlp.fc1", "mlp.w12").replace("mlp.fc2", "mlp.w3")] = sd.pop(key)
    return sd


def timm_outputs(model, images, head=None):
    """(logits or features, [attention per block]) of a timm model on NHWC images, with timm's own extractor."""
    import torch
    from timm.utils import AttentionExtract

    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    with torch.no_grad():
        attention = AttentionExtract(model, method="hook")(x)
        out = head(x) if head is not None else model(x)
    return out.numpy(), [a.numpy() for a in attention.values()]


def saved_model_outputs(directory, images):
    """Run DIR/saved_model through tf.saved_model.load and keras.layers.TFSMLayer; both must agree."""
    import keras
    import tensorflow as tf

    path = os.path.join(directory, "saved_model")
    served = tf.saved_model.load(path).signatures["serving_attention"](images=tf.constant(images))
    layer = keras.layers.TFSMLayer(path, call_endpoint="serving_attention")
    via_layer = layer(tf.constant(images))
    for key, value in served.items():
        np.testing.assert_array_equal(value.numpy(), np.asarray(via_layer[key]))
    return {k: v.numpy() for k, v in served.items()}


def parity_images(config, batch=3, seed=1):
    return np.random.default_rng(seed).standard_normal((batch, *config.img_size, 3)).astype(np.float32)


class FileServer:
    """A real HTTP server on 127.0.0.1 (random port, own thread) serving the files under `root`.

    `/cut/<path>` sends the headers of the whole file but only half its bytes, then closes the connection.
    Missing files get 404. `requests` lists the paths asked for.
    """

    def __init__(self, root):
        import functools
        import http.server
        import threading

        self.root = os.fspath(root)
        self.requests = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                if self.path.startswith("/cut/"):
                    path = os.path.join(server.root, self.path[len("/cut/"):])
                    with open(path, "rb") as f:
                        data = f.read()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     functools.partial(Handler, directory=self.root))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def cli(argv):
    """`vit-tf ARGV` in-process; returns the exit status."""
    from vit_tf import cli as cli_module
    return cli_module.main([str(a) for a in argv])
