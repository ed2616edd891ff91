"""Configuration problems, collected and reported together as `<config key path>: message`."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One problem with the input, at a full config path such as `enclave:roles.db.count`."""

    path: str
    message: str

    def __post_init__(self) -> None:
        # user text may carry newlines or control characters: one problem stays one line
        for name in ("path", "message"):
            text = getattr(self, name)
            if any(ord(c) < 32 for c in text):
                clean = "".join(c if ord(c) >= 32 else repr(c)[1:-1] for c in text)
                object.__setattr__(self, name, clean)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class ConfigError(Exception):
    """Every problem found in a stack config; raised once, after collecting them all."""

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]):
        self.problems = tuple(problems)
        super().__init__(self.report())

    def report(self) -> str:
        return "\n".join(str(p) for p in self.problems)
