"""`streetorder serve` and `streetorder keys`: the live service's sub-commands. The web app is imported only when
`serve` runs."""

from __future__ import annotations

import argparse
import json
import sys

from pipeline.cases.cli import add_ledger_args
from pipeline.paths import REPO, SAMPLE_CONFIG


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn
    from sqlalchemy.exc import DBAPIError

    from pipeline.db.storage import StorageError
    from service.http import access_log
    from service.http.app import create_app
    from service.http.proxies import proxy_options
    from service.settings import ServiceSettings

    settings = ServiceSettings.load(
        camera_config=args.config, ledger_config=args.ledger, db=args.db, model=args.model, models_dir=args.models_dir,
        threads=args.threads, conf=args.conf, imgsz=args.imgsz, evidence_dir=args.evidence_dir, public_url=args.public_url,
        max_upload_bytes=args.max_upload_mb * 1024 * 1024 if args.max_upload_mb else None, persist_model=args.persist_model or None,
        insecure_open=args.insecure_open or None,
        journal=args.journal, key_cache=args.key_cache, max_clock_skew_s=args.max_clock_skew, latency_budget_s=args.latency_budget, forwarded_allow_ips=args.forwarded_allow_ips,
        ray_replicas=args.replicas,
    )
    if args.ray:
        return _serve_on_ray(settings, args)
    try:
        app = create_app(settings)
    except DBAPIError as e:
        raise ValueError(f"cannot open the ledger database: {e.orig}") from None
    except StorageError as e:
        raise ValueError(f"cannot open the ledger: {e}") from None
    for warning in app.state.auth.warnings():
        print(f"WARNING: {warning}", file=sys.stderr, flush=True)
    # One process: the engine keeps each camera's tracks and open incidents in memory.
    config = uvicorn.Config(app, host=args.host, port=args.port, workers=1, log_level=args.log_level, **proxy_options(settings))
    access_log.install()  # after uvicorn set its loggers up: keys in URLs never reach the access log
    _freeze_startup_objects()
    uvicorn.Server(config).run()
    return 0


def _serve_on_ray(settings, args: argparse.Namespace) -> int:
    """`serve --ray`: the same app on Ray Serve (service/cluster/); Ray is imported only here."""
    try:
        import ray.serve  # noqa: F401
    except ImportError as e:
        raise ValueError(f"--ray needs Ray Serve ({e}): pip install 'streetorder[ray]'") from None
    from service.cluster.serve_app import serve_on_ray

    return serve_on_ray(settings, args.ray, args.host, args.port, {"head": "HeadOnly", "every-node": "EveryNode"}[args.ray_proxy])


def _freeze_startup_objects() -> None:
    """Move what start-up built (modules, models, the app) out of the garbage collector's view.

    A full collection walks every object the process holds: in the service that took 50-90 ms, and requests in
    flight waited for it. These objects live as long as the process, so after `gc.freeze` a full collection
    walks only what requests left behind. (The serving process only: an app built in a test is not frozen.)"""
    import gc

    gc.collect()
    gc.freeze()


# ---- keys -----------------------------------------------------------------------------------------


def _keys(args: argparse.Namespace):
    from pipeline.cases.config import LedgerConfig
    from pipeline.db.engine import Database
    from service.http.keys import KeyStore

    cfg = LedgerConfig.load(args.ledger, database_url=args.db)
    return KeyStore(Database(cfg.database_url, auto_upgrade=cfg.auto_upgrade))


def _key_json(k) -> dict:
    return {"id": k.id, "name": k.name, "role": k.role.value, "created_at": k.created_at.isoformat(), "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None}


def cmd_keys_create(args: argparse.Namespace) -> int:
    new = _keys(args).create(args.name, args.role)
    if args.json:
        print(json.dumps({**_key_json(new.info), "key": new.key}, ensure_ascii=False))
    else:
        print(new.key)
        print(f"key {new.info.id} for {new.info.name!r}, role {new.info.role.value}: shown once, only its hash is stored", file=sys.stderr)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    keys = _keys(args).list(include_revoked=args.all)
    for k in keys:
        if args.json:
            print(json.dumps(_key_json(k), ensure_ascii=False))
        else:
            state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}Z" if k.revoked_at else "active"
            print(f"{k.id:>5} {k.role.value:<9} {state:<24} created {k.created_at:%Y-%m-%d %H:%M}Z  {k.name}")
    sys.stdout.flush()
    print(f"{len(keys)} key(s)", file=sys.stderr)
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    if (args.id is None) == (args.name is None):
        raise ValueError("give a key id, or --name NAME to revoke every active key of that name")
    gone = _keys(args).revoke(key_id=args.id, name=args.name)
    if not gone:
        print(f"error: no active key {'with id ' + str(args.id) if args.id is not None else 'named ' + repr(args.name)}", file=sys.stderr)
        return 1
    for k in gone:
        print(f"revoked key {k.id} ({k.role.value}) of {k.name!r}; its review sessions ended")
    return 0


KEYS_EPILOG = """Roles: camera (POST /frames, /photos, /detect), reviewer (cases, the review page, evidence), admin (models, cameras
and fixtures, /ready details; and everything the others may do). A key is printed once; the ledger database keeps
only its SHA-256. A running service takes new keys at once and refuses a revoked one within 2 s (no restart)."""


SERVE_EPILOG = """Every option can also come from the environment: STREETORDER_CAMERA_CONFIG, STREETORDER_LEDGER_CONFIG
(else STREETORDER_CONFIG), STREETORDER_DB, STREETORDER_MODEL, STREETORDER_MODELS, STREETORDER_THREADS, STREETORDER_CONF,
STREETORDER_IMGSZ, STREETORDER_EVIDENCE_DIR, STREETORDER_PUBLIC_URL, STREETORDER_MAX_UPLOAD_BYTES,
STREETORDER_PERSIST_MODEL, STREETORDER_INSECURE_OPEN, STREETORDER_SESSION_HOURS, STREETORDER_AUTH_FAILURES_PER_ADDRESS,
STREETORDER_AUTH_FAILURES_GLOBAL, STREETORDER_AUTH_WINDOW_S, STREETORDER_JOURNAL, STREETORDER_MAX_CLOCK_SKEW_S,
STREETORDER_RETRY_INTERVAL_S, STREETORDER_STATE_EVERY_S, STREETORDER_EARLIEST_TAKEN_AT, STREETORDER_KEY_CACHE, STREETORDER_LATENCY_BUDGET_S,
STREETORDER_FORWARDED_ALLOW_IPS; with --ray also STREETORDER_RAY_REPLICAS, STREETORDER_RAY_REPLICA_CPUS,
STREETORDER_RAY_CAMERA_CPUS, STREETORDER_RAY_OWNERS, STREETORDER_RAY_CAMERAS_PER_OWNER, STREETORDER_RAY_PLACEMENT_WAIT_S, STREETORDER_RAY_JOURNAL_DIR, STREETORDER_RAY_HEARTBEAT_S;
flags win.
With PostgreSQL unreachable at start, serve starts degraded: keys are checked against the key cache (written
while the database is up), frames and photos are journaled (202), /ready is 503 with the reason, and all is
written once the database answers.
Every route but /health, /ready and the docs needs an API key with the right role in the X-API-Key header (create
them with `streetorder keys create`; STREETORDER_EVIDENCE_PUBLIC=1 opens /evidence). With no key in the ledger the
service refuses to start unless --insecure-open is given. STREETORDER_API_KEY (the old single master key) still
works as an admin key, with a deprecation warning. Docs at http://HOST:PORT/docs; the review page at /review.

Capacity: STREETORDER_MAX_PIXELS (default 50 MP, checked from the header), STREETORDER_IMAGE_MEMORY_MB (memory that
images in flight may take together, default 1024), STREETORDER_BATCHING, STREETORDER_BATCH_MAX_SIZE,
STREETORDER_BATCH_MAX_WAIT_MS, STREETORDER_BATCH_QUEUE_SIZE (micro-batching); Prometheus metrics at /metrics.
Inference (/detect, /frames, /photos) past what the detector answers within --latency-budget is refused at once with
503 and Retry-After (a camera resends the frame); STREETORDER_INFERENCE_THREADS (8) is their thread pool, apart
from the reviewer and admin routes'. Behind a reverse proxy, name it in --forwarded-allow-ips, or every client
seems to come from the proxy's address; a client's own X-Forwarded-For is never believed."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add `serve` to the `streetorder` sub-command parser."""
    p = sub.add_parser(
        "serve", help="run the live HTTP service (frames, patrol photos, cases, review page)", epilog=SERVE_EPILOG,
        description="Serve the detector, the violation engine and the case ledger over HTTP (FastAPI on uvicorn, one\n"
        "process). Camera config and fixture edits and model swaps (PUT /models/current) take effect without a restart.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--config", metavar="YAML", help=f"camera, zone and rule config (default {SAMPLE_CONFIG.relative_to(REPO)})")
    add_ledger_args(p)
    p.add_argument("--model", help="model name under the models dir, a model folder or an .onnx file (default: models/CURRENT)")
    p.add_argument("--models-dir", metavar="DIR", help="models directory (default: $STREETORDER_MODELS, else models/)")
    p.add_argument("--persist-model", action="store_true", help="PUT /models/current also rewrites models/CURRENT")
    p.add_argument("--conf", type=float, help="detector score floor (default 0.25)")
    p.add_argument("--imgsz", type=int, help="inference size in pixels (default: the model's own)")
    p.add_argument("--threads", type=int, help="intra-op threads of each detector stream (default: the cores shared out between the streams, STREETORDER_INFERENCE_STREAMS; one stream: all cores)")
    p.add_argument("--evidence-dir", metavar="DIR", help="where the engine writes evidence before the ledger stores it (default var/engine-evidence)")
    p.add_argument("--public-url", metavar="URL", help="how clients reach the service; links in responses and outbound messages use it")
    p.add_argument("--journal", metavar="FILE", help="report journal: what the ledger could not take yet, replayed first on start (default var/report-journal.jsonl)")
    p.add_argument("--key-cache", metavar="FILE", help="API keys (hashes only) active when the database was last seen, for a start during an outage (default: beside the journal)")
    p.add_argument("--max-clock-skew", type=float, metavar="S", help="refuse frames and photos taken more than S seconds in the future (default 300)")
    p.add_argument("--latency-budget", type=float, metavar="S", help="seconds an inference request may take; the detector's overflow is refused at once with 503 + Retry-After (default 2)")
    p.add_argument("--forwarded-allow-ips", metavar="LIST", help="reverse proxies (addresses or networks, comma-separated; * for any) whose X-Forwarded-For is believed (default: none)")
    p.add_argument("--max-upload-mb", type=int, help="largest request body in MiB (default 20)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"], help="uvicorn log level (default info)")
    p.add_argument("--ray", metavar="ADDRESS", help="serve on a Ray cluster (Ray Serve): its address (HOST:PORT as `ray start --head` printed, or auto), or `local` to start one on this machine; see docs/operations.md#on-a-ray-cluster")
    p.add_argument("--replicas", type=int, help="with --ray: detector replicas, spread over the nodes (default 1; STREETORDER_RAY_REPLICAS)")
    p.add_argument("--ray-proxy", choices=["head", "every-node"], default="head", help="with --ray: where Ray Serve's HTTP proxy listens on --host/--port: the head node only (default), or every node (behind a load balancer)")
    p.add_argument("--insecure-open", action="store_true", help="start even with no API keys, every route open to anyone (local demos only; warned loudly)")
    p.set_defaults(func=cmd_serve)

    keys = sub.add_parser("keys", help="create, list and revoke the service's API keys (roles camera, reviewer, admin)", epilog=KEYS_EPILOG,
                          description="API keys of the live service, kept hashed in the ledger database.")
    ksub = keys.add_subparsers(dest="keys_command", required=True, metavar="{create,list,revoke}")
    k = ksub.add_parser("create", help="make a key and print it once", epilog=KEYS_EPILOG)
    k.add_argument("--role", required=True, choices=["camera", "reviewer", "admin"], help="what the key may do")
    k.add_argument("--name", required=True, help="who holds it (a person or a camera); recorded as the actor of its actions")
    k.add_argument("--json", action="store_true", help="print the key and its record as JSON")
    add_ledger_args(k)
    k.set_defaults(func=cmd_keys_create)
    k = ksub.add_parser("list", help="the keys (never the keys themselves: id, name, role, dates)")
    k.add_argument("--all", action="store_true", help="include revoked keys")
    k.add_argument("--json", action="store_true", help="one JSON object per line")
    add_ledger_args(k)
    k.set_defaults(func=cmd_keys_list)
    k = ksub.add_parser("revoke", help="revoke a key (by id) or every active key of a name; their sessions end")
    k.add_argument("id", nargs="?", type=int, help="key id, as `keys list` shows it")
    k.add_argument("--name", help="revoke every active key with this name instead")
    add_ledger_args(k)
    k.set_defaults(func=cmd_keys_revoke)
