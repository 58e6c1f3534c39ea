"""Rows waiting to be written into the query tables, coalesced, and written in one go.

A keyed table's rows carry their row's whole state, so only the last per key is written
(an order accepted and filled in one batch is written once); appended rows keep their
order. Written through the database driver (executemany), with the statements built once
per table: this is the accountant's heaviest write, and SQLAlchemy's per-row work showed
as a third of its time.
"""

from __future__ import annotations

from typing import Any

from actors.accountant.rows import KEYED, MODELS, Row, columns, keys


def _statements(paramstyle: str) -> list[str]:
    mark = "?" if paramstyle == "qmark" else "%s"
    out = []
    for table, model in enumerate(MODELS):
        names = columns(table)
        insert = (
            f"INSERT INTO {model.__tablename__} ({', '.join(names)}) "
            f"VALUES ({', '.join(mark for _ in names)})"
        )
        if table in KEYED:
            key_names = [names[i] for i in keys(table)]
            others = [n for n in names if n not in key_names]
            insert += f" ON CONFLICT ({', '.join(key_names)}) DO UPDATE SET " + ", ".join(
                f"{n} = excluded.{n}" for n in others
            )
        out.append(insert)
    return out


class Projection:
    """Pending rows of the query tables, newest state per key."""

    def __init__(self, paramstyle: str) -> None:
        self._sql = _statements(paramstyle)
        self._state_sql = (
            "UPDATE ledger_state SET projected_seq = "
            + ("?" if paramstyle == "qmark" else "%s")
            + " WHERE id = 1"
        )
        self._keys = {table: keys(table) for table in KEYED}
        self.keyed: list[dict[Any, tuple[Any, ...]]] = [{} for _ in MODELS]
        self.appended: list[list[tuple[Any, ...]]] = [[] for _ in MODELS]
        self.count = 0

    def add(self, rows: list[Row]) -> None:
        keyed, appended, key_of = self.keyed, self.appended, self._keys
        for table, values in rows:
            positions = key_of.get(table)
            if positions is None:
                appended[table].append(values)
            elif len(positions) == 1:
                keyed[table][values[positions[0]]] = values
            else:
                keyed[table][tuple(values[i] for i in positions)] = values
        self.count += len(rows)

    def write(self, cursor: Any, seq: int) -> int:
        """Execute the pending writes and record `seq` as projected, on the caller's
        transaction (it commits); returns how many rows were written."""
        written = 0
        for table, sql in enumerate(self._sql):
            rows = list(self.keyed[table].values()) if table in KEYED else self.appended[table]
            if rows:
                cursor.executemany(sql, rows)
                written += len(rows)
        cursor.execute(self._state_sql, (seq,))
        self.keyed = [{} for _ in MODELS]
        self.appended = [[] for _ in MODELS]
        self.count = 0
        return written
