"""`streetorder cases|outbox|evidence|db|report`: the ledger's sub-commands. Heavy imports stay inside them."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

EPILOG = "The database is --db, else $STREETORDER_DB, else the ledger config's database_url, else sqlite:///var/streetorder.db."


def add_ledger_args(p: argparse.ArgumentParser) -> None:
    """`--ledger` and `--db`, the same in every command that opens the ledger (`--config` is always the camera config)."""
    p.add_argument("--ledger", metavar="YAML", help="ledger config (default: $STREETORDER_LEDGER_CONFIG, else built-in defaults: SQLite var/streetorder.db, evidence in var/evidence)")
    p.add_argument("--db", metavar="URL", help="ledger database: sqlite:///FILE or postgresql://USER@HOST:PORT/DB (overrides the ledger config)")


_common = add_ledger_args


def _config(args: argparse.Namespace):
    from .config import LedgerConfig

    return LedgerConfig.load(args.ledger, database_url=args.db)


def _store(args: argparse.Namespace):
    from .store import CaseStore

    return CaseStore.open(_config(args))


def _time(value: str) -> datetime:
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {value!r} (e.g. 2026-11-05T14:00+08:00)") from None
    if t.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no time zone; add one, e.g. +08:00 or Z")
    return t


def _print_cases(cases, as_json: bool) -> None:
    if as_json:
        for c in cases:
            print(c.model_dump_json(), flush=True)
        return
    for c in cases:
        deadline = f" due {c.deadline_at:%Y-%m-%d %H:%M}Z" if c.deadline_at and c.status == "dispatched" else ""
        flags = (" escalated" if c.escalated_at else "") + (f" relapsed×{c.relapse_count}" if c.relapse_count else "")
        print(f"{c.id:>6} {c.status:<10} {c.type:<17} {c.location.district}/{c.location.point} owner={c.owner or '-'}{deadline}{flags}")
    sys.stdout.flush()  # the rows first, then the count, even when both streams go to one file
    print(f"\n{len(cases)} case(s)", file=sys.stderr)


# ---- cases ------------------------------------------------------------------------------------------


def cmd_post(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from ..domain import IncidentReport
    from .errors import LedgerError

    store = _store(args)
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        items = [(i + 1, json.dumps(x)) for i, x in enumerate(json.loads(stripped))]
    else:
        items = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    failed = 0
    for n, raw in items:
        try:
            report = IncidentReport.model_validate_json(raw)
            r = store.post_incident(report)
        except (ValidationError, LedgerError) as e:
            failed += 1
            print(f"{args.file}:{n}: {e}", file=sys.stderr)
            continue
        what = "created" if r.created else "reopened" if r.reopened else "merged" if r.merged else "updated" if r.changed else "unchanged"
        print(f"{report.incident_id} -> case {r.case_id} {what}", flush=True)
    if failed:
        print(f"{failed} incident(s) failed", file=sys.stderr)
    return 1 if failed else 0


def cmd_list(args: argparse.Namespace) -> int:
    cases = _store(args).list(status=args.status, type=args.type, district=args.district, point=args.point, camera_id=args.camera, limit=args.limit)
    _print_cases(cases, args.json)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    c = _store(args).get(args.case_id)
    if args.json:
        print(c.model_dump_json(indent=2))
        return 0
    loc = c.location
    print(f"case {c.id}: {c.type} at {loc.district} {loc.street} {loc.point} — {c.status} (revision {c.revision})")
    print(f"  severity {c.severity}, count {c.count}, score {c.score:.2f}; camera {c.camera_id or '-'}; owner {c.owner or '-'}")
    print(f"  first seen {c.first_seen.isoformat()}, last seen {c.last_seen.isoformat()}; deadline {c.deadline_at.isoformat() if c.deadline_at else '-'}")
    print(f"  relapses {c.relapse_count}, escalations {c.escalation_count}; incidents: {', '.join(c.incident_ids)}")
    for e in c.evidence:
        print(f"  evidence {e.kind:<10} {e.sha256}{' (purged)' if e.purged else ''}")
    for e in c.history:
        move = f"{e.from_status or '∅'} → {e.to_status}" if e.from_status != e.to_status else f"{e.kind} ({e.to_status})"
        print(f"  {e.at.isoformat()}  {move:<26} by {e.actor}{': ' + e.note if e.note else ''}")
    return 0


def cmd_transition(args: argparse.Namespace) -> int:
    if args.fixture:
        # the review decision the page and the API take; it needs the camera config, so it lives above the ledger
        from ..config.source import ConfigSource
        from ..review.decisions import reject

        if args.status != "rejected" or not args.config:
            raise ValueError("--fixture goes with status 'rejected' and --config (the camera config whose fixtures file gets the spot)")
        done = reject(_store(args), args.case_id, actor=args.actor, reason=args.note or "", fixture_source=ConfigSource(args.config), source="cli")
        print(done.message())
        return 0
    c = _store(args).transition(args.case_id, args.status, actor=args.actor, note=args.note, after_photo=Path(args.after_photo) if args.after_photo else None, owner=args.owner, source="cli")
    print(f"case {c.id} is now {c.status}" + (f", due {c.deadline_at.isoformat()}" if c.status == "dispatched" and c.deadline_at else ""))
    return 0


def cmd_overdue(args: argparse.Namespace) -> int:
    _print_cases(_store(args).overdue(args.at or datetime.now(UTC)), args.json)
    return 0


# ---- outbox, evidence, db, report -------------------------------------------------------------------


def cmd_deliver(args: argparse.Namespace) -> int:
    from .delivery import outbox_worker

    store = _store(args)
    worker = outbox_worker(store.db, store.config)
    while True:
        stats = worker.deliver_pending(datetime.now(UTC))
        if stats.sent or stats.failed or stats.dead or args.once:
            print(f"sent {stats.sent}, failed {stats.failed} (will retry), dead {stats.dead}", flush=True)
        if args.once:
            return 0 if not (stats.failed or stats.dead) else 1
        time.sleep(args.interval)


def cmd_outbox_status(args: argparse.Namespace) -> int:
    from ..db.engine import Database
    from .outbox import counts

    cfg = _config(args)
    for (channel, status), n in sorted(counts(Database(cfg.database_url, auto_upgrade=cfg.auto_upgrade)).items()):
        print(f"{channel:<8} {status:<10} {n}")
    return 0


def cmd_requeue(args: argparse.Namespace) -> int:
    from ..db.engine import Database
    from .outbox import requeue_dead

    cfg = _config(args)
    n = requeue_dead(Database(cfg.database_url, auto_upgrade=cfg.auto_upgrade), datetime.now(UTC), args.channel)
    print(f"requeued {n} dead message(s)")
    return 0


def cmd_gc(args: argparse.Namespace) -> int:
    from .retention import apply_retention

    r = apply_retention(_store(args), datetime.now(UTC), dry_run=args.dry_run)
    verb = "would purge" if args.dry_run else "purged"
    print(f"{verb} {r.purged_refs} reference(s) of {len(r.purged_cases)} case(s) past retention")
    print(f"{'would delete' if args.dry_run else 'deleted'} {len(r.gc.deleted)} unreferenced file(s); kept {r.gc.kept} referenced, {r.gc.young_orphans} recent unreferenced")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from ..db.engine import create_ledger_engine, current_revision, upgrade
    from ..db.urls import redact

    cfg = _config(args)
    engine = create_ledger_engine(cfg.database_url)
    before = current_revision(engine)
    upgrade(engine, args.revision)
    print(f"{redact(cfg.database_url)}: {before or 'empty'} → {current_revision(engine)}")
    return 0


def cmd_db_current(args: argparse.Namespace) -> int:
    from ..db.engine import create_ledger_engine, current_revision, head_revision
    from ..db.urls import redact

    cfg = _config(args)
    cur = current_revision(create_ledger_engine(cfg.database_url))
    head = head_revision()
    print(f"{redact(cfg.database_url)}: {cur or 'empty'} (head {head}{', up to date' if cur == head else ', needs upgrade'})")
    return 0


def cmd_outages(args: argparse.Namespace) -> int:
    """Camera outages (`pipeline.live.outages`): the blind points, now or in the past."""
    import json
    from dataclasses import asdict

    from ..live.outages import CameraOutages

    store = _store(args)
    try:
        rows = CameraOutages(store.db).list(open_only=args.open, camera_id=args.camera)
        for o in rows:
            if args.json:
                print(json.dumps({**asdict(o), "dark_s": round(o.dark_s)}, default=str, ensure_ascii=False))
            else:
                until = f"{o.ended_at:%Y-%m-%d %H:%M}Z" if o.ended_at else "now (dark)"
                print(f"{o.camera_id:<16} {o.district}/{o.point} owner={o.owner or '-'}  {o.down_since:%Y-%m-%d %H:%M}Z → {until}  {o.dark_s / 3600:.1f} h  {o.error or ''}")
        print(f"\n{len(rows)} outage(s)", file=sys.stderr)
        return 0
    finally:
        store.close()


def cmd_quarantine(args: argparse.Namespace) -> int:
    """List, re-post or drop incident reports the ledger refused (the service quarantines them)."""
    from ..db.quarantine import get_quarantined, quarantined, release, report_of

    store = _store(args)
    try:
        if args.action == "list":
            rows = quarantined(store.db, limit=args.limit)
            for q in rows:
                print(q.model_dump_json() if args.json else f"{q.id:>6} {q.quarantined_at:%Y-%m-%d %H:%M}Z {q.incident_id}  {q.error_type}: {q.reason.splitlines()[0] if q.reason else ''}", flush=True)
            print(f"\n{len(rows)} quarantined report(s)", file=sys.stderr)
            return 0
        if args.id is None:
            raise ValueError(f"give the quarantine id: streetorder cases quarantine {args.action} ID (see: streetorder cases quarantine list)")
        q = get_quarantined(store.db, args.id)
        if args.action == "retry":  # after fixing the cause; fails again, with the reason, if it is not fixed
            post = store.post_incident(report_of(q))
            release(store.db, q.id)
            print(f"quarantined report {q.id} posted: case {post.case_id} ({'created' if post.created else 'updated'})")
        else:
            release(store.db, q.id)
            print(f"quarantined report {q.id} ({q.incident_id}) dropped")
        return 0
    finally:
        store.close()


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    html, csv_path = write_report(_store(args), args.month, Path(args.out))
    print(html)
    print(csv_path)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ledger's commands to the `streetorder` sub-command parser."""
    from ..domain import VIOLATION_TYPES
    from .lifecycle import TRANSITIONS, CaseStatus

    statuses = [st.value for st in CaseStatus]
    fmt = argparse.RawDescriptionHelpFormatter

    cases = sub.add_parser("cases", help="the rectification ledger: post, list, show and move cases", description="Work with cases in the rectification ledger (整改台账).", epilog=EPILOG)
    csub = cases.add_subparsers(dest="cases_command", required=True, metavar="ACTION")

    p = csub.add_parser("post", help="post incident reports (JSON lines or a JSON array)", description="Post incidents from the violation engine. Re-posting an incident id updates its case; an incident at the spot of an open case joins it. Bad lines are reported with their line number; the exit status is 1 if any failed.", epilog=EPILOG)
    p.add_argument("file", help="file of IncidentReport JSON (one per line, or an array); - for stdin")
    _common(p)
    p.set_defaults(func=cmd_post)

    p = csub.add_parser("list", help="list cases, filtered", description="List cases, oldest first. --status rejected lists the false positives for retraining.", epilog=EPILOG)
    p.add_argument("--status", choices=statuses)
    p.add_argument("--type", choices=VIOLATION_TYPES)
    p.add_argument("--district")
    p.add_argument("--point", help="point (点位) name or id")
    p.add_argument("--camera", help="camera id")
    p.add_argument("--limit", type=int)
    p.add_argument("--json", action="store_true", help="one JSON object per case, with evidence and history")
    _common(p)
    p.set_defaults(func=cmd_list)

    p = csub.add_parser("show", help="one case with its evidence and full history", epilog=EPILOG)
    p.add_argument("case_id", type=int)
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(func=cmd_show)

    moves = "\n".join(f"  {st} → {' | '.join(sorted(TRANSITIONS[st])) or '(final)'}" for st in CaseStatus)
    p = csub.add_parser(
        "transition",
        help="move a case along the workflow",
        formatter_class=fmt,
        description=f"Move a case to STATUS. Allowed moves:\n{moves}\n"
        "Dispatching needs an owner (the case's or --owner) and sets the deadline; rectifying needs --after-photo or --note; "
        "rejecting needs --note (the reason, kept for retraining).",
        epilog=EPILOG,
    )
    p.add_argument("case_id", type=int)
    p.add_argument("status", choices=statuses)
    p.add_argument("--actor", required=True, help="who does it (a person's id or name)")
    p.add_argument("--note", help="comment; the reason when rejecting")
    p.add_argument("--after-photo", metavar="FILE", help="photo after rectification (→ rectified)")
    p.add_argument("--owner", help="point owner (点位长) to dispatch to, if not the case's")
    p.add_argument("--fixture", action="store_true", help="with rejected: also mark the case's spot as a fixture of its camera, as the review page does")
    p.add_argument("--config", metavar="YAML", help="with --fixture: the camera config (its fixtures_file gets the new fixtures)")
    _common(p)
    p.set_defaults(func=cmd_transition)

    p = csub.add_parser("overdue", help="dispatched cases past their deadline", description="List dispatched cases whose deadline has passed, most overdue first.", epilog=EPILOG)
    p.add_argument("--at", type=_time, help="as of this ISO time with zone (default: now)")
    p.add_argument("--json", action="store_true")
    _common(p)
    p.set_defaults(func=cmd_overdue)

    p = csub.add_parser(
        "outages", help="cameras whose stream went dark (the service writes them): when, where, for how long",
        description="Each row is one outage of a streamed camera: down longer than its stream's offline_after_s, written once by "
        "`streetorder serve` and closed by the camera's next picture. Newest first; --open lists the points that are blind now.", epilog=EPILOG,
    )
    p.add_argument("--open", action="store_true", help="only outages not over yet")
    p.add_argument("--camera", help="only this camera")
    p.add_argument("--json", action="store_true", help="one JSON object per outage")
    _common(p)
    p.set_defaults(func=cmd_outages)

    p = csub.add_parser(
        "quarantine", help="incident reports the ledger refused: list, retry or drop them",
        description="The live service quarantines a report the ledger refuses (invalid data) instead of letting it block the reports queued behind it. "
        "List them with the reason; after fixing the cause, `retry ID` posts one again; `drop ID` removes it for good.", epilog=EPILOG,
    )
    p.add_argument("action", choices=["list", "retry", "drop"])
    p.add_argument("id", type=int, nargs="?", help="quarantine id (retry, drop)")
    p.add_argument("--limit", type=int, default=200)
    p.add_argument("--json", action="store_true", help="list: one JSON object per report, with its payload")
    _common(p)
    p.set_defaults(func=cmd_quarantine)

    outbox = sub.add_parser("outbox", help="deliver case events to the city's case system (webhook, MQTT)", description="The transactional outbox of case events.", epilog=EPILOG)
    osub = outbox.add_subparsers(dest="outbox_command", required=True, metavar="ACTION")
    p = osub.add_parser("deliver", help="send pending messages, retrying with backoff", description="Deliver pending outbox messages through the configured webhook and MQTT channels. Runs until interrupted unless --once.", epilog=EPILOG)
    p.add_argument("--once", action="store_true", help="one delivery round, then exit (status 1 if anything failed)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between rounds (default 5)")
    _common(p)
    p.set_defaults(func=cmd_deliver)
    p = osub.add_parser("status", help="message counts per channel and status", epilog=EPILOG)
    _common(p)
    p.set_defaults(func=cmd_outbox_status)
    p = osub.add_parser("requeue", help="retry dead messages from scratch", description="Give dead messages (out of attempts) a fresh start, e.g. after fixing the receiver's URL or secret.", epilog=EPILOG)
    p.add_argument("--channel", choices=["webhook", "mqtt"])
    _common(p)
    p.set_defaults(func=cmd_requeue)

    evidence = sub.add_parser("evidence", help="the content-addressed evidence store", epilog=EPILOG)
    esub = evidence.add_subparsers(dest="evidence_command", required=True, metavar="ACTION")
    p = esub.add_parser("gc", help="apply retention and delete unreferenced files", description="Purge evidence references of cases closed longer than retention.closed_days, then delete stored files no case references (older than retention.orphan_grace_s). Referenced files are never deleted.", epilog=EPILOG)
    p.add_argument("--dry-run", action="store_true", help="report what would happen, change nothing")
    _common(p)
    p.set_defaults(func=cmd_gc)

    db = sub.add_parser("db", help="ledger database migrations", epilog=EPILOG)
    dsub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    p = dsub.add_parser("upgrade", help="run Alembic migrations (to head by default)", epilog=EPILOG)
    p.add_argument("--revision", default="head")
    _common(p)
    p.set_defaults(func=cmd_db_upgrade)
    p = dsub.add_parser("current", help="show the database's migration revision", epilog=EPILOG)
    _common(p)
    p.set_defaults(func=cmd_db_current)

    p = sub.add_parser(
        "report",
        help="monthly report per district and point (HTML with thumbnails, and CSV)",
        description="Write report-MONTH.html (with evidence thumbnails) and report-MONTH.csv: new, open, overdue, closed and relapsed cases and the median time to rectify, per district and point, with the monthly district ranking (score = open + relapsed, lower is better), and each district's dark cameras (outages, camera-hours dark, still dark; not ranked).",
        epilog=EPILOG,
    )
    p.add_argument("--month", required=True, help="YYYY-MM, in the config's report_timezone (default Asia/Shanghai)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    _common(p)
    p.set_defaults(func=cmd_report)
