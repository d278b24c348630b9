"""Outgoing webhooks, the admin API: endpoints, secrets, validation, tests and the log."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend.models import AuditEvent, WebhookDelivery, WebhookEndpoint, utcnow
from tests.support.helpers import assert_error, json_body
from tests.support.webhook_receiver import Receiver

API = "/api/v1"
PUBLIC_URL = "http://93.184.215.14/hook"  # a public address literal: nothing is resolved
ROUTES = [
    ("post", "/webhooks"),
    ("get", "/webhooks"),
    ("get", "/webhooks/1"),
    ("patch", "/webhooks/1"),
    ("delete", "/webhooks/1"),
    ("post", "/webhooks/1/rotate-secret"),
    ("post", "/webhooks/1/test"),
    ("get", "/webhooks/1/deliveries"),
    ("post", "/webhooks/1/deliveries/1/redeliver"),
]


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    """The app, allowed to send to the receiver on 127.0.0.1."""
    flask_app = make_app(WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True, WEBHOOKS_RETRY_SCHEDULE=[0.05],
                         WEBHOOKS_MAX_ATTEMPTS=3, WEBHOOKS_TIMEOUT_SECONDS=2)  # fmt: skip
    with flask_app.app_context():
        yield flask_app


def create(
    client: FlaskClient, admin: dict[str, str], url: str = PUBLIC_URL, **body: Any
) -> dict[str, Any]:
    response = client.post(
        f"{API}/webhooks", json={"url": url, "events": ["*"], **body}, headers=admin
    )
    assert response.status_code == 201, response.data
    return json_body(response)


def test_a_webhook_is_made_with_a_secret_shown_only_then(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    made = create(client, admin, events=["order.created", "product.*", "order.created"],
                  description="the shop's ERP")  # fmt: skip
    assert made["secret"].startswith("whsec_")
    assert made["events"] == ["order.created", "product.*"]
    assert (made["url"], made["description"], made["is_active"]) == (
        PUBLIC_URL, "the shop's ERP", True,
    )  # fmt: skip
    assert made["created_at"].endswith("+00:00")
    shown = json_body(client.get(f"{API}/webhooks/{made['id']}", headers=admin))
    assert "secret" not in shown
    assert shown["previous_secret_expires_at"] is None
    listed = client.get(f"{API}/webhooks", headers=admin)
    assert [w["id"] for w in listed.get_json()] == [made["id"]]
    assert "secret" not in listed.get_json()[0]
    assert json.loads(listed.headers["X-Pagination"])["total"] == 1
    audit = AuditEvent.get(AuditEvent.action == "webhook.created")
    assert (audit.target_type, audit.target_id) == ("webhook", str(made["id"]))
    assert "secret" not in json.dumps(audit.data)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_is_for_admins_only(
    client: FlaskClient, user: dict[str, str], method: str, path: str
) -> None:
    body = {"json": {"url": PUBLIC_URL, "events": ["*"]}} if method in ("post", "patch") else {}
    call = getattr(client, method)
    assert_error(call(f"{API}{path}", **body), 401, "unauthorized")
    assert_error(call(f"{API}{path}", headers=user, **body), 403, "forbidden")


@pytest.mark.parametrize(
    "body",
    [
        {"url": "ftp://example.com/x", "events": ["*"]},
        {"url": "not a url", "events": ["*"]},
        {"url": "javascript:alert(1)", "events": ["*"]},
        {"url": PUBLIC_URL, "events": ["order.shipped"]},
        {"url": PUBLIC_URL, "events": ["nothing.*"]},
        {"url": PUBLIC_URL, "events": []},
        {"url": PUBLIC_URL},
        {"events": ["*"]},
        {"url": PUBLIC_URL, "events": ["*"], "secret": "whsec_mine"},
        {"url": "http://" + "a" * 2000 + ".com/", "events": ["*"]},
    ],
)
def test_invalid_webhooks_are_refused(
    client: FlaskClient, admin: dict[str, str], body: dict[str, Any]
) -> None:
    assert_error(client.post(f"{API}/webhooks", json=body, headers=admin), 422, "validation_error")
    assert WebhookEndpoint.select().count() == 0


def test_a_url_with_credentials_or_that_does_not_resolve_is_refused(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    for url in ("http://user:pw@93.184.215.14/", "http://no-such-host.invalid/hook"):
        body = {"url": url, "events": ["*"]}
        refused = client.post(f"{API}/webhooks", json=body, headers=admin)
        assert "url" in assert_error(refused, 422, "url_not_allowed")["errors"]["json"]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00:ec2::254]/",
        "https://0.0.0.0/",
    ],
)
def test_private_destinations_are_refused_unless_allowed(
    make_app: Callable[..., Flask], url: str
) -> None:
    from tests.support.accounts import login, make_user

    strict = make_app(WEBHOOKS_ALLOW_PRIVATE_NETWORKS=False)
    with strict.app_context():
        client = strict.test_client()
        make_user("root@example.test", role="admin")
        admin = login(client, "root@example.test").headers
        body = {"url": url, "events": ["*"]}
        refused = client.post(f"{API}/webhooks", json=body, headers=admin)
        assert_error(refused, 422, "url_not_allowed")
        made = create(client, admin)
        patched = client.patch(f"{API}/webhooks/{made['id']}", json={"url": url}, headers=admin)
        assert_error(patched, 422, "url_not_allowed")
    lenient = make_app(WEBHOOKS_ALLOW_PRIVATE_NETWORKS=True)
    with lenient.app_context():
        client = lenient.test_client()
        admin = login(client, "root@example.test").headers
        assert client.post(f"{API}/webhooks", json=body, headers=admin).status_code == 201


def test_a_webhook_is_changed_and_deleted(
    client: FlaskClient, admin: dict[str, str], webhook_receiver: Receiver
) -> None:
    made = create(client, admin)
    changes = {"url": webhook_receiver.url, "events": ["order.*"], "description": "new"}
    patched = json_body(client.patch(f"{API}/webhooks/{made['id']}", json=changes, headers=admin))
    assert {k: patched[k] for k in changes} == changes
    client.post(f"{API}/webhooks/{made['id']}/test", headers=admin)
    assert client.delete(f"{API}/webhooks/{made['id']}", headers=admin).status_code == 204
    assert_error(client.get(f"{API}/webhooks/{made['id']}", headers=admin), 404, "not_found")
    assert_error(client.delete(f"{API}/webhooks/{made['id']}", headers=admin), 404, "not_found")
    assert WebhookDelivery.select().count() == 0
    actions = [e.action for e in AuditEvent.select().where(AuditEvent.target_type == "webhook")]
    assert actions == ["webhook.created", "webhook.updated", "webhook.deleted"]


def test_disabling_fails_pending_deliveries_and_enabling_clears_the_failures(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    made = create(client, admin)
    delivery = json_body(client.post(f"{API}/webhooks/{made['id']}/test", headers=admin))
    assert delivery["status"] == "pending"
    WebhookEndpoint.update(consecutive_failures=4).execute()
    off = json_body(client.patch(f"{API}/webhooks/{made['id']}", json={"is_active": False},
                                 headers=admin))  # fmt: skip
    assert (off["is_active"], off["disabled_reason"]) == (False, "disabled by an admin")
    assert WebhookDelivery.get_by_id(delivery["id"]).status == "failed"
    test = client.post(f"{API}/webhooks/{made['id']}/test", headers=admin)
    assert_error(test, 409, "webhook_inactive")
    again = f"{API}/webhooks/{made['id']}/deliveries/{delivery['id']}/redeliver"
    assert_error(client.post(again, headers=admin), 409, "webhook_inactive")
    on = json_body(client.patch(f"{API}/webhooks/{made['id']}", json={"is_active": True},
                                headers=admin))  # fmt: skip
    assert (on["is_active"], on["disabled_reason"], on["consecutive_failures"]) == (True, None, 0)
    bad = client.patch(f"{API}/webhooks/{made['id']}", json={"is_active": 1}, headers=admin)
    assert_error(bad, 422, "validation_error")


def test_the_delivery_log_is_newest_first_and_per_webhook(
    client: FlaskClient, admin: dict[str, str]
) -> None:
    first, second = create(client, admin), create(client, admin)
    ids = [json_body(client.post(f"{API}/webhooks/{first['id']}/test", headers=admin))["id"]
           for _ in range(3)]  # fmt: skip
    log = client.get(f"{API}/webhooks/{first['id']}/deliveries?page_size=2", headers=admin)
    assert [d["id"] for d in log.get_json()] == ids[::-1][:2]
    assert json.loads(log.headers["X-Pagination"])["total"] == 3
    entry = log.get_json()[0]
    assert entry["event_type"] == "webhook.test"
    assert entry["webhook_id"].startswith("msg_")
    assert entry["event_id"].startswith("evt_")
    assert (entry["status"], entry["attempts"], entry["delivered_at"]) == ("pending", 0, None)
    other = f"{API}/webhooks/{second['id']}/deliveries/{ids[0]}/redeliver"
    assert_error(client.post(other, headers=admin), 404, "not_found")
    assert client.get(f"{API}/webhooks/{second['id']}/deliveries", headers=admin).get_json() == []
    assert_error(client.get(f"{API}/webhooks/999/deliveries", headers=admin), 404, "not_found")


def test_a_test_delivery_arrives_signed_and_a_redelivery_has_the_same_id(
    client: FlaskClient, admin: dict[str, str], webhook_receiver: Receiver,
    run_worker: Callable[[], bool],
) -> None:  # fmt: skip
    made = create(client, admin, url=webhook_receiver.url, events=["order.created"])
    webhook_receiver.secret = made["secret"]
    test = client.post(f"{API}/webhooks/{made['id']}/test", headers=admin)
    assert test.status_code == 202
    assert test.headers["Location"] == f"{API}/webhooks/{made['id']}/deliveries"
    run_worker()
    (got,) = webhook_receiver.wait_for(1)
    assert got.verified
    assert got.webhook_id == test.get_json()["webhook_id"]
    assert got.json["type"] == "webhook.test"
    assert got.json["data"]["webhook"] == {"id": made["id"], "url": webhook_receiver.url}
    assert int(got.headers["webhook-timestamp"]) > 0
    again = client.post(
        f"{API}/webhooks/{made['id']}/deliveries/{test.get_json()['id']}/redeliver", headers=admin
    )
    assert again.status_code == 202
    assert again.get_json()["webhook_id"] == got.webhook_id
    assert again.get_json()["id"] != test.get_json()["id"]
    run_worker()
    first, second = webhook_receiver.wait_for(2)
    assert second.webhook_id == first.webhook_id
    assert second.body == first.body
    log = client.get(f"{API}/webhooks/{made['id']}/deliveries", headers=admin).get_json()
    assert [(d["status"], d["attempts"], d["response_status"]) for d in log] == [
        ("succeeded", 1, 200), ("succeeded", 1, 200),
    ]  # fmt: skip
    assert log[0]["delivered_at"] is not None
    assert log[0]["response_body"] == "ok"


def test_after_a_rotation_both_secrets_sign_for_24_hours_then_only_the_new_one(
    client: FlaskClient, admin: dict[str, str], webhook_receiver: Receiver,
    run_worker: Callable[[], bool],
) -> None:  # fmt: skip
    made = create(client, admin, url=webhook_receiver.url)
    old = made["secret"]
    rotated = client.post(f"{API}/webhooks/{made['id']}/rotate-secret", headers=admin)
    body = json_body(rotated)
    new = body["secret"]
    assert new.startswith("whsec_")
    assert new != old
    assert body["previous_secret_expires_at"] is not None
    assert AuditEvent.get(AuditEvent.action == "webhook.secret_rotated").target_id == str(
        made["id"]
    )
    client.post(f"{API}/webhooks/{made['id']}/test", headers=admin)
    run_worker()
    (during,) = webhook_receiver.wait_for(1)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert during.verifies_with(new)
    assert during.verifies_with(old)
    WebhookEndpoint.update(previous_secret_until=utcnow() - timedelta(seconds=1)).execute()
    client.post(f"{API}/webhooks/{made['id']}/test", headers=admin)
    run_worker()
    _, after = webhook_receiver.wait_for(2)
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    assert after.verifies_with(new)
    assert not after.verifies_with(old)
    shown = json_body(client.get(f"{API}/webhooks/{made['id']}", headers=admin))
    assert shown["previous_secret_expires_at"] is None
