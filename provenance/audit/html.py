"""`audit report --html`: one self-contained HTML page from an audit `Summary`.

No network assets and no JavaScript: CSS is inline, the two plots (pass rate and build
duration over time) are inline SVG drawn here, and a Content-Security-Policy meta tag
forbids the page from loading anything at all. Every string that comes from the ledger
is untrusted and goes through `html.escape` (via `_e`) before it reaches the page.
The key numbers carry stable ids (`runs`, `pass-rate`, `tier-reproduced`, ...) so a
browser test can read them back from the rendered DOM.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Callable, Sequence

from provenance.audit.render import chain_line, pct
from provenance.audit.stats import TIERS, RunPoint, Summary, parse_time
from provenance.audit.views import CommitView
from provenance.audit.vocab import PASSING

MAX_POINTS = 400  # a plot shows at most this many points; more runs are averaged into bins
_W, _H, _PAD_L, _PAD_R, _PAD_T, _PAD_B = 560, 220, 52, 16, 14, 34

_CSS = """
:root { --ok: #1a7f37; --bad: #cf222e; --ink: #1f2328; --mute: #656d76; --line: #d0d7de; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
       margin: 0 auto; max-width: 1180px; padding: 20px 24px 40px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 8px; }
.sub { color: var(--mute); margin: 0 0 16px; word-break: break-all; }
.banner { padding: 10px 14px; border-radius: 6px; margin: 12px 0 18px; word-break: break-all; }
.banner.ok { background: #dafbe1; border: 1px solid #4ac26b; }
.banner.bad { background: #ffebe9; border: 1px solid #ff8182; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.card .k { color: var(--mute); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .v { font-size: 24px; font-weight: 600; }
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(540px, 1fr)); gap: 16px; }
.plot { border: 1px solid var(--line); border-radius: 6px; padding: 8px; }
.plot h3 { font-size: 13px; margin: 0 0 4px; color: var(--mute); font-weight: 600; }
svg text { font: 11px system-ui, sans-serif; fill: var(--mute); }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 5px 8px; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; }
.pass { color: var(--ok); font-weight: 600; } .fail { color: var(--bad); font-weight: 600; }
.tier { display: inline-block; padding: 0 6px; border-radius: 10px; font-size: 12px;
        border: 1px solid var(--line); }
.tier.reproduced { background: #ddf4ff; } .tier.ci { background: #fff8c5; }
.tier.dirty { background: #ffebe9; } .dirty { color: var(--mute); font-style: italic; }
.empty { color: var(--mute); font-style: italic; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _epoch(t: str) -> float:
    return parse_time(t).timestamp()


def _bins(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """Average into at most MAX_POINTS time bins, so a 100k-run ledger stays a small page."""
    if len(points) <= MAX_POINTS:
        return list(points)
    lo, hi = points[0][0], points[-1][0]
    width = (hi - lo) / MAX_POINTS or 1.0
    sums: dict[int, tuple[float, float, int]] = {}
    for x, y in points:
        i = min(int((x - lo) / width), MAX_POINTS - 1)
        sx, sy, n = sums.get(i, (0.0, 0.0, 0))
        sums[i] = (sx + x, sy + y, n + 1)
    return [(sx / n, sy / n) for sx, sy, n in (sums[i] for i in sorted(sums))]


def _fmt_ms(ms: float) -> str:
    return f"{ms / 1000:.1f} s" if ms >= 1000 else f"{ms:.0f} ms"


Series = tuple[str, str, str, Sequence[tuple[str, float]]]  # key, label, colour, points


def _plot(
    title: str,
    pid: str,
    series: Sequence[Series],
    *,
    y_max: float,
    y_label: Callable[[float], str],
    y_ticks: Sequence[float],
    unit: str,
) -> str:
    """A time-series SVG: x = time of the run, y = value; dots and a line per series.

    Each series is drawn apart (its own line and colour, a legend when there are several),
    and the svg carries `data-<key>` = its number of runs, so a test can read them back.
    """
    head = f'<div class="plot" id="{pid}"><h3>{_e(title)}</h3>'
    drawn = [
        (key, label, colour, sorted((_epoch(t), v) for t, v in pts))
        for key, label, colour, pts in series
    ]
    total = sum(len(xs) for *_, xs in drawn)
    if not total:
        return head + '<p class="empty">no runs to plot</p></div>'
    binned = [(key, label, colour, xs, _bins(xs)) for key, label, colour, xs in drawn if xs]
    x0 = min(data[0][0] for *_, data in binned)
    x1 = max(data[-1][0] for *_, data in binned)
    span = (x1 - x0) or 1.0
    iw, ih = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B
    single = x1 == x0

    def px(x: float, i: int, n: int) -> float:
        if single:  # every run in one instant: spread them by order instead
            return _PAD_L + iw * (i + 0.5) / n
        return _PAD_L + iw * (x - x0) / span

    def py(y: float) -> float:
        return _PAD_T + ih * (1 - min(y, y_max) / (y_max or 1.0))

    counts = "".join(f' data-{_e(key)}="{len(xs)}"' for key, _, _, xs in drawn)
    parts = [
        f'<svg viewBox="0 0 {_W} {_H}" width="100%" role="img" '
        f'aria-label="{_e(title)}" data-points="{total}"{counts}>'
    ]
    for t in y_ticks:
        y = py(t)
        parts.append(
            f'<line x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>'
        )
        parts.append(
            f'<text x="{_PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end">{_e(y_label(t))}</text>'
        )
    for key, label, colour, _, data in binned:
        coords = [(px(x, i, len(data)), py(y)) for i, (x, y) in enumerate(data)]
        parts.append(
            f'<polyline class="series-{_e(key)}" fill="none" stroke="{colour}" '
            'stroke-width="1.5" points="' + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords) + '"/>'
        )
        if len(data) <= 120:
            for (x, y), (t, v) in zip(coords, data, strict=True):
                when = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
                shown = _fmt_ms(v) if unit == "ms" else f"{v:.0f}%"
                parts.append(
                    f'<circle class="series-{_e(key)}" cx="{x:.1f}" cy="{y:.1f}" r="3" '
                    f'fill="{colour}"><title>{_e(label)} {_e(when)}: {_e(shown)}</title></circle>'
                )
    if len(series) > 1:
        for n, (key, label, colour, xs) in enumerate(drawn):
            lx = _PAD_L + 8 + n * 150
            parts.append(
                f'<rect x="{lx}" y="{_PAD_T}" width="10" height="10" fill="{colour}"/>'
                f'<text class="legend-{_e(key)}" x="{lx + 14}" y="{_PAD_T + 9}">'
                f"{_e(label)} ({len(xs)})</text>"
            )
    base = _H - _PAD_B
    parts.append(
        f'<line x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{base}" y2="{base}" stroke="#8c959f"/>'
    )
    first = dt.datetime.fromtimestamp(x0, dt.UTC).strftime("%Y-%m-%d %H:%M")
    last = dt.datetime.fromtimestamp(x1, dt.UTC).strftime("%Y-%m-%d %H:%M")
    parts.append(f'<text x="{_PAD_L}" y="{base + 16}">{_e(first)}</text>')
    parts.append(f'<text x="{_W - _PAD_R}" y="{base + 16}" text-anchor="end">{_e(last)} UTC</text>')
    parts.append(
        f'<text x="{_PAD_L + iw / 2:.0f}" y="{base + 28}" text-anchor="middle">'
        f"{total} run(s){' (averaged)' if total > MAX_POINTS else ''}</text>"
    )
    parts.append("</svg></div>")
    return head + "".join(parts)


def _rate_plot(points: Sequence[RunPoint]) -> str:
    series = [(p.time, p.pass_rate * 100) for p in points if p.pass_rate is not None]
    return _plot(
        "Pass rate per run",
        "plot-pass-rate",
        [("runs", "runs", "#0969da", series)],
        y_max=100.0,
        y_label=lambda t: f"{t:.0f}%",
        y_ticks=(0, 25, 50, 75, 100),
        unit="%",
    )


def _nice_ticks(peak: float) -> tuple[float, list[float]]:
    """Round axis ticks (1, 2, 2.5 or 5 times a power of ten) covering 0..peak in <= 5 steps."""
    if peak <= 0:
        return 1.0, [0.0, 1.0]
    raw = peak / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    n = math.ceil(peak / step)
    return step * n, [step * i for i in range(n + 1)]


def _duration_plot(points: Sequence[RunPoint]) -> str:
    """Real builds and cache hits apart: a cache hit takes a second and builds nothing, and
    mixed in one line it would hide how long the checks really take."""
    builds = [p for p in points if p.command == "build" and p.duration_ms is not None]
    real = [(p.time, float(p.duration_ms or 0)) for p in builds if not p.cache_hit]
    hits = [(p.time, float(p.duration_ms or 0)) for p in builds if p.cache_hit]
    top, ticks = _nice_ticks(max((v for _, v in real + hits), default=0.0))
    return _plot(
        "Build duration",
        "plot-duration",
        [("builds", "builds", "#0969da", real), ("cache-hits", "cache hits", "#bf8700", hits)],
        y_max=top,
        y_label=_fmt_ms,
        y_ticks=ticks,
        unit="ms",
    )


def _card(key: str, value: object, cid: str) -> str:
    return (
        f'<div class="card"><div class="k">{_e(key)}</div>'
        f'<div class="v" id="{cid}">{_e(value)}</div></div>'
    )


def _result(result: str, dirty: bool | None = False) -> str:
    if dirty:  # not a pass of the commit: not green, and says why
        return f'<span class="dirty">{_e(result)} (dirty tree)</span>'
    cls = (
        "pass"
        if result in {"passed", "cached", "reused"}
        else ("fail" if result in {"failed", "error"} else "")
    )
    return f'<span class="{cls}">{_e(result)}</span>'


def _proven(v: CommitView) -> str:
    return '<td class="pass">proven</td>' if v.proven else '<td class="fail">not proven</td>'


def _checks(v: CommitView) -> str:
    return ", ".join(f"{_e(n)}: {_result(r)}" for n, r in v.checks.items()) or "-"


def _by(v: CommitView) -> str:
    return "<br>".join(_e(p) for p in v.provers) or '<span class="empty">nobody (gate only)</span>'


def _main_banner(s: Summary) -> list[str]:
    """The answer first: is main (or master) proven at its newest recorded commit, by whom."""
    main = next((b for b in s.branches if b.branch in ("main", "master")), None)
    if main is None:
        return []
    v = main.head
    cls, word = ("ok", "proven") if v.proven else ("bad", "NOT proven")
    who = "; ".join(v.provers) or "nobody recorded here"
    passing = sum(r in PASSING for r in v.checks.values())
    return [
        f'<div class="banner {cls}" id="main-proven"><b>{_e(main.branch)}</b> at '
        f'<span class="mono">{_e(v.commit[:12])}</span> is {word} ({passing} of '
        f"{len(v.checks)} check(s)), by {_e(who)}</div>"
    ]


def _views(s: Summary) -> list[str]:
    """Per branch (its newest recorded commit), then per commit: state, checks, provers."""
    out: list[str] = []
    out.append("<h2>Branches</h2>")
    if s.branches:
        out.append(
            '<table id="branches"><tr><th>branch</th><th>newest commit</th><th>state</th>'
            "<th>checks</th><th>proven by</th><th>tier</th><th>last run</th></tr>"
        )
        for b in s.branches:
            v = b.head
            out.append(
                f'<tr data-branch="{_e(b.branch)}"><td class="mono">{_e(b.branch)}</td>'
                f'<td class="mono">{_e(v.commit[:12])}</td>{_proven(v)}<td>{_checks(v)}</td>'
                f"<td>{_by(v)}</td><td>{_e(v.tier)}</td>"
                f'<td class="mono">{_e(v.last_time)}</td></tr>'
            )
        out.append("</table>")
    else:
        out.append('<p class="empty">no run recorded a branch</p>')
    out.append(f"<h2>Commits ({len(s.commit_views)} most recent)</h2>")
    if s.commit_views:
        out.append(
            '<table id="commits"><tr><th>commit</th><th>branches</th><th>state</th>'
            '<th>checks</th><th>proven by</th><th class="n">builds</th>'
            '<th class="n">cache hits</th><th>last run</th></tr>'
        )
        for v in s.commit_views:
            out.append(
                f'<tr data-commit="{_e(v.commit)}"><td class="mono">{_e(v.commit[:12])}</td>'
                f"<td>{_e(', '.join(v.branches) or '-')}</td>{_proven(v)}<td>{_checks(v)}</td>"
                f'<td>{_by(v)}</td><td class="n">{v.builds}</td>'
                f'<td class="n">{v.cache_hits}</td><td class="mono">{_e(v.last_time)}</td></tr>'
            )
        out.append("</table>")
    return out


def render(s: Summary, generated: str | None = None) -> str:
    """The whole page as a string (UTF-8 when written)."""
    when = generated or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        # Nothing may load: no scripts, fonts, images or frames from anywhere.
        '<meta http-equiv="Content-Security-Policy" '
        "content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Provenance audit: {_e(s.label)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>Provenance audit</h1>",
        f'<p class="sub">{_e(s.label)} · {_e(s.first_time or "-")} .. {_e(s.last_time or "-")}'
        f" · generated {_e(when)}</p>",
    ]
    if s.chain:
        cls = "ok" if s.chain.ok else "bad"
        out.append(
            f'<div class="banner {cls}" id="chain"><b>Hash chain:</b> '
            f"{_e(chain_line(s.chain))}</div>"
        )
    out += _main_banner(s)
    out.append('<div class="cards">')
    out += [
        _card("Runs", s.runs, "runs"),
        _card("Succeeded", s.ok_runs, "ok-runs"),
        _card("Pass rate", pct(s.pass_rate), "pass-rate"),
        _card("Check results", s.results, "results"),
        *(_card(f"Proven {t}", s.tiers[t], f"tier-{t}") for t in TIERS),
        _card("Commits", s.commits, "commits"),
        *([_card("Dirty builds", s.dirty_runs, "dirty-runs")] if s.dirty_runs else []),
    ]
    out.append("</div>")
    cmds = ", ".join(f"{n} {c}" for c, n in s.by_command.items()) or "none"
    actors = ", ".join(s.actors) or "-"
    out.append(f'<p class="sub">Commands: {_e(cmds)} · actors: {_e(actors)}</p>')
    out.append('<h2>Over time</h2><div class="plots">')
    out += [_rate_plot(s.points), _duration_plot(s.points), "</div>"]
    out += _views(s)

    if s.parts:
        out.append(
            '<h2>Ledgers</h2><table id="ledgers"><tr><th>ledger</th><th class="n">runs</th>'
            '<th class="n">pass rate</th><th class="n">reproduced</th><th>chain</th></tr>'
        )
        for p in s.parts:
            ok = p.chain is not None and p.chain.ok
            out.append(
                f'<tr><td class="mono">{_e(p.label)}</td><td class="n">{p.runs}</td>'
                f'<td class="n">{_e(pct(p.pass_rate))}</td>'
                f'<td class="n">{p.tiers["reproduced"]}</td>'
                f'<td class="{"pass" if ok else "fail"}">{"valid" if ok else "BROKEN"}</td></tr>'
            )
        out.append("</table>")

    out.append("<h2>Checks</h2>")
    if s.checks:
        out.append(
            '<table id="checks"><tr><th>check</th><th class="n">runs</th>'
            '<th class="n">passed</th><th class="n">failed</th><th class="n">pass rate</th>'
            '<th class="n">local</th><th class="n">ci</th><th class="n">reproduced</th>'
            "<th>last</th></tr>"
        )
        for c in s.checks:
            out.append(
                f'<tr data-check="{_e(c.name)}"><td class="mono">{_e(c.name)}</td>'
                f'<td class="n">{c.runs}</td><td class="n">{c.passed}</td>'
                f'<td class="n">{c.failed}</td><td class="n">{_e(pct(c.pass_rate))}</td>'
                + "".join(f'<td class="n">{c.tiers[t]}</td>' for t in TIERS)
                + f"<td>{_result(c.last_result)} {_e(c.last_time)}</td></tr>"
            )
        out.append("</table>")
    else:
        out.append('<p class="empty">no check results</p>')

    out.append(f"<h2>Recent runs ({len(s.recent)})</h2>")
    if s.recent:
        out.append(
            '<table id="recent"><tr><th>time</th><th>command</th><th>ok</th><th>commit</th>'
            '<th>tier</th><th>checks</th><th class="n">duration</th><th>by</th></tr>'
        )
        for e in s.recent:
            checks = ", ".join(f"{_e(c.name)}: {_result(c.result, e.dirty)}" for c in e.checks)
            checks = checks or "-"
            dur = _fmt_ms(e.duration_ms) if e.duration_ms is not None else "-"
            who = f"{e.actor.user}@{e.actor.host}"
            key = f" key {e.actor.keyid[:12]}" if e.actor.keyid else ""
            # A dirty build's results are about uncommitted changes: marked, never "passed".
            dirty = ' <span class="tier dirty">dirty</span>' if e.dirty else ""
            out.append(
                f'<tr{" data-dirty" if e.dirty else ""}><td class="mono">{_e(e.time)}</td>'
                f"<td>{_e(e.command)}</td>"
                f'<td class="{"pass" if e.ok else "fail"}">{"yes" if e.ok else "no"}</td>'
                f'<td class="mono">{_e((e.commit or "-")[:12])}{dirty}</td>'
                f'<td><span class="tier {_e(e.tier)}">{_e(e.tier)}</span></td><td>{checks}</td>'
                f'<td class="n">{_e(dur)}</td><td>{_e(who)}{_e(key)}</td></tr>'
            )
        out.append("</table>")
    else:
        out.append('<p class="empty">no runs recorded</p>')
    out.append("</body></html>\n")
    return "\n".join(out)
