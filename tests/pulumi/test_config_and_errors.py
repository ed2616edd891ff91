"""Reading the whole stack config, and config problems reported as clean errors (under the mocks)."""
from __future__ import annotations

import pulumi
import pytest

from components import program
from components.config import decode_value, runtime_config_values, stack_config
from tests.pulumi.enclave_mocks import EnclaveMocks
from tests.pulumi.program_harness import as_pulumi_config, deploy, stack_file_config, start
from topology.errors import ConfigError


def test_values_are_decoded_as_the_stack_file_wrote_them():
    assert decode_value('{"tunnel": {"count": 1}}') == {"tunnel": {"count": 1}}
    assert decode_value('["203.0.113.0/24"]') == ["203.0.113.0/24"]
    assert decode_value("false") is False and decode_value("true") is True
    assert decode_value("12345") == "12345"  # an image id stays text
    assert decode_value("{broken") == "{broken"


def test_provider_secrets_never_reach_the_model():
    config = stack_config({"digitalocean:token": "dop_v1_secret", "digitalocean:region": "nyc3", "enclave:size": "s-1vcpu-1gb"})
    assert config == {"digitalocean:region": "nyc3", "enclave:size": "s-1vcpu-1gb"}


def test_the_program_reads_every_key_the_runtime_holds():
    config = stack_file_config("wordpress")
    start("wordpress", config)
    values = runtime_config_values()
    assert set(values) == set(config)
    assert stack_config(values) == config  # round trip through Pulumi's string form


def test_a_typo_in_a_key_is_reported_with_its_path():
    config = dict(stack_file_config("evergreen"))
    config["enclave:vpc_cdir"] = config.pop("enclave:vpc_cidr")
    start("evergreen", config)
    with pytest.raises(ConfigError) as error:
        program.load("evergreen", runtime_config_values())
    paths = [p.path for p in error.value.problems]
    assert "enclave:vpc_cdir" in paths and "enclave:vpc_cidr" in paths


def test_main_logs_each_problem_and_fails_without_a_traceback():
    config = dict(stack_file_config("wordpress"))
    config["enclave:roles"] = dict(config["enclave:roles"], mysql={"count": 0, "profile": "mysql"})
    _, capture = start("wordpress", config)

    @pulumi.runtime.test
    def run():
        with pytest.raises(pulumi.RunError) as error:
            program.main()
        assert "config problem" in str(error.value)

    run()
    logged = [r.getMessage() for r in capture.records if r.levelname == "ERROR"]
    assert any(m.startswith("enclave:roles.mysql.count: must be >= 1") for m in logged), logged
    assert "enclave:flows[3].to: unknown role 'mysql'" in logged, logged  # every problem, not just the first


def test_managed_mode_needs_one_load_balancer_host():
    config = dict(stack_file_config("prod"))
    config["enclave:roles"] = dict(config["enclave:roles"], lb={"count": 2, "profile": "haproxy"})
    start("prod", config)
    with pytest.raises(ConfigError) as error:
        program.load("prod", runtime_config_values())
    assert [str(p) for p in error.value.problems] == [
        "enclave:roles.lb.count: managed mode makes one DigitalOcean load balancer: count must be 1"]


def test_no_resource_is_created_for_a_bad_stack():
    config = dict(stack_file_config("gateway"), **{"enclave:flows": [{"from": "nobody", "to": "worker", "proto": "tcp", "ports": 1}]})
    with pytest.raises(ConfigError):
        deploy("gateway", config)


def test_the_mocks_refuse_unexpected_resources_and_calls():
    mocks = EnclaveMocks(vpc_cidr="10.0.0.0/24")
    with pytest.raises(NotImplementedError, match="unexpected resource type aws:s3/bucket:Bucket"):
        mocks.new_resource(pulumi.runtime.MockResourceArgs("aws:s3/bucket:Bucket", "b", {}, custom=True))
    with pytest.raises(NotImplementedError, match="unexpected provider call digitalocean:index/getDroplet:getDroplet"):
        mocks.call(pulumi.runtime.MockCallArgs("digitalocean:index/getDroplet:getDroplet", {}, None))
    assert mocks.resources == []


def test_as_pulumi_config_is_strings_only():
    assert set(map(type, as_pulumi_config(stack_file_config("prod")).values())) == {str}
