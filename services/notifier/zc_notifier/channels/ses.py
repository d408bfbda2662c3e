"""Mail through Amazon SES (SendRawEmail with aiobotocore), from ZeroCloud's own account."""

from __future__ import annotations

import contextlib
from typing import Any

from zc_notifier.channels.base import Channel, SendFailed, channels
from zc_notifier.mail import Mail


@channels.register("ses")
class SesChannel(Channel):
    name = "ses"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def _ses(self) -> Any:
        if self._client is None:
            # Imported here: aiobotocore is heavy and only an SES deployment needs it.
            from zc_common.aws import AwsAccess

            aws = AwsAccess(
                endpoint_url=self.settings.aws_endpoint_url,
                default_region=self.settings.aws_region,
                session_name="zerocloud-notifier",
                max_attempts=self.settings.aws_max_attempts,
            )
            self._client = await self._stack.enter_async_context(aws.client("ses"))
        return self._client

    async def send(self, mail: Mail) -> None:
        try:
            ses = await self._ses()
            # No Destinations: SES takes them from the To header, which is the one recipient.
            await ses.send_raw_email(Source=self.settings.mail_from, RawMessage={"Data": mail.as_email().as_bytes()})
        except Exception as error:  # noqa: BLE001 - botocore's errors share no useful base
            raise SendFailed(f"SES: {type(error).__name__}: {error}") from error

    async def ready(self) -> bool:
        ses = await self._ses()
        await ses.get_send_quota()
        return True

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None
