"""The webhook rules that need no server: SSRF checks, signatures, the retry schedule."""

from __future__ import annotations

import base64
import hashlib
import hmac
import random

import pytest

from jobsys.settings import Settings
from jobsys.webhooks import UnsafeUrl, resolve_public, sign
from jobsys.webhooks.dispatcher import MAX_BACKOFF_S, backoff_s


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "http://10.0.0.1/",
        "http://172.16.5.5/",
        "http://192.168.0.1/",
        "http://127.0.0.1:8080/",
        "http://localhost/",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://[::ffff:127.0.0.1]/",  # IPv4-mapped loopback
        "http://100.100.100.200/",  # shared address space (a metadata service lives there)
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "ftp://example.com/",
        "file:///etc/passwd",
        "http:///nohost",
        "http://user:pw@8.8.8.8/",
    ],
)
def test_urls_that_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        resolve_public(url)


def test_a_public_address_passes_and_an_allowed_private_one_too() -> None:
    parts, found = resolve_public("https://8.8.8.8/hook")
    assert (parts.scheme, found) == ("https", ["8.8.8.8"])
    assert resolve_public("http://10.1.2.3/", ["10.0.0.0/8"])[1] == ["10.1.2.3"]
    assert resolve_public("http://127.0.0.1:9/", ["127.0.0.1"])[1] == ["127.0.0.1"]
    assert resolve_public("http://localhost:9/", ["localhost"])[1]
    with pytest.raises(UnsafeUrl):
        resolve_public("http://10.1.2.3/", ["192.168.0.0/16"])


def test_the_signature_is_the_standard_webhooks_one() -> None:
    key = b"k" * 32
    secret = "whsec_" + base64.b64encode(key).decode()
    header = sign(secret, "msg_1", 1700000000, b'{"a":1}')
    digest = hmac.new(key, b'msg_1.1700000000.{"a":1}', hashlib.sha256).digest()
    assert header == "v1," + base64.b64encode(digest).decode()
    # A secret without the prefix signs with its UTF-8 bytes.
    digest = hmac.new(b"plain", b"i.1.b", hashlib.sha256).digest()
    assert sign("plain", "i", 1, b"b") == "v1," + base64.b64encode(digest).decode()


def test_the_retry_schedule_doubles_with_jitter_and_is_capped() -> None:
    settings = Settings(webhook_backoff_s=5.0)
    rng = random.Random(1)
    for attempt, base in ((1, 5.0), (2, 10.0), (3, 20.0), (5, 80.0)):
        pause = backoff_s(settings, attempt, rng)
        assert base / 2 <= pause <= base
    assert backoff_s(settings, 40, rng) <= MAX_BACKOFF_S
