"""A specialist's secret iCalendar feed: only a hash of the URL's secret is stored."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from icalendar import Calendar, Event
from sqlmodel import Session, col, select

from server.accounts.models import User
from server.audit import service as audit
from server.clock import utcnow
from server.consults.models import ConsultRequest
from server.scheduling.models import Appointment, AppointmentStatus, CalendarFeed

FEED_PAST_DAYS = 30


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def renew_feed(session: Session, specialist: User, *, ip: str = "") -> str:
    """A new secret (shown once); any earlier URL stops working."""
    token = secrets.token_urlsafe(32)
    feed = session.exec(
        select(CalendarFeed).where(CalendarFeed.specialist_id == specialist.id)
    ).first()
    if feed is None:
        feed = CalendarFeed(specialist_id=specialist.id or 0)
    feed.token_hash = _hash(token)
    feed.created_at = utcnow()
    feed.revoked_at = None
    session.add(feed)
    session.flush()
    audit.record(
        session,
        "calendar.feed_renewed",
        actor_id=specialist.id,
        ip=ip,
        object_type="calendarfeed",
        object_id=feed.id or 0,
        organisation_id=specialist.organisation_id,
    )
    return token


def revoke_feed(session: Session, specialist: User, *, ip: str = "") -> bool:
    feed = session.exec(
        select(CalendarFeed).where(CalendarFeed.specialist_id == specialist.id)
    ).first()
    if feed is None or feed.token_hash is None:
        return False
    feed.token_hash = None
    feed.revoked_at = utcnow()
    session.add(feed)
    audit.record(
        session,
        "calendar.feed_revoked",
        actor_id=specialist.id,
        ip=ip,
        object_type="calendarfeed",
        object_id=feed.id or 0,
        organisation_id=specialist.organisation_id,
    )
    return True


def has_feed(session: Session, specialist: User) -> bool:
    feed = session.exec(
        select(CalendarFeed).where(CalendarFeed.specialist_id == specialist.id)
    ).first()
    return feed is not None and feed.token_hash is not None


def specialist_for_token(session: Session, token: str) -> User | None:
    if not token or len(token) > 100:
        return None
    feed = session.exec(select(CalendarFeed).where(CalendarFeed.token_hash == _hash(token))).first()
    return session.get(User, feed.specialist_id) if feed is not None else None


def calendar_uid(appointment: Appointment) -> str:
    """The event's UID: kept across reschedules (the first appointment's)."""
    return appointment.calendar_uid or f"appointment-{appointment.id}@dari"


def feed_ics(
    session: Session, specialist: User, base_url: str, now: datetime | None = None
) -> bytes:
    """The specialist's appointments as iCalendar. No patient data: a calendar leaves Dari."""
    now = now or utcnow()
    calendar = Calendar()
    calendar.add("prodid", "-//Dari//scheduling//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"Dari — {specialist.name}")
    rows = session.exec(
        select(Appointment, ConsultRequest)
        .join(ConsultRequest, col(ConsultRequest.id) == col(Appointment.consult_request_id))
        .where(
            Appointment.specialist_id == specialist.id,
            col(Appointment.starts_at) >= now - timedelta(days=FEED_PAST_DAYS),
            # A rescheduled appointment's event lives on in its successor (same UID).
            col(Appointment.status).in_(
                [AppointmentStatus.ACTIVE, AppointmentStatus.CANCELLED, AppointmentStatus.COMPLETED]
            ),
        )
        .order_by(col(Appointment.starts_at))
    ).all()
    for appointment, consult in rows:
        event = Event()
        event.add("uid", calendar_uid(appointment))
        event.add("sequence", appointment.sequence)
        event.add("dtstamp", now)
        event.add("dtstart", appointment.starts_at)
        event.add("dtend", appointment.ends_at)
        event.add("summary", "Dari consult")
        event.add("url", f"{base_url.rstrip('/')}/consults/{consult.public_id}")
        cancelled = appointment.status == AppointmentStatus.CANCELLED
        event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
        calendar.add_component(event)
    data: bytes = calendar.to_ical()
    return data
