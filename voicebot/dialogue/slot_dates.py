"""Dates and periods relative to the day of the call.

"Next Friday" means nothing without the call's date, and people disagree on it, so the
conventions are written down here (they follow the NLU++ annotators, whose data is how
the parser is measured):

- a bare weekday is the next one after today ("Tuesday" said on a Tuesday is a week on);
  "this X" is X of the current Monday-to-Sunday week, "next X" X of next week, "last X"
  the most recent X before today, "X last week" X of last week;
- a day and month with no year is this year unless the month is already over, then next
  year ("Jan 19th" in March is next January); a bare "18th" is the next 18th (today
  included), "last 13th" the most recent one; "3/5" is the 3rd of May (UK order);
- a month or a year alone, as a start, is its first day, as an end (``date_to``) its last;
- "last N days/weeks/months/years" ends at the start of the current unit and begins N
  units before it ("last 3 days" on the 15th: the 12th to the 15th); "next N ..." begins
  at the start of the next unit; "this/last/next week|month|quarter|year" is the whole
  calendar unit; "N days" with no anchor is a duration, "every month" a recurrence.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from voicebot.dialogue.slot_values import (
    ORDINALS,
    TENS,
    SlotValue,
    ordinal,
    parse_duration,
    tokens,
    unit,
    words_to_number,
)

MONTHS = {
    name: i + 1
    for i, names in enumerate(
        [("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"),
         ("may",), ("june", "jun"), ("july", "jul"), ("august", "aug"),
         ("september", "sep", "sept"), ("october", "oct"), ("november", "nov"),
         ("december", "dec")]
    )
    for name in names
}  # fmt: skip
WEEKDAYS = {
    name: i
    for i, names in enumerate(
        [("monday", "mon"), ("tuesday", "tue", "tues"), ("wednesday", "wed"),
         ("thursday", "thu", "thur", "thurs"), ("friday", "fri"), ("saturday", "sat"),
         ("sunday", "sun")]
    )
    for name in names
}  # fmt: skip
PAST = {"last", "previous", "past", "prior"}
THIS = {"this", "current", "present"}
SEASONS = {"spring": (3, 20, 6, 20), "summer": (6, 21, 9, 22), "autumn": (9, 23, 12, 20),
           "fall": (9, 23, 12, 20), "winter": (12, 21, 3, 19)}  # fmt: skip
RECURRING = {"daily": "day", "weekly": "week", "fortnightly": "fortnight", "monthly": "month",
             "quarterly": "quarter", "yearly": "year", "annually": "year"}  # fmt: skip
UNIT_DAYS = {"day": 1, "week": 7, "fortnight": 14, "month": 30, "quarter": 91, "year": 365}
_DROP = {"the", "of", "on", "at", "by", "until", "till", "since", "during", "starting", "around"}


def add_months(day: date, months: int) -> date:
    """The same day `months` later (clamped to the month's length: Jan 31 + 1 = Feb 28)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, _month_length(year, month + 1)))


def _month_length(year: int, month: int) -> int:
    return ((date(year + month // 12, month % 12 + 1, 1)) - date(year, month, 1)).days


def unit_start(day: date, name: str) -> date:
    """First day of the calendar unit (week from Monday) that contains `day`."""
    if name == "week":
        return day - timedelta(days=day.weekday())
    if name == "month":
        return day.replace(day=1)
    if name == "quarter":
        return date(day.year, (day.month - 1) // 3 * 3 + 1, 1)
    if name == "year":
        return date(day.year, 1, 1)
    return day


def shift(day: date, name: str, count: int) -> date:
    """`day` moved by `count` units (calendar months for month/quarter/year)."""
    months = {"month": 1, "quarter": 3, "year": 12}.get(name)
    if months is not None:
        return add_months(day, months * count)
    return day + timedelta(days=UNIT_DAYS[name] * count)


def _words(text: str) -> list[str]:
    """Tokens without filler; 'twenty first' joined to '21st'."""
    out: list[str] = []
    for word in tokens(text):
        if word in _DROP:
            continue
        if out and out[-1] in TENS and ORDINALS.get(word, 10) < 10:
            out[-1] = f"{TENS[out[-1]] + ORDINALS[word]}th"
        else:
            out.append(word)
    return out


def _count(words: list[str]) -> int | None:
    """'3', 'three', 'a', 'few', 'couple' before a unit."""
    spoken = [w for w in words if w not in ("and", "of")]
    if spoken in ([], ["a"], ["an"], ["one"]):
        return 1
    if spoken in (["few"], ["a", "few"]):
        return 3
    if spoken in (["couple"], ["a", "couple"]):
        return 2
    value = words_to_number(spoken)
    return int(value) if value is not None and value == int(value) else None


def _year_for(month: int, today: date) -> int:
    return today.year if month >= today.month else today.year + 1


def _relative(words: list[str], today: date) -> date | None:
    """'3 days ago', 'in two weeks', 'two days from now'."""
    at = next((i for i, w in enumerate(words) if unit(w) in UNIT_DAYS), None)
    if at is None:
        return None
    name = unit(words[at])
    assert name is not None
    after = words[at + 1 :]
    if after == ["ago"]:
        sign, before = -1, words[:at]
    elif words[:1] == ["in"] and not after:
        sign, before = 1, words[1:at]
    elif after in (["from", "now"], ["later"], ["time"], ["from", "today"]):
        sign, before = 1, words[:at]
    else:
        return None
    count = _count(before)
    return None if count is None else shift(today, name, sign * count)


def _weekday(words: list[str], today: date) -> date | None:
    wd = next(WEEKDAYS[w] for w in words if w in WEEKDAYS)
    this_week = unit_start(today, "week")
    if PAST & set(words):
        back = (today.weekday() - wd) % 7 or 7
        day = this_week - timedelta(days=7 - wd) if "week" in words else today - timedelta(back)
    elif "next" in words:
        day = this_week + timedelta(days=7 + wd)
    elif THIS & set(words):
        day = this_week + timedelta(days=wd)
    else:
        day = today + timedelta(days=(wd - today.weekday()) % 7 or 7)
    if "in" in words:  # "Wednesday in a week", "Thursday in two weeks"
        at = words.index("in")
        weeks = _count([w for w in words[at + 1 :] if unit(w) != "week"])
        day += timedelta(days=7 * (weeks or 0))
    elif "after" in words:  # "Friday after next"
        day += timedelta(days=7)
    return day


def _explicit(words: list[str], today: date, role: str) -> date | None:
    """Day, month and year in any order: '3rd of May', 'May the 3rd 2021', '2019'."""
    month = next((MONTHS[w] for w in words if w in MONTHS), None)
    year = next((int(w) for w in words if re.fullmatch(r"(1[89]|2[01])\d\d", w)), None)
    day = next((d for w in words if (d := ordinal(w)) is not None), None)
    if day is None and month is not None:
        day = next((int(w) for w in words if w.isdigit() and 1 <= int(w) <= 31), None)
    ending = role == "date_to" or "end" in words
    weekday = next((WEEKDAYS[w] for w in words if w in WEEKDAYS), None)
    try:
        if month is not None and day is not None:
            if year:
                return date(year, month, day)
            found = _next_valid(_year_for(month, today), month, day)
            if weekday is not None:  # "Friday, October the 16th": the next year it is one
                later = (_next_valid(found.year + n, month, day) for n in range(12))
                return next((d for d in later if d.weekday() == weekday), found)
            return found
        if month is not None:
            first = date(year or _year_for(month, today), month, 1)
            return shift(first, "month", 1) - timedelta(1) if ending else first
        if day is not None:
            return _nth(day, today, past=bool(PAST & set(words)), weekday=weekday)
        if year is not None:
            return date(year, 12, 31) if ending else date(year, 1, 1)
    except ValueError:
        return None
    return None


def _next_valid(year: int, month: int, day: int) -> date:
    """`day` of `month` in `year` or the first later year that has it (29 February)."""
    while True:
        try:
            return date(year, month, day)
        except ValueError:
            year += 1


def _nth(day: int, today: date, *, past: bool, weekday: int | None) -> date:
    """The next (or, `past`, the last) `day`-th of a month; on `weekday` if one is named."""
    step = -1 if past else 1
    month = today.replace(day=1)
    for _ in range(48):
        if day <= _month_length(month.year, month.month):
            found = month.replace(day=day)
            in_range = found < today if past else found >= today
            if in_range and (weekday is None or found.weekday() == weekday):
                return found
        month = add_months(month, step)
    raise ValueError(f"no {day}th found")


def _calendar(words: list[str], today: date) -> tuple[date, date] | None:
    """'this week', 'last month', 'next quarter', 'current year': the whole unit."""
    name = next((u for w in words if (u := unit(w)) in ("week", "month", "year", "day")), None)
    if name is None and "quarter" in words:
        name = "quarter"
    if name is None or name == "day" or len(words) != 2:
        return None
    start = unit_start(today, name)
    if words[0] in PAST:
        start = shift(start, name, -1)
    elif words[0] == "next":
        start = shift(start, name, 1)
    elif words[0] not in THIS:
        return None
    return start, shift(start, name, 1) - timedelta(1)


def parse_date(text: str, today: date, role: str = "date") -> date | None:
    """One calendar day; `role` 'date_to' makes a bare month or year mean its last day."""
    words = _words(text)
    if not words:
        return None
    joined = " ".join(words)
    if "yesterday" in words or joined == "last night":
        return today - timedelta(2 if "before" in words else 1)
    if "tomorrow" in words:
        return today + timedelta(2 if "after" in words else 1)
    if joined in ("today", "now", "tonight") or (
        words[0] in THIS and words[1:] in (["morning"], ["afternoon"], ["evening"])
    ):
        return today
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
        try:
            return date.fromisoformat(text.strip())
        except ValueError:
            return None
    slash = re.fullmatch(r"(\d{1,2})[/.](\d{1,2})(?:[/.](\d{2}|\d{4}))?", joined)
    if slash:
        d, m, y = int(slash[1]), int(slash[2]), slash[3]
        year = (int(y) + 2000 if len(y) == 2 else int(y)) if y else _year_for(m, today)
        try:
            return date(year, m, d)
        except ValueError:
            return None
    relative = _relative(words, today)
    if relative is not None:
        return relative
    has_day = any(w in MONTHS or ordinal(w) is not None for w in words)
    if any(w in WEEKDAYS for w in words) and not has_day:
        return _weekday(words, today)
    core = [w for w in words if w not in ("end", "beginning", "start")]
    if len(core) == 1 and len(words) > 1 and unit(core[0]) is not None:  # "end of the month"
        core = ["this", *core]
    bounds = _calendar(core, today)
    if bounds is not None:
        return bounds[1] if role == "date_to" or "end" in words else bounds[0]
    return _explicit(words, today, role)


def _span(words: list[str], today: date) -> tuple[date, date] | None:
    """'last 3 days', 'past two weeks', 'next 4 months', 'last few months'."""
    direction = words[0]
    if (direction not in PAST and direction != "next") or len(words) < 3:
        return None
    name = unit(words[-1])
    count = _count(words[1:-1])
    if name not in UNIT_DAYS or count is None:
        return None
    start = unit_start(today, name)
    if direction == "next":
        first = shift(start, name, 1)
        return first, shift(first, name, count)
    return shift(start, name, -count), start


def normalize_period(slot: str, text: str, today: date) -> SlotValue:
    """A date period: a (start, end) range, a duration, a recurrence, or vague."""
    words = _words(text)
    if not words or set(words) & {"lately", "recently", "recent", "while", "ages"} or words in (
        ["days"], ["for", "days"], ["weeks"], ["months"], ["years"],
    ):  # fmt: skip
        return SlotValue(slot, text, "vague" if words else "unparsed")
    recurring = next((RECURRING[w] for w in words if w in RECURRING), None)
    if recurring is None and set(words) & {"each", "every", "per"}:
        recurring = next((u for w in words if (u := unit(w)) in UNIT_DAYS), "month")
    if recurring is not None:
        return SlotValue(slot, text, "recurring", duration=timedelta(days=UNIT_DAYS[recurring]))
    bounds = _calendar(words, today) or _span(words, today)
    if bounds is None and words[-1] in SEASONS:
        m1, d1, m2, d2 = SEASONS[words[-1]]
        year = today.year - (1 if PAST & set(words) else 0) + (1 if "next" in words else 0)
        bounds = date(year, m1, d1), date(year + (m2 < m1), m2, d2)
    if bounds is None and not any(w in MONTHS or ordinal(w) for w in words):
        span = parse_duration(text)
        if span is not None and unit(words[-1]) in UNIT_DAYS:
            return SlotValue(slot, text, "duration", duration=span)
    if bounds is None and any(w in MONTHS or re.fullmatch(r"\d{4}", w) for w in words):
        bounds = _month_or_year(words, today)
    if bounds is None and words[0] == "week" and len(words) > 1:  # "the week of the 1st"
        day = parse_date(" ".join(words[1:]), today)
        bounds = (
            None
            if day is None
            else (unit_start(day, "week"), unit_start(day, "week") + timedelta(6))
        )
    if bounds is None:
        day = parse_date(text, today)
        bounds = (day, day) if day is not None else None
    if bounds is None:
        return SlotValue(slot, text, "unparsed")
    return SlotValue(slot, text, "period", start=bounds[0], end=bounds[1])


def _month_or_year(words: list[str], today: date) -> tuple[date, date] | None:
    """'October', 'October last year', 'September 2023', 'during 2017'."""
    if any(ordinal(w) is not None for w in words):
        return None
    start = _explicit(words, today, "date_from")
    if start is None:
        return None
    if "year" in words and (PAST & set(words) or "next" in words or THIS & set(words)):
        offset = -1 if PAST & set(words) else 1 if "next" in words else 0
        start = start.replace(year=today.year + offset)
    name = "month" if any(w in MONTHS for w in words) else "year"
    return start, shift(start, name, 1) - timedelta(1)


#: Parts of the day as clock ranges (the end may be past midnight: "evening" ends 00:00).
DAY_PARTS = {"morning": (0, 12), "afternoon": (12, 19), "evening": (18, 0), "night": (21, 6),
             "lunchtime": (12, 14), "overnight": (21, 6)}  # fmt: skip


def normalize_time_period(slot: str, text: str, now: datetime | None) -> SlotValue:
    """'last 3 hours', 'next 8 minutes' (need `now`), 'afternoon', 'half an hour'."""
    words = _words(text)
    part = next((DAY_PARTS[w] for w in words if w in DAY_PARTS), None)
    if part is not None:
        return SlotValue(slot, text, "time_range", clock=time(part[0]), clock_end=time(part[1]))
    if words in (["hours"], ["minutes"], ["for", "hours"], ["ages"]):
        return SlotValue(slot, text, "vague")
    if len(words) > 1 and (words[0] in PAST or words[0] == "next"):
        spoken = words[1:]
        span = parse_duration(" ".join(spoken if unit(spoken[0]) is None else ["1", *spoken]))
        if span is None or now is None or span >= timedelta(days=1):
            return SlotValue(slot, text, "unparsed")
        if words[0] in PAST:
            return SlotValue(
                slot, text, "time_range", clock=(now - span).time(), clock_end=now.time()
            )
        # "next 2 hours" starts on the hour, "next 8 minutes" (or 1.5 hours) on the minute
        hour = timedelta(hours=1)
        step = hour if span % hour == timedelta() else timedelta(minutes=1)
        start = datetime.min + ((now - datetime.min) // step + 1) * step
        end = start + span
        return SlotValue(slot, text, "time_range", clock=start.time(), clock_end=end.time())
    span = parse_duration(text)
    if span is not None:
        return SlotValue(slot, text, "duration", duration=span)
    return SlotValue(slot, text, "unparsed")
