"""The SDK's provider sign-in and upload URLs against a live server and a GitHub stand-in.

GitHub is `tests/support/oauth_provider.py`'s real local server, started for the module
before the stack, which is pointed at it. The backend-run sign-in is driven the way a
browser would: the authorization URL is fetched, its redirect followed to the backend's
callback.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import pytest
from flet_backend_client import (
    AsyncClient,
    ConflictError,
    ExpiredError,
    FileInfo,
    Job,
)
from PIL import Image
from sdk_stack import ADMIN_EMAIL, PASSWORD, Stack, run, unique_email

from tests.support.oauth_provider import Account, StandIn, running_stand_in

pytestmark = pytest.mark.slow
CSV = b"sku,name,description,price,currency,stock\nURL-1,Via a URL,,3.50,USD,2\n"


@pytest.fixture(scope="module")
def github(request: pytest.FixtureRequest) -> Iterator[StandIn]:
    """The GitHub stand-in for the module; the stack (started next) points at it."""
    with running_stand_in() as fake:
        settings = fake.settings(OAUTH_PROVIDER_TIMEOUT_SECONDS=5)
        request.module.EXTRA_ENV = {
            k: ",".join(v) if isinstance(v, list) else str(v)
            for k, v in settings.items()
            if k.startswith("OAUTH_GITHUB_") or k == "OAUTH_REDIRECT_URIS"
        }
        yield fake


@pytest.fixture(scope="module")
def stack(github: StandIn, stack: Stack) -> Stack:
    """The module's stack, started after the stand-in (so it is configured for it)."""
    del github
    return stack


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def test_a_provider_token_signs_in_and_the_identity_is_listed(
    stack: Stack, github: StandIn
) -> None:
    email = unique_email("gh")
    token = github.issue(Account("github", "9001", email))

    async def scenario() -> None:
        async with AsyncClient(stack.base_url) as client:
            assert [p.name for p in await client.providers()] == ["github"]
            user = await client.login_with_provider("github", token, device_name="sdk")
            assert user.email == email
            assert (await client.me()).id == user.id
            identities = await client.identities()
            assert [(i.provider, i.provider_user_id, i.email) for i in identities] == [
                ("github", "9001", email)
            ]
            with pytest.raises(ConflictError) as refused:  # no password: the only way in
                await client.unlink_identity("github")
            assert refused.value.error == "last_sign_in_method"

    run(scenario())


def test_the_backend_run_sign_in_completes_after_the_callback(
    stack: Stack, github: StandIn
) -> None:
    email = unique_email("flow")
    github.next_login = Account("github", "9002", email)
    visited: list[int] = []

    def browser(url: str) -> None:  # what the user's browser does with the URL
        page = httpx.get(url, follow_redirects=True, timeout=30)
        visited.append(page.status_code)

    async def scenario() -> None:
        async with AsyncClient(stack.base_url) as client:
            user = await client.sign_in_with_provider("github", browser, poll_interval=0.2)
            assert user.email == email
            assert client.is_authenticated

    run(scenario())
    assert visited == [200]


def test_the_backend_run_sign_in_is_pending_until_the_callback(stack: Stack) -> None:
    async def scenario() -> None:
        async with AsyncClient(stack.base_url) as client:
            pending = await client.start_provider_sign_in("github")
            assert "state=" in pending.authorization_url
            assert pending.code_verifier not in pending.authorization_url  # it stays here
            assert await client.complete_provider_sign_in(pending) is None
            assert not client.is_authenticated

    run(scenario())


def test_files_and_imports_go_up_through_upload_urls(stack: Stack) -> None:
    async def scenario() -> None:
        async with AsyncClient(stack.base_url) as client:
            await client.register(email := unique_email("up"), PASSWORD)
            await client.login(email, PASSWORD)
            seen: list[tuple[int, int]] = []
            stored = await client.upload_file_via_url(
                png(), filename="red.png", on_progress=lambda s, t: seen.append((s, t))
            )
            assert isinstance(stored, FileInfo)
            assert stored.content_type == "image/png"
            assert seen[-1] == (len(png()), len(png()))
            assert (await client.download_file(stored.id)) == png()

            target = await client.upload_url("again.png", size=len(png()))
            await client.put_to_upload_url(target, png())
            outcome = await client.wait_for_upload(target)
            assert outcome.status == "completed"
            assert outcome.file is not None
            with pytest.raises((ConflictError, ExpiredError)):  # single use
                await client.put_to_upload_url(target, png())

        async with AsyncClient(stack.base_url) as admin:
            await admin.login(ADMIN_EMAIL, PASSWORD)
            job = await admin.import_products_via_url(CSV)
            assert isinstance(job, Job)
            done = await admin.wait_for_job(job.id, timeout=120)
            assert done.status == "succeeded", done
            assert done.result["created"] == 1

    run(scenario())
