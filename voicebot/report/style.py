"""The report page's inline CSS, its one tiny script, and the policy that pins them.

The page carries a Content-Security-Policy that allows no network at all and only
this exact stylesheet and script (by SHA-256 hash). That makes "self-contained"
enforceable rather than a promise: a stray external reference, or markup smuggled in
through a transcript that escaped escaping, is refused by the browser and shows up as
a console error, which the browser test fails on.
"""

from __future__ import annotations

import base64
import hashlib
from html import escape

CSS = """
:root{--ink:#1f2933;--muted:#616e7c;--line:#e4e7eb;--bg:#f7f8fa;--card:#fff;
--caller:#eef3fb;--caller-line:#c9d8ef;--bot:#edf7f0;--bot-line:#c5e3cf;
--barge:#e8590c;--handoff:#7048e8;--ok:#2b8a3e;--bad:#c92a2a;--warn:#b7791f}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);line-height:1.45;
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:960px;margin:0 auto;padding:24px 20px 48px}
h1{font-size:1.5rem;margin:.1rem 0 .3rem;word-break:break-all}
h2{font-size:1.1rem;margin:2rem 0 .75rem}
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.eyebrow{margin:0;color:var(--muted);font-size:.8rem;text-transform:uppercase;
letter-spacing:.06em}
.meta{margin:0 0 1rem;color:var(--muted)}
.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(130px,1fr));gap:10px;margin:0}
.stats div{background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:10px 12px}
.stats dt{font-size:.75rem;color:var(--muted)}
.stats dd{margin:0;font-size:1.25rem;font-weight:600}
.intents{margin:.8rem 0 0;color:var(--muted)}
.banner{border-radius:10px;padding:12px 16px;margin:1.25rem 0 0;border:1px solid}
.banner.pass{background:#ebfbee;border-color:#b2f2bb}
.banner.fail{background:#fff5f5;border-color:#ffc9c9}
.banner.unknown{background:#fff9db;border-color:#ffec99}
.banner p{margin:0}
.banner strong{font-size:1.05rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:12px;padding:14px 16px;
margin:0 0 14px}
.card h3{margin:0 0 .3rem;font-size:.95rem}
.card p.hint{margin:0 0 .4rem;color:var(--muted);font-size:.82rem}
svg.chart{display:block;width:100%;height:auto;
font:11px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
.scroll{overflow-x:auto}
@media (max-width:700px){svg.chart{min-width:600px}}
figcaption h3{margin:0 0 .3rem;font-size:.95rem}
svg .grid{stroke:#eceff3;stroke-width:1}
svg .zero{stroke:#9aa5b1;stroke-width:1}
svg .tick,svg .legend{fill:#52606d}
svg .lane{fill:#f5f7fa}
svg .curve{fill:none;stroke:#4e79a7;stroke-width:2}
svg .point circle{stroke:#fff;stroke-width:1.5}
svg .point.neg circle{fill:#d1495b}
svg .point.pos circle{fill:#2a9d8f}
svg .point.neutral circle{fill:#7b8794}
svg .plabel{fill:#323f4b;font-weight:600;font-size:10px}
svg .marker line{stroke-width:1.5;stroke-dasharray:4 3}
svg .marker text{font-weight:600;font-size:11px}
svg .v2v line,svg line.v2v{stroke:#1f2933;stroke-width:2.5}
svg .median line,svg line.median{stroke:#1f2933;stroke-width:1;stroke-dasharray:5 4}
svg .mlabel{fill:#1f2933;font-size:10px}
svg .vlabel{fill:#52606d;font-size:10px}
svg .empty{fill:#9aa5b1;font-size:13px}
svg .empty.small{font-size:10px}
svg a:hover circle,svg a:hover rect{opacity:.75}
table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
details>summary{cursor:pointer;color:var(--muted);font-size:.85rem}
.conversation{display:flex;flex-direction:column;gap:10px}
.turn{display:flex;flex-direction:column;gap:8px;padding:6px;border-radius:14px}
.turn:target,.prompt:target{background:#fff3bf}
.bubble{max-width:78%;border:1px solid;border-radius:14px;padding:9px 13px 10px}
.bubble.caller{align-self:flex-start;background:var(--caller);border-color:var(--caller-line);
border-bottom-left-radius:4px}
.bubble.bot{align-self:flex-end;background:var(--bot);border-color:var(--bot-line);
border-bottom-right-radius:4px}
.prompt{display:flex;flex-direction:column;padding:6px;border-radius:14px}
.prompt .bubble.bot{border-style:dashed}
.who{display:flex;flex-wrap:wrap;gap:6px;align-items:baseline;font-size:.78rem;
color:var(--muted);margin-bottom:3px}
.who b{color:var(--ink)}
.text{margin:0;white-space:pre-wrap;overflow-wrap:anywhere}
.text.none{color:var(--muted);font-style:italic}
.unheard{color:#9aa5b1;text-decoration:line-through}
.heard-note{margin:.3rem 0 0;font-size:.82rem;color:var(--muted)}
.badges{display:flex;flex-wrap:wrap;gap:5px;margin-top:7px}
.badge{display:inline-block;border-radius:999px;padding:1px 8px;font-size:.75rem;
background:#fff;border:1px solid var(--line);color:#323f4b}
.badge.intent{background:#e7f0ff;border-color:#c5d7f7}
.badge .conf{color:var(--muted);margin-left:3px}
.badge.low .conf{color:var(--warn);font-weight:600}
.badge.o-answer{background:#ebfbee;border-color:#b2f2bb}
.badge.o-confirm_intent,.badge.o-clarify{background:#fff9db;border-color:#ffe066}
.badge.o-not_heard,.badge.o-dtmf,.badge.o-other{background:#f1f3f5}
.badge.o-handoff_offer,.badge.o-handoff_accepted,.badge.o-handoff_declined{background:#f3f0ff;
border-color:#d0bfff}
.badge.o-closing,.badge.o-greeting{background:#e7f5ff;border-color:#a5d8ff}
.badge.o-apology,.badge.o-transfer_failed{background:#fff5f5;border-color:#ffc9c9}
.badge.neg{background:#fff5f5;border-color:#ffc9c9}
.badge.pos{background:#e6fcf5;border-color:#96f2d7}
.badge.changed{outline:2px dashed var(--warn);outline-offset:1px}
.flag{display:inline-block;border-radius:6px;padding:1px 7px;font-size:.75rem;font-weight:600;
margin-top:6px;margin-right:4px}
.flag.barge{background:#fff4e6;color:var(--barge);border:1px solid #ffd8a8}
.flag.handoff{background:#f3f0ff;color:var(--handoff);border:1px solid #d0bfff}
.has-diff{box-shadow:inset 4px 0 0 var(--warn)}
.diffs{margin:8px 0 0;padding:6px 8px;list-style:none;background:#fff9db;border-radius:8px;
font-size:.8rem}
.diffs li+li{margin-top:3px}
.diffs .field{font-weight:600;margin-right:4px}
del.was{color:var(--bad)}
ins.now{color:var(--ok);text-decoration:none}
.foot{display:flex;flex-wrap:wrap;gap:10px;align-items:center;margin-top:8px}
audio{height:32px;max-width:100%}
.timings dl{display:grid;grid-template-columns:auto auto;gap:0 12px;margin:4px 0 0;
font-size:.8rem}
.timings dd{margin:0;text-align:right;font-variant-numeric:tabular-nums}
.legend-inline{font-size:.8rem;color:var(--muted);margin:.4rem 0 0}
.pass{color:var(--ok)}.fail{color:var(--bad)}
.banner.pass,.banner.fail{color:var(--ink)}
footer{margin-top:2.5rem;color:var(--muted);font-size:.8rem}
@media (max-width:600px){.bubble{max-width:94%}main{padding:14px 10px 32px}}
@media print{body{background:#fff}.card,.stats div{break-inside:avoid}audio{display:none}}
"""

# The page works without this script. It only (1) records script errors on <html> so a
# headless browser's DOM dump reveals them, (2) lets one clip play at a time, and
# (3) marks the page as fully scripted, with the number of turns the browser sees.
JS = """
(function () {
  var root = document.documentElement;
  var errors = [];
  function record(message) {
    errors.push(String(message));
    root.setAttribute('data-js-errors', errors.join(' | '));
  }
  window.addEventListener('error', function (e) { record(e.message || 'error'); });
  window.addEventListener('unhandledrejection', function (e) { record('rejection: ' + e.reason);
 });
  document.addEventListener('play', function (e) {
    var clips = document.querySelectorAll('audio');
    for (var i = 0; i < clips.length; i++) {
      if (clips[i] !== e.target) { clips[i].pause(); }
    }
  }, true);
  root.setAttribute('data-turns-rendered', String(document.querySelectorAll('[data-turn]').length));
  root.setAttribute('data-js', 'ready');
})();
"""


def _sha256(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


# No default source at all; only the hashed style/script, and data: URIs for the clips.
CSP = (
    f"default-src 'none'; style-src {_sha256(CSS)}; script-src {_sha256(JS)}; "
    "media-src data:; img-src data:; base-uri 'none'; form-action 'none'"
)


def page(title: str, body: str, *, script: bool) -> str:
    """The document shell every report page shares: policy first, then style, body, script."""
    js = f"<script>{JS}</script>" if script else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{escape(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        '<link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title><style>{CSS}</style></head>\n"
        f"<body><main>{body}</main>{js}</body></html>\n"
    )
