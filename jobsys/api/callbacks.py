"""The checks of a submit's ``callback_url`` that need the settings (docs/events.md):
the API has a signing secret, and the URL's host resolves to public addresses only
(or ones WEBHOOK_ALLOWED_HOSTS allows). A refusal is a 400 naming the field, before
anything is written."""

from __future__ import annotations

from collections.abc import Sequence

from jobsys.errors import InvalidJob
from jobsys.settings import Settings
from jobsys.store import Submission
from jobsys.webhooks.safety import UnsafeUrl, resolve_public


def check(subs: Sequence[Submission], settings: Settings) -> None:
    """Raise `InvalidJob` for the first job whose callback_url may not be used."""
    checked: set[str] = set()
    for i, sub in enumerate(subs):
        url = sub.callback_url
        if url is None or url in checked:
            continue
        name = "callback_url" if len(subs) == 1 else f"jobs[{i}].callback_url"
        if not settings.webhook_secret:
            raise InvalidJob(
                name, "needs the API's JOBSYS_WEBHOOK_SECRET (the key that signs callbacks)"
            )
        try:
            resolve_public(url, settings.webhook_allowed_hosts)
        except UnsafeUrl as e:
            raise InvalidJob(name, f"must be a public http(s) URL: it {e}") from None
        checked.add(url)
