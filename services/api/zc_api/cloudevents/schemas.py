"""What POST /cloudevents answers."""

from __future__ import annotations

from uuid import UUID

from pydantic import BaseModel, Field


class CloudEventAccepted(BaseModel):
    accepted: bool = True
    message_id: UUID = Field(description="The CloudEventReceived message handed to the ingestor.")
    account_id: str = Field(description="The AWS account the event is about.")
    region: str
    instance_ids: list[str]
