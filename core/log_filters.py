"""Logging filters (settings.LOGGING)."""

import logging


class ForbiddenWithoutTraceback(logging.Filter):
    """A 403 is a role meeting a page it may not use, not a fault in the code: Django logs it
    with the PermissionDenied traceback, a screenful for every click. Keep its one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403:
            record.exc_info = None
            record.exc_text = None
        return True
