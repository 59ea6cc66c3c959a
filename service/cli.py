"""`streetorder serve`: the live service's sub-command. The web app is imported only when it runs."""

from __future__ import annotations

import argparse

from pipeline.cases.cli import add_ledger_args
from pipeline.paths import REPO, SAMPLE_CONFIG


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn
    from sqlalchemy.exc import DBAPIError

    from service.app import create_app
    from service.settings import ServiceSettings

    settings = ServiceSettings.load(
        camera_config=args.config, ledger_config=args.ledger, db=args.db, model=args.model, models_dir=args.models_dir,
        threads=args.threads, conf=args.conf, imgsz=args.imgsz, evidence_dir=args.evidence_dir, public_url=args.public_url,
        max_upload_bytes=args.max_upload_mb * 1024 * 1024 if args.max_upload_mb else None, persist_model=args.persist_model or None,
    )
    try:
        app = create_app(settings)
    except DBAPIError as e:
        raise ValueError(f"cannot open the ledger database: {e.orig}") from None
    # One process: the engine keeps each camera's tracks and open incidents in memory.
    uvicorn.run(app, host=args.host, port=args.port, workers=1, log_level=args.log_level)
    return 0


SERVE_EPILOG = """Every option can also come from the environment: STREETORDER_CAMERA_CONFIG, STREETORDER_LEDGER_CONFIG
(else STREETORDER_CONFIG), STREETORDER_DB, STREETORDER_MODEL, STREETORDER_MODELS, STREETORDER_THREADS, STREETORDER_CONF,
STREETORDER_IMGSZ, STREETORDER_EVIDENCE_DIR, STREETORDER_PUBLIC_URL, STREETORDER_MAX_UPLOAD_BYTES,
STREETORDER_PERSIST_MODEL; flags win. The API key is read only from STREETORDER_API_KEY (a flag would show in `ps`);
with it set, every route but /health and /ready needs the X-API-Key header (STREETORDER_EVIDENCE_PUBLIC=1 exempts
/evidence). Docs at http://HOST:PORT/docs; the review page at /review.
Capacity: STREETORDER_MAX_PIXELS (default 50 MP, checked from the header), STREETORDER_IMAGE_MEMORY_MB (memory that
images in flight may take together, default 1024), STREETORDER_BATCHING, STREETORDER_BATCH_MAX_SIZE,
STREETORDER_BATCH_MAX_WAIT_MS, STREETORDER_BATCH_QUEUE_SIZE (micro-batching); Prometheus metrics at /metrics."""


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
    p.add_argument("--threads", type=int, help="onnxruntime intra-op threads (default: all cores)")
    p.add_argument("--evidence-dir", metavar="DIR", help="where the engine writes evidence before the ledger stores it (default var/engine-evidence)")
    p.add_argument("--public-url", metavar="URL", help="how clients reach the service; links in responses and outbound messages use it")
    p.add_argument("--max-upload-mb", type=int, help="largest request body in MiB (default 20)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"], help="uvicorn log level (default info)")
    p.set_defaults(func=cmd_serve)
