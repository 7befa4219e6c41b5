"""The report as one self-contained HTML page: the tables plus an equity curve and daily PnL bars.

Charts are drawn by matplotlib (the `report` extra) into SVG that is inlined in the page, so
the page fetches nothing: no script, no font, no stylesheet from the network.
"""

from __future__ import annotations

import html
import io
import re
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from arbitrage.report.figures import Report
from arbitrage.report.terminal import report_tables, window_text

MATPLOTLIB_MISSING = "--html needs matplotlib: pip install 'arbitrage[report]'"

# What an inlined SVG must not keep: the XML prolog, the DTD reference and the RDF metadata.
_PROLOG = re.compile(r"<\?xml[^>]*\?>\s*|<!DOCTYPE[^>]*>\s*|<metadata>.*?</metadata>\s*", re.DOTALL)


# More points than a chart has pixels across only slow the drawing and swell the page.
MAX_CURVE_POINTS = 2000


def thin_curve(points: list[tuple[float, float]], buckets: int) -> list[tuple[float, float]]:
    """At most about 4 * `buckets` points drawing the same step curve at chart resolution: per
    equal slice of time, its first, lowest, highest and last points in time order, so that no
    peak or trough (the drawdown) is lost."""
    if len(points) <= 4 * buckets:
        return points
    t0, t1 = points[0][0], points[-1][0]
    width = (t1 - t0) / buckets or 1.0
    slices: dict[int, list[int]] = {}
    for i, (ts, _) in enumerate(points):
        slices.setdefault(min(int((ts - t0) / width), buckets - 1), []).append(i)
    keep: list[int] = []
    for idx in slices.values():
        low = min(idx, key=lambda i: points[i][1])
        high = max(idx, key=lambda i: points[i][1])
        keep += sorted({idx[0], low, high, idx[-1]})
    return [points[i] for i in keep]


def _style() -> Any:
    """Text stays text in the SVG (small, searchable); fixed ids make the page reproducible."""
    import matplotlib

    return matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "arb-report", "font.size": 9})


def _figure(height: float) -> tuple[Any, Any]:
    # The object API, not pyplot: no global figure registry, no GUI backend, a faster import.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, height))
    return fig, fig.subplots()


def _thousands(ax: Any) -> None:
    from matplotlib.ticker import StrMethodFormatter

    ax.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    return _PROLOG.sub("", buf.getvalue()).strip()


def equity_svg(report: Report, currency: str) -> str:
    with _style():
        fig, ax = _figure(3.2)
        if report.equity:
            curve = thin_curve([(ts, float(v)) for ts, v in report.equity], MAX_CURVE_POINTS // 4)
            xs = [datetime.fromtimestamp(ts, UTC) for ts, _ in curve]
            ys = [v for _, v in curve]
            ax.step(xs, ys, where="post", color="#1f6feb", linewidth=1.2, label="realized equity")
            dd = report.drawdown
            if dd.amount and dd.trough_ts is not None:
                trough = datetime.fromtimestamp(dd.trough_ts, UTC)
                ax.axvline(trough, color="#cf222e", linewidth=0.8, linestyle="--",
                           label=f"max drawdown {float(dd.amount):,.0f} {currency}")  # fmt: skip
            ax.legend(loc="upper left", frameon=False)
            fig.autofmt_xdate()
        else:
            ax.text(0.5, 0.5, "no realized PnL in this window", ha="center", va="center",
                    transform=ax.transAxes)  # fmt: skip
        ax.axhline(0, color="#888", linewidth=0.6)
        ax.set_title(f"Realized equity ({currency})", loc="left")
        _thousands(ax)
        ax.grid(alpha=0.3)
        return _svg(fig)


def daily_svg(report: Report, currency: str) -> str:
    with _style():
        fig, ax = _figure(3.0)
        if report.days:
            labels = [d.day for d in report.days]
            values = [float(d.realized) for d in report.days]
            colors = ["#1a7f37" if v >= 0 else "#cf222e" for v in values]
            ax.bar(range(len(values)), values, color=colors)
            step = max(1, len(labels) // 15)
            ax.set_xticks(range(0, len(labels), step), labels[::step], rotation=30, ha="right")
        else:
            ax.text(0.5, 0.5, "no day booked in this window", ha="center", va="center",
                    transform=ax.transAxes)  # fmt: skip
        ax.axhline(0, color="#888", linewidth=0.6)
        ax.set_title(f"PnL per day ({currency})", loc="left")
        _thousands(ax)
        ax.grid(axis="y", alpha=0.3)
        return _svg(fig)


def tables_html(report: Report, currency: str) -> str:
    console = Console(
        record=True, width=140, file=io.StringIO(), force_terminal=True, color_system="truecolor"
    )
    for table in report_tables(report, currency):
        console.print(table)
        console.print()
    return console.export_html(inline_styles=True, code_format="<pre class=tables>{code}</pre>")


def render_page(report: Report, currency: str, ledger: str, generated: str) -> str:
    """The whole page; raises ModuleNotFoundError (named matplotlib) without the report extra."""
    equity, daily = equity_svg(report, currency), daily_svg(report, currency)
    title = f"arb report: {ledger}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #1f2328; }}
h1 {{ font-size: 1.3em; }}
.meta {{ color: #57606a; }}
.chart svg {{ max-width: 100%; height: auto; }}
pre.tables {{ font-family: monospace; font-size: 12px; line-height: 1.25; }}
</style>
</head>
<body>
<h1>{html.escape(title)}</h1>
<p class="meta">{html.escape(window_text(report))}; generated {html.escape(generated)}</p>
<div class="chart">{equity}</div>
<div class="chart">{daily}</div>
{tables_html(report, currency)}
</body>
</html>
"""
