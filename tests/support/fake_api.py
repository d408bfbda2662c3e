"""The api's internal endpoints, faked for one service's tests: each service's fake
(tests/<service>/factories.py ``FakeApi``) adds the routes it uses to this app. It is
served in-process to the service's InternalApi client (or over a real port by a test
that needs one), checks the service's token, and counts the requests per route."""

from __future__ import annotations

from collections import Counter

import httpx
from fastapi import FastAPI, HTTPException, Request

from zc_common.internal_api import InternalApi

API_URL = "http://api.test"  # where the services' settings send them; answered in-process


class FakeInternalApi:
    def __init__(self, service_token: str) -> None:
        self.service_token = service_token
        self.requests: Counter[str] = Counter()  # route name -> requests it answered
        self.app = FastAPI()

    def client(self) -> InternalApi:
        """The service's client of the api, talking to this fake without a socket."""
        return InternalApi(API_URL, self.service_token, transport=httpx.ASGITransport(app=self.app))

    def _authorize(self, request: Request) -> None:
        if request.headers.get("authorization") != f"Bearer {self.service_token}":
            raise HTTPException(401, "service token required")
