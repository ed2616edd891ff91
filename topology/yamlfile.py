"""Reading a Pulumi stack file: YAML with duplicate keys refused (a duplicate role is a mistake)."""
from __future__ import annotations

from pathlib import Path

import yaml

from topology.errors import ConfigError, Problem


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that reports a key given twice in one mapping, with its line."""

    duplicates: list[tuple[str, int]]

    def construct_mapping(self, node, deep=False):  # noqa: D102 - yaml hook
        seen: set = set()
        for key_node, _ in node.value:
            try:
                key = self.construct_object(key_node, deep=True)
                hash(key)
            except Exception:  # unhashable key: let yaml raise its own error below
                continue
            if key in seen:
                self.duplicates.append((str(key), key_node.start_mark.line + 1))
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str) -> object:
    """The YAML document in `text`; problems are reported as `<source>:<line>: message`."""
    loader = _UniqueKeyLoader(text)
    loader.duplicates = []
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        reason = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError([Problem(where, f"malformed YAML: {reason}")]) from None
    finally:
        loader.dispose()
    if loader.duplicates:
        raise ConfigError(
            [Problem(f"{source}:{line}", f"duplicate key '{key}'") for key, line in loader.duplicates]
        )
    return data


def read_stack_file(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError([Problem(str(path), f"cannot read stack file: {error}")]) from None
    return parse_yaml(text, str(path))
