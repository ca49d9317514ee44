"""`make bench` / `make bench-quick`: the bot against its floors, in one run, on this machine.

Processes (the machine has 2 cores; which ones compete matters for reading the figures):

- the server under test, one at a time: the bot (`python -m bot serve`, waitress 16 threads) or a floor
  (`benchmarks.floors`, same server). Python runs it on one core at a time (the GIL);
- the load generator (`benchmarks.loadgen`), a process of its own so it never shares the server's GIL;
- the Slack sandbox (`benchmarks.sandbox_server`), a process of its own; only the bot calls it (the
  floors make no Web API calls), so during bot phases the sandbox and the load generator share the core
  the server is not using, and the bot pays for a real HTTP round trip to "Slack" on each `views.open`.

Every ratio compares figures measured in this run, on this machine, minutes apart. The load average
before and after is recorded because other work on the machine moves the numbers.

`python -m benchmarks.run [--quick]`: writes benchmarks/results/<timestamp>.json and latest.json (full
runs only; --quick writes to a temporary directory unless --out is given) and prints a table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.loadgen import summarize_ms
from bot.devtools.sandbox.signing import signed_headers
from bot.devtools.stack import BOT_TOKEN, PAGERDUTY_SECRET, SIGNING_SECRET

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BENCH_USER = "U0ALICE"


@dataclass(frozen=True)
class Profile:
    name: str
    duration: float  # measured seconds per load phase
    warmup: float
    webhook_rate: float  # B4's offered load, webhooks/s
    webhook_seconds: float
    kpi_sizes: tuple[int, ...]


FULL = Profile(
    "full",
    duration=10.0,
    warmup=2.0,
    webhook_rate=50,
    webhook_seconds=10,
    kpi_sizes=(10_000, 100_000, 1_000_000),
)
QUICK = Profile(
    "quick", duration=1.0, warmup=0.3, webhook_rate=50, webhook_seconds=1, kpi_sizes=(1_000, 10_000)
)


@dataclass
class Figure:
    id: str
    figure: str
    value: float | None
    unit: str
    database: str = ""
    floor: float | None = None
    target: str = ""
    met: bool | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.floor:
            return None
        return round(self.value / self.floor, 3)

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "figure": self.figure,
            "database": self.database,
            "value": self.value,
            "unit": self.unit,
            "floor": self.floor,
            "ratio": self.ratio,
            "target": self.target,
            "met": self.met,
            "detail": self.detail,
        }


# processes ---------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "PAGERDUTY_", "DATABASE_"))}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def rss_mb(pid: int) -> float:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for pid {pid}")


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> float:
    """Poll `url` until it answers 200; returns when (time.monotonic())."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return time.monotonic()
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.005)
    raise TimeoutError(f"{url} not ready within {timeout}s")


@contextlib.contextmanager
def process(
    args: list[str], *, log: Path, env: dict[str, str], cwd: Path | None = None
) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd or ROOT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@contextlib.contextmanager
def sandbox_process(work: Path) -> Iterator[dict[str, str]]:
    log = work / "sandbox.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.sandbox_server"],
            stdout=subprocess.PIPE,
            stderr=err,
            env=_env(),
            cwd=ROOT,
        )
        try:
            line = proc.stdout.readline() if proc.stdout else b""
            if not line:
                raise RuntimeError(f"sandbox did not start: {log.read_text()}")
            yield json.loads(line)
        finally:
            proc.terminate()
            proc.wait(10)


def control(sandbox: dict[str, str], path: str, **query: Any) -> Any:
    url = f"{sandbox['control_url']}{path}?{urllib.parse.urlencode(query)}"
    method = "GET" if path in ("/bench/calls", "/bench/channels") else "POST"
    with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=30) as response:
        return json.loads(response.read())


def loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.loadgen", json.dumps(spec)],
        capture_output=True,
        env=_env(),
        cwd=ROOT,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr.decode()[-2000:]}")
    return json.loads(out.stdout)


class RssSampler:
    """Peak resident memory of a process while a phase runs, sampled every 100 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, rss_mb(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb(self.pid))


# databases ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def database(kind: str, work: Path) -> Iterator[str]:
    """A fresh, empty database URL (the bot migrates it at start-up, which B6 counts)."""
    if kind == "sqlite":
        # A file per phase: B4 must not start on B3's database (a storm's deliveries still to process).
        yield f"sqlite:///{work / f'bench-{uuid.uuid4().hex[:10]}.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from bot.core.db import normalize_url

    server = normalize_url(os.environ["TEST_POSTGRES_URL"])
    name = f"pmb_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# the bot -----------------------------------------------------------------------------------------


@dataclass
class BotProcess:
    proc: subprocess.Popen
    url: str
    ready_seconds: float
    idle_rss_mb: float


@contextlib.contextmanager
def bot_process(work: Path, sandbox: dict[str, str], database_url: str, tag: str) -> Iterator[BotProcess]:
    port = free_port()
    env = _env(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=sandbox["api_url"],
        DATABASE_URL=database_url,
        HOST="127.0.0.1",
        PORT=str(port),
        PAGERDUTY_WEBHOOK_SECRETS=PAGERDUTY_SECRET,
        # The benchmarks' sandbox enforces no rate limits: the bot sends as fast as it can.
        OUTBOX_PACING="false",
    )
    run_dir = work / f"bot-{tag}"
    run_dir.mkdir()  # its own cwd: a developer's .env in the repo must not leak into the benchmark
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with process(
        [sys.executable, "-m", "bot", "serve"], log=work / f"bot-{tag}.log", env=env, cwd=run_dir
    ) as proc:
        ready = wait_http(f"{url}/healthz", proc=proc)
        time.sleep(1.0)  # let start-up garbage settle before reading idle memory
        yield BotProcess(proc, url, round(ready - started, 3), rss_mb(proc.pid))


def send_command(url: str, channel_id: str, text: str) -> dict[str, Any]:
    """One signed `/postmortem` as Slack sends it (setup steps; the load generator builds its own)."""
    body = urllib.parse.urlencode(
        {
            "command": "/postmortem",
            "text": text,
            "channel_id": channel_id,
            "channel_name": "inc-bench",
            "user_id": BENCH_USER,
            "user_name": "alice",
            "team_id": "T0SANDBOX",
            "trigger_id": "setup",
            "response_url": "http://127.0.0.1:9/response/setup",
        }
    ).encode()
    headers = signed_headers(SIGNING_SECRET, int(time.time()), body, "application/x-www-form-urlencoded")
    request = urllib.request.Request(f"{url}/slack/events", data=body, headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read()
    return json.loads(raw) if raw else {}


PROFILE_DIR: Path | None = None


@contextlib.contextmanager
def profiled(pid: int, work: Path, name: str) -> Iterator[None]:
    """With --profile DIR: py-spy samples the server while the phase runs (collapsed stacks, for flame
    graphs or `sort | uniq`); py-spy comes with the `bench` extra."""
    if PROFILE_DIR is None:
        yield
        return
    PROFILE_DIR.mkdir(parents=True, exist_ok=True)
    out = PROFILE_DIR / f"{name}.folded"
    args = [
        "py-spy",
        "record",
        "--pid",
        str(pid),
        "--format",
        "raw",
        "--output",
        str(out),
        "--threads",
        "--idle",
        "--nonblocking",
    ]
    spy = subprocess.Popen(
        [shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy"), *args[1:]],
        stdout=subprocess.DEVNULL,
        stderr=(work / f"{name}.spy.log").open("wb"),
    )
    try:
        yield
    finally:
        spy.send_signal(2)
        spy.wait(30)


# phases ------------------------------------------------------------------------------------------


def command_spec(profile: Profile, port: int, channel_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "slack_command",
        "host": "127.0.0.1",
        "port": port,
        "path": "/slack/events",
        "secret": SIGNING_SECRET,
        "channel_id": channel_id,
        "user_id": BENCH_USER,
        "connections": 16,
        "duration": profile.duration,
        "warmup": profile.warmup,
        **extra,
    }


def floor_bolt(profile: Profile, work: Path) -> dict[str, Any]:
    port = free_port()
    with process(
        [sys.executable, "-m", "benchmarks.floors", "bolt", str(port)],
        log=work / "floor-bolt.log",
        env=_env(),
    ):
        _wait_port(port)
        return loadgen(command_spec(profile, port, "C0FLOOR"))


def floor_pagerduty(profile: Profile, work: Path) -> dict[str, Any]:
    port = free_port()
    args = [sys.executable, "-m", "benchmarks.floors", "pagerduty", str(port)]
    with process(args, log=work / "floor-pagerduty.log", env=_env()):
        _wait_port(port)
        return loadgen(pagerduty_spec(profile, port, "floor"))


def pagerduty_spec(profile: Profile, port: int, run_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "pagerduty",
        "host": "127.0.0.1",
        "port": port,
        "path": "/webhooks/pagerduty" if run_id != "floor" else "/",
        "secret": PAGERDUTY_SECRET,
        "run_id": run_id,
        "connections": 16,
        "duration": profile.duration,
        "warmup": profile.warmup,
        **extra,
    }


def _wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on port {port}")


def _errors(result: dict[str, Any]) -> int:
    return result["requests"] - result["ok"]


def bot_phases(
    profile: Profile, work: Path, sandbox: dict[str, str], db_kind: str, floors: dict[str, Any]
) -> list[Figure]:
    figures: list[Figure] = []
    with database(db_kind, work) as url, bot_process(work, sandbox, url, db_kind) as bot:
        port = int(bot.url.rsplit(":", 1)[1])
        channel_id = control(sandbox, "/bench/channel", name=f"inc-bench-{db_kind}")["channel_id"]
        answer = send_command(bot.url, channel_id, "new Benchmark incident")
        if "Declared incident" not in answer.get("text", ""):
            raise RuntimeError(f"could not declare the benchmark incident: {answer}")

        # B1 + B2: /postmortem in the incident's channel opens the modal, then acks.
        with RssSampler(bot.proc.pid) as rss, profiled(bot.proc.pid, work, f"b1-{db_kind}"):
            b1 = loadgen(
                command_spec(profile, port, channel_id, control_url=sandbox["control_url"], keep_records=True)
            )
        opened = {c["trigger_id"]: c for c in control(sandbox, "/bench/calls", method="views.open")["calls"]}
        delays, failed = [], 0
        for trigger_id, sent_wall, _latency, _status in b1.pop("records"):
            call = opened.get(trigger_id)
            if call is None or not call["ok"]:
                failed += 1
            else:
                delays.append(call["at"] - sent_wall)
        b2 = {**summarize_ms(delays), "opened": len(delays), "not_opened": failed}
        bolt = floors["bolt"]
        figures.append(
            Figure(
                "B1",
                "signed /postmortem -> ack (opens the modal), 16 concurrent",
                b1["rps"],
                "req/s",
                db_kind,
                floor=bolt["rps"],
                target=">= 0.8 x bare Bolt",
                met=_errors(b1) == 0 and bolt["rps"] and b1["rps"] >= 0.8 * bolt["rps"],
                detail={"bot": b1, "floor": bolt},
            )
        )
        figures.append(
            Figure(
                "B1",
                "  p99 ack latency",
                b1["p99_ms"],
                "ms",
                db_kind,
                floor=bolt["p99_ms"],
                detail={"p50_ms": b1["p50_ms"], "floor_p50_ms": bolt["p50_ms"]},
            )
        )
        figures.append(
            Figure(
                "B2",
                "/postmortem -> views.open at the sandbox, p99",
                b2["p99_ms"],
                "ms",
                db_kind,
                target="< 100 ms",
                met=failed == 0 and b2["p99_ms"] is not None and b2["p99_ms"] < 100,
                detail=b2,
            )
        )
        # The same command when it only acks (`/postmortem help`): the bot's own dispatch cost next to Bolt's.
        help_run = loadgen(command_spec(profile, port, channel_id, text="help"))
        figures.append(
            Figure(
                "B1h",
                "signed /postmortem help -> ack (ack only)",
                help_run["rps"],
                "req/s",
                db_kind,
                floor=bolt["rps"],
                target="(context)",
                detail=help_run,
            )
        )
        figures.append(
            Figure(
                "B6",
                "start -> /healthz ready (fresh database, migrations)",
                bot.ready_seconds,
                "s",
                db_kind,
                target="< 2 s",
                met=bot.ready_seconds < 2,
            )
        )
        figures.append(
            Figure(
                "B6",
                "resident memory idle",
                bot.idle_rss_mb,
                "MB",
                db_kind,
                target="< 150 MB",
                met=bot.idle_rss_mb < 150,
            )
        )
        figures.append(
            Figure(
                "B6", "resident memory under load (peak in B1)", rss.peak, "MB", db_kind, target="(context)"
            )
        )
    return figures


def outbox_drained(url: str, timeout: float) -> float:
    """Wait until the bot has processed every stored delivery and its outbox has nothing pending (its
    /healthz says so); returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:
            health = json.loads(response.read())
        if health["inbound"]["unprocessed"] == 0 and health["outbox"].get("pending", 0) == 0:
            return round(time.monotonic() - started, 2)
        time.sleep(0.1)
    raise TimeoutError(f"deliveries or outbox still busy after {timeout}s")


def stored_deliveries(database_url: str) -> int:
    from sqlmodel import Session, func, select

    from bot.core.db import make_engine
    from bot.core.models import InboundDelivery

    engine = make_engine(database_url)
    try:
        with Session(engine) as session:
            return session.exec(select(func.count()).select_from(InboundDelivery)).one()
    finally:
        engine.dispose()


NUMBER_BASES = {
    ("sqlite", "B3"): 100_000,
    ("sqlite", "B4"): 200_000,
    ("postgresql", "B3"): 300_000,
    ("postgresql", "B4"): 400_000,
}


def webhook_phase(
    profile: Profile, work: Path, sandbox: dict[str, str], db_kind: str, floors: dict[str, Any]
) -> list[Figure]:
    """B3: a storm of `incident.triggered` deliveries, each a new incident (the outbox opens channels
    meanwhile, as it would in a real storm)."""
    with database(db_kind, work) as url, bot_process(work, sandbox, url, f"{db_kind}-b3") as bot:
        port = int(bot.url.rsplit(":", 1)[1])
        spec = pagerduty_spec(profile, port, f"{db_kind[:2]}b3", number_base=NUMBER_BASES[db_kind, "B3"])
        with profiled(bot.proc.pid, work, f"b3-{db_kind}"):
            b3 = loadgen(spec)
        stored = stored_deliveries(url)
    floor = floors["pagerduty"]
    detail = {"bot": b3, "floor": floor, "stored_deliveries": stored}
    return [
        Figure(
            "B3",
            "PagerDuty webhook, checked + stored, 16 concurrent",
            b3["rps"],
            "req/s",
            db_kind,
            floor=floor["rps"],
            target=">= 0.5 x bare endpoint",
            met=_errors(b3) == 0 and b3["rps"] >= 0.5 * floor["rps"],
            detail=detail,
        ),
        Figure(
            "B3",
            "  p99",
            b3["p99_ms"],
            "ms",
            db_kind,
            floor=floor["p99_ms"],
            target="< 50 ms",
            met=b3["p99_ms"] is not None and b3["p99_ms"] < 50,
            detail={"p50_ms": b3["p50_ms"]},
        ),
    ]


PROMPT = re.compile(r"Incident #(\d+) resolved after")


def prompt_phase(profile: Profile, work: Path, sandbox: dict[str, str], db_kind: str) -> list[Figure]:
    """B4: incidents are open with their channels; `incident.resolved` arrives at a steady rate, and each
    prompt is timed from the delivery leaving the load generator to the sandbox receiving the post."""
    count = int(profile.webhook_rate * profile.webhook_seconds)
    base = NUMBER_BASES[db_kind, "B4"]
    with database(db_kind, work) as url, bot_process(work, sandbox, url, f"{db_kind}-b4") as bot:
        port = int(bot.url.rsplit(":", 1)[1])
        common = {"number_base": base, "max_requests": count, "warmup": 0}
        opened = loadgen(
            pagerduty_spec(
                profile,
                port,
                f"{db_kind[:2]}b4",
                event_types=["incident.triggered"],
                connections=4,
                duration=120,
                **common,
            )
        )
        drain = outbox_drained(bot.url, timeout=120)
        spec = pagerduty_spec(
            profile,
            port,
            f"{db_kind[:2]}b4",
            event_types=["incident.resolved"],
            rate=profile.webhook_rate,
            duration=profile.webhook_seconds + 5,
            keep_records=True,
            **common,
        )
        with profiled(bot.proc.pid, work, f"b4-{db_kind}"):
            resolved = loadgen(spec)
        sent = {
            int(tag.split(":")[0]): sent_wall for tag, sent_wall, _latency, _status in resolved.pop("records")
        }

        def prompts() -> dict[int, float]:
            found: dict[int, float] = {}
            for call in control(sandbox, "/bench/calls", method="chat.postMessage")["calls"]:
                match = PROMPT.search(call["text"] or "")
                if call["ok"] and match and int(match.group(1)) in sent:
                    found.setdefault(int(match.group(1)), call["at"])
            return found

        deadline = time.monotonic() + 60
        found = prompts()
        while len(found) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.5)
            found = prompts()
    delays = [found[number] - sent[number] for number in found]
    b4 = {
        **summarize_ms(delays),
        "resolved_sent": len(sent),
        "prompts": len(found),
        "rate": profile.webhook_rate,
        "webhooks": resolved,
        "setup": {"triggered": opened, "outbox_drain_seconds": drain},
    }
    ok = len(found) == len(sent) == count
    return [
        Figure(
            "B4",
            f"incident.resolved -> prompt in channel at {profile.webhook_rate:g}/s, p50",
            b4["p50_ms"],
            "ms",
            db_kind,
            detail=b4,
        ),
        Figure(
            "B4",
            "  p99",
            b4["p99_ms"],
            "ms",
            db_kind,
            target="< 1000 ms",
            met=ok and b4["p99_ms"] is not None and b4["p99_ms"] < 1000,
        ),
    ]


def kpi_phase(profile: Profile, work: Path, db_kind: str) -> list[Figure]:
    from benchmarks import kpi_bench

    with database(db_kind, work / "kpis") if db_kind != "sqlite" else _sqlite_kpis(work) as url:
        steps = kpi_bench.run(url, profile.kpi_sizes)
    figures = []
    targets = {100_000: 1.0, 1_000_000: 1.0}  # issue 16, B5: 1M under 1 s
    for step in steps:
        limit = targets.get(step["incidents"])
        figures.append(
            Figure(
                "B5",
                f"KPIs over {step['incidents']:,} incidents",
                step["kpis_seconds"],
                "s",
                db_kind,
                target=f"< {limit:g} s" if limit else "",
                met=step["kpis_seconds"] < limit if limit else None,
                detail=step,
            )
        )
    first, last = steps[0], steps[-1]
    growth = (last["kpis_seconds"] / first["kpis_seconds"]) / (last["incidents"] / first["incidents"])
    figures.append(
        Figure(
            "B5",
            f"  growth {first['incidents']:,} -> {last['incidents']:,} (time ratio / size ratio)",
            round(growth, 2),
            "",
            db_kind,
            target="<= 1.25 (linear)",
            met=growth <= 1.25,
        )
    )
    for step in steps:
        if "digest_seconds" in step:
            figures.append(
                Figure(
                    "B5",
                    f"  weekly digest (message + chart) over {step['incidents']:,}",
                    step["digest_seconds"],
                    "s",
                    db_kind,
                    target="(context)",
                    detail=step,
                )
            )
    if "digest_seconds" not in last:
        figures.append(Figure("B5", "  digest", None, "", db_kind, target="pending: no digest here"))
    for step in steps:
        figures.append(
            Figure(
                "B8",
                f"/metrics scrape over {step['incidents']:,} incidents (median of 30, in process)",
                round(step["scrape_seconds"] * 1e6, 1),
                "µs",
                db_kind,
                target="< 50 ms",
                met=step["scrape_seconds"] < 0.05,
                detail=step,
            )
        )
        figures.append(
            Figure(
                "B8",
                f"  its periodic refresh (METRICS_REFRESH_SECONDS) over {step['incidents']:,}",
                step["metrics_refresh_seconds"],
                "s",
                db_kind,
                target="(context)",
                detail=step,
            )
        )
    return figures


@contextlib.contextmanager
def _sqlite_kpis(work: Path) -> Iterator[str]:
    yield f"sqlite:///{work / 'kpis.db'}"


# report ------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3g}"
    return str(value)


def table(figures: list[Figure]) -> str:
    rows = [("#", "figure", "db", "value", "floor", "ratio", "target", "met?")]
    for f in figures:
        rows.append(
            (
                f.id,
                f.figure,
                f.database,
                f"{_fmt(f.value)} {f.unit}",
                _fmt(f.floor),
                _fmt(f.ratio),
                f.target,
                _fmt(f.met) if f.met is not None else "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(profile: Profile, out: Path | None, databases: list[str], kpi_databases: list[str]) -> dict[str, Any]:
    load_before = os.getloadavg()
    started = datetime.now(UTC)
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="pmb-bench-") as tmp:
        work = Path(tmp)
        floors = {"bolt": floor_bolt(profile, work), "pagerduty": floor_pagerduty(profile, work)}
        with sandbox_process(work) as sandbox:
            for db_kind in databases:
                figures += bot_phases(profile, work, sandbox, db_kind, floors)
                figures += webhook_phase(profile, work, sandbox, db_kind, floors)
                figures += prompt_phase(profile, work, sandbox, db_kind)
        for db_kind in kpi_databases:
            figures += kpi_phase(profile, work, db_kind)
        logs = {p.name: p.read_text()[-4000:] for p in work.glob("*.log") if p.stat().st_size}
    load_after = os.getloadavg()
    result = {
        "profile": profile.name,
        "started": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "commit": _git_commit(),
        "machine": machine(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "floors": floors,
        "figures": [f.as_json() for f in figures],
        "log_tails": logs,
    }
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        stamp = started.strftime("%Y%m%dT%H%M%SZ")
        text = json.dumps(result, indent=2) + "\n"
        (out / f"{stamp}.json").write_text(text)
        (out / "latest.json").write_text(text)
    print(table(figures))
    host = result["machine"]
    print(
        f"\nmachine: {host['nproc']} cores, {host['cpu']}, Python {host['python']}; "
        f"load average before {result['load_average_before']}, after {result['load_average_after']}; "
        f"{result['seconds']} s"
    )
    return result


def _git_commit() -> str | None:
    if shutil.which("git") is None:
        return None
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    return out.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="short phases: checks the harness runs, not the numbers"
    )
    parser.add_argument("--profile", type=Path, help="record py-spy profiles of the bot's load phases here")
    parser.add_argument("--out", type=Path, help="where to write <timestamp>.json and latest.json")
    args = parser.parse_args(argv)
    profile = QUICK if args.quick else FULL
    # A SIGTERM (a CI time-out, kill) unwinds the context managers, so no server is left running.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    global PROFILE_DIR
    PROFILE_DIR = args.profile
    out = args.out if args.out is not None else (None if args.quick else RESULTS)
    postgres = ["postgresql"] if os.environ.get("TEST_POSTGRES_URL") else []
    # --quick keeps CI under a minute: the server phases on SQLite only (PostgreSQL runs the same code
    # with another URL), the KPI phase on both (its bulk load differs: executemany vs COPY).
    run(profile, out, ["sqlite"] + ([] if args.quick else postgres), ["sqlite", *postgres])
    return 0


if __name__ == "__main__":
    sys.exit(main())
