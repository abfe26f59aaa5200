"""Webhook routes (docs/events.md): subscriptions (admin) and a job's deliveries."""

from __future__ import annotations

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from jobsys.api import operations as doc
from jobsys.api import routes, validation
from jobsys.api.headers import param
from jobsys.api.webhook_models import WebhookRequest
from jobsys.errors import InvalidJob, JobNotFound, JobsysError
from jobsys.webhooks.safety import UnsafeUrl, resolve_public

bp = Blueprint("webhooks", __name__)


class WebhookNotFound(JobNotFound):
    """No webhook subscription has this id (a 404, as an unknown job)."""

    def __init__(self, sub_id: str) -> None:
        JobsysError.__init__(self, f"no webhook subscription {sub_id!r}")
        self.job_id = sub_id


@bp.post("/webhooks")
@doc.operation(
    "createWebhook",
    {"201": ("Created. `secret` (whsec_...) signs its deliveries: shown this once.", None)},
    doc.WRITE | doc.READ,
    "WebhookRequest",
    extra={"content": {"application/json": {"schema": {"type": "object"}}}},
)
def subscribe() -> ResponseReturnValue:
    """Subscribe a URL to the ends of the jobs of some queues

    Each job of the queues that ends with one of `events` is POSTed to `url`, signed
    (Standard Webhooks headers), retried with backoff (docs/events.md).
    """
    req = validation.model_body(request, WebhookRequest)
    st = routes.state()
    try:
        resolve_public(req.url, st.settings.webhook_allowed_hosts)
    except UnsafeUrl as e:
        raise InvalidJob("url", f"must be a public http(s) URL: it {e}") from None
    sub = st.store.webhooks.subscribe(req.url, req.queues, list(req.events))
    return sub.to_api(with_secret=True), 201


@bp.get("/webhooks")
@doc.operation(
    "listWebhooks",
    {"200": ("The subscriptions.", None)},
    doc.READ,
    extra={"content": {"application/json": {"schema": {"type": "object"}}}},
)
def subscriptions() -> ResponseReturnValue:
    """Every webhook subscription (without secrets)"""
    return {"webhooks": [s.to_api() for s in routes.state().store.webhooks.subscriptions()]}


@bp.delete("/webhooks/<sub_id>")
@doc.operation(
    "deleteWebhook",
    {"204": ("Removed; its pending deliveries are dropped.", None)},
    {"404": "NotFound", "415": "UnsupportedMediaType", **doc.READ},
    params=(param("path", "sub_id", None, type="string"),),
)
def unsubscribe(sub_id: str) -> ResponseReturnValue:
    """Remove a webhook subscription"""
    if not routes.state().store.webhooks.unsubscribe(sub_id):
        raise WebhookNotFound(sub_id)
    return "", 204


@bp.get("/jobs/<job_id>/webhooks")
@doc.operation(
    "getJobWebhooks",
    {"200": ("The deliveries.", None)},
    {"404": "NotFound", **doc.READ},
    params=(doc.JOB_ID,),
    extra={"content": {"application/json": {"schema": {"type": "object"}}}},
)
def job_deliveries(job_id: str) -> ResponseReturnValue:
    """The webhook deliveries of a job's end, with their attempts"""
    store = routes.state().store
    job_id = validation.canonical_job_id(job_id)
    job = store.get(job_id)
    return {"deliveries": store.webhooks.of_job(job_id, job.queue)}
