"""Secret values the templates need (database and replication passwords), passed in as parameters.

Real values come from Pulumi config secrets (or generated ones) at deploy time; everything that is
committed (stacks, golden files) and every offline render uses `Secrets.placeholders()`.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Secrets:
    db_password: str
    replication_password: str

    @classmethod
    def placeholders(cls) -> "Secrets":
        """Obvious stand-ins: never a real secret, safe in golden files and offline renders."""
        return cls(db_password="PLACEHOLDER-db-password", replication_password="PLACEHOLDER-replication-password")

    def __repr__(self) -> str:  # keep values out of logs and tracebacks
        return "Secrets(<hidden>)"
