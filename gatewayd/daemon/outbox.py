"""The durable outbox: every event and result is on disk before it is published.

Publications side of the flow (verdict -> **publications**). Whoever publishes an event or a
result first ``append``s it here (the publisher: ``append_groups``, a whole loop turn's
messages at once); the entry leaves the outbox only when the broker has acknowledged it
(``ack``/``ack_all`` after the PUBACK). After a reconnect, and after a restart (SIGKILL and
power cuts included), ``pending`` (or its lean form for the pump, ``publishable``) gives back
what is still unacknowledged, oldest first, in the order it was appended, for replay.
Presence, info and availability are never queued here: their current value is published on
every connect instead.

The store is one SQLite file in WAL mode (each setting's reason is beside it in ``_PRAGMAS``):

- An append that carries a result (``MessageKind.RESULT``) or settles a job commits with
  ``synchronous=FULL``, so the WAL is fsynced before it returns: a result the caller has been
  told is queued survives a power cut, not only a killed process. So do ``begin_job``,
  ``forget_job`` and ``settle_job``.
- An append of events alone commits with ``synchronous=NORMAL``: its frames reach the OS at
  once (so they survive SIGKILL and a crash of the daemon) and reach the disk with the next
  fsync: ``sync``, which the publisher runs in a worker thread within ``EVENT_SYNC_S`` of any
  commit, or any durable commit, which fsyncs everything before it in the log. A power cut
  can lose only the events of that last fraction of a second (a tail, never a hole: the WAL's
  frames are checksummed), as it can lose the events the hub sent that the kit had not read
  yet; a result is never among them. ``unsynced`` says whether such commits wait for an
  fsync.
- ``sync`` is also the only checkpoint (copying the log into the database) while the file is
  open: none runs on the owner's thread, where one of a thousand pages held the event loop
  for up to 250 ms. The publisher writes nothing while a checkpoint runs (``checkpoint_due``),
  so that it reaches the end of the log and the next commit starts the log again from its
  beginning; closing the outbox checkpoints what is left.
- ``ack``, ``ack_all`` and ``mark_attempted`` commit with ``synchronous=NORMAL`` too. A lost
  ack resends a message that consumers dedupe by ``event_id``; a lost attempt mark changes
  nothing, because every entry from an earlier run is a replay anyway
  (``OutboxEntry.from_earlier_run``), which is also why the publisher keeps the attempts of
  its own run in memory and never writes them.

Bounds: ``max_messages``, ``max_bytes`` (topic + payload) and ``max_age_s``. When an append goes
over the count or byte bound, existing entries are dropped, the new one never is: events
(oldest first) before results, and results (oldest first) only when no event is left. Results
are the job's outcome, one per job and the thing the back office pays for; events are the
running commentary, and a gap in their ``seq`` shows what was lost. The age bound is an expiry,
not space pressure, so it applies to every kind alike. Every drop is counted by reason in
``dropped_total``, which is stored in the same transaction as the drop and so survives restarts.

The same file holds the job ledger (``job_ledger``: every job id the kit ran, and whether its
result is queued). ``append_all(..., settles=job_id)`` queues a job's result and marks the job
settled in one transaction, so no crash can separate the two.

A database file that SQLite reports as corrupt (or not a database), or an empty one beside a
non-empty ``-wal`` file (which SQLite would silently open as a new database, dropping the
log), is moved aside to ``<name>.corrupt-<UTC time>`` together with its ``-wal`` and ``-shm``
files, an ERROR line is logged, and a fresh outbox is started: a kit in the field must keep
recording new jobs, and the old file stays for anyone who wants to dig in it. Any other
failure to open (permissions, a missing directory, a full disk, a schema from a newer gatewayd)
raises ``OutboxError`` naming the file, never a bare sqlite3 traceback; every later sqlite3
failure is an ``OutboxError`` too.

Why the calls are synchronous, on the event loop: a transaction here is short. Its cost is
the fsync when there is one (0.5 to 3 ms on the development VM's disk; an SD card's is
typically a few to some tens of ms), which SQLite pays once per durable commit however many
rows it carries, and which blocks the loop. So hub events, the bulk of the traffic, are not
fsynced one commit at a time (see above), and the cost per message comes down by putting more
messages in a commit: the publisher stores a whole loop turn's events with one
``append_groups`` and removes acknowledged messages with one ``ack_all`` per batch (about one
SQLite statement per message in all, where an append, an attempt mark and an ack per message
cost about fifteen). At the bounds (10,000 messages, 50 MiB) an append measured 0.6 ms and
opening, with its ``quick_check``, 63 ms. A worker thread would share the connection between
threads (or have two connections contend for SQLite's one write lock) and make the ordering
between append, publish and ack a thing to get right across them. The connection is made for
one thread.

The daemon's start must catch ``OutboxError`` and report it as a configuration or storage
problem (the message names the file).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

from gatewayd.clock import Clock
from gatewayd.daemon import job_ledger
from gatewayd.daemon.job_ledger import JobRecord
from gatewayd.private_files import create_private_file

__all__ = [
    "CHECKPOINT_COMMITS",
    "CHECKPOINT_S",
    "EVENT_SYNC_S",
    "SCHEMA_VERSION",
    "DropReason",
    "Group",
    "MessageKind",
    "NewMessage",
    "Outbox",
    "OutboxEntry",
    "OutboxError",
    "Publishable",
]

_log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

DEFAULT_MAX_MESSAGES = 10_000
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_AGE_S = 7 * 24 * 3600.0

# Real seconds an append of events alone may wait for its fsync (``Outbox.sync``), at most:
# what a power cut can lose of them. Short next to a job's stages (minutes), long next to an
# fsync (1 to some tens of ms), so that at most a few fsyncs a second hold the loop however
# many hubs send.
EVENT_SYNC_S = 0.5

# A sync checkpoints (copies the log into the database, and starts it again) after this many
# commits, or this many seconds after the last checkpoint (see ``Outbox.sync``). The
# publisher holds its writes while a checkpoint runs, 4 to 5 ms on the development machine
# whether it copies 200 commits or 1,000 (the same few pages rewritten; its two fsyncs are
# most of it): at 200, one every half second at 1,024 hubs held about 1 % of the events, the
# p99. At 1,000 the log reaches about 20 MiB at 1,024 hubs before it starts again (5 pages of
# 4 KiB an event, for its append and its removal); restarting it costs an event's commit
# rarely.
CHECKPOINT_COMMITS = 1000
CHECKPOINT_S = 10.0

# Site seconds between two looks for expired entries on append (``max_age_s`` is days).
AGE_PRUNE_INTERVAL_S = 60.0

# Site seconds between two log lines about dropped messages.
DROP_LOG_INTERVAL_S = 60.0

# Connection settings, applied at every open.
_PRAGMAS = (
    # WAL: a commit appends checksummed frames to the -wal file and never rewrites the database
    # in place, so a crash mid-write leaves the last good state; readers (an operator's sqlite3
    # shell) do not block the daemon.
    "PRAGMA journal_mode=WAL",
    # Wait for such a reader's lock rather than failing at once.
    "PRAGMA busy_timeout=2000",
    # After a checkpoint, shrink a WAL that a burst made larger than this, so a kit's small
    # card is not held by an empty log. Above what CHECKPOINT_COMMITS commits leave at 1,024
    # hubs: truncating the log, on the loop, waited for the pages the sync's fsync was
    # writing out (stalls of 15 to 250 ms, seen at 256 hubs with a 1 MiB limit).
    f"PRAGMA journal_size_limit={32 * 1024 * 1024}",
    # No checkpoint on the loop: ``sync`` runs them in a worker thread, within EVENT_SYNC_S
    # of any commit (one of 1,000 pages, with two fsyncs, held the loop for up to 250 ms).
    # Without a publisher to run them, closing the outbox checkpoints.
    "PRAGMA wal_autocheckpoint=0",
)

# An SQLite base result code for "this file is damaged", as opposed to "cannot get at it".
_CORRUPT_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS meta (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    )""",
    # AUTOINCREMENT: ids are never reused, even after the outbox was emptied, so an id is the
    # replay order for the life of the file and tells entries from an earlier run apart.
    # precedence: 0 for what a space bound drops first (events), 1 for results.
    """CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        qos INTEGER NOT NULL,
        retain INTEGER NOT NULL,
        kind TEXT NOT NULL,
        precedence INTEGER NOT NULL,
        created_at REAL NOT NULL,
        size INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
    )""",
    # No index on (precedence, id): it cost every event a page written on its append and on
    # its removal, a third of what the log took per event, for the space bound's walk, which
    # goes in id order through the few oldest entries instead (``_enforce_space``). Files
    # made before still have it.
    "DROP INDEX IF EXISTS messages_drop_order",
    "CREATE INDEX IF NOT EXISTS messages_created_at ON messages (created_at)",
    """CREATE TABLE IF NOT EXISTS dropped (
        reason TEXT PRIMARY KEY,
        total INTEGER NOT NULL
    )""",
    *job_ledger.SCHEMA,
)

# Above any id SQLite hands out: "protect nothing" for the bounds' keep_from.
_NO_ID = 2**63 - 1

# Ids per "IN (...)" statement: well below SQLite's oldest limit of 999 host parameters.
_CHUNK = 500


class OutboxError(Exception):
    """The outbox file cannot be opened or used; the message names the file."""


class MessageKind(StrEnum):
    """What a queued message is, for the drop policy."""

    EVENT = "event"
    RESULT = "result"


_PRECEDENCE = {MessageKind.EVENT: 0, MessageKind.RESULT: 1}


class DropReason(StrEnum):
    """Which bound dropped a message."""

    COUNT = "count"
    BYTES = "bytes"
    AGE = "age"


@dataclass(frozen=True, slots=True)
class NewMessage:
    """One publication to queue with ``Outbox.append_all``; see ``Outbox.append``."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    kind: MessageKind = MessageKind.EVENT
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Group:
    """Messages to queue together (all or none), and the job whose result they carry."""

    messages: Sequence[NewMessage]
    settles: str | None = None


class Publishable(NamedTuple):
    """A pending entry as the pump publishes it (``Outbox.publishable``).

    ``resend``: a publish of it was tried before, in this run or an earlier one (see
    ``OutboxEntry.is_resend``). ``size`` is what it counts against ``max_bytes``.
    """

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    resend: bool
    size: int


# A message checked and completed for its INSERT: topic, payload, qos, retain, kind,
# created_at, size.
_Row = tuple[str, bytes, int, bool, MessageKind, datetime, int]


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One queued publication.

    ``id`` orders replay. ``attempts`` counts publishes tried (``mark_attempted``).
    ``from_earlier_run`` is True for an entry appended before this ``Outbox`` was opened.
    The publisher sets the payload's ``replayed`` flag when ``is_resend`` is True, or when it
    publishes the entry later than at its creation because the broker was unreachable.
    """

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    kind: MessageKind
    created_at: datetime
    attempts: int
    from_earlier_run: bool

    @property
    def is_resend(self) -> bool:
        """A publish of this entry was tried before, in this run or an earlier one."""
        return self.attempts > 0 or self.from_earlier_run

    @property
    def size(self) -> int:
        """Bytes counted against ``max_bytes``: topic (UTF-8) plus payload."""
        return _size(self.topic, self.payload)


def _size(topic: str, payload: bytes) -> int:
    return len(topic.encode()) + len(payload)


class _Corrupt(Exception):
    pass


class Outbox:
    """The durable queue of MQTT publications; see the module docstring for the guarantees."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        clock: Clock,
        max_messages: int = DEFAULT_MAX_MESSAGES,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        max_job_ids: int = job_ledger.DEFAULT_MAX_IDS,
        max_job_age_s: float = job_ledger.DEFAULT_MAX_AGE_S,
    ) -> None:
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be at least 1, got {max_bytes}")
        if not max_age_s > 0:
            raise ValueError(f"max_age_s must be greater than 0, got {max_age_s}")
        if max_job_ids < 1:
            raise ValueError(f"max_job_ids must be at least 1, got {max_job_ids}")
        if not max_job_age_s > 0:
            raise ValueError(f"max_job_age_s must be greater than 0, got {max_job_age_s}")
        self.path = Path(path)
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self.max_job_ids = max_job_ids
        self.max_job_age_s = max_job_age_s
        self._clock = clock
        #: Where a corrupt file found at open was moved to, or None.
        self.recovered_from: Path | None = None
        self._depth = 0
        self._inserted = 0
        self._bytes = 0
        self._dropped = dict.fromkeys(DropReason, 0)
        self._last_id_at_open = 0
        self._next_drop_log = float("-inf")
        # Commits so far; how many of them are fsynced (the ones before the last durable
        # commit or ``sync``), and how many a ``sync`` copied into the database.
        self._commits = 0
        self._fsynced = 0
        self._checkpointed = 0
        self._last_checkpoint = clock.monotonic()
        self._next_age_prune = float("-inf")
        # The connection's synchronous setting, so that a transaction sets it only to change it.
        self._synchronous: str | None = None
        # ``sync``'s own connection, made on first use; the lock keeps it to one thread.
        self._sync_conn: sqlite3.Connection | None = None
        # The log's file, for ``sync``'s fsync; opened (after ``_sync_conn``) on first use.
        self._wal_fd: int | None = None
        self._sync_lock = threading.Lock()
        try:
            self._conn = self._open()
        except _Corrupt as exc:
            aside = self._move_aside()
            _log.error(
                "outbox file corrupt, moved aside and started empty: messages queued in it "
                "were NOT published file=%s error=%r moved_to=%s",
                self.path,
                exc,
                aside,
            )
            self.recovered_from = aside
            try:
                self._conn = self._open()
            except _Corrupt as again:
                raise OutboxError(
                    f"outbox {self.path}: still unusable after a fresh start: {again}"
                ) from None
        try:
            # Entries over the age bound while the kit was off go now, not at the next append.
            self.prune()
            with self._transaction(durable=False, doing="prune the job ledger"):
                self._prune_jobs_in_txn()
        except BaseException:
            self._conn.close()
            raise

    # -- opening -------------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        existed = self.path.exists()
        if existed and _empty_beside_a_log(self.path):
            # SQLite would take the empty file for a new database and discard the log, and
            # with it every message queued there, without a word.
            raise _Corrupt("empty database file beside a non-empty write-ahead log")
        if not existed:
            # Created 0600 here, not by SQLite under the umask: its log and index take the
            # database file's mode, and all three hold the job ledger and queued results.
            try:
                create_private_file(self.path)
            except OSError as exc:
                raise OutboxError(f"outbox {self.path}: cannot create: {exc.strerror}") from None
        try:
            # isolation_level=None: transactions are our explicit BEGIN/COMMIT, so no statement
            # runs in a transaction Python opened behind our back.
            conn = sqlite3.connect(self.path, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._error("cannot open", exc) from None
        try:
            self._prepare(conn)
        except BaseException:
            conn.close()
            raise
        if not existed:
            _fsync_dir(self.path.parent)
        return conn

    def _prepare(self, conn: sqlite3.Connection) -> None:
        try:
            for pragma in _PRAGMAS:
                conn.execute(pragma)
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if str(mode).lower() != "wal":
                # Still crash-safe with a rollback journal, only slower and blocking readers.
                _log.warning("outbox WAL not available file=%s journal_mode=%s", self.path, mode)
            # quick_check reads every page (not the cross-index checks of integrity_check): a
            # damaged file is found now, at start, not in the middle of a job.
            rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check").fetchall()]
            if rows != ["ok"]:
                raise _Corrupt("; ".join(rows[:3]))
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            # One statement at a time: executescript() would commit our transaction first.
            for statement in _SCHEMA:
                conn.execute(statement)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,)
                )
            elif int(row[0]) > SCHEMA_VERSION:
                conn.execute("ROLLBACK")
                raise OutboxError(
                    f"outbox {self.path} has schema version {row[0]}, written by a newer gatewayd "
                    f"(this one knows version {SCHEMA_VERSION}); move it aside or upgrade"
                )
            conn.execute("COMMIT")
            depth, size = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages"
            ).fetchone()
            self._depth, self._bytes = int(depth), int(size)
            for reason, total in conn.execute("SELECT reason, total FROM dropped"):
                with contextlib.suppress(ValueError):
                    self._dropped[DropReason(reason)] = int(total)
            seq = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
            self._last_id_at_open = int(seq[0]) if seq is not None else 0
        except sqlite3.Error as exc:
            # Errors raised by the sqlite3 module itself carry no SQLite code.
            if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _CORRUPT_CODES:
                raise _Corrupt(str(exc)) from None
            raise self._error("cannot open", exc) from None

    def _move_aside(self) -> Path:
        stamp = self._clock.wall().astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            n += 1
            aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        try:
            # The -wal and -shm files belong to the damaged database: a fresh database must not
            # meet them.
            for suffix in ("-wal", "-shm"):
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    os.replace(side, aside.with_name(aside.name + suffix))
            os.replace(self.path, aside)
            _fsync_dir(self.path.parent)
        except OSError as exc:
            raise OutboxError(
                f"outbox {self.path} is corrupt and could not be moved aside: {exc}"
            ) from None
        return aside

    def _error(self, doing: str, exc: sqlite3.Error) -> OutboxError:
        return OutboxError(f"outbox {self.path}: {doing}: {exc}")

    # -- the queue ---------------------------------------------------------------------------

    def append(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        kind: MessageKind = MessageKind.EVENT,
        created_at: datetime | None = None,
    ) -> OutboxEntry:
        """Queue one publication: written when this returns, and fsynced too when it is a
        result (an event is fsynced by ``sync`` or the next durable commit; see the module
        docstring).

        ``created_at`` (timezone-aware; default: the clock's ``wall()``) is when the message was
        made, for the age bound. Goes over a bound: older entries are dropped, never this one.
        A message larger than ``max_bytes`` on its own is refused with ``ValueError``.
        """
        message = NewMessage(topic, payload, qos, retain, kind, created_at)
        return self.append_all([message])[0]

    def append_all(
        self, messages: Sequence[NewMessage], *, settles: str | None = None
    ) -> list[OutboxEntry]:
        """Queue several publications in one transaction: all are written, or none is.

        ``settles`` names a job this queues the result of: it is marked settled in the job
        ledger in the same transaction, so a crash can never leave a queued result with its
        job still owed one (nor the reverse). The rules of ``append`` apply to each message;
        the bounds drop none of them, and together they must fit in ``max_bytes``.
        """
        return self.append_groups([Group(messages, settles)])[0]

    def append_groups(self, groups: Sequence[Group]) -> list[list[OutboxEntry]]:
        """Queue several groups in one transaction: all are written, or none is.

        The same as ``append_all`` for each group in turn, at the cost of one transaction:
        the publisher's group commit. It is fsynced before this returns when any group
        carries a result or settles a job (one fsync for them all, and for every event
        before them); otherwise ``unsynced`` is True until ``sync``. The bounds treat the
        groups as appended one after the other: the last group is never dropped, an earlier
        one may be (as an earlier append may be by a later one). ``ValueError``, before
        anything is written, when a group is wrong on its own (see ``check``).
        """
        checked = [self.check(g.messages) for g in groups]
        durable = any(
            g.settles is not None or any(row[4] is MessageKind.RESULT for row in rows)
            for rows, g in zip(checked, groups, strict=True)
        )
        entries: list[list[OutboxEntry]] = []
        with self._transaction(durable=durable, doing="append"):
            for rows, group in zip(checked, groups, strict=True):
                entries.append([self._insert(row) for row in rows])
                if group.settles is not None:
                    job_ledger.record_settled(
                        self._conn, group.settles, self._clock.wall().timestamp()
                    )
            firsts = [group_entries[0].id for group_entries in entries if group_entries]
            # What was queued in this transaction is never too old (a message held in memory
            # during a disk outage may be), and the last group is never too big. The age
            # bound is days: looking for expired entries once a minute is enough, and spares
            # an event's commit a statement.
            now = self._clock.monotonic()
            if now >= self._next_age_prune:
                self._next_age_prune = now + AGE_PRUNE_INTERVAL_S
                self._prune_in_txn(keep_from=firsts[0] if firsts else _NO_ID)
            self._enforce_space(keep_from=firsts[-1] if firsts else _NO_ID)
        return entries

    @property
    def unsynced(self) -> bool:
        """Commits since the last fsync of the log: events (or acknowledgements) that a power
        cut could still take."""
        return self._commits > self._fsynced

    @property
    def needs_sync(self) -> bool:
        """Commits since the last ``sync``: the log holds what no checkpoint copied into the
        database yet (durable ones included), and ``sync`` has work to do."""
        return self._commits > self._checkpointed

    def sync(self, *, checkpoint: bool | None = None) -> bool:
        """Fsync every commit made before the call; False when there was nothing to do.

        Safe to call from a worker thread while the owner's thread goes on (one ``sync`` at a
        time): it works through a connection and a descriptor of its own. The fsync is of
        the log's file itself, which takes no lock of SQLite's, so the owner may go on
        committing (without a log file, a durable commit of a counter on that connection:
        the owner must not write meanwhile). Every ``CHECKPOINT_COMMITS``
        commits, or ``CHECKPOINT_S`` after the last checkpoint (``checkpoint``: True to force,
        False never), it copies the log into the database instead, with a passive
        checkpoint, which SQLite documents to fsync the log before and the database after;
        the next commit then starts the log again from its beginning. Not on every sync: that
        restart costs the next commit an fsync of the log's header, on the owner's thread
        (about as much as the rest of an idle kit's event path, on the development VM). A
        checkpoint that could not copy the whole log (a reader's older snapshot held part of
        it back) claims nothing, and the fsync is made the other way. ``OutboxError`` when
        the disk refuses.
        """
        mark = self._commits
        now = self._clock.monotonic()
        if checkpoint is None:
            checkpoint = self.checkpoint_due()
        if mark <= self._fsynced and not checkpoint:
            return False
        with self._sync_lock:
            try:
                if self._sync_conn is None:
                    self._sync_conn = self._open_sync_connection()
                conn = self._sync_conn
                if checkpoint:
                    busy, log_frames, copied = conn.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchone()
                    if not busy and copied == log_frames:
                        # Durable commits meanwhile may have set them higher: never lower them.
                        self._fsynced = max(self._fsynced, mark)
                        self._checkpointed = max(self._checkpointed, mark)
                        self._last_checkpoint = now
                        return True
                if mark <= self._fsynced:
                    return False
                if self._fsync_log():
                    self._fsynced = max(self._fsynced, mark)
                    return True
                # A commit under synchronous=FULL fsyncs the log up to its end, so it needs a
                # frame of its own: a counter that changes (SQLite skips writing a row
                # rewritten as it was).
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('syncs', 1)"
                        " ON CONFLICT (key) DO UPDATE SET value = value + 1"
                    )
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise self._error("cannot sync", exc) from None
        self._fsynced = max(self._fsynced, mark)
        return True

    def checkpoint_due(self) -> bool:
        """The next ``sync`` checkpoints (see ``sync``): the owner must not write meanwhile."""
        return self._commits > self._checkpointed and (
            self._commits - self._checkpointed >= CHECKPOINT_COMMITS
            or self._clock.monotonic() - self._last_checkpoint >= CHECKPOINT_S
        )

    def _fsync_log(self) -> bool:
        """Fsync the write-ahead log's file directly; False when there is none to fsync.

        An fsync writes out every page of the file, whichever descriptor wrote it, and needs
        no lock of SQLite's, so the owner may go on committing meanwhile. The log keeps its
        file (and so its descriptor stays good) while any connection is open: ``sync``'s own
        connection is, for as long as this descriptor lives.
        """
        if self._wal_fd is None:
            try:
                self._wal_fd = os.open(
                    self.path.with_name(self.path.name + "-wal"), os.O_RDONLY | os.O_CLOEXEC
                )
            except FileNotFoundError:
                return False  # no log (WAL unavailable): the durable commit does it
            except OSError as exc:
                raise sqlite3.OperationalError(f"cannot open the log: {exc}") from None
        try:
            os.fsync(self._wal_fd)
        except OSError as exc:
            raise sqlite3.OperationalError(f"cannot fsync the log: {exc}") from None
        return True

    def _open_sync_connection(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            conn.execute("PRAGMA busy_timeout=2000")
            # FULL: its commit fsyncs the log (a checkpoint fsyncs under NORMAL already).
            conn.execute("PRAGMA synchronous=FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    def check(self, messages: Sequence[NewMessage]) -> list[_Row]:
        """The messages as ``append_all`` would store them; ``ValueError`` when one is wrong or
        together they are larger than the whole outbox. Writes nothing."""
        rows = [self._row(m) for m in messages]
        total = sum(row[-1] for row in rows)
        if total > self.max_bytes:
            raise ValueError(
                f"{len(rows)} message(s) of {total} bytes are larger than the whole outbox "
                f"(max_bytes={self.max_bytes})"
            )
        return rows

    def _insert(self, row: _Row) -> OutboxEntry:
        topic, payload, qos, retain, kind, when, size = row
        cur = self._conn.execute(
            "INSERT INTO messages (topic, payload, qos, retain, kind, precedence,"
            " created_at, size) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                topic,
                payload,
                qos,
                int(retain),
                kind.value,
                _PRECEDENCE[kind],
                when.timestamp(),
                size,
            ),
        )
        new_id = cur.lastrowid
        assert new_id is not None
        self._depth += 1
        self._bytes += size
        self._inserted += 1
        return OutboxEntry(
            id=new_id,
            topic=topic,
            payload=payload,
            qos=qos,
            retain=retain,
            kind=kind,
            created_at=when.astimezone(UTC),
            attempts=0,
            from_earlier_run=False,
        )

    def _row(self, m: NewMessage) -> _Row:
        """A message checked and completed for its INSERT; ``ValueError`` when it is wrong."""
        if not m.topic:
            raise ValueError("topic must not be empty")
        if m.qos not in (1, 2):
            # The entry leaves the outbox on the broker's acknowledgement, which QoS 0 lacks.
            raise ValueError(f"qos must be 1 or 2 for a queued message, got {m.qos}")
        payload = bytes(m.payload)
        when = m.created_at if m.created_at is not None else self._clock.wall()
        if when.tzinfo is None:
            raise ValueError("created_at must be timezone-aware")
        size = _size(m.topic, payload)
        if size > self.max_bytes:
            raise ValueError(
                f"message of {size} bytes is larger than the whole outbox (max_bytes="
                f"{self.max_bytes})"
            )
        return (m.topic, payload, m.qos, m.retain, MessageKind(m.kind), when, size)

    def pending(self, limit: int = 100, *, after: int = 0) -> list[OutboxEntry]:
        """Up to ``limit`` unacknowledged entries with an id above ``after``, oldest first."""
        try:
            rows = self._conn.execute(
                "SELECT id, topic, payload, qos, retain, kind, created_at, attempts FROM messages"
                " WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        except sqlite3.Error as exc:
            raise self._error("cannot read", exc) from None
        return [
            OutboxEntry(
                id=int(r[0]),
                topic=str(r[1]),
                payload=bytes(r[2]),
                qos=int(r[3]),
                retain=bool(r[4]),
                kind=MessageKind(r[5]),
                created_at=datetime.fromtimestamp(float(r[6]), UTC),
                attempts=int(r[7]),
                from_earlier_run=int(r[0]) <= self._last_id_at_open,
            )
            for r in rows
        ]

    def publishable(self, limit: int = 100, *, after: int = 0) -> list[Publishable]:
        """``pending`` as the pump needs it: what to publish, and how to remove it after."""
        try:
            rows = self._conn.execute(
                "SELECT id, topic, payload, qos, retain, attempts, size FROM messages"
                " WHERE id > ? ORDER BY id LIMIT ?",
                (after, limit),
            ).fetchall()
        except sqlite3.Error as exc:
            raise self._error("cannot read", exc) from None
        last_run = self._last_id_at_open
        # The columns come back as the schema's types: no conversion per row.
        return [
            Publishable(r[0], r[1], r[2], r[3], bool(r[4]), r[5] > 0 or r[0] <= last_run, r[6])
            for r in rows
        ]

    def ack(self, entry_id: int) -> bool:
        """The broker acknowledged the entry: remove it. False if it was not there (any more)."""
        with self._transaction(durable=False, doing="ack"):
            # No DELETE ... RETURNING: it needs SQLite 3.35, newer than some kits' OS.
            row = self._conn.execute(
                "SELECT size FROM messages WHERE id = ?", (entry_id,)
            ).fetchone()
            if row is None:
                return False
            self._conn.execute("DELETE FROM messages WHERE id = ?", (entry_id,))
            self._depth -= 1
            self._bytes -= int(row[0])
        return True

    def ack_all(self, entries: Sequence[Publishable | OutboxEntry]) -> int:
        """The broker acknowledged these entries: remove them in one transaction; returns how
        many were there (an entry a bound dropped meanwhile is not)."""
        removed = 0
        if not entries:
            return removed
        with self._transaction(durable=False, doing="ack"):
            for start in range(0, len(entries), _CHUNK):
                chunk = entries[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                cur = self._conn.execute(
                    f"DELETE FROM messages WHERE id IN ({marks})", [e.id for e in chunk]
                )
                removed += cur.rowcount
            if removed == len(entries):
                # The sizes are known: no SELECT before the DELETE (RETURNING needs SQLite
                # 3.35, newer than some kits' OS).
                self._depth -= removed
                self._bytes -= sum(e.size for e in entries)
            else:
                # A bound dropped some meanwhile (rare): count again.
                depth, size = self._conn.execute(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages"
                ).fetchone()
                self._depth, self._bytes = int(depth), int(size)
        return removed

    def mark_attempted(self, entry_id: int) -> bool:
        """Record that a publish of the entry is being tried, before trying it.

        A later publish of the same entry is then a resend (``OutboxEntry.is_resend``). False
        if the entry is not there (any more).
        """
        with self._transaction(durable=False, doing="mark attempted"):
            cur = self._conn.execute(
                "UPDATE messages SET attempts = attempts + 1 WHERE id = ?", (entry_id,)
            )
            return cur.rowcount > 0

    def prune(self) -> int:
        """Drop every entry older than ``max_age_s``; returns how many went."""
        before = self._dropped[DropReason.AGE]
        with self._transaction(durable=False, doing="prune"):
            self._prune_in_txn(keep_from=_NO_ID)
        return self._dropped[DropReason.AGE] - before

    # -- the job ledger (see job_ledger) -----------------------------------------------------

    def job(self, job_id: str) -> JobRecord | None:
        """What the ledger knows of ``job_id``: None for an id this kit never ran."""
        try:
            return job_ledger.lookup(self._conn, job_id)
        except sqlite3.Error as exc:
            raise self._error("cannot read the job ledger", exc) from None

    def begin_job(self, job_id: str, started_at: datetime) -> bool:
        """Record, durably, that ``job_id`` is about to run; False if the id is known already.

        Ids past the ledger's bounds are forgotten in the same transaction.
        """
        with self._transaction(durable=True, doing="record the job's start"):
            self._prune_jobs_in_txn()
            return job_ledger.record_start(self._conn, job_id, started_at.timestamp())

    def forget_job(self, job_id: str) -> None:
        """Take back ``begin_job`` for a job that could not start after all (never a settled
        one), so that its id stays usable."""
        with self._transaction(durable=True, doing="forget the job's start"):
            job_ledger.forget(self._conn, job_id)

    def settle_job(self, job_id: str) -> None:
        """Mark ``job_id`` settled without queueing anything: its result went out from memory
        while the disk refused it (``append_all(..., settles=...)`` is the usual way)."""
        with self._transaction(durable=True, doing="record the job's end"):
            job_ledger.record_settled(self._conn, job_id, self._clock.wall().timestamp())

    # -- gauges and counters -----------------------------------------------------------------

    def depth(self) -> int:
        """Entries waiting for an acknowledgement."""
        return self._depth

    @property
    def inserted(self) -> int:
        """Entries this object stored since it was opened (whatever became of them)."""
        return self._inserted

    def bytes(self) -> int:
        """Their size as counted against ``max_bytes`` (topic plus payload)."""
        return self._bytes

    def oldest_age_s(self) -> float:
        """Seconds since the oldest waiting entry was created; 0.0 when none is waiting."""
        try:
            row = self._conn.execute("SELECT MIN(created_at) FROM messages").fetchone()
        except sqlite3.Error as exc:
            raise self._error("cannot read", exc) from None
        if row is None or row[0] is None:
            return 0.0
        # A wall clock stepped backwards must not show a negative age.
        return max(0.0, self._clock.wall().timestamp() - float(row[0]))

    @property
    def dropped_total(self) -> dict[DropReason, int]:
        """Entries a bound dropped, by reason, over the life of the file."""
        return dict(self._dropped)

    # -- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        with self._sync_lock:
            if self._wal_fd is not None:
                os.close(self._wal_fd)
                self._wal_fd = None
            if self._sync_conn is not None:
                self._sync_conn.close()
                self._sync_conn = None
        self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- inside a transaction ----------------------------------------------------------------

    @contextlib.contextmanager
    def _transaction(self, *, durable: bool, doing: str) -> Iterator[None]:
        conn = self._conn
        try:
            # synchronous can only change outside a transaction; it applies to the next commit.
            mode = "FULL" if durable else "NORMAL"
            if mode != self._synchronous:
                conn.execute(f"PRAGMA synchronous={mode}")
                self._synchronous = mode
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise self._error(f"cannot {doing}", exc) from None
        saved = (self._depth, self._bytes, dict(self._dropped), self._inserted)
        try:
            yield
            conn.execute("COMMIT")
            self._commits += 1
            if durable:
                self._fsynced = self._commits
        except BaseException as exc:
            # The in-memory gauges follow the database: undo them with the transaction.
            self._depth, self._bytes, self._dropped, self._inserted = saved
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._error(f"cannot {doing}", exc) from None
            raise

    def _prune_jobs_in_txn(self) -> None:
        job_ledger.prune(
            self._conn,
            now=self._clock.wall().timestamp(),
            max_age_s=self.max_job_age_s,
            max_ids=self.max_job_ids,
        )

    def _prune_in_txn(self, *, keep_from: int) -> None:
        cutoff = self._clock.wall().timestamp() - self.max_age_s
        # "+id": the id bound must not be used as an index, or SQLite walks the rowid range
        # (every older entry, on every append) instead of the few expired ones in created_at.
        n, size = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM messages"
            " WHERE created_at < ? AND +id < ?",
            (cutoff, keep_from),
        ).fetchone()
        if not n:
            return
        self._conn.execute(
            "DELETE FROM messages WHERE created_at < ? AND +id < ?", (cutoff, keep_from)
        )
        self._depth -= int(n)
        self._bytes -= int(size)
        self._count_drops(DropReason.AGE, int(n))

    def _over_bounds(self) -> bool:
        return self._depth > self.max_messages or self._bytes > self.max_bytes

    def _enforce_space(self, *, keep_from: int) -> None:
        if not self._over_bounds():
            return
        victims: dict[DropReason, list[int]] = {DropReason.COUNT: [], DropReason.BYTES: []}
        # Events oldest first, then results oldest first; the new entries (ids from keep_from
        # on) are never victims, and max_bytes >= their size (checked in append_all) so they
        # alone always fit.
        for precedence in sorted(set(_PRECEDENCE.values())):
            if not self._over_bounds():
                break
            cur = self._conn.execute(
                "SELECT id, size FROM messages WHERE precedence = ? AND id < ? ORDER BY id",
                (precedence, keep_from),
            )
            try:
                for entry_id, size in cur:
                    if self._depth > self.max_messages:
                        reason = DropReason.COUNT
                    elif self._bytes > self.max_bytes:
                        reason = DropReason.BYTES
                    else:
                        break
                    victims[reason].append(int(entry_id))
                    self._depth -= 1
                    self._bytes -= int(size)
            finally:
                cur.close()
        for reason, ids in victims.items():
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                self._conn.execute(f"DELETE FROM messages WHERE id IN ({marks})", chunk)
            self._count_drops(reason, len(ids))

    def _count_drops(self, reason: DropReason, n: int) -> None:
        if n == 0:
            return
        self._dropped[reason] += n
        self._conn.execute(
            "INSERT INTO dropped (reason, total) VALUES (?, ?)"
            " ON CONFLICT (reason) DO UPDATE SET total = total + excluded.total",
            (reason.value, n),
        )
        # A full outbox drops on every append while the broker stays away: one line a minute
        # with the running totals, not one per message (the counters are there for metrics).
        now = self._clock.monotonic()
        if now >= self._next_drop_log:
            self._next_drop_log = now + DROP_LOG_INTERVAL_S
            _log.warning(
                "outbox bound dropped messages reason=%s count=%d dropped_total=%s depth=%d "
                "bytes=%d",
                reason.value,
                n,
                ",".join(f"{r.value}:{t}" for r, t in self._dropped.items()),
                self._depth,
                self._bytes,
            )


def _empty_beside_a_log(path: Path) -> bool:
    """The database file is empty while its ``-wal`` file is not: damage, never a fresh file.

    SQLite writes a new database's first page before its first log frame, so an empty file
    with a log beside it is what a crash of the filesystem (or a full disk) leaves.
    """
    try:
        return path.stat().st_size == 0 and path.with_name(path.name + "-wal").stat().st_size > 0
    except OSError:
        # No log, or a file that cannot be looked at: connecting says what is wrong.
        return False


def _fsync_dir(directory: Path) -> None:
    """Make a file's creation or renaming in ``directory`` durable (POSIX needs the dir fsynced)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        # Some filesystems refuse fsync on a directory; the data itself is still synced.
        pass
    finally:
        os.close(fd)
