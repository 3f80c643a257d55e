"""How much does probing cost? Conn's prober next to Prometheus' blackbox exporter.

Both probe the same 1,000 health endpoints (1,000 paths on one local asyncio
server in a subprocess, each answering ``{"status":"ok"}``) with the same
concurrency, in the same run:

* **conn**: ``console.sources.probe.Prober`` in this process; its CPU is this
  process's CPU time (``time.process_time``) while it probes.
* **blackbox**: Debian's ``prometheus-blackbox-exporter`` on loopback, driven
  through its ``/probe?target=…&module=…`` API by an httpx client here (as
  Prometheus would scrape it); its CPU is read from ``/proc/<pid>/stat``. The
  driver's own CPU is shown apart.

Prints a table and the command that produced it. Not a test; bounded to about
a minute. Run: ``.venv/bin/python bench/probe.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shlex
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from console.config import ServiceConfig
from console.sources.probe import Prober

EXPORTER = "/usr/bin/prometheus-blackbox-exporter"
BODY = b'{"status":"ok"}'
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(BODY),
    BODY,
)
BLACKBOX_CONFIG = """\
modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  http_json:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      fail_if_body_not_matches_regexp: ['"status"\\s*:\\s*"ok"']
"""


# --- the target server (runs in a subprocess) ----------------------------------


class _Health(asyncio.Protocol):
    """Keep-alive HTTP/1.1: answers every request on the connection with BODY."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(RESPONSE)
            if b"connection: close" in head.lower():
                self.transport.close()
                return


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Health, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()


# --- measuring ----------------------------------------------------------------


def _cpu_of(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Row:
    name: str
    probes: int
    wall: float
    cpu: float
    server_cpu: float
    failed: int
    note: str = ""

    def cells(self) -> list[str]:
        return [
            self.name,
            f"{self.probes}",
            f"{self.wall:.2f}",
            f"{self.probes / self.wall:,.0f}",
            f"{self.cpu:.2f}",
            f"{self.cpu / self.probes * 1e6:,.0f}",
            f"{self.cpu / self.wall:.2f}",
            f"{self.server_cpu:.2f}",
            f"{self.failed}",
            self.note,
        ]


async def _bench_conn(
    name: str,
    port: int,
    endpoints: int,
    rounds: int,
    concurrency: int,
    *,
    keepalive: int,
    stripe_size: int,
    server_pid: int,
) -> Row:
    specs = [
        ServiceConfig(health_url=f"http://127.0.0.1:{port}/svc/{i}", timeout=5.0)
        for i in range(endpoints)
    ]
    prober = Prober(
        max_connections=concurrency,
        max_keepalive=keepalive,
        stripe_size=stripe_size,
        trust_env=False,
    )
    async with prober:
        await asyncio.gather(*(prober.probe(f"s{i}", s) for i, s in enumerate(specs[:concurrency])))
        cpu0, wall0, srv0 = time.process_time(), time.perf_counter(), _cpu_of(server_pid)
        failed = 0
        for _ in range(rounds):
            results = await asyncio.gather(*(prober.probe(f"s{i}", s) for i, s in enumerate(specs)))
            failed += sum(r.health != "up" for r in results)
        wall = time.perf_counter() - wall0
        cpu, srv = time.process_time() - cpu0, _cpu_of(server_pid) - srv0
    pools = -(-concurrency // stripe_size)
    note = f"keepalive {keepalive}, {pools} pool{'s' if pools > 1 else ''}"
    return Row(name, endpoints * rounds, wall, cpu, srv, failed, note)


async def _bench_blackbox(
    module: str,
    exporter_port: int,
    port: int,
    endpoints: int,
    rounds: int,
    concurrency: int,
    exporter_pid: int,
    server_pid: int,
) -> Row:
    base = f"http://127.0.0.1:{exporter_port}/probe"
    urls = [
        f"{base}?module={module}&target=http://127.0.0.1:{port}/svc/{i}" for i in range(endpoints)
    ]
    pending = iter(urls)
    failed = 0

    async def worker(client: httpx.AsyncClient, budget: int | None) -> None:
        # One keep-alive connection per worker, like a scraper's: a shared
        # 100-connection httpx pool would make the driver, not the exporter,
        # the bottleneck.
        nonlocal failed
        for url in pending if budget is None else [next(pending) for _ in range(budget)]:
            response = await client.get(url)
            failed += b"probe_success 1" not in response.content

    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(limits=limits, timeout=10.0, trust_env=False)
            )
            for _ in range(concurrency)
        ]
        await asyncio.gather(*(worker(c, 1) for c in clients))  # warm up every connection
        failed = 0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        exp0, srv0 = _cpu_of(exporter_pid), _cpu_of(server_pid)
        for _ in range(rounds):
            pending = iter(urls)
            await asyncio.gather(*(worker(c, None) for c in clients))
        wall = time.perf_counter() - wall0
        driver = time.process_time() - cpu0
        exporter, srv = _cpu_of(exporter_pid) - exp0, _cpu_of(server_pid) - srv0
    return Row(
        f"blackbox {module}",
        endpoints * rounds,
        wall,
        exporter,
        srv,
        failed,
        f"driver CPU {driver:.2f}s",
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def _wait_ready(url: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(trust_env=False) as client:
        while True:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"{url} did not come up")
            await asyncio.sleep(0.1)


async def _main(args: argparse.Namespace) -> None:
    server = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", stdout=asyncio.subprocess.PIPE
    )
    exporter: asyncio.subprocess.Process | None = None
    rows: list[Row] = []
    stack = contextlib.ExitStack()
    try:
        assert server.stdout is not None
        port = int(await server.stdout.readline())
        common = (port, args.endpoints, args.rounds, args.concurrency)
        for keepalive, stripe_size in (
            (args.concurrency, 5),  # the defaults: striped pools, every connection kept
            (20, 5),
            (20, args.concurrency),  # one httpcore pool, as a plain httpx client has
        ):
            rows.append(
                await _bench_conn(
                    "conn",
                    *common,
                    keepalive=keepalive,
                    stripe_size=stripe_size,
                    server_pid=server.pid,
                )
            )
        if shutil.which(EXPORTER):
            config_dir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="conn-bench-"))
            )
            (config_dir / "blackbox.yml").write_text(BLACKBOX_CONFIG)
            exporter_port = _free_port()
            exporter = await asyncio.create_subprocess_exec(
                EXPORTER,
                f"--config.file={config_dir / 'blackbox.yml'}",
                f"--web.listen-address=127.0.0.1:{exporter_port}",
                "--log.level=error",
            )
            await _wait_ready(f"http://127.0.0.1:{exporter_port}/-/healthy")
            for module in ("http_2xx", "http_json"):
                rows.append(
                    await _bench_blackbox(
                        module,
                        exporter_port,
                        *common,
                        exporter_pid=exporter.pid,
                        server_pid=server.pid,
                    )
                )
        else:
            print(f"{EXPORTER} is not installed: apt-get install -y prometheus-blackbox-exporter")
    finally:
        for process in (exporter, server):
            if process is not None and process.returncode is None:
                process.terminate()
                await process.wait()
        stack.close()

    header = [
        "prober",
        "probes",
        "wall s",
        "probes/s",
        "CPU s",
        "CPU µs/probe",
        "cores busy",
        "target CPU s",
        "failed",
        "note",
    ]
    table = [header] + [row.cells() for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    print()
    for n, line in enumerate(table):
        print(
            "  ".join(
                cell.rjust(w) if 0 < i < 9 else cell.ljust(w)
                for i, (cell, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))
    print()
    print(
        f"{args.endpoints} endpoints x {args.rounds} rounds, concurrency {args.concurrency}, "
        f"{os.cpu_count()} CPUs; CPU = prober process only (conn: this process; "
        "blackbox: the exporter), target = the shared health server."
    )
    print("command:", shlex.join([sys.executable, *sys.argv]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--endpoints", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve())
    else:
        asyncio.run(_main(args))


if __name__ == "__main__":
    main()
