"""Every kind of notification the server writes to the outbox, and what the browser's
inbox (web/static/inbox.js, fed by /ws/user) does with it.

The payload names the consult by its public id, under "consult" (consults) or
"consult_id" (scheduling); the inbox reads either. tests/web/test_notification_kinds.py
checks that every notify() call in server/ uses a kind listed here and that inbox.js
rings for exactly the kinds below.
"""

from __future__ import annotations

KINDS: dict[str, str] = {
    # consults
    "consult.requested": "a new request in the specialist's specialty pool",
    "consult.status": "the consult moved through its lifecycle (to the other side)",
    "consult.overdue": "no specialist answered in time: escalated nationwide, admins told",
    "consult.mode": "the consult switched between video and written",
    "consult.message": "a new message in the written exchange",
    # scheduling
    "appointment.booked": "a slot was booked with the specialist",
    "appointment.cancelled": "the other side cancelled an appointment",
    "appointment.rescheduled": "the other side moved an appointment",
    "urgent.ring": "an urgent consult is ringing the on-call specialist",
    "urgent.escalated": "an urgent ring went unanswered regionally, or an urgent consult"
    " passed its response target (the regional hub's administrators)",
    "urgent.taken": "another specialist accepted the urgent consult this one was rung for",
    "urgent.accepted": "a specialist accepted the GP's urgent consult",
}

# The ring itself is state (/urgent/panel, server/scheduling/urgent_views.py): the inbox
# reads it again on every notification. These kinds may start a ring ...
RING_ALWAYS = frozenset({"urgent.ring", "urgent.escalated"})
# ... these when the payload says the consult is urgent ...
RING_IF_URGENT = frozenset({"consult.requested", "consult.overdue"})
# ... and these may end one (someone has taken the consult).
STOP_RING = frozenset({"urgent.taken", "urgent.accepted"})
