"""A proxy in front of the moto server that counts AWS calls by service and action and,
when asked, fails a share of them the way AWS does when it throttles or breaks (the
fault suite's and the side-by-side bench's one view of what every client asked AWS).

    python -m tests.support.aws_proxy --upstream http://127.0.0.1:5000 --port 5001

Point every client's endpoint at the proxy. It forwards each request unchanged and
answers moto's answer. Its own routes, under ``/_proxy/``:

- ``GET /_proxy/calls``: ``{"calls": {"ec2:DescribeInstances": 3, …}, "faults": {…},
  "moto_only": {…}}``, every request received (a throttled one counts, as AWS counts it),
  those failed here, and those of them AWS would not have been asked (``moto_only``: the
  continuation pages of an EC2 Describe asked without MaxResults, which AWS answers whole
  and moto pages by 100 reservations);
- ``POST /_proxy/reset``: every count back to zero;
- ``PUT /_proxy/faults`` ``{"rate": 0.3, "services": ["ec2"], "seed": 7}``: from now on
  fail that share of the calls to those services (all services when omitted), half as
  throttling and half as a 5xx, in each protocol's real error shape; rate 0 stops it.
  Calls to moto's own ``/moto-api/`` are never failed or counted.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
# Hop-by-hop headers, and the ones httpx sets itself from the body it forwards.
_DROP = frozenset({"host", "content-length", "connection", "keep-alive", "transfer-encoding", "accept-encoding"})


@dataclass
class Faults:
    rate: float = 0.0
    services: frozenset[str] = frozenset()
    random: random.Random = field(default_factory=random.Random)

    def pick(self, service: str) -> str | None:
        """'throttle', '5xx' or None for one call to ``service``."""
        if self.rate <= 0 or (self.services and service not in self.services):
            return None
        draw = self.random.random()
        if draw >= self.rate:
            return None
        return "throttle" if draw < self.rate / 2 else "5xx"


def call_name(request: Request, body: bytes) -> tuple[str, str]:
    """(service, action) of one AWS request: the service from the signature's credential
    scope, the action from ``X-Amz-Target`` (JSON protocols) or the ``Action`` parameter
    (query protocols), else the method and path (REST protocols)."""
    scope = _SCOPE.search(request.headers.get("authorization", ""))
    service = scope.group(1) if scope else "unsigned"
    target = request.headers.get("x-amz-target")
    if target:
        return service, target.rsplit(".", 1)[-1]
    action = request.query_params.get("Action")
    if action is None and "x-www-form-urlencoded" in request.headers.get("content-type", ""):
        values = parse_qs(body.decode("utf-8", "replace")).get("Action")
        action = values[0] if values else None
    return service, action or f"{request.method} {request.url.path}"


def moto_only(service: str, action: str, request: Request, body: bytes) -> bool:
    """A request only moto's paging makes a client send: the NextToken page of an EC2
    Describe that asked no MaxResults. AWS pages such a call only when asked to (MaxResults,
    which it refuses beside InstanceIds) and answers it whole; moto pages it anyway."""
    if service != "ec2" or not action.startswith("Describe"):
        return False
    params = parse_qs(body.decode("utf-8", "replace")) if body else {}
    params.update(parse_qs(request.url.query))
    return "NextToken" in params and "MaxResults" not in params


def fault_response(service: str, request: Request, kind: str) -> Response:
    """The answer AWS gives when it throttles (``kind`` 'throttle') or fails ('5xx'), in
    the request's protocol: EC2's own XML, the query protocols' ErrorResponse, or JSON."""
    request_id = str(uuid.uuid4())
    throttle = kind == "throttle"
    if request.headers.get("x-amz-target"):
        code = "ThrottlingException" if throttle else "InternalFailure"
        return JSONResponse(
            {"__type": code, "message": "Rate exceeded" if throttle else "We encountered an internal error."},
            status_code=400 if throttle else 500, media_type="application/x-amz-json-1.0",
            headers={"x-amzn-RequestId": request_id, "x-amzn-query-error": f"{code};{'Sender' if throttle else 'Receiver'}"},
        )
    if service == "ec2":
        code, status = ("RequestLimitExceeded", 503) if throttle else ("InternalError", 500)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error>'
            f"<Code>{code}</Code><Message>{'Request limit exceeded.' if throttle else 'An internal error has occurred'}"
            f"</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>"
        )
        return Response(body, status_code=status, media_type="text/xml")
    code, status, side = ("Throttling", 400, "Sender") if throttle else ("InternalFailure", 500, "Receiver")
    body = (
        f"<ErrorResponse><Error><Type>{side}</Type><Code>{code}</Code>"
        f"<Message>{'Rate exceeded' if throttle else 'internal failure'}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return Response(body, status_code=status, media_type="text/xml")


def create_proxy(upstream: str) -> Starlette:
    calls: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    only_moto: Counter[str] = Counter()
    faults = Faults()
    client = httpx.AsyncClient(base_url=upstream, timeout=300, limits=httpx.Limits(max_connections=200))

    async def counts(_: Request) -> Response:
        return JSONResponse({"calls": dict(calls), "faults": dict(failed), "moto_only": dict(only_moto)})

    async def reset(_: Request) -> Response:
        calls.clear()
        failed.clear()
        only_moto.clear()
        return JSONResponse({"calls": {}, "faults": {}, "moto_only": {}})

    async def set_faults(request: Request) -> Response:
        wanted: dict[str, Any] = await request.json()
        rate = float(wanted.get("rate", 0))
        if not 0 <= rate <= 1:
            return JSONResponse({"detail": "rate is a share between 0 and 1"}, status_code=422)
        faults.rate = rate
        faults.services = frozenset(wanted.get("services") or ())
        faults.random = random.Random(wanted.get("seed"))
        return JSONResponse({"rate": faults.rate, "services": sorted(faults.services)})

    async def forward(request: Request) -> Response:
        body = await request.body()
        counted = not request.url.path.startswith("/moto-api")
        if counted:
            service, action = call_name(request, body)
            name = f"{service}:{action}"
            calls[name] += 1
            if moto_only(service, action, request, body):
                only_moto[name] += 1
            kind = faults.pick(service)
            if kind is not None:
                failed[name] += 1
                return fault_response(service, request, kind)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROP}
        answer = await client.request(
            request.method, request.url.path, params=request.url.query or None, content=body, headers=headers
        )
        kept = {k: v for k, v in answer.headers.items() if k.lower() not in _DROP and k.lower() != "content-encoding"}
        return Response(answer.content, status_code=answer.status_code, headers=kept)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        await client.aclose()

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]
    return Starlette(
        routes=[
            Route("/_proxy/calls", counts, methods=["GET"]),
            Route("/_proxy/reset", reset, methods=["POST"]),
            Route("/_proxy/faults", set_faults, methods=["PUT"]),
            Route("/{path:path}", forward, methods=methods),
        ],
        lifespan=lifespan,
    )


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="the moto server's URL")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_proxy(args.upstream), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
