"""The journal: the accountant's durable record, one append per burst (as LMAX and
exchange-core journal their input), written by the accountant's I/O loop.

Each entry is the burst's ledger rows (actors/accountant/rows.py), msgpack-packed, under a
sequence number. An order is acknowledged once the entry holding it is committed; the
query tables (orders, fills, operations...) are projections the Projector writes behind
it, recording in `ledger_state` the last entry they hold. Recovery (`catch_up`) writes
the entries after that into the tables, then drops them from the journal.

With SQLite the journal is a file of its own beside the ledger (`<ledger>.journal.db`), so
its appends never wait for the projector's longer transactions on the ledger; on other
databases it is a table in the ledger's database. Its one table is created when it is
opened: a change of format gets a new table name, not a migration.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import BigInteger, Column, Engine, LargeBinary, MetaData, Table, select, text

from actors.accountant.ledger import LedgerState, make_engine
from actors.accountant.projection import Projection
from actors.accountant.rows import Row, widened
from protocol import codec

log = logging.getLogger("accountant")

_METADATA = MetaData()
JOURNAL = Table(
    "journal",
    _METADATA,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("rows", LargeBinary, nullable=False),
)


def journal_url(database_url: str) -> str:
    """Where the journal of this ledger lives: a sibling SQLite file, or the same database."""
    prefix = "sqlite:///"
    if database_url.startswith(prefix) and database_url != prefix + ":memory:":
        path = Path(database_url[len(prefix) :])
        return prefix + str(path.with_name(path.name + ".journal.db"))
    return database_url


class Journal:
    """Appends entries and commits each one; only the accountant's I/O loop calls it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        _METADATA.create_all(engine, checkfirst=True)
        self._conn = engine.raw_connection()
        self._cursor = self._conn.cursor()
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._insert = f"INSERT INTO journal (seq, rows) VALUES ({mark}, {mark})"
        self._truncate = f"DELETE FROM journal WHERE seq <= {mark}"
        self.seq = 0
        self.truncated = 0

    def append(self, rows: list[Row]) -> int:
        """Commit one entry holding `rows`; returns its sequence number."""
        self.seq += 1
        self._cursor.execute(self._insert, (self.seq, codec.encode(rows)))
        self._conn.commit()
        return self.seq

    def truncate(self, upto: int) -> None:
        """Drop the entries the projections hold (those numbered up to `upto`)."""
        if upto > self.truncated:
            self._cursor.execute(self._truncate, (upto,))
            self._conn.commit()
            self.truncated = upto

    def entries_after(self, seq: int) -> Iterator[tuple[int, list[Row]]]:
        query = select(JOURNAL.c.seq, JOURNAL.c.rows).where(JOURNAL.c.seq > seq)
        with self.engine.connect() as conn:
            for number, packed in conn.execute(query.order_by(JOURNAL.c.seq)):
                yield (
                    number,
                    [
                        (table, widened(table, tuple(values)))
                        for table, values in codec.decode_internal(packed)
                    ],
                )

    def last_seq(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(text("SELECT max(seq) FROM journal")).scalar() or 0)

    def close(self) -> None:
        self._cursor.close()
        self._conn.close()


def open_journal(database_url: str, synchronous: str) -> Journal:
    url = journal_url(database_url)
    return Journal(make_engine(url, synchronous))


def projected_seq(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(LedgerState.projected_seq)).scalar() or 0)


def catch_up(engine: Engine, journal: Journal) -> int:
    """Write the journal's entries that the query tables do not hold yet, then drop them
    from the journal; returns the last entry's number. Call with the ledger held (no
    accountant running, or the accountant itself before it serves)."""
    done = projected_seq(engine)
    projection = Projection(engine.dialect.paramstyle)
    last = done
    for seq, rows in journal.entries_after(done):
        projection.add(rows)
        last = seq
    if last > done:
        conn = engine.raw_connection()
        try:
            projection.write(conn.cursor(), last)
            conn.commit()
        finally:
            conn.close()
        log.info("journal: entries %d to %d written into the ledger's tables", done + 1, last)
    journal.seq = max(last, journal.last_seq())
    journal.truncate(last)
    return last


def write_offline(engine: Engine, rows: list[Row]) -> None:
    """Rows written straight into the tables by a tool, with no accountant running (it
    holds the ledger lock and has caught the tables up with the journal first)."""
    projection = Projection(engine.dialect.paramstyle)
    projection.add(rows)
    conn = engine.raw_connection()
    try:
        projection.write(conn.cursor(), projected_seq(engine))
        conn.commit()
    finally:
        conn.close()


def ledger_caught_up(database_url: str, synchronous: str, engine: Engine) -> None:
    """For a tool that reads the ledger with no accountant running: bring its tables up to
    the journal first (after a crash the last entries may be in the journal only)."""
    journal = open_journal(database_url, synchronous)
    try:
        catch_up(engine, journal)
    finally:
        journal.close()
        journal.engine.dispose()
