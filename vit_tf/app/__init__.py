"""`vit-tf app`: an attention explorer in the browser (Gradio), run locally or as a Hugging Face Space.

What the Spaces of the keras.io example "Investigating Vision Transformer representations" (Gosthipaty & Paul,
2022) showed, for any registry model, directory written by `vit-tf convert` or local checkpoint: the top-5
prediction; every head's map of any block and prefix token (class, distillation, registers); DINO mass masks
(Caron et al. 2021); attention rollout (Abnar & Zuidema 2020); the block x head grid; mean attention distance;
where a clicked patch attends in every head; class explanations (`vit_tf.explain`) with their faithfulness; and
`vit-tf probe`'s figures and summary.json to download.

Two layers, a module per role:
- the pure one: `explorer` (`Explorer`: loads each model once and runs the forward pass once per (model, image,
  resize mode), in bounded least-recently-used caches from `cache`), `run` (`Run`: one forward pass and its
  geometry), `images` (samples, uploads, the model's input), `views` (the `*_view` functions: a `Run` -> a `View`
  with `vit_tf.analysis` calls; moving a slider reruns a view, never the model), `pictures` (mosaics and overlays as
  uint8 arrays), `common` (limits, choices, errors);
- the page: `page` (`Handlers`, `build_app`; Gradio is imported there only, `pip install 'vit_tf[app]'`) and
  `entry` (`serve`, and `space_app` for a public host).
"""

from .cache import LRUCache
from .common import (ASPECT, CACHE_BYTES, CROP, DEFAULT_MODEL, MASK_KEEP, MAX_FILE_SIZE, MAX_IMAGES, MAX_MODELS,
                     MAX_PIXELS, MAX_UPLOAD_BYTES, RESIZE_MODES, SAMPLES, UPLOAD, InputError, describe_error)
from .entry import SPACE_VARIABLES, serve, space_app
from .explorer import PAGE_FIELDS, Explorer
from .images import aspect_size, model_input, patch_at, picture_scale, sample_image, scale_picture
from .page import Handlers, build_app, import_gradio, model_markdown
from .pictures import (figure_array, grid_picture, heads_picture, mark_patch, masks_picture, mosaic, rollout_picture,
                       upsample)
from .run import LoadedModel, ModelSpec, Run, token_choices
from .views import (EXPLAIN_STEPS, TOKEN_METHODS, View, distance_view, explain_view, grid_view, heatmap_view,
                    input_picture, mask_view, patch_view, rollout_view)

__all__ = [
    "ASPECT", "CACHE_BYTES", "CROP", "DEFAULT_MODEL", "EXPLAIN_STEPS", "Explorer", "Handlers", "InputError",
    "LRUCache", "LoadedModel", "MASK_KEEP", "MAX_FILE_SIZE", "MAX_IMAGES", "MAX_MODELS", "MAX_PIXELS",
    "MAX_UPLOAD_BYTES", "ModelSpec", "PAGE_FIELDS", "RESIZE_MODES", "Run", "SAMPLES", "SPACE_VARIABLES",
    "TOKEN_METHODS", "UPLOAD", "View", "aspect_size", "build_app", "describe_error", "distance_view", "explain_view",
    "figure_array", "grid_picture", "grid_view", "heads_picture", "heatmap_view", "import_gradio", "input_picture",
    "mark_patch", "mask_view", "masks_picture", "model_input", "model_markdown", "mosaic", "patch_at", "patch_view",
    "picture_scale", "rollout_picture", "rollout_view", "sample_image", "scale_picture", "serve", "space_app",
    "token_choices", "upsample",
]
