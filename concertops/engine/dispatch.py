"""Which implementation carries out a step: one per action, found by the step's parameter model, with the
service map's capabilities deciding only what a service lacks (a step it cannot take is planned with the
map field that says so, and never run)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from functools import partial

from concertops.contract import capabilities
from concertops.contract.service_map import ServiceMap
from concertops.engine.action_api import Action
from concertops.model.errors import UsageError
from concertops.model.findings import Step
from concertops.runbooks import catalogue

Implementation = Callable[[Step], Action]


# Each parameter model → the module and class that carry it out, imported only when a plan has the step.
_IMPLEMENTATIONS: dict[type[object], str] = {
    # A new settings version where the service re-reads them, else a hand-off (a deploy).
    catalogue.SetSettingsParams: "change_settings:ChangeSettings",
    catalogue.SetSettingParams: "change_settings:ChangeSettings",
    catalogue.MarkSoldOutParams: "mark_sold_out:MarkSoldOut",
    catalogue.ActivateWaitingParams: "activate_waiting:ActivateWaiting",
    catalogue.ForceExpireParams: "force_expire:ForceExpire",
    catalogue.ReplayDlqParams: "dlq_replay:ReplayDlq",
    catalogue.KillIdleParams: "kill_idle:KillIdle",
    # Through the outbox where there is one, else straight to the topic in the service's own envelope.
    catalogue.RepublishPaymentsParams: "republish:RepublishPayments",
    catalogue.ListDoublePaymentsParams: "list_double_payments:ListDoublePayments",
}


def lacking(shape: ServiceMap) -> dict[type[object], str]:
    """The steps the service cannot take, each with the map field that says why."""
    can = capabilities.of(shape)
    why: dict[type[object], str] = {}
    if not can.sold_out_mark:
        why[catalogue.MarkSoldOutParams] = can.lacks(shape, "sold_out_mark")
    if not can.dlq:
        why[catalogue.ReplayDlqParams] = can.lacks(shape, "dlq")
    if can.one_payment_per_reservation:
        why[catalogue.ListDoublePaymentsParams] = can.lacks(shape, "double_charge")
    if not can.outbox and shape.kafka.envelope != "step10":
        why[catalogue.RepublishPaymentsParams] = can.lacks(shape, "flat_without_outbox")
    elif not (shape.table("payment") and shape.topic("payment_completed")):
        why[catalogue.RepublishPaymentsParams] = can.lacks(shape, "payment_events")
    return why


def implementations(shape: ServiceMap) -> dict[type[object], Implementation]:
    """Each parameter model of the action catalogue → what carries it out on the service ``shape`` maps
    (every implementation imported: for tests and listings; a run imports only its steps')."""
    return {model: _implementation(model, shape) for model in _IMPLEMENTATIONS}


def _implementation(model: type[object], shape: ServiceMap) -> Implementation:
    why = lacking(shape).get(model)
    if why is not None:
        from concertops.engine.not_available import NotOnThisService

        return partial(NotOnThisService, why=why)
    module, name = _IMPLEMENTATIONS[model].split(":")
    implementation: Implementation = getattr(importlib.import_module(f"concertops.engine.{module}"), name)
    return implementation


def action_for(step: Step, shape: ServiceMap) -> Action:
    """The implementation of the step's action on the service ``shape`` maps."""
    if type(step.config) not in _IMPLEMENTATIONS:
        raise UsageError(f"{step.id}: action {step.action!r} has no implementation")
    return _implementation(type(step.config), shape)(step)
