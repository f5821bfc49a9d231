"""Kite failures as types, so callers decide between retry, halt and report without parsing text.

``KiteTokenError`` is the one users meet daily: Kite access tokens expire every morning, and the
right reaction is a plain message (and, in the daemon, trading state HALTED), never a retry loop.

Every message is scrubbed of secrets when the error is built (``config.redact``): this is where
Kite's text — an error body that may echo the ``Authorization`` header, an exception from the
official client or the network stack — enters the engine, so whatever later prints, logs or
stores the error holds no credential, whichever path it takes.
"""

from __future__ import annotations

from config.redact import scrub


class KiteError(Exception):
    """Any error reported by Kite or met while talking to it."""

    def __init__(self, message: str, status: int | None = None, error_type: str = "") -> None:
        super().__init__(scrub(message))
        self.status = status
        self.error_type = scrub(error_type)


class KiteTokenError(KiteError):
    """The access token was rejected: expired (daily, around 06:00 IST), revoked or wrong."""

    def __init__(self, message: str = "", status: int | None = 403) -> None:
        text = (
            "Kite rejected the access token (tokens expire daily around 06:00 IST); "
            "run `trader kite login` to get a new one"
        )
        super().__init__(f"{text}: {message}" if message else text, status, "TokenException")


class KiteLoginError(KiteError):
    """``trader kite login`` could not turn a request token into an access token; the message
    says which part Kite refused (the request token, the API key/secret pair) or that Kite could
    not be reached."""


class KiteRetryableError(KiteError):
    """Worth retrying after a pause: rate limited (429), server trouble (5xx), timeouts."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        error_type: str = "",
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message, status, error_type)
        self.retry_after_s = retry_after_s


class KiteRateLimitError(KiteRetryableError):
    pass


class KiteServerError(KiteRetryableError):
    pass


class KiteNetworkError(KiteRetryableError):
    """No (complete) answer: connection refused/reset, timeout."""


class KiteInputError(KiteError, ValueError):
    """Kite refused the request as malformed (4xx other than auth and rate limit)."""


class KiteResponseError(KiteError, ValueError):
    """Kite answered with something that is not the documented shape."""


class KiteIpNotAllowedError(KiteError):
    """Kite refused an order request because it did not come from the static IP registered for
    the app (required for API orders since 1 April 2026). Like an expired token, retrying
    cannot help: the cure is the operator's, and the message says which."""

    def __init__(self, message: str = "", status: int | None = 403, error_type: str = "") -> None:
        text = (
            "Kite refused the order request: orders are accepted only from the static IP "
            "registered for this Kite Connect app; register this machine's public IP under "
            "Profile → IP Whitelist in the Kite developer console (developers.kite.trade), "
            "then resume trading"
        )
        super().__init__(
            f"{text} (Kite said: {message})" if message else text,
            status,
            error_type or "PermissionException",
        )
