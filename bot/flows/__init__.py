"""Flows: one function per user-visible change (declare, resolve, publish, restore, close an item, pin to
the timeline, a PagerDuty event...). Each combines the domain rule with what the bot posts about it, in one
transaction, and wakes the outbox once that transaction has committed. Slack listeners and the webhook
processor call the same flows, so each rule is written once.
"""
