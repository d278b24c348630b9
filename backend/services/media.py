"""What a file really is, safe names for it, and image renditions.

Types are sniffed from the bytes (`filetype` for binary formats, a few text
rules for CSV and SVG), never taken from the client. Renditions are WebP,
EXIF orientation applied, metadata dropped, with Pillow's decompression-bomb
guard on.
"""

from __future__ import annotations

import io
import mimetypes
import re
import unicodedata
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

import filetype
from PIL import Image, ImageOps, UnidentifiedImageError

from backend.errors import UnsupportedMediaType, ValidationFailed
from backend.models import RENDITIONS

SNIFF_BYTES = 8192
MAX_FILENAME_CHARS = 200
RENDITION_TYPE = "image/webp"
# Clients may declare these for a sniffed type (browsers disagree on CSV and JPEG).
_ALIASES = {
    "image/jpg": "image/jpeg",
    "image/pjpeg": "image/jpeg",
    "application/csv": "text/csv",
    "application/vnd.ms-excel": "text/csv",
    "text/plain": "text/csv",
    "application/x-pdf": "application/pdf",
}
_UNDECLARED = {"", "application/octet-stream"}
_SVG = re.compile(rb"<svg[\s>]|<!doctype\s+svg", re.IGNORECASE)
_HTML = re.compile(rb"<(html|script|body|iframe)[\s>]", re.IGNORECASE)
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")


def sniff(head: bytes) -> str:
    """Return the media type the first bytes of a file show (`application/octet-stream` if unknown).

    Text is `text/csv` unless it is SVG or HTML markup.
    """
    kind = filetype.guess(head) if head else None
    if kind is not None:
        return str(kind.mime)
    if not _is_text(head):
        return "application/octet-stream"
    if _SVG.search(head):
        return "image/svg+xml"
    if _HTML.search(head):
        return "text/html"
    return "text/csv"


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut off by the sniff window is still text.
        return exc.start >= len(head) - 3 and exc.reason == "unexpected end of data"
    return True


def check_type(*, sniffed: str, declared: str | None, filename: str, allowed: list[str]) -> None:
    """Accept a file whose sniffed type is allowed and agrees with what the client said.

    Raises `UnsupportedMediaType` (415) when the type is not allowed, or when
    the declared content type or the filename's extension names another type.
    """
    if sniffed not in allowed:
        raise UnsupportedMediaType(
            f"Files of type {sniffed} are not accepted (allowed: {', '.join(allowed)})."
        )
    declared_type = (declared or "").split(";")[0].strip().lower()
    if declared_type not in _UNDECLARED and _ALIASES.get(declared_type, declared_type) != sniffed:
        raise UnsupportedMediaType(
            f"The file was declared as {declared_type} but its content is {sniffed}."
        )
    guessed, _ = mimetypes.guess_type(filename, strict=False)
    if guessed and _ALIASES.get(guessed, guessed) != sniffed:
        raise UnsupportedMediaType(f"The file is named {filename!r} but its content is {sniffed}.")


def safe_filename(raw: str | None, *, fallback: str = "file") -> str:
    """Return a safe display name made from a client's filename.

    Keeps the last path part, drops control characters and leading dots,
    NFC-normalises, and shortens to 200 characters keeping the extension.

    It is only ever shown (in `Content-Disposition`), never used as a path.
    """
    name = unicodedata.normalize("NFC", raw or "")
    name = re.split(r"[/\\]", name)[-1]
    name = _UNSAFE_NAME.sub("", name).strip().lstrip(".").strip()
    if len(name) > MAX_FILENAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        keep = ext if dot and 0 < len(ext) <= 16 else ""
        cut = MAX_FILENAME_CHARS - (len(keep) + 1 if keep else 0)
        name = (stem if keep else name)[:cut].rstrip() + (f".{keep}" if keep else "")
    return name or fallback


@dataclass(frozen=True)
class Rendition:
    """One rendition's bytes and description."""

    name: str
    data: bytes
    width: int
    height: int


@contextmanager
def _bomb_guard(max_pixels: int) -> Iterator[None]:
    previous = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1× and 2× the cap: treat that as a bomb too.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def image_size(source: IO[bytes], *, max_pixels: int) -> tuple[int, int]:
    """Read an image's dimensions from its header.

    Raises `ValidationFailed` (`image_too_large` above `max_pixels`,
    `invalid_image` when the header cannot be read).
    """
    with _bomb_guard(max_pixels):
        try:
            with Image.open(source) as image:
                return image.size
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ValidationFailed(
                f"The image has more than {max_pixels} pixels.", error="image_too_large"
            ) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ValidationFailed("The image cannot be read.", error="invalid_image") from exc


def make_renditions(source: IO[bytes], *, max_pixels: int) -> list[Rendition]:
    """Decode an image once and return its WebP renditions, smallest first.

    Raises `ValidationFailed` (`image_too_large`, `invalid_image`) for a
    decompression bomb or an image that cannot be decoded (truncated, say).
    """
    with _bomb_guard(max_pixels):
        try:
            with Image.open(source) as opened:
                image = ImageOps.exif_transpose(opened)
                image.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ValidationFailed(
                f"The image has more than {max_pixels} pixels.", error="image_too_large"
            ) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ValidationFailed(
                f"The image cannot be decoded: {exc}", error="invalid_image"
            ) from exc
    image = image.convert("RGBA" if _has_alpha(image) else "RGB")
    return [_render(image, name, longest) for name, longest in RENDITIONS.items()]


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info


def _render(image: Image.Image, name: str, longest: int) -> Rendition:
    copy = image.copy()
    copy.thumbnail((longest, longest), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    # No exif=/icc_profile= arguments: the rendition carries no metadata.
    copy.save(out, format="WEBP", quality=80, method=4)
    return Rendition(name=name, data=out.getvalue(), width=copy.width, height=copy.height)
