"""The console's worklist at an organization that receives referrals: with partners configured
(``FHIRCARE_PARTNERS`` or ``FHIRCARE_ORGANIZATION``), the open referral Tasks partners created here are
listed on the *Team* and *Unassigned* tabs (unowned until claimed), and every patient and requester
named by an absolute reference is named by reading it on the partner's server
(:func:`fhircare.exchange.incoming.with_incoming`, as ``fhircare worklist`` does).

An incoming row's patient lives on the partner's server: the page never links it to a patient page
of ours."""

from __future__ import annotations

from collections.abc import Sequence

from flask import current_app

from ..views.rows import Rows
from ..views.worklist import WorklistRow
from .api import settings
from .fhir_access import access


def with_partners_incoming(
    rows: list[WorklistRow],
    tab: str,
    owner: str | None,
    statuses: Sequence[str],
    patient: str | None,
    due_before: str | None,
) -> list[WorklistRow]:
    """The tab's rows, with the partners' incoming referrals and their names; unchanged without partners."""
    holder = current_app.extensions.get("fhircare.exchange")
    partners = getattr(holder, "partners", None)
    if partners is None:
        return rows
    from ..exchange import Exchange
    from ..exchange.incoming import with_incoming

    # the team and unassigned tabs are the organization's: incoming referrals belong there
    owners = [owner] if tab == "mine" and owner else [partners.organization]
    with Exchange(settings(), partners, access().view_client()) as exchange:
        listed: Rows[WorklistRow] = with_incoming(exchange, rows, owners, statuses, patient, due_before)
    return listed
