"""Which service is which in the KPIs: a service is its PagerDuty id, shown by its current name.

Incidents group by `service_key` (bot/core/incident_table.py): the PagerDuty service id, or, for incidents
without one (declared by hand with `/postmortem new`, or recorded before ids were kept), their service name.
A service is shown by its current name, the name on its most recent incident, so a renamed service is one
row under its new name. Two services of one name are both shown with their id after it ("Checkout
(PABC123)"); a service without an id keeps its bare name.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import text
from sqlmodel import Session

from bot.core.errors import UserError
from bot.core.incident_table import NAME_KEY

NO_SERVICE = "(no service)"

# Every service key and the name on its latest incident. The keys are read by skipping through the
# (service_key, triggered_at, id) index (a recursive "next key after this one"), so the cost is the number
# of services, not of incidents; the same index gives each one's latest incident.
_CURRENT_NAMES = text(
    """
    WITH RECURSIVE keys(k) AS (
        SELECT min(service_key) FROM incidents
        UNION ALL
        SELECT (SELECT min(i.service_key) FROM incidents i WHERE i.service_key > keys.k)
        FROM keys WHERE keys.k IS NOT NULL
    )
    SELECT k, (
        SELECT n.service_name FROM incidents n WHERE n.service_key = keys.k
        ORDER BY n.triggered_at DESC, n.id DESC LIMIT 1
    )
    FROM keys WHERE k IS NOT NULL
    """
)


def current_names(session: Session) -> dict[str, str]:
    """Every service key and the service's current name (its id when no incident of it had a name)."""
    return {key: name or key for key, name in session.execute(_CURRENT_NAMES).all()}


def shown_names(current: dict[str, str]) -> dict[str | None, str]:
    """How each service is shown: its current name, with its id after it when another service has that
    name too. The key None (no service) is shown as NO_SERVICE."""
    taken = Counter(current.values())
    shown: dict[str | None, str] = {None: NO_SERVICE}
    for key, name in current.items():
        by_id = not key.startswith(NAME_KEY)
        shown[key] = f"{name} ({key})" if by_id and taken[name] > 1 else name
    return shown


def service_key_for(current: dict[str, str], wanted: str) -> str:
    """The key of the service `wanted` names: a service id, a current name, or a name as shown. A name
    of several services is refused, naming their ids; a name of none is the key it would have."""
    if wanted in current and not wanted.startswith(NAME_KEY):
        return wanted
    shown = shown_names(current)
    matches = sorted(key for key, name in current.items() if wanted in (name, shown[key]))
    if len(matches) > 1:
        ids = ", ".join(
            key.removeprefix(NAME_KEY) + " (no id)" if key.startswith(NAME_KEY) else key for key in matches
        )
        raise UserError(f"{wanted!r} names {len(matches)} services: {ids}. Give the service's id instead.")
    return matches[0] if matches else f"{NAME_KEY}{wanted}"
