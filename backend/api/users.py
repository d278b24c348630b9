"""The caller's profile, and user administration for admins."""

from __future__ import annotations

from typing import Any

from flask_smorest.pagination import PaginationParameters

from backend.api.blueprint import Blueprint
from backend.api.security import auth_required, caller, client_info, session_id
from backend.schemas.identities import IdentitySchema, LinkSchema
from backend.schemas.users import (
    AdminUserUpdateSchema,
    ChangePasswordSchema,
    ProfileUpdateSchema,
    UserSchema,
)
from backend.services import identities, oauth, users

blp = Blueprint("users", __name__, url_prefix="/users", description="Profiles and admin.")


@blp.route("/me")
@auth_required(blp)
@blp.response(200, UserSchema)
def get_me() -> Any:
    """Return the caller's profile."""
    return caller()


@blp.route("/me", methods=["PATCH"])
@auth_required(blp)
@blp.arguments(ProfileUpdateSchema)
@blp.response(200, UserSchema)
def update_me(payload: dict[str, str]) -> Any:
    """Change the caller's display name."""
    return users.update_profile(user=caller(), full_name=payload["full_name"])


@blp.route("/me/password", methods=["POST"])
@auth_required(blp)
@blp.arguments(ChangePasswordSchema)
@blp.response(204)
def change_password(payload: dict[str, str]) -> None:
    """Change the caller's password; every other session ends."""
    users.change_password(user=caller(), **payload, session_id=session_id(), client=client_info())


@blp.route("/me/identities")
@auth_required(blp)
@blp.response(200, IdentitySchema(many=True))
def list_identities() -> Any:
    """List the provider accounts linked to the caller's account."""
    return identities.list_for(caller())


@blp.route("/me/identities/<provider>", methods=["POST"])
@blp.alt_response(409, description="`identity_conflict`: it is linked to another account, "
                  "or another account at this provider is linked to this one.")  # fmt: skip
@blp.alt_response(503, description="`provider_unavailable`: the provider did not answer.")
@auth_required(blp)
@blp.arguments(LinkSchema)
@blp.response(201, IdentitySchema)
def link_identity(payload: dict[str, str], provider: str) -> Any:
    """Link a provider account to the caller's, proved by its access token."""
    return oauth.link_with_token(
        user=caller(), provider=provider, access_token=payload["access_token"],
        client=client_info(),
    )  # fmt: skip


@blp.route("/me/identities/<provider>", methods=["DELETE"])
@blp.alt_response(409, description="`last_sign_in_method`: no password and no other identity.")
@auth_required(blp)
@blp.response(204)
def unlink_identity(provider: str) -> None:
    """Unlink the caller's account at a provider."""
    identities.unlink(user=caller(), provider=provider, client=client_info())


@blp.route("")
@auth_required(blp, role="admin")
@blp.response(200, UserSchema(many=True))
@blp.paginate()
def list_users(pagination_parameters: PaginationParameters) -> Any:
    """List every user (admin)."""
    page, total = users.list_users(
        actor=caller(), page=pagination_parameters.page, page_size=pagination_parameters.page_size
    )
    pagination_parameters.item_count = total
    return page


@blp.route("/<int:user_id>")
@auth_required(blp, role="admin")
@blp.response(200, UserSchema)
def get_user(user_id: int) -> Any:
    """Return one user (admin)."""
    return users.get_user(actor=caller(), user_id=user_id)


@blp.route("/<int:user_id>", methods=["PATCH"])
@blp.alt_response(409, description="`last_admin`: that would leave no active admin.")
@auth_required(blp, role="admin")
@blp.arguments(AdminUserUpdateSchema)
@blp.response(200, UserSchema)
def update_user(payload: dict[str, Any], user_id: int) -> Any:
    """Change a user's role or active flag (admin).

    Deactivating ends the user's sessions; 409 `last_admin` rather than leave
    no active admin.
    """
    return users.update_user(actor=caller(), user_id=user_id, **payload, client=client_info())
