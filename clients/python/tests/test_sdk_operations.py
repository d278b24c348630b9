"""The SDK's operations against a live server: the audit trail, job retries, the jobs dashboard."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import httpx
import pytest
from flet_backend_client import (
    AsyncClient,
    AuditEvent,
    AuthError,
    Client,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    ValidationError,
)
from sdk_stack import ADMIN_EMAIL, PASSWORD, Stack, run, unique_email

pytestmark = pytest.mark.slow

HEADER = b"sku,name,description,price,currency,stock\n"
# The header passes the upload's check; the worker then meets a line that is not UTF-8
# and fails the job, keeping the CSV for a retry (which fails the same way).
UNDECODABLE_CSV = HEADER + b"OK-1,Fine,,1.00,USD,1\nBAD-1,Caf\xe9,,1.00,USD,1\n"


async def signed_in(stack: Stack, email: str | None = None) -> AsyncClient:
    client = AsyncClient(stack.base_url)
    if email is None:
        email = unique_email("ops")
        await client.register(email, PASSWORD, name="Ops Test")
    await client.login(email, PASSWORD)
    return client


def test_an_admin_reads_and_filters_the_audit_trail(stack: Stack) -> None:
    async def scenario() -> None:
        admin = await signed_in(stack, ADMIN_EMAIL)
        user = await signed_in(stack)
        anonymous = AsyncClient(stack.base_url)
        try:
            me = await user.me()
            mine = await admin.list_audit_events(actor_id=me.id)
            assert [e.action for e in mine.items] == ["auth.login", "user.registered"]
            assert mine.total == 2
            assert all(e.actor_id == me.id for e in mine.items)
            login, registered = mine.items
            assert login.id > registered.id  # newest first
            assert isinstance(registered, AuditEvent)
            assert registered.target == f"user:{me.id}"
            assert (registered.target_type, registered.target_id) == ("user", str(me.id))
            assert login.target is None
            assert login.target_type is None
            assert isinstance(login.data["session_id"], int)
            assert registered.ip == "127.0.0.1"
            assert registered.request_id
            created = registered.created_at
            assert created is not None
            assert created.utcoffset() == timedelta(0)

            by_target = await admin.list_audit_events(target=f"user:{me.id}")
            assert [e.id for e in by_target.items] == [registered.id]
            by_action = await admin.list_audit_events(action="user.registered", actor_id=me.id)
            assert [e.id for e in by_action.items] == [registered.id]

            # since is inclusive and until exclusive, in any offset (sent with its `+`).
            india = created.astimezone(timezone(timedelta(hours=5, minutes=30)))
            since = await admin.list_audit_events(actor_id=me.id, since=india)
            assert {e.id for e in since.items} == {registered.id, login.id}
            until = await admin.list_audit_events(actor_id=me.id, until=india)
            assert until.items == []
            later = created + timedelta(microseconds=1)
            window = await admin.list_audit_events(actor_id=me.id, since=created, until=later)
            assert [e.id for e in window.items] == [registered.id]
            with pytest.raises(ValidationError) as caught:
                await admin.list_audit_events(since=later, until=created)
            assert caught.value.status == 422
            with pytest.raises(ValidationError):
                await admin.list_audit_events(target="not a target")
            with pytest.raises(ValueError, match="aware"):
                await admin.list_audit_events(since=datetime(2026, 1, 1))  # noqa: DTZ001

            # A feed: only what came after the newest id seen.
            await user.update_me("Renamed")
            await user.logout()
            fresh = await admin.list_audit_events(actor_id=me.id, after=login.id)
            assert [e.action for e in fresh.items] == ["auth.logout"]
            assert fresh.items[0].data["scope"] == "local"

            stranger = unique_email("nobody")
            with pytest.raises(AuthError):
                await anonymous.login(stranger, PASSWORD)
            failed = await admin.list_audit_events(action="auth.login_failed", after=login.id)
            [attempt] = [e for e in failed.items if e.data.get("email") == stranger]
            assert (attempt.actor_id, attempt.target) == (None, None)  # nobody to name
        finally:
            await admin.aclose()
            await user.aclose()
            await anonymous.aclose()

    run(scenario())


def test_audit_pages_are_walked_once_each_even_while_the_trail_grows(stack: Stack) -> None:
    async def scenario() -> None:
        admin = await signed_in(stack, ADMIN_EMAIL)
        cursor = (await admin.list_audit_events(page_size=1)).items[0].id
        users = [await signed_in(stack) for _ in range(5)]
        try:
            first = await admin.list_audit_events(
                action="user.registered", after=cursor, page_size=2
            )
            assert (first.total, first.total_pages, first.page, len(first.items)) == (5, 3, 1, 2)
            assert first.has_next
            second, last = [
                await admin.list_audit_events(
                    action="user.registered", after=cursor, page=n, page_size=2
                )
                for n in (2, 3)
            ]
            assert (len(second.items), len(last.items), last.has_next) == (2, 1, False)
            everything = [
                e.id async for e in admin.iter_audit_events(action="user.registered", after=cursor)
            ]
            assert everything == [e.id for e in first.items + second.items + last.items]
            assert everything == sorted(everything, reverse=True)

            walked: list[int] = []
            async for entry in admin.iter_audit_events(
                action="user.registered", after=cursor, page_size=2
            ):
                walked.append(entry.id)
                if len(walked) == 1:  # two more entries arrive while the walk goes on
                    users += [await signed_in(stack), await signed_in(stack)]
            assert walked == everything, "the new entries push old ones down: none twice"
            newer = [
                e.action
                async for e in admin.iter_audit_events(action="user.registered", after=walked[0])
            ]
            assert newer == ["user.registered"] * 2
        finally:
            await admin.aclose()
            for user in users:
                await user.aclose()

    run(scenario())


def test_the_audit_trail_is_for_admins_only(stack: Stack) -> None:
    async def scenario() -> None:
        user = await signed_in(stack)
        anonymous = AsyncClient(stack.base_url)
        try:
            with pytest.raises(ForbiddenError) as caught:
                await user.list_audit_events()
            assert (caught.value.status, caught.value.error) == (403, "forbidden")
            with pytest.raises(ForbiddenError):
                [e async for e in user.iter_audit_events()]
            with pytest.raises(AuthError):
                await anonymous.list_audit_events()
        finally:
            await user.aclose()
            await anonymous.aclose()

    run(scenario())


def test_a_failed_import_is_retried_as_a_new_queued_job(stack: Stack) -> None:
    async def scenario() -> None:
        admin = await signed_in(stack, ADMIN_EMAIL)
        user = await signed_in(stack)
        try:
            job = await admin.import_products(UNDECODABLE_CSV)
            failed = await admin.wait_for_job(job.id, timeout=60)
            assert failed.status == "failed", failed
            assert failed.error is not None
            assert "UTF-8" in failed.error

            with pytest.raises(NotFoundError):  # someone else's job
                await user.retry_job(job.id)
            again = await admin.retry_job(job.id)
            assert again.id != job.id
            assert (again.kind, again.status) == ("products.import", "queued")
            assert not again.is_terminal
            ended = await admin.wait_for_job(again.id, timeout=60)
            assert ended.status == "failed", ended  # the same input, the same fault
            assert ended.error == failed.error

            with pytest.raises(ConflictError) as caught:
                await admin.retry_job(job.id)  # retried already
            assert (caught.value.status, caught.value.error) == (409, "job_not_retryable")
            assert "retried already" in caught.value.message
            third = await admin.retry_job(again.id)  # a retry may be retried in turn
            assert third.id not in (job.id, again.id)
            assert (await admin.wait_for_job(third.id, timeout=60)).status == "failed"

            good = await admin.import_products(HEADER + b"OK-2,Fine,,1.00,USD,1\n")
            assert (await admin.wait_for_job(good.id, timeout=60)).status == "succeeded"
            with pytest.raises(ConflictError) as caught:
                await admin.retry_job(good.id)
            assert caught.value.error == "job_not_retryable"
            with pytest.raises(NotFoundError):
                await admin.retry_job("0" * 32)
        finally:
            await admin.aclose()
            await user.aclose()

    run(scenario())


def test_the_dashboard_link_opens_rq_dashboard_once(stack: Stack) -> None:
    async def scenario() -> None:
        admin = await signed_in(stack, ADMIN_EMAIL)
        user = await signed_in(stack)
        try:
            url = await admin.jobs_dashboard_link()
            assert url.startswith(f"{stack.base_url}/admin/rq/login?ticket=")
            async with httpx.AsyncClient(follow_redirects=True, timeout=30) as browser:
                page = await browser.get(url)
                assert page.status_code == 200, page.text
                assert page.url.path == "/admin/rq/"
                assert page.headers["content-type"].startswith("text/html")
                assert "rq dashboard" in page.text.lower() or "rq-dashboard" in page.text.lower()
                assert "jobs_dashboard" in browser.cookies
            async with httpx.AsyncClient(follow_redirects=True, timeout=30) as other:
                spent = await other.get(url)
                assert spent.status_code == 410
                assert spent.json()["error"] == "expired"
                assert (await other.get(f"{stack.base_url}/admin/rq/")).status_code == 401
            assert await admin.jobs_dashboard_link() != url  # a new link each time

            with pytest.raises(ForbiddenError) as caught:
                await user.jobs_dashboard_link()
            assert (caught.value.status, caught.value.error) == (403, "forbidden")
        finally:
            await admin.aclose()
            await user.aclose()

    run(scenario())


def test_the_blocking_client_has_the_operations_too(stack: Stack) -> None:
    with Client(stack.base_url) as admin:
        admin.login(ADMIN_EMAIL, PASSWORD)
        logins = admin.list_audit_events(action="auth.login", page_size=1)
        assert logins.total >= 1
        ids = [e.id for e in admin.iter_audit_events(action="auth.login", page_size=1)]
        assert ids == sorted(set(ids), reverse=True)
        assert len(ids) == logins.total
        assert admin.jobs_dashboard_link().startswith(f"{stack.base_url}/admin/rq/login?")
        job = admin.import_products(UNDECODABLE_CSV)
        assert admin.wait_for_job(job.id, timeout=60).status == "failed"
        assert admin.retry_job(job.id).status == "queued"
