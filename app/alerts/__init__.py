"""Alert rules, their evaluation on the change log, the `alerts` live topic and signed webhooks."""
