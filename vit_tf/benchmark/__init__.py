"""Benchmarks of the analysis on a trained network with known evidence.

- `explanations`: every explanation method and two model-free baselines on the composite classifier
  (`vit_tf.composites`): localisation, faithfulness and sanity checks, per image (`run_benchmark`);
- `summary`: means, standard errors and 95 % intervals, the CSV rows and the JSON record;
- `shuffled`: the data-randomisation model (the composite head trained on shuffled labels).

The command line runs it as `vit-tf explain-benchmark`.
"""

from .explanations import (BETTER, FAITHFULNESS, FAMILIES, LOCALISATION, SANITY, BenchmarkResult, Settings,
                           explanation_maps, faithfulness_scores, localisation_scores, run_benchmark)
from .shuffled import shuffled_label_model
from .summary import csv_table, describe, sanity_curves, summarise, to_json

__all__ = ["BETTER", "BenchmarkResult", "FAITHFULNESS", "FAMILIES", "LOCALISATION", "SANITY", "Settings",
           "csv_table", "describe", "explanation_maps", "faithfulness_scores", "localisation_scores", "run_benchmark",
           "sanity_curves", "shuffled_label_model", "summarise", "to_json"]
