"""What the console tests read off a page."""

from __future__ import annotations

import re
from typing import Any

HIDDEN = re.compile(r'<input type="hidden" name="(csrf|request_id)" value="([^"]+)"')


def hidden(html: str) -> dict[str, str]:
    """A form's hidden ``csrf`` and ``request_id`` values."""
    return dict(HIDDEN.findall(html))


def wait(page: Any) -> None:
    page.wait_for_load_state()


def i_am(page: Any, reference: str, name: str) -> None:
    """Development mode: say who I am, as a coordinator would: from the header's list when it holds
    ``reference``, else by typing ``name`` into the header's name field (Enter) and choosing on the
    *Who are you?* page, paging on while ``reference`` is not on the page."""
    chooser = page.get_by_label("Development mode: I am")
    if chooser.locator(f"option[value='{reference}']").count():
        chooser.select_option(value=reference)
        page.get_by_role("button", name="Use", exact=True).click()
        wait(page)
        return
    page.get_by_label("Find a coordinator by name").fill(name)
    with page.expect_navigation():
        page.get_by_label("Find a coordinator by name").press("Enter")
    while not page.locator(f"button[name='me'][value='{reference}']").count():
        page.get_by_role("link", name="Next", exact=True).click()
        wait(page)
    page.locator(f"button[name='me'][value='{reference}']").click()
    wait(page)


def choose_organization(page: Any, name: str, words: str, reference: str) -> None:
    """A payer or vendor picker: ``reference`` from its list when offered there, else under *Not listed?
    Another organization*, found by typing ``words``."""
    main = page.locator(f"select[name='{name}']")
    if main.locator(f"option[value='{reference}']").count():
        main.select_option(value=reference)
        return
    other = page.locator(f"select[name='{name}:other']")
    control_id = other.get_attribute("id")
    details = page.locator(f"details:has(#{control_id})")
    if details.get_attribute("open") is None:
        details.locator("summary").click()
    page.locator(f"input.picker-filter[data-picker='{control_id}']").fill(words)
    page.wait_for_selector(f"#{control_id} option[value='{reference}']", state="attached")
    other.select_option(value=reference)
