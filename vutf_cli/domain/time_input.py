"""Times as people type them, and the zone tables show them in: the one parser of ``TIME``.

Every option that takes a ``TIME`` (``--since``, ``--until``, ``--expires-at``)
goes through :func:`parse_time`, which accepts:

* ``now``, ``today``, ``yesterday``, ``tomorrow`` (midnight in the chosen zone),
  and ``today 09:00`` / ``yesterday 17:30``;
* a clock time ``09:00`` or ``09:00:30``: today, in the chosen zone;
* a duration ago: ``15m``, ``2h``, ``7d``, ``1h30m``, ``2h ago``,
  ``1 hour ago``, ``90 minutes ago``, ``an hour ago``;
* an ISO 8601 date (``2026-05-01``, midnight) or date-time
  (``2026-05-01T12:00``, ``2026-05-01 12:00:00``), with a zone (``Z``,
  ``+02:00``) or without one: then it is in the chosen zone.

*The chosen zone* is the one ``VUTF_TIMEZONE`` names (an IANA name such as
``Europe/Berlin``, ``UTC``, or ``local`` for the system's zone) and, when it
is not set, **UTC** -- never silently the system's zone, so the same script
selects the same rows on a laptop and on a UTC runner.  The command line
chooses the zone once per command (:func:`use_zone`, from ``AppContext``); a
library caller that chooses none gets UTC.  A wall-clock time is converted
with the zone's offset *at that instant* (``zoneinfo`` rules, daylight saving
included); one that does not exist (the hour skipped in spring) is refused,
and one that occurs twice (the hour repeated in autumn) is the first
occurrence.  The same choice decides how tables show times
(:func:`table_time`): in that zone with its offset at each instant when
``VUTF_TIMEZONE`` is set, else in UTC with a ``Z``.  Machine output (json,
jsonl, csv) is always UTC ISO 8601 and never looks here.

Pure standard library (``zoneinfo``): no new dependency for a handful of
forms; the zone is a :class:`~contextvars.ContextVar`, so a command run in
a thread or a test never sees another's.
"""

from __future__ import annotations

import re
from contextvars import ContextVar
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vutf_cli.errors import InvalidInput

__all__ = [
    "ACCEPTED_FORMS",
    "chosen_zone",
    "parse_time",
    "parse_zone",
    "table_time",
    "use_zone",
]

ACCEPTED_FORMS: Final = (
    "now, today, yesterday, tomorrow; a clock time today (09:00, 'yesterday 17:30'); "
    "a duration ago (15m, 2h, 7d, 1h30m, '2h ago', '1 hour ago', '3 days ago'); "
    "an ISO 8601 date or date-time (2026-05-01, 2026-05-01T12:00, 2026-05-01 12:00Z, "
    "2026-05-01T12:00+02:00); no zone means VUTF_TIMEZONE's time if set, else UTC"
)

_UNIT_SECONDS: Final = {
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 7 * 86400,
    "week": 7 * 86400,
    "weeks": 7 * 86400,
}
# "2h30m", "1 hour 30 minutes", each part a number (or a/an) and a unit.
_PART: Final = re.compile(r"\s*(\d{1,9}|an?)\s*([a-z]+)")
_CLOCK: Final = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?")
_DAYS: Final = {"today": 0, "yesterday": -1, "tomorrow": 1}
# 100 Julian years, as for durations (domain.validation.MAX_DURATION).
_MAX_AGO: Final = 36525 * 86400

# None: no zone chosen (tables in UTC with Z, zone-less input read as UTC).
_ZONE: ContextVar[tzinfo | None] = ContextVar("vutf_time_zone", default=None)


class SystemZone(tzinfo):
    """The system's zone *with its rules* (``TZ``, /etc/localtime), as ``local`` names it.

    ``datetime.now().astimezone().tzinfo`` would be today's fixed offset and
    read a July time with December's offset; this asks the C library per
    value instead (PEP 495 ``fold`` included), so daylight saving is right.
    """

    def utcoffset(self, dt: datetime | None) -> timedelta | None:
        if dt is None:
            return None
        return dt.replace(tzinfo=None).astimezone().utcoffset()

    def dst(self, dt: datetime | None) -> timedelta | None:
        return None  # not needed: utcoffset and fromutc are exact

    def tzname(self, dt: datetime | None) -> str | None:
        return None if dt is None else dt.replace(tzinfo=None).astimezone().tzname()

    def fromutc(self, dt: datetime) -> datetime:
        aware = dt.replace(tzinfo=UTC).astimezone()  # the system's offset at that instant
        wall = aware.replace(tzinfo=None)
        fold = 0 if wall.astimezone().utcoffset() == aware.utcoffset() else 1
        return wall.replace(tzinfo=self, fold=fold)

    def __repr__(self) -> str:
        return "SystemZone()"


SYSTEM_ZONE: Final = SystemZone()


# -- the zone ---------------------------------------------------------------------------
def parse_zone(name: str, *, source: str = "VUTF_TIMEZONE") -> tzinfo:
    """The zone ``name`` names: an IANA name, ``UTC``, or ``local`` (the system's zone)."""
    cleaned = name.strip()
    if cleaned.lower() == "local":
        return SYSTEM_ZONE
    if cleaned.upper() in ("UTC", "Z"):
        return UTC
    try:
        if not cleaned or cleaned.startswith(("/", ".")) or ".." in cleaned:
            raise ValueError(cleaned)
        return ZoneInfo(cleaned)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(
            f"{source}: unknown time zone {cleaned[:60]!r}",
            hint="use an IANA name such as Europe/Berlin or America/New_York, UTC, or local",
        ) from None


def use_zone(zone: tzinfo | None) -> None:
    """Choose the zone of this command (None: none chosen); see the module docstring."""
    _ZONE.set(zone)


def chosen_zone() -> tzinfo | None:
    return _ZONE.get()


def _local(naive: datetime, zone: tzinfo) -> datetime:
    """``naive`` read as a wall-clock time in ``zone``, with the offset at that instant.

    A time in the spring gap does not exist there: refused (exit 2) rather
    than moved by an hour behind the caller's back.  A time in the autumn
    overlap is its first occurrence (``fold=0``), as ``zoneinfo`` reads it.
    """
    local = naive.replace(tzinfo=zone, fold=0)
    if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != naive:
        name = "the system's zone" if isinstance(zone, SystemZone) else str(zone)
        raise InvalidInput(
            f"{naive.isoformat(sep=' ')} does not exist in {name} (daylight saving gap)",
            hint="give a time outside the skipped hour, or one with a zone (Z, +01:00)",
        )
    return local


# -- parsing -------------------------------------------------------------------------------
def _duration_ago(spec: str) -> timedelta | None:
    """``2h``, ``1h30m``, ``2 hours ago``, ``an hour ago`` → the duration; None if not one."""
    text = spec.removesuffix("ago").strip()
    if not text:
        return None
    seconds = 0
    position = 0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            return None
        amount, unit = match.groups()
        if unit not in _UNIT_SECONDS:
            return None
        seconds += (1 if amount in ("a", "an") else int(amount)) * _UNIT_SECONDS[unit]
        position = match.end()
    if not 0 < seconds <= _MAX_AGO:
        return None
    return timedelta(seconds=seconds)


def _clock(spec: str) -> time | None:
    match = _CLOCK.fullmatch(spec)
    if match is None:
        return None
    hour, minute, second = match.groups()
    return time(int(hour), int(minute), int(second or 0))


def _day_and_clock(spec: str, today: date) -> datetime | None:
    """``today``, ``yesterday 17:30``, ``09:00``: a naive local date-time, or None."""
    word, _, rest = spec.partition(" ")
    if word in _DAYS:
        day = today + timedelta(days=_DAYS[word])
        at = _clock(rest.strip()) if rest.strip() else time(0)
        return None if at is None else datetime.combine(day, at)
    at = _clock(spec)
    return None if at is None else datetime.combine(today, at)


def _iso(spec: str, zone: tzinfo) -> datetime | None:
    text = spec.upper() if spec[-1:] in ("z", "Z") else spec
    try:
        if len(text) == 10:
            return _local(datetime.combine(date.fromisoformat(text), time(0)), zone)
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        return None
    return parsed if parsed.utcoffset() is not None else _local(parsed, zone)


def parse_time(text: str, now: datetime, *, zone: tzinfo | None = None) -> datetime:
    """The instant ``text`` names, as an aware UTC datetime; InvalidInput (exit 2) otherwise.

    ``now`` is passed in (callers and tests control the clock; naive means
    UTC).  ``zone`` is the zone of zone-less input for this call; by default
    the command's zone (:func:`use_zone`), else UTC (module docstring).
    """
    now = now.replace(tzinfo=UTC) if now.utcoffset() is None else now.astimezone(UTC)
    zone = zone if zone is not None else (_ZONE.get() or UTC)
    spec = " ".join(text.strip().split())
    lowered = spec.lower()
    try:
        if lowered == "now":
            return now
        found: datetime | None = None
        ago = _duration_ago(lowered)
        if ago is not None:
            found = now - ago
        else:
            local_now = now.astimezone(zone)
            naive = _day_and_clock(lowered, local_now.date())
            found = _local(naive, zone) if naive is not None else _iso(spec, zone)
        if found is not None:
            return found.astimezone(UTC)
    except (ValueError, OverflowError):
        pass  # a date out of range: as any other unreadable time
    shown = spec if len(spec) <= 40 else spec[:40] + "…"
    raise InvalidInput(f"invalid time {shown!r}", hint=f"accepted: {ACCEPTED_FORMS}")


# -- showing -------------------------------------------------------------------------------
def table_time(value: datetime) -> str:
    """A time as a table shows it: UTC with ``Z``, or the chosen zone with its offset.

    A naive value is UTC (as the SQLite column type stores it).  Seconds are
    precise enough to read; -o json has the microseconds, always in UTC.
    """
    utc = value.replace(tzinfo=UTC) if value.utcoffset() is None else value.astimezone(UTC)
    zone = _ZONE.get()
    if zone is None or zone is UTC:
        return utc.strftime("%Y-%m-%d %H:%M:%SZ")
    local = utc.astimezone(zone)
    offset = local.strftime("%z")  # +0100
    return local.strftime("%Y-%m-%d %H:%M:%S") + f"{offset[:3]}:{offset[3:]}"
