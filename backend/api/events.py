"""Live events over Server-Sent Events, and single-use tickets for browser EventSource."""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from marshmallow import Schema, fields, validate

from backend.api.blueprint import Blueprint
from backend.api.security import access_claims, auth_required, caller, session_id
from backend.errors import ServiceUnavailable
from backend.redis_store import redis_target
from backend.services import health, realtime, sessions
from backend.sse import HubUnavailable, hub_for
from backend.streaming import EventStream, StreamBody, StreamSettings, decode_cursor

blp = Blueprint("events", __name__, url_prefix="/events", description="Live events (SSE).")
STREAM_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


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
    listener = _listener(query.get("ticket"))
    body = open_stream(
        listener=listener,
        topics=query["topics"],
        last_event_id=request.headers.get("Last-Event-ID") or query.get("last_event_id"),
    )
    return Response(body, mimetype="text/event-stream", headers=STREAM_HEADERS)


def open_stream(
    *, listener: realtime.Listener, topics: str, last_event_id: str | None
) -> StreamBody:
    """Return `listener`'s stream body, subscribed and caught up (its first item is ready).

    `topics` is the `?topics=` value. Raises `Forbidden` for a topic the
    listener may not read and `ServiceUnavailable` when the hub cannot
    subscribe or the instance is draining (`draining`); a Redis error
    propagates (answered 503). Needs an app context.
    """
    # A new stream would hold the shutdown up until it is cut.
    health.refuse_while_draining("This instance is shutting down; open the stream again.")
    names = [t.strip() for t in topics.split(",") if t.strip()]
    channels = realtime.channels_for(listener=listener, topics=names)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    body = EventStream(
        app=app,
        hub=hub_for(redis_target(app)),
        channels=channels,
        session_id=listener.session_id,
        resume_from=decode_cursor(last_event_id),
        settings=StreamSettings.from_config(app.config),
        ended_among=sessions.ended_among,
    )
    try:
        first = body.open()  # subscribes and reads history now: a failure is a 503
    except HubUnavailable as exc:
        raise ServiceUnavailable("Live events are unavailable; retry shortly.") from exc
    return StreamBody(body, first)


def _listener(ticket: str | None) -> realtime.Listener:
    """Who opens this stream, from the token (or ticket) and Redis: no database on this path."""
    if ticket is None:
        claims = access_claims()
        return realtime.listener(user_id=int(claims["sub"]), session_id=claims["sid"])
    user_id, sid = realtime.redeem_ticket(ticket)
    return realtime.listener(user_id=user_id, session_id=sid)
