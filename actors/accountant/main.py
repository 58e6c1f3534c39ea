"""The accountant process: users, cash, positions, pre-trade checks and the ledger.

The gateway pushes client requests here; the matcher pushes fills and cancel answers; the
controller publishes the run state and prices. Everything on the order path runs on the
process's I/O loop (actors/runtime/bus.py), one burst at a time: the Accountant handles
the burst's messages, the burst's ledger rows go to the journal in one commit, and only
then do its replies, events and orders leave. The Projector actor writes the rows into
the query tables behind the loop and answers the queries that read them.
"""

from __future__ import annotations

import logging
import sys
import time

from sqlalchemy import Engine

from actors.accountant.accountant import SETTLED_TIMER, Accountant
from actors.accountant.core import Core
from actors.accountant.journal import Journal, catch_up, open_journal
from actors.accountant.ledger import make_engine
from actors.accountant.projector import FLUSH_EVERY, Flush, Progress, Project, Projector, Query
from actors.accountant.queries import latest_time, load_accounts
from actors.accountant.rows import Row
from actors.market.rules import Market
from actors.runtime import process
from actors.runtime.bus import Bus
from actors.runtime.clock import clock_for
from protocol import topics
from protocol.settings import Settings

log = logging.getLogger("accountant")

JOURNAL_TRUNCATE_EVERY = 1.0  # s between drops of the entries the tables hold
# rows the Projector may have waiting in its inbox before the loop takes no more input: it
# shares the process (and the GIL) with the loop, which under a flood would outrun it
MAX_BACKLOG_ROWS = 100_000
HANDOVER_ROWS = 5_000  # committed rows handed to the Projector at once, at the latest


class Commit:
    """At the end of each burst: journal its rows in one commit, then release its messages.
    An acknowledged order is durable. The committed rows go to the Projector in one
    message per FLUSH_EVERY (or HANDOVER_ROWS, or before a query), not one per burst:
    telling the Projector's thread wakes it, and two threads then take turns at the GIL."""

    def __init__(
        self, core: Core, journal: Journal, projector: object, bus: Bus, progress: Progress
    ) -> None:
        self.core = core
        self.journal = journal
        self.projector = projector
        self.bus = bus
        self.progress = progress
        self.told = 0  # rows committed in all (told to the Projector, or about to be)
        self.rows: list[Row] = []  # committed, not yet told to the Projector
        self.seq = 0  # the journal entry the last of them came from

    def __call__(self) -> None:
        if not self.core.work:
            return
        work = self.core.take_work()
        if work.rows:
            self.seq = self.journal.append(work.rows)
            self.rows += work.rows
            self.told += len(work.rows)
        if work.outbound:
            self.bus.send_many(work.outbound)
        if work.queries or len(self.rows) >= HANDOVER_ROWS:
            self.hand_over()
        for query in work.queries:  # behind the rows they must see
            self.projector.tell(Query(query))  # type: ignore[attr-defined]
        if self.told - self.progress.rows > MAX_BACKLOG_ROWS:
            self.catch_up()

    def hand_over(self) -> None:
        if self.rows:
            self.projector.tell(Project(self.seq, self.rows))  # type: ignore[attr-defined]
            self.rows = []

    def catch_up(self) -> None:
        """Wait (the GIL free) until the Projector has taken in half its backlog: the
        loop takes no more input meanwhile, so a flood is slowed to what both can do."""
        self.flush()
        while self.told - self.progress.rows > MAX_BACKLOG_ROWS // 2:
            time.sleep(0.001)

    def flush(self) -> None:
        """The loop's timer (FLUSH_EVERY): the Projector gets the rows and writes them."""
        if self.rows:
            self.hand_over()
            self.projector.tell(Flush())  # type: ignore[attr-defined]


def main(settings: Settings) -> None:
    """Build the accountant in flow order: inbox, state from the ledger, actors, sockets."""
    process.setup_logging(settings, "accountant")
    with process.exclusive_lock(settings.data_dir / process.LEDGER_LOCK) as sole_writer:
        if not sole_writer:
            log.critical("another accountant writes this ledger; exiting")
            sys.exit(75)
        _serve(settings)


def _serve(settings: Settings) -> None:
    sync = settings.ledger.sqlite_synchronous
    engine: Engine = make_engine(settings.database_url, sync)
    journal = open_journal(settings.database_url, sync)
    projected = catch_up(engine, journal)
    clock = clock_for(settings.control.clock, latest_time(engine))
    accounts, user_seqs = load_accounts(engine, Market.from_settings(settings))
    core = Core(settings, clock, accounts, user_seqs)
    accountant = Accountant(core)
    bus = process.bus_for(settings, "accountant")
    # 1. requests from gateways and answers from the matcher arrive on one inbox
    # 2. checked, reserved and journaled orders go to the matcher
    # 3. replies and private events go back to the gateway, after the commit. PUSH, not
    #    PUB: a PUB drops what it sends while a restarted subscriber is still joining, and
    #    a PUSH queues it until the peer is back.
    bus.push_to(topics.MATCHER, settings.endpoints.matcher_in)
    bus.push_to(topics.CONTROLLER, settings.endpoints.controller_in)
    bus.push_to(topics.GATEWAY, settings.endpoints.gateway_in, drop_when_full=True)
    progress = Progress(projected)
    projector = Projector.start(engine, bus, settings.limits.max_history_page, progress)
    bus.pull(settings.endpoints.accountant_in, accountant.handle)

    def lost(sender: str, _link: str, _count: int) -> None:
        if sender == topics.MATCHER:  # its answers are gone: a new book snapshot voids them
            accountant.orders.send_book_snapshot()
            accountant.resets.advance_all()  # the snapshot may have ended orders

    bus.on_lost(lost)
    bus.subscribe(
        settings.endpoints.control_pub,
        (topics.CONTROL, topics.MARKET_PREFIX),
        accountant.on_broadcast,
    )
    if settings.market.feed != "replay":  # a replay's snapshots: at each session close only,
        # on its own time, so that the same replay writes the same ledger however fast it runs
        bus.every(settings.stats.snapshot_interval, lambda: core.take_snapshots("interval"))
    bus.every(JOURNAL_TRUNCATE_EVERY, lambda: journal.truncate(progress.seq))
    commit = Commit(core, journal, projector, bus, progress)
    bus.on_burst_end(commit)
    bus.every(FLUSH_EVERY, commit.flush)
    if settings.market.feed == "replay":
        bus.every(SETTLED_TIMER, accountant.tell_settled)  # sent at the end of the turn
    accountant.orders.send_book_snapshot()
    log.info(
        "accountant up: %d users, %d open orders, ledger %s",
        len(accounts.users),
        len(accounts.open_orders),
        engine.url.render_as_string(),
    )
    process.run(bus, [projector], before_stop=commit.hand_over)
    journal.truncate(progress.seq)
    journal.close()


if __name__ == "__main__":
    main(process.settings_from_argv(sys.argv))
