"""SVG drawings rendered on the server (sans-I/O): the plan graph and the spend chart.

Contract: both functions return a complete ``<svg>`` element as a string, every text
escaped, sized by a ``viewBox`` so the page scales it; colours come from CSS classes
(``status-passed`` ...) defined in the shipped stylesheet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

XMLNS = "http://www.w3.org/2000/svg"
NODE_WIDTH = 200
NODE_HEIGHT = 54
COLUMN_GAP = 60
ROW_GAP = 18
MARGIN = 10


@dataclass(frozen=True)
class GraphNode:
    """One sub-task in the plan graph."""

    key: str
    title: str
    status: str
    executor: str | None
    depends_on: tuple[str, ...]


def layers(nodes: Sequence[GraphNode]) -> dict[str, int]:
    """Each node's column: the length of the longest dependency chain leading to it.

    Dependencies on unknown keys are ignored; a cycle (which a validated plan never has)
    is broken by treating the edge that closes it as absent.
    """
    by_key = {n.key: n for n in nodes}
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def visit(key: str) -> int:
        if key in depth:
            return depth[key]
        if key in visiting:
            return -1
        visiting.add(key)
        parents = [d for d in by_key[key].depends_on if d in by_key]
        found = max((visit(p) for p in parents), default=-1) + 1
        visiting.discard(key)
        depth[key] = found
        return found

    for node in nodes:
        visit(node.key)
    return depth


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plan_graph(nodes: Sequence[GraphNode]) -> str:
    """The plan as a left-to-right dependency graph; each node links to ``#task-<key>``."""
    if not nodes:
        return f'<svg xmlns="{XMLNS}" class="plan-graph" viewBox="0 0 10 10" role="img"></svg>'
    column = layers(nodes)
    rows: dict[int, int] = {}
    place: dict[str, tuple[int, int]] = {}
    for node in nodes:
        col = column[node.key]
        row = rows.get(col, 0)
        rows[col] = row + 1
        x = MARGIN + col * (NODE_WIDTH + COLUMN_GAP)
        y = MARGIN + row * (NODE_HEIGHT + ROW_GAP)
        place[node.key] = (x, y)
    width = MARGIN * 2 + (max(column.values()) + 1) * (NODE_WIDTH + COLUMN_GAP) - COLUMN_GAP
    height = MARGIN * 2 + max(rows.values()) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    parts = [
        f'<svg xmlns="{XMLNS}" class="plan-graph" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="plan dependency graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'class="edge-head"/></marker></defs>',
    ]
    for node in nodes:
        x2, y2 = place[node.key]
        for dep in node.depends_on:
            if dep not in place:
                continue
            x1, y1 = place[dep]
            sx, sy = x1 + NODE_WIDTH, y1 + NODE_HEIGHT // 2
            ex, ey = x2, y2 + NODE_HEIGHT // 2
            mid = (sx + ex) // 2
            parts.append(
                f'<path class="edge" d="M{sx},{sy} C{mid},{sy} {mid},{ey} {ex},{ey}" '
                'marker-end="url(#arrow)"/>'
            )
    for node in nodes:
        x, y = place[node.key]
        status = escape(node.status)
        sub = status.replace("_", " ") + (f" · {escape(node.executor)}" if node.executor else "")
        parts.append(
            f'<a href="#task-{escape(node.key)}" class="node status-{status}" '
            f'data-key="{escape(node.key)}" data-status="{status}">'
            f"<title>{escape(node.key)}: {escape(node.title)}</title>"
            f'<rect x="{x}" y="{y}" width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="6"/>'
            f'<text x="{x + 10}" y="{y + 21}" class="node-key">'
            f"{escape(_short(node.key, 26))}</text>"
            f'<text x="{x + 10}" y="{y + 41}" class="node-sub">{_short(sub, 40)}</text></a>'
        )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class Bar:
    """One day in the spend chart."""

    label: str
    """The day, ``YYYY-MM-DD``."""
    micros: int
    unpriced: int
    text: str
    """The day's total as the ledger formats it (``$3.42 + 1 unpriced run``)."""
    href: str


CHART_HEIGHT = 160
BAR_WIDTH = 22
BAR_GAP = 6
AXIS = 44


def spend_chart(bars: Sequence[Bar]) -> str:
    """Bars of spend per day (priced USD); a day with unpriced parts gets a marker ``?``."""
    peak = max((b.micros for b in bars), default=0) or 1
    width = AXIS + len(bars) * (BAR_WIDTH + BAR_GAP) + 10
    height = CHART_HEIGHT + 40
    parts = [
        f'<svg xmlns="{XMLNS}" class="spend-chart" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-label="spend per day">',
        f'<line class="axis" x1="{AXIS}" y1="{CHART_HEIGHT}" x2="{width}" y2="{CHART_HEIGHT}"/>',
        f'<text class="axis-label" x="{AXIS - 4}" y="12" text-anchor="end">'
        f"${peak / 1_000_000:,.2f}</text>",
        f'<text class="axis-label" x="{AXIS - 4}" y="{CHART_HEIGHT}" text-anchor="end">$0</text>',
    ]
    for index, bar in enumerate(bars):
        x = AXIS + 4 + index * (BAR_WIDTH + BAR_GAP)
        h = round(bar.micros / peak * (CHART_HEIGHT - 16))
        y = CHART_HEIGHT - h
        label = escape(bar.label)
        parts.append(
            f'<a href="{escape(bar.href)}" class="bar" data-day="{label}">'
            f"<title>{label}: {escape(bar.text)}</title>"
            f'<rect x="{x}" y="{y}" width="{BAR_WIDTH}" height="{max(h, 1)}"/>'
        )
        if bar.unpriced:
            parts.append(
                f'<text class="unpriced-mark" x="{x + BAR_WIDTH // 2}" y="{y - 3}" '
                'text-anchor="middle">?</text>'
            )
        if index % 5 == 0 or index == len(bars) - 1:
            parts.append(
                f'<text class="axis-label" x="{x + BAR_WIDTH // 2}" y="{CHART_HEIGHT + 16}" '
                f'text-anchor="middle">{label[5:]}</text>'
            )
        parts.append("</a>")
    parts.append("</svg>")
    return "".join(parts)
