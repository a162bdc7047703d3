"""The reference the ports are proven against: timm, loading each official file with timm's own loader.

  - `.npz`: `timm.models.vision_transformer._load_weights` (Google's layout, prefixes, big_vision naming).
  - `.pth` / `.safetensors`: timm's `checkpoint_filter_fn` + `load_state_dict(strict=True)` (DINOv2's official
    layout included: mask token, registers, SwiGLU `w12`/`w3`).
A grid other than the checkpoint's is resampled as the model's `pos_embed_interpolation` says, written here in torch
after the code each rule comes from (`resample_like_source`): timm's `resample_abs_pos_embed` for "timm_antialias",
`F.interpolate` with the output size ("bicubic": transformers, DeiT's main.py) or with DINO's offset scale factors
("bicubic_offset").

timm has no DINO / DINOv2 linear-eval head and no longer builds the 2020 `pre_logits` layer; for those the backbone
runs in timm and the head is the official formula written here in torch (`dino_head`, `dinov2_head`,
`pre_logits_head`).
"""

from __future__ import annotations

from typing import Dict, Sequence, Tuple

import numpy as np

from vit_tf.compat import guard_triton
from vit_tf.configs import to_2tuple

guard_triton()


def available() -> Tuple[bool, str]:
    """(whether torch and timm import, reason if not)."""
    guard_triton()
    try:
        import timm  # noqa: F401
        import torch  # noqa: F401
    except ImportError as e:
        return False, f"{e.name or e} is not installed (pip install 'vit_tf[test]' for torch + timm)"
    return True, ""


def build_timm_model(config, img_size=None, no_embed_class: bool = False):
    """A timm VisionTransformer (or VisionTransformerDistilled) with the architecture of a `ViTConfig` (DINOv2's
    layer scale, registers and packed SwiGLU MLP as timm's `vit_*_dinov2` build them); heads that timm lacks (DINO
    and DINOv2 linear eval, 2020 pre_logits) are left out (num_classes=0)."""
    guard_triton()
    from timm.models.deit import VisionTransformerDistilled
    from timm.models.vision_transformer import VisionTransformer

    cls = VisionTransformerDistilled if config.head_type == "distilled" else VisionTransformer
    timm_head = config.head_type in ("token", "distilled") and not config.representation_size
    extra = {}
    if config.mlp_type == "swiglu":  # timm's ViT-g: SwiGLUPacked whose fc1 is 2 * mlp_dim wide
        import torch
        from timm.layers import SwiGLUPacked

        extra = dict(mlp_layer=SwiGLUPacked, act_layer=torch.nn.SiLU)
    # timm builds int(embed_dim * mlp_ratio) hidden units; the half keeps float rounding from losing one
    mlp_ratio = (config.mlp_dim * (2 if config.mlp_type == "swiglu" else 1) + 0.5) / config.embed_dim
    model = cls(img_size=to_2tuple(img_size or config.img_size), patch_size=config.patch_size,
                embed_dim=config.embed_dim, depth=config.depth, num_heads=config.num_heads,
                mlp_ratio=mlp_ratio, qkv_bias=config.qkv_bias,
                num_classes=config.num_classes if timm_head else 0, global_pool="token",
                no_embed_class=no_embed_class or config.no_embed_class, init_values=config.init_values,
                reg_tokens=config.num_register_tokens, **extra)
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False  # the attention probabilities exist only on the unfused path
    return model.eval()


def load_reference(config, files: Sequence[Tuple[str, str]]):
    """timm model of `config` loaded from `files` [(path, format)] with timm's own loaders.

    Returns (timm model, head): head is None when timm computes the logits itself, else a torch callable
    images -> logits with the official formula of a head timm lacks.
    """
    guard_triton()
    import torch
    from timm.models.vision_transformer import _load_weights, checkpoint_filter_fn

    heads = ("dino_linear_pth", "dinov2_linear_pth")
    (path, fmt), = [(p, f) for p, f in files if f not in heads]
    head_files = [p for p, f in files if f in heads]
    no_embed_class, npz = False, {}
    if fmt == "vit_npz":
        with np.load(path, allow_pickle=False) as f:
            npz = {name: np.asarray(f[k], np.float32) for k in f.files
                   for name in ("pre_logits/kernel", "pre_logits/bias", "head/kernel", "head/bias", "pos_embedding")
                   if k == name or k.endswith("/" + name)}
            # big_vision (top-level pos_embedding) gives the class token no position; timm calls it no_embed_class
            no_embed_class = not any(k.endswith("Transformer/posembed_input/pos_embedding") for k in f.files)
        n = npz["pos_embedding"].shape[1]
        side = int(round((n if no_embed_class else n - 1) ** 0.5))
        native = build_timm_model(config, img_size=side * config.patch_size, no_embed_class=no_embed_class)
        _load_weights(native, path)
        state_dict = native.state_dict()
    elif path.endswith(".safetensors"):
        from safetensors.torch import load_file
        state_dict = load_file(path)
    else:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
        state_dict = state_dict.get("model", state_dict)
    # timm's own conversion at the checkpoint's grid, then the grid resampled by the rule the model follows
    prefix = 0 if (no_embed_class or config.no_embed_class) else config.num_prefix_tokens
    if "register_tokens" in state_dict:  # DINOv2's official layout keeps the class position in the table
        prefix = 1
    side = int(round((state_dict["pos_embed"].shape[1] - prefix) ** 0.5))
    native = build_timm_model(config, img_size=side * config.patch_size, no_embed_class=no_embed_class)
    state_dict = checkpoint_filter_fn(state_dict, native)
    model = build_timm_model(config, no_embed_class=no_embed_class)
    old, new = (side, side), tuple(model.patch_embed.grid_size)
    if old != new:
        state_dict["pos_embed"] = resample_like_source(
            state_dict["pos_embed"], old, new, 0 if model.no_embed_class else model.num_prefix_tokens,
            config.pos_embed_interpolation)
    model.load_state_dict(state_dict, strict=True)

    if config.head_type in ("dino_last4", "dino_avgpool"):
        (head_path,) = head_files
        linear = torch.load(head_path, map_location="cpu", weights_only=True)["state_dict"]
        return model, dino_head(model, config.head_type, linear["module.linear.weight"], linear["module.linear.bias"])
    if config.head_type in ("dinov2_linear", "dinov2_linear4"):
        (head_path,) = head_files
        linear = torch.load(head_path, map_location="cpu", weights_only=True)
        return model, dinov2_head(model, config.head_type, linear["weight"], linear["bias"])
    if config.representation_size:
        t = {k: torch.from_numpy(v) for k, v in npz.items()}
        return model, pre_logits_head(model, t["pre_logits/kernel"], t["pre_logits/bias"], t["head/kernel"],
                                      t["head/bias"])
    return model, None


def resample_like_source(pos_embed, old_grid, new_grid, num_prefix_tokens: int, mode: str):
    """(1, P + gh*gw, D) torch position table -> (1, P + h*w, D), resampled as the code of `mode` does (a
    `vit_tf.configs.POS_EMBED_INTERPOLATIONS` value): timm's `resample_abs_pos_embed` ("timm_antialias"),
    `F.interpolate(size=...)` ("bicubic": transformers, DeiT), or the official DINO / DINOv2 scale factors
    (n + 0.1) / M ("bicubic_offset", unchanged when the grid is). Prefix rows are kept."""
    import torch
    from timm.layers import resample_abs_pos_embed

    if mode == "timm_antialias":
        return resample_abs_pos_embed(pos_embed, new_size=list(new_grid), old_size=list(old_grid),
                                      num_prefix_tokens=num_prefix_tokens, interpolation="bicubic", antialias=True)
    if mode == "bicubic_offset" and tuple(old_grid) == tuple(new_grid):
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    grid = grid.reshape(1, *old_grid, -1).permute(0, 3, 1, 2).float()
    if mode == "bicubic":
        grid = torch.nn.functional.interpolate(grid, size=tuple(new_grid), mode="bicubic", align_corners=False)
    elif mode == "bicubic_offset":
        scale = tuple((n + 0.1) / m for n, m in zip(new_grid, old_grid))
        grid = torch.nn.functional.interpolate(grid, scale_factor=scale, mode="bicubic", align_corners=False)
    else:
        raise ValueError(f"unknown position-embedding interpolation {mode!r}")
    if tuple(grid.shape[-2:]) != tuple(new_grid):
        raise RuntimeError(f"{mode}: resampled to {tuple(grid.shape[-2:])}, expected {tuple(new_grid)}")
    return torch.cat([prefix, grid.permute(0, 2, 3, 1).reshape(1, -1, grid.shape[1])], dim=1)


def dinov2_head(model, head_type: str, weight, bias):
    """facebookresearch/dinov2 `hub.classifiers`: 1 layer = [final-norm class token, mean of the final-norm patch
    tokens]; 4 layers = the final-normed class tokens of the last 4 blocks, then the mean of the last block's
    final-normed patch tokens (registers are in neither mean)."""
    import torch

    def head(x):
        n = 4 if head_type == "dinov2_linear4" else 1
        layers = model.get_intermediate_layers(x, n=n, return_prefix_tokens=True, norm=True)
        linear_input = torch.cat([prefix[:, 0] for _, prefix in layers] + [layers[-1][0].mean(dim=1)], dim=1)
        return torch.nn.functional.linear(linear_input, weight, bias)
    return head


def dino_head(model, head_type: str, weight, bias):
    """facebookresearch/dino eval_linear.py: `get_intermediate_layers(x, n)` (final norm on each), class tokens
    concatenated; for ViT-B (n=1, avgpool) the class token and the patch mean interleaved per channel."""
    import torch

    def head(x):
        n = 4 if head_type == "dino_last4" else 1
        tokens = model.patch_embed(x)
        tokens = model._pos_embed(tokens)
        outs = []
        for i, block in enumerate(model.blocks):
            tokens = block(tokens)
            if len(model.blocks) - i <= n:
                outs.append(model.norm(tokens))
        output = torch.cat([o[:, 0] for o in outs], dim=-1)
        if head_type == "dino_avgpool":
            output = torch.cat((output.unsqueeze(-1), torch.mean(outs[-1][:, 1:], dim=1).unsqueeze(-1)), dim=-1)
            output = output.reshape(output.shape[0], -1)
        return torch.nn.functional.linear(output, weight, bias)
    return head


def pre_logits_head(model, kernel, bias, head_kernel, head_bias):
    """The 2020 ImageNet-21k head: logits = head(tanh(pre_logits(class token))); kernels (in, out) as in the npz."""
    import torch

    def head(x):
        cls = model.forward_head(model.forward_features(x), pre_logits=True)
        return torch.tanh(cls @ kernel + bias) @ head_kernel + head_bias
    return head


def run_reference(model, head, images: np.ndarray) -> Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]:
    """Run the timm model on NHWC `images`; returns ({"features", "logits", ...}, {"transformer_block_i_att"})."""
    guard_triton()
    import torch
    from timm.utils import AttentionExtract

    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
    extractor = AttentionExtract(model, method="hook")
    with torch.no_grad():
        attention = extractor(x)
        features = model.forward_features(x)
        outputs = {"features": features[:, 0].numpy()}
        if head is not None:
            outputs["logits"] = head(x).numpy()
        elif model.num_classes:
            if hasattr(model, "head_dist"):
                outputs["cls_logits"] = model.head(features[:, 0]).numpy()
                outputs["dist_logits"] = model.head_dist(features[:, 1]).numpy()
            outputs["logits"] = model.forward_head(features).numpy()
    names = list(attention)
    if len(names) != len(model.blocks):
        raise RuntimeError(f"attention hooks found {len(names)} maps for {len(model.blocks)} blocks: {names}")
    return outputs, {f"transformer_block_{i}_att": attention[n].numpy() for i, n in enumerate(names)}
