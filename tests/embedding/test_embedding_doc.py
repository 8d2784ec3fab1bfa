"""docs/EMBEDDING.md shows exactly what the embedding test runs: its project's files, its command lines, their output.

Every fenced block of the guide carries a tag on the line before it:
``<!-- embedding: file erp/settings.py -->`` (the block is a run of consecutive lines of that file of
tests/embedding/project), ``<!-- embedding: commands -->`` (each line is one of ``host.COMMANDS``, which the test
runs) or ``<!-- embedding: output check -->`` (what ``host.OUTPUTS["check"]`` says the command prints).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from tests.embedding.host import COMMANDS, DOCUMENTED_FILES, EMBEDDING_MD, OUTPUTS, PROJECT

FENCE = re.compile(r"^```", re.MULTILINE)
TAG = r"^<!-- embedding: (?P<kind>file|commands|output)(?: (?P<name>\S+))? -->\n"
TAGGED = re.compile(TAG + r"```\w*\n(?P<body>.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    kind: str
    name: str | None
    body: str


def blocks(text: str) -> list[Block]:
    return [Block(m["kind"], m["name"], m["body"]) for m in TAGGED.finditer(text)]


def excerpt_start(lines: list[str], excerpt: list[str]) -> int | None:
    """Where ``excerpt`` starts as a run of consecutive ``lines``; None when it is not one."""
    return next(
        (i for i in range(len(lines) - len(excerpt) + 1) if lines[i : i + len(excerpt)] == excerpt),
        None,
    )


@pytest.fixture(scope="module")
def guide() -> list[Block]:
    return blocks(EMBEDDING_MD.read_text())


def test_every_code_block_of_the_guide_is_tagged() -> None:
    text = EMBEDDING_MD.read_text()
    assert len(FENCE.findall(text)) == 2 * len(blocks(text)), "a code block without an <!-- embedding: … --> tag"


def test_file_blocks_are_lines_of_the_test_projects_files(guide: list[Block]) -> None:
    for block in guide:
        if block.kind == "file":
            assert block.name is not None
            lines = (PROJECT / block.name).read_text().splitlines()
            excerpt = block.body.splitlines()
            assert excerpt_start(lines, excerpt) is not None, f"not consecutive lines of {block.name}:\n{block.body}"


def test_the_guide_shows_every_line_of_the_files_it_is_about(guide: list[Block]) -> None:
    for name in DOCUMENTED_FILES:
        lines = (PROJECT / name).read_text().splitlines()
        shown: set[int] = set()
        for block in guide:
            excerpt = block.body.splitlines()
            start = excerpt_start(lines, excerpt) if block.kind == "file" and block.name == name else None
            if start is not None:
                shown.update(range(start, start + len(excerpt)))
        missing = [line for i, line in enumerate(lines) if line.strip() and i not in shown]
        assert not missing, f"docs/EMBEDDING.md does not show these lines of {name}: {missing}"


def test_command_blocks_are_the_commands_the_test_runs(guide: list[Block]) -> None:
    shown = [
        line
        for block in guide
        if block.kind == "commands"
        for line in block.body.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert set(shown) <= set(COMMANDS.values()), (
        f"commands the test does not run: {set(shown) - set(COMMANDS.values())}"
    )
    assert set(COMMANDS.values()) <= set(shown), (
        f"commands the guide does not show: {set(COMMANDS.values()) - set(shown)}"
    )


def test_output_blocks_are_what_the_test_asserts(guide: list[Block]) -> None:
    outputs = [block for block in guide if block.kind == "output"]
    assert outputs
    for block in outputs:
        assert block.name in OUTPUTS and block.body == OUTPUTS[block.name], block
