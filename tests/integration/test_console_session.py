"""The web console's sign-in over plain HTTP: a token for an HttpOnly session cookie, the
cookie as a credential, the header that guards it against other sites, sign-out, and a
session that ends with its token (gateway/console.py)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from protocol.tokens import hash_token, key_id
from tests.conftest import fresh_name
from tests.harness import Server

pytestmark = pytest.mark.isolation

ORDER = {"symbol": "600000", "side": "buy", "qty": 100, "price": "1.00"}
CONSOLE = {"X-TradeServer-Console": "1"}


@pytest.fixture
def clients() -> Iterator[list[httpx.Client]]:
    """Stand-ins for browsers: each keeps its own cookies; closed after the test."""
    made: list[httpx.Client] = []
    yield made
    for client in made:
        client.close()


def cookie_jar(server: Server, made: list[httpx.Client], **kwargs: Any) -> httpx.Client:
    client = httpx.Client(base_url=server.url, timeout=15, **kwargs)
    made.append(client)
    return client


def signed_in(server: Server, made: list[httpx.Client], token: str) -> httpx.Client:
    browser = cookie_jar(server, made)
    reply = browser.post("/v1/session", json={"token": token})
    assert reply.status_code == 200, reply.text
    return browser


def test_a_token_becomes_an_httponly_strict_cookie_that_acts_as_its_user(
    server: Server, clients: list[httpx.Client]
) -> None:
    name = fresh_name("console")
    token = server.new_user(name)
    browser = cookie_jar(server, clients)
    reply = browser.post("/v1/session", json={"token": token})
    assert reply.status_code == 200 and reply.json()["name"] == name
    cookie = reply.headers["set-cookie"]
    assert cookie.startswith("ts_session=") and token not in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    who = browser.get("/v1/session").json()
    assert who["name"] == name and who["key_id"] == key_id(hash_token(token))
    assert browser.get("/v1/account").json()["name"] == name
    placed = browser.post("/v1/orders", json=ORDER, headers=CONSOLE)
    assert placed.status_code == 200, placed.text
    log = (server.data_dir / "logs" / "gateway.log").read_text()
    assert token not in log


def test_a_cookie_request_that_changes_something_needs_the_console_header(
    server: Server, clients: list[httpx.Client]
) -> None:
    """A form or script on another site could send the cookie; it cannot add the header."""
    browser = signed_in(server, clients, server.new_user(fresh_name("csrf")))
    refused = browser.post("/v1/orders", json=ORDER)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "REQUEST_CROSS_SITE"
    assert browser.get("/v1/orders").json() == []  # nothing was placed
    assert browser.delete("/v1/orders/1").json()["error"]["code"] == "REQUEST_CROSS_SITE"


def test_a_wrong_token_gets_no_cookie(server: Server, clients: list[httpx.Client]) -> None:
    reply = httpx.post(f"{server.url}/v1/session", json={"token": "not-a-token"}, timeout=15)
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "AUTH_INVALID_TOKEN"
    assert "set-cookie" not in reply.headers
    stranger = cookie_jar(server, clients, cookies={"ts_session": "made-up"})
    ended = stranger.get("/v1/account")
    assert ended.status_code == 401
    assert ended.json()["error"]["code"] == "AUTH_SESSION_ENDED"


def test_sign_out_ends_the_session_on_the_server(
    server: Server, clients: list[httpx.Client]
) -> None:
    browser = signed_in(server, clients, server.new_user(fresh_name("leaving")))
    session_id = browser.cookies["ts_session"]
    assert browser.delete("/v1/session").status_code == 200
    copied = cookie_jar(server, clients, cookies={"ts_session": session_id})
    assert copied.get("/v1/account").json()["error"]["code"] == "AUTH_SESSION_ENDED"


def test_sign_out_ends_the_streams_its_cookie_opened(
    server: Server, clients: list[httpx.Client]
) -> None:
    """Issue 14, item 5: after DELETE /v1/session, the event stream the cookie opened kept
    getting the user's events. Now it ends; a stream of the same user opened with the
    token goes on."""
    token = server.new_user(fresh_name("streams"))
    browser = signed_in(server, clients, token)
    bearer = server.http(token)
    with (
        browser.stream("GET", "/v1/events") as mine,
        browser.stream("GET", "/v1/market/events?symbols=600000") as quotes,
        bearer.stream("GET", "/v1/events") as bot,
    ):
        lines, market_lines, bot_lines = mine.iter_lines(), quotes.iter_lines(), bot.iter_lines()
        assert next(lines) == ": connected" and next(bot_lines) == ": connected"
        assert browser.delete("/v1/session").status_code == 200
        # the streams end after their last event (an open one would only send a
        # heartbeat, after EVENT_HEARTBEAT_S: the test fails then, not at its timeout)
        rest = list(itertools.takewhile(lambda line: line != ": heartbeat", lines))
        assert [line for line in rest if line] == [
            "event: session.ended",
            'data: {"reason":"session.closed"}',
        ]
        market = list(itertools.takewhile(lambda line: line != ": heartbeat", market_lines))
        assert "event: session.ended" in market
        placed = bearer.post("/v1/orders", json=ORDER)
        assert placed.status_code == 200, placed.text
        # its next event is the order's (a quiet stream would time the read out)
        assert next(line for line in bot_lines if line.startswith("event")) == (
            "event: order.accepted"
        )


def test_a_rotated_token_ends_its_console_sessions(
    server: Server, clients: list[httpx.Client]
) -> None:
    name = fresh_name("rotating")
    token = server.new_user(name)
    browser = signed_in(server, clients, token)
    rotated = httpx.post(f"{server.url}/v1/token/rotate", headers=server.auth(token), timeout=15)
    assert rotated.status_code == 200, rotated.text
    after = browser.get("/v1/account")
    assert after.status_code == 401 and after.json()["error"]["code"] == "AUTH_INVALID_TOKEN"


def test_the_console_page_is_served_with_a_strict_content_security_policy(
    server: Server,
) -> None:
    page = httpx.get(f"{server.url}/", timeout=15)
    assert page.status_code == 200 and "<title>TradeServer</title>" in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    script = httpx.get(f"{server.url}/console/app.js", timeout=15)
    assert script.status_code == 200 and "EventSource" in script.text
    # the chart library comes from this server too, never from a CDN
    charts = httpx.get(f"{server.url}/console/vendor/lightweight-charts.standalone.production.js")
    assert charts.status_code == 200 and "Lightweight Charts" in charts.text[:300]
    assert "/console/vendor/lightweight-charts" in page.text and "https://" not in policy


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/console/index.html",  # the same page under its file name: no way around the policy
        "/console/app.js",
        "/console/style.css",
        "/console/vendor/lightweight-charts.standalone.production.js",
        "/console/no-such-file.js",  # a refusal is a page of this origin too
    ],
)
def test_every_console_path_has_the_consoles_security_headers(server: Server, path: str) -> None:
    """Issue 14, item 6: /console/index.html served the whole console without the CSP,
    frame-ancestors and nosniff that / sent."""
    answer = httpx.get(f"{server.url}{path}", timeout=15)
    policy = answer.headers.get("content-security-policy", "")
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy, path
    assert "unsafe-inline" not in policy
    assert answer.headers.get("x-content-type-options") == "nosniff"


def test_the_api_docs_load_only_from_this_server_under_a_policy(server: Server) -> None:
    """/docs had no CSP and loaded Swagger UI from a public CDN: offline it was blank, and
    a script from another origin ran on the API's origin."""
    page = httpx.get(f"{server.url}/docs", timeout=15)
    assert page.status_code == 200 and 'id="swagger-ui"' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "https://" not in page.text and "http://" not in page.text
    sources = [part.split('"')[0] for part in page.text.split(' src="')[1:]]
    sources += [part.split('"')[0] for part in page.text.split(' href="')[1:]]
    assert len(sources) >= 3
    for source in sources:
        asset = httpx.get(f"{server.url}{source}", timeout=15)
        assert asset.status_code == 200 and len(asset.content) > 100, source
        assert asset.headers.get("x-content-type-options") == "nosniff"
    init = httpx.get(f"{server.url}/docs/init.js", timeout=15).text
    assert '"/openapi.json"' in init
    assert httpx.get(f"{server.url}/redoc", timeout=15).status_code == 404  # it used a CDN


def test_api_answers_cannot_be_framed_or_sniffed(server: Server) -> None:
    for answer in (
        httpx.get(f"{server.url}/v1/health", timeout=15),
        httpx.get(f"{server.url}/v1/account", timeout=15),  # a refusal: 401
        httpx.get(f"{server.url}/openapi.json", timeout=15),
    ):
        assert answer.headers.get("x-content-type-options") == "nosniff"
        assert "frame-ancestors 'none'" in answer.headers.get("content-security-policy", "")
