"""What the gateway refuses, and why. Rendered into each caller's own error shape by `wire/`.

    GatewayError (status, kind, message)
     ├── BadRequest           400 invalid_request_error
     ├── Unauthorized         401 authentication_error
     ├── Forbidden            403 permission_error
     ├── NotFound             404 not_found_error
     │    └── ModelNotFound       (a model the agent may not call; OpenAI's code `model_not_found`)
     ├── MethodNotAllowed     405 invalid_request_error
     ├── TooLarge             413 request_too_large
     ├── UnsupportedMedia     415 invalid_request_error
     ├── BudgetExceeded       402 budget_exceeded   (not even a minimal call fits a window: the agent is blocked;
     │                                               carries the window, spent, cap, reset time)
     ├── CallTooLarge         402 call_too_large    (this call cannot fit a window, smaller calls still do)
     ├── BudgetBusy           429 rate_limit_error  (only calls in flight hold the budget; retry)
     ├── RateLimited          429 rate_limit_error  (an agent's denial-of-wallet limit, limits.py; retry-after)
     ├── UpstreamFailed       502 / 504 api_error   (the provider could not be reached or timed out)
     └── Internal             500 api_error         (a defect in the gateway: any other exception, logged with
                                                     its traceback, answered in the caller's shape all the same)

Errors the provider itself returns are relayed as the provider sent them (same status and body), translated
when the caller speaks the other API; one that is no API's error object (a CDN's or proxy's HTML page, an empty
body) keeps its status and becomes its text in the caller's shape (`wire/translate.py` `error_for`).
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    status = 500
    kind = "api_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.extra = extra or {}


class BadRequest(GatewayError):
    status, kind = 400, "invalid_request_error"


class Unauthorized(GatewayError):
    status, kind, code = 401, "authentication_error", "invalid_api_key"


class Forbidden(GatewayError):
    status, kind = 403, "permission_error"


class NotFound(GatewayError):
    status, kind = 404, "not_found_error"


class ModelNotFound(NotFound):
    code = "model_not_found"


class MethodNotAllowed(GatewayError):
    status, kind = 405, "invalid_request_error"


class TooLarge(GatewayError):
    status, kind = 413, "request_too_large"


class UnsupportedMedia(GatewayError):
    status, kind = 415, "invalid_request_error"


class BudgetExceeded(GatewayError):
    status, kind, code = 402, "budget_exceeded", "budget_exceeded"


class CallTooLarge(GatewayError):
    status, kind, code = 402, "call_too_large", "call_too_large"


class BudgetBusy(GatewayError):
    status, kind, code = 429, "rate_limit_error", "budget_busy"


class RateLimited(GatewayError):
    status, kind = 429, "rate_limit_error"

    def __init__(self, message: str, *, code: str, retry_after: int) -> None:
        super().__init__(message)
        self.code = code  # requests_per_minute | tokens_per_minute | max_in_flight | loop_detected
        self.retry_after = retry_after  # whole seconds, sent as the retry-after header


class UpstreamFailed(GatewayError):
    status, kind = 502, "api_error"

    def __init__(self, message: str, *, status: int = 502, retry: bool = True) -> None:
        super().__init__(message)
        self.status = status
        self.retry = retry  # False: the provider answered (and billed); a retry would be billed again


class Internal(GatewayError):
    status, kind = 500, "api_error"
