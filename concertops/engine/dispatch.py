"""Which implementation carries out a step: one per action, found by the step's parameter model, with the
service map's capabilities deciding only what a service lacks (a step it cannot take is planned with the
map field that says so, and never run)."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from concertops.contract import capabilities
from concertops.contract.service_map import ServiceMap
from concertops.engine.action_api import Action
from concertops.model.errors import UsageError
from concertops.model.findings import Step
from concertops.runbooks import catalogue

Implementation = Callable[[Step], Action]


def implementations(shape: ServiceMap) -> dict[type[object], Implementation]:
    """Each parameter model of the action catalogue → what carries it out on the service ``shape`` maps."""
    from concertops.engine.activate_waiting import ActivateWaiting
    from concertops.engine.change_settings import ChangeSettings
    from concertops.engine.dlq_replay import ReplayDlq
    from concertops.engine.force_expire import ForceExpire
    from concertops.engine.kill_idle import KillIdle
    from concertops.engine.list_double_payments import ListDoublePayments
    from concertops.engine.mark_sold_out import MarkSoldOut
    from concertops.engine.not_available import NotOnThisService
    from concertops.engine.republish import RepublishPayments
    from concertops.engine.republish_mapped import EnvelopeRepublish

    can = capabilities.of(shape)

    def lacks(need: str) -> Implementation:
        return partial(NotOnThisService, why=can.lacks(shape, need))

    if can.outbox:
        republish: Implementation = RepublishPayments  # through the outbox the service's relay sends
    elif shape.kafka.envelope != "step10":
        republish = lacks("flat_without_outbox")
    elif shape.table("payment") and shape.topic("payment_completed"):
        republish = EnvelopeRepublish  # reconciled against the topic, in the service's envelope
    else:
        republish = lacks("payment_events")
    return {
        # A new settings version where the service re-reads them, else a hand-off (a deploy).
        catalogue.SetSettingsParams: ChangeSettings,
        catalogue.SetSettingParams: ChangeSettings,
        catalogue.MarkSoldOutParams: MarkSoldOut if can.sold_out_mark else lacks("sold_out_mark"),
        catalogue.ActivateWaitingParams: ActivateWaiting,
        catalogue.ForceExpireParams: ForceExpire,
        catalogue.ReplayDlqParams: ReplayDlq if can.dlq else lacks("dlq"),
        catalogue.KillIdleParams: KillIdle,
        catalogue.RepublishPaymentsParams: republish,
        catalogue.ListDoublePaymentsParams: lacks("double_charge")
        if can.one_payment_per_reservation
        else ListDoublePayments,
    }


def action_for(step: Step, shape: ServiceMap) -> Action:
    """The implementation of the step's action on the service ``shape`` maps."""
    try:
        return implementations(shape)[type(step.config)](step)
    except KeyError:
        raise UsageError(f"{step.id}: action {step.action!r} has no implementation") from None
