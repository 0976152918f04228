"""Run the reference receiver with uvicorn on 127.0.0.1.

    python -m catalog_sync.receiver.server --port 8765 --db /tmp/receiver.db \\
        --tenant-id demo --token secret --rate-429 0.1 --retry-after 2 --seed 7

Clients then use the base URL http://127.0.0.1:8765/demo (the contract's
server URL is https://<host>/{tenantId}) and POST to <base>/v1/catalog/products.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import uvicorn

from .app import ReceiverOptions, create_app
from .ims import ImsSettings

HOST = "127.0.0.1"

__all__ = ["HOST", "ReceiverOptions", "base_url", "build_server", "main", "serve"]


def base_url(port: int, tenant_id: str | None = None) -> str:
    """The base URL a client should use (contract server URL: https://<host>/{tenantId})."""
    return f"http://{HOST}:{port}" + (f"/{tenant_id}" if tenant_id else "")


def build_server(port: int, db_path: str, options: ReceiverOptions | None = None, log_level: str = "warning"):
    """A uvicorn.Server for the receiver (not started): `server.run()` or run it in a thread."""
    options = replace(options or ReceiverOptions(), db_path=db_path)
    config = uvicorn.Config(
        create_app(options),
        host=HOST,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
    )
    return uvicorn.Server(config)


def serve(port: int, db_path: str, options: ReceiverOptions | None = None, log_level: str = "warning") -> None:
    """Serve the receiver on 127.0.0.1:`port` until interrupted; the accepted state goes to `db_path`."""
    build_server(port, db_path, options, log_level).run()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m catalog_sync receiver",
        description="Reference receiver of the Catalog Data Ingestion API (for tests and the demo).",
    )
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--db", default=":memory:", help="SQLite file of the accepted state (default: in memory)")
    parser.add_argument("--spec", default=None, help="contract YAML (default: the copy in the package)")
    parser.add_argument("--tenant-id", default=None, help="only this tenant id in /{tenantId}/v1/... (default: any)")
    parser.add_argument("--no-validate", action="store_true", help="skip schema validation (benchmarks)")
    parser.add_argument("--token", default=None, help="required Bearer token (403 if missing, 401 if wrong)")
    parser.add_argument("--rate-429", type=float, default=0.0, help="share 0..1 of requests answered 429")
    parser.add_argument("--retry-after", type=int, default=1, help="retry-after seconds of a 429 (default 1)")
    parser.add_argument("--rate-5xx", type=float, default=0.0, help="share 0..1 of requests answered 500/502/503")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds to sleep before an answer")
    parser.add_argument("--latency-rate", type=float, default=1.0, help="share 0..1 of requests that get the latency")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share 0..1 of connections closed unanswered")
    parser.add_argument("--reject-sku", action="append", default=[], help="SKU always reported invalid (repeatable)")
    parser.add_argument("--answer-next", type=int, action="append", default=[],
                        help="answer the next request with this HTTP status (repeatable, in order; a 400 names no item)")
    parser.add_argument("--late-sku", action="append", default=[],
                        help="the first request with this SKU gets no answer and is applied --late-apply seconds later")
    parser.add_argument("--late-apply", type=float, default=2.0, help="seconds until a --late-sku request is applied")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault draws")
    parser.add_argument("--ims-client-id", default=None,
                        help="serve an IMS-like POST /ims/token/v3 for this client id (secret: --ims-client-secret)")
    parser.add_argument("--ims-client-secret", default=None)
    parser.add_argument("--ims-token-ttl", type=float, default=3600.0,
                        help="seconds an issued token is accepted (the answer always claims expires_in 3600)")
    parser.add_argument("--log-level", default="warning")
    return parser


def options_from_args(args: argparse.Namespace) -> ReceiverOptions:
    return ReceiverOptions(
        db_path=args.db,
        spec_path=args.spec,
        tenant_id=args.tenant_id,
        validate=not args.no_validate,
        required_token=args.token,
        rate_429=args.rate_429,
        retry_after_s=args.retry_after,
        rate_5xx=args.rate_5xx,
        latency_s=args.latency,
        latency_rate=args.latency_rate,
        drop_rate=args.drop_rate,
        reject_skus=frozenset(args.reject_sku),
        answer_next=tuple(args.answer_next),
        late_skus=frozenset(args.late_sku),
        late_apply_s=args.late_apply,
        seed=args.seed,
        ims=ImsSettings(args.ims_client_id, args.ims_client_secret or "", ttl_s=args.ims_token_ttl)
        if args.ims_client_id else None,
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        options = options_from_args(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"reference receiver: base URL {base_url(args.port, args.tenant_id or 'TENANT')}", file=sys.stderr, flush=True)
    serve(args.port, args.db, options, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
