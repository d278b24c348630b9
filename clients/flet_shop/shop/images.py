"""Product images: the cacheable addresses of an image's renditions."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urljoin

import httpx
from flet_backend_client import AsyncClient
from flet_backend_client.session import API_PREFIX

log = logging.getLogger(__name__)
METADATA_TIMEOUT = 10.0  # seconds; the image falls back to the plain URL after that


def rendition_urls(base_url: str, metadata: dict[str, Any]) -> dict[str, str]:
    """Map each ready rendition to its absolute, content-addressed URL.

    Args:
        base_url: The backend's address (`http://host:port`).
        metadata: A file's metadata as the API returns it (`GET /files/{id}`).

    Returns:
        `{"mobile": "http://host:port/api/v1/files/7/content?variant=mobile&v=…", …}` for the
        renditions that are ready (none while the rendition job is running).
    """
    variants = metadata.get("variants")
    if not isinstance(variants, dict):
        return {}
    root = base_url.rstrip("/") + "/"
    return {
        str(name): urljoin(root, str(info["url"]))
        for name, info in variants.items()
        if isinstance(info, dict) and info.get("url")
    }


async def fetch_rendition_urls(client: AsyncClient, file_id: int) -> dict[str, str]:
    """Fetch the content-addressed URLs of a product image's ready renditions.

    Product images are public, so no token is sent. Such URLs (`?v=` the content's hash)
    never change meaning: the browser may cache them for good.

    Args:
        client: The session's API client (for the backend's address).
        file_id: The image's file id.

    Returns:
        The URLs by rendition name; empty when none is ready or the metadata cannot be read.
    """
    url = f"{client.base_url}{API_PREFIX}/files/{file_id}"
    try:
        async with httpx.AsyncClient(timeout=METADATA_TIMEOUT) as http:
            response = await http.get(url)
            response.raise_for_status()
            metadata = response.json()
    except (httpx.HTTPError, ValueError):
        log.warning("could not read the metadata of image %s", file_id, exc_info=True)
        return {}
    return rendition_urls(client.base_url, metadata) if isinstance(metadata, dict) else {}


def image_label(variant: str, product_name: str) -> str:
    """The image's accessible label, naming the rendition shown.

    Args:
        variant: The rendition (`mobile` or `desktop`).
        product_name: The product the image shows.

    Returns:
        E.g. `Product image (desktop): Green tea`.
    """
    return f"Product image ({variant}): {product_name}"
