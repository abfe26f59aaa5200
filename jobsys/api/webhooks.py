"""Webhook routes (docs/events.md): subscriptions (admin) and a job's deliveries."""

from __future__ import annotations

from flask import Blueprint, request
from flask.typing import ResponseReturnValue

from jobsys.api import routes, validation
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
def subscribe() -> ResponseReturnValue:
    """Add a subscription: 201 with its signing secret (shown this once)."""
    req = validation.model_body(request, WebhookRequest)
    st = routes.state()
    try:
        resolve_public(req.url, st.settings.webhook_allowed_hosts)
    except UnsafeUrl as e:
        raise InvalidJob("url", f"must be a public http(s) URL: it {e}") from None
    sub = st.store.webhooks.subscribe(req.url, req.queues, list(req.events))
    return sub.to_api(with_secret=True), 201


@bp.get("/webhooks")
def subscriptions() -> ResponseReturnValue:
    """Every subscription (without secrets)."""
    return {"webhooks": [s.to_api() for s in routes.state().store.webhooks.subscriptions()]}


@bp.delete("/webhooks/<sub_id>")
def unsubscribe(sub_id: str) -> ResponseReturnValue:
    """Remove a subscription: 204, or 404."""
    if not routes.state().store.webhooks.unsubscribe(sub_id):
        raise WebhookNotFound(sub_id)
    return "", 204


@bp.get("/jobs/<job_id>/webhooks")
def job_deliveries(job_id: str) -> ResponseReturnValue:
    """The webhook deliveries of a job's end, each with its attempts."""
    store = routes.state().store
    job_id = validation.canonical_job_id(job_id)
    job = store.get(job_id)
    return {"deliveries": store.webhooks.of_job(job_id, job.queue)}
