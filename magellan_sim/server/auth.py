"""Which account a request or stream belongs to, and whether its credentials are accepted.

The API key identifies the account (the core creates it on first use). With a configured
key/secret only that pair is accepted; without one any credentials are, and a request that
carries none is served as the account ``ANONYMOUS_KEY``. The secret is compared and never
stored in logs or error messages.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

ANONYMOUS_KEY = "magellan-sim"
KEY_HEADER = "APCA-API-KEY-ID"
SECRET_HEADER = "APCA-API-SECRET-KEY"
MAX_CREDENTIAL_LEN = 256


class Credentials:
    """The configured key/secret pair, or open access when both are None."""

    def __init__(self, key: str | None = None, secret: str | None = None) -> None:
        if (key is None) != (secret is None):
            raise ValueError("give both the key and the secret, or neither")
        self._key = key
        self._secret = secret

    @property
    def open_access(self) -> bool:
        """True when any credentials are accepted."""
        return self._key is None

    def account_for(self, key: object, secret: object) -> str | None:
        """The account key for these credentials, or None if they are refused."""
        if key is not None and (not isinstance(key, str) or len(key) > MAX_CREDENTIAL_LEN):
            return None
        if secret is not None and not isinstance(secret, str):
            return None
        if self._key is None or self._secret is None:
            return key or ANONYMOUS_KEY
        if key is None or secret is None:
            return None
        key_ok = hmac.compare_digest(key.encode(), self._key.encode())
        secret_ok = hmac.compare_digest(secret.encode(), self._secret.encode())
        return key if key_ok and secret_ok else None

    def account_for_headers(self, headers: Mapping[str, str]) -> str | None:
        """The account for a REST request's APCA headers (or Basic/Bearer authorization)."""
        key, secret = headers.get(KEY_HEADER), headers.get(SECRET_HEADER)
        if key is None and secret is None:
            key, secret = _from_authorization(headers.get("Authorization", ""))
        return self.account_for(key, secret)


def _from_authorization(value: str) -> tuple[str | None, str | None]:
    scheme, _, token = value.partition(" ")
    token = token.strip()
    if scheme.lower() == "basic" and token:
        try:
            decoded = base64.b64decode(token, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        key, sep, secret = decoded.partition(":")
        return (key, secret) if sep else (None, None)
    if scheme.lower() == "bearer" and token:
        # an OAuth token stands for one account; there is no secret to check against
        return token, None
    return None, None
