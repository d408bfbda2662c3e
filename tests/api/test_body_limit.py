"""A request body is read before the caller is known, so the size cap is what keeps an
anonymous caller from making the api buffer any amount: over 4 MiB is refused (413) on
the public and the internal API alike, declared or streamed; the largest cloud event the
settings allow stays under it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import ValidationError

from zc_common.settings import ApiSettings

from tests.api.factories import Api, Tenant
from tests.support.credentials import API_CREDENTIALS, bearer
from zc_api.routes import MAX_BODY_BYTES

TOO_BIG = b'{"x": "' + b"a" * (MAX_BODY_BYTES + 1) + b'"}'


async def _streamed() -> AsyncIterator[bytes]:
    chunk = b"a" * 65536
    yield b'{"x": "'
    for _ in range(MAX_BODY_BYTES // len(chunk) + 2):
        yield chunk
    yield b'"}'


# (POST /api/v1/cloudevents reads its body itself, after the caller is known, against
# ZC_MAX_CLOUDEVENT_BYTES: tests/api/test_cloudevents.py.)
@pytest.mark.parametrize("path", ["/api/v1/accounts", "/api/v1/tokens", "/internal/v1/leases/claim"])
async def test_an_oversized_body_is_refused_before_anything_else(api: Api, path: str) -> None:
    listener = api.internal if path.startswith("/internal/") else api.client
    declared = await listener.post(path, content=TOO_BIG, headers={"Content-Type": "application/json"})
    streamed = await listener.post(
        path, content=_streamed(), headers={"Content-Type": "application/json", **bearer("reaper")}
    )

    assert declared.status_code == 413, declared.text
    assert streamed.status_code == 413, streamed.text


async def test_a_body_under_the_cap_still_reaches_the_endpoint(api: Api, tenant: Tenant) -> None:
    # 3 MiB of junk: past the size check, then refused for what it is (not for its size).
    body = b'{"name": "' + b"a" * (3 * 1024 * 1024) + b'"}'
    response = await api.client.post(
        "/api/v1/accounts", content=body, headers={"Content-Type": "application/json", **tenant.admin.headers}
    )
    assert response.status_code == 422, response.text


def test_the_cloud_event_limit_cannot_be_set_past_the_cap() -> None:
    with pytest.raises(ValidationError, match="max_cloudevent_bytes"):
        ApiSettings(
            amqp_url="memory://", database_url="postgresql://x", **API_CREDENTIALS,
            max_cloudevent_bytes=MAX_BODY_BYTES + 1,
        )
