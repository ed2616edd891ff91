"""Passwords: the database and replication passwords, random and secret."""
from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_random as random

from cloudinit.secrets import Secrets

TYPE = "enclave:index:Passwords"


@dataclass(frozen=True)
class PasswordsArgs:
    """Alphanumeric only: the passwords land in config files and SQL, unquoted-safe."""

    length: int = 32

    def validate(self) -> None:
        if not 20 <= self.length <= 128:
            raise ValueError("password length must be 20..128")


class Passwords(pulumi.ComponentResource):
    """Two `random.RandomPassword`s, kept in state (stable across runs), exposed as `Secrets`."""

    def __init__(self, name: str, args: PasswordsArgs = PasswordsArgs(), opts: pulumi.ResourceOptions | None = None):
        args.validate()
        super().__init__(TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.db = random.RandomPassword(f"{name}-db", length=args.length, special=False, opts=child)
        self.replication = random.RandomPassword(f"{name}-replication", length=args.length, special=False, opts=child)
        self.db_password = pulumi.Output.secret(self.db.result)
        self.replication_password = pulumi.Output.secret(self.replication.result)
        self.secrets: pulumi.Output[Secrets] = pulumi.Output.secret(
            pulumi.Output.all(self.db_password, self.replication_password).apply(lambda v: Secrets(v[0], v[1]))
        )
        self.register_outputs({"db_password": self.db_password, "replication_password": self.replication_password})
