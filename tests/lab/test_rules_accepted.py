"""Every generated ruleset of every stack is accepted by the real kernel tools."""
from __future__ import annotations

import pytest

from artifacts import render_stack_files
from artifacts.output import write_tree
from lab.acceptance import check_tree
from topology.load import available_stacks, load_stack

pytestmark = pytest.mark.lab


@pytest.mark.parametrize("stack_name", available_stacks())
def test_kernel_accepts_every_host(stack_name, tmp_path, lab_ready):
    stack = load_stack(stack_name)
    write_tree(tmp_path / "out", render_stack_files(stack))
    count, rejections = check_tree(tmp_path / "out")
    assert count == len(stack.hosts)
    assert not rejections, "\n".join(map(str, rejections))


def test_kernel_rejects_a_broken_ruleset(tmp_path, lab_ready):
    """The check itself can fail: a rule naming a set that does not exist is refused."""
    stack = load_stack("wordpress")
    files = render_stack_files(stack)
    files["lb-1/rules.v4"] = files["lb-1/rules.v4"].replace("enclave-tunnel src", "enclave-nosuchset src")
    write_tree(tmp_path / "out", files)
    _, rejections = check_tree(tmp_path / "out")
    assert [(r.host, r.file) for r in rejections] == [("lb-1", "rules.v4")]
