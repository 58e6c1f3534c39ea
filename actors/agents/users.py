"""The agents' users: one per agent, named for its kind, symbol and number
(`agent-mm-AAPL-1`), created by the admin with `[agents] cash` and a deposit of its
symbol's shares on the first start, found by name on the next. Their tokens are kept in
the data dir, readable by this user only (`agent_tokens.json`), and beside them the
shares deposited into each (`agent_deposits.json`): what its inventory is counted from."""

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
DEPOSITS_FILE = "agent_deposits.json"
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


class KeptFile:
    """Agent name -> text (a token, a quantity), in a JSON file only its owner can read,
    rewritten whole at each change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, str] = {}
        try:
            loaded = json.loads(path.read_text())
        except (OSError, ValueError):
            loaded = {}
        if isinstance(loaded, dict):
            self.entries = {k: v for k, v in loaded.items() if isinstance(v, str)}

    def save(self, name: str, text: str) -> None:
        self.entries[name] = text
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(self.entries, fh, indent=1, sort_keys=True)
        os.replace(tmp, self.path)


async def provision(
    admin: Link,
    specs: list[AgentSpec],
    infos: dict[str, SymbolInfo],
    params: AgentSettings,
    tokens: KeptFile,
    deposits: KeptFile,
) -> None:
    """Make sure each agent has a user, its token in `tokens` and its deposit in
    `deposits`: created with the cash and its symbol's shares when new; found by name (and
    given a new token if its own is not kept) when it exists. A restart reuses them all."""
    users = {u["name"]: u["user_id"] for u in (await admin.request("user.list"))["users"]}
    for spec in specs:
        shares = params.shares * infos[spec.symbol].round_lot
        if spec.name not in deposits.entries:  # a user made before deposits were kept too
            deposits.save(spec.name, wire(shares))
        if spec.name in users and spec.name in tokens.entries:
            continue
        if spec.name in users:
            await renew(admin, spec.name, users[spec.name], tokens)
            continue
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


async def renew(admin: Link, name: str, user_id: int, tokens: KeptFile) -> str:
    """A new token for an agent's user whose token was lost or revoked."""
    token = str((await admin.request("token.rotate", user_id=user_id))["token"])
    tokens.save(name, token)
    log.info("user %s (id %s): new token", name, user_id)
    return token
