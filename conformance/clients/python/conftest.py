"""Fixtures for driving a running Switchyard server with the official `openai` package.

The server's address comes from `SWITCHYARD_URL` (for example `http://127.0.0.1:8000`);
`cargo xtask clients` starts a server on a fresh database and sets it. The session
fixture signs up a user with the plain HTTP API (stdlib `urllib`), creates an
organization and mints the API keys the tests use.
"""

import json
import os
import secrets
import urllib.error
import urllib.request

import openai
import pytest


def base_url() -> str:
    url = os.environ.get("SWITCHYARD_URL")
    if not url:
        pytest.exit("SWITCHYARD_URL is not set (run through `cargo xtask clients`)", returncode=2)
    return url.rstrip("/")


def api(method: str, path: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    """One call to the server's own API; returns the status and the JSON body."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url() + path, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    return status, (json.loads(raw) if raw else {})


def expect(status: int, wanted: int, body: dict, what: str) -> dict:
    if status != wanted:
        pytest.fail(f"{what}: expected {wanted}, got {status}: {json.dumps(body)}")
    return body


class Credentials:
    """A signed-up user, their organization and the API keys the tests use."""

    def __init__(self) -> None:
        tag = secrets.token_hex(6)
        self.email = f"openai-sdk-{tag}@example.com"
        # A strong random password: 32 URL-safe characters.
        self.password = secrets.token_urlsafe(24)
        status, body = api(
            "POST",
            "/v1/auth/register",
            {"email": self.email, "password": self.password, "display_name": "OpenAI SDK suite"},
        )
        self.access_token = expect(status, 201, body, "register")["access_token"]
        status, body = api("POST", "/v1/orgs", {"name": f"openai-sdk-{tag}"}, self.access_token)
        self.org_id = expect(status, 201, body, "create org")["id"]
        self.chat_key = self.mint("chat", ["chat"])
        self.knowledge_key = self.mint("knowledge only", ["knowledge"])
        self.limited_key = self.mint("one request a minute", ["chat"], rpm_limit=1)
        self.metered_key = self.mint("metered", ["chat"], rpm_limit=100, tpm_limit=100000)

    def mint(self, name: str, scopes: list[str], **extra) -> str:
        request = {"name": name, "scopes": scopes, "org_id": self.org_id, **extra}
        status, body = api("POST", "/v1/api-keys", request, self.access_token)
        key = expect(status, 201, body, f"mint key {name!r}")["key"]
        assert key.startswith("sy_live_"), key
        return key


@pytest.fixture(scope="session")
def credentials() -> Credentials:
    return Credentials()


def make_client(api_key: str) -> openai.OpenAI:
    # No retries: a failure shows as it happened, and 429s are not retried away.
    return openai.OpenAI(api_key=api_key, base_url=base_url() + "/v1", max_retries=0, timeout=30)


@pytest.fixture(scope="session")
def client(credentials: Credentials) -> openai.OpenAI:
    return make_client(credentials.chat_key)


@pytest.fixture(scope="session")
def client_for():
    """Builds a client for any key, e.g. `client_for(credentials.knowledge_key)`."""
    return make_client
