"""AWS Signature Version 4 for S3 requests from the tests, with no SDK and no shell.

The e2e tests sign with the exact secret they gave the store, so a request that
the store accepts proves that it holds exactly that secret.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone
from urllib.parse import quote, urlsplit

EMPTY_PAYLOAD_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sign(
    method: str, url: str, access_key: str, secret_key: str, region: str, when: datetime | None = None, headers: dict | None = None,
    payload: bytes = b"",
) -> dict[str, str]:
    """The headers of a signed request with `payload` as its body, empty by default (`headers` are signed too; no query string)."""
    payload_sha256 = hashlib.sha256(payload).hexdigest()
    parts = urlsplit(url)
    when = when or datetime.now(timezone.utc)
    amz_date, day = when.strftime("%Y%m%dT%H%M%SZ"), when.strftime("%Y%m%d")
    signed = {
        "host": parts.netloc,
        "x-amz-content-sha256": payload_sha256,
        "x-amz-date": amz_date,
        **{name.lower(): value.strip() for name, value in (headers or {}).items()},
    }
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            quote(parts.path or "/", safe="/-_.~"),
            "",
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), day), region), "s3"), "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    authorization = f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={';'.join(names)}, Signature={signature}"
    return {**{k: v for k, v in signed.items() if k != "host"}, "Authorization": authorization}
