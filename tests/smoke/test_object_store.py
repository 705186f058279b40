"""The S3-compatible store runs, keeps its credentials private and has its buckets."""

import pytest

from roles.object_store import CURL_CONFIG, s3_request

pytestmark = pytest.mark.lab


def test_unit_active_and_enabled(telemetry_host):
    service = telemetry_host.testinfra.service("versitygw")
    assert service.is_running
    assert service.is_enabled


def test_health(telemetry_host):
    telemetry_host.curl(telemetry_host.local("object_store.s3", "/health"))


def test_credentials_are_not_world_readable(telemetry_host):
    creds = telemetry_host.testinfra.file("/etc/versitygw/credentials.env")
    assert creds.user == "root"
    assert creds.group == "versitygw"
    assert creds.mode == 0o640
    curl_config = telemetry_host.testinfra.file(CURL_CONFIG)
    assert (curl_config.user, curl_config.group, curl_config.mode) == ("root", "root", 0o600)


def test_buckets_exist_through_the_s3_api(telemetry_host):
    store = telemetry_host.settings.object_store
    request = s3_request("GET", telemetry_host.local("object_store.s3", "/"), store.region)
    # curl reads the credentials from its config itself: no shell sources them.
    listing = telemetry_host.testinfra.check_output(" ".join(["%s"] * len(request)), *request)
    for bucket in store.buckets:
        assert f"<Name>{bucket}</Name>" in listing


def test_an_anonymous_request_is_refused(telemetry_host):
    store = telemetry_host.settings.object_store
    status = telemetry_host.testinfra.check_output(
        f"curl -s -o /dev/null -w '%{{http_code}}' {telemetry_host.local('object_store.s3', '/' + store.buckets[0])}"
    )
    assert status in ("401", "403")
