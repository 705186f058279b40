"""The lab's dead man's switch stand-in does what a heartbeat service does: pings keep a check up,
silence past period + grace pages once through the Slack and PagerDuty stand-ins, a ping brings it back."""

import time

import pytest
import requests
from tenacity import retry, retry_if_result, stop_after_delay, wait_fixed

from lab.receivers import heartbeat, pagerduty, slack
from tests.unit.test_alert_receivers import KEY, serve

pytestmark = pytest.mark.alerting
CHECK = "5f6c2d1e-0000-4000-8000-00000000beef"


@pytest.fixture
def stack(tmp_path):
    """The heartbeat stand-in (period 1s, grace 1s) paging through real Slack and PagerDuty stand-ins."""
    slack_server = slack.make_server("127.0.0.1", 0, str(tmp_path / "s.jsonl"), ["http://x/services/T1/BCRIT/tok"])
    pd_server = pagerduty.make_server("127.0.0.1", 0, str(tmp_path / "p.jsonl"), KEY)
    slack_url, pd_url = serve(slack_server), serve(pd_server)
    notify = heartbeat.notifier(f"{slack_url}/services/T1/BCRIT/tok", f"{pd_url}/v2/enqueue", KEY)
    hb_server = heartbeat.make_server("127.0.0.1", 0, str(tmp_path / "h.jsonl"), [f"https://hc-ping.example/ping/{CHECK}"], 1, 1, notify)
    hb_url = serve(hb_server)
    stop = heartbeat.start_watching(hb_server)
    yield hb_url, slack_url, pd_url
    stop.set()
    for server in (hb_server, slack_server, pd_server):
        server.shutdown()


def received(url: str, **query) -> list[dict]:
    return requests.get(f"{url}/api/received", params=query, timeout=5).json()["received"]


def until(what, seconds: float = 15):
    return retry(stop=stop_after_delay(seconds), wait=wait_fixed(0.2), retry=retry_if_result(lambda r: not r), retry_error_callback=lambda s: s.outcome.result())(what)()


def test_an_unknown_check_is_not_found(stack):
    hb_url, _, _ = stack
    assert requests.post(f"{hb_url}/ping/not-a-check", json={}, timeout=5).status_code == 404
    assert requests.post(f"{hb_url}/ping/{CHECK}", json={"alerts": []}, timeout=5).text == "OK"
    assert [r["kind"] for r in received(hb_url)] == ["ping"]


def test_a_new_check_never_pinged_does_not_page(stack):
    hb_url, slack_url, pd_url = stack
    time.sleep(3)  # past period + grace, but the check was never up
    assert received(hb_url, kind="down") == [] and received(pd_url) == [] and received(slack_url) == []


def test_silence_pages_once_and_a_ping_resolves(stack):
    hb_url, slack_url, pd_url = stack
    for _ in range(3):  # pings within the period keep it up
        assert requests.post(f"{hb_url}/ping/{CHECK}", json={}, timeout=5).ok
        time.sleep(0.5)
    assert received(hb_url, kind="down") == []
    down = until(lambda: received(hb_url, kind="down"))
    assert down and down[0]["notified"] == ["slack", "pagerduty"] and down[0]["silent_for_seconds"] > 2
    time.sleep(3)  # still silent: no second page
    assert len(received(hb_url, kind="down")) == 1
    triggers = received(pd_url, event_action="trigger")
    assert len(triggers) == 1 and triggers[0]["dedup_key"] == f"heartbeat-{CHECK}"
    assert "DOWN" in received(slack_url)[0]["message"]["text"]
    assert requests.post(f"{hb_url}/ping/{CHECK}", json={}, timeout=5).ok
    assert [r["notified"] for r in received(hb_url, kind="up")] == [["slack", "pagerduty"]]
    assert [e["dedup_key"] for e in received(pd_url, event_action="resolve")] == [f"heartbeat-{CHECK}"]


def test_a_revoked_slack_webhook_answers_404_until_restored(tmp_path):
    server = slack.make_server("127.0.0.1", 0, str(tmp_path / "s.jsonl"), ["http://x/services/T1/BCRIT/tok"])
    url = serve(server)
    try:
        hook = f"{url}/services/T1/BCRIT/tok"
        assert requests.post(f"{url}/api/revoke", json={"webhook": "BCRIT"}, timeout=5).json() == {"revoked": ["BCRIT"]}
        reply = requests.post(hook, json={"text": "x"}, timeout=5)
        assert (reply.status_code, reply.text) == (404, "no_service")
        assert received(url) == [{"received_at": received(url)[0]["received_at"], "webhook": "BCRIT", "refused": "revoked"}]
        requests.post(f"{url}/api/restore", json={"webhook": "BCRIT"}, timeout=5)
        assert requests.post(hook, json={"text": "x"}, timeout=5).text == "ok"
    finally:
        server.shutdown()
