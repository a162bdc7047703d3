"""The page: Gradio components laid over the pure layer. `Handlers` turns the page's fields into the views' outputs
(callable without a server); `build_app` lays out the page and names its API endpoints. Gradio is imported here
only (`pip install 'vit_tf[app]'`)."""

from __future__ import annotations

import logging
import os
from typing import Optional, Sequence, Union

from ..analysis.rollout import HEAD_FUSIONS
from .common import CROP, MASK_KEEP, RESIZE_MODES, SAMPLES, UPLOAD, describe_error
from .explorer import Explorer
from .images import patch_at
from .run import Run
from .views import (EXPLAIN_STEPS, TOKEN_METHODS, distance_view, explain_view, grid_view, heatmap_view,
                    input_picture, mask_view, patch_view, rollout_view)

logger = logging.getLogger(__name__)
LAST = -1  # the block fields' default: the last block of whichever model runs


def import_gradio():
    """Gradio, or an ImportError naming the extra that installs it."""
    try:
        import gradio
    except ImportError as e:
        raise ImportError(f"the app needs Gradio, which is not installed ({e}): pip install 'vit_tf[app]'") from None
    return gradio


def model_markdown(run: Run) -> str:
    """The page's description of the model that ran, led by a warning when its weights are random."""
    m = run.model
    c = m.config
    gh, gw = run.grid_size
    text = (f"**{m.name}**: {m.source}. Input {run.x.shape[2]}x{run.x.shape[1]} ({run.mode}), patch "
            f"{c.patch_size}, grid {gw}x{gh}; tokens: {', '.join(run.tokens)}, then the patches; {run.depth} blocks "
            f"x {run.heads} heads.")
    if c.num_classes == 0:
        text += " A feature model: no classifier, so no prediction."
    if m.random:
        text = ("### ⚠️ RANDOM WEIGHTS: a smoke test. The prediction is meaningless and the maps show no learned "
                f"structure.\n\n{text}")
    return text


_EXPECTED = (ValueError, KeyError, OSError, ImportError, MemoryError)


def _reported(n_outputs: int):
    """A handler whose failure becomes {"error": message} in its last output (and None in the others): the page
    shows one line, never a traceback; unexpected errors are logged with theirs."""

    def decorate(fn):
        import functools

        @functools.wraps(fn)  # keeps the parameter names: they name the API's parameters
        def wrapped(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as e:
                if not isinstance(e, _EXPECTED):
                    logger.exception("vit-tf app: %s failed", fn.__name__)
                return (None,) * (n_outputs - 1) + ({"error": describe_error(e)},)

        return wrapped

    return decorate


class Handlers:
    """The page's event handlers over an `Explorer`, callable without a server (tests, benchmarks): the fields'
    values in, the components' values out (pictures as uint8 arrays, numbers as JSON-ready dicts). Each is an API
    endpoint of the same name; a failure returns {"error": message} as its last output. Every argument defaults to
    the page's initial value (the first sample, the default model, block -1: the last)."""

    def __init__(self, explorer: Explorer):
        self.explorer = explorer

    def analyze(self, source=SAMPLES[0], upload=None, model=None, checkpoint=None, random_weights=None, mode=CROP):
        """-> input picture, top-5 {label: probability} (None without a classifier), model description, status,
        updates of the block, start-block, token, row and column fields, run summary."""
        gr = import_gradio()
        try:
            run = self.explorer.run(source, upload, model, checkpoint, random_weights, mode)
        except Exception as e:
            if not isinstance(e, _EXPECTED):
                logger.exception("vit-tf app: analyze failed")
            message = describe_error(e)
            keep = gr.update()
            return None, None, "", f"**Error:** {message}", keep, keep, keep, keep, keep, {"error": message}
        gh, gw = run.grid_size
        tokens = list(run.tokens)
        label = None if run.predictions is None else {p["label"]: p["probability"] for p in run.predictions}
        return (input_picture(run), label, model_markdown(run), "",
                gr.update(maximum=run.depth - 1, value=LAST), gr.update(maximum=run.depth - 1, value=0),
                gr.update(choices=tokens, value=tokens[0]), gr.update(maximum=gh - 1, value=gh // 2),
                gr.update(maximum=gw - 1, value=gw // 2), run.summary())

    @_reported(2)
    def heatmaps(self, source=SAMPLES[0], upload=None, model=None, checkpoint=None, random_weights=None,
                 mode=CROP, block=LAST, token="class"):
        v = heatmap_view(self.explorer.run(source, upload, model, checkpoint, random_weights, mode), block, token)
        return v.picture, v.info

    @_reported(2)
    def masks(self, source=SAMPLES[0], upload=None, model=None, checkpoint=None, random_weights=None, mode=CROP,
              block=LAST, token="class", keep=MASK_KEEP):
        v = mask_view(self.explorer.run(source, upload, model, checkpoint, random_weights, mode), block, token, keep)
        return v.picture, v.info

    @_reported(2)
    def rollout(self, source=SAMPLES[0], upload=None, model=None, checkpoint=None, random_weights=None, mode=CROP,
                token="class", head_fusion="mean", discard_ratio=0.0, start_block=0):
        run = self.explorer.run(source, upload, model, checkpoint, random_weights, mode)
        v = rollout_view(run, token, head_fusion, discard_ratio, start_block)
        return v.picture, v.info

    @_reported(2)
    def explain(self, source=SAMPLES[0], upload=None, model=None, checkpoint=None, random_weights=None, mode=CROP,
                method="gae", target="", scores=True, token="class"):
        v = explain_view(self.explorer.run(source, upload, model, checkpoint, random_weights, mode), method, target,
                         bool(scores), token)
        return v.picture, v.info

    @_reported(2)
    def grid(self, source=SAMPLES[0], upload=None, model=None, checkpoint=None, random_weights=None, mode=CROP,
             token="class"):
        v = grid_view(self.explorer.run(source, upload, model, checkpoint, random_weights, mode), token)
        return v.picture, v.info

    @_reported(2)
    def distance(self, source=SAMPLES[0], upload=None, model=None, checkpoint=None, random_weights=None, mode=CROP):
        v = distance_view(self.explorer.run(source, upload, model, checkpoint, random_weights, mode))
        return v.picture, v.info

    @_reported(3)
    def patch(self, source=SAMPLES[0], upload=None, model=None, checkpoint=None, random_weights=None, mode=CROP,
              block=LAST, row=0, col=0):
        """-> input picture with the patch outlined, every head's map of the patch, numbers."""
        run = self.explorer.run(source, upload, model, checkpoint, random_weights, mode)
        v = patch_view(run, block, row, col)
        return input_picture(run, tuple(v.info["patch"])), v.picture, v.info

    def click(self, evt, source, upload, model, checkpoint, random_weights, mode):
        """A click on the input picture (Gradio's SelectData: index = [x, y] in its pixels) -> (row, col)."""
        try:
            run = self.explorer.run(source, upload, model, checkpoint, random_weights, mode)
        except Exception:  # the status line already says why there is no run
            gr = import_gradio()
            return gr.update(), gr.update()
        x, y = evt.index[:2]
        return patch_at(x, y, run.patch_size * run.scale, run.grid_size)

    @_reported(2)
    def downloads(self, source=SAMPLES[0], upload=None, model=None, checkpoint=None, random_weights=None, mode=CROP,
                  block=LAST, token="class", head_fusion="mean", discard_ratio=0.0, start_block=0, keep=MASK_KEEP,
                  row=0, col=0):
        """-> [summary.json, the figures as PNG], {"files": names}."""
        run = self.explorer.run(source, upload, model, checkpoint, random_weights, mode)
        paths = self.explorer.downloads(run, block=block, token=token, head_fusion=head_fusion,
                                        discard_ratio=discard_ratio, start_block=start_block, keep=keep, row=row,
                                        col=col)
        return paths, {"files": [os.path.basename(p) for p in paths]}

    @staticmethod
    def use_upload(upload):
        """An upload selects the "upload" image source."""
        return UPLOAD if upload else import_gradio().update()


def _deepest_registry_model() -> int:
    from ..registry import WEIGHTS

    return max(entry.config.depth for entry in WEIGHTS.values())


def build_app(models: Sequence[Union[str, object]] = (), *, explorer: Optional[Explorer] = None,
              title: str = "vit-tf: Vision Transformer attention explorer", **explorer_kwargs):
    """The Gradio app (a `gradio.Blocks`; `app.handlers` and `app.explorer` are its pure layer).

    Args:
        models, **explorer_kwargs: see `Explorer` (ignored when `explorer` is given).
        explorer: an explorer to share.

    API endpoints (`gradio_client`), one per `Handlers` method. Each takes the image and model fields first
    (source, upload, model, checkpoint, random_weights, mode), then its own settings, and answers a failure with
    {"error": message} as its last output:
        /analyze: -> input picture, top-5, model description, status, the fields' updates, run summary;
        /heatmaps (block, token): every head's attention of a prefix token in one block;
        /masks (block, token, keep): DINO masks keeping `keep` of each head's attention mass;
        /rollout (token, head_fusion, discard_ratio, start_block): attention rollout;
        /grid (token): every block's and head's map;
        /distance: mean attention distance per block and head (a figure);
        /patch (block, row, col): where one patch attends in every head (and the input with it outlined);
        /explain (method, target, scores, token): a class explanation (`vit_tf.explain`; target "" = the top-1)
            from the page's token where the method reads one (`TOKEN_METHODS`), with its deletion and insertion
            AUCs (the Explanations tab);
        /downloads (block, token, head_fusion, discard_ratio, start_block, keep, row, col): `vit-tf probe`'s
            figures, the patch's figure and summary.json (the Downloads tab).
    """
    gr = import_gradio()
    ex = explorer or Explorer(models, **explorer_kwargs)
    h = Handlers(ex)
    # Block fields run from -1 (the last block, valid for every model: the API's default) to the deepest registry
    # model's last block until a model has run; the views check the index against the model that ran.
    depth = _deepest_registry_model()

    with gr.Blocks(title=title, analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        gr.Markdown(f"## {title}\nPick a sample photo or upload one and choose a model; click a patch of the "
                    f"model's input to see where it attends. Views reuse the cached forward pass.")
        with gr.Row():
            with gr.Column(scale=1, min_width=280):
                source = gr.Radio(list(SAMPLES) + [UPLOAD], value=SAMPLES[0], label="Image", elem_id="source")
                upload = gr.File(label="Upload a photo", file_types=["image"], type="filepath", elem_id="upload",
                                 height=120)
                model = gr.Dropdown(ex.model_names, value=ex.default_model, allow_custom_value=True,
                                    label="Model: registry name" + (" or `vit-tf convert` folder" if ex.local_paths
                                                                    else ""), elem_id="model")
                checkpoint = gr.Textbox(ex.checkpoint or "", label="Local checkpoint (optional, for a registry name)",
                                        placeholder=".npz, .pth or .safetensors path; Enter to load",
                                        elem_id="checkpoint", visible=ex.local_paths)
                random_weights = gr.Checkbox(ex.random_weights, label="Random weights (offline smoke test)",
                                             elem_id="random-weights")
                mode = gr.Radio(list(RESIZE_MODES), value=CROP, label="Resize", elem_id="mode")
                go = gr.Button("Analyse", variant="primary", elem_id="analyse")
                status = gr.Markdown(elem_id="status")
            with gr.Column(scale=3):
                about = gr.Markdown(elem_id="about")
                with gr.Row():
                    picture = gr.Image(label="Model input: click a patch", type="numpy", format="png",
                                       interactive=False, elem_id="input-image", buttons=["download", "fullscreen"])
                    prediction = gr.Label(num_top_classes=5, label="Top-5", elem_id="prediction")
                gr.Markdown("**Where the clicked patch attends, per head** (block below)")
                patch_picture = gr.Image(format="png", interactive=False, show_label=False, elem_id="patch-image",
                                         buttons=["download", "fullscreen"])
        with gr.Row():
            block = gr.Slider(LAST, depth - 1, value=LAST, step=1, label="Block (heads, masks, patch; -1: the last)",
                              elem_id="block")
            token = gr.Dropdown(["class"], value="class", allow_custom_value=True,
                                label="Token (heads, masks, rollout, grid, explanations)", elem_id="token")
            row = gr.Number(0, precision=0, minimum=0, label="Patch row (Enter)", elem_id="row")
            col = gr.Number(0, precision=0, minimum=0, label="Patch column (Enter)", elem_id="col")
        with gr.Tabs():
            with gr.Tab("Heads"):
                heads_out = gr.Image(format="png", interactive=False, show_label=False, elem_id="heads-image")
            with gr.Tab("DINO masks"):
                keep = gr.Slider(0.05, 1.0, value=MASK_KEEP, step=0.05, label="Attention mass kept", elem_id="keep")
                masks_out = gr.Image(format="png", interactive=False, show_label=False, elem_id="masks-image")
            with gr.Tab("Rollout"):
                with gr.Row():
                    head_fusion = gr.Radio(list(HEAD_FUSIONS), value="mean", label="Head fusion")
                    discard_ratio = gr.Slider(0.0, 0.99, value=0.0, step=0.01, label="Discard ratio")
                    start_block = gr.Slider(LAST, depth - 1, value=0, step=1, label="Start block (-1: the last)")
                rollout_out = gr.Image(format="png", interactive=False, show_label=False, elem_id="rollout-image")
            with gr.Tab("Block x head grid"):
                grid_out = gr.Image(format="png", interactive=False, show_label=False, elem_id="grid-image")
            with gr.Tab("Mean attention distance"):
                distance_out = gr.Image(format="png", interactive=False, show_label=False, elem_id="distance-image")
            with gr.Tab("Downloads"):
                make = gr.Button("Make the figures and summary.json", elem_id="make-downloads")
                files = gr.File(file_count="multiple", label="Figures (PNG) and summary.json", elem_id="downloads")
            explain_method, explain_target, explain_scores, explain_button, explain_out, explain_json = \
                _explanations_tab(gr)
            with gr.Tab("Numbers"):
                gr.Markdown("The numbers behind each view, as the API returns them.")
                run_json, heads_json = gr.JSON(label="run"), gr.JSON(label="heads")
                masks_json, rollout_json = gr.JSON(label="masks"), gr.JSON(label="rollout")
                grid_json, distance_json = gr.JSON(label="grid"), gr.JSON(label="distance")
                patch_json, files_json = gr.JSON(label="patch"), gr.JSON(label="downloads")

        common = [source, upload, model, checkpoint, random_weights, mode]
        analyzed_outputs = [picture, prediction, about, status, block, start_block, token, row, col, run_json]
        analyzed = gr.on([demo.load, go.click, source.input, model.input, mode.input, random_weights.input,
                          checkpoint.submit], h.analyze, common, analyzed_outputs, api_name="analyze",
                         trigger_mode="always_last")
        uploaded = upload.upload(h.use_upload, upload, source, api_visibility="private").then(
            h.analyze, common, analyzed_outputs, api_visibility="private")
        patch_fields = [picture, patch_picture, patch_json]
        views = [  # handler, its own inputs, outputs, the controls that rerun it
            (h.heatmaps, [block, token], [heads_out, heads_json], [block.input, token.input]),
            (h.masks, [block, token, keep], [masks_out, masks_json], [block.input, token.input, keep.input]),
            (h.rollout, [token, head_fusion, discard_ratio, start_block], [rollout_out, rollout_json],
             [token.input, head_fusion.input, discard_ratio.input, start_block.input]),
            (h.grid, [token], [grid_out, grid_json], [token.input]),
            (h.distance, [], [distance_out, distance_json], []),
            (h.patch, [block, row, col], patch_fields, [block.input, row.submit, col.submit]),
        ]
        for fn, own, outputs, triggers in views:  # every view follows a new run, and its own controls
            # The public endpoint is registered first: it takes the plain name, the private followers get suffixes.
            if triggers:
                gr.on(triggers, fn, common + own, outputs, api_name=fn.__name__, trigger_mode="always_last")
                analyzed.then(fn, common + own, outputs, api_visibility="private")
            else:
                analyzed.then(fn, common + own, outputs, api_name=fn.__name__)
            uploaded.then(fn, common + own, outputs, api_visibility="private")

        def click(evt, source, upload, model, checkpoint, random_weights, mode):
            return h.click(evt, source, upload, model, checkpoint, random_weights, mode)

        click.__annotations__ = {"evt": gr.SelectData}  # how Gradio knows to pass the click: a type, not a string
        picture.select(click, common, [row, col], api_visibility="private").then(
            h.patch, common + [block, row, col], patch_fields, api_visibility="private")
        explain_button.click(h.explain, common + [explain_method, explain_target, explain_scores, token],
                             [explain_out, explain_json], api_name="explain")
        make.click(h.downloads, common + [block, token, head_fusion, discard_ratio, start_block, keep, row, col],
                   [files, files_json], api_name="downloads")
    demo.explorer, demo.handlers = ex, h
    return demo


def _explanations_tab(gr):
    """The controls of the explanation view (one button: an explanation costs a backward pass, its scores
    2 x EXPLAIN_STEPS forward passes)."""
    from ..analysis import EXPLAIN_METHODS

    with gr.Tab("Explanations"):
        others = sorted(set(EXPLAIN_METHODS) - set(TOKEN_METHODS))
        gr.Markdown("Class-specific explanations with their faithfulness: deletion AUC (lower is better) and "
                    f"insertion AUC (higher is better), RISE's normalised AUC over {EXPLAIN_STEPS} steps. The "
                    "token chosen above (class, distillation, register) is the readout token of the attention-based "
                    f"methods; {', '.join(others)} take no token and ignore it.")
        with gr.Row():
            method = gr.Dropdown(sorted(EXPLAIN_METHODS), value="gae", label="Method", elem_id="explain-method")
            target = gr.Textbox(value="", label="Target class index (empty: the top-1)", elem_id="explain-target")
            scores = gr.Checkbox(value=True, label="Faithfulness scores", elem_id="explain-scores")
            run_button = gr.Button("Explain", elem_id="explain-run")
        picture = gr.Image(format="png", interactive=False, show_label=False, elem_id="explain-image")
        numbers = gr.JSON(label="explanation")
    return method, target, scores, run_button, picture, numbers


__all__ = ["Handlers", "build_app", "import_gradio", "model_markdown"]
