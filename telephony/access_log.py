"""The HTTP access log without query strings.

Carriers that cannot send headers pass our media secret as `?token=...`, and aiohttp's
default access log writes the whole request line, so the secret would land in every
log file. This logger writes the path only, and labels the status and size so the log
redactor (which masks six-digit runs as sort codes) leaves them readable.
"""

from __future__ import annotations

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse


class PathOnlyAccessLogger(AbstractAccessLogger):
    """`remote METHOD /path status=200 size=331 time_ms=1.2`: no query string, ever."""

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        """Write one line per request (aiohttp calls this after each response)."""
        self.logger.info(
            "%s %s %s status=%d size=%d time_ms=%.1f",
            request.remote or "-",
            request.method,
            request.path,
            response.status,
            response.body_length,
            time * 1000,
        )
