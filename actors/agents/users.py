"""The agents' users: one per agent, named for its kind, symbol and number
(`agent-mm-AAPL-1`), created by the admin with `[agents] cash` and a deposit of its
symbol's shares on the first start, found by name on the next; their tokens are kept in
the data dir, readable by this user only (`agent_tokens.json`)."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from actors.agents.link import Link, Refused
from actors.agents.pricing import SymbolInfo, wire
from protocol.settings import AgentSettings

TOKENS_FILE = "agent_tokens.json"
KINDS = ("mm", "noise", "momentum")  # in the order they are made and named
log = logging.getLogger("agents")


@dataclass(frozen=True)
class AgentSpec:
    """One agent to run: its kind, symbol and number, and its user's name."""

    kind: str
    symbol: str
    number: int

    @property
    def name(self) -> str:
        # user names take A-Z a-z 0-9 _ . @ - (protocol.md 3.15)
        return f"agent-{self.kind}-{re.sub(r'[^A-Za-z0-9_.@-]', '_', self.symbol)}-{self.number}"


def plan(params: AgentSettings, symbols: list[str]) -> list[AgentSpec]:
    """The agents of each symbol: its market makers, noise traders, momentum traders."""
    counts = {
        "mm": params.market_makers,
        "noise": params.noise_traders,
        "momentum": params.momentum_traders,
    }
    return [
        AgentSpec(kind, symbol, n)
        for symbol in symbols
        for kind in KINDS
        for n in range(1, counts[kind] + 1)
    ]


class TokenFile:
    """Agent name -> token, in a JSON file only its owner can read, rewritten whole."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tokens: dict[str, str] = {}
        try:
            loaded = json.loads(path.read_text())
        except (OSError, ValueError):
            loaded = {}
        if isinstance(loaded, dict):
            self.tokens = {k: v for k, v in loaded.items() if isinstance(v, str)}

    def save(self, name: str, token: str) -> None:
        self.tokens[name] = token
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.tokens, fh, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


async def provision(
    admin: Link,
    specs: list[AgentSpec],
    infos: dict[str, SymbolInfo],
    params: AgentSettings,
    tokens: TokenFile,
) -> None:
    """Make sure each agent has a user and its token is in `tokens`: created with the cash
    and its symbol's shares when new; found by name (and given a new token if its own is
    not kept) when it exists. A restart reuses them all."""
    users = {u["name"]: u["user_id"] for u in (await admin.request("user.list"))["users"]}
    for spec in specs:
        if spec.name in users and spec.name in tokens.tokens:
            continue
        if spec.name in users:
            await renew(admin, spec.name, users[spec.name], tokens)
            continue
        shares = params.shares * infos[spec.symbol].round_lot
        fields: dict[str, Any] = {"name": spec.name, "cash": wire(params.cash)}
        if shares:
            fields["positions"] = {spec.symbol: wire(shares)}
        try:
            created = await admin.request("user.create", **fields)
        except Refused as refused:
            if refused.code != "REQUEST_NAME_TAKEN":  # created by a start that then died
                raise
            listed = (await admin.request("user.list"))["users"]
            user_id = next(u["user_id"] for u in listed if u["name"] == spec.name)
            await renew(admin, spec.name, user_id, tokens)
            continue
        tokens.save(spec.name, created["token"])
        log.info(
            "created user %s (id %s) with %s and %s %s",
            spec.name,
            created["user_id"],
            created["cash"],
            wire(shares),
            spec.symbol,
        )


async def renew(admin: Link, name: str, user_id: int, tokens: TokenFile) -> str:
    """A new token for an agent's user whose token was lost or revoked."""
    token = str((await admin.request("token.rotate", user_id=user_id))["token"])
    tokens.save(name, token)
    log.info("user %s (id %s): new token", name, user_id)
    return token
