"""A valid stack document to mutate in tests (the wordpress stack, as parsed YAML)."""
from __future__ import annotations

import copy

import yaml

from topology.load import stack_path


def wordpress_document() -> dict:
    return copy.deepcopy(yaml.safe_load(stack_path("wordpress").read_text()))
