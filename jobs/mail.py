"""Mail jobs: deliver messages queued by `backend.services.mail.send_mail`."""

from __future__ import annotations

from typing import Any

from backend.services import mail as mail_service
from jobs.base import job


@job
def deliver_mail(message: dict[str, Any]) -> dict[str, str]:
    """Deliver one rendered message (SMTP, or the outbox folder without `MAIL_URL`).

    Returns its Message-ID and recipient. SMTP errors fail the job, so RQ
    retries it per the `Retry` it was queued with.
    """
    message_id = mail_service.deliver(message)
    return {"message_id": message_id, "to": str(message["to"])}
