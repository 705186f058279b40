"""The S3-compatible store runs, keeps its credentials private and has its buckets."""

import pytest

from roles.object_store import CURL_CONFIG, s3_request

pytestmark = pytest.mark.lab


def test_unit_active_and_enabled(stores_host):
    service = stores_host.testinfra.service("versitygw")
    assert service.is_running
    assert service.is_enabled


def test_health(stores_host):
    stores_host.curl(stores_host.local("object_store.s3", "/health"))


def test_credentials_are_not_world_readable(stores_host):
    creds = stores_host.testinfra.file("/etc/versitygw/credentials.env")
    assert creds.user == "root"
    assert creds.group == "versitygw"
    assert creds.mode == 0o640
    curl_config = stores_host.testinfra.file(CURL_CONFIG)
    assert (curl_config.user, curl_config.group, curl_config.mode) == ("root", "root", 0o600)


def test_buckets_exist_through_the_s3_api(stores_host):
    store = stores_host.settings.object_store
    request = s3_request("GET", stores_host.local("object_store.s3", "/"), store.region)
    # curl reads the credentials from its config itself: no shell sources them.
    listing = stores_host.testinfra.check_output(" ".join(["%s"] * len(request)), *request)
    for bucket in store.buckets:
        assert f"<Name>{bucket}</Name>" in listing


def test_an_anonymous_request_is_refused(stores_host):
    store = stores_host.settings.object_store
    status = stores_host.testinfra.check_output(
        f"curl -s -o /dev/null -w '%{{http_code}}' {stores_host.local('object_store.s3', '/' + store.buckets[0])}"
    )
    assert status in ("401", "403")
