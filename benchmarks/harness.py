"""The benchmarks' shared harness: the run's profiles and figures, the processes it starts (servers, the
load generator, the sandbox), the databases, and the load specs. `benchmarks.run` composes the phases.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.devtools.sandbox.signing import signed_headers
from bot.devtools.stack import BOT_TOKEN, PAGERDUTY_SECRET, SIGNING_SECRET

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BENCH_USER = "U0ALICE"
OPEN_RATE = 50.0  # B1's open loop, /postmortem commands per second


@dataclass(frozen=True)
class Profile:
    name: str
    duration: float  # measured seconds per load phase
    warmup: float
    webhook_rate: float  # B4's offered load, webhooks/s
    webhook_seconds: float
    kpi_sizes: tuple[int, ...]
    storm_incidents: int  # B7
    storm_speed: float  # B7's Slack clock against the wall clock
    scrape_sizes: tuple[int, ...]  # B8, over HTTP


FULL = Profile(
    "full",
    duration=10.0,
    warmup=2.0,
    webhook_rate=50,
    webhook_seconds=10,
    kpi_sizes=(10_000, 100_000, 1_000_000),
    storm_incidents=200,
    storm_speed=10.0,
    scrape_sizes=(10_000, 100_000, 1_000_000),
)
QUICK = Profile(
    "quick",
    duration=1.0,
    warmup=0.3,
    webhook_rate=50,
    webhook_seconds=1,
    kpi_sizes=(1_000, 10_000),
    storm_incidents=20,
    storm_speed=60.0,
    scrape_sizes=(1_000,),
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


def child_env(**extra: str) -> dict[str, str]:
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
            env=child_env(),
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


def run_module(module: str, spec: dict[str, Any], log: Path | None = None) -> dict[str, Any]:
    """`python -m module SPEC_JSON` in a process of its own; its result is the last line of its stdout
    (its stderr goes to `log`)."""
    out = subprocess.run(
        [sys.executable, "-m", module, json.dumps(spec)],
        capture_output=True,
        env=child_env(),
        cwd=ROOT,
        check=False,
    )
    if log is not None:
        log.write_bytes(out.stderr)
    if out.returncode != 0:
        raise RuntimeError(f"{module} failed: {out.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.decode().strip().splitlines()[-1])
    return result


def loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    return run_module("benchmarks.loadgen", spec)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, from /proc/<pid>/stat (Linux)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": field 3 (state) is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class CpuMeter:
    """The CPU seconds a process used inside a `with` block (10 ms ticks: measure over seconds)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.seconds = pid, 0.0

    def per(self, requests: int) -> dict[str, float]:
        return {
            "cpu_seconds": round(self.seconds, 3),
            "cpu_us_per_request": round(self.seconds / max(1, requests) * 1e6, 1),
        }


@contextlib.contextmanager
def cpu_meter(pid: int) -> Iterator[CpuMeter]:
    meter = CpuMeter(pid)
    before = cpu_seconds(pid)
    yield meter
    meter.seconds = cpu_seconds(pid) - before


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
    settle_seconds: float  # after ready, until its start-up work (the scheduler's catch-up) was done


def settled(pid: int, *, busy_share: float = 0.05, window: float = 0.5, timeout: float = 30.0) -> float:
    """Wait until a process uses less than `busy_share` of a core over `window` seconds; returns the
    seconds waited. After `/healthz` answers, the bot may still be at its start-up work: the scheduler
    catches up on the jobs whose last instant has not run (on a fresh database, a digest with its chart,
    which imports matplotlib), and a load phase must not share the process with it."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = cpu_seconds(pid)
        time.sleep(window)
        if cpu_seconds(pid) - before < busy_share * window:
            break
    return round(time.monotonic() - started, 2)


@contextlib.contextmanager
def bot_process(work: Path, sandbox: dict[str, str], database_url: str, tag: str) -> Iterator[BotProcess]:
    port = free_port()
    env = child_env(
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
        settle = settled(proc.pid)
        yield BotProcess(proc, url, round(ready - started, 3), rss_mb(proc.pid), settle)


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
    """The bare Bolt app closed-loop (its req/s, B1h's floor), then open-loop at B1's rate (its CPU per
    request, B1's floor, under `open_loop`)."""
    port = free_port()
    with process(
        [sys.executable, "-m", "benchmarks.floors", "bolt", str(port)],
        log=work / "floor-bolt.log",
        env=child_env(),
    ) as proc:
        _wait_port(port)
        closed = loadgen(command_spec(profile, port, "C0FLOOR"))
        with cpu_meter(proc.pid) as cpu:
            opened = loadgen(command_spec(profile, port, "C0FLOOR", rate=OPEN_RATE))
        return {**closed, "open_loop": {**opened, **cpu.per(opened["sent"])}}


def floor_pagerduty(profile: Profile, work: Path) -> dict[str, Any]:
    port = free_port()
    args = [sys.executable, "-m", "benchmarks.floors", "pagerduty", str(port)]
    with process(args, log=work / "floor-pagerduty.log", env=child_env()):
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


def errors(result: dict[str, Any]) -> int:
    return result["requests"] - result["ok"]


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
