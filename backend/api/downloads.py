"""Sending stored bytes over HTTP: ETag/304, single byte ranges (206/416), safe headers.

Full bodies go out through the WSGI server's file wrapper (sendfile under
gunicorn), or are handed to the front server with `X-Accel-Redirect` when
`FILES_ACCEL_REDIRECT_PREFIX` is set. With `FILES_DOWNLOAD_REDIRECT` and a store
that signs URLs (S3), an allowed download is a 302 to a short-lived presigned
URL instead: the store then answers the GET (and its `Range`) itself.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from typing import IO
from urllib.parse import quote

from flask import Response, current_app, request
from werkzeug.http import parse_range_header
from werkzeug.wsgi import wrap_file

from backend.errors import RangeNotSatisfiable
from backend.services import files
from backend.services.files import Content
from backend.storage import Download

CHUNK = 256 * 1024
IMMUTABLE = "max-age=31536000, immutable"
INLINE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")


def content_disposition(filename: str, *, inline: bool) -> str:
    """Return a `Content-Disposition` value with an ASCII fallback and the UTF-8 name."""
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    ascii_name = "".join(c for c in ascii_name if c.isprintable() and c not in '"\\;') or "file"
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename, safe='')}"


def cache_control(found: Content, *, versioned: bool) -> str:
    """Content-addressed URLs never change; others are revalidated with the ETag."""
    scope = "public" if found.public else "private"
    return f"{scope}, {IMMUTABLE}" if versioned else f"{scope}, no-cache"


def _byte_range(size: int, etag: str) -> tuple[int, int] | None:
    """Return the one range asked for as (start, stop), or None to send everything.

    Raises `RangeNotSatisfiable` for a malformed, inverted or out-of-bounds range.
    """
    header = request.headers.get("Range")
    if not header or not header.strip().lower().startswith("bytes="):
        return None
    if_range = request.headers.get("If-Range")
    if if_range is not None and if_range.strip() != f'"{etag}"':
        return None  # the client's copy is stale: it gets the whole new content
    parsed = parse_range_header(header)
    if parsed is not None and len(parsed.ranges) > 1:
        return None  # single ranges only; multipart/byteranges is not offered
    bounds = parsed.range_for_length(size) if parsed is not None else None
    if bounds is None:
        raise RangeNotSatisfiable(
            f"The range {header!r} cannot be served from {size} bytes.",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return bounds


def _slice(stream: IO[bytes], start: int, stop: int) -> Iterator[bytes]:
    try:
        stream.seek(start)
        remaining = stop - start
        while remaining > 0:
            chunk = stream.read(min(CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        stream.close()


def send_content(found: Content, *, versioned: bool) -> Response:
    """Answer a download of `found`, honouring If-None-Match, Range and If-Range."""
    headers = {
        "ETag": f'"{found.key}"',
        "Cache-Control": cache_control(found, versioned=versioned),
        "Accept-Ranges": "bytes",
        "Content-Disposition": content_disposition(
            found.filename, inline=found.content_type in INLINE_TYPES
        ),
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "X-Content-Type-Options": "nosniff",
    }
    if request.if_none_match.contains(found.key) or request.if_none_match.star_tag:
        return Response(status=304, headers=headers)
    if current_app.config["FILES_DOWNLOAD_REDIRECT"] and (redirect := _redirect(found, headers)):
        return redirect
    bounds = _byte_range(found.size, found.key)
    if bounds is None:
        return _whole(found, headers)
    start, stop = bounds
    headers["Content-Range"] = f"bytes {start}-{stop - 1}/{found.size}"
    headers["Content-Length"] = str(stop - start)
    body = _slice(files.open_content(found.key), start, stop)
    return Response(body, status=206, mimetype=found.content_type, headers=headers,
                    direct_passthrough=True)  # fmt: skip


def _redirect(found: Content, headers: dict[str, str]) -> Response | None:
    """A 302 to a presigned URL of the bytes, or None when the store has no URLs."""
    download = Download(
        content_type=found.content_type, content_disposition=headers["Content-Disposition"],
        cache_control=headers["Cache-Control"],
    )  # fmt: skip
    url = files.download_url(found.key, download=download)
    if url is None:
        return None
    # The URL expires soon: the redirect itself is never cached.
    return Response(status=302, headers={
        "Location": url, "Cache-Control": "no-store", "ETag": headers["ETag"],
        "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
    })  # fmt: skip


def _whole(found: Content, headers: dict[str, str]) -> Response:
    prefix = current_app.config.get("FILES_ACCEL_REDIRECT_PREFIX")
    if prefix:
        headers["X-Accel-Redirect"] = prefix.rstrip("/") + "/" + files.relative_path(found.key)
        return Response(status=200, mimetype=found.content_type, headers=headers)
    headers["Content-Length"] = str(found.size)
    body = wrap_file(request.environ, files.open_content(found.key), CHUNK)
    return Response(body, status=200, mimetype=found.content_type, headers=headers,
                    direct_passthrough=True)  # fmt: skip
