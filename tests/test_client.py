"""The shared HTTP client: errors mapped to its exception tree, bodies as the server expects."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from lutclient import ApiError, Conflict, HwlutClient, Invalid, NotFound, ServerUnreachable, Unauthorized


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> HwlutClient:
    return HwlutClient("http://hwlut.test", token="tok", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("status", "exc"),
    [
        (401, Unauthorized),
        (403, Unauthorized),
        (404, NotFound),
        (409, Conflict),
        (413, Invalid),
        (422, Invalid),
        (500, ApiError),
    ],
)
def test_errors_map_to_the_tree(status: int, exc: type[Exception]) -> None:
    body = {"detail": [{"loc": ["body", "name"], "msg": "bad", "type": "x"}]}
    with _client(lambda r: httpx.Response(status, json=body)) as client, pytest.raises(exc) as info:
        client.devices()
    assert info.value.status == status and "body.name: bad" in str(info.value)


def test_requests_carry_token_and_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={
                "lease_id": "L",
                "expires_at": "t",
                "items": [
                    {
                        "item_id": 1,
                        "kind": "entry",
                        "key": "skip_h8_w8_cin8_cout8_s1_k1_e1_g1",
                        "fields": {
                            "op": "skip",
                            "cin": 8,
                            "cout": 8,
                            "h": 8,
                            "w": 8,
                            "stride": 1,
                            "kernel": 1,
                            "expansion": 1,
                            "groups": 1,
                        },
                        "attempts": 0,
                    }
                ],
            },
        )

    with _client(handler) as client:
        lease = client.claim(7, agent="a", max_items=3)
    assert lease.items[0].entry.is_identity
    assert seen[0].url.path == "/v1/jobs/7/claim" and seen[0].headers["authorization"] == "Bearer tok"
    assert json.loads(seen[0].content) == {"agent": "a", "max_items": 3}


def test_transport_errors_are_server_unreachable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with _client(handler) as client, pytest.raises(ServerUnreachable):
        client.health()


def test_client_imports_neither_server_nor_torch() -> None:
    import subprocess
    import sys

    code = "import sys, lutclient; print([m for m in ('torch', 'server', 'fastapi', 'sqlalchemy') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
