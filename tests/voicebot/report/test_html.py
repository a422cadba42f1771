"""The QA replay report page: content, escaping, self-containment, and a real browser.

The unit tests read the HTML with the stdlib parser (what a browser would see as text,
not substrings of markup). The browser tests load the written page in headless Debian
Chromium and fail on any console message, on any error the page's own script
recorded, and when the browser shows a different number of turns than the report has.
"""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import time
import wave
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from voicebot.report import render_index, render_report, write_report
from voicebot.report.data import clock, parse_report, split_heard

CHROMIUM = Path("/usr/bin/chromium")
XSS = "<script>alert(1)</script> & \"quotes\" 'too' <!-- </article> <img src=x onerror=alert(2)>"


def make_report(**overrides: Any) -> dict[str, Any]:
    """A realistic replay of a three-turn banking call with a barge-in and a handoff."""
    report: dict[str, Any] = {
        "input": "calls/bank_train_001",
        "call_id": "replay-3f2a9c",
        "duration_s": 31.6,
        "turns": [
            {
                "index": 1,
                "started_s": 3.1,
                "ended_s": 6.4,
                "caller_text": "Hi, I ordered a new card last week and it still hasn't arrived.",
                "intent": "card_arrival",
                "intent_confidence": 0.93,
                "sentiment": -0.42,
                "outcome": "answer",
                "bot_text": "New cards usually arrive within 5 working days. "
                "If it's been longer, I can order a replacement for you.",
                "heard_text": "New cards usually arrive within 5 working days.",
                "barge_in": True,
                "handoff": None,
                "bot_started_s": 7.1,
                "bot_ended_s": 9.8,
                "timings": {
                    "asr_ms": 504.1,
                    "dialogue_ms": 19.3,
                    "tts_first_audio_ms": 0.0,
                    "voice_to_voice_ms": 690.0,
                },
            },
            {
                "index": 2,
                "started_s": 9.6,
                "ended_s": 13.2,
                "caller_text": "It's been two weeks! This is ridiculous, I need my card.",
                "intent": "card_delivery_estimate",
                "intent_confidence": 0.41,
                "sentiment": -0.81,
                "outcome": "handoff_offer",
                "bot_text": "I'm sorry about the wait. Would you like me to put you through "
                "to a colleague?",
                "heard_text": "I'm sorry about the wait. Would you like me to put you through "
                "to a colleague?",
                "barge_in": False,
                "handoff": {"state": "offered", "reason": "caller upset", "at_s": 13.9},
                "bot_started_s": 13.9,
                "bot_ended_s": 18.4,
                "timings": {
                    "asr_ms": 611.0,
                    "dialogue_ms": 42.7,
                    "tts_first_audio_ms": 88.2,
                    "voice_to_voice_ms": 910.5,
                },
            },
            {
                "index": 3,
                "started_s": 19.5,
                "ended_s": 20.6,
                "caller_text": "Yes please.",
                "intent": None,
                "intent_confidence": None,
                "sentiment": 0.3,
                "outcome": "handoff_accepted",
                "bot_text": "Putting you through now. Thanks for your patience.",
                "heard_text": "Putting you through now. Thanks for your patience.",
                "barge_in": False,
                "handoff": {"state": "accepted", "reason": "caller asked", "at_s": 21.3},
                "bot_started_s": 21.3,
                "bot_ended_s": 24.0,
                "timings": {
                    "asr_ms": 402.2,
                    "dialogue_ms": 12.0,
                    "tts_first_audio_ms": 0.0,
                    "voice_to_voice_ms": 700.0,
                },
            },
        ],
        "prompts": [
            {
                "kind": "greeting",
                "at_s": 0.0,
                "bot_text": "Thanks for calling Northbank. How can I help you today?",
                "heard_text": "Thanks for calling Northbank.",
                "barge_in": True,
            },
            {
                "kind": "closing",
                "at_s": 30.1,
                "bot_text": "Goodbye.",
                "heard_text": "Goodbye.",
                "barge_in": False,
            },
        ],
        "summary": {
            "turns": 3,
            "barge_ins": 2,
            "handoffs": 2,
            "voice_to_voice_ms_median": 700.0,
            "mean_sentiment": -0.31,
            "intents": ["card_arrival", "card_delivery_estimate"],
        },
        "comparison": None,
    }
    report.update(overrides)
    return report


FAILED_COMPARISON = {
    "original": "calls/bank_train_001/transcript.json",
    "passed": False,
    "rules_broken": ["intent"],
    "differences": [
        {
            "turn": 2,
            "field": "intent",
            "original": "card_arrival",
            "replayed": "card_delivery_estimate",
        },
        {
            "turn": 3,
            "field": "caller_text",
            "original": "Yes, please do.",
            "replayed": "Yes please.",
        },
        {"turn": 7, "field": "outcome", "original": "closing", "replayed": None},
    ],
}


def make_wav(seconds: float = 0.5, rate: int = 8000) -> bytes:
    """Stereo 8 kHz PCM16 like the replay's clips: caller tone left, bot tone right."""
    t = np.arange(int(seconds * rate)) / rate
    caller = 0.3 * np.sin(2 * np.pi * 220 * t)
    bot = 0.3 * np.sin(2 * np.pi * 440 * t) * (t > seconds / 2)
    frames = (np.stack([caller, bot], axis=1) * 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames.tobytes())
    return buf.getvalue()


class Page(HTMLParser):
    """The parsed page: elements with their attributes, and the text of each data-field."""

    VOID = frozenset({"meta", "link", "br", "img", "input", "source", "hr", "wbr", "track"})

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.fields: dict[tuple[str, str], str] = {}
        self.text_parts: list[str] = []
        self._stack: list[tuple[str, dict[str, str]]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.elements.append((tag, a))
        if tag not in self.VOID:
            self._stack.append((tag, a))

    def handle_endtag(self, tag: str) -> None:
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                del self._stack[i:]
                break

    def handle_data(self, data: str) -> None:
        if any(tag in ("style", "script") for tag, _ in self._stack):
            return
        self.text_parts.append(data)
        owner = next((a for _, a in reversed(self._stack) if "data-turn" in a), None)
        where = owner["data-turn"] if owner else "prompt"
        for _, a in self._stack:
            if "data-field" in a:
                key = (where, a["data-field"])
                self.fields[key] = self.fields.get(key, "") + data

    @property
    def text(self) -> str:
        return "".join(self.text_parts)

    def find(self, tag: str | None = None, **attrs: str) -> list[dict[str, str]]:
        want = {k.replace("_", "-"): v for k, v in attrs.items()}
        return [
            a
            for t, a in self.elements
            if (tag is None or t == tag)
            and all(a.get(k) == v or (v == "*" and k in a) for k, v in want.items())
        ]

    def with_class(self, cls: str) -> list[dict[str, str]]:
        return [a for _, a in self.elements if cls in a.get("class", "").split()]


# --- unit tests on the HTML -------------------------------------------------------------


def test_every_turn_text_appears_as_text():
    report = make_report()
    html = render_report(report)
    page = Page(html)
    for turn in report["turns"]:
        i = str(turn["index"])
        assert escape(turn["caller_text"]) in html  # escaped once, not twice
        assert page.fields[(i, "caller_text")] == turn["caller_text"]
        assert page.fields[(i, "bot_text")] == turn["bot_text"]
    assert len(page.find("article", data_turn="*")) == 3
    assert [a["data-prompt"] for a in page.find(data_prompt="*")] == ["greeting", "closing"]
    assert "Thanks for calling Northbank. How can I help you today?" in page.text


def test_prompts_and_turns_are_in_time_order():
    html = render_report(make_report())
    order = re.findall(r'data-(?:turn|prompt)="([^"]+)"', html)
    assert order == ["greeting", "1", "2", "3", "closing"]


def test_header_shows_input_id_duration_and_summary():
    page = Page(render_report(make_report()))
    text = page.text
    for expected in ("calls/bank_train_001", "replay-3f2a9c", "00:31.6", "700 ms", "-0.31"):
        assert expected in text
    assert page.find("title")  # and the <title> says which call
    assert "Call replay · calls/bank_train_001" in render_report(make_report())
    assert "<title>Custom</title>" in render_report(make_report(), title="Custom")


def test_badges_show_intent_confidence_outcome_and_sentiment():
    html = render_report(make_report())
    page = Page(html)
    intents = page.with_class("intent")
    assert len([a for a in intents if "badge" in a["class"]]) >= 2
    assert "card_arrival93%" in page.text.replace(" ", "")
    assert page.with_class("low"), "a 41% intent should be flagged as low confidence"
    assert page.with_class("o-answer") and page.with_class("o-handoff_offer")
    assert "sentiment -0.81" in page.text
    assert "handoff accepted" in page.text


def test_unheard_part_of_a_barged_in_answer_is_struck_through():
    page = Page(render_report(make_report()))
    struck = page.with_class("unheard")
    assert len(struck) == 2  # turn 1's answer and the greeting
    html = render_report(make_report())
    assert (
        '<s class="unheard"> If it&#x27;s been longer, I can order a replacement for you.</s>'
        in html
    )
    assert "never heard: the caller barged in" in page.text
    # An empty heard_text without a barge-in is "not tracked", not "nothing heard".
    untracked = make_report()
    untracked["turns"][1]["heard_text"] = ""
    assert len(Page(render_report(untracked)).with_class("unheard")) == 2
    cut_at_once = make_report()
    cut_at_once["turns"][1].update(heard_text="", barge_in=True)
    assert len(Page(render_report(cut_at_once)).with_class("unheard")) == 3


def test_barge_in_and_handoff_markers_on_bubbles_and_chart():
    html = render_report(make_report())
    page = Page(html)
    flags = page.with_class("flag")
    assert len([a for a in flags if "barge" in a["class"]]) == 2
    assert len([a for a in flags if "handoff" in a["class"]]) == 2
    assert "Handoff offered at 00:13.9 — caller upset" in page.text
    chart = html[html.index('aria-labelledby="sentiment-title') : html.index("</svg>")]
    assert chart.count('class="marker barge"') == 2
    assert chart.count('class="marker handoff"') == 2
    assert "Barge-in: the caller cut off the answer to turn 1 at 00:09.8" in chart


def test_sentiment_chart_has_points_per_turn_zero_line_and_description():
    html = render_report(make_report())
    start = html.index('aria-labelledby="sentiment-title')
    chart = html[start : html.index("</svg>", start)]
    assert chart.count("<circle") == 3
    assert chart.count('<polyline class="curve"') == 1
    assert 'class="zero"' in chart
    for label in ("T1", "T2", "T3"):
        assert f">{label}</text>" in chart
    assert "turn 2 -0.81 at 00:13.2" in chart  # <desc> says it in words


def test_latency_chart_stacks_stages_with_legend_and_axis():
    html = render_report(make_report())
    start = html.index('aria-labelledby="latency-title')
    chart = html[start : html.index("</svg>", start)]
    for stage in ("ASR", "Dialogue", "TTS first audio", "Waiting/other", "Voice-to-voice"):
        assert f">{stage}</text>" in chart  # legend
    assert "Turn 1 ASR: 504 ms" in chart
    assert "Turn 1 Waiting/other: 167 ms" in chart  # 690 - 504.1 - 19.3 - 0
    assert "Turn 1 TTS first audio" not in chart  # zero-height stages are not drawn
    assert ">ms</text>" in chart and ">1,000</text>" in chart
    assert "median 700 ms" in chart


def test_caller_script_is_escaped_everywhere():
    report = make_report()
    report["turns"][0]["caller_text"] = XSS
    report["turns"][0]["intent"] = "<b>intent</b>"
    report["turns"][1]["bot_text"] = XSS
    report["turns"][1]["heard_text"] = XSS[:20]
    report["prompts"][0]["kind"] = '"><script>alert(3)</script>'
    report["input"] = "</title><script>alert(4)</script>"
    html = render_report(report)
    assert html.count("<script>") == 1  # the page's own, at the end of <body>
    assert "alert(" not in html[html.index("<script>") :]
    assert "<img" not in html and "<b>intent" not in html and "<!-- </article>" not in html
    page = Page(html)
    assert page.fields[("1", "caller_text")] == XSS
    assert page.fields[("2", "bot_text")] == XSS
    assert len(page.find("article", data_turn="*")) == 3


def test_page_is_self_contained():
    html = render_report(make_report(comparison=FAILED_COMPARISON), {1: make_wav()})
    assert "http://" not in html and "https://" not in html
    page = Page(html)
    for _, attrs in page.elements:
        for key in ("src", "href", "action", "srcset", "xlink:href"):
            if key in attrs:
                assert attrs[key].startswith(("data:", "#")), (key, attrs[key][:40])
    assert " style=" not in html  # the CSP allows only the hashed <style>
    csp = page.find("meta", http_equiv="Content-Security-Policy")[0]["content"]
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp


def test_comparison_failure_banner_and_marked_bubbles():
    html = render_report(make_report(comparison=FAILED_COMPARISON))
    page = Page(html)
    banner = page.with_class("banner")
    assert banner and "fail" in banner[0]["class"]
    assert "✗ Replay differs from the original" in page.text
    assert "rules broken: intent" in page.text
    assert "turn 7 (not in replay)" in page.text
    marked = page.with_class("has-diff")
    assert len(marked) == 2  # turn 2's caller bubble (intent) and turn 3's (caller_text)
    assert any("changed" in a["class"] for a in page.with_class("intent"))
    # Original shown beside the replayed value, in the bubble and in the banner table.
    assert "intentoriginal card_arrival → replayed card_delivery_estimate" in page.text
    assert "caller_textoriginal Yes, please do. → replayed Yes please." in page.text


def test_comparison_pass_banner():
    passed = {
        "original": "calls/x/transcript.json",
        "passed": True,
        "rules_broken": [],
        "differences": [],
    }
    page = Page(render_report(make_report(comparison=passed)))
    assert "pass" in page.with_class("banner")[0]["class"]
    assert "✓ Replay matches the original" in page.text
    assert not page.with_class("has-diff")


@pytest.mark.parametrize(
    "report",
    [
        {},
        {"turns": None, "prompts": None, "summary": None},
        {"input": "calls/empty", "turns": [], "prompts": []},
        {"turns": [{}], "prompts": [{}]},
        {"turns": [{"index": 1, "caller_text": "hello", "timings": None, "handoff": {}}]},
        {
            "turns": [
                {"index": "x", "started_s": "nan", "sentiment": "bad", "timings": {"asr_ms": None}}
            ]
        },
        {"turns": ["not a dict", 3, None], "comparison": {"differences": [{"turn": None}, "x"]}},
        {"duration_s": None, "turns": [{"index": 1, "started_s": 2.0, "heard_text": ""}]},
        make_report(summary=None),
    ],
)
def test_missing_or_odd_fields_still_render(report):
    html = render_report(report)
    page = Page(html)
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    turns = [t for t in report.get("turns") or [] if isinstance(t, dict)]
    assert len(page.find("article", data_turn="*")) == len(turns)


def test_report_as_the_replay_runner_writes_it():
    """Extra keys, one intent per turn (None included), outcome counts, modelled latency."""
    report = make_report(
        name="bank_train_001",
        modelled_latency_ms={"asr": 500.0, "dialogue": 20.0, "tts": 0.0},
        dtmf=[],
        handoff={"state": "accepted", "reason": "caller asked", "at_s": 21.3},
        comparison={
            "original": "calls/bank_train_001/transcript.json",
            "passed": False,
            "rules": ["intent", "turns"],
            "rules_broken": ["turns"],
            "differences": [
                {"turn": 3, "field": "turns", "original": "missing", "replayed": "present"},
                {"turn": 2, "field": "handoff", "original": None, "replayed": {"state": "offered"}},
            ],
        },
    )
    report["summary"].update(
        intents=["card_arrival", "card_delivery_estimate", None],
        outcomes={"answer": 1, "handoff_accepted": 1, "handoff_offer": 1},
        min_sentiment=-0.81,
    )
    page = Page(render_report(report))
    assert (
        "Modelled by the replay, not measured: asr 500 ms, dialogue 20 ms, tts 0 ms." in page.text
    )
    assert [a for a in page.with_class("intent") if a.get("title") is None] == [
        {"class": "badge intent"},
        {"class": "badge intent"},
    ]  # the header's intents: each once, no empty badge for None
    assert "handoff offer ×1" in page.text
    bubbles = {a["aria-label"]: a["class"] for a in page.find("div", role="group")}
    assert "has-diff" in bubbles["Caller, turn 3"]  # a whole turn missing from the original
    assert "has-diff" in bubbles["Bot, answer to turn 2"]  # the handoff belongs to the bot
    assert 'replayed {"state": "offered"}' in page.text


def test_summary_is_computed_when_missing():
    r = parse_report(make_report(summary=None))
    assert (r.summary.turns, r.summary.barge_ins, r.summary.handoffs) == (3, 2, 2)
    assert r.summary.voice_to_voice_ms_median == 700.0
    assert r.summary.intents == ("card_arrival", "card_delivery_estimate")


def test_heard_split_and_clock():
    assert split_heard("One. Two.", "One.") == ("One.", " Two.", True)
    assert split_heard("Hello, there. Bye.", "hello there") == ("Hello, there.", " Bye.", True)
    assert split_heard("One. Two.", None) == ("One. Two.", "", True)
    assert split_heard("One. Two.", "") == ("", "One. Two.", True)
    assert split_heard("One. Two.", "Three") == ("One. Two.", "", False)
    assert clock(0.5) == "00:00.5" and clock(59.96) == "01:00.0" and clock(125.25) == "02:05.2"
    assert clock(None) == "--:--.-"


def test_clip_data_uri_decodes_to_the_same_wav_bytes():
    clip = make_wav(seconds=1.0)
    with wave.open(io.BytesIO(clip)) as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (2, 8000, 2)
    page = Page(render_report(make_report(), {2: clip}))
    audios = page.find("audio")
    assert len(audios) == 1
    audio = audios[0]
    assert audio["preload"] == "none" and "controls" in audio and "turn 2" in audio["aria-label"]
    prefix = "data:audio/wav;base64,"
    assert audio["src"].startswith(prefix)
    decoded = base64.b64decode(audio["src"][len(prefix) :], validate=True)
    assert decoded == clip
    with wave.open(io.BytesIO(decoded)) as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert frames.shape == (8000, 2) and frames[:, 0].any() and frames[:4000, 1].max() == 0
    assert len(page.with_class("badge")) and "no clip" in page.text  # turns 1 and 3


def test_write_report_is_atomic_and_leaves_no_temp_files(tmp_path):
    target = tmp_path / "out" / "report.html"
    write_report(target, make_report(), {1: make_wav()})
    assert target.read_text(encoding="utf-8") == render_report(make_report(), {1: make_wav()})
    write_report(target, make_report(input="calls/second"))
    assert "calls/second" in target.read_text(encoding="utf-8")
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]


def test_index_lists_calls_with_links_and_verdicts():
    summaries = [
        {
            "name": "bank_train_001",
            "input": "calls/bank_train_001",
            **make_report()["summary"],
            "comparison": FAILED_COMPARISON,
        },
        {
            "name": "bank <2>",
            "input": "calls/bank_2",
            "summary": {"turns": 1, "barge_ins": 0},
            "passed": True,
        },
        {"name": "bank_3", "input": "calls/bank_3"},
    ]
    html = render_index(summaries)
    page = Page(html)
    rows = page.find("tr", data_call="*")
    assert [r["data-call"] for r in rows] == ["bank_train_001", "bank <2>", "bank_3"]
    links = [a["href"] for a in page.find("a")]
    assert links == [
        "bank_train_001/report.html",
        "bank%20%3C2%3E/report.html",
        "bank_3/report.html",
    ]
    assert "✗ fail (intent)" in page.text and "✓ pass" in page.text
    assert "1 passed · 1 failed · 1 not compared" in page.text
    assert "700 ms" in page.text
    assert "http://" not in html and "https://" not in html
    assert "No calls were replayed." in render_index([])


# --- the real browser -------------------------------------------------------------------

CONSOLE_LINE = re.compile(r":CONSOLE[(:]")


def _chromium() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("VOICEBOT_REQUIRE_CHROMIUM") == "1":
        pytest.fail(f"{CHROMIUM} is missing and VOICEBOT_REQUIRE_CHROMIUM=1")
    pytest.skip(
        f"{CHROMIUM} is missing (apt-get install chromium); "
        "set VOICEBOT_REQUIRE_CHROMIUM=1 to make this a failure"
    )


def load_in_chromium(page: Path, tmp_path: Path) -> tuple[str, list[str]]:
    """Open `page` in headless Chromium; the DOM after load, and every console line logged.

    Chromium writes each page console message (console.*, uncaught errors, CSP refusals)
    to stderr as `...:CONSOLE...] "message", source: ...` when logging goes to stderr.
    """
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    cmd = [
        str(_chromium()),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=2000",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    assert "<html" in done.stdout, f"chromium dumped no DOM: {done.stderr[-2000:]}"
    console = [line for line in done.stderr.splitlines() if CONSOLE_LINE.search(line)]
    return done.stdout, console


def test_browser_detects_console_errors_in_a_broken_page(tmp_path):
    """The detector itself: a page that errors must be caught, or the real test proves nothing."""
    broken = tmp_path / "broken.html"
    broken.write_text(
        "<!DOCTYPE html><html><body><p>x</p><script>console.error('control');"
        "undefinedFunction();</script></body></html>",
        encoding="utf-8",
    )
    _, console = load_in_chromium(broken, tmp_path)
    assert any("control" in line for line in console), console
    assert any("undefinedFunction" in line for line in console), console


def test_browser_refuses_markup_that_escaped_escaping(tmp_path):
    """The page's policy is the second line of defence: an injected script never runs,
    an external image is never fetched, and both show up as console errors."""
    html = render_report(make_report())
    injected = (
        '<img src="https://example.invalid/x.png" alt="x">'
        "<script>document.documentElement.setAttribute('data-pwned', '1')</script>"
    )
    page = tmp_path / "injected.html"
    page.write_text(html.replace("<main>", "<main>" + injected, 1), encoding="utf-8")
    dom, console = load_in_chromium(page, tmp_path)
    assert "data-pwned" not in Page(dom).find("html")[0]
    refused = [line for line in console if "Content Security Policy" in line]
    assert any("inline script" in line for line in refused), console
    assert any("example.invalid" in line for line in refused), console
    assert 'data-js="ready"' in dom  # the page's own hashed script still ran


def test_report_renders_in_chromium_without_console_errors(tmp_path):
    report = make_report(comparison=FAILED_COMPARISON)
    report["turns"][0]["caller_text"] = XSS
    report["turns"].append({"index": 4, "caller_text": "Hello?", "timings": None})
    page = tmp_path / "call" / "report.html"
    write_report(page, report, {1: make_wav(), 2: make_wav(0.8)})
    started = time.monotonic()
    dom, console = load_in_chromium(page, tmp_path)
    elapsed = time.monotonic() - started
    assert console == [], f"console output from the page: {console}"
    root = Page(dom).find("html")[0]
    assert root.get("data-js") == "ready", f"the page's script did not finish: {root}"
    assert "data-js-errors" not in root, root["data-js-errors"]
    turns = Page(dom).find("article", data_turn="*")
    assert [a["data-turn"] for a in turns] == ["1", "2", "3", "4"]
    assert root["data-turns-rendered"] == "4"  # counted by the browser, not by our parser
    assert Page(dom).fields[("1", "caller_text")] == XSS  # shown as text, never run
    assert len(Page(dom).find("audio")) == 2
    print(f"chromium load took {elapsed:.2f} s")


def test_index_renders_in_chromium_without_console_errors(tmp_path):
    page = tmp_path / "index.html"
    page.write_text(render_index([{"name": "a", "turns": 2, "passed": True}]), encoding="utf-8")
    dom, console = load_in_chromium(page, tmp_path)
    assert console == [], console
    assert len(Page(dom).find("tr", data_call="*")) == 1
