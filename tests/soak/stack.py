"""The stack as operations run it, on a private PostgreSQL and Redis: migrations, then gunicorn
(deploy/gunicorn.conf.py, 2 workers), two Celery worker nodes (prefork, concurrency 2) and one
beat (the DatabaseScheduler of the settings), every one in its own process group so a whole
node can be SIGKILLed and started again.

Children get production defaults: only what a deployment must set (secret, hosts, database,
broker, upstream locations) is in their environment; nothing of the test settings is.
A process that exits without the chaos asking is restarted, as compose's `restart:
unless-stopped` would, and remembered for the report.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.services import PrivatePostgres, PrivateRedis, new_private_postgres
from tests.support import PYTHON, ROOT, free_port

DB_NAME = "kasparro_soak"
SCHEDULE_SECONDS = 20
REAPER_MAX_SECONDS = 60
WORKERS = ("worker1", "worker2")
# Only what any process needs to run at all; everything the project reads is set explicitly.
PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME")

# Run through `manage.py shell` on the private database after `migrate` created the schedules:
# every source every SCHEDULE_SECONDS; the reaper at most every REAPER_MAX_SECONDS.
SCHEDULE_SCRIPT = """
import json
from django_celery_beat.models import IntervalSchedule, PeriodicTask
every, _ = IntervalSchedule.objects.get_or_create(every=%(every)d, period=IntervalSchedule.SECONDS)
reap, _ = IntervalSchedule.objects.get_or_create(every=%(reap)d, period=IntervalSchedule.SECONDS)
found = {}
for task in PeriodicTask.objects.filter(name__startswith="etl.").select_related("interval"):
    before = task.interval.schedule.run_every.total_seconds() if task.interval else None
    if task.name.startswith("etl.ingest:"):
        task.interval = every
    elif task.task == "etl.reap" and (before is None or before > %(reap)d):
        task.interval = reap
    task.save()
    after = task.interval.schedule.run_every.total_seconds() if task.interval else None
    found[task.name] = {"enabled": task.enabled, "before": before, "after": after}
print(json.dumps(found))
"""


@dataclass
class Managed:
    """One long-running child: its command, its log, and whether the chaos took it down."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    cwd: Path
    process: subprocess.Popen | None = None
    starts: int = 0
    down: bool = False  # stopped on purpose: not to be restarted by `supervise`

    def start(self) -> None:
        self.starts += 1
        with self.log.open("a") as log:
            log.write(f"\n===== soak: start #{self.starts} at {dt.datetime.now(dt.UTC)} =====\n")
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: the node and its pool die together
            )
        self.down = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self, sig: int) -> None:
        """Signal the whole group: the node and its pool. The group id is our child's pid,
        which Linux gives no other process while a member of the group lives; once none does,
        the call finds nobody. So it only ever reaches processes we started."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, sig)

    def kill(self) -> None:
        self.down = True
        self.signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)

    def stop(self, timeout: float = 10) -> None:
        self.down = True
        if self.process is None:
            return
        if self.alive():
            self.signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        self.signal_group(signal.SIGKILL)  # the master, or pool children it left behind
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)

    def last_words(self, lines: int = 200) -> str:
        """The errors among the last lines of its log (JSON lines), else its last lines."""
        tail = self.log.read_text(errors="replace").splitlines()[-lines:]
        errors = []
        for line in tail:
            with contextlib.suppress(ValueError, AttributeError):
                record = json.loads(line)
                if record.get("level") in ("ERROR", "CRITICAL"):
                    errors.append(f"{record['level']} {record.get('logger')}: {record['message']}")
        return "\n".join(line[:240] for line in (errors[-4:] or tail[-4:]))


@dataclass
class UnexpectedExit:
    name: str
    returncode: int | None
    at: dt.datetime
    last_words: str


@dataclass
class Stack:
    workdir: Path
    upstream_env: dict[str, str]
    out: Callable[[str], None] = print
    pg: PrivatePostgres | None = None
    redis: PrivateRedis | None = None
    env: dict[str, str] = field(default_factory=dict)
    processes: dict[str, Managed] = field(default_factory=dict)
    exits: list[UnexpectedExit] = field(default_factory=list)
    schedules: dict = field(default_factory=dict)
    base_url: str = ""

    # --- start and stop -------------------------------------------------------------------------

    def start(self) -> None:
        (self.workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.out("soak: starting PostgreSQL and Redis (private)")
        self.pg = new_private_postgres()
        with self.pg.connect() as db:
            db.execute(f"CREATE DATABASE {DB_NAME}")
        self.redis = PrivateRedis()
        self.redis.start()
        self.env = self._environment()
        self.out("soak: migrating and shortening the schedules")
        self.manage("migrate", "--no-input", timeout=240)
        found = self.manage(
            "shell", "-c", SCHEDULE_SCRIPT % {"every": SCHEDULE_SECONDS, "reap": REAPER_MAX_SECONDS}
        )
        self.schedules = json.loads(found.stdout.strip().splitlines()[-1])

        port = free_port()
        self.base_url = f"http://127.0.0.1:{port}"
        web_env = {**self.env, "PORT": str(port)}
        web_env["PROMETHEUS_MULTIPROC_DIR"] = str(self.workdir / "prometheus")
        conf = str(ROOT / "deploy" / "gunicorn.conf.py")
        bind = ["--bind", f"127.0.0.1:{port}", "--workers", "2"]
        self._add(
            "web",
            [PYTHON, "-m", "gunicorn", "kasparro.wsgi:application", "-c", conf, *bind],
            web_env,
        )
        for name in WORKERS:
            worker = ["worker", "-l", "INFO", "-P", "prefork", "--concurrency", "2"]
            self._add(name, [*self._celery(), *worker, "--hostname", f"{name}@%h"], self.env)
        schedule = str(self.workdir / "celerybeat-schedule")  # unused by DatabaseScheduler
        self._add("beat", [*self._celery(), "beat", "-l", "INFO", "--schedule", schedule], self.env)
        self.out("soak: starting web, two workers and beat")
        for managed in self.processes.values():
            managed.start()
        self._wait_ready()
        self.manage("etl", "enqueue")  # the first ingestion, as `make run` does

    def _environment(self) -> dict[str, str]:
        assert self.pg is not None and self.redis is not None
        env = {k: v for k, v in os.environ.items() if k in PASSTHROUGH}
        env.update(
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
            DJANGO_SETTINGS_MODULE="kasparro.settings",
            DEBUG="0",
            SECRET_KEY=secrets.token_urlsafe(50),
            ALLOWED_HOSTS="127.0.0.1,localhost",
            DATABASE_URL=self.pg.url(DB_NAME),
            REDIS_URL=self.redis.url,
            KASPARRO_STATE_DIR=str(self.workdir / "state"),
        )
        env.update(self.upstream_env)
        return env

    @staticmethod
    def _celery() -> list[str]:
        return [PYTHON, "-m", "celery", "-A", "kasparro"]

    def _add(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = self.workdir / "logs" / f"{name}.log"
        self.processes[name] = Managed(name, argv, env, log, cwd=self.workdir)

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [PYTHON, str(ROOT / "manage.py"), *args],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"manage.py {args[0]} exited {done.returncode}:\n{done.stderr[-3000:]}"
            )
        return done

    def _wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        waiting = {"web", *WORKERS}
        while waiting:
            for name in list(waiting):
                managed = self.processes[name]
                if not managed.alive():
                    raise RuntimeError(f"{name} exited at start:\n{managed.last_words()}")
                if name == "web":
                    with contextlib.suppress(OSError):
                        urllib.request.urlopen(f"{self.base_url}/health", timeout=5)  # noqa: S310
                        waiting.discard(name)
                    continue
                if " ready." in managed.log.read_text(errors="replace"):
                    waiting.discard(name)
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after {timeout:.0f}s: {sorted(waiting)}")
            time.sleep(0.3)

    def stop_all(self) -> None:
        """Every process, then the servers, each whatever happened to the one before. Safe to
        call twice, and after a failed start."""
        with contextlib.ExitStack() as stack:
            if self.pg is not None:
                stack.callback(self.pg.destroy)
            if self.redis is not None:
                stack.callback(self.redis.destroy)
            for managed in self.processes.values():
                stack.callback(managed.stop, timeout=15)
            for managed in self.processes.values():  # all at once: their shutdowns overlap
                if managed.alive():
                    managed.down = True
                    managed.signal_group(signal.SIGTERM)

    # --- supervision and the chaos's handles ----------------------------------------------------

    def supervise(self) -> list[UnexpectedExit]:
        """Restart what exited on its own (as the compose restart policy would); report it."""
        found = []
        for managed in self.processes.values():
            if managed.down or managed.alive() or managed.process is None:
                continue
            exit_ = UnexpectedExit(
                managed.name,
                managed.process.returncode,
                dt.datetime.now(dt.UTC),
                managed.last_words(),
            )
            self.out(f"soak: {managed.name} exited on its own ({exit_.returncode}); restarting")
            managed.stop()  # reap any pool children left in its group
            managed.start()
            found.append(exit_)
        self.exits += found
        return found

    def worker_of(self, pid: int) -> str | None:
        """The worker node a process belongs to (its process group), if it is one of ours."""
        try:
            group = os.getpgid(pid)
        except ProcessLookupError:
            return None
        for name in WORKERS:
            managed = self.processes[name]
            if managed.alive() and managed.pid == group and pid != group:
                return name
        return None
