"""Plain-text rendering of a patient summary."""

from __future__ import annotations

from ..views.summary import PatientSummary


def render_summary(s: PatientSummary) -> str:
    lines = [f"{s.name}  ({s.patient})  born {s.birth_date or '?'}  {s.gender or ''}".rstrip()]

    def section(title: str, items: list[str]) -> None:
        lines.append(f"\n{title}")
        lines.extend(f"  - {item}" for item in items) if items else lines.append("  (none)")

    section(
        "Care plans",
        [
            f"{p['title']} [{p['status']}]; goals: {', '.join(g['description'] for g in p['goals']) or '-'}; "
            f"activities: {len(p['activities'])}"
            for p in s.care_plans
        ],
    )
    section("Open tasks", [f"{t['what']} [{t['status']}] due {t['due'] or '-'}" for t in s.open_tasks])
    section(
        "Upcoming appointments",
        [f"{a['start']} {a['what']} [{a['status']}]" for a in s.upcoming_appointments],
    )
    section("Missed appointments", [f"{a['start']} {a['what']}" for a in s.missed_appointments])
    section(
        "Coverage",
        [
            f"{c['payor']} [{c['status']}]{' EXPIRED' if c['expired'] else ''}"
            f"{' eligibility: ' + str(c['eligibility']) if c['eligibility'] else ''}"
            for c in s.coverage
        ],
    )
    section(
        "Prior authorizations",
        [
            f"{a['service'] or a['claim']} requested {a['requested'] or '-'}: {a['decision_text']}"
            f"{' (authorization ' + a['auth_number'] + ')' if a['auth_number'] else ''}"
            for a in s.prior_authorizations
        ],
    )
    section("Recent communications", [f"{m['sent'] or '-'} {m['topic']}" for m in s.communications])
    section("Care team", [f"{m['name'] or m['member']} ({m['role'] or 'member'})" for m in s.care_team])
    section("Family", [f"{f['name']} ({f['relationship']}) {f['phone'] or ''}".rstrip() for f in s.family])
    if s.problems:
        section("Not shown (server problems)", s.problems)
    return "\n".join(lines)
