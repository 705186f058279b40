"""S3 keys (issue 22): one account per consumer of the store, each owning only its bucket; the root
key only in the store's own files. Rendering only: the lab test (tests/e2e/test_s3_keys.py) runs it."""

from __future__ import annotations

import dataclasses
import subprocess

import pytest

from roles import object_store
from roles._environment import group_data as load_group_data, host_settings as build
from roles._placement import S3Account as Account, component, s3_accounts as accounts
from roles.loki import credentials_env as loki_env
from roles.tempo import credentials_env as tempo_env

SECRETS = {
    "SENTINEL_S3_ACCESS_KEY": "rootkey0001",
    "SENTINEL_S3_SECRET_KEY": "root-secret-0001",
    "SENTINEL_S3_LOKI_ACCESS_KEY": "lokikey0001",
    "SENTINEL_S3_LOKI_SECRET_KEY": "loki<&>\"'$(touch /x)",
    "SENTINEL_S3_TEMPO_ACCESS_KEY": "tempokey0001",
    "SENTINEL_S3_TEMPO_SECRET_KEY": "tempo-secret-0001",
}


def _settings(env: str = "prod", **data):
    merged = {**load_group_data("all"), **load_group_data(env), "address": "10.0.0.1", **data}
    if env == "lab":
        merged["artifact_base_url"] = "http://10.0.0.9:8080"
    return build("tel1", ["telemetry", env], merged)


def test_every_bucket_of_a_consumer_gets_its_own_account():
    found = accounts(_settings())
    assert [(a.name, a.key, a.bucket, a.access_key_secret, a.secret_key_secret) for a in found] == [
        ("loki", "loki", "loki", "SENTINEL_S3_LOKI_ACCESS_KEY", "SENTINEL_S3_LOKI_SECRET_KEY"),
        ("tempo", "traces.tempo", "tempo", "SENTINEL_S3_TEMPO_ACCESS_KEY", "SENTINEL_S3_TEMPO_SECRET_KEY"),
    ]
    # The lab runs neither Loki nor Tempo, yet the store creates their buckets: and so their owners.
    assert [a.name for a in accounts(_settings("lab"))] == ["loki", "tempo"]
    # A bucket no consumer names stays the root's; a consumer whose bucket the store does not create has no account.
    assert [a.name for a in accounts(_settings(object_store={"buckets": ["tempo", "archive"]}, logs={"store": "victorialogs"}))] == ["tempo"]


def test_the_store_reads_the_consumers_keys_and_the_consumers_only_their_own():
    settings = _settings()
    store = {use.name: use.required for use in component("object_store").secrets(settings)}
    assert {name for name, required in store.items() if required} == set(SECRETS)
    # A rotation's previous key ids: read when set, never required.
    assert {name for name, required in store.items() if not required} == {"SENTINEL_S3_LOKI_PREVIOUS_ACCESS_KEY", "SENTINEL_S3_TEMPO_PREVIOUS_ACCESS_KEY"}
    loki = {use.name: use.kind for use in component("loki").secrets(settings)}
    tempo = {use.name: use.kind for use in component("tempo").secrets(settings)}
    assert loki == {"SENTINEL_S3_LOKI_ACCESS_KEY": "s3_access_key", "SENTINEL_S3_LOKI_SECRET_KEY": "s3_key"}
    assert tempo == {"SENTINEL_S3_TEMPO_ACCESS_KEY": "s3_access_key", "SENTINEL_S3_TEMPO_SECRET_KEY": "s3_key"}


def test_consumers_env_files_hold_their_own_key_and_never_the_root_key():
    settings = _settings()
    loki, tempo = loki_env(settings.loki, SECRETS), tempo_env(settings.traces, SECRETS)
    assert "lokikey0001" in loki and "tempokey0001" in tempo
    for text in (loki, tempo):
        assert "rootkey0001" not in text and "root-secret-0001" not in text
    assert "tempokey0001" not in loki and "lokikey0001" not in tempo


def test_versitygw_keeps_its_accounts_in_its_internal_iam():
    settings = _settings()
    spec = object_store.service_spec(settings, SECRETS)
    assert "--iam-dir=/var/lib/versitygw/iam" in spec.exec_start
    assert spec.exec_start.index("--iam-dir=/var/lib/versitygw/iam") < spec.exec_start.index("posix")  # a global flag
    assert "/var/lib/versitygw/iam" in spec.data_dirs
    assert "--iam-cache-disable" in spec.exec_start  # an updated account holds from the next request
    # The root key stays in the store's env file (0640 root:versitygw).
    [creds] = spec.configs
    assert "rootkey0001" in creds.content and "lokikey0001" not in creds.content


def test_account_files_are_the_admin_requests_with_the_key_escaped_as_go_writes_it():
    account = accounts(_settings())[0]
    files = object_store.account_files(account, SECRETS, 7070)
    xml_secret = "loki&lt;&amp;&gt;&#34;&#39;$(touch /x)"
    user = f"<Access>lokikey0001</Access><Secret>{xml_secret}</Secret><Role>user</Role>"
    assert files == {
        "loki.create.xml": f"<Account>{user}</Account>",
        "loki.update.xml": f"<MutableProps><Secret>{xml_secret}</Secret><Role>user</Role></MutableProps>",
        "loki.update.url": 'url = "http://127.0.0.1:7070/update-user?access=lokikey0001"\n',
        "loki.owner.url": 'url = "http://127.0.0.1:7070/change-bucket-owner?bucket=loki&owner=lokikey0001"\n',
        "loki.user": user + "\n",
        "loki.owner": "<Name>loki</Name><Owner>lokikey0001</Owner>\n",
        "loki.access": "lokikey0001\n",
        "loki.policy.url": 'url = "http://127.0.0.1:7070/loki?policy="\n',
    }
    # No file of the account holds the root key.
    assert not [name for name, text in files.items() if "rootkey0001" in text or "root-secret-0001" in text]


@pytest.mark.parametrize("access", ["a/b", "k?x=1", 'k"', "k\\", "k y", "ab"])
def test_an_access_key_that_cannot_name_an_account_is_refused(access):
    account = accounts(_settings())[0]
    with pytest.raises(object_store.quoting.QuotingError):
        object_store.account_files(account, {**SECRETS, "SENTINEL_S3_LOKI_ACCESS_KEY": access}, 7070)


def test_the_accounts_script_holds_no_key_and_parses():
    settings = _settings()
    script = object_store.accounts_script(accounts(settings), 7070, "us-east-1")
    for value in SECRETS.values():
        assert value not in script
    assert 'accounts="loki tempo"' in script and "$((2 + $(previous_count)))" in script and "--role" not in script
    subprocess.run(["sh", "-n"], input=script, text=True, check=True)
    with pytest.raises(object_store.quoting.QuotingError):
        object_store.accounts_script(accounts(settings), 7070, "us-east-1; reboot")


def test_secrets_never_reach_a_command_line():
    """The role's commands name files, never values: curl reads the keys itself (-K, @file)."""
    script = object_store.accounts_script(accounts(_settings()), 7070, "us-east-1")
    assert "--secret" not in script and "ADMIN_SECRET" not in script
    assert '-K "$dir/$a.update.url"' in script and '"@$dir/$a.create.xml"' in script


def test_go_xml_escape_refuses_what_xml_cannot_carry():
    assert object_store.go_xml_escape("a\tb") == "a&#x9;b"
    with pytest.raises(object_store.quoting.QuotingError):
        object_store.go_xml_escape("a\x00b")


def test_account_is_a_plain_record():
    account = Account("loki", "loki", "loki", "A", "S")
    assert dataclasses.replace(account, bucket="x").bucket == "x"


# --- a two-phase rotation: the previous key id keeps its bucket until the second phase -----------------------


def test_during_a_rotation_the_previous_key_keeps_every_right_on_its_bucket_and_nothing_else():
    import json

    account = accounts(_settings())[0]
    files = object_store.account_files(account, {**SECRETS, "SENTINEL_S3_LOKI_PREVIOUS_ACCESS_KEY": "lokikey0000"}, 7070)
    assert files["loki.previous"] == "lokikey0000\n"
    policy = json.loads(files["loki.policy.json"])
    [statement] = policy["Statement"]
    # Both key ids: with a policy on the bucket the store admits its principals only, the owner included.
    assert statement == {"Effect": "Allow", "Principal": {"AWS": ["lokikey0001", "lokikey0000"]}, "Action": ["s3:*"],
                         "Resource": ["arn:aws:s3:::loki", "arn:aws:s3:::loki/*"]}
    assert files["loki.policy.json"].count("\n") == 1  # one line, as the store returns it on GET ?policy
    # Outside a rotation: neither file, so the role removes them and the sync deletes the old account.
    plain = object_store.account_files(account, SECRETS, 7070)
    assert not {f"loki.{suffix}" for suffix in object_store.OVERLAP_FILES} & set(plain)


@pytest.mark.parametrize("previous", ["a/b", "k?x=1", "ab"])
def test_a_previous_key_id_that_cannot_name_an_account_is_refused(previous):
    account = accounts(_settings())[0]
    with pytest.raises(object_store.quoting.QuotingError, match="previous_access_key_secret"):
        object_store.account_files(account, {**SECRETS, "SENTINEL_S3_LOKI_PREVIOUS_ACCESS_KEY": previous}, 7070)


def test_the_script_keeps_the_previous_account_only_while_its_file_is_there():
    script = object_store.accounts_script(accounts(_settings()), 7070, "us-east-1")
    # The sync's keep-list reads the previous key id from its file; the check counts it among the accounts.
    assert '[ -e "$dir/$a.previous" ] && [ "$key" = "$(cat "$dir/$a.previous")" ] && wanted=yes' in script
    assert 's3 -X PUT --data-binary "@$dir/$a.policy.json"' in script and 's3 -X DELETE -K "$dir/$a.policy.url"' in script
    assert "policy-left" in script and "overlap-policy" in script


def test_preflight_accepts_a_previous_key_id_of_its_own_and_refuses_the_current_one():
    from roles._model import SettingsError

    settings = _settings()
    object_store.check_rotations("tel1", settings, {**SECRETS, "SENTINEL_S3_LOKI_PREVIOUS_ACCESS_KEY": "lokikey0000"})
    object_store.check_rotations("tel1", settings, SECRETS)  # no rotation under way
    with pytest.raises(SettingsError) as err:
        object_store.check_rotations("tel1", settings, {**SECRETS, "SENTINEL_S3_LOKI_PREVIOUS_ACCESS_KEY": "lokikey0001"})
    assert err.value.key == "host tel1.loki.previous_access_key_secret" and "a new key id" in err.value.fix
    assert "lokikey0001" not in str(err.value)
