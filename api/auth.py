"""Token authentication and the role rules: `Authorization: Bearer cs_...`, on every request.

Each endpoint declares the permission it needs (`auth=TokenAuth(VIEW)`), checked right after the
token and before the request body is even parsed, with the dashboard's rules (core.roles):
a user with no role gets 404, a role without the permission 403.

Sessions are not accepted here: a browser's cookie must never be enough to change things through
the API, which is exempt from CSRF because it takes no cookie.
"""

from django.contrib.auth.models import User
from django.http import HttpRequest
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer

from api.tokens import TokenRefused, verify_api_token
from core.roles import check_access, request_actor

MISSING = "Send an API token as `Authorization: Bearer <token>`; create one on your profile page."


class TokenAuth(HttpBearer):
    def __init__(self, permission: str | None = None) -> None:
        super().__init__()
        self.permission = permission

    def __call__(self, request: HttpRequest) -> User:
        scheme, _, raw_token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not raw_token.strip():
            raise AuthenticationError(401, MISSING)
        return self.authenticate(request, raw_token.strip())

    def authenticate(self, request: HttpRequest, token: str) -> User:
        try:
            api_token = verify_api_token(token)
        except TokenRefused as exc:
            raise AuthenticationError(401, str(exc)) from None
        # check_access reads request.user, as on the dashboard.
        request.user = api_token.user
        check_access(request, self.permission)
        return api_token.user


# The token's user, whom TokenAuth let through.
actor = request_actor
