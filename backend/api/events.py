"""Live events over Server-Sent Events, and single-use tickets for browser EventSource."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from flask_jwt_extended import verify_jwt_in_request
from marshmallow import Schema, fields, validate

from backend import draining
from backend.api.blueprint import Blueprint
from backend.api.security import auth_required, caller, session_id
from backend.errors import ServiceUnavailable, Unauthorized
from backend.redis_store import redis_target
from backend.services import realtime, sessions
from backend.services.users import get_active_user
from backend.sse import HubUnavailable, hub_for
from backend.streaming import EventStream, StreamSettings, decode_cursor

blp = Blueprint("events", __name__, url_prefix="/events", description="Live events (SSE).")


class StreamQuerySchema(Schema):
    """How to open a stream."""

    # ASCII and bounded, so that any valid query fits gunicorn's request line.
    topics = fields.String(
        load_default="",
        validate=[validate.Length(max=200), validate.Regexp(r"^[A-Za-z0-9:,_-]*$")],
        metadata={"description": "Comma-separated extra channels, e.g. `products,admin`."},
    )
    ticket = fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,100}$"))
    last_event_id = fields.String(
        validate=[validate.Length(max=1000), validate.Regexp(r"^[A-Za-z0-9:=,_-]*$")]
    )


class TicketSchema(Schema):
    """A single-use ticket for `GET /events?ticket=`."""

    ticket = fields.String(required=True)
    expires_in = fields.Integer(required=True, metadata={"description": "Seconds"})


@blp.route("/ticket", methods=["POST"])
@auth_required(blp)
@blp.response(200, TicketSchema)
def create_ticket() -> dict[str, Any]:
    """Get a single-use ticket (60 s) to open a stream without an Authorization header."""
    ticket = realtime.issue_ticket(user=caller(), session_id=session_id())
    return {"ticket": ticket, "expires_in": realtime.TICKET_TTL_SECONDS}


@blp.route("")
@blp.arguments(StreamQuerySchema, location="query")
@blp.doc(
    security=[{"bearerAuth": []}, {}],
    responses={
        200: {"description": "An event stream", "content": {"text/event-stream": {}}},
        503: {
            "description": "`service_unavailable`: Redis is unreachable; `draining`: this "
            "instance is shutting down (open the stream again: behind a load balancer it "
            "opens on another instance). Both with `Retry-After`."
        },
    },
)
def stream(query: dict[str, Any]) -> Response:
    """Stream live events (`text/event-stream`).

    Always the caller's `user:{id}` channel, plus `?topics=` (`products`;
    `admin` for admins). Authenticate with a Bearer token or `?ticket=`.
    Resume with `Last-Event-ID` (or `?last_event_id=`); when the missed events
    are no longer kept, the first event is `stream.reset`. Open streams end
    when the instance shuts down, with a short `retry:`: reconnect and resume.
    """
    if draining.active():  # a new stream would hold the shutdown up until it is cut
        raise ServiceUnavailable(
            "This instance is shutting down; open the stream again.",
            error="draining",
            headers={"Retry-After": "1"},
        )
    user, sid = _authenticate(query.get("ticket"))
    topics = [t.strip() for t in query["topics"].split(",") if t.strip()]
    channels = realtime.channels_for(user=user, topics=topics)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    body = EventStream(
        app=app,
        hub=hub_for(redis_target(app)),
        channels=channels,
        session_id=sid,
        resume_from=decode_cursor(
            request.headers.get("Last-Event-ID") or query.get("last_event_id")
        ),
        settings=StreamSettings.from_config(app.config),
        session_active=sessions.is_active,
    )
    try:
        iterator = iter(body)
        first = next(iterator)  # subscribes and reads history now: a failure is a 503
    except HubUnavailable as exc:
        raise ServiceUnavailable("Live events are unavailable; retry shortly.") from exc
    return Response(
        _chain(first, iterator),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _chain(first: str, rest: Any) -> Any:
    yield first
    yield from rest


def _authenticate(ticket: str | None) -> tuple[Any, int]:
    if ticket is None:
        verify_jwt_in_request()
        return caller(), session_id()
    user_id, sid = realtime.redeem_ticket(ticket)
    user = get_active_user(user_id)
    if user is None or not sessions.is_active(sid):
        raise Unauthorized("This session has ended; sign in again.", error="token_revoked")
    return user, sid
