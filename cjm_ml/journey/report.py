"""The journey map: one self-contained HTML page a dealer group's managers look at.

``build_report`` turns the canonical events (and, when models have been trained, their friction
hotspots) into a single HTML document with plotly's JavaScript inlined, so it opens offline
from a file or an e-mail: the flow of customers between journey stages (Sankey), the stage
funnel by rooftop, the KPI table against the group standard with deviations highlighted, the
friction hotspots per rooftop, source attribution, what follows key touchpoints and where
journeys go quiet, and the owner's journey after the sale. Everything a reader sees is in
dealer language: stage, touchpoint and KPI labels and stage colours come from the catalogue and
the analytics registries, never from column names. ``write_report`` is the I/O edge.
"""

from __future__ import annotations

import html
import logging
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from cjm_ml.events import catalogue
from cjm_ml.features.instances import NoInstancesError
from cjm_ml.features.timeline import Timeline
from cjm_ml.io import atomic_path
from cjm_ml.journey.analytics import (
    GROUP,
    INTERNAL_RECORDS,
    KPIS,
    OWNER,
    STILL_ACTIVE,
    UNKNOWN_SOURCE,
    WENT_QUIET,
    Events,
    JourneyRules,
    Kpi,
    journey_ends,
    journey_flows,
    post_sale_journey,
    rooftop_kpis,
    source_attribution,
    stage_funnel,
    stage_times,
    top_paths,
    transitions,
)
from cjm_ml.params import TaskParams

log = logging.getLogger(__name__)

#: Columns the friction-hotspot table must have (one row per task, rooftop and driver).
HOTSPOT_COLUMNS: tuple[str, ...] = (
    "task",
    "rooftop_id",
    "driver",
    "stage",
    "mean_contribution",
    "instances",
)
#: Frictions shown per rooftop and task.
HOTSPOTS_PER_ROOFTOP = 3
#: Touchpoints whose next steps the report lists ("what follows a trade-in submission?").
KEY_TOUCHPOINTS: tuple[str, ...] = (
    "trade_in_tool",
    "credit_application",
    "lead_form",
    "missed_call",
    "appointment_no_show",
    "vehicle_delivery",
)
#: Next steps listed per key touchpoint, and last touchpoints listed per segment.
NEXT_STEPS_SHOWN = 4
ENDS_SHOWN = 8
PATHS_SHOWN = 8

TASK_LABELS: dict[str, str] = {
    "lead_leakage": "Leads going dark",
    "no_show": "Appointment no-shows",
    "service_defection": "Buyers not back for first service",
}
SOURCE_LABELS: dict[str, str] = {
    "google_paid_search": "Google paid search",
    "dealer_website_organic": "Dealer website (organic)",
    "oem_website": "OEM website",
    "facebook_ads": "Facebook ads",
    "autotrader": "Autotrader",
    "referral": "Referral",
    "email_campaign": "Email campaign",
    "cars_com": "Cars.com",
    UNKNOWN_SOURCE: "Source not recorded",
}
END_LABELS: dict[str, str] = {WENT_QUIET: "Went quiet", STILL_ACTIVE: "Still in touch"}
END_COLORS: dict[str, str] = {WENT_QUIET: "#8C8C8C", STILL_ACTIVE: "#C7E9C0"}
SEGMENT_LABELS: dict[str, str] = {"shopper": "Shoppers who have not bought", OWNER: "Owners"}
_FLAG_BG = "#FDE2E1"
_FLAG_FG = "#B42318"
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
_PLOT_CONFIG = {"displayModeBar": False, "responsive": True}


# --------------------------------------------------------------------------------------------
# Labels and formats


def source_label(source: str) -> str:
    """A marketing source in plain words (known sources by name, others tidied up)."""
    if source in SOURCE_LABELS:
        return SOURCE_LABELS[source]
    return str(source).replace("_", " ").strip().capitalize() or SOURCE_LABELS[UNKNOWN_SOURCE]


def format_duration_hours(hours: float, short: bool = False) -> str:
    """Hours as a reader says them: '25 min', '5.5 h', '12 days' ('12 d' when ``short``;
    '–' when unknown)."""
    if hours is None or not np.isfinite(hours):
        return "–"
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    days = hours / 24
    unit = "d" if short else "days"
    return f"{days:.1f} {unit}" if days < 10 else f"{days:.0f} {unit}"


def format_kpi(kpi: Kpi, value: float) -> str:
    """A KPI value as shown in the table: minutes, a percentage, or a score of 10."""
    if value is None or not np.isfinite(value):
        return "–"
    if kpi.unit == "minutes":
        return format_duration_hours(value / 60)
    if kpi.unit == "share":
        return f"{value:.1%}"
    return f"{value:.1f}"


def format_deviation(kpi: Kpi, difference: float) -> str:
    """How far a rooftop is from the group standard, in the KPI's unit."""
    if kpi.unit == "minutes":
        sign = "+" if difference >= 0 else "−"
        return f"{sign}{format_duration_hours(abs(difference) / 60)} vs group"
    if kpi.unit == "share":
        return f"{difference * 100:+.1f} pts vs group".replace("-", "−")
    return f"{difference:+.1f} vs group".replace("-", "−")


def _wrap(text: str, width: int) -> str:
    """A chart label broken into lines of about ``width`` characters (plotly's <br>)."""
    return "<br>".join(textwrap.wrap(text, width)) or text


def _esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _count(n: float) -> str:
    return f"{int(n):,}"


def _pct(x: float) -> str:
    return "–" if x is None or not np.isfinite(x) else f"{x:.0%}"


def _rgba(hex_color: str, alpha: float) -> str:
    h = hex_color.lstrip("#")
    r, g, b = (int(h[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r},{g},{b},{alpha})"


class _Names:
    """Display names of rooftops: the given name, else the id; the group row is 'Group'."""

    def __init__(self, names: Mapping[str, str] | None) -> None:
        self.names = dict(names or {})

    def __call__(self, rooftop_id: str) -> str:
        if rooftop_id == GROUP:
            return "Group standard"
        return self.names.get(rooftop_id, rooftop_id)

    def cell(self, rooftop_id: str) -> str:
        """HTML for a rooftop's table cell: name, and the id in small print when named."""
        if rooftop_id == GROUP:
            return "<strong>Group standard</strong>"
        name = self.names.get(rooftop_id)
        if not name:
            return _esc(rooftop_id)
        return f"{_esc(name)} <span class='id'>{_esc(rooftop_id)}</span>"


def _stage_chip(stage_key: str) -> str:
    cat = catalogue()
    try:
        stage = cat.stage(stage_key)
    except KeyError:
        return f"<span class='chip'>{_esc(stage_key)}</span>"
    return (
        f"<span class='chip' style='border-color:{stage.color};"
        f"background:{_rgba(stage.color, 0.15)}'>{_esc(stage.label)}</span>"
    )


def _figure_html(fig: go.Figure, div_id: str) -> str:
    fig.update_layout(
        template="plotly_white",
        font={"family": _FONT, "size": 13, "color": "#1F2933"},
        paper_bgcolor="white",
    )
    return str(
        fig.to_html(full_html=False, include_plotlyjs=False, config=_PLOT_CONFIG, div_id=div_id)
    )


# --------------------------------------------------------------------------------------------
# Sections


def _flow_section(tl: Timeline, rules: JourneyRules) -> str:
    cat = catalogue()
    # A CSI survey is answered alongside the journey, not a step of it: the flow runs around it.
    survey = cat.stage_of("csi_survey")
    flows = journey_flows(tl, rules, leave_out_stages=(survey.key,))
    stages = [s for s in cat.stages if s.key != survey.key]
    keys = [*(s.key for s in stages), WENT_QUIET, STILL_ACTIVE]
    labels = [_wrap(s.label, 14) for s in stages] + [
        END_LABELS[WENT_QUIET],
        END_LABELS[STILL_ACTIVE],
    ]
    colors = [s.color for s in stages] + [END_COLORS[WENT_QUIET], END_COLORS[STILL_ACTIVE]]
    src = [keys.index(k) for k in flows["source"]]
    dst = [keys.index(k) for k in flows["target"]]
    # Plotly lays the stages out; the two ends are pinned to the right edge, quiet on top.
    x = [None] * len(stages) + [0.999, 0.999]
    y = [None] * len(stages) + [0.25, 0.92]
    fig = go.Figure(
        go.Sankey(
            arrangement="snap",
            node={
                "label": labels,
                "color": colors,
                "x": x,
                "y": y,
                "pad": 18,
                "thickness": 18,
                "line": {"color": "white", "width": 0.5},
                "hovertemplate": "%{label}: %{value:,} customers<extra></extra>",
            },
            textfont={"size": 12, "color": "#1F2933"},
            link={
                "source": src,
                "target": dst,
                "value": flows["customers"].tolist(),
                "color": [_rgba(colors[s], 0.35) for s in src],
                "hovertemplate": "%{source.label} → %{target.label}: "
                "%{value:,} customers<extra></extra>",
            },
        )
    )
    fig.update_layout(height=520, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    quiet = int(flows.loc[flows["target"] == WENT_QUIET, "customers"].sum())
    total = int(flows.loc[flows["target"].isin([WENT_QUIET, STILL_ACTIVE]), "customers"].sum())
    paths = top_paths(tl, n=PATHS_SHOWN)
    rows = "".join(
        f"<tr><td class='num'>{r.rank}</td><td>{' → '.join(_stage_chip(k) for k in r.path)}"
        f"</td><td class='num'>{_count(r.customers)}</td><td class='num'>{_pct(r.share)}</td>"
        "</tr>"
        for r in paths.itertuples()
    )
    return (
        "<section id='flow'><h2>How customers move through the journey</h2>"
        "<p class='lead'>Each band is customers going from one stage they reached to the next "
        "one, in journey order (CSI surveys, answered alongside the journey, are left out); the "
        "right-hand end shows whether they are still in touch or went quiet (no touchpoint in "
        f"the last {rules.quiet_after_days:.0f} days). "
        f"{_count(quiet)} of {_count(total)} customers ({_pct(quiet / total if total else np.nan)})"
        " have gone quiet.</p>"
        f"{_figure_html(fig, 'chart-journey-flow')}"
        "<h3>Most common journeys</h3><p class='note'>The order in which customers first "
        "reached each stage.</p>"
        "<table class='data'><thead><tr><th>#</th><th>Journey</th><th class='r'>Customers</th>"
        f"<th class='r'>Share</th></tr></thead><tbody>{rows}</tbody></table></section>"
    )


def _funnel_section(tl: Timeline, rules: JourneyRules, names: _Names) -> str:
    cat = catalogue()
    funnel = stage_funnel(tl)
    times = stage_times(tl)
    rooftops = [GROUP, *[r for r in funnel["rooftop_id"].unique() if r != GROUP]]
    fig = make_subplots(
        rows=1,
        cols=len(rooftops),
        shared_yaxes=True,
        subplot_titles=[names(r) for r in rooftops],
        horizontal_spacing=0.012,
    )
    colors = [s.color for s in cat.stages]
    timed = times.set_index(["rooftop_id", "to_stage"])
    for i, rid in enumerate(rooftops, start=1):
        f = funnel[funnel["rooftop_id"] == rid]
        median = [
            format_duration_hours(timed.at[(rid, s), "median_hours"])
            if (rid, s) in timed.index
            else "–"
            for s in f["stage"]
        ]
        custom = np.column_stack(
            [
                f["customers"].map(_count),
                f["conversion"].map(_pct),
                f["drop_off"].fillna(0).map(_count),
                median,
            ]
        )
        fig.add_trace(
            go.Funnel(
                y=f["stage_label"],
                x=f["customers"],
                text=f["customers"].map(_count),
                textinfo="text",
                textposition="auto",
                marker={"color": colors},
                connector={"line": {"color": "#D0D5DD", "width": 1}},
                customdata=custom,
                hovertemplate=f"<b>{_esc(names(rid))}</b><br>%{{y}}<br>"
                "%{customdata[0]} customers<br>"
                "%{customdata[1]} came on from the stage before (median %{customdata[3]})<br>"
                "%{customdata[2]} dropped off on the way<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=i,
        )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(tickfont={"size": 12})
    fig.update_annotations(font={"size": 13})
    fig.update_layout(height=430, margin={"l": 10, "r": 10, "t": 40, "b": 10})

    steps = times[times["rooftop_id"] == GROUP]
    conv = funnel[funnel["stage_order"] > 0]
    step_labels = [
        f"{a} → {b}" for a, b in zip(steps["from_label"], steps["to_label"], strict=True)
    ]
    head = "".join(f"<th>{_esc(names(r))}</th>" for r in rooftops)
    body = []
    for k, step in enumerate(steps.itertuples()):
        cells = []
        group_conv = float(
            conv[(conv["rooftop_id"] == GROUP) & (conv["stage"] == step.to_stage)][
                "conversion"
            ].iloc[0]
        )
        for rid in rooftops:
            c = conv[(conv["rooftop_id"] == rid) & (conv["stage"] == step.to_stage)]
            value = float(c["conversion"].iloc[0]) if len(c) else np.nan
            t = timed.loc[(rid, step.to_stage)] if (rid, step.to_stage) in timed.index else None
            when = (
                f"{format_duration_hours(t['median_hours'], short=True)} · "
                f"p90 {format_duration_hours(t['p90_hours'], short=True)}"
                if t is not None and t["customers"]
                else "–"
            )
            low = (
                rid != GROUP
                and np.isfinite(value)
                and value <= group_conv - rules.rate_margin + 1e-12
            )
            style = f" style='background:{_FLAG_BG};color:{_FLAG_FG}'" if low else ""
            cells.append(
                f"<td class='num'{style}><span class='big'>{_pct(value)}</span>"
                f"<br><span class='small'>{when}</span></td>"
            )
        body.append(f"<tr><th class='row'>{_esc(step_labels[k])}</th>{''.join(cells)}</tr>")
    return (
        "<section id='funnel'><h2>Stage funnel by rooftop</h2>"
        "<p class='lead'>Customers reaching each stage at their home rooftop (the store of their "
        "first touchpoint). Hover a bar for conversion, drop-off and time taken.</p>"
        f"{_figure_html(fig, 'chart-stage-funnel')}"
        "<h3>Conversion and time between stages</h3><p class='note'>Of the customers who "
        "reached a stage, the share who went on to the next; below, the median time it took and "
        "the time within which 90% made it (p90). Red: "
        f"{rules.rate_margin * 100:g} points or more below the group.</p>"
        f"<div class='scroll'><table class='data grid'><thead><tr><th>Step</th>{head}</tr>"
        f"</thead><tbody>{''.join(body)}</tbody></table></div></section>"
    )


def _kpi_section(
    tl: Timeline, params: TaskParams, rules: JourneyRules, names: _Names
) -> tuple[str, pd.DataFrame]:
    kpis = rooftop_kpis(tl, params, rules)
    rooftops = [GROUP, *[r for r in kpis["rooftop_id"].unique() if r != GROUP]]
    by = kpis.set_index(["rooftop_id", "kpi"])
    leads = by.xs("responded_within_sla", level="kpi")["sample"]
    head = "".join(
        f"<th title='{_esc(k.description)}'>{_esc(_kpi_heading(k, params))}</th>" for k in KPIS
    )
    body = []
    for rid in rooftops:
        cells = [f"<td class='num'>{_count(leads.get(rid, 0))}</td>"]
        for k in KPIS:
            row = by.loc[(rid, k.key)]
            title = (
                f"{k.label}: {format_kpi(k, row['value'])} on {_count(row['sample'])} cases; "
                f"group {format_kpi(k, row['group_standard'])}"
            )
            if bool(row["flagged"]):
                cells.append(
                    f"<td class='num flag' title='{_esc(title)}'>"
                    f"<span class='big'>{format_kpi(k, row['value'])}</span><br>"
                    f"<span class='small'>{_esc(format_deviation(k, row['difference']))}</span>"
                    "</td>"
                )
            else:
                cells.append(
                    f"<td class='num' title='{_esc(title)}'>"
                    f"<span class='big'>{format_kpi(k, row['value'])}</span></td>"
                )
        cls = " class='group'" if rid == GROUP else ""
        body.append(f"<tr{cls}><th class='row'>{names.cell(rid)}</th>{''.join(cells)}</tr>")
    flagged = kpis[kpis["flagged"]]
    summary = (
        "No rooftop is worse than the group by the margins below."
        if flagged.empty
        else "Flagged: "
        + "; ".join(
            f"<strong>{_esc(names(r))}</strong> on "
            + ", ".join(_esc(_lower_first(_kpi_heading(_kpi_of(k), params))) for k in g["kpi"])
            for r, g in flagged.groupby("rooftop_id", sort=True)
        )
        + "."
    )
    rules_text = (
        f"A rooftop is flagged (red) when it is worse than the group standard by a margin worth "
        f"acting on, on at least {rules.min_sample} cases: median first response more than "
        f"{rules.response_ratio:g}× the group's and at least "
        f"{rules.response_extra_minutes:g} min slower; a rate at least "
        f"{rules.rate_margin * 100:g} points lower; CSI at least {rules.csi_margin:g} points "
        "lower. The group standard pools every lead, appointment, delivery and survey of the "
        f"group. The SLA is a first reply within {params.response_sla_minutes:g} minutes."
    )
    html_out = (
        "<section id='kpis'><h2>Rooftop KPIs against the group standard</h2>"
        f"<p class='lead'>{summary}</p>"
        f"<div class='scroll'><table class='data grid kpi'><thead><tr><th>Rooftop</th>"
        f"<th>Leads</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
        f"<p class='note'>{_esc(rules_text)} Hover a column heading for its definition.</p>"
        "</section>"
    )
    return html_out, kpis


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _kpi_of(key: str) -> Kpi:
    return next(k for k in KPIS if k.key == key)


def _kpi_heading(kpi: Kpi, params: TaskParams) -> str:
    if kpi.key == "responded_within_sla":
        return f"Answered within {params.response_sla_minutes:g} min"
    return kpi.label


def _hotspot_section(hotspots: pd.DataFrame | None, names: _Names) -> str:
    title = "<section id='hotspots'><h2>Friction hotspots by rooftop</h2>"
    if hotspots is None:
        return (
            f"{title}<p class='unavailable'>Friction hotspots are not available: train the "
            "models first, then build this report again with their explanations.</p></section>"
        )
    missing = [c for c in HOTSPOT_COLUMNS if c not in hotspots.columns]
    if missing:
        raise ValueError(f"hotspots table is missing column(s): {', '.join(missing)}")
    if hotspots.empty:
        return f"{title}<p class='unavailable'>No friction hotspots were found.</p></section>"
    parts = [
        title,
        "<p class='lead'>The process frictions that add the most risk at each rooftop, from the "
        "models' explanations: the average share of risk the friction adds per case, and how "
        f"many cases it touched (top {HOTSPOTS_PER_ROOFTOP} per rooftop).</p>",
    ]
    df = hotspots.astype({"mean_contribution": float, "rooftop_id": "string"})
    for task, by_task in df.groupby("task", sort=False):
        rows = []
        for rid, g in by_task.groupby("rooftop_id", sort=True):
            top = g.sort_values("mean_contribution", ascending=False).head(HOTSPOTS_PER_ROOFTOP)
            for i, h in enumerate(top.itertuples()):
                who = (
                    f"<th class='row' rowspan='{len(top)}'>{names.cell(str(rid))}</th>"
                    if i == 0
                    else ""
                )
                rows.append(
                    f"<tr>{who}<td>{_esc(h.driver)}</td><td>{_stage_chip(str(h.stage))}</td>"
                    f"<td class='num risk'>+{h.mean_contribution * 100:.1f} pts</td>"
                    f"<td class='num'>{_count(h.instances)}</td></tr>"
                )
        parts.append(
            f"<h3>{_esc(TASK_LABELS.get(str(task), str(task)))}</h3>"
            "<table class='data hotspots'><colgroup><col style='width:24%'>"
            "<col style='width:36%'><col style='width:20%'><col style='width:12%'>"
            "<col style='width:8%'></colgroup><thead><tr><th>Rooftop</th><th>Friction</th>"
            "<th>Stage</th><th class='r'>Risk added per case</th><th class='r'>Cases</th></tr>"
            f"</thead><tbody>{''.join(rows)}</tbody></table>"
        )
    parts.append("</section>")
    return "".join(parts)


def _source_section(tl: Timeline, params: TaskParams, rules: JourneyRules) -> str:
    cat = catalogue()
    attr = source_attribution(tl, params, rules)
    if attr.empty:
        return (
            "<section id='sources'><h2>Marketing sources</h2><p class='unavailable'>No lead has "
            f"been followed for the full {rules.sale_window_days:.0f}-day sale window yet.</p>"
            "</section>"
        )
    labels = [source_label(s) for s in attr["marketing_source"]]
    ticks = [_wrap(label, 14) for label in labels]
    series = (
        ("appointment_rate", "Lead → appointment", "appointment_set"),
        ("show_rate", "Appointment → show", "showroom_visit"),
        ("sale_rate", "Lead → sale", "vehicle_delivery"),
        ("first_service_rate", "Sale → first service", "repair_order_opened"),
    )
    fig = go.Figure()
    for col, name, etype in series:
        fig.add_trace(
            go.Bar(
                x=ticks,
                y=attr[col],
                name=name,
                marker_color=cat.stage_of(etype).color,
                text=[_pct(v) for v in attr[col]],
                textposition="outside",
                textfont={"size": 10},
                customdata=labels,
                hovertemplate="%{customdata}<br>" + name + ": %{y:.1%}<extra></extra>",
            )
        )
    fig.update_layout(
        barmode="group",
        height=430,
        yaxis={"tickformat": ".0%", "title": None, "rangemode": "tozero"},
        xaxis={"tickangle": 0},
        legend={"orientation": "h", "y": 1.1, "x": 0},
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
        bargap=0.25,
    )
    all_leads = attr["leads"].sum()
    show_all = attr["shows"].sum() / max(attr["appointments"].sum(), 1)
    sale_all = attr["sales"].sum() / max(all_leads, 1)
    rows = []
    for r, label in zip(attr.itertuples(), labels, strict=True):
        notes = []
        if r.appointments >= rules.min_sample and r.show_rate <= show_all - rules.rate_margin:
            notes.append("<span class='tag bad'>books but does not show</span>")
        if r.leads >= rules.min_sample and r.sale_rate >= sale_all + rules.rate_margin:
            notes.append("<span class='tag good'>brings buyers</span>")
        rows.append(
            f"<tr><th class='row'>{_esc(label)}</th><td class='num'>{_count(r.leads)}</td>"
            f"<td class='num'>{_count(r.appointments)}</td><td class='num'>{_count(r.shows)}</td>"
            f"<td class='num'>{_pct(r.show_rate)}</td><td class='num'>{_count(r.sales)}</td>"
            f"<td class='num'>{_pct(r.sale_rate)}</td>"
            f"<td class='num'>{_pct(r.first_service_rate)}</td><td>{''.join(notes)}</td></tr>"
        )
    return (
        "<section id='sources'><h2>Marketing sources: from lead to sale and service</h2>"
        f"<p class='lead'>Leads followed for {rules.sale_window_days:.0f} days, by the source "
        "that brought them. Sources whose appointments show "
        f"{rules.rate_margin * 100:g} points or more below the group ({_pct(show_all)}) book "
        "traffic that does not come in (wasted spend); sources that sell "
        f"{rules.rate_margin * 100:g} points or more above the group ({_pct(sale_all)}) bring "
        "buyers.</p>"
        f"{_figure_html(fig, 'chart-sources')}"
        "<div class='scroll'><table class='data grid'><thead><tr><th>Source</th><th>Leads</th>"
        "<th>Appointments</th><th>Showed</th><th>Show rate</th><th>Sold</th><th>Lead to sale</th>"
        "<th>Back for first service</th><th></th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _next_section(tl: Timeline, rules: JourneyRules) -> str:
    cat = catalogue()
    trans = transitions(tl, leave_out=INTERNAL_RECORDS)
    cards = []
    for key in KEY_TOUCHPOINTS:
        nxt = trans[trans["from_event_type"] == key].head(NEXT_STEPS_SHOWN)
        if nxt.empty:
            continue
        total = int(trans.loc[trans["from_event_type"] == key, "count"].sum())
        items = "".join(
            f"<li><span class='bar' style='width:{p * 100:.0f}%;"
            f"background:{_rgba(cat.stage(s).color, 0.55)}'></span>"
            f"<span class='what'>{_esc(lbl)}</span><span class='num'>{_pct(p)}</span></li>"
            for lbl, p, s in zip(nxt["to_label"], nxt["probability"], nxt["to_stage"], strict=True)
        )
        cards.append(
            f"<div class='card next'><h3>After: {_esc(cat.event_type(key).label)}</h3>"
            f"<p class='small'>{_count(total)} times</p><ul class='bars'>{items}</ul></div>"
        )
    ends = journey_ends(tl, rules)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=[SEGMENT_LABELS["shopper"], SEGMENT_LABELS[OWNER]],
        horizontal_spacing=0.28,
    )
    for i, segment in enumerate(("shopper", OWNER), start=1):
        e = ends[ends["segment"] == segment].head(ENDS_SHOWN).iloc[::-1]
        fig.add_trace(
            go.Bar(
                x=e["share"],
                y=e["label"],
                orientation="h",
                marker_color=[cat.stage(s).color for s in e["stage"]],
                text=[_pct(v) for v in e["share"]],
                textposition="outside",
                cliponaxis=False,
                customdata=e["customers"],
                hovertemplate="%{y}: %{customdata:,} customers (%{x:.1%})<extra></extra>",
                showlegend=False,
            ),
            row=1,
            col=i,
        )
    fig.update_xaxes(tickformat=".0%", rangemode="tozero", showgrid=True)
    fig.update_layout(height=380, margin={"l": 10, "r": 40, "t": 40, "b": 10})
    return (
        "<section id='next'><h2>What happens next, and where journeys go quiet</h2>"
        "<p class='lead'>The touchpoint that follows key moments of the journey (repeats of the "
        "same touchpoint count once; the CRM's own task records are left out).</p>"
        f"<div class='cards'>{''.join(cards)}</div>"
        "<h3>The last touchpoint before going quiet</h3><p class='note'>Customers with no "
        f"touchpoint in the last {rules.quiet_after_days:.0f} days, by the last thing that "
        "happened.</p>"
        f"{_figure_html(fig, 'chart-journey-ends')}</section>"
    )


def _post_sale_section(tl: Timeline, params: TaskParams, names: _Names) -> str:
    title = "<section id='post-sale'><h2>After the sale: the owner's journey</h2>"
    try:
        post = post_sale_journey(tl, params)
    except NoInstancesError:
        return (
            f"{title}<p class='unavailable'>No delivery has been followed for the full "
            f"{params.service_defection.window_days:.0f}-day first-service window yet.</p>"
            "</section>"
        )
    rooftops = [GROUP, *[r for r in post["rooftop_id"].unique() if r != GROUP]]
    steps = post.drop_duplicates("step")["step_label"].tolist()
    share = post.pivot(index="rooftop_id", columns="step_label", values="share").loc[
        rooftops, steps
    ]
    group = share.loc[GROUP]
    diff = share - group
    text = share.map(_pct)
    fig = go.Figure(
        go.Heatmap(
            z=diff.to_numpy(),
            x=[_wrap(step, 16) for step in steps],
            y=[names(r) for r in rooftops],
            text=text.to_numpy(),
            texttemplate="%{text}",
            customdata=share.to_numpy(),
            colorscale="RdYlGn",
            zmid=0,
            zmin=-0.2,
            zmax=0.2,
            colorbar={"title": {"text": "vs group"}, "tickformat": "+.0%"},
            hovertemplate="%{y}<br>%{x}: %{customdata:.1%} of deliveries<extra></extra>",
            xgap=2,
            ygap=2,
        )
    )
    fig.update_yaxes(autorange="reversed")
    fig.update_xaxes(side="top", tickangle=0, automargin=True)
    fig.update_layout(height=150 + 44 * len(rooftops), margin={"l": 10, "r": 10, "t": 10, "b": 10})
    n = int(post.loc[post["rooftop_id"] == GROUP, "deliveries"].iloc[0])
    window = params.service_defection.window_days
    return (
        f"{title}<p class='lead'>Of {_count(n)} deliveries followed for {window:.0f} days: the "
        "share that reached each step, from delivery education to picking the car up after its "
        "first service (at any rooftop of the group). Colour: above (green) or below (red) the "
        "group; the text is the rooftop's own share.</p>"
        f"{_figure_html(fig, 'chart-post-sale')}</section>"
    )


_CSS = """
:root { --ink:#1F2933; --muted:#52606D; --line:#E4E7EB; --bg:#F7F8FA; }
* { box-sizing: border-box; }
body { margin:0; font-family:%(font)s; color:var(--ink); background:var(--bg); }
header { background:#102A43; color:white; padding:24px 40px 18px; }
header h1 { margin:0 0 6px; font-size:26px; font-weight:650; }
header p { margin:0; color:#BCCCDC; }
nav { background:white; border-bottom:1px solid var(--line); padding:10px 40px;
      position:sticky; top:0; z-index:10; }
nav a { color:#334E68; text-decoration:none; margin-right:20px; font-size:14px; }
main { max-width:1400px; margin:0 auto; padding:8px 24px 40px; }
section { background:white; border:1px solid var(--line); border-radius:10px;
          padding:18px 22px; margin:18px 0; }
h2 { margin:0 0 6px; font-size:20px; } h3 { margin:18px 0 6px; font-size:16px; }
p.lead { color:var(--muted); margin:0 0 10px; max-width:980px; }
p.note { color:var(--muted); font-size:13px; margin:4px 0 8px; max-width:980px; }
p.unavailable { background:#FFF8E1; border:1px solid #F7D070; padding:12px 14px;
                border-radius:8px; }
table.data { border-collapse:collapse; width:100%%; font-size:14px; }
table.data th, table.data td { border-bottom:1px solid var(--line); padding:6px 8px;
                               text-align:left; vertical-align:top; }
table.data thead th { font-size:12px; color:var(--muted); font-weight:600;
                      text-transform:none; white-space:normal; }
table.grid td, table.grid thead th { text-align:right; }
table.grid thead th:first-child { text-align:left; }
th.row { font-weight:500; white-space:nowrap; }
table.data td.num, table.data th.r { text-align:right; }
td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
tr.group th, tr.group td { background:#F0F4F8; font-weight:600; }
td.flag { background:%(flag_bg)s; color:%(flag_fg)s; font-weight:600; }
.big { font-size:15px; } .small { font-size:12px; color:var(--muted); }
td.flag .small { color:%(flag_fg)s; }
.id { color:#9AA5B1; font-size:12px; margin-left:4px; }
.chip { display:inline-block; border:1px solid; border-radius:10px; padding:0 7px;
        font-size:12px; margin:1px 0; white-space:nowrap; }
.scroll { overflow-x:auto; }
.cards { display:grid; grid-template-columns:repeat(auto-fill,minmax(300px,1fr)); gap:14px; }
.card { border:1px solid var(--line); border-radius:8px; padding:10px 14px; }
.card h3 { margin-top:4px; }
.card ol { margin:0; padding-left:18px; } .card li { margin:3px 0; }
.risk { color:%(flag_fg)s; font-weight:600; white-space:nowrap; }
table.hotspots { margin-bottom:8px; table-layout:fixed; }
ul.bars { list-style:none; margin:0; padding:0; }
ul.bars li { position:relative; display:flex; justify-content:space-between; padding:4px 6px;
             margin:3px 0; font-size:13px; }
ul.bars .bar { position:absolute; left:0; top:0; bottom:0; border-radius:4px; z-index:0; }
ul.bars .what, ul.bars .num { position:relative; z-index:1; }
.tag { display:inline-block; border-radius:10px; padding:1px 8px; font-size:12px; }
.tag.bad { background:%(flag_bg)s; color:%(flag_fg)s; }
.tag.good { background:#E3F9E5; color:#1B5E20; }
footer { color:var(--muted); font-size:12px; text-align:center; padding:10px 0 30px; }
"""


def build_report(
    events: Events,
    params: TaskParams | None = None,
    hotspots: pd.DataFrame | None = None,
    *,
    rooftop_names: Mapping[str, str] | None = None,
    rules: JourneyRules | None = None,
    title: str = "Customer journey map",
) -> str:
    """The journey map as one self-contained HTML document (plotly's JavaScript inlined).

    ``events``: the canonical table (or a prebuilt ``Timeline``). ``hotspots``: optional friction
    roll-ups from the models (columns ``HOTSPOT_COLUMNS``: task, rooftop_id, driver in dealer
    language, stage key, mean_contribution as a share of risk, instances); without it the page
    says the models must be trained first. ``rooftop_names``: rooftop id -> store name for
    display. Raises ``ValueError`` for an empty events table or a hotspots table missing columns.
    """
    params = params or TaskParams()
    rules = rules or JourneyRules()
    tl = Timeline.of(events)
    if len(tl) == 0:
        raise ValueError("the events table is empty: there is no journey to map")
    names = _Names(rooftop_names)
    every = np.arange(len(tl))
    groups = sorted(str(g) for g in pd.unique(tl.column(every, "dealer_group_id")))
    rooftops = len(pd.unique(tl.column(every, "rooftop_id")))
    start, end = (pd.Timestamp(int(t), tz="UTC") for t in (tl.ts.min(), tl.ts.max()))
    kpi_html, _ = _kpi_section(tl, params, rules, names)
    sections = [
        _flow_section(tl, rules),
        _funnel_section(tl, rules, names),
        kpi_html,
        _hotspot_section(hotspots, names),
        _source_section(tl, params, rules),
        _next_section(tl, rules),
        _post_sale_section(tl, params, names),
    ]
    subtitle = (
        f"Dealer group {', '.join(groups)} · {rooftops} rooftops · "
        f"{_count(len(tl.customers))} customers · {_count(len(tl))} events · "
        f"{start:%d %b %Y} to {end:%d %b %Y}"
    )
    nav = "".join(
        f"<a href='#{a}'>{_esc(t)}</a>"
        for a, t in (
            ("flow", "Journey flow"),
            ("funnel", "Funnel"),
            ("kpis", "KPIs"),
            ("hotspots", "Friction hotspots"),
            ("sources", "Sources"),
            ("next", "Next steps"),
            ("post-sale", "After the sale"),
        )
    )
    css = _CSS % {"font": _FONT, "flag_bg": _FLAG_BG, "flag_fg": _FLAG_FG}
    log.info("built the journey map for %d customers and %d events", len(tl.customers), len(tl))
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='icon' href='data:,'>"  # no favicon request: the page needs no server
        f"<title>{_esc(title)}</title><style>{css}</style>"
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>"
        f"<header><h1>{_esc(title)}</h1><p>{_esc(subtitle)}</p></header><nav>{nav}</nav>"
        f"<main>{''.join(sections)}</main>"
        "<footer>Built by cjm-ml from the journey events. Figures pool every rooftop of the "
        "group unless a rooftop is named.</footer></body></html>"
    )


def write_report(
    events: Events,
    path: Path,
    params: TaskParams | None = None,
    hotspots: pd.DataFrame | None = None,
    *,
    rooftop_names: Mapping[str, str] | None = None,
    rules: JourneyRules | None = None,
) -> Path:
    """Build the journey map and write it to ``path`` atomically (a reader never sees half)."""
    page = build_report(events, params, hotspots, rooftop_names=rooftop_names, rules=rules)
    with atomic_path(path) as tmp:
        tmp.write_text(page, encoding="utf-8")
    log.info("wrote the journey map to %s (%.1f MB)", path, len(page.encode()) / 1e6)
    return path


def rooftop_names_of(rooftops: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Rooftop id -> name from the rooftop records of ``rooftops.json`` (``cjm simulate``)."""
    return {str(r["rooftop_id"]): str(r["name"]) for r in rooftops if "name" in r}
