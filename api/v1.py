"""The REST API, version 1: token-authenticated JSON for scripts and automation.

Mounted at /api/v1/; the OpenAPI document is /api/v1/openapi.json and its docs page
/api/v1/docs (Swagger UI served from our own static files, never a CDN).
"""

from ninja import NinjaAPI

from api.auth import TokenAuth
from api.endpoints import cohorts, connections, import_keys, runs, syncs
from api.errors import install_error_handlers

DESCRIPTION = """
Automate cohortsync: read connections and cohorts, manage syncs, trigger runs and read their
outcome, and (admins) manage connections and data-import keys.

**Authentication.** Every call takes a personal API token, created on your profile page or with
`python manage.py create_api_token EMAIL`: `Authorization: Bearer cs_...`. The token acts as its
user, with that user's role: viewers read, marketers and admins change syncs, admins manage
connections and data-import keys.

**Errors** are JSON: `{"message": "...", "errors": {"field": ["..."]}}`. 400: the input was
refused (the message says why, nothing was changed); 401: no valid token; 403: your role does not
allow it; 404: no such object; 422: the request does not fit this schema.

**Lists** take `limit` (1 to 200, default 50) and `offset`, and answer `count` and `items`.
"""

api = NinjaAPI(
    title="cohortsync API",
    version="1",
    description=DESCRIPTION,
    # Any role; each endpoint names the permission it needs (auth=TokenAuth(...)).
    auth=TokenAuth(),
    urls_namespace="api_v1",
)
install_error_handlers(api)
api.add_router("", connections.router)
api.add_router("", cohorts.router)
api.add_router("", syncs.router)
api.add_router("", runs.router)
api.add_router("", import_keys.router)
