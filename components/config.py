"""Reading a stack's whole Pulumi config, so that validation sees every `enclave:*` key.

`pulumi.Config("enclave").get(key)` answers only for keys the program asks for, so a typo'd key
(`enclave:vpc_cdir`) would pass silently. The Python runtime holds the whole config instead: the
language host hands it over as the `PULUMI_CONFIG` environment variable (a JSON object of full
keys), and the mock runtime or an inline Automation API program set it in
`pulumi.runtime.config.CONFIG`. Both are read; the context variable wins, as in
`pulumi.runtime.get_config`.

Pulumi passes every value as a string: objects and lists as JSON text, scalars as written.
Provider keys other than `digitalocean:region` (the token above all) never enter the model.
"""
from __future__ import annotations

import json
from typing import Any, Mapping

from pulumi.runtime import config as runtime_config

KEPT_PROVIDER_KEYS = frozenset({"digitalocean:region"})
_BOOLEANS = {"true": True, "false": False}


def decode_value(text: Any) -> Any:
    """A config value as the stack file wrote it: JSON objects/lists decoded, booleans parsed.

    Other scalars stay text: an image id such as `12345` is a string to the schema, not a number.
    """
    if not isinstance(text, str):
        return text
    stripped = text.strip()
    if stripped in _BOOLEANS:
        return _BOOLEANS[stripped]
    if stripped[:1] in ("{", "["):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError:
            return text  # left as text: the schema then reports "must be a mapping/list"
    return text


def stack_config(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Full key -> decoded value, for `build_stack_from_config`; provider settings left out."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        namespace = key.split(":", 1)[0]
        if namespace == "digitalocean" and key not in KEPT_PROVIDER_KEYS:
            continue
        out[key] = decode_value(value)
    return out


def runtime_config_values() -> dict[str, Any]:
    """Every config key the running program was given (environment, then the runtime's map)."""
    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    return merged
