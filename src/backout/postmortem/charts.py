"""Two small SVG charts, written by hand (no plotting library): the trigger's signal over
time against its limit, with the deploy, the detection and the restore marked; and a Gantt
of the steps and checks. Each is one ``<svg>`` element, self-contained (no script, no
font or image fetched), so it can be inlined in HTML or written next to a Markdown file."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from backout.postmortem.model import Postmortem, Signal

Redact = Callable[[str], str]
WIDTH = 720
COLOURS = {
    "succeeded": "#1e8e3e",
    "failed": "#d93025",
    "running": "#f4b400",
    "skipped": "#9aa0a6",
    "pending": "#dadce0",
}
MARKERS = (("deploy", "#1a73e8"), ("detected", "#d93025"), ("restored", "#1e8e3e"))


def _attrs(attrs: dict[str, object]) -> str:
    return "".join(
        f' {k.rstrip("_").replace("_", "-")}="{escape(str(v))}"' for k, v in attrs.items()
    )


def el(tag: str, body: str = "", **attrs: object) -> str:
    """One element; ``body`` is markup already (escape text with :func:`text`)."""
    return f"<{tag}{_attrs(attrs)}>{body}</{tag}>" if body else f"<{tag}{_attrs(attrs)}/>"


def text(value: str) -> str:
    return escape(value, quote=False)


def _svg(kind: str, height: int, title: str, body: str) -> str:
    return el(
        "svg",
        el("title", text(title)) + body,
        xmlns="http://www.w3.org/2000/svg",
        viewBox=f"0 0 {WIDTH} {height}",
        width=WIDTH,
        height=height,
        role="img",
        class_=f"chart chart-{kind}",
        font_family="system-ui, sans-serif",
        font_size=11,
    )


class Scale:
    """A linear map from data to pixels."""

    def __init__(self, lo: float, hi: float, start: float, end: float) -> None:
        self.lo, self.hi = lo, hi if hi > lo else lo + 1.0
        self.start, self.end = start, end

    def __call__(self, value: float) -> float:
        share = (value - self.lo) / (self.hi - self.lo)
        return round(self.start + share * (self.end - self.start), 1)


def _ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    step = (hi - lo) / count if hi > lo else 1.0
    return [lo + i * step for i in range(count + 1)]


def _fmt(value: float) -> str:
    return f"{value:.3g}"


# --- the signal --------------------------------------------------------------------------
def signal_chart(pm: Postmortem, redact: Redact) -> str | None:
    """The trigger's signal against its limit; None when no reading was journalled."""
    signal = pm.signal
    if signal is None or not signal.points:
        return None
    m = pm.moments
    marks = {
        "deploy": m.live_at or m.deploy_at,
        "detected": m.detected_at,
        "restored": m.restored_at,
    }
    times = [p.at for p in signal.points] + [t for t in marks.values() if t is not None]
    x = Scale(min(times), max(times), 60, WIDTH - 20)
    values = [p.value for p in signal.points] + [
        p.limit for p in signal.points if p.limit is not None
    ]
    base = _baseline_value(signal)
    if base is not None:
        values.append(base)
    y = Scale(min(0.0, *values), max(values) * 1.15 if max(values) > 0 else 1.0, 210, 20)
    body = _axes(x, y, 210) + _limit(signal, x, y) + _line(signal, x, y)
    if base is not None:
        body += _hline(base, x, y, "baseline-line", "#5f6b76", f"baseline {_fmt(base)}")
    body += "".join(_marker(name, at, colour, x) for name, colour in MARKERS if (at := marks[name]))
    measure = f"{signal.name} ({signal.measure})" if signal.name else signal.measure
    title = redact(
        f"{measure} of trigger {signal.trigger!r} against its limit ({signal.limit_label})"
    )
    legend = el("text", text(title), x=60, y=250, fill="#1f2328")
    return _svg("signal", 260, title, body + legend)


def _baseline_value(signal: Signal) -> float | None:
    base = signal.baseline or {}
    value = base.get("value")
    comparable = signal.measure in ("value", "observed rate")
    return float(value) if comparable and isinstance(value, int | float) else None


def _axes(x: Scale, y: Scale, bottom: float) -> str:
    parts = [el("line", x1=x.start, y1=bottom, x2=x.end, y2=bottom, stroke="#5f6b76")]
    parts.append(el("line", x1=x.start, y1=y.end, x2=x.start, y2=bottom, stroke="#5f6b76"))
    for value in _ticks(y.lo, y.hi):
        parts.append(
            el("text", text(_fmt(value)), x=x.start - 6, y=y(value) + 4, text_anchor="end")
        )
    for at in _ticks(x.lo, x.hi):
        label = f"+{at - x.lo:.1f}s"
        parts.append(el("text", text(label), x=x(at), y=bottom + 16, text_anchor="middle"))
    return el("g", "".join(parts), class_="axes", fill="#5f6b76")


def _line(signal: Signal, x: Scale, y: Scale) -> str:
    points = " ".join(f"{x(p.at)},{y(p.value)}" for p in signal.points)
    dots = "".join(
        el(
            "circle",
            el("title", text(f"#{p.seq}: {_fmt(p.value)} ({p.verdict})")),
            cx=x(p.at),
            cy=y(p.value),
            r=3.5,
            class_=f"signal-point verdict-{p.verdict}",
            fill=COLOURS["failed"] if p.verdict == "fail" else "#1a73e8",
        )
        for p in signal.points
    )
    line = el("polyline", points=points, fill="none", stroke="#1a73e8", stroke_width=2)
    return el("g", line + dots, class_="signal-line")


def _limit(signal: Signal, x: Scale, y: Scale) -> str:
    limited = [p for p in signal.points if p.limit is not None]
    if not limited:
        return ""
    xs = [x.start] + [x(p.at) for p in limited] + [x.end]
    ys = (
        [y(limited[0].limit or 0.0)]
        + [y(p.limit or 0.0) for p in limited]
        + [y(limited[-1].limit or 0.0)]
    )
    points = " ".join(f"{a},{b}" for a, b in zip(xs, ys, strict=True))
    line = el(
        "polyline",
        points=points,
        fill="none",
        stroke="#d93025",
        stroke_width=1.5,
        stroke_dasharray="6 4",
    )
    label = el(
        "text",
        text(f"limit: {signal.limit_label}"),
        x=x.end,
        y=ys[-1] - 5,
        text_anchor="end",
        fill="#d93025",
    )
    return el("g", line + label, class_="limit-line")


def _hline(value: float, x: Scale, y: Scale, cls: str, colour: str, label: str) -> str:
    line = el(
        "line",
        x1=x.start,
        y1=y(value),
        x2=x.end,
        y2=y(value),
        stroke=colour,
        stroke_dasharray="2 3",
    )
    return el(
        "g", line + el("text", text(label), x=x.start + 4, y=y(value) - 4, fill=colour), class_=cls
    )


def _marker(name: str, at: float, colour: str, x: Scale) -> str:
    line = el("line", x1=x(at), y1=20, x2=x(at), y2=210, stroke=colour, stroke_width=1.5)
    right = x(at) > WIDTH - 90  # near the right edge: the label goes to the left
    label = el(
        "text",
        text(name),
        x=x(at) - 3 if right else x(at) + 3,
        y=30,
        fill=colour,
        text_anchor="end" if right else "start",
    )
    return el("g", line + label, class_=f"marker marker-{name}")


# --- the steps ---------------------------------------------------------------------------
ROW = 22
LABEL_W = 260


def gantt_chart(pm: Postmortem, redact: Redact, now: float) -> str | None:
    """A bar per step and check that started, from its first start to its finish (to
    ``now`` while it runs); None when nothing started."""
    rows = [
        (f"{s.number}. {s.name}", s.role, s.status, s.started_at, s.finished_at)
        for s in pm.steps
        if s.started_at is not None
    ]
    rows += [
        (
            f"check {c.number}. {c.name}",
            "verify",
            _check_status(c.passed),
            c.started_at,
            c.finished_at,
        )
        for c in pm.checks
        if c.started_at is not None
    ]
    if not rows:
        return None
    start = pm.moments.created_at
    end = max([pm.moments.finished_at or now] + [r[4] or now for r in rows])
    x = Scale(start, end, LABEL_W, WIDTH - 20)
    height = 30 + ROW * len(rows) + 24
    bars = "".join(_bar(i, row, x, now, redact) for i, row in enumerate(rows))
    axis = "".join(
        el(
            "text",
            text(f"+{at - start:.1f}s"),
            x=x(at),
            y=height - 8,
            text_anchor="middle",
            fill="#5f6b76",
        )
        for at in _ticks(x.lo, x.hi)
    )
    title = redact(f"steps of run {pm.run_id} over time (seconds since it was created)")
    head = el("text", text(title), x=0, y=14, fill="#1f2328")
    return _svg("steps", height, title, head + bars + el("g", axis, class_="axes"))


def _check_status(passed: bool | None) -> str:
    return "running" if passed is None else "succeeded" if passed else "failed"


def _bar(
    i: int,
    row: tuple[str, str, str, float | None, float | None],
    x: Scale,
    now: float,
    redact: Redact,
) -> str:
    label, role, status, started, finished = row
    top = 24 + i * ROW
    left = x(started or x.lo)
    width = max(2.0, x(finished or now) - left)
    name = redact(label if len(label) <= 40 else label[:39] + "…")
    took = (finished or now) - (started or now)
    tip = el("title", text(redact(f"{label} ({role}): {status}, {took:.3f}s")))
    return el(
        "g",
        el("text", text(name), x=0, y=top + 14, fill="#1f2328")
        + el(
            "rect",
            tip,
            x=left,
            y=top + 3,
            width=round(width, 1),
            height=ROW - 8,
            rx=2,
            fill=COLOURS.get(status, "#dadce0"),
            class_=f"bar bar-{status} role-{role}",
        ),
        class_="step-row",
    )
