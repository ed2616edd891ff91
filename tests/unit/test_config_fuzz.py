"""Random mutations of the valid stacks either validate or are refused with `key: message`
problems; no input ever escapes as another exception (a traceback for the user)."""
from __future__ import annotations

import copy

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from topology.errors import ConfigError
from topology.load import available_stacks, stack_path
from topology.validate import build_stack

DOCUMENTS = {name: yaml.safe_load(stack_path(name).read_text()) for name in available_stacks()}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["tcp", "udp", "icmp", "internet", "admin", "tunnel", "lb", "mysql", "10.0.0.0/8",
                     "0.0.0.0/0", "::/0", "80-70", "1-65535", "22", "gateway", "public", "private",
                     "amanda", "drop", "reject", "5/min", "fd00::/8", "192.0.2.50/32", "65536"]),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=6)


def _paths(node, prefix=()):
    """Every (container path, key) in the document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix, k
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield prefix, i
            yield from _paths(v, prefix + (i,))


def _container(doc, path):
    for k in path:
        doc = doc[k]
    return doc


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_stacks_validate_or_report_problems(data):
    name = data.draw(st.sampled_from(sorted(DOCUMENTS)))
    doc = copy.deepcopy(DOCUMENTS[name])
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        places = list(_paths(doc))
        if not places:
            break
        path, key = data.draw(st.sampled_from(places))
        parent = _container(doc, path)
        action = data.draw(st.sampled_from(["replace", "delete", "rename", "insert"]))
        if action == "replace":
            parent[key] = data.draw(values)
        elif action == "delete":
            del parent[key]
        elif action == "rename" and isinstance(parent, dict):
            parent[data.draw(st.text(max_size=10))] = parent.pop(key)
        elif action == "insert" and isinstance(parent, dict):
            parent[data.draw(st.text(max_size=10))] = data.draw(values)
        elif isinstance(parent, list):
            parent.insert(key, data.draw(values))
    try:
        stack = build_stack(name, doc)
    except ConfigError as error:
        assert error.problems, "a ConfigError must carry at least one problem"
        for problem in error.problems:
            assert problem.path and problem.message and "\n" not in problem.message
    else:
        assert stack.hosts and stack.tunnel.role == "tunnel"
