"""The catalog: public reads with ETags, admin writes with If-Match.

(With the optimisation layer on, `backend.optimizations.catalog_cache` keeps the
responses of the two reads; the views do not know it.)
"""

from __future__ import annotations

from typing import Any

from flask import url_for
from flask_smorest.pagination import PaginationParameters
from werkzeug.datastructures import FileStorage

from backend.api.blueprint import Blueprint
from backend.api.security import auth_required, caller, client_info, limit_body, optional_caller
from backend.schemas.catalog import ProductQuerySchema, ProductSchema, ProductUpdateSchema
from backend.schemas.jobs import ImportFileSchema, JobSchema
from backend.services import product_import, products
from backend.services.products import ProductFilter
from backend.spool import spool

blp = Blueprint("products", __name__, url_prefix="/products", description="The catalog.")


@blp.route("")
@blp.arguments(ProductQuerySchema, location="query")
@blp.response(200, ProductSchema(many=True))
@blp.paginate()
def list_products(query: dict[str, Any], pagination_parameters: PaginationParameters) -> Any:
    """List products.

    Search with `q` (name, sku, description), filter by price and stock, sort
    with `sort`. Anonymous callers and users see active products only.
    """
    filters = ProductFilter(
        **query, page=pagination_parameters.page, page_size=pagination_parameters.page_size
    )
    items, total = products.list_products(viewer=optional_caller(), filters=filters)
    pagination_parameters.item_count = total
    return items


@blp.route("", methods=["POST"])
@blp.alt_response(409, description="`sku_taken`: another product has this sku.")
@auth_required(blp, role="admin")
@blp.arguments(ProductSchema)
@blp.response(201, ProductSchema)
def create_product(payload: dict[str, Any]) -> Any:
    """Add a product (admin). 409 `sku_taken` for a duplicate sku."""
    return products.create_product(actor=caller(), data=payload, client=client_info())


@blp.route("/import", methods=["POST"])
@auth_required(blp, role="admin")
@limit_body("IMPORT_MAX_BYTES")
@blp.arguments(ImportFileSchema, location="files")
@blp.response(202, JobSchema)
def import_products(files: dict[str, FileStorage]) -> Any:
    """Import products from a CSV (admin); answers 202 with the job.

    Columns `sku,name,description,price,currency,stock` (header required,
    UTF-8 with or without BOM); rows are upserted by sku. Follow the job at
    `Location` or with `job.*` events; its result lists row errors.
    """
    name = spool(files["file"].stream, suffix=".csv")
    job = product_import.start_import(actor=caller(), input_name=name)
    return job, 202, {"Location": url_for("jobs.get_job", job_id=job.id)}


@blp.route("/<int:product_id>")
@blp.etag
@blp.response(200, ProductSchema)
def get_product(product_id: int) -> Any:
    """Return a product, with an ETag (304 for a matching If-None-Match)."""
    return products.get_product(viewer=optional_caller(), product_id=product_id)


@blp.route("/<int:product_id>", methods=["PATCH"])
@blp.alt_response(409, description="`sku_taken`: another product has this sku.")
@auth_required(blp, role="admin")
@blp.etag
@blp.arguments(ProductUpdateSchema(partial=True))
@blp.response(200, ProductSchema)
def update_product(payload: dict[str, Any], product_id: int) -> Any:
    """Change a product (admin). Needs `If-Match` with its ETag: 428 without, 412 if stale."""
    current = products.get_product(viewer=caller(), product_id=product_id)
    blp.check_etag(current, ProductSchema)
    return products.update_product(
        actor=caller(),
        product_id=product_id,
        expected_updated_at=current.updated_at,
        changes=payload,
        client=client_info(),
    )


@blp.route("/<int:product_id>", methods=["DELETE"])
@auth_required(blp, role="admin")
@blp.etag
@blp.response(204)
def delete_product(product_id: int) -> None:
    """Delete a product (admin; `If-Match` required).

    A product that was ever ordered is deactivated instead, so past orders
    keep their lines.
    """
    current = products.get_product(viewer=caller(), product_id=product_id)
    blp.check_etag(current, ProductSchema)
    products.delete_product(
        actor=caller(),
        product_id=product_id,
        expected_updated_at=current.updated_at,
        client=client_info(),
    )
