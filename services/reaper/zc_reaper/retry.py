"""How the reaper treats AWS failures: throttling and 5xx are retried with backoff on top
of the client's adaptive retries, then handed back to the bus; a refused role is reported;
anything else is the caller's to judge."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

# botocore ships no type information; the rest of the reaper takes ClientError from here.
from botocore.exceptions import ClientError, HTTPClientError  # type: ignore[import-untyped]
from botocore.exceptions import ConnectionError as BotoConnectionError

from zc_common.aws import error_code

__all__ = ["AwsUnavailable", "ClientError", "RetryPolicy", "describe", "is_denied", "is_retryable"]

log = logging.getLogger("zc.reaper.retry")

T = TypeVar("T")

# botocore's own list of throttling codes, plus EC2's.
THROTTLING_CODES = frozenset(
    {
        "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
        "TooManyRequestsException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
        "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled", "SlowDown",
        "PriorRequestNotComplete", "EC2ThrottledException",
    }
)
UNAVAILABLE_CODES = frozenset(
    {"InternalError", "InternalFailure", "ServiceUnavailable", "Unavailable", "RequestTimeout", "RequestTimeoutException"}
)
DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthFailure", "InvalidClientTokenId",
     "ExpiredToken", "OptInRequired"}
)


class AwsUnavailable(Exception):
    """AWS kept throttling or failing past the retry loop: the bus retries the message later
    (the api answers the same claim again for the same lease version)."""


def is_retryable(error: BaseException) -> bool:
    """Throttling, a 5xx, or the connection failing: trying again later may succeed."""
    if isinstance(error, (BotoConnectionError, HTTPClientError)):
        return True
    if isinstance(error, ClientError):
        code = error_code(error)
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return code in THROTTLING_CODES or code in UNAVAILABLE_CODES or int(status) >= 500
    return False


def is_denied(error: BaseException) -> bool:
    """ZeroCloud's role may not do this in the customer's account (or was not assumable)."""
    return isinstance(error, ClientError) and error_code(error) in DENIED_CODES


def describe(error: BaseException) -> str:
    if isinstance(error, ClientError):
        message = error.response.get("Error", {}).get("Message") or ""
        return f"{error_code(error)}: {message}".rstrip(": ")
    return f"{type(error).__name__}: {error}"


@dataclass(frozen=True)
class RetryPolicy:
    """A bounded retry loop with exponential backoff and jitter."""

    attempts: int = 5
    delay: float = 1.0
    max_delay: float = 20.0

    def pause(self, attempt: int) -> float:
        """Seconds to wait after failed try number ``attempt``: half to all of the backoff."""
        ceiling = min(self.max_delay, self.delay * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    async def call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, tried again while it fails in a retryable way; AwsUnavailable once the
        tries are spent. Other errors are raised as they are."""
        attempt = 1
        while True:
            try:
                return await call()
            except Exception as error:
                if not is_retryable(error):
                    raise
                if attempt >= self.attempts:
                    raise AwsUnavailable(
                        f"{operation} still failing after {attempt} tries: {describe(error)}"
                    ) from error
                pause = self.pause(attempt)
                log.warning("%s failed (try %d of %d): %s; again in %.2fs",
                            operation, attempt, self.attempts, describe(error), pause)
                await asyncio.sleep(pause)
                attempt += 1
