"""The weights table of docs/conversion.md: every registry weight, its published top-1 and the command to reproduce it.

    python -m conversion.readme_table          # print the table
    python -m conversion.readme_table --write  # replace it in docs/conversion.md (between the markers below)

`tests/test_conversion_readme.py` checks that docs/conversion.md holds exactly this table.
"""

from __future__ import annotations

import argparse
import os
import sys

BEGIN = "<!-- BEGIN weights table (python -m conversion.readme_table --write) -->"
END = "<!-- END weights table -->"
DATA = "/path/to/imagenet/val"
PAGE = os.path.join("docs", "conversion.md")  # relative to the repository root


def _accuracy(entry) -> str:
    if entry.top1 is None:
        return "—"
    if entry.config.num_classes == 0:
        return f"{entry.top1:.1f} (k-NN)"
    return f"{entry.top1}" + (f" / {entry.top5}" if entry.top5 is not None else "")


def _command(entry) -> str:
    from vit_tf.registry import WEIGHTS

    linear = next((n for n in (f"{entry.arch}.dino_linear", f"{entry.arch}.lvd142m_linear4") if n in WEIGHTS), None)
    if entry.top1 is None and entry.config.num_classes == 1000:
        return (f"— (no published number for this head; the README's is `{linear}`'s)" if linear
                else "— (no published number)")
    if entry.top1 is None and entry.config.num_classes == 0:
        return "— (backbone without classifier, no ImageNet number)"
    if entry.top1 is None:
        return "— (ImageNet-21k classifier, no ImageNet-1k accuracy)"
    if entry.config.num_classes == 0:
        if linear:
            return f"— (backbone without classifier; the linear-eval number is `{linear}`)"
        return f"— (backbone without classifier; {entry.notes or 'linear-probe number in the DINOv2 README'})"
    return f"`vit-tf eval --model {entry.name} --data {DATA}`"


def markdown() -> str:
    from vit_tf.registry import WEIGHTS

    rows = ["| Weights | Format | Published top-1 / top-5 (%) | Source of the number | Reproduce |",
            "|---|---|---|---|---|"]
    for name in sorted(WEIGHTS):
        e = WEIGHTS[name]
        formats = " + ".join(s.format for s in e.sources)
        rows.append(f"| `{name}` | {formats} | {_accuracy(e)} | {e.metric_source or '—'} | {_command(e)} |")
    return "\n".join([BEGIN, *rows, END])


def replace_in(text: str) -> str:
    if BEGIN not in text or END not in text:
        raise ValueError(f"{PAGE} has no {BEGIN!r} ... {END!r} block")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + markdown() + tail


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help=f"update {PAGE} in place")
    args = parser.parse_args(argv)
    if not args.write:
        print(markdown())
        return 0
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PAGE)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    with open(path + ".tmp", "w", encoding="utf-8") as f:  # renamed only when complete
        f.write(replace_in(text))
    os.replace(path + ".tmp", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
