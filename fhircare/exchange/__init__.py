"""Between organizations: a referral's Task on the partner's server, kept in step with ours.

Gravity SDOH Clinical Care 3.0.0 patterns (direct, light, via a coordination platform). Partners are
configuration (:mod:`.partners`); :func:`send` creates the partner's Task exactly once; :func:`sync_once`
replays the partner's changes onto ours; :func:`cancel` and :func:`resolve` handle the requester's side
of a clash; :func:`work` is the performer's side.
"""

from .cancel import cancel
from .context import Exchange, PartnerAnswerError, PartnerUnreachable
from .partners import (
    Partner,
    Partners,
    check_organizations,
    load_partners,
    load_partners_file,
    parse_partners,
)
from .performer import guard_owner_change, work
from .send import send
from .status import partner_states, referrals, resolve
from .sync import sync_once, sync_partner

__all__ = [
    "Exchange",
    "Partner",
    "PartnerAnswerError",
    "PartnerUnreachable",
    "Partners",
    "cancel",
    "check_organizations",
    "guard_owner_change",
    "load_partners",
    "load_partners_file",
    "parse_partners",
    "partner_states",
    "referrals",
    "resolve",
    "send",
    "sync_once",
    "sync_partner",
    "work",
]
