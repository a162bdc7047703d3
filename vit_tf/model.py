"""The Vision Transformer family as one Keras 3 model: ViT (Dosovitskiy et al. 2020), DeiT and distilled DeiT
(Touvron et al. 2021) and DINO (Caron et al. 2021).

Official sources: google-research/vision_transformer, facebookresearch/deit, facebookresearch/dino; the layout of
weights follows timm's `VisionTransformer` / `VisionTransformerDistilled`.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import keras
import tensorflow as tf

from .configs import ViTConfig
from .layers import PACKAGE, PatchEmbed, TransformerBlock, resample_grid


def attention_key(i: int) -> str:
    """Key of block i's attention map in the returned dict."""
    return f"transformer_block_{i}_att"


@keras.saving.register_keras_serializable(package=PACKAGE)
class VisionTransformer(keras.Model):
    """ViT / DeiT / DeiT-distilled / DINO, returning attention maps on every call.

    Args:
        config: a `ViTConfig`, or its fields as keyword arguments (`img_size`, `patch_size`, ...).
        drop_rate: dropout after the position embedding, in the MLPs and after the attention projection.
        attn_drop_rate: dropout on the attention probabilities (the returned maps are taken before it).
        drop_path_rate: stochastic-depth rate, rising linearly over the blocks to this value.

    Call: `model(images, training=False)` with images (B, H, W, 3) float32, already preprocessed; H and W must be
    multiples of the patch size (other sizes than `img_size` resample the position embeddings like timm's
    `resample_abs_pos_embed`). Returns, in every mode, `(outputs, attention_scores)`:
        outputs: logits (B, num_classes); for a model with `num_classes == 0` the final-norm class-token
            features (B, embed_dim). A distilled DeiT gives the mean of its two heads' logits.
        attention_scores: {"transformer_block_{i}_att": (B, heads, T, T)} for every block i, softmax
            probabilities before dropout; T = prefix tokens (class, then distillation) + H/p * W/p patches.

    Example:
        >>> import numpy as np, vit_tf
        >>> model = vit_tf.create_model("vit_tiny_patch16_224", num_classes=10, depth=2)
        >>> logits, attention = model(np.zeros((1, 64, 96, 3), "float32"))
        >>> logits.shape, attention["transformer_block_1_att"].shape
        (TensorShape([1, 10]), TensorShape([1, 3, 25, 25]))
    """

    def __init__(self, config: Optional[ViTConfig] = None, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, name: str = "vision_transformer", **config_fields):
        super().__init__(name=name)
        if config is None:
            config = ViTConfig(**config_fields)
        elif config_fields:
            config = config.replace(**config_fields)
        self.config = config
        self.drop_rate, self.attn_drop_rate, self.drop_path_rate = drop_rate, attn_drop_rate, drop_path_rate
        c = config
        self.patch_embed = PatchEmbed(c.patch_size, c.embed_dim, name="patch_embed")
        self.pos_drop = keras.layers.Dropout(drop_rate)
        self.blocks = [
            TransformerBlock(c.embed_dim, c.num_heads, c.mlp_dim, c.qkv_bias, c.layer_norm_eps, drop=drop_rate,
                             attn_drop=attn_drop_rate, drop_path=drop_path_rate * i / max(c.depth - 1, 1),
                             name=f"transformer_block_{i}")
            for i in range(c.depth)
        ]
        self.norm = keras.layers.LayerNormalization(epsilon=c.layer_norm_eps, name="norm")
        self.pre_logits = (keras.layers.Dense(c.representation_size, activation="tanh", name="pre_logits")
                           if c.representation_size else None)
        self.head = keras.layers.Dense(c.num_classes, name="head") if c.num_classes else None
        self.head_dist = (keras.layers.Dense(c.num_classes, name="head_dist")
                          if c.num_classes and c.head_type == "distilled" else None)
        self.build((None, *c.img_size, 3))

    # -- weights ------------------------------------------------------------------------------------------------
    def build(self, input_shape):
        c = self.config
        d = c.embed_dim
        self.patch_embed.build((None, None, None, 3))
        init = keras.initializers.TruncatedNormal(stddev=0.02)
        self.cls_token = self.add_weight(shape=(1, 1, d), initializer=init, name="cls_token")
        self.dist_token = (self.add_weight(shape=(1, 1, d), initializer=init, name="dist_token")
                           if c.head_type == "distilled" else None)
        gh, gw = c.grid_size
        self.pos_embed = self.add_weight(shape=(1, c.num_prefix_tokens + gh * gw, d), initializer=init,
                                         name="pos_embed")
        for block in self.blocks:
            block.build((None, None, d))
        self.norm.build((None, None, d))
        head_in = self.head_input_dim
        if self.pre_logits is not None:
            self.pre_logits.build((None, head_in))
            head_in = c.representation_size
        for head in (self.head, self.head_dist):
            if head is not None:
                head.build((None, head_in))
        self.built = True

    @property
    def head_input_dim(self) -> int:
        factor = {"dino_last4": 4, "dino_avgpool": 2}.get(self.config.head_type, 1)
        return factor * self.config.embed_dim

    @property
    def output_key(self) -> str:
        """Name of the main output: "logits", or "features" for a model without classifier."""
        return "logits" if self.config.num_classes else "features"

    # -- forward ------------------------------------------------------------------------------------------------
    def _embed(self, images, training):
        c = self.config
        p = c.patch_size
        static_hw = images.shape[1:3]
        if images.shape[-1] is not None and images.shape[-1] != 3:
            raise ValueError(f"images must have 3 channels (B, H, W, 3), got shape {tuple(images.shape)}")
        for side in static_hw:
            if side is not None and side % p:
                raise ValueError(f"image size {tuple(static_hw)} is not a multiple of the patch size {p}; "
                                 f"resize or crop to a multiple of {p}")
        x = self.patch_embed(images)  # (B, gh, gw, D)
        gh, gw = tf.shape(x)[1], tf.shape(x)[2]
        deps = []
        if None in static_hw:  # traced with a dynamic size: check when it runs
            hw = tf.shape(images)[1:3]
            deps.append(tf.debugging.assert_equal(hw % p, 0, message=f"image height and width must be multiples "
                                                                     f"of the patch size {p}"))
        with tf.control_dependencies(deps):
            x = tf.reshape(x, (tf.shape(x)[0], gh * gw, c.embed_dim))
        n_prefix = c.num_prefix_tokens
        grid = tf.reshape(self.pos_embed[:, n_prefix:], (1, *c.grid_size, c.embed_dim))
        if tuple(x_ // p if x_ is not None else None for x_ in static_hw) != c.grid_size:
            grid = resample_grid(grid, (gh, gw))
        x = x + tf.reshape(grid, (1, -1, c.embed_dim))
        b = tf.shape(x)[0]
        prefix = [self.cls_token] + ([self.dist_token] if self.dist_token is not None else [])
        prefix = [tf.tile(t + self.pos_embed[:, i:i + 1], (b, 1, 1)) for i, t in enumerate(prefix)]
        return self.pos_drop(tf.concat(prefix + [x], axis=1), training=training)

    def forward_features(self, images, training=False, return_hidden=False):
        """Tokens after the final norm, (B, T, D), and the attention dict; with `return_hidden`, also the
        list of every block's output tokens (before the final norm)."""
        x = self._embed(images, training)
        attention, hidden = {}, []
        for i, block in enumerate(self.blocks):
            x, attention[attention_key(i)] = block(x, training=training)
            hidden.append(x)
        out = self.norm(x)
        return (out, attention, hidden) if return_hidden else (out, attention)

    def forward_all(self, images, training=False) -> Tuple[Dict[str, tf.Tensor], Dict[str, tf.Tensor]]:
        """Every output head by name, and the attention dict.

        Returns ({"features": (B, D) final-norm class token, "logits": (B, classes) when the model has a
        classifier, and for distilled DeiT also "cls_logits" and "dist_logits"}, attention_scores).
        """
        c = self.config
        tokens, attention, hidden = self.forward_features(images, training, return_hidden=True)
        outputs = {"features": tokens[:, 0]}
        if self.head is None:
            return outputs, attention
        if c.head_type == "dino_last4":
            # DINO eval_linear: final norm applied to each of the last 4 blocks' outputs, class tokens concatenated.
            head_in = tf.concat([self.norm(h[:, 0]) for h in hidden[-4:]], axis=-1)
        elif c.head_type == "dino_avgpool":
            cls, avg = tokens[:, 0], tf.reduce_mean(tokens[:, 1:], axis=1)
            head_in = tf.reshape(tf.stack([cls, avg], axis=-1), (-1, 2 * c.embed_dim))  # channel-interleaved
        else:
            head_in = tokens[:, 0]
        if self.pre_logits is not None:
            head_in = self.pre_logits(head_in)
        logits = self.head(head_in)
        if self.head_dist is not None:
            dist_logits = self.head_dist(tokens[:, 1])
            outputs.update(cls_logits=logits, dist_logits=dist_logits)
            logits = (logits + dist_logits) / 2
        outputs["logits"] = logits
        return outputs, attention

    def call(self, images, training=False):
        outputs, attention = self.forward_all(images, training=training)
        return outputs[self.output_key], attention

    # -- training -----------------------------------------------------------------------------------------------
    # `fit` / `evaluate` see the `(outputs, attention)` pair; compiled losses and metrics apply to `outputs` alone,
    # so `model.compile(loss=..., metrics=[...]); model.fit(images, labels)` works as for a single-output model.
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        return super().compute_loss(x, y, _main_output(y_pred), sample_weight, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        return super().compute_metrics(x, y, _main_output(y_pred), sample_weight)

    # -- serialization ------------------------------------------------------------------------------------------
    def get_config(self):
        return {"name": self.name, "drop_rate": self.drop_rate, "attn_drop_rate": self.attn_drop_rate,
                "drop_path_rate": self.drop_path_rate, **self.config.to_dict()}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _main_output(y_pred):
    return y_pred[0] if isinstance(y_pred, (tuple, list)) and len(y_pred) == 2 and isinstance(y_pred[1], dict) \
        else y_pred
