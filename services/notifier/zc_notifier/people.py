"""Mail about joining ZeroCloud: an invitation into an account, and the confirmation of a
person's address. Unlike lease notices these are never part of a digest: each is a mail
of its own whose link acts as a credential, minted by the api only as it is sent (the
message never holds it), and it goes only through channels that reach the recipient
alone."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from zc_common.internal_api import PeopleLinkKind
from zc_common.messages import EmailConfirmationRequested, InvitationCreated, Message

from zc_notifier.notices import recipient_address

MESSAGE_TYPES = (InvitationCreated, EmailConfirmationRequested)
PeopleMessage = InvitationCreated | EmailConfirmationRequested


@dataclass(frozen=True)
class PersonalNotice:
    """One people mail to send: the message and the one address it goes to."""

    message: PeopleMessage
    recipient: str

    @property
    def key(self) -> str:
        """The notification key, shaped as a lease notice's: message and recipient."""
        return f"{self.message.message_id}:{self.recipient}"

    @property
    def link_kind(self) -> PeopleLinkKind:
        if isinstance(self.message, InvitationCreated):
            return PeopleLinkKind.invitation
        return PeopleLinkKind.email_confirmation

    @property
    def subject_id(self) -> int:
        """What the api mints the link for: the invitation, or the user to confirm."""
        if isinstance(self.message, InvitationCreated):
            return self.message.invitation_id
        return self.message.user_id


def personal_notices(messages: Iterable[Message]) -> list[PersonalNotice]:
    """One notice per people message (a message re-delivered within the batch once)."""
    found: dict[str, PersonalNotice] = {}
    for message in messages:
        if isinstance(message, MESSAGE_TYPES):
            notice = PersonalNotice(message=message, recipient=recipient_address(message.email))
            found.setdefault(notice.key, notice)
    return list(found.values())
