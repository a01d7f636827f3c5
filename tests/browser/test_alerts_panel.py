"""The planner's alert list in a real Chromium: a change that crosses an almost-full threshold,
committed through the real store, appears on screen as an alert; it can be dismissed.

The server is the browser tests' shared one (no admin token configured, so the test, on
loopback, is the planner when it creates the rule over REST).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.browser.conftest import ARTIFACTS, load_dashboard, open_page
from tests.browser.seed import Seeded

pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("pages")]

# Evaluation is woken by the commit's NOTIFY; this only bounds a failure.
ALERT_DEADLINE_MS = 10_000


@pytest.mark.asyncio(loop_scope="session")
async def test_almost_full_alert_appears_and_is_dismissed(
    browser: Any, server: Any, seeder: Any, reset_seed: Seeded, request: Any
) -> None:
    site = reset_seed.parking[1]
    await seeder.parking_free(site.id, 30)  # fresh, well above the threshold
    async with httpx.AsyncClient(base_url=server.url) as api:
        body = {
            "kind": "parking_almost_full",
            "name": f"{site.name} almost full",
            "site": site.id,
            "free_lte": 10,
        }
        created = await api.post("/api/v1/alerts/rules", json=body)
        assert created.status_code == 201, created.text
        rule_id = created.json()["id"]
        try:
            page, _, _ = await open_page(browser, request)
            await load_dashboard(page, server.url)
            panel = page.locator("#alerts")
            assert await panel.is_hidden(), "no alert yet, no panel"

            await seeder.parking_free(site.id, 4)
            item = page.locator("#alerts .alert-item")
            await item.first.wait_for(state="visible", timeout=ALERT_DEADLINE_MS)
            text = await item.first.inner_text()
            assert f"{site.name} almost full" in text
            assert f"4 free of {site.capacity}" in text
            assert "1 active" in await page.locator("#alerts .alerts-title").inner_text()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "alerts-panel-visible.png"))

            await page.get_by_role("button", name=f"Dismiss alert {site.name} almost full").click()
            await panel.wait_for(state="hidden", timeout=ALERT_DEADLINE_MS)
            # Dismissed in this browser only: the alert is still open on the server.
            active = (await api.get("/api/v1/alerts", params={"active": "true"})).json()["items"]
            assert [a["subject"] for a in active] == [site.id]
        finally:
            assert (await api.delete(f"/api/v1/alerts/rules/{rule_id}")).status_code == 204
