"""REST for alerts: rules (create, list, read, rename/disable, delete), alerts, webhook deliveries.

Every refusal is a 4xx problem document and is decided before anything is written: a bad body
(400, from the models), an unknown site or feed or an impossible threshold (400, from
``validate.py``), a webhook URL that is not http(s) or points at a private address (400).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request, Response

from app.alerts import outbox
from app.alerts.auth import OwnerDep
from app.alerts.rules import (
    AlertList,
    DeliveryList,
    DeliveryOut,
    RuleIn,
    RuleList,
    RuleOut,
    RulePatch,
)
from app.alerts.store import (
    LimitReached,
    Owner,
    create_rule,
    delete_rule,
    get_rule_row,
    list_alerts,
    list_rules,
    raw_connection,
    rule_out,
    update_rule,
)
from app.alerts.validate import RuleInvalid, check_subject, check_webhook_url, parse_networks
from app.problems import ProblemError, found, invalid, not_found
from app.state import get_state

RuleId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Rule id")]
DeliveryId = Annotated[
    str, Path(min_length=5, max_length=100, pattern=r"^msg_[A-Za-z0-9_]+$", description="webhook-id, `msg_…`")
]
Limit = Annotated[int, Query(ge=1, le=1000, description="Most items returned (newest first).")]
CONFLICT = "urn:mobility-live:problem:conflict"
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {401: {"description": "Missing or unknown credentials"}}
router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"], responses=AUTH_RESPONSES)  # on every route


async def validated_rule(request: Request, rule: Any) -> str | None:
    """Every check that needs the database or DNS; returns the subject's feed id."""
    state = get_state(request)
    settings = state["settings"]
    try:
        async with raw_connection(state["engine"]) as raw:
            feed_id = await check_subject(raw, rule)
        if rule.webhook_url is not None:
            await check_webhook_url(rule.webhook_url, parse_networks(settings.alerts_webhook_allow_networks))
    except RuleInvalid as exc:
        raise invalid(exc.field, exc.msg, where="body") from None
    return feed_id


@router.post(
    "/rules",
    status_code=201,
    response_model=RuleOut,
    summary="Create an alert rule (the webhook secret is returned once)",
    responses={409: {"description": "This partner key's rule limit is reached"}},
)
async def post_rule(request: Request, owner: OwnerDep, rule: Annotated[RuleIn, Body()]) -> Any:
    feed_id = await validated_rule(request, rule)
    state = get_state(request)
    try:
        async with raw_connection(state["engine"]) as raw:
            return await create_rule(
                raw,
                rule,
                owner,
                feed_id=feed_id,
                max_rules_per_key=state["settings"].alerts_max_rules_per_key,
            )
    except LimitReached as exc:
        raise ProblemError(409, str(exc), type=CONFLICT, title="Too many rules") from None


@router.get(
    "/rules",
    response_model=RuleList,
    summary="Alert rules (a partner sees its own)",
)
async def get_rules(request: Request, owner: OwnerDep) -> Any:
    async with raw_connection(get_state(request)["engine"]) as raw:
        return {"items": await list_rules(raw, owner)}


async def _rule(request: Request, rule_id: int, owner: Owner) -> dict[str, Any]:
    async with raw_connection(get_state(request)["engine"]) as raw:
        row = found(await get_rule_row(raw, rule_id, owner), f"rule {rule_id}")
    return rule_out(row)


@router.get("/rules/{rule_id}", response_model=RuleOut, summary="One alert rule")
async def get_rule(request: Request, owner: OwnerDep, rule_id: RuleId) -> Any:
    return await _rule(request, rule_id, owner)


@router.patch(
    "/rules/{rule_id}",
    response_model=RuleOut,
    summary="Rename, disable or enable a rule (disabling ends its open alert)",
)
async def patch_rule(
    request: Request, owner: OwnerDep, rule_id: RuleId, patch: Annotated[RulePatch, Body()]
) -> Any:
    async with raw_connection(get_state(request)["engine"]) as raw:
        updated = await update_rule(raw, rule_id, owner, name=patch.name, enabled=patch.enabled)
    return found(updated, f"rule {rule_id}")


@router.delete(
    "/rules/{rule_id}",
    status_code=204,
    summary="Delete a rule (its open alert ends; alerts and deliveries stay readable)",
)
async def remove_rule(request: Request, owner: OwnerDep, rule_id: RuleId) -> Response:
    async with raw_connection(get_state(request)["engine"]) as raw:
        if not await delete_rule(raw, rule_id, owner):
            raise not_found(f"rule {rule_id}")
    return Response(status_code=204)


@router.get(
    "",
    response_model=AlertList,
    summary="Alerts, newest first, with start, end and evidence",
)
async def get_alerts(
    request: Request,
    owner: OwnerDep,
    active: Annotated[bool | None, Query(description="true: open alerts only; false: ended only.")] = None,
    rule_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Limit = 200,
) -> Any:
    async with raw_connection(get_state(request)["engine"]) as raw:
        return {"items": await list_alerts(raw, owner, active=active, rule_id=rule_id, limit=limit)}


@router.get(
    "/deliveries",
    response_model=DeliveryList,
    summary="Webhook deliveries: pending (with retries), delivered, dead (dead-letter)",
)
async def get_deliveries(
    request: Request,
    owner: OwnerDep,
    state: Annotated[Literal["pending", "delivered", "dead"] | None, Query()] = None,
    rule_id: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    limit: Limit = 200,
) -> Any:
    async with raw_connection(get_state(request)["engine"]) as raw:
        return {"items": await outbox.list_deliveries(raw, owner, state=state, rule_id=rule_id, limit=limit)}


@router.get(
    "/deliveries/{delivery_id}",
    response_model=DeliveryOut,
    summary="One webhook delivery",
)
async def get_delivery(request: Request, owner: OwnerDep, delivery_id: DeliveryId) -> Any:
    async with raw_connection(get_state(request)["engine"]) as raw:
        return found(await outbox.get_delivery(raw, delivery_id, owner), f"delivery {delivery_id!r}")


@router.post(
    "/deliveries/{delivery_id}/replay",
    status_code=202,
    response_model=DeliveryOut,
    summary="Send a dead or delivered webhook again, with the same webhook-id",
    responses={409: {"description": "Already pending"}},
)
async def replay_delivery(request: Request, owner: OwnerDep, delivery_id: DeliveryId) -> Any:
    async with raw_connection(get_state(request)["engine"]) as raw, raw.transaction():
        row = found(await outbox.get_delivery(raw, delivery_id, owner), f"delivery {delivery_id!r}")
        if row["state"] == "pending":
            raise ProblemError(
                409, f"delivery {delivery_id} is already pending", type=CONFLICT, title="Conflict"
            )
        await outbox.replay(raw, delivery_id)
        fresh = await outbox.get_delivery(raw, delivery_id, owner)
    return fresh
