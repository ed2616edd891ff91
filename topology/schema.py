"""The shape of a stack config, one pydantic model per section (structure only).

Sections are validated one item at a time, so that a bad role does not hide a bad flow:
meaning (unknown roles, overlapping networks, ...) is checked afterwards in `validate.py`.
"""
from __future__ import annotations

from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

PortSpec = Union[StrictInt, StrictStr, list[Union[StrictInt, StrictStr]]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DropLogConfig(_Strict):
    rate: StrictStr = "5/min"
    burst: StrictInt = Field(10, ge=1, le=10000)
    prefix: StrictStr = Field("enclave-drop: ", max_length=29)


class PortForwardConfig(_Strict):
    from_: StrictStr = Field(alias="from")
    proto: Literal["tcp", "udp"]
    ports: PortSpec
    to: StrictStr


class NatConfig(_Strict):
    masquerade: StrictBool = True
    port_forwards: list[PortForwardConfig] = []


class EgressRuleConfig(_Strict):
    to: StrictStr
    proto: Literal["tcp", "udp", "icmp"]
    ports: PortSpec | None = None


class RoleConfig(_Strict):
    count: StrictInt = Field(ge=1, le=1000)
    profile: StrictStr
    size: StrictStr | None = None
    egress: Literal["accept", "drop"] = "accept"
    egress_allow: list[EgressRuleConfig] = []
    helpers: list[StrictStr] = []
    nat: NatConfig | None = None
    private_only: StrictBool = False
    final_action: Literal["drop", "reject"] | None = None


class FlowConfig(_Strict):
    from_: StrictStr = Field(alias="from")
    to: StrictStr
    proto: Literal["tcp", "udp", "icmp"]
    ports: PortSpec | None = None
    via: Literal["public", "private"] | None = None
    icmp_type: StrictStr | None = None


class SettingsConfig(_Strict):
    """The scalar `enclave:` keys (roles and flows are validated item by item)."""

    vpc_cidr: StrictStr
    admin_cidrs: list[StrictStr] = Field(min_length=1)
    ssh_public_keys: list[StrictStr] = Field(min_length=1)
    image: StrictStr = "ubuntu-24-04-x64"
    size: StrictStr = "s-1vcpu-1gb"
    load_balancer: Literal["haproxy", "managed"] = "haproxy"
    drop_log: DropLogConfig | Literal[False] = DropLogConfig()
    final_action: Literal["drop", "reject"] = "drop"
    ipv6: StrictBool = True
    plan_public_cidr: StrictStr = "198.51.100.0/24"
    plan_public6_cidr: StrictStr = "2001:db8:100::/64"


ENCLAVE_KEYS = tuple(SettingsConfig.model_fields) + ("roles", "flows")
