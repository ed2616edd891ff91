"""Golden files: the whole `enclave render` tree of every stack, byte for byte.

A difference fails and names the file (and the first differing line). After an intended change,
regenerate with `ENCLAVE_UPDATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_golden.py` and review the diff.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from artifacts import render_stack_files
from artifacts.output import write_tree
from topology.load import available_stacks, load_stack

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
UPDATE = os.environ.get("ENCLAVE_UPDATE_GOLDEN") == "1"


def _tree(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(folder.rglob("*")) if p.is_file()}


def differences(expected: dict[str, str], actual: dict[str, str], where: str) -> list[str]:
    """One line per differing file: missing, unexpected, or the first line that differs."""
    problems = [f"{where}/{rel}: missing from the render" for rel in sorted(set(expected) - set(actual))]
    problems += [f"{where}/{rel}: not in the golden files" for rel in sorted(set(actual) - set(expected))]
    for rel in sorted(set(expected) & set(actual)):
        if expected[rel] != actual[rel]:
            old, new = expected[rel].splitlines(), actual[rel].splitlines()
            line = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
            problems.append(f"{where}/{rel}: differs at line {line + 1}: "
                            f"golden {old[line] if line < len(old) else '<end>'!r} != "
                            f"render {new[line] if line < len(new) else '<end>'!r}")
    return problems


@pytest.mark.parametrize("stack_name", available_stacks())
def test_render_matches_golden_files(stack_name):
    files = render_stack_files(load_stack(stack_name))
    folder = GOLDEN / stack_name
    if UPDATE:
        write_tree(folder, files)
    assert folder.is_dir(), f"no golden files in {folder}: run with ENCLAVE_UPDATE_GOLDEN=1"
    problems = differences(_tree(folder), files, f"tests/golden/{stack_name}")
    assert not problems, "\n".join(problems)


def test_comparison_names_the_file():
    """The comparison can fail, and says where."""
    golden = {"a/user-data": "x\ny\n", "gone": "1"}
    render = {"a/user-data": "x\nz\n", "new": "2"}
    assert differences(golden, render, "g") == [
        "g/gone: missing from the render",
        "g/new: not in the golden files",
        "g/a/user-data: differs at line 2: golden 'y' != render 'z'",
    ]
