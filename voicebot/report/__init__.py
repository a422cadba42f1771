"""QA replay reports: a replayed call's report.json rendered as one self-contained page.

`render_report`/`write_report` draw one call (chat bubbles, sentiment and latency
charts, embedded audio per turn, comparison with the original); `render_index` draws a
folder replay's overview linking to each call's page.
"""

from voicebot.report.html import render_index, render_report, write_report

__all__ = ["render_index", "render_report", "write_report"]
