"""A folder replay's overview page: one row per call, linking to each call's report.

After a folder of recorded calls is replayed QA first wants the verdicts at a glance
(which calls broke a rule, which got slower or angrier) and then one click into a
call's page. Rows keep the order given (the replay's order); links are relative
(`<name>/report.html`), so the folder can be zipped or moved and still works.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from voicebot.report.data import ms, num, signed, text
from voicebot.report.style import page


def _e(value: str) -> str:
    return escape(value, quote=True)


def _index_row(s: Mapping[str, Any]) -> tuple[str, bool | None]:
    """A summary may be flat or shaped like report.json (nested summary/comparison)."""
    nested = s.get("summary")
    numbers: Mapping[str, Any] = nested if isinstance(nested, Mapping) else s
    comp = s.get("comparison")
    passed_raw = comp.get("passed") if isinstance(comp, Mapping) else s.get("passed")
    passed = passed_raw if isinstance(passed_raw, bool) else None
    rules = comp.get("rules_broken") if isinstance(comp, Mapping) else s.get("rules_broken")
    name = text(s.get("name"))
    link = f'<a href="{_e(quote(name, safe="/") + "/report.html")}">{_e(name)}</a>' if name else "—"

    def count(key: str) -> str:
        n = num(numbers.get(key))
        return "—" if n is None else f"{n:.0f}"

    if passed is None:
        verdict = "—"
    elif passed:
        verdict = '<span class="pass">✓ pass</span>'
    else:
        broken = ", ".join(text(x) for x in rules) if isinstance(rules, list) else ""
        verdict = '<span class="fail">✗ fail</span>' + (f" ({_e(broken)})" if broken else "")
    cells = [
        link,
        _e(text(s.get("input"))),
        count("turns"),
        count("barge_ins"),
        count("handoffs"),
        _e(ms(num(numbers.get("voice_to_voice_ms_median")))),
        _e(signed(num(numbers.get("mean_sentiment")))),
        verdict,
    ]
    row = "".join(
        f'<td class="num">{c}</td>' if 2 <= i <= 6 else f"<td>{c}</td>" for i, c in enumerate(cells)
    )
    return f'<tr data-call="{_e(name)}">{row}</tr>', passed


def render_index(summaries: Sequence[Mapping[str, Any]]) -> str:
    """A folder replay's overview: one row per call, linking to `<name>/report.html`."""
    rows: list[str] = []
    verdicts: list[bool | None] = []
    for s in summaries if isinstance(summaries, Iterable) else ():
        if isinstance(s, Mapping):
            row, passed = _index_row(s)
            rows.append(row)
            verdicts.append(passed)
    passed_n = sum(v is True for v in verdicts)
    failed_n = sum(v is False for v in verdicts)
    heads = [
        "Call",
        "Input",
        "Turns",
        "Barge-ins",
        "Handoffs",
        "Median V2V",
        "Sentiment",
        "Comparison",
    ]
    head = "".join(
        f'<th class="num">{h}</th>' if 2 <= i <= 6 else f"<th>{h}</th>" for i, h in enumerate(heads)
    )
    table = (
        f'<div class="scroll"><table aria-label="Replayed calls"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
        if rows
        else '<p class="text none">No calls were replayed.</p>'
    )
    body = (
        '<header><p class="eyebrow">Replay overview</p>'
        f"<h1>{len(rows)} call{'s' if len(rows) != 1 else ''} replayed</h1>"
        f'<p class="meta">{passed_n} passed · {failed_n} failed · '
        f"{len(rows) - passed_n - failed_n} not compared</p></header>"
        f'<section class="card">{table}</section>'
    )
    return page("Replay overview", body, script=False)
