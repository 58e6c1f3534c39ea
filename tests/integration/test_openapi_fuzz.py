"""Schemathesis over the gateway's own OpenAPI spec, against the live server: requests
that fit the spec (positive) and requests that break it (negative), for every
operation, first with a trader's token and then with the admin token. No answer is a
5xx, every 4xx carries a coded error, and the state stays whole. Prints the counts.

Some negative inputs get a 2xx: those that only add query parameters the spec does
not name, which the API ignores, as most HTTP APIs do."""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode

from protocol.errors import ErrorCode
from tests.harness import Server

pytestmark = pytest.mark.hostile

CODES = {code.value for code in ErrorCode}
EXAMPLES = 6  # per operation and generation mode
# Not fuzzed: streams that stay open (the two event streams; a replay step waits up to 30 s).
OPEN_ENDED = {"GET /v1/events", "GET /v1/market/events", "GET /v1/replay/step"}
# Not fuzzed with the admin token: what would change tokens or the run state under the
# fuzzer's feet, or start backtest processes. The trader's token tries them all.
ADMIN_SPARED = {
    "POST /v1/control",
    "POST /v1/token/rotate",
    "POST /v1/admin/users/{user_id}/token",
    "DELETE /v1/admin/users/{user_id}/token",
    "POST /v1/backtests",
}
TRADER_SPARED = {"POST /v1/token/rotate"}  # would end the fuzzer's own token


@pytest.fixture(scope="module")
def server(unlimited_server: Server) -> Server:
    """Hundreds of requests from one token: no rate limit (conftest)."""
    return unlimited_server


def check_answer(case: Case, status: int, body: object, label: str) -> None:
    where = f"{label}: {case.path_parameters} {case.query} {str(case.body)[:200]}"
    assert status < 500, f"{where} -> {status} {str(body)[:300]}"
    if status >= 400 and label.split()[1].startswith("/v2/"):  # Alpaca's shape, our code too
        expected = 40010001 if status == 400 else status * 100_000 + 10_000
        assert isinstance(body, dict) and body.get("code") == expected, (where, status, body)
        assert body.get("reason") in CODES, (where, status, body)
    elif status >= 400:
        error = body.get("error") if isinstance(body, dict) else None
        assert isinstance(error, dict) and error.get("code") in CODES, (where, status, body)
    if label.startswith("GET /v1/backtests/") and status < 300:
        raise AssertionError(f"{where}: a report on a server that ran no backtest")


def fuzz(server: Server, token: str, spared: set[str], tried: Counter[str]) -> None:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if label in OPEN_ENDED or label in spared:
            continue
        tried["operations fuzzed"] += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                fuzz_one(server, server.auth(token), operation, mode, tried)
            except Unsatisfiable:
                tried["no negative input possible"] += 1


def fuzz_one(
    server: Server,
    headers: dict[str, str],
    operation: APIOperation,
    mode: GenerationMode,
    tried: Counter[str],
) -> None:
    label = f"{operation.method.upper()} {operation.path}"

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same inputs on every run: CI stays reproducible
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def one(case: Case) -> None:
        response = case.call(base_url=server.url, headers=headers, timeout=15)
        try:
            body = response.json()
        except ValueError:
            body = response.text
        check_answer(case, response.status_code, body, label)
        tried[f"{mode.value} {response.status_code // 100}xx"] += 1

    one()


def test_the_spec_fuzzed_gets_no_server_error_and_only_coded_errors(server: Server) -> None:
    admin = server.client(server.admin_token)
    trader = server.new_user("fuzzed", "1000000")
    tried: Counter[str] = Counter()
    fuzz(server, trader, TRADER_SPARED, tried)
    fuzz(server, server.admin_token, ADMIN_SPARED, tried)
    digest = admin.digest()
    assert digest["books_match_orders"], digest
    print(f"\nschemathesis inputs by mode and answer: {dict(sorted(tried.items()))}")
    assert sum(n for k, n in tried.items() if "xx" in k) >= 300
