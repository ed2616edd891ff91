"""The CrossGuard validators, offline: on what the program registers (under the mocks) and on
tampered copies of it. The pack's gRPC server is never started."""
from __future__ import annotations

import copy
import functools

import pytest
from pulumi_policy import ResourceValidationArgs, StackValidationArgs
from pulumi_policy.policy import PolicyResource

from components import plan
from policy import validators
from policy.__main__ import validate_coverage, validate_droplet, validate_public_ingress
from tests.pulumi.program_harness import STACKS, deploy


@functools.lru_cache(maxsize=None)
def resources(name: str) -> tuple[validators.Resource, ...]:
    d = deploy(name)
    return tuple(validators.Resource(r.typ, r.name, r.inputs) for r in d.resources
                 if r.typ in (validators.DROPLET, validators.FIREWALL))


def urn(stack: str, typ: str, name: str) -> str:
    return f"urn:pulumi:{stack}::enclave::{typ}::{name}"


def collect(fn, args) -> list[str]:
    found: list[str] = []
    fn(args, lambda message, urn=None: found.append(message))
    return found


def resource_args(stack: str, r: validators.Resource) -> ResourceValidationArgs:
    return ResourceValidationArgs(r.type, r.props, urn(stack, r.type, r.name), r.name, None, None)


@pytest.mark.parametrize("name", STACKS)
def test_the_program_passes_every_policy(name):
    rs = resources(name)
    assert any(r.type == validators.DROPLET for r in rs) and any(r.type == validators.FIREWALL for r in rs)
    for r in rs:
        assert collect(validate_droplet, resource_args(name, r)) == [], r.name
        assert collect(validate_public_ingress, resource_args(name, r)) == [], r.name
    policy_resources = [PolicyResource(r.type, r.props, urn(name, r.type, r.name), r.name, None, None, None, [], {}) for r in rs]
    assert collect(validate_coverage, StackValidationArgs(policy_resources)) == []


def test_a_droplet_outside_the_vpc_without_enclave_user_data_is_reported():
    droplet = next(r for r in resources("wordpress") if r.type == validators.DROPLET)
    props = dict(droplet.props, vpcUuid=None, userData="#!/bin/sh\necho hi\n", tags=["web"])
    assert validators.droplet_violations(props) == [
        "droplet is not in a VPC (vpc_uuid unset)",
        "droplet does not boot enclave's cloud-config (user_data)",
        "droplet has no enclave role tag (enclave-<stack>-<role>)",
    ]


def test_an_undeclared_public_port_is_reported():
    stack = deploy("evergreen").stack
    db_tag = plan.role_tag(stack, "db")
    fw = next(r for r in resources("evergreen") if r.type == validators.FIREWALL and r.props["tags"] == [db_tag])
    props = copy.deepcopy(dict(fw.props))
    props["inboundRules"].append({"protocol": "tcp", "portRange": "5432", "sourceAddresses": ["0.0.0.0/0"]})
    assert validators.firewall_violations(props, validators.declared_public(stack)) == [
        f"inbound tcp/5432 is open to the internet, but no flow from 'internet' declares it for {db_tag}"]
    # the app's public web port is declared: the same rule there passes
    assert (plan.role_tag(stack, "app"), "tcp", "443") in validators.declared_public(stack)


def test_a_droplet_whose_role_has_no_firewall_is_reported():
    rs = [r for r in resources("wordpress")
          if not (r.type == validators.FIREWALL and r.props["tags"] == ["enclave-wordpress-mysql"])]
    assert sorted(validators.coverage_violations(rs)) == [
        ("mysql-1", "no cloud firewall covers role tag enclave-wordpress-mysql"),
        ("mysql-2", "no cloud firewall covers role tag enclave-wordpress-mysql"),
    ]


def test_stack_name_comes_from_the_urn():
    assert validators.stack_name_of(urn("prod", validators.FIREWALL, "x")) == "prod"
