"""HTTP route for posting a raw EventBridge event (the seed's `create cloudevent`)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from zc_api.bounds import INT64_MAX, parse_count
from zc_api.cloudevents import service
from zc_api.cloudevents.schemas import CloudEventAccepted
from zc_api.deps import RuntimeDep, SessionDep, UserDep
from zc_api.errors import responses

router = APIRouter(tags=["cloud events"])

_EVENT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "description": "An EventBridge event as AWS sends it (EC2 Instance State-change "
                "Notification or AWS API Call via CloudTrail), raw or wrapped in an SNS notification.",
            }
        }
    },
}


async def _read_body(request: Request, max_bytes: int) -> bytes:
    """The body, read no further than the limit (a huge body is refused, not buffered)."""
    declared = request.headers.get("content-length", "")
    size = parse_count(declared, maximum=INT64_MAX)
    if size is not None:
        service.refuse_if_too_large(size, max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        service.refuse_if_too_large(len(body), max_bytes)
    return bytes(body)


@router.post(
    "/cloudevents", status_code=202, response_model=CloudEventAccepted,
    responses=responses(401, 403, 404, 413, 422), openapi_extra={"requestBody": _EVENT_BODY},
    summary="Hand an EventBridge event to the ingestor (a hint: it looks the instances up in AWS); "
    "a developer only for their own instances",
)
async def post_cloudevent(
    request: Request, session: SessionDep, caller: UserDep, runtime: RuntimeDep
) -> CloudEventAccepted:
    max_bytes = runtime.settings.max_cloudevent_bytes
    body = await _read_body(request, max_bytes)
    return await service.accept(session, caller=caller, body=body, max_bytes=max_bytes)
