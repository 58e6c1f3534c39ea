"""The Projector actor: writes the journal's rows into the query tables, and answers the
queries that read them, in the accountant process but off its I/O loop.

The loop tells it the rows of the entries it committed (`Project`, a few bursts' at once)
and, after them, the queries of a burst (`Query`); it writes what is pending before it
answers a query, so a query sees everything acknowledged before it. Otherwise it writes
when the loop's timer says so (`Flush`, every FLUSH_EVERY) or when much is pending: one
transaction for many bursts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pykka
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from actors.accountant.projection import Projection
from actors.accountant.queries import Queries
from actors.accountant.rows import Row
from actors.runtime import process
from actors.runtime.bus import Bus, Message
from protocol import topics

log = logging.getLogger("accountant")

MAX_PENDING_ROWS = 50_000  # written at once, even while more keep coming
FLUSH_EVERY = 0.05  # s: how long rows may wait for their transaction when nobody asks


@dataclass(frozen=True, slots=True)
class Project:
    """The rows of committed journal entries, in order, up to entry `seq`."""

    seq: int
    rows: list[Row]


@dataclass(frozen=True, slots=True)
class Query:
    """A client's query (its user resolved), answered to the gateway."""

    message: Message


class Flush:
    """From the loop's timer: write what is pending."""


class Progress:
    """How far the Projector is: the last journal entry the tables hold (the loop drops
    older entries from the journal), and how many rows it has taken in all (the loop
    holds back while too many wait for it). Set by the Projector, read by the loop: an
    int assignment needs no lock."""

    def __init__(self, seq: int) -> None:
        self.seq = seq
        self.rows = 0


class Projector(pykka.ThreadingActor):
    def __init__(self, engine: Engine, bus: Bus, max_page: int, progress: Progress) -> None:
        super().__init__()
        self._engine = engine
        self._bus = bus
        self._queries = Queries(max_page)
        self._progress = progress
        self._projection = Projection(engine.dialect.paramstyle)
        self._seq = progress.seq  # the newest entry received
        self._conn: Any = None
        self._session: Session | None = None

    def on_start(self) -> None:
        self._conn = self._engine.raw_connection()
        self._session = Session(self._engine)

    def on_stop(self) -> None:
        self._write()
        if self._session is not None:
            self._session.close()
        if self._conn is not None:
            self._conn.close()

    def on_failure(self, *_exc: object) -> None:
        process.die("projector failed")

    def on_receive(self, message: Any) -> None:
        if isinstance(message, Project):
            self._projection.add(message.rows)
            self._seq = message.seq
            self._progress.rows += len(message.rows)
            if self._projection.count >= MAX_PENDING_ROWS:
                self._write()
        elif isinstance(message, Flush):
            self._write()
        elif isinstance(message, Query):
            self._write()
            self._answer(message.message)

    def _write(self) -> None:
        if self._seq <= self._progress.seq:
            return
        cursor = self._conn.cursor()
        try:
            self._projection.write(cursor, self._seq)
            self._conn.commit()
        finally:
            cursor.close()
        self._progress.seq = self._seq

    def _answer(self, msg: Message) -> None:
        assert self._session is not None
        body = self._queries.answer(self._session, msg)
        body["rid"] = msg["rid"]
        body["gw"] = msg["gw"]
        self._bus.send(topics.GATEWAY, body)
