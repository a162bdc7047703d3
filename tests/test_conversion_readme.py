"""The weights table of docs/conversion.md is generated from the registry and lists every entry with a command that
parses."""

import os
import re
import shlex

from conversion import readme_table
from conversion_helpers import cli  # noqa: F401  (imports vit_tf first)
from vit_tf import cli as cli_module
from vit_tf.registry import WEIGHTS

PAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), readme_table.PAGE)


def test_weights_table_is_the_registry():
    with open(PAGE, encoding="utf-8") as f:
        text = f.read()
    assert readme_table.markdown() in text, "run: python -m conversion.readme_table --write"
    for name in WEIGHTS:
        assert f"| `{name}` |" in text


def test_reproduce_commands_parse():
    parser = cli_module.build_parser()
    commands = re.findall(r"`(vit-tf eval [^`]+)`", readme_table.markdown())
    assert len(commands) == sum(1 for e in WEIGHTS.values() if e.top1 is not None and e.config.num_classes)
    for command in commands:
        args = parser.parse_args(shlex.split(command)[1:])
        assert args.model in WEIGHTS and args.func.__module__ == "vit_tf.commands.eval"
