"""A local, strict stand-in for Slack: Web API, Socket Mode and a sender of signed requests.

See docs/architecture.md ("The sandbox") and ``bot/devtools/sandbox/README.md``.
"""

from .faults import Faults
from .sandbox import ManualClock, SlackSandbox
from .signing import slack_signature
from .state import BOT_USER, DEMO_HUMANS, SandboxUser
from .state import Delivery as Delivery

__all__ = [
    "BOT_USER",
    "DEMO_HUMANS",
    "Delivery",
    "Faults",
    "ManualClock",
    "SandboxUser",
    "SlackSandbox",
    "slack_signature",
]
