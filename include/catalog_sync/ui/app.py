"""The Catalog Sync page: a FastAPI app that Airflow mounts at /catalog-sync (see plugins/).

Pages are rendered on the server with Jinja2 (autoescape on: a product name is
always text, never markup) and need no asset from outside the package. Every
route depends on `read_access` (in Airflow: a login with read access to the
catalog_sync DAG); actions also on `trigger_access` (permission to run DAGs).
Actions are JSON POSTs made by the page's own script: a cross-site form cannot
send `application/json`, so a logged-in user's cookie cannot be used to start a
resync from another site. Listings are paged; a page past the last one is an empty
page, not an error (paging.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from catalog_sync import run_clock
from catalog_sync.settings import ConfigurationError, SyncSettings
from catalog_sync.state.status_store import StatusStore
from catalog_sync.targets.base import Target, canonical
from catalog_sync.targets.registry import open_target
from catalog_sync.ui.airflow_side import JWT_COOKIE, AirflowSide, DagState, TriggerError
from catalog_sync.ui.magento_lookup import MagentoLookup, field_diff
from catalog_sync.ui.paging import PAGE_SIZE, Page
from catalog_sync.ui.sync_overview import format_time, history_chart, last_sync
from catalog_sync.ui.synced_products import SYNC_STATE_LABELS, VISIBILITY_LABELS, SyncedProducts

log = logging.getLogger(__name__)

SYNC_DAG, RESYNC_DAG = "catalog_sync", "catalog_full_resync"
TEMPLATES = Path(__file__).parent / "templates"


class PageContext:
    """Per-process handles, opened on first use and reopened when the settings change."""

    def __init__(self, settings: Callable[[], SyncSettings]):
        self._settings = settings
        self._lock = threading.Lock()
        self._key: tuple | None = None
        self.products: SyncedProducts | None = None
        self.status: StatusStore | None = None
        self.magento: MagentoLookup | None = None
        self.target: Target | None = None
        self.settings: SyncSettings | None = None

    def get(self) -> "PageContext":
        settings = self._settings()
        key = (settings.state_url, settings.status_url, settings.source_url, settings.table_prefix, settings.edition,
               settings.target_name, settings.target_url)
        with self._lock:
            if key != self._key:
                self.close()
                # The target only maps here (what Magento's product would be sent as): nothing is sent.
                self.target = open_target(settings.target)
                self.products = SyncedProducts(settings.state_url, self.target.feeds, settings.state_storage_options)
                self.status = StatusStore(settings.status_url, settings.target_name)
                self.magento = MagentoLookup(settings.source_url, settings.view_selection, settings.table_prefix,
                                             settings.source_edition)
                self._key = key
            self.settings = settings
        return self

    def close(self) -> None:
        for handle in (self.products, self.magento):
            if handle is not None:
                handle.close()
        if self.status is not None:
            self.status.dispose()
        if self.target is not None:
            self.target.close()
        self.products = self.status = self.magento = self.target = None


def create_app(settings: Callable[[], SyncSettings], airflow: AirflowSide,
               read_access: Sequence[Callable] = (), trigger_access: Sequence[Callable] = ()) -> FastAPI:
    app = FastAPI(title="Catalog Sync", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(d) for d in read_access])
    jinja = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True))
    # Text stays text: orjson writes "Zürich", where json.dumps (Jinja's tojson) writes "Z\\u00fcrich".
    jinja.filters["json"] = lambda value: orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    jinja.filters["json1"] = lambda value: orjson.dumps(value).decode()
    jinja.filters["dt"] = format_time
    jinja.filters["state_label"] = lambda state: SYNC_STATE_LABELS.get(state, state)
    context = PageContext(settings)
    actions = [Depends(d) for d in trigger_access]

    @app.exception_handler(ConfigurationError)
    async def not_configured(request: Request, exc: ConfigurationError) -> JSONResponse:
        # A missing Connection or Variable: say which, instead of a bare 500.
        return JSONResponse({"detail": f"Catalog Sync is not configured: {exc}"}, status_code=503)

    def render(request: Request, template: str, **values: Any) -> HTMLResponse:
        base = request.scope.get("root_path", "").rstrip("/")
        html = jinja.get_template(template).render(base=base, active=template.split(".")[0], **values)
        return HTMLResponse(html)

    def overview_data() -> dict[str, Any]:
        ctx = context.get()
        runs = ctx.status.recent_runs(48)
        last = last_sync(runs)
        dag = airflow.dag_state(SYNC_DAG)
        failed_task = None
        if last.run and last.state == "Failed" and last.run.get("airflow_run_id"):
            failed_task = airflow.failed_task_id(last.run["dag_id"], last.run["airflow_run_id"])
        return {"last": last, "dag": dag, "failed_task": failed_task, "runs": runs,
                "products_synced": ctx.products.count(), "pending": ctx.products.pending_counts()}

    # ---- pages ------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def overview(request: Request) -> HTMLResponse:
        data = overview_data()
        # Links to Airflow's own pages start at its base URL's path (a prefix such as /airflow, or none).
        return render(request, "overview.html", chart=history_chart(data["runs"]), airflow_ui=airflow.ui_prefix(), **data)

    @app.get("/products", response_class=HTMLResponse)
    def products(request: Request, q: str = "", store_view: str = "", sort: str = "exported_desc",
                 page: int = Query(1, ge=1)) -> HTMLResponse:
        ctx = context.get()
        result = ctx.products.search(q, store_view or None, sort, page)
        return render(request, "products.html", result=result, q=q, store_view=store_view, sort=sort,
                      store_views=ctx.products.store_views())

    @app.get("/products/{sku:path}", response_class=HTMLResponse)
    def product(request: Request, sku: str, store_view: str = "") -> HTMLResponse:
        detail = product_detail(sku, store_view or None)
        return render(request, "product.html", **detail)

    @app.get("/search", response_class=HTMLResponse)
    def catalog_search(request: Request, q: str = "", page: int = Query(1, ge=1)) -> HTMLResponse:
        ctx = context.get()
        result = ctx.magento.search_page(q, page) if q.strip() else Page([], 0, page, PAGE_SIZE)
        hits = result.rows
        states = ctx.products.sync_states([h.sku for h in hits])
        reasons = {p.sku: p.reason for h in hits for p in ctx.products.pending(sku=h.sku, limit=1)}
        return render(request, "search.html", q=q, result=result, hits=hits, states=states, reasons=reasons)

    @app.get("/failed", response_class=HTMLResponse)
    def failed(request: Request, page: int = Query(1, ge=1)) -> HTMLResponse:
        ctx = context.get()
        return render(request, "failed.html", result=ctx.products.pending_page(page), counts=ctx.products.pending_counts())

    @app.get("/feeds", response_class=HTMLResponse)
    @app.get("/feeds/{feed}", response_class=HTMLResponse)
    def feeds_page(request: Request, feed: str = "", page: int = Query(1, ge=1)) -> HTMLResponse:
        ctx = context.get()
        return render(request, "feeds.html", feeds=ctx.products.feeds(), feed=feed, target=ctx.target.description,
                      page=feed_page(feed, page) if feed else None)

    def feed_page(feed: str, page: int):
        try:
            return context.get().products.feed_page(feed, page)
        except KeyError:
            raise HTTPException(404, f"the snapshot has no feed {feed!r}") from None

    @app.get("/settings", response_class=HTMLResponse)
    def settings_page(request: Request) -> HTMLResponse:
        return render(request, "settings.html", dag=airflow.dag_state(RESYNC_DAG))

    # ---- actions ----------------------------------------------------------------------

    @app.post("/actions/resync", dependencies=actions)
    async def resync(request: Request) -> JSONResponse:
        """Body: {} to reconcile the whole catalog, {"cleanup": true} to re-send everything,
        {"skus": [...]} for some products."""
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise HTTPException(415, "send a JSON body (application/json)")
        body = await request.json()
        skus = body.get("skus") if isinstance(body, dict) else None
        conf: dict[str, Any] = {}
        if skus:
            if not isinstance(skus, list) or not all(isinstance(s, str) and s for s in skus):
                raise HTTPException(400, "skus must be a list of SKUs")
            conf["skus"] = skus
        if isinstance(body, dict) and body.get("cleanup") is not None:
            if not isinstance(body["cleanup"], bool):
                raise HTTPException(400, "cleanup must be true or false")
            conf["cleanup"] = body["cleanup"]
        try:
            # At Airflow's configured address, never the request's Host (airflow_side.py says why).
            # In a thread: the REST call may be served by this very process's event loop.
            run_id = await run_in_threadpool(airflow.trigger, RESYNC_DAG, conf,
                                             request.headers.get("authorization"), request.cookies.get(JWT_COOKIE))
        except TriggerError as exc:
            raise HTTPException(exc.status if exc.status in (401, 403, 404, 409) else 502, str(exc)) from None
        what = f"{len(conf['skus'])} SKU(s)" if skus else ("re-send everything" if conf.get("cleanup") else "reconcile")
        log.info("catalog sync page: %s started (%s)", RESYNC_DAG, what)
        return JSONResponse({"dag_id": RESYNC_DAG, "dag_run_id": run_id, "conf": conf,
                             "url": f"{airflow.ui_prefix()}/dags/{RESYNC_DAG}/runs/{run_id}"})

    # ---- JSON API ---------------------------------------------------------------------

    @app.get("/api/status")
    def api_status() -> JSONResponse:
        data = overview_data()
        last, dag = data["last"], data["dag"]
        return JSONResponse({
            "last_sync": {"state": last.state, "at": _iso(last.at), "products_updated": last.products_updated,
                          "not_accepted": last.not_accepted, "error": last.error, "run_id": (last.run or {}).get("run_id"),
                          "failed_task": data["failed_task"], "feeds": (last.run or {}).get("feeds") or {}},
            "dag": _dag_json(dag),
            "products_synced": data["products_synced"],
            "pending": data["pending"],
            "runs": [_run_json(r) for r in data["runs"]],
        })

    @app.get("/api/feeds/{feed}")
    def api_feed(feed: str, page: int = Query(1, ge=1)) -> JSONResponse:
        """A feed's items as the target accepted them; `body` is the exact text sent."""
        result = feed_page(feed, page)
        return JSONResponse({"feed": feed, "total": result.total, "page": result.page, "pages": result.pages,
                             "page_size": result.page_size, "items": result.rows})

    @app.get("/api/products")
    def api_products(q: str = "", store_view: str = "", sort: str = "exported_desc", page: int = Query(1, ge=1)) -> JSONResponse:
        result = context.get().products.search(q, store_view or None, sort, page)
        return JSONResponse({"total": result.total, "page": result.page, "pages": result.pages,
                             "page_size": result.page_size, "items": result.rows})

    @app.get("/api/products/{sku:path}")
    def api_product(sku: str, store_view: str = "") -> JSONResponse:
        detail = product_detail(sku, store_view or None)
        return JSONResponse({
            "sku": sku,
            "store_views": [{**view, "items": [{**item, "diff": [d for d in item["diff"] if d["differs"]]}
                                               for item in view["items"]]} for view in detail["views"]],
            "pending": detail["pending"],  # items of the SKU not in sync that name no store view
            "history": [{**h, "started_at": _iso(h["started_at"])} for h in detail["history"]],
            "sync_state": detail["sync_state"],
        })

    def product_detail(sku: str, store_view: str | None) -> dict[str, Any]:
        """Per store view: each item as the target accepted it (exact text), Magento's record now,
        the items it would be sent as now, and the field diff between the two."""
        ctx = context.get()
        listed = {r["store_view_code"]: r for r in ctx.products.find_sku(sku)}
        sent = ctx.products.sent(sku)
        try:
            now_rows = ctx.magento.current_rows(sku, run_clock.run_instant(ctx.settings.now))
            mapper = ctx.target.mapper(ctx.magento.context())
            views_now = list(now_rows)
            preview: dict[str, list] = {view: [] for view in views_now}
            for item in mapper.product_items([now_rows[view].staging() for view in views_now]):
                preview[views_now[item.row]].append(item)
            magento_error = None
        except Exception as exc:  # the page still shows what was sent when Magento is unreachable
            log.warning("catalog sync page: cannot read %r from Magento: %s", sku, exc)
            now_rows, preview, magento_error = {}, {}, f"cannot read the Magento database: {type(exc).__name__}"
        pending = ctx.products.pending(sku=sku)
        views = sorted({i.store_view_code for i in sent if i.store_view_code} | set(now_rows)
                       | {p.store_view_code for p in pending if p.store_view_code})
        if store_view:
            views = [v for v in views if v == store_view]
        # Pending items that name no store view are shown for the SKU as a whole, never dropped.
        unplaced = [p.as_dict() for p in pending if not p.store_view_code]
        pending_items = {(p.feed, p.key): p.as_dict() for p in pending}
        if not views and not unplaced:
            raise HTTPException(404, f"SKU {sku!r} is neither in the snapshot nor in Magento")
        detail_views = []
        for view in views:
            now_items = {(i.feed, canonical(i.key).decode()): i for i in preview.get(view, [])}
            sent_items = {(i.feed, i.key): i for i in sent if i.store_view_code == view}
            items = []
            for feed, key in sorted(set(sent_items) | set(now_items)):
                was, will = sent_items.get((feed, key)), now_items.get((feed, key))
                sent_body = orjson.loads(was.body) if was and was.body else None
                now_body = will.body if will else None
                items.append({
                    "feed": feed, "key": key, "sent": was.__dict__ if was else None,
                    "now": None if now_body is None else canonical(now_body).decode(),
                    "now_reason": will.reason if will else None,
                    "pending": pending_items.get((feed, key)),  # not in sync: retryable, or held with its reason
                    "in_sync": was is not None and will is not None and was.body == (
                        None if now_body is None else canonical(now_body).decode()),
                    "diff": field_diff(sent_body, now_body),
                })
            detail_views.append({
                "store_view_code": view,
                "listed": listed.get(view),
                "record": now_rows[view].payload if view in now_rows else None,
                "items": items,
                "pending": [p.as_dict() for p in pending if p.store_view_code == view],
            })
        return {"sku": sku, "views": detail_views, "pending": unplaced, "history": ctx.status.item_history(sku),
                "sync_state": ctx.products.sync_states([sku])[sku], "magento_error": magento_error,
                "visibility_labels": VISIBILITY_LABELS, "target": ctx.target.description}

    app.state.page_context = context
    return app


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def _dag_json(dag: DagState) -> dict[str, Any]:
    return {"dag_id": dag.dag_id, "exists": dag.exists, "is_paused": dag.is_paused, "next_run_at": _iso(dag.next_run_at)}


def _run_json(run: dict[str, Any]) -> dict[str, Any]:
    return {k: _iso(v) if k in ("started_at", "ended_at") else v for k, v in run.items()}
