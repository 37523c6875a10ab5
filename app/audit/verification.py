"""Verification: one pass over the log checks the chain, the money and every read model; and
the re-run of one settlement from the books before it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.exc import InterfaceError, OperationalError

from app.audit import limits
from app.audit.books_paged import PagedBooks
from app.audit.chain import ChainCheck, SqlChainCheck, iter_audit_rows
from app.audit.fees import FeeCheck, FeeRule
from app.audit.payable import PayableCheck, payable_then
from app.audit.report import Report, unreplayable
from projections.background import BackgroundWrites, background_writes, read_ahead
from projections.base import RowWriter, paused_gc
from projections.runner import PROJECTIONS, apply_notifications, catch_up, read_batches, replay_batch
from projections.shadow import Shadow
from projections.tables import audit_log, projection_positions

if TYPE_CHECKING:  # pragma: nocover
    from sqlalchemy.engine import Connection, Engine

    from app.audit.chain import Link
    from domain.payable import PayableRule
    from domain.services import Marketplace
    from domain.settlement import Settlement


def verify(
    app: Marketplace,
    engine: Engine,
    progress: Callable[[str, int], None] | None = None,
    payable: PayableRule | None = None,
    fees: FeeRule | None = None,
) -> Report:
    """Replay the whole log once, in one transaction that is rolled back at the end.

    The transaction reads one snapshot (REPEATABLE READ on PostgreSQL) of every read model and
    its position, so projections, settlements and the audit API go on meanwhile, unblocked.
    Each batch of the log feeds (1) the money fold, its summaries paged in from and out to tables
    of this transaction (:class:`PagedBooks`), and (2) every read model, rebuilt into shadow
    tables (projections.shadow) up to the position the snapshot shows; each shadow table is then
    compared with the live one, row for row, in SQL. (3) The hash chain up to the audit log's
    head in the snapshot is checked meanwhile: by PostgreSQL in one statement on a second
    connection (:class:`SqlChainCheck`, on the other core), or on SQLite by :class:`ChainCheck`
    fed the same batches. Its breaches come first in the report: they name the cause of the rest.
    (4) With ``payable`` (the settings' rule), no settlement took a part before it was payable;
    with ``fees``, every allocation's rate was in force for its seller (app.audit.fees).
    Progress: ``progress("replay", events)`` per batch, ``progress("compare", 1)`` per table.
    """
    report = Report()
    report.compared_with = _last_verified_head(app, engine)
    payable_check = PayableCheck(payable) if payable is not None else None
    fee_check = FeeCheck(fees) if fees is not None else None
    checks = [check for check in (payable_check, fee_check) if check is not None]
    projections = [cls() for name, cls in sorted(PROJECTIONS.items()) if name != "audit_log"]
    with paused_gc(), ThreadPoolExecutor(max_workers=1) as pool, engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin() as transaction:
            positions = dict(
                conn.execute(select(projection_positions.c.name, projection_positions.c.position)).all()
            )
            last = conn.execute(
                select(audit_log.c.position, audit_log.c.hash).order_by(audit_log.c.position.desc()).limit(1)
            ).first()
            if last is not None:
                report.head = (last.position, last.hash)
            _check_verified_head(conn, report)
            audit_stop = positions.get("audit_log", 0)
            head = app.recorder.max_notification_id() or 0
            chain_sql: SqlChainCheck | None = None
            chain_check: ChainCheck | None = None
            finish_chain: Callable[[], tuple[list[Link], int]]
            if postgres:
                chain_sql = SqlChainCheck(engine, _events_table(app), audit_stop, report.head[0])
                finish_chain = pool.submit(chain_sql.run).result
            else:
                chain_check = ChainCheck(iter_audit_rows(conn, report.head[0]), audit_stop)
                finish_chain = chain_check.finish
            try:
                _replay(app, conn, projections, positions, head, chain_check, report, progress, checks)
                links, chained = finish_chain()
            except BaseException:
                if chain_sql is not None:
                    chain_sql.cancel()
                raise
            transaction.rollback()
    report.breaches = ([breach for link in links for breach in link.breaches()] + report.breaches)[
        : limits.BREACH_LIMIT
    ]
    report.checked = {"chained events": chained, **report.checked}
    report.checked["events"] = head
    if payable_check is not None:
        report.checked["settled parts payable"] = payable_check.checked
    if fee_check is not None:
        report.checked["allocation fee rates"] = fee_check.checked
    return report


def _last_verified_head(app: Marketplace, engine: Engine) -> dict[str, Any] | None:
    from projections.history import latest_verification

    last = latest_verification(app, engine)
    if last is None or not last.head_position or last.head_hash is None:
        return None
    return {
        "verification_id": str(last.id),
        "completed_at": last.modified_on.isoformat(),
        "position": last.head_position,
        "hash": last.head_hash,
    }


def _check_verified_head(conn: Connection, report: Report) -> None:
    """The chain must still pass through the head the last verification saw: a history rewritten
    before it (and re-chained by a rebuild told to --accept-new-chain) shows here."""
    seen = report.compared_with
    if seen is None:
        return
    stored = conn.execute(select(audit_log.c.hash).where(audit_log.c.position == seen["position"])).scalar()
    if stored != seen["hash"]:
        report.breach(
            f"the audit log at position {seen['position']} no longer has the hash verification "
            f"{seen['verification_id']} ({seen['completed_at']}) recorded: history up to there was rewritten"
        )


def _events_table(app: Marketplace) -> str:
    """The stored events' table, schema-qualified, for the chain check's join (PostgreSQL only)."""
    from eventsourcing.postgres import PostgresApplicationRecorder

    recorder = app.recorder
    if not isinstance(recorder, PostgresApplicationRecorder):
        raise TypeError(f"{type(recorder).__name__} keeps no events table to join")
    return recorder.events_table_name


def _replay(
    app: Marketplace,
    conn: Connection,
    projections: list[Any],
    positions: dict[str, int],
    head: int,
    chain_check: ChainCheck | None,
    report: Report,
    progress: Callable[[str, int], None] | None,
    checks: list[PayableCheck | FeeCheck] | None = None,
) -> None:
    """verify's pass over the log (and, at the end, its comparisons), on its transaction."""
    with background_writes(conn) as background:
        books = PagedBooks(conn, background)
        shadow = Shadow(
            conn,
            [table for projection in projections for table in projection.tables]
            + list(books.TABLES.values()),
            unlogged=True,
        )
        if shadow.postgres:  # the comparison hashes whole tables: the default 4 MB spills them to disk
            conn.exec_driver_sql(f"SET LOCAL work_mem = '{limits.COMPARE_WORK_MEM}'")
        shadow.create()
        for projection in projections:
            projection.reset(conn)
        live = list(projections)
        for batch in read_ahead(read_batches(app, 0, head, limits.REPLAY_BATCH)):
            decoded = _decode(app, batch, chain_check, report)
            books.page_in(decoded.values())
            for event in decoded.values():
                try:
                    books.fold(event, report)
                    for check in checks or ():
                        check.feed(event, report)
                except Exception as error:  # noqa: BLE001  one that an edited or missing event breaks
                    unreplayable(
                        report, event.originator_id, event.originator_version, type(event).__qualname__, error
                    )
            if background is None or not _replay_together(
                app, conn, live, batch, positions, decoded, background
            ):
                _replay_apart(app, conn, live, batch, positions, decoded, report)
            books.page_out(report)
            if progress is not None:
                progress("replay", len(batch))
        books.finish(report)
    for projection in live:
        rows = 0
        for table in projection.tables:
            only_live, only_rebuilt, sample = shadow.differences(table)
            if only_live or only_rebuilt:
                report.breach(
                    f"read model {projection.name}: table {table.name} differs from a fresh rebuild "
                    f"({only_live} stored rows not in the rebuild, {only_rebuilt} rebuilt rows not stored; "
                    f"keys {', '.join(map(str, sample))})"
                )
            rows += shadow.live_rows(table)
            if progress is not None:
                progress("compare", 1)
        report.checked[f"read model {projection.name}"] = rows


def _decode(
    app: Marketplace, batch: Sequence[Any], chain_check: ChainCheck | None, report: Report
) -> dict[int, Any]:
    decoded: dict[int, Any] = {}
    for notification in batch:
        if chain_check is not None:
            chain_check.feed(notification)
        try:
            decoded[notification.id] = app.mapper.to_domain_event(notification)
        except Exception as error:  # noqa: BLE001  an edited event: report it, go on
            unreplayable(
                report,
                notification.originator_id,
                notification.originator_version,
                notification.topic.split(":", 1)[-1],
                error,
            )
    return decoded


def _replay_together(
    app: Marketplace,
    conn: Connection,
    live: list[Any],
    batch: Sequence[Any],
    positions: dict[str, int],
    decoded: dict[int, Any],
    background: BackgroundWrites,
) -> bool:
    """The batch into every read model under ONE savepoint, their rows stored in the background
    (projections.runner.replay_batch); False when something failed: then the savepoint is rolled
    back, for ``_replay_apart`` to find which (a log that replays is the common case)."""
    savepoint = conn.begin_nested()
    try:
        replay_batch(live, app, conn, batch, background, decoded, positions)
        background.wait()
    except (OperationalError, InterfaceError):  # the database, not the log: the run fails
        raise
    except Exception:  # noqa: BLE001  _replay_apart reports it
        background.discard()
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


def _replay_apart(
    app: Marketplace,
    conn: Connection,
    live: list[Any],
    batch: Sequence[Any],
    positions: dict[str, int],
    decoded: dict[int, Any],
    report: Report,
) -> None:
    """The batch into each read model in turn, under a savepoint of its own on PostgreSQL (which
    aborts the whole transaction on an error); one that fails is reported and left out."""
    for projection in list(live):
        writer = RowWriter(conn)
        try:
            with conn.begin_nested() if conn.dialect.name == "postgresql" else nullcontext():
                apply_notifications(
                    projection, app, writer, batch, positions.get(projection.name, 0), decoded
                )
                writer.flush()
        except (OperationalError, InterfaceError):  # the database, not the log: the run fails
            raise
        except Exception as error:  # noqa: BLE001  a log that no longer replays (edited events)
            first_line = (str(error).splitlines() or [""])[0][:300]
            report.breach(
                f"read model {projection.name}: cannot be rebuilt from the event log: "
                f"{type(error).__name__}: {first_line}"
            )
            live.remove(projection)


def recompute_settlement(
    app: Marketplace, engine: Engine, settlement_id: str, payable: PayableRule | None = None
) -> dict[str, Any]:
    """What the settlement should have taken, from the events before it, and the difference
    (with ``payable``: only parts payable when it was opened)."""
    settlement: Settlement = app.repository.get(UUID(settlement_id))
    catch_up(PROJECTIONS["audit_log"](), app, engine)
    with engine.connect() as conn:
        notification_id = conn.execute(
            select(audit_log.c.notification_id).where(
                audit_log.c.stream_id == str(settlement.id), audit_log.c.version == 1
            )
        ).scalar_one()
    end = datetime.fromisoformat(settlement.period_end)
    expected_allocations: dict[str, int] = {}
    expected_adjustments: dict[tuple[str, str], int] = {}
    # The books before it, paged through tables of a transaction that is rolled back (memory flat
    # in the length of the log, as in verify).
    with paused_gc(), engine.connect() as conn, conn.begin() as transaction:
        books = PagedBooks(conn)
        Shadow(conn, list(books.TABLES.values()), unlogged=True).create()
        books.replay(app, notification_id - 1)
        for allocation_id, a in books.allocations_of(settlement.seller_id, settlement.currency):
            due = a.settled_by is None and a.created_at.date() <= end.date()
            if due and (
                payable is None
                or payable_then(app, payable, allocation_id, a.created_at, settlement.created_on)
            ):
                expected_allocations[allocation_id] = a.owed
            for refund_id, adjustment in a.adjustments.items():
                if adjustment.by is None:
                    expected_adjustments[(allocation_id, refund_id)] = adjustment.amount
        transaction.rollback()
    total = sum(expected_allocations.values()) + sum(expected_adjustments.values())
    if total < 0:
        expected_adjustments = {}
        total = sum(expected_allocations.values())
    taken_allocations = {x["allocation_id"]: x["payout_amount"] for x in settlement.allocations}
    taken_adjustments = {(x["allocation_id"], x["refund_id"]): x["amount"] for x in settlement.adjustments}
    differences: list[dict[str, Any]] = [
        {"allocation_id": key, "expected": expected_allocations.get(key), "paid": taken_allocations.get(key)}
        for key in sorted(set(expected_allocations) | set(taken_allocations))
        if expected_allocations.get(key) != taken_allocations.get(key)
    ]
    differences.extend(
        {
            "allocation_id": key[0],
            "refund_id": key[1],
            "expected": expected_adjustments.get(key),
            "paid": taken_adjustments.get(key),
        }
        for key in sorted(set(expected_adjustments) | set(taken_adjustments))
        if expected_adjustments.get(key) != taken_adjustments.get(key)
    )
    return {
        "settlement_id": settlement_id,
        "expected_total_payout_amount": total,
        "paid_total_payout_amount": settlement.total_payout_amount,
        "differences": differences,
    }
