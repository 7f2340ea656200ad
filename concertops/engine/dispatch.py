"""Which implementation carries out a step: found by the step's parameter model and the service's map."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from concertops.engine.action_api import Action
from concertops.model.errors import UsageError
from concertops.model.findings import Step
from concertops.runbooks import catalogue


def implementations() -> dict[type[Any], Callable[[Step], Action]]:
    """Each parameter model of the action catalogue → the class that carries it out."""
    from concertops.engine.activate_sql import ActivateWaiting
    from concertops.engine.dlq_replay import ReplayDlq
    from concertops.engine.force_expire import ForceExpire
    from concertops.engine.kill_idle import KillIdle
    from concertops.engine.mark_sold_out import MarkSoldOut
    from concertops.engine.republish import ListDoublePayments, RepublishPayments
    from concertops.engine.set_settings import SetSettings

    return {
        catalogue.SetSettingsParams: SetSettings,
        catalogue.SetSettingParams: SetSettings,
        catalogue.MarkSoldOutParams: MarkSoldOut,
        catalogue.ActivateWaitingParams: ActivateWaiting,
        catalogue.ForceExpireParams: ForceExpire,
        catalogue.ReplayDlqParams: ReplayDlq,
        catalogue.KillIdleParams: KillIdle,
        catalogue.RepublishPaymentsParams: RepublishPayments,
        catalogue.ListDoublePaymentsParams: ListDoublePayments,
    }


def mapped_implementations(shape: Any) -> dict[type[Any], Callable[[Step], Action]]:
    """The same catalogue on a service described by its service map (not the reference schema): its own
    names and keys, its Redis queue, hand-offs for what only a deploy changes."""
    from functools import partial

    from concertops.engine.activate_redis import RedisActivate
    from concertops.engine.force_expire import ForceExpire
    from concertops.engine.handoff import HandOff
    from concertops.engine.kill_idle import KillIdle
    from concertops.engine.not_available import NotOnThisService
    from concertops.engine.republish_mapped import EnvelopeRepublish
    from concertops.engine.set_settings import SetSettings

    def lacks(why: str) -> Callable[[Step], Action]:
        return partial(NotOnThisService, why=why)

    settings: Callable[[Step], Action] = SetSettings if shape.acts.runtime_settings else HandOff
    return {
        catalogue.SetSettingsParams: settings,
        catalogue.SetSettingParams: settings,
        catalogue.MarkSoldOutParams: lacks("it has no sold-out mark (a seat is taken by its reservation)"),
        catalogue.ActivateWaitingParams: RedisActivate
        if shape.queue.store == "redis"
        else lacks("its queue is not in Redis sorted sets"),
        catalogue.ForceExpireParams: ForceExpire,
        catalogue.ReplayDlqParams: lacks("it has no dead-letter topic"),
        catalogue.KillIdleParams: KillIdle,
        catalogue.RepublishPaymentsParams: EnvelopeRepublish
        if shape.kafka.envelope == "step10" and not shape.acts.outbox
        else lacks("re-publishing is built for an outbox or the step10 envelope"),
        catalogue.ListDoublePaymentsParams: lacks(
            "a payment cannot be charged twice (reservation key is unique)"
        ),
    }


def action_for(step: Step, shape: Any = None) -> Action:
    """The implementation of the step's action, found by its parameter model, for the service's shape
    (None: the reference schema)."""
    from concertops.contract.service_map import has_reference_schema

    table = (
        implementations() if shape is None or has_reference_schema(shape) else mapped_implementations(shape)
    )
    try:
        return table[type(step.config)](step)
    except KeyError:
        raise UsageError(f"{step.id}: action {step.action!r} has no implementation") from None
