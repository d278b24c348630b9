"""Product images: the cacheable addresses of an image's renditions."""

from __future__ import annotations

import logging

from flet_backend_client import ApiError, AsyncClient, ConnectionFailed

log = logging.getLogger(__name__)


async def fetch_rendition_urls(client: AsyncClient, file_id: int) -> dict[str, str]:
    """Fetch the content-addressed URLs of a product image's ready renditions.

    Such URLs (`?v=` the content's hash) never change meaning: the browser may
    cache them for good.

    Args:
        client: The session's API client.
        file_id: The image's file id.

    Returns:
        `{"mobile": "http://host:port/api/v1/files/7/content?variant=mobile&v=…", …}` for the
        renditions that are ready; empty while none is, or when the metadata cannot be read.
    """
    try:
        info = await client.get_file(file_id)
    except (ApiError, ConnectionFailed):
        log.warning("could not read the metadata of image %s", file_id, exc_info=True)
        return {}
    return {name: rendition.url for name, rendition in info.renditions.items()}


def image_label(variant: str, product_name: str) -> str:
    """The image's accessible label, naming the rendition shown.

    Args:
        variant: The rendition (`mobile` or `desktop`).
        product_name: The product the image shows.

    Returns:
        E.g. `Product image (desktop): Green tea`.
    """
    return f"Product image ({variant}): {product_name}"
