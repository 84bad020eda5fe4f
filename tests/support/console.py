"""What the console tests read off a page."""

from __future__ import annotations

import re

HIDDEN = re.compile(r'<input type="hidden" name="(csrf|request_id)" value="([^"]+)"')


def hidden(html: str) -> dict[str, str]:
    """A form's hidden ``csrf`` and ``request_id`` values."""
    return dict(HIDDEN.findall(html))
