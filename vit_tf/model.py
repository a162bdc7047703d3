"""The Vision Transformer family as one Keras 3 model: ViT (Dosovitskiy et al. 2020), DeiT and distilled DeiT
(Touvron et al. 2021), DINO (Caron et al. 2021) and DINOv2 (Oquab et al. 2023), with register tokens (Darcet et al.
2024, "Vision Transformers Need Registers").

Official sources: google-research/vision_transformer, facebookresearch/deit, facebookresearch/dino,
facebookresearch/dinov2; the layout of weights follows timm's `VisionTransformer` / `VisionTransformerDistilled`.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from .configs import ViTConfig
from .hardware import warn_if_emulated
from .registry import Recipe
from .layers import PACKAGE, PatchEmbed, TransformerBlock, layer_norm, linear, patch_conv, resample_grid, wide_dtype


def attention_key(i: int) -> str:
    """Key of block i's attention map in the returned dict."""
    return f"transformer_block_{i}_att"


@keras.saving.register_keras_serializable(package=PACKAGE)
class VisionTransformer(keras.Model):
    """ViT / DeiT / DeiT-distilled / DINO / DINOv2 (with or without registers), returning attention maps on every
    call.

    Args:
        config: a `ViTConfig` (or its dict), or its fields as keyword arguments (`img_size`, `patch_size`, ...).
        drop_rate: dropout after the position embedding, in the MLPs and after the attention projection.
        attn_drop_rate: dropout on the attention probabilities (the returned maps are taken before it).
        drop_path_rate: stochastic-depth rate, rising linearly over the blocks to this value.
        return_attention: default of the call argument of the same name: True (every block, the keras.io
            contract), False (none) or a list of block indices.
        recipe: the eval preprocessing (`vit_tf.Recipe` or its dict); default: timm's generic recipe at `img_size`.
        weight_name: the registry weight name whose config and recipe the model follows, or None.
        dtype, trainable, name: Keras's own arguments. `dtype="bfloat16"`, `"float16"` or a mixed policy
            (`"mixed_bfloat16"`) computes the blocks in that type; the softmax, the LayerNorms, the returned
            attention and the outputs stay float32, and so does the classifier. `"bfloat16"` is the fast path on
            GPUs and on CPUs with AVX-512-BF16 or AMX (`vit_tf.hardware`); elsewhere it is emulated, slower than
            float32, and a warning says so.

    Call: `model(images, training=False, return_attention=None, head_mask=None)` with images (B, H, W, 3), already
    preprocessed; H and W must be multiples of the patch size (other sizes than `img_size` resample the position
    embeddings as `config.pos_embed_interpolation` says: timm's `resample_abs_pos_embed` by default, the official
    DINOv2 or Hugging Face interpolation where the weights' reference uses it). `return_attention` None uses the
    constructor's default; a list of block indices (negative ones count from the end) returns only those maps.
    `head_mask` (depth, heads), or (B, depth, heads) with one mask per image, multiplies each head's attention
    probabilities before they mix the values (0 removes a head); the returned maps are the probabilities times the
    mask.
    Returns, in every mode, `(outputs, attention_scores)`:
        outputs: float32 logits (B, num_classes); for a model with `num_classes == 0` the final-norm class-token
            features (B, embed_dim). A distilled DeiT gives the mean of its two heads' logits.
        attention_scores: {"transformer_block_{i}_att": (B, heads, T, T)} for each requested block i, float32
            softmax probabilities before dropout; T = prefix tokens (class, then distillation or registers) +
            H/p * W/p patches.

    Example:
        >>> import numpy as np, vit_tf
        >>> model = vit_tf.create_model("vit_tiny_patch16_224", num_classes=10, depth=2)
        >>> logits, attention = model(np.zeros((1, 64, 96, 3), "float32"))
        >>> logits.shape, attention["transformer_block_1_att"].shape
        (TensorShape([1, 10]), TensorShape([1, 3, 25, 25]))
        >>> sorted(model(np.zeros((1, 64, 96, 3), "float32"), return_attention=[-1])[1])
        ['transformer_block_1_att']
    """

    def __init__(self, config: Optional[ViTConfig] = None, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, return_attention=True, recipe=None, weight_name: Optional[str] = None,
                 name: str = "vision_transformer", **kwargs):
        keras_kwargs = {k: kwargs.pop(k) for k in ("dtype", "trainable") if k in kwargs}
        super().__init__(name=name, **keras_kwargs)
        if isinstance(config, dict):
            config = ViTConfig(**config)
        if config is None:
            config = ViTConfig(**kwargs)
        elif kwargs:
            config = config.replace(**kwargs)
        self.config = config
        self.drop_rate, self.attn_drop_rate, self.drop_path_rate = drop_rate, attn_drop_rate, drop_path_rate
        self.return_attention = self._normalize_request(return_attention, allow_none=False)
        if isinstance(recipe, dict):
            recipe = Recipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in recipe.items()})
        self.recipe = recipe if recipe is not None else Recipe(input_size=config.img_size)
        self.weight_name = weight_name
        c = config
        policy = self.dtype_policy
        warn_if_emulated(policy.compute_dtype)
        self.patch_embed = PatchEmbed(c.patch_size, c.embed_dim, name="patch_embed", dtype=policy)
        self.pos_drop = keras.layers.Dropout(drop_rate, dtype=policy)
        self.blocks = [
            TransformerBlock(c.embed_dim, c.num_heads, c.mlp_dim, c.qkv_bias, c.layer_norm_eps, drop=drop_rate,
                             attn_drop=attn_drop_rate, drop_path=drop_path_rate * i / max(c.depth - 1, 1),
                             init_values=c.init_values, mlp_type=c.mlp_type, name=f"transformer_block_{i}",
                             dtype=policy)
            for i in range(c.depth)
        ]
        self.norm = keras.layers.LayerNormalization(epsilon=c.layer_norm_eps, name="norm", dtype=policy)
        self.pre_logits = (keras.layers.Dense(c.representation_size, activation="tanh", name="pre_logits",
                                              dtype=policy) if c.representation_size else None)
        # The classifier runs in float32 under every policy: logits are what users compare across dtypes.
        self.head = keras.layers.Dense(c.num_classes, name="head", dtype="float32") if c.num_classes else None
        self.head_dist = (keras.layers.Dense(c.num_classes, name="head_dist", dtype="float32")
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
        self.reg_token = (self.add_weight(shape=(1, c.num_register_tokens, d), initializer=init, name="reg_token")
                          if c.num_register_tokens else None)
        gh, gw = c.grid_size
        self.pos_embed = self.add_weight(shape=(1, c.num_pos_prefix_tokens + gh * gw, d), initializer=init,
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
        factor = {"dino_last4": 4, "dino_avgpool": 2, "dinov2_linear": 2, "dinov2_linear4": 5}.get(
            self.config.head_type, 1)
        return factor * self.config.embed_dim

    @property
    def output_key(self) -> str:
        """Name of the main output: "logits", or "features" for a model without classifier."""
        return "logits" if self.config.num_classes else "features"

    # -- forward ------------------------------------------------------------------------------------------------
    def _normalize_request(self, request, allow_none: bool = True):
        """A `return_attention` value -> True, False or a sorted tuple of non-negative block indices."""
        if request is None and allow_none:
            return self.return_attention
        if isinstance(request, (bool, np.bool_)):
            return bool(request)
        if isinstance(request, (int, np.integer)):
            request = [request]
        try:
            indices = [int(i) for i in request]
        except TypeError:
            raise TypeError(f"return_attention must be True, False or a list of block indices, got "
                            f"{request!r}") from None
        depth = self.config.depth
        bad = [i for i in indices if not -depth <= i < depth]
        if bad:
            raise ValueError(f"return_attention: block indices {bad} are out of range for {depth} blocks")
        return tuple(sorted({i % depth for i in indices}))

    def _check_head_mask(self, head_mask):
        """None, (depth, heads) for every image or (B, depth, heads) per image -> a float32 tensor or None."""
        if head_mask is None:
            return None
        head_mask = tf.convert_to_tensor(head_mask, tf.float32)
        expected = (self.config.depth, self.config.num_heads)
        rank = head_mask.shape.rank
        if rank is not None and (rank not in (2, 3) or tuple(head_mask.shape[-2:]) != expected):
            raise ValueError(f"head_mask must have shape (depth, heads) = {expected} or (batch, depth, heads), "
                             f"got {tuple(head_mask.shape)}")
        return head_mask

    @staticmethod
    def _block_mask(head_mask, i):
        if head_mask is None:
            return None
        return head_mask[i] if head_mask.shape.rank == 2 else head_mask[:, i]

    def _embed(self, images, training, dtype=None):
        """images (B, H, W, 3) -> tokens (B, T, D) in `dtype` (default: the compute dtype), prefix tokens first."""
        c = self.config
        p = c.patch_size
        dtype = tf.as_dtype(dtype or self.compute_dtype)
        images = tf.cast(images, dtype)
        static_hw = images.shape[1:3]
        if images.shape[-1] is not None and images.shape[-1] != 3:
            raise ValueError(f"images must have 3 channels (B, H, W, 3), got shape {tuple(images.shape)}")
        for side in static_hw:
            if side is not None and side % p:
                raise ValueError(f"image size {tuple(static_hw)} is not a multiple of the patch size {p}; "
                                 f"resize or crop to a multiple of {p}")
        x = patch_conv(self.patch_embed.proj, images)  # (B, gh, gw, D)
        # The grid from the image size, not from x: on an empty batch (a replica's share of a short last batch
        # under tf.distribute) the CPU convolution reports unstrided spatial sizes.
        gh, gw = tf.shape(images)[1] // p, tf.shape(images)[2] // p
        deps = []
        if None in static_hw:  # traced with a dynamic size: check when it runs
            hw = tf.shape(images)[1:3]
            deps.append(tf.debugging.assert_equal(hw % p, 0, message=f"image height and width must be multiples "
                                                                     f"of the patch size {p}"))
        with tf.control_dependencies(deps):
            x = tf.reshape(x, (tf.shape(x)[0], gh * gw, c.embed_dim))
        n_pos_prefix = c.num_pos_prefix_tokens
        # Position embeddings are read in float32 (inside a Keras call they are autocast to the compute dtype) and
        # resampled in float32 before joining the tokens' dtype; prefix sums in float32 (float64 for float64).
        wide = wide_dtype(dtype)
        pos_embed = tf.cast(self.pos_embed, tf.float32)
        grid = tf.reshape(pos_embed[:, n_pos_prefix:], (1, *c.grid_size, c.embed_dim))
        if tuple(x_ // p if x_ is not None else None for x_ in static_hw) != c.grid_size:
            grid = resample_grid(grid, (gh, gw), c.pos_embed_interpolation)
        x = x + tf.cast(tf.reshape(grid, (1, -1, c.embed_dim)), x.dtype)
        b = tf.shape(x)[0]
        # Prefix tokens in timm's order: class, then distillation or registers. Without `no_embed_class` each has its
        # own row of pos_embed; with it they have none (DINOv2-reg: the class position is folded into cls_token).
        prefix = [self.cls_token] + [t for t in (self.dist_token, self.reg_token) if t is not None]
        prefix = tf.concat([tf.cast(t, wide) for t in prefix], axis=1)  # (1, P, D)
        if n_pos_prefix:
            prefix = prefix + tf.cast(self.pos_embed, wide)[:, :n_pos_prefix]
        prefix = tf.tile(tf.cast(prefix, x.dtype), (b, 1, 1))
        x = tf.concat([prefix, x], axis=1)
        # A Keras layer call casts its input to the layer's dtype, so dropout is called only where it acts.
        return self.pos_drop(x, training=training) if training and self.drop_rate > 0 else x

    def embed(self, images) -> tf.Tensor:
        """Eval-mode token embedding: images (B, H, W, 3) -> tokens (B, T, D) in the compute dtype (patches plus
        their position embeddings, resampled to the grid, after the prefix tokens). `forward_tokens` runs the rest,
        so that a caller can change the sequence in between (drop patches, reorder them)."""
        return self._embed(images, False)

    def forward_tokens(self, tokens, head_mask=None) -> Dict[str, tf.Tensor]:
        """Every block, the final norm and the heads on a token sequence (B, T', D) in the compute dtype — any
        length, prefix tokens first (the heads read them). Returns `forward_head`'s outputs dict."""
        head_mask = self._check_head_mask(head_mask)
        b, n, d = tf.shape(tokens)[0], tf.shape(tokens)[1], self.config.embed_dim
        x = tf.reshape(tokens, (-1, d))
        hidden = []
        for i, block in enumerate(self.blocks):
            x, _ = block.forward(x, b, n, head_mask=self._block_mask(head_mask, i))
            hidden.append(tf.reshape(x, (b, n, d)))
        return self.forward_head(layer_norm(self.norm, hidden[-1]), hidden)

    def position_embedding(self) -> np.ndarray:
        """(1, P + gh * gw, D) float32: the position embedding each token receives at `img_size`, prefix tokens
        first. Prefix tokens of a `no_embed_class` model receive none (zero rows), so that analysis code can drop
        `num_prefix_tokens` rows for every family."""
        pos = np.asarray(tf.cast(self.pos_embed, tf.float32))
        missing = self.config.num_prefix_tokens - self.config.num_pos_prefix_tokens
        return np.concatenate([np.zeros((1, missing, pos.shape[-1]), np.float32), pos], axis=1)

    def forward_features(self, images, training=False, return_hidden=False, return_attention=None, head_mask=None):
        """Tokens after the final norm, (B, T, D) in the compute dtype, and the attention dict; with
        `return_hidden`, also the list of every block's output tokens (before the final norm).
        `return_attention` and `head_mask` as in the call."""
        request = self._normalize_request(return_attention)
        head_mask = self._check_head_mask(head_mask)
        x = self._embed(images, training)
        b, n, d = tf.shape(x)[0], tf.shape(x)[1], self.config.embed_dim
        x = tf.reshape(x, (-1, d))  # (B * T, D): the blocks run on token matrices (see layers.linear)
        attention, hidden = {}, []
        for i, block in enumerate(self.blocks):
            x, att = block.forward(x, b, n, training=training, head_mask=self._block_mask(head_mask, i))
            if request is True or (request is not False and i in request):
                attention[attention_key(i)] = att
            hidden.append(tf.reshape(x, (b, n, d)))
        out = layer_norm(self.norm, hidden[-1])
        return (out, attention, hidden) if return_hidden else (out, attention)

    def forward_intermediates(self, images, head_mask=None, dtype=None):
        """The eval forward pass with every block's intermediate tensors (`TransformerBlock.forward`'s record): what
        the explanation methods read, from the same code as the call.

        Args:
            images: (B, H, W, 3) preprocessed. head_mask: as in the call.
            dtype: None (the compute dtype) or "float64": the same code in float64 from the float32 weights, with
                float64 softmax, LayerNorm and head (what the LRP relevance of `transformer_attribution` divides by).
        Returns:
            (outputs dict of `forward_head`, records [per block {name: tensor}, see `TransformerBlock.forward`],
            tokens (B, T, D) after the final norm).
        """
        head_mask = self._check_head_mask(head_mask)
        x = self._embed(images, False, dtype)
        b, n, d = tf.shape(x)[0], tf.shape(x)[1], self.config.embed_dim
        x = tf.reshape(x, (-1, d))
        records, hidden = [], []
        for i, block in enumerate(self.blocks):
            record = {}
            x, _ = block.forward(x, b, n, head_mask=self._block_mask(head_mask, i), record=record)
            records.append(record)
            hidden.append(tf.reshape(x, (b, n, d)))
        tokens = layer_norm(self.norm, hidden[-1])
        return self.forward_head(tokens, hidden), records, tokens

    def forward_head(self, tokens, hidden=None) -> Dict[str, tf.Tensor]:
        """The output heads on final-norm tokens (timm's `forward_head`): the one place the head rules live.

        Args:
            tokens: (B, T, D) final-norm tokens, prefix tokens first (`forward_features`' first output).
            hidden: the blocks' output tokens before the final norm, [(B, T, D)] per block; only the "dino_last4"
                and "dinov2_linear4" heads read them (the last 4).
        Returns:
            {"features": (B, D) final-norm class token, "logits": (B, classes) when the model has a classifier,
            and for distilled DeiT also "cls_logits" and "dist_logits"}, all float32 (float64 for float64 tokens).
        """
        c = self.config
        # The heads run in float32 under every policy (float64 for float64 tokens: the exact explanation pass).
        wide = wide_dtype(tokens.dtype)
        tokens = tf.cast(tokens, wide)
        outputs = {"features": tokens[:, 0]}
        if self.head is None:
            return outputs
        if c.head_type in ("dino_last4", "dinov2_linear4") and (hidden is None or len(hidden) < 4):
            raise ValueError(f"head type {c.head_type!r} reads the last 4 blocks' outputs: pass `hidden`")
        if c.head_type in ("dino_last4", "dinov2_linear4"):
            last4 = [tf.cast(layer_norm(self.norm, h[:, 0]), wide) for h in hidden[-4:]]
        if c.head_type == "dino_last4":
            # DINO eval_linear: final norm applied to each of the last 4 blocks' outputs, class tokens concatenated.
            head_in = tf.concat(last4, axis=-1)
        elif c.head_type == "dino_avgpool":
            cls, avg = tokens[:, 0], tf.reduce_mean(tokens[:, 1:], axis=1)
            head_in = tf.reshape(tf.stack([cls, avg], axis=-1), (-1, 2 * c.embed_dim))  # channel-interleaved
        elif c.head_type in ("dinov2_linear", "dinov2_linear4"):
            # dinov2.hub.classifiers: class token(s), then the mean of the patch tokens (registers excluded).
            classes = [tokens[:, 0]] if c.head_type == "dinov2_linear" else last4
            head_in = tf.concat(classes + [tf.reduce_mean(tokens[:, c.num_prefix_tokens:], axis=1)], axis=-1)
        else:
            head_in = tokens[:, 0]
        if self.pre_logits is not None:
            head_in = linear(self.pre_logits, head_in, "tanh")
        logits = linear(self.head, head_in)
        if self.head_dist is not None:
            dist_logits = linear(self.head_dist, tokens[:, 1])
            outputs.update(cls_logits=logits, dist_logits=dist_logits)
            logits = (logits + dist_logits) / 2
        outputs["logits"] = logits
        return outputs

    def forward_all(self, images, training=False, return_attention=None, head_mask=None) \
            -> Tuple[Dict[str, tf.Tensor], Dict[str, tf.Tensor]]:
        """Every output head by name (`forward_head`), and the attention dict."""
        tokens, attention, hidden = self.forward_features(images, training, return_hidden=True,
                                                          return_attention=return_attention, head_mask=head_mask)
        return self.forward_head(tokens, hidden), attention

    def call(self, images, training=False, return_attention=None, head_mask=None):
        outputs, attention = self.forward_all(images, training=training, return_attention=return_attention,
                                              head_mask=head_mask)
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
        request = self.return_attention
        return {**super().get_config(), "config": self.config.to_dict(), "drop_rate": self.drop_rate,
                "attn_drop_rate": self.attn_drop_rate, "drop_path_rate": self.drop_path_rate,
                "return_attention": request if isinstance(request, bool) else list(request),
                "recipe": self.recipe.to_dict(), "weight_name": self.weight_name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _main_output(y_pred):
    return y_pred[0] if isinstance(y_pred, (tuple, list)) and len(y_pred) == 2 and isinstance(y_pred[1], dict) \
        else y_pred
