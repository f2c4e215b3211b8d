"""API test helpers: a client that sends a user's token with JSON bodies, and query counting."""

import json
from typing import Any

from django.db import connection as db_connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from api.tokens import create_api_token


class ApiClient:
    """Django's test client with a Bearer token and JSON bodies."""

    def __init__(self, raw_token: str | None) -> None:
        headers = {"Authorization": f"Bearer {raw_token}"} if raw_token else {}
        self.client = Client(headers=headers)

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(f"/api/v1{path}", params)

    def _send(self, method: str, path: str, body: Any) -> Any:
        data = body if isinstance(body, bytes | str) else json.dumps(body)
        send = getattr(self.client, method)
        return send(f"/api/v1{path}", data=data, content_type="application/json")

    def post(self, path: str, body: Any = b"") -> Any:
        return self._send("post", path, body)

    def patch(self, path: str, body: Any) -> Any:
        return self._send("patch", path, body)

    def delete(self, path: str) -> Any:
        return self.client.delete(f"/api/v1{path}")


def queries_of(request: Any) -> int:
    """How many SQL queries `request()` makes."""
    with CaptureQueriesContext(db_connection) as captured:
        request()
    return len(captured.captured_queries)


def api_client_for(user: Any) -> ApiClient:
    return ApiClient(create_api_token(user=user, name="tests", actor=None)[1])
