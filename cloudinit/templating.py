"""The jinja2 environment for cloud-init templates: StrictUndefined, so a missing variable fails.

A missing variable is reported as a ConfigError naming the template and the variable, the same
way every other problem reaches the user (`template haproxy.cfg.j2: undefined variable 'x'`).
"""
from __future__ import annotations

import re
from pathlib import Path

import jinja2

from topology.errors import ConfigError, Problem

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
_UNDEFINED = (re.compile(r"'([^']+)' is undefined"), re.compile(r"has no attribute '([^']+)'"))


class TemplateVariableError(ConfigError):
    """A template used a variable its context does not define."""

    def __init__(self, template: str, variable: str):
        self.template = template
        self.variable = variable
        super().__init__([Problem(f"template {template}", f"undefined variable '{variable}'")])


class Templates:
    """Renders named templates from `cloudinit/templates/` (or a given loader, for tests)."""

    def __init__(self, loader: jinja2.BaseLoader | None = None):
        self.env = jinja2.Environment(
            loader=loader or jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
        )

    def render(self, name: str, **context: object) -> str:
        try:
            return self.env.get_template(name).render(**context)
        except jinja2.UndefinedError as error:
            raise TemplateVariableError(name, _variable(str(error))) from None

    def source(self, name: str) -> str:
        """A template's raw text (for files copied as they are, such as the apply script)."""
        loader = self.env.loader
        assert loader is not None
        return loader.get_source(self.env, name)[0]


def _variable(message: str) -> str:
    for pattern in _UNDEFINED:
        found = pattern.search(message)
        if found:
            return found.group(1)
    return message
