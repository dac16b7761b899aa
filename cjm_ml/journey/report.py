"""The journey map: one self-contained HTML page a dealer group's managers look at.

``build_report`` turns the canonical events (and, when models have been trained, their friction
hotspots) into a single HTML document with plotly's JavaScript and the page's CSS inlined, so
it opens offline from a file or an e-mail: the flow of customers between journey stages
(Sankey), the stage funnel by rooftop, the KPI table against the group standard with
deviations highlighted, the friction hotspots per rooftop, source attribution, what follows key
touchpoints and where journeys go quiet, and the owner's journey after the sale.

Python builds the data of each section (plotly figures as HTML divs, rows for the tables) and
the Jinja2 templates in ``templates/`` lay it out (autoescaped); the CSS is
``static/journey.css``. Everything a reader sees is in dealer language: labels and stage
colours come from the catalogue and the analytics registries, values are worded by
``cjm_ml.formatting``, and "worse than the group" is ``cjm_ml.rules``' rule.
``write_report`` is the I/O edge.
"""

from __future__ import annotations

import html
import logging
import textwrap
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from jinja2 import Environment
from markupsafe import Markup
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from cjm_ml.events import catalogue
from cjm_ml.explain.rollup import HOTSPOT_COLUMNS
from cjm_ml.features.instances import NoInstancesError
from cjm_ml.features.timeline import Timeline
from cjm_ml.formatting import (
    format_count,
    format_deviation,
    format_hours,
    format_kpi,
    format_percent,
    format_points,
    source_label,
    task_label,
)
from cjm_ml.io import atomic_path
from cjm_ml.journey.analytics import (
    INTERNAL_RECORDS,
    KPIS,
    OWNER,
    SHOPPER,
    STILL_ACTIVE,
    WENT_QUIET,
    Events,
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
from cjm_ml.pages import page_css, page_templates
from cjm_ml.params import TaskParams
from cjm_ml.rules import GROUP, JourneyRules, better_than_group, worse_than_group

log = logging.getLogger(__name__)

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
#: The page's sections: anchor and navigation label, in page order.
SECTIONS: tuple[tuple[str, str], ...] = (
    ("flow", "Journey flow"),
    ("funnel", "Funnel"),
    ("kpis", "KPIs"),
    ("hotspots", "Friction hotspots"),
    ("sources", "Sources"),
    ("next", "Next steps"),
    ("post-sale", "After the sale"),
)

END_LABELS: dict[str, str] = {WENT_QUIET: "Went quiet", STILL_ACTIVE: "Still in touch"}
END_COLORS: dict[str, str] = {WENT_QUIET: "#8C8C8C", STILL_ACTIVE: "#C7E9C0"}
SEGMENT_LABELS: dict[str, str] = {SHOPPER: "Shoppers who have not bought", OWNER: "Owners"}
#: The page's font, for the CSS (``--font``) and the charts alike.
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
_PLOT_CONFIG = {"displayModeBar": False, "responsive": True}
#: Source-attribution series: rate column, legend name, event type whose stage colours it.
_SOURCE_SERIES: tuple[tuple[str, str, str], ...] = (
    ("appointment_rate", "Lead → appointment", "appointment_set"),
    ("show_rate", "Appointment → show", "showroom_visit"),
    ("sale_rate", "Lead → sale", "vehicle_delivery"),
    ("first_service_rate", "Sale → first service", "repair_order_opened"),
)


# --------------------------------------------------------------------------------------------
# Templates and shared pieces


@cache
def _templates() -> Environment:
    """The page's Jinja2 templates (autoescaped; a missing variable is an error)."""
    return page_templates("cjm_ml.journey", number=lambda x: f"{x:g}", whole=lambda x: f"{x:.0f}")


def _render(template: str, **context: Any) -> Markup:
    """One template, rendered with ``context`` (already-safe HTML stays as it is)."""
    return Markup(_templates().get_template(template).render(**context))


def _wrap(text: str, width: int) -> str:
    """A chart label broken into lines of about ``width`` characters (plotly's <br>)."""
    return "<br>".join(textwrap.wrap(text, width)) or text


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

    def cell(self, rooftop_id: str) -> dict[str, Any]:
        """What a rooftop's table cell shows: its name (if any) and id, or the group."""
        return {
            "rooftop_id": rooftop_id,
            "name": self.names.get(rooftop_id),
            "is_group": rooftop_id == GROUP,
        }


def _stage_chip(stage_key: str) -> dict[str, str | None]:
    """A stage as a chip: its label and colours (an unknown stage: its key, uncoloured)."""
    try:
        stage = catalogue().stage(stage_key)
    except KeyError:
        return {"label": stage_key, "color": None, "background": None}
    return {"label": stage.label, "color": stage.color, "background": _rgba(stage.color, 0.15)}


def _figure_html(fig: go.Figure, div_id: str) -> Markup:
    """A chart as an HTML div with its script (plotly's library is inlined once, in the page)."""
    fig.update_layout(
        template="plotly_white",
        font={"family": FONT, "size": 13, "color": "#1F2933"},
        paper_bgcolor="white",
    )
    return Markup(
        fig.to_html(full_html=False, include_plotlyjs=False, config=_PLOT_CONFIG, div_id=div_id)
    )


def _group_first(rooftop_ids: pd.Series) -> list[str]:
    """The group, then the rooftops in their order of appearance."""
    return [GROUP, *[str(r) for r in rooftop_ids.unique() if r != GROUP]]


# --------------------------------------------------------------------------------------------
# Journey flow


def _flow_section(tl: Timeline, rules: JourneyRules) -> Markup:
    # A CSI survey is answered alongside the journey, not a step of it: the flow runs around it.
    survey = catalogue().stage_of("csi_survey").key
    flows = journey_flows(tl, rules, leave_out_stages=(survey,))
    quiet = int(flows.loc[flows["target"] == WENT_QUIET, "customers"].sum())
    total = int(flows.loc[flows["target"].isin([WENT_QUIET, STILL_ACTIVE]), "customers"].sum())
    paths = [
        {
            "rank": r.rank,
            "stages": [_stage_chip(k) for k in r.path],
            "customers": r.customers,
            "share": r.share,
        }
        for r in top_paths(tl, n=PATHS_SHOWN).itertuples()
    ]
    return _render(
        "flow.html.j2",
        quiet_after_days=rules.quiet_after_days,
        quiet=quiet,
        total=total,
        quiet_share=quiet / total if total else np.nan,
        chart=_figure_html(_flow_figure(flows, survey), "chart-journey-flow"),
        paths=paths,
    )


def _flow_figure(flows: pd.DataFrame, left_out: str) -> go.Figure:
    """The Sankey of customers between stages, ending in 'went quiet' or 'still in touch'."""
    stages = [s for s in catalogue().stages if s.key != left_out]
    keys = [*(s.key for s in stages), WENT_QUIET, STILL_ACTIVE]
    labels = [_wrap(s.label, 14) for s in stages] + [END_LABELS[k] for k in keys[-2:]]
    colors = [s.color for s in stages] + [END_COLORS[k] for k in keys[-2:]]
    src = [keys.index(k) for k in flows["source"]]
    # Plotly lays the stages out; the two ends are pinned to the right edge, quiet on top.
    node = {
        "label": labels,
        "color": colors,
        "x": [None] * len(stages) + [0.999, 0.999],
        "y": [None] * len(stages) + [0.25, 0.92],
        "pad": 18,
        "thickness": 18,
        "line": {"color": "white", "width": 0.5},
        "hovertemplate": "%{label}: %{value:,} customers<extra></extra>",
    }
    link = {
        "source": src,
        "target": [keys.index(k) for k in flows["target"]],
        "value": flows["customers"].tolist(),
        "color": [_rgba(colors[s], 0.35) for s in src],
        "hovertemplate": "%{source.label} → %{target.label}: %{value:,} customers<extra></extra>",
    }
    fig = go.Figure(
        go.Sankey(
            arrangement="snap", node=node, textfont={"size": 12, "color": "#1F2933"}, link=link
        )
    )
    fig.update_layout(height=520, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


# --------------------------------------------------------------------------------------------
# Stage funnel


def _funnel_section(tl: Timeline, rules: JourneyRules, names: _Names) -> Markup:
    funnel = stage_funnel(tl)
    times = stage_times(tl)
    rooftops = _group_first(funnel["rooftop_id"])
    return _render(
        "funnel.html.j2",
        rules=rules,
        chart=_figure_html(_funnel_figure(funnel, times, rooftops, names), "chart-stage-funnel"),
        rooftops=[names(r) for r in rooftops],
        steps=_funnel_steps(funnel, times, rooftops, rules),
    )


def _funnel_figure(
    funnel: pd.DataFrame, times: pd.DataFrame, rooftops: list[str], names: _Names
) -> go.Figure:
    """One funnel per rooftop (the group first), side by side, with conversion on hover."""
    fig = make_subplots(
        rows=1,
        cols=len(rooftops),
        shared_yaxes=True,
        subplot_titles=[names(r) for r in rooftops],
        horizontal_spacing=0.012,
    )
    timed = times.set_index(["rooftop_id", "to_stage"])
    for i, rid in enumerate(rooftops, start=1):
        fig.add_trace(_funnel_trace(funnel[funnel["rooftop_id"] == rid], timed, rid, names), 1, i)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(tickfont={"size": 12})
    fig.update_annotations(font={"size": 13})
    fig.update_layout(height=430, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return fig


def _funnel_trace(f: pd.DataFrame, timed: pd.DataFrame, rid: str, names: _Names) -> go.Funnel:
    """A rooftop's funnel: customers per stage, conversion, drop-off and median time on hover."""
    median = [
        format_hours(timed.at[(rid, s), "median_hours"]) if (rid, s) in timed.index else "–"
        for s in f["stage"]
    ]
    custom = np.column_stack(
        [
            f["customers"].map(format_count),
            f["conversion"].map(format_percent),
            f["drop_off"].fillna(0).map(format_count),
            median,
        ]
    )
    return go.Funnel(
        y=f["stage_label"],
        x=f["customers"],
        text=f["customers"].map(format_count),
        textinfo="text",
        textposition="auto",
        marker={"color": [s.color for s in catalogue().stages]},
        connector={"line": {"color": "#D0D5DD", "width": 1}},
        customdata=custom,
        hovertemplate=f"<b>{html.escape(names(rid), quote=True)}</b><br>%{{y}}<br>"
        "%{customdata[0]} customers<br>"
        "%{customdata[1]} came on from the stage before (median %{customdata[3]})<br>"
        "%{customdata[2]} dropped off on the way<extra></extra>",
        showlegend=False,
    )


def _funnel_steps(
    funnel: pd.DataFrame, times: pd.DataFrame, rooftops: list[str], rules: JourneyRules
) -> list[dict[str, Any]]:
    """Rows of the conversion table: per step, each rooftop's conversion, its timing, and
    whether it is worse than the group's (``rules.worse_than_group``)."""
    conversion = funnel[funnel["stage_order"] > 0].set_index(["rooftop_id", "stage"])["conversion"]
    timed = times.set_index(["rooftop_id", "to_stage"])
    steps = []
    for step in times[times["rooftop_id"] == GROUP].itertuples():
        group = float(conversion.loc[(GROUP, step.to_stage)])
        cells = []
        for rid in rooftops:
            key = (rid, step.to_stage)
            value = float(conversion.loc[key]) if key in conversion.index else np.nan
            low = rid != GROUP and bool(worse_than_group(value, group, "share", rules))
            timing = timed.loc[key] if key in timed.index else None
            cells.append({"conversion": value, "timing": _timing(timing), "low": low})
        steps.append({"label": f"{step.from_label} → {step.to_label}", "cells": cells})
    return steps


def _timing(row: pd.Series | None) -> str:
    """The median and p90 time of a step ("3 h 10 min · p90 2 days"; "–" if nobody made it)."""
    if row is None or not row["customers"]:
        return "–"
    return f"{format_hours(row['median_hours'])} · p90 {format_hours(row['p90_hours'])}"


# --------------------------------------------------------------------------------------------
# KPIs


def _kpi_section(tl: Timeline, params: TaskParams, rules: JourneyRules, names: _Names) -> Markup:
    kpis = rooftop_kpis(tl, params, rules)
    by = kpis.set_index(["rooftop_id", "kpi"])
    leads = by.xs("responded_within_sla", level="kpi")["sample"]
    rows = [
        {
            "rooftop": names.cell(rid),
            "leads": leads.get(rid, 0),
            "cells": [_kpi_cell(k, by.loc[(rid, k.key)]) for k in KPIS],
        }
        for rid in _group_first(kpis["rooftop_id"])
    ]
    flagged = [
        {
            "rooftop": names(str(rid)),
            "kpis": [_lower_first(_kpi_heading(_kpi_of(k), params)) for k in g["kpi"]],
        }
        for rid, g in kpis[kpis["flagged"]].groupby("rooftop_id", sort=True)
    ]
    headings = [{"label": _kpi_heading(k, params), "description": k.description} for k in KPIS]
    return _render(
        "kpis.html.j2",
        flagged=flagged,
        headings=headings,
        rows=rows,
        rules=rules,
        sla_minutes=params.response_sla_minutes,
    )


def _kpi_cell(kpi: Kpi, row: pd.Series) -> dict[str, Any]:
    """A KPI table cell: the value, its deviation where flagged, and the hover text."""
    value = format_kpi(row["value"], kpi.unit)
    title = (
        f"{kpi.label}: {value} on {format_count(row['sample'])} cases; "
        f"group {format_kpi(row['group_standard'], kpi.unit)}"
    )
    return {
        "value": value,
        "flagged": bool(row["flagged"]),
        "deviation": format_deviation(row["difference"], kpi.unit),
        "title": title,
    }


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _kpi_of(key: str) -> Kpi:
    return next(k for k in KPIS if k.key == key)


def _kpi_heading(kpi: Kpi, params: TaskParams) -> str:
    if kpi.key == "responded_within_sla":
        return f"Answered within {params.response_sla_minutes:g} min"
    return kpi.label


# --------------------------------------------------------------------------------------------
# Friction hotspots


def _hotspot_section(hotspots: pd.DataFrame | None, names: _Names) -> Markup:
    """The hotspots per task and rooftop (``None``: models not trained). Refuses a table
    missing one of ``HOTSPOT_COLUMNS`` (``ValueError`` naming them)."""
    if hotspots is None:
        return _render("hotspots.html.j2", tasks=None, per_rooftop=HOTSPOTS_PER_ROOFTOP)
    missing = [c for c in HOTSPOT_COLUMNS if c not in hotspots.columns]
    if missing:
        raise ValueError(f"hotspots table is missing column(s): {', '.join(missing)}")
    df = hotspots.astype({"mean_contribution": float, "rooftop_id": "string"})
    tasks = [
        {"label": task_label(str(task)), "rooftops": _hotspot_rooftops(by_task, names)}
        for task, by_task in df.groupby("task", sort=False)
    ]
    return _render("hotspots.html.j2", tasks=tasks, per_rooftop=HOTSPOTS_PER_ROOFTOP)


def _hotspot_rooftops(by_task: pd.DataFrame, names: _Names) -> list[dict[str, Any]]:
    """A task's rooftops in id order, each with its heaviest frictions first."""
    out = []
    for rid, g in by_task.groupby("rooftop_id", sort=True):
        top = g.sort_values("mean_contribution", ascending=False).head(HOTSPOTS_PER_ROOFTOP)
        frictions = [
            {
                "driver": h.driver,
                "stage": _stage_chip(str(h.stage)),
                "risk": format_points(h.mean_contribution),
                "instances": h.instances,
            }
            for h in top.itertuples()
        ]
        out.append({"rooftop": names.cell(str(rid)), "frictions": frictions})
    return out


# --------------------------------------------------------------------------------------------
# Marketing sources


def _source_section(tl: Timeline, params: TaskParams, rules: JourneyRules) -> Markup:
    attr = source_attribution(tl, params, rules)
    if attr.empty:
        return _render("sources.html.j2", rows=[], sale_window_days=rules.sale_window_days)
    labels = [source_label(s) for s in attr["marketing_source"]]
    show_all = attr["shows"].sum() / max(attr["appointments"].sum(), 1)
    sale_all = attr["sales"].sum() / max(attr["leads"].sum(), 1)
    no_shows = worse_than_group(
        attr["show_rate"], show_all, "share", rules, sample=attr["appointments"]
    )
    buyers = better_than_group(attr["sale_rate"], sale_all, "share", rules, sample=attr["leads"])
    rows = [
        {**r._asdict(), "label": label, "no_shows": bad, "buyers": good}
        for r, label, bad, good in zip(attr.itertuples(), labels, no_shows, buyers, strict=True)
    ]
    return _render(
        "sources.html.j2",
        rows=rows,
        rules=rules,
        sale_window_days=rules.sale_window_days,
        show_all=show_all,
        sale_all=sale_all,
        chart=_figure_html(_source_figure(attr, labels), "chart-sources"),
    )


def _source_figure(attr: pd.DataFrame, labels: list[str]) -> go.Figure:
    """Grouped bars per source: lead to appointment, show, sale and first service."""
    cat = catalogue()
    ticks = [_wrap(label, 14) for label in labels]
    fig = go.Figure()
    for col, name, etype in _SOURCE_SERIES:
        fig.add_trace(
            go.Bar(
                x=ticks,
                y=attr[col],
                name=name,
                marker_color=cat.stage_of(etype).color,
                text=[format_percent(v) for v in attr[col]],
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
    return fig


# --------------------------------------------------------------------------------------------
# What happens next, where journeys go quiet


def _next_section(tl: Timeline, rules: JourneyRules) -> Markup:
    return _render(
        "next.html.j2",
        cards=_next_cards(transitions(tl, leave_out=INTERNAL_RECORDS)),
        quiet_after_days=rules.quiet_after_days,
        chart=_figure_html(_ends_figure(journey_ends(tl, rules)), "chart-journey-ends"),
    )


def _next_cards(trans: pd.DataFrame) -> list[dict[str, Any]]:
    """Per key touchpoint that happened: how often, and its most frequent next touchpoints."""
    cat = catalogue()
    cards = []
    for key in KEY_TOUCHPOINTS:
        after = trans[trans["from_event_type"] == key]
        if after.empty:
            continue
        steps = [
            {
                "label": label,
                "probability": p,
                "width": f"{p * 100:.0f}",
                "color": _rgba(cat.stage(stage).color, 0.55),
            }
            for label, p, stage in after.head(NEXT_STEPS_SHOWN)[
                ["to_label", "probability", "to_stage"]
            ].itertuples(index=False)
        ]
        label = cat.event_type(key).label
        cards.append({"label": label, "total": int(after["count"].sum()), "steps": steps})
    return cards


def _ends_figure(ends: pd.DataFrame) -> go.Figure:
    """The last touchpoints of quiet customers, shoppers and owners side by side."""
    cat = catalogue()
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=[SEGMENT_LABELS[SHOPPER], SEGMENT_LABELS[OWNER]],
        horizontal_spacing=0.28,
    )
    for i, segment in enumerate((SHOPPER, OWNER), start=1):
        e = ends[ends["segment"] == segment].head(ENDS_SHOWN).iloc[::-1]
        bars = go.Bar(
            x=e["share"],
            y=e["label"],
            orientation="h",
            marker_color=[cat.stage(s).color for s in e["stage"]],
            text=[format_percent(v) for v in e["share"]],
            textposition="outside",
            cliponaxis=False,
            customdata=e["customers"],
            hovertemplate="%{y}: %{customdata:,} customers (%{x:.1%})<extra></extra>",
            showlegend=False,
        )
        fig.add_trace(bars, row=1, col=i)
    fig.update_xaxes(tickformat=".0%", rangemode="tozero", showgrid=True)
    fig.update_layout(height=380, margin={"l": 10, "r": 40, "t": 40, "b": 10})
    return fig


# --------------------------------------------------------------------------------------------
# After the sale


def _post_sale_section(tl: Timeline, params: TaskParams, names: _Names) -> Markup:
    window = params.service_defection.window_days
    try:
        post = post_sale_journey(tl, params)
    except NoInstancesError:
        return _render("post_sale.html.j2", deliveries=None, window_days=window)
    deliveries = int(post.loc[post["rooftop_id"] == GROUP, "deliveries"].iloc[0])
    return _render(
        "post_sale.html.j2",
        deliveries=deliveries,
        window_days=window,
        chart=_figure_html(_post_sale_figure(post, names), "chart-post-sale"),
    )


def _post_sale_figure(post: pd.DataFrame, names: _Names) -> go.Figure:
    """A heatmap of each rooftop's share per post-sale step, coloured against the group's."""
    rooftops = _group_first(post["rooftop_id"])
    steps = post.drop_duplicates("step")["step_label"].tolist()
    share = post.pivot(index="rooftop_id", columns="step_label", values="share").loc[
        rooftops, steps
    ]
    fig = go.Figure(
        go.Heatmap(
            z=(share - share.loc[GROUP]).to_numpy(),
            x=[_wrap(step, 16) for step in steps],
            y=[names(r) for r in rooftops],
            text=share.map(format_percent).to_numpy(),
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
    return fig


# --------------------------------------------------------------------------------------------
# The page


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
    sections = [
        _flow_section(tl, rules),
        _funnel_section(tl, rules, names),
        _kpi_section(tl, params, rules, names),
        _hotspot_section(hotspots, names),
        _source_section(tl, params, rules),
        _next_section(tl, rules),
        _post_sale_section(tl, params, names),
    ]
    log.info("built the journey map for %d customers and %d events", len(tl.customers), len(tl))
    return (
        _templates()
        .get_template("page.html.j2")
        .render(
            title=title,
            subtitle=_subtitle(tl),
            font=Markup(FONT),
            css=page_css("cjm_ml.journey", "journey.css"),
            plotly_js=Markup(get_plotlyjs()),
            nav=SECTIONS,
            sections=sections,
        )
    )


def _subtitle(tl: Timeline) -> str:
    """The dealer group(s), rooftops, customers, events and dates the page covers."""
    every = np.arange(len(tl))
    groups = sorted(str(g) for g in pd.unique(tl.column(every, "dealer_group_id")))
    rooftops = len(pd.unique(tl.column(every, "rooftop_id")))
    start, end = (pd.Timestamp(int(t), tz="UTC") for t in (tl.ts.min(), tl.ts.max()))
    return (
        f"Dealer group {', '.join(groups)} · {rooftops} rooftops · "
        f"{format_count(len(tl.customers))} customers · {format_count(len(tl))} events · "
        f"{start:%d %b %Y} to {end:%d %b %Y}"
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
