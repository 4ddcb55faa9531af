"""Catalog search through the service vs the hub's own ``GET /hub/api/user``, in the same run.

Starts its own platform (embedded Postgres, jupyterhub, configurable-http-proxy, the service) in a temporary
home, seeds 1,000 published tools directly through the store functions, then measures over HTTP through the
proxy with a teacher's token: latency p50/p95 (sequential, keep-alive) and throughput (sequential and with
8 concurrent clients), for a mix of catalog searches (text prefix, facet filters, both, none; repeated, as
teachers repeat them, so the service answers them from its catalog cache after the first time), for searches
never asked before (each read from Postgres: the cost after a catalog change), and for the hub's own identity
endpoint, in alternating rounds (medians are printed). Prints ratios (service / hub) and the
load average.

    .venv/bin/python benchmarks/catalog_api.py [--tools 1000] [--requests 600] [--concurrency 8] [--rounds 3] [--bulk-seed]

Goal: catalog p50 ≤ 10 ms; throughput at least the hub's own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from skriptoteket_ext import tools as store  # noqa: E402
from skriptoteket_ext.db import create_engine  # noqa: E402
from tests.e2e.conftest import start_platform, stop_platform  # noqa: E402

WORDS = ["grupp", "indelning", "mentor", "samtal", "närvaro", "lektion", "planering", "betyg", "elev", "klass",
         "schema", "mail", "vårdnadshavare", "rapport", "pdf", "word", "markdown", "lista", "enkät", "prov",
         "group", "maker", "notes", "attendance", "lesson", "planner", "grades", "report", "survey", "seating"]
PROFESSIONS = ["teacher", "special-needs-educator", "school-administrator", "principal", "shared"]
CATEGORIES = ["lesson-planning", "mentoring", "administration", "other"]
QUERIES = [
    {"q": "grupp"},
    {"q": "lektion plan"},
    {"q": "ment"},
    {"profession": "principal"},
    {"category": ["mentoring", "administration"]},
    {"q": "rapport", "profession": "teacher", "category": "other"},
    {},
    {"q": "vårdnadsh"},
]


async def seed_bulk(db_url: str, n: int) -> None:
    """The same tools in one transaction of plain INSERTs (published, active version), for a loaded machine."""
    engine = create_engine(db_url, pool_size=2, timeout=30)
    rng = random.Random(7)
    from skriptoteket_ext import tables as t
    async with engine.begin() as conn:
        await conn.execute(sa.insert(t.users).values(name="bench-author"))
        for i in range(n):
            tid = (await conn.execute(sa.insert(t.tools).values(
                slug=f"bench-tool-{i}", title=" ".join(rng.sample(WORDS, 3)).capitalize() + f" {i}",
                summary=" ".join(rng.choices(WORDS, k=12)), owner_name="bench-author", created_by="bench-author",
                is_published=True, slug_locked=True, published_at=sa.func.now(), published_by="bench-reviewer",
            ).returning(t.tools.c.id))).scalar_one()
            await conn.execute(sa.insert(t.tool_professions), [{"tool_id": tid, "profession_slug": p} for p in rng.sample(PROFESSIONS, rng.randint(1, 2))])
            await conn.execute(sa.insert(t.tool_categories), [{"tool_id": tid, "category_slug": c} for c in rng.sample(CATEGORIES, rng.randint(1, 2))])
            await conn.execute(sa.insert(t.tool_versions).values(tool_id=tid, version_no=1, state="active", was_active=True,
                                                               source="def run_tool(i, o):\n    return {}\n", created_by="bench-author"))
        await conn.exec_driver_sql("ANALYZE skriptoteket.tools")
    await engine.dispose()


async def seed(db_url: str, n: int) -> None:
    engine = create_engine(db_url, pool_size=8, timeout=30)
    rng = random.Random(7)

    async def one(i: int) -> None:
        title = " ".join(rng.sample(WORDS, 3)).capitalize() + f" {i}"
        summary = " ".join(rng.choices(WORDS, k=12))
        body = {"title": title, "summary": summary, "professions": rng.sample(PROFESSIONS, rng.randint(1, 2)),
                "categories": rng.sample(CATEGORIES, rng.randint(1, 2))}
        async with engine.begin() as conn:
            tool = await store.create_tool(conn, "bench-author", body)
            tid = tool["id"]
            await store.update_tool(conn, tid, "bench-reviewer", {"slug": f"bench-tool-{i}"}, reviewer=True)
            v = await store.save_draft(conn, tid, "bench-author", {"source": "def run_tool(i, o):\n    return {}\n"}, None)
            await store.submit(conn, tid, v["id"], "bench-author")
            await store.publish_version(conn, tid, v["id"], "bench-reviewer", None)
            await store.publish_tool(conn, tid, "bench-reviewer")

    for start in range(0, n, 8):  # 8 at a time: within the pool
        await asyncio.gather(*(one(i) for i in range(start, min(n, start + 8))))
    async with engine.begin() as conn:
        await conn.exec_driver_sql("ANALYZE skriptoteket.tools")
    await engine.dispose()


class NewQueries:
    """Each request a search not asked before (a text prefix and an offset never used together): each one is
    read from Postgres by the service, as after a change to the catalog (the service's cache is no help)."""

    def __init__(self):
        self.asked = 0

    def __len__(self):
        return 1 << 30

    def __getitem__(self, _):
        self.asked += 1
        return {"q": WORDS[self.asked % len(WORDS)][:4], "offset": str(self.asked // len(WORDS))}


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def _listening_pid(port: int | str) -> int | None:
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        if f"127.0.0.1:{port} " in line and "pid=" in line:
            return int(line.split("pid=")[1].split(",")[0])
    return None


def _cpu_ms(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def cpu_meter(platform):
    """CPU time (user + system, ms) of the service, the hub, the proxy and all Postgres backends: what a request
    costs the machine, whatever the load average (which only stretches latencies)."""
    env = platform.env
    pids = {"service": _listening_pid(env["SKRIPTOTEKET_SERVICE_PORT"]), "hub": _listening_pid(env["SKRIPTOTEKET_HUB_PORT"]),
            "proxy": _listening_pid(platform.url.rsplit(":", 1)[1])}
    postmaster = _listening_pid(env["SKRIPTOTEKET_PG_PORT"])

    def snapshot() -> dict[str, float]:
        out = {name: _cpu_ms(pid) for name, pid in pids.items() if pid}
        backends = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True, check=False).stdout.split() if postmaster else []
        out["postgres"] = sum(_cpu_ms(int(b)) for b in backends)
        return out

    return snapshot


def sequential(url: str, params_list: list[dict], token: str, n: int, cpu=None) -> dict:
    lat = []
    with httpx.Client(headers={"Authorization": f"token {token}"}, timeout=30) as client:
        for i in range(30):  # warm-up: connections, the service's token cache, Postgres plans
            client.get(url, params=params_list[i % len(params_list)]).raise_for_status()
        before = cpu() if cpu else {}
        start = time.perf_counter()
        for i in range(n):
            t0 = time.perf_counter()
            r = client.get(url, params=params_list[i % len(params_list)])
            lat.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
        elapsed = time.perf_counter() - start
        after = cpu() if cpu else {}
    cpu_per_request = {f"cpu_{name}": (after[name] - before[name]) / n for name in before}
    return {"p50": statistics.median(lat), "p95": pct(lat, 95), "rps": n / elapsed, **cpu_per_request}


async def concurrent(url: str, params_list: list[dict], token: str, n: int, clients: int) -> float:
    async with httpx.AsyncClient(headers={"Authorization": f"token {token}"}, timeout=30,
                                 limits=httpx.Limits(max_connections=clients)) as client:
        for i in range(clients * 2):
            (await client.get(url, params=params_list[i % len(params_list)])).raise_for_status()
        counter = iter(range(n))

        async def worker():
            for i in counter:
                (await client.get(url, params=params_list[i % len(params_list)])).raise_for_status()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        return n / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tools", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="alternating catalog/hub rounds (requests are split among them)")
    parser.add_argument("--bulk-seed", action="store_true", help="seed with plain INSERTs instead of the store's transactions")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="skriptoteket-bench-") as tmp:
        platform = start_platform(Path(tmp) / "home")
        try:
            platform.create_user("bench-teacher")
            token = platform.token_for("bench-teacher")
            t0 = time.perf_counter()
            asyncio.run((seed_bulk if args.bulk_seed else seed)(platform.postgres.url("skriptoteket"), args.tools))
            print(f"seeded {args.tools} published tools in {time.perf_counter() - t0:.1f} s")
            catalog = f"{platform.service_url}/api/v1/catalog"
            first = httpx.get(catalog, headers={"Authorization": f"token {token}"}, params={"limit": 100}, timeout=30).json()
            assert len(first["tools"]) == min(100, args.tools) and first["has_more"] == (args.tools > 100), first
            hub = f"{platform.url}/hub/api/user"

            # Rounds alternate catalog and hub so that both see the same (shared, changing) machine load.
            endpoints = (("catalog search", catalog, QUERIES), ("catalog search, new each", catalog, NewQueries()),
                         ("hub GET /hub/api/user", hub, [{}]))
            rounds: dict[str, list[dict]] = {name: [] for name, _, _ in endpoints}
            meter = cpu_meter(platform)
            print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            for _ in range(args.rounds):
                for name, url, params in endpoints:
                    seq = sequential(url, params, token, args.requests // args.rounds, meter)
                    seq["rps_concurrent"] = asyncio.run(concurrent(url, params, token, args.requests * 2 // args.rounds, args.concurrency))
                    rounds[name].append(seq)
            print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            results = {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for name, rs in rounds.items()}
            print(f"\n{'endpoint':26} {'p50 ms':>8} {'p95 ms':>8} {'req/s seq':>10} {'req/s x' + str(args.concurrency):>10}"
                  f"   (median of {args.rounds} alternating rounds)")
            for name, r in results.items():
                print(f"{name:26} {r['p50']:8.2f} {r['p95']:8.2f} {r['rps']:10.0f} {r['rps_concurrent']:10.0f}")
            print(f"\nCPU ms per request (sequential phase): {'service':>8} {'hub':>6} {'proxy':>6} {'postgres':>8} {'total':>6}")
            for name, r in results.items():
                parts = [r.get(f"cpu_{k}", 0.0) for k in ("service", "hub", "proxy", "postgres")]
                print(f"{name:38} {parts[0]:8.2f} {parts[1]:6.2f} {parts[2]:6.2f} {parts[3]:8.2f} {sum(parts):6.2f}")
            h = results["hub GET /hub/api/user"]
            for name in ("catalog search", "catalog search, new each"):
                c = results[name]
                print(f"\nratios {name} / hub: p50 {c['p50'] / h['p50']:.2f}, p95 {c['p95'] / h['p95']:.2f}, "
                      f"throughput seq {c['rps'] / h['rps']:.2f}, throughput x{args.concurrency} {c['rps_concurrent'] / h['rps_concurrent']:.2f}")
            c = results["catalog search"]
            print(f"goal p50 <= 10 ms: {'met' if c['p50'] <= 10 else 'NOT met'}; "
                  f"throughput >= hub: {'met' if c['rps_concurrent'] >= h['rps_concurrent'] else 'NOT met'}")
        finally:
            stop_platform(platform)
            platform.postgres.stop(mode="immediate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
