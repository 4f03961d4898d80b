"""The built-in process definitions, per DOMAIN.md §3–4, as plain data.

Five definitions drive the five kinds of subject in a round:

* ``round`` — the round's stages (准备 → 动员部署 → 现场巡察 → 报告 → 反馈 → 整改 →
  公开 → 评估 → 完成 → 归档); each stage advance is gated on every unit's track;
* ``unit`` — one inspected organization's own track from on-site onwards;
* ``item`` — a problem (问题), with immediate fixes, refinement, long-term items,
  withdrawal, rejection and reopening by a look-back round;
* ``measure`` — a rectification measure (整改措施) of exactly one item; once the
  unit's plan is approved, a measure the unit adds is a proposal (待审核) the
  reviewing body approves or refuses, and only that body drops a measure;
* ``lead`` — a transferred lead (问题线索) and its reconciliation (对账).

Which body verifies and closes items (and reviews plans) comes from the
:class:`~xuncha_flow.RolePolicy`; everything else is fixed here. Guards are named
and implemented in ``_rules.py``; the engine's follow-ups (transitions marked
``automatic``) in ``_effects.py``.

Every act that judges an organization's work — deciding the inspection report on a
unit, reviewing a plan or a change to it, verifying, closing, rejecting,
withdrawing, marking long-term, evaluating, ordering a second rectification,
reconciling a lead, extending, pausing or resuming a deadline, deciding on a
recommendation — is marked ``independent``: the inspected organization may never
be given it, and no one of the organization it concerns (the unit's, or a lead's
receiver) may fire it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._roles import Role, RolePolicy

__all__ = ["VERSION", "builtin_definitions"]

VERSION = "2"
"""The built-in definitions' version: 2 added measures under review after a plan
is approved and marked every act that judges an organization's work independent."""

TEAM = {Role.INSPECTION_TEAM}
OFFICE = {Role.INSPECTION_OFFICE}
UNIT = {Role.INSPECTED_ORGANIZATION}
RECEIVERS = {Role.DISCIPLINE_COMMISSION, Role.ORGANIZATION_DEPARTMENT, Role.FUNCTIONAL_DEPARTMENT}
SWEEPERS = {Role.SUPERVISION_OFFICE, Role.INSPECTION_OFFICE}
"""Who records what a sweep finds (the supervision office escalates, DOMAIN.md §2)."""
EVERYONE = set(Role)
"""Deadlines open, are met and are cancelled as consequences of anyone's command."""


def _s(
    name: str, label: str, rank: int, *, initial: bool = False, terminal: bool = False
) -> dict[str, Any]:
    return {"name": name, "label": label, "rank": rank, "initial": initial, "terminal": terminal}


def _t(
    event: str,
    source: str | Iterable[str],
    dest: str | None,
    roles: Iterable[Role],
    *guards: str,
    **flags: bool,
) -> dict[str, Any]:
    return {
        "event": event,
        "source": [source] if isinstance(source, str) else list(source),
        "dest": dest,
        "roles": sorted(r.value for r in roles),
        "guards": list(guards),
        **flags,
    }


def _events(**labels: str) -> list[dict[str, str]]:
    return [{"name": name, "label": label} for name, label in labels.items()]


def _round(policy: RolePolicy) -> dict[str, Any]:
    reopeners = TEAM | OFFICE | policy.verifiers | {Role.LEADING_GROUP}
    return {
        "kind": "round",
        "name": "round",
        "version": VERSION,
        "states": [
            _s("prepare", "准备", 0, initial=True),
            _s("mobilize", "动员部署", 1),
            _s("onsite", "现场巡察", 2),
            _s("report", "报告", 3),
            _s("feedback", "反馈", 4),
            _s("rectify", "整改", 5),
            _s("publish", "公开", 6),
            _s("evaluate", "评估", 7),
            _s("closed", "完成", 8),
            _s("archived", "归档", 9, terminal=True),
        ],
        "events": _events(
            open="启动轮次",
            approve="审批巡察方案",
            launch="进驻",
            conclude_onsite="结束现场巡察",
            conclude_report="完成报告审定",
            start_rectification="转入整改",
            publish="转入公开",
            start_evaluation="转入评估",
            close="完成轮次",
            reopen="重新整改",
            archive="归档",
            publish_bulletin="发布周通报",
            bulletin_missing="周通报缺失",
        ),
        "create": {"event": "open", "roles": sorted(OFFICE)},
        "transitions": [
            _t(
                "approve",
                "prepare",
                "mobilize",
                {Role.LEADING_GROUP, Role.SECRETARY_MEETING},
                "round_has_units",
            ),
            _t("launch", "mobilize", "onsite", OFFICE, "round_has_units"),
            _t("conclude_onsite", "onsite", "report", OFFICE, "units_left_site"),
            _t("conclude_report", "report", "feedback", OFFICE, "units_reports_decided"),
            _t("start_rectification", "feedback", "rectify", OFFICE, "units_fed_back"),
            _t("publish", "rectify", "publish", OFFICE, "units_rectification_reported"),
            _t("start_evaluation", "publish", "evaluate", OFFICE, "units_published"),
            _t("close", "evaluate", "closed", OFFICE | {Role.LEADING_GROUP}, "units_evaluated"),
            _t(
                "reopen",
                ["publish", "evaluate", "closed"],
                "rectify",
                reopeners,
                backward=True,
                automatic=True,
            ),
            _t("archive", "closed", "archived", OFFICE),
            _t("publish_bulletin", "rectify", None, SWEEPERS),
            _t("bulletin_missing", "rectify", None, SWEEPERS, automatic=True),
        ],
    }


def _unit(policy: RolePolicy) -> dict[str, Any]:
    review = policy.verifiers
    reopeners = TEAM | OFFICE | review
    return {
        "kind": "unit",
        "name": "inspected-unit",
        "version": VERSION,
        "states": [
            _s("scheduled", "待进驻", 0, initial=True),
            _s("onsite", "现场巡察", 1),
            _s("reporting", "报告起草", 2),
            _s("report_decided", "报告已审定", 3),
            _s("fed_back", "已反馈", 4),
            _s("plan_submitted", "整改方案已报送", 5),
            _s("rectifying", "整改中", 6),
            _s("rectification_reported", "整改报告已报送", 7),
            _s("published", "已公开", 8),
            _s("evaluated", "已评估", 9),
            _s("archived", "已归档", 10, terminal=True),
        ],
        "events": _events(
            add="确定被巡察单位",
            enter="进驻",
            leave_site="撤离",
            decide_report="审定巡察报告",
            deliver_feedback="反馈",
            submit_plan="报送整改方案",
            return_plan="退回整改方案",
            approve_plan="审核通过整改方案",
            report_rectification="报送整改报告",
            publish="公开整改情况",
            evaluate="整改质效评估",
            order_second_rectification="责令二次整改",
            reopen="回头看重新整改",
            archive="归档",
            daily_report="报送整改日报",
            report_missing="整改日报缺失",
        ),
        "create": {"event": "add", "roles": sorted(OFFICE), "guards": ["round_accepts_units"]},
        "transitions": [
            _t("enter", "scheduled", "onsite", OFFICE, automatic=True),
            _t("leave_site", "onsite", "reporting", TEAM),
            _t(
                "decide_report",
                "reporting",
                "report_decided",
                {Role.SECRETARY_MEETING},
                "unit_items_settled",
                independent=True,
            ),
            _t("deliver_feedback", "report_decided", "fed_back", TEAM, "feedback_date_valid"),
            _t("submit_plan", "fed_back", "plan_submitted", UNIT, "plan_complete"),
            _t(
                "return_plan",
                "plan_submitted",
                "fed_back",
                review,
                backward=True,
                reason_required=True,
                independent=True,
            ),
            _t(
                "approve_plan",
                "plan_submitted",
                "rectifying",
                review,
                "plan_complete",
                independent=True,
            ),
            _t(
                "report_rectification",
                "rectifying",
                "rectification_reported",
                UNIT,
                "rectification_done",
            ),
            _t("publish", "rectification_reported", "published", UNIT),
            _t("evaluate", "published", "evaluated", OFFICE | review, independent=True),
            _t(
                "order_second_rectification",
                "evaluated",
                "rectifying",
                review | {Role.LEADING_GROUP},
                backward=True,
                reason_required=True,
                independent=True,
            ),
            _t(
                "reopen",
                ["rectification_reported", "published", "evaluated"],
                "rectifying",
                reopeners,
                backward=True,
                automatic=True,
            ),
            _t("archive", "evaluated", "archived", OFFICE, automatic=True),
            _t("daily_report", "rectifying", None, UNIT, "report_day_valid"),
            _t("report_missing", "rectifying", None, SWEEPERS, automatic=True),
        ],
    }


def _item(policy: RolePolicy) -> dict[str, Any]:
    v = policy.verifiers
    reopeners = TEAM | OFFICE | v
    open_after_feedback = [
        "fed_back",
        "claimed",
        "planned",
        "rectifying",
        "long_term",
        "submitted",
        "verified",
    ]
    return {
        "kind": "item",
        "name": "problem-item",
        "version": VERSION,
        "states": [
            _s("found", "发现", 0, initial=True),
            _s("immediate", "立行立改", 1),
            _s("confirmed", "已确认", 1),
            _s("fed_back", "已反馈", 2),
            _s("claimed", "已认领", 3),
            _s("refined", "已细化", 4),
            _s("planned", "已制定措施", 4),
            _s("rectifying", "整改中", 5),
            _s("long_term", "长期整改", 6),
            _s("submitted", "已提交销号", 7),
            _s("verified", "已核验", 8),
            _s("closed", "已销号", 9),
            _s("withdrawn", "已撤销", 10, terminal=True),
        ],
        "events": _events(
            record="记录问题",
            confirm="确认问题",
            order_immediate_fix="立行立改",
            include_in_report="列入报告",
            feed_back="反馈",
            claim="认领",
            refine="细化",
            plan="制定措施",
            unplan="退回方案",
            start="开始整改",
            mark_long_term="列为长期整改",
            complete_milestone="完成阶段目标",
            submit="提交销号",
            reject="退回整改",
            verify="核验",
            close="销号",
            withdraw="撤销",
            reopen="回头看重新整改",
            children_done="子项全部办结",
            reopen_parent="子项重新整改",
        ),
        "create": {"event": "record", "roles": sorted(TEAM), "guards": ["unit_inspecting"]},
        "transitions": [
            _t("confirm", "found", "confirmed", TEAM),
            _t("order_immediate_fix", "found", "immediate", TEAM, "unit_on_site"),
            _t("include_in_report", "immediate", "confirmed", TEAM),
            _t(
                "withdraw",
                ["found", "confirmed", "immediate"],
                "withdrawn",
                TEAM | OFFICE,
                reason_required=True,
                independent=True,
            ),
            _t("feed_back", "confirmed", "fed_back", TEAM, automatic=True),
            _t("claim", "fed_back", "claimed", UNIT),
            _t(
                "refine",
                ["fed_back", "claimed"],
                "refined",
                UNIT | v | OFFICE,
                "children_are_new",
                "no_live_measures",
            ),
            _t("plan", "claimed", "planned", UNIT, "has_complete_measures", automatic=True),
            _t("unplan", "planned", "claimed", v, backward=True, automatic=True),
            _t("start", "planned", "rectifying", v, automatic=True),
            _t("mark_long_term", "rectifying", "long_term", v, independent=True),
            _t("complete_milestone", "long_term", None, UNIT, "milestone_open"),
            _t(
                "submit",
                ["rectifying", "long_term", "immediate"],
                "submitted",
                UNIT,
                "evidence_attached",
                "measures_done",
                "milestones_done",
            ),
            _t(
                "reject",
                "submitted",
                "immediate",
                v,
                "is_immediate",
                backward=True,
                reason_required=True,
                independent=True,
            ),
            _t(
                "reject",
                "submitted",
                "long_term",
                v,
                "is_long_term",
                backward=True,
                reason_required=True,
                independent=True,
            ),
            _t(
                "reject",
                "submitted",
                "rectifying",
                v,
                backward=True,
                reason_required=True,
                independent=True,
            ),
            _t("verify", "submitted", "verified", v, independent=True),
            _t("close", "verified", "closed", v, "verified_submission", independent=True),
            _t(
                "withdraw",
                open_after_feedback,
                "withdrawn",
                v,
                reason_required=True,
                independent=True,
            ),
            _t(
                "reopen",
                "closed",
                "rectifying",
                reopeners,
                "reopen_allowed",
                backward=True,
                reason_required=True,
            ),
            _t(
                "children_done",
                "refined",
                "closed",
                v,
                "children_done",
                "some_child_closed",
                automatic=True,
            ),
            _t("children_done", "refined", "withdrawn", v, "children_done", automatic=True),
            _t("reopen_parent", "closed", "refined", reopeners, backward=True, automatic=True),
        ],
    }


def _measure(policy: RolePolicy) -> dict[str, Any]:
    review = policy.verifiers
    return {
        "kind": "measure",
        "name": "measure",
        "version": VERSION,
        "states": [
            _s("proposed", "待审核", 0, initial=True),
            _s("planned", "已计划", 1),
            _s("in_progress", "推进中", 2),
            _s("done", "已完成", 3, terminal=True),
            _s("dropped", "已取消", 4, terminal=True),
            _s("refused", "未通过审核", 4, terminal=True),
        ],
        "events": _events(
            add="制定措施",
            include="纳入整改方案",
            approve="审核通过",
            refuse="审核不通过",
            revise="修改措施",
            start="开始实施",
            report_progress="报告进展",
            complete="完成",
            drop="取消",
        ),
        "create": {
            "event": "add",
            "roles": sorted(UNIT),
            "guards": ["item_accepts_measures", "due_after_feedback"],
        },
        "transitions": [
            # before the plan is approved a measure is part of the plan under review;
            # after, a measure the unit adds waits for the reviewing body
            _t("include", "proposed", "planned", UNIT, automatic=True),
            _t("approve", "proposed", "planned", review, "item_open", independent=True),
            _t(
                "refuse",
                "proposed",
                "refused",
                review,
                "item_open",
                reason_required=True,
                independent=True,
            ),
            _t(
                "revise",
                ["proposed", "planned", "in_progress"],
                None,
                UNIT,
                "item_open",
                "due_after_feedback",
                "due_fixed_after_approval",
            ),
            _t("start", "planned", "in_progress", UNIT, "item_open"),
            _t("report_progress", "in_progress", None, UNIT, "item_open"),
            _t("complete", "in_progress", "done", UNIT, "item_open"),
            _t(
                "drop",
                ["proposed", "planned", "in_progress"],
                "dropped",
                UNIT | review,
                "item_open",
                "plan_change_reviewed",
                reason_required=True,
            ),
        ],
    }


def _lead(policy: RolePolicy) -> dict[str, Any]:
    del policy  # leads are handled by their receivers whatever the verification policy
    return {
        "kind": "lead",
        "name": "lead",
        "version": VERSION,
        "states": [
            _s("transferred", "已移交", 0, initial=True),
            _s("received", "已接收", 1),
            _s("checking", "初核中", 2),
            _s("concluded", "已办结", 3),
            _s("reported_back", "已反馈结果", 4),
            _s("reconciled", "已对账", 5, terminal=True),
        ],
        "events": _events(
            transfer="移交",
            receive="接收",
            start_check="开展初核",
            conclude="办结",
            report_back="反馈办理结果",
            reconcile="对账",
        ),
        "create": {
            "event": "transfer",
            "roles": sorted(OFFICE),
            "guards": ["round_transfers_leads", "lead_items_exist"],
        },
        "transitions": [
            _t("receive", "transferred", "received", RECEIVERS),
            _t("start_check", "received", "checking", RECEIVERS),
            _t("conclude", "checking", "concluded", RECEIVERS),
            _t("report_back", "concluded", "reported_back", RECEIVERS, "report_after_transfer"),
            _t("reconcile", "reported_back", "reconciled", OFFICE, independent=True),
        ],
    }


def _deadline(policy: RolePolicy) -> dict[str, Any]:
    return {
        "kind": "deadline",
        "name": "deadline",
        "version": VERSION,
        "states": [
            _s("running", "计时中", 0, initial=True),
            _s("paused", "已暂停", 0),
            _s("met", "已完成", 1, terminal=True),
            _s("cancelled", "已终止", 1, terminal=True),
        ],
        "events": _events(
            open="开始计时",
            pause="暂停计时",
            resume="恢复计时",
            extend="批准延期",
            escalate="预警升级",
            meet="完成",
            cancel="终止",
        ),
        "create": {"event": "open", "roles": sorted(EVERYONE), "automatic": True},
        "transitions": [
            _t(
                "pause",
                "running",
                "paused",
                policy.approvers,
                reason_required=True,
                independent=True,
            ),
            _t(
                "resume",
                "paused",
                "running",
                policy.approvers,
                reason_required=True,
                independent=True,
            ),
            _t(
                "extend",
                ["running", "paused"],
                None,
                policy.approvers,
                "extension_later",
                reason_required=True,
                independent=True,
            ),
            _t("escalate", "running", None, SWEEPERS, automatic=True),
            _t("meet", ["running", "paused"], "met", EVERYONE, automatic=True),
            _t("cancel", ["running", "paused"], "cancelled", EVERYONE, automatic=True),
        ],
    }


def _recommendation(policy: RolePolicy) -> dict[str, Any]:
    return {
        "kind": "recommendation",
        "name": "recommendation",
        "version": VERSION,
        "states": [
            _s("pending", "待决定", 0, initial=True),
            _s("confirmed", "已采纳", 1, terminal=True),
            _s("dismissed", "不予采纳", 1, terminal=True),
        ],
        "events": _events(recommend="提出建议", confirm="采纳", dismiss="不予采纳"),
        "create": {"event": "recommend", "roles": sorted(SWEEPERS), "automatic": True},
        "transitions": [
            _t(
                "confirm",
                "pending",
                "confirmed",
                policy.deciders,
                reason_required=True,
                independent=True,
            ),
            _t(
                "dismiss",
                "pending",
                "dismissed",
                policy.deciders,
                reason_required=True,
                independent=True,
            ),
        ],
    }


def builtin_definitions(policy: RolePolicy) -> dict[str, dict[str, Any]]:
    """The data of the five built-in definitions for ``policy``, by subject kind."""
    return {
        "round": _round(policy),
        "unit": _unit(policy),
        "item": _item(policy),
        "measure": _measure(policy),
        "lead": _lead(policy),
        "deadline": _deadline(policy),
        "recommendation": _recommendation(policy),
    }
