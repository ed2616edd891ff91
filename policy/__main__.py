"""enclave's CrossGuard policy pack: `pulumi preview --policy-pack policy/`.

Adapters only: every check is a pure function in `policy/validators.py`. The declared public
services come from the stack's own file (stacks/Pulumi.<stack>.yaml, the stack named in the URN).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo: topology, components

from pulumi_policy import (  # noqa: E402
    EnforcementLevel,
    PolicyPack,
    ResourceValidationPolicy,
    StackValidationPolicy,
)

from policy import validators  # noqa: E402
from topology.errors import ConfigError  # noqa: E402
from topology.load import load_stack  # noqa: E402


def validate_droplet(args, report_violation):
    if args.resource_type == validators.DROPLET:
        for message in validators.droplet_violations(args.props):
            report_violation(message)


def validate_public_ingress(args, report_violation):
    if args.resource_type != validators.FIREWALL:
        return
    try:
        stack = load_stack(validators.stack_name_of(args.urn))
        public = validators.declared_public(stack)
    except ConfigError as error:
        report_violation(f"cannot read the stack's declared services: {error.report()}")
        return
    for message in validators.firewall_violations(args.props, public):
        report_violation(message)


def validate_coverage(args, report_violation):
    resources = [validators.Resource(r.resource_type, r.name, r.props) for r in args.resources
                 if r.resource_type in (validators.DROPLET, validators.FIREWALL)]
    urns = {r.name: r.urn for r in args.resources if r.resource_type == validators.DROPLET}
    for name, message in validators.coverage_violations(resources):
        report_violation(message, urns.get(name))


POLICIES = [
    ResourceValidationPolicy(name="droplet-in-vpc-with-enclave-cloud-init", validate=validate_droplet,
                             description="Every droplet is in a VPC, boots enclave's cloud-config and has a role tag."),
    ResourceValidationPolicy(name="no-undeclared-public-ingress", validate=validate_public_ingress,
                             description="Cloud firewalls admit 0.0.0.0/0 or ::/0 only for flows from 'internet'."),
    StackValidationPolicy(name="role-tag-covered-by-firewall", validate=validate_coverage,
                          description="Every droplet's role tag is attached to a cloud firewall."),
]

if __name__ == "__main__":
    PolicyPack(name="enclave", enforcement_level=EnforcementLevel.MANDATORY, policies=POLICIES)
