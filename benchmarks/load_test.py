"""Load test of `edgekd serve` on 127.0.0.1 (asyncio + httpx; bounded, stops by itself).

    .venv/bin/python benchmarks/load_test.py bundles/sst2-quick --data ../shared/data/sst2/dev.tsv

For 1, 16 and 64 concurrent clients, each sending one text per request: requests/s, p50/p99 latency,
errors; the server's RSS before and after the whole run (>= 100k requests); the load generator's own CPU
share (it shares the 2 cores); beside the in-process numbers of the same bundle at the same speed (one
text per call, and batch 32), and the server with --max-batch 1 (no cross-request batching) at 64 clients.
Writes benchmarks/results/<stem>.json and .md (stem load_test). A bundle of text pairs is loaded with a pair
file (e.g. ../shared/data/qqp/dev.tsv): each request then carries one [text, text_pair].
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_server(bundle: str, max_batch: int, threads: int | None = None) -> tuple[subprocess.Popen, str]:
    port = free_port()
    extra = ["--threads", str(threads)] if threads else []
    proc = subprocess.Popen([sys.executable, "-m", "edgekd.cli", "serve", bundle, "--port", str(port),
                             "--max-batch", str(max_batch), *extra], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("the server did not become ready within 60 s")


async def load(url: str, texts: list[str], clients: int, requests: int) -> dict:
    """`clients` keep-alive connections, each sending its next request when the last is answered (aiohttp:
    httpx's client used ~85% of a core at 64 connections and could not keep them busy)."""
    import aiohttp

    latencies: list[float] = []
    errors = 0
    sent = 0
    bodies = [json.dumps({"texts": [t]}).encode() for t in texts]
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(url, connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as client:
        async def worker(offset: int) -> None:
            nonlocal sent, errors
            while sent < requests:
                i = sent
                sent += 1
                start = time.perf_counter()
                try:
                    async with client.post("/v1/classify", data=bodies[(i + offset) % len(bodies)],
                                           headers=headers) as r:
                        await r.read()
                        if r.status != 200:
                            errors += 1
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    errors += 1
                latencies.append(time.perf_counter() - start)

        cpu0, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        wall, cpu1 = time.perf_counter() - began, resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    latencies.sort()
    return {"clients": clients, "requests": len(latencies), "errors": errors, "requests_per_s": len(latencies) / wall,
            "p50_ms": 1e3 * statistics.median(latencies), "p99_ms": 1e3 * latencies[int(0.99 * (len(latencies) - 1))],
            "load_generator_cpu_share_of_2_cores": cpu / wall / (os.cpu_count() or 1)}


def in_process(bundle: str, texts: list[str], speed: float) -> dict:
    import runtime

    model = runtime.load(bundle, warmup=True)
    for t in texts[:20]:
        model.classify([t], speed=speed)
    one = []
    for t in texts[:300]:
        start = time.perf_counter()
        model.classify([t], speed=speed)
        one.append(time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(0, len(texts), 32):
        model.classify(texts[i : i + 32], speed=speed, batch_size=32)
    rate = len(texts) / (time.perf_counter() - start)
    return {"p50_ms_one_text": 1e3 * statistics.median(one), "texts_per_s_batch32": rate, "speed": speed,
            "engine": model.engine}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("bundle")
    parser.add_argument("--data", required=True)
    parser.add_argument("--total", type=int, default=100_000, help="requests over the whole run (>= 100k)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--stem", default="load_test", help="file name stem of the results (load_test_qqp for pairs)")
    args = parser.parse_args()
    from edgekd.data import read_labelled
    import runtime

    texts = read_labelled(args.data).texts
    speed = runtime.read_manifest(args.bundle).default_speed
    reference = in_process(args.bundle, texts, speed)
    print("in-process:", reference, flush=True)
    proc, url = start_server(args.bundle, max_batch=32)
    runs = []
    try:
        # warm-up at the highest concurrency, so that onnxruntime's arena has met the largest batches
        # before RSS is read (else its one-time growth reads as a leak)
        asyncio.run(load(url, texts, 64, 3000))
        rss_before = rss_mb(proc.pid)
        shares = {1: 0.1, 16: 0.3, 64: 0.6}
        for clients, share in shares.items():
            runs.append(asyncio.run(load(url, texts, clients, int(args.total * share))))
            print(runs[-1], flush=True)
        rss_after = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    proc, url = start_server(args.bundle, max_batch=1)
    try:
        alone = asyncio.run(load(url, texts, 64, 5000))
        print("max-batch 1:", alone, flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
    by = {r["clients"]: r for r in runs}
    result = {
        "bundle": args.bundle, "speed": speed, "in_process": reference, "runs": runs, "no_batching_64_clients": alone,
        "server_rss_mb": {"before": rss_before, "after": rss_after, "growth": rss_after / rss_before - 1,
                          "requests_between": sum(r["requests"] for r in runs)},
        "targets": {
            "overhead_p50_ms_1_client": by[1]["p50_ms"] - reference["p50_ms_one_text"],
            "throughput_64_vs_in_process_b32": by[64]["requests_per_s"] / reference["texts_per_s_batch32"],
            "p99_ms_64_clients": by[64]["p99_ms"],
            "errors": sum(r["errors"] for r in runs),
            "batching_gain_64_clients": by[64]["requests_per_s"] / alone["requests_per_s"],
        },
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.stem}.json").write_text(json.dumps(result, indent=2) + "\n")
    t = result["targets"]
    item = "text pair" if texts and isinstance(texts[0], tuple) else "text"
    lines = [f"### edgekd serve {Path(args.bundle).name}, one {item} per request, speed {speed:g} "
             f"({reference['engine']} engine), 2 cores shared by server and load generator", "",
             "| clients | requests | errors | requests/s | p50 ms | p99 ms | load generator CPU (share of 2 cores) |",
             "|---|---|---|---|---|---|---|"]
    for r in runs + [dict(alone, clients="64, --max-batch 1")]:
        lines.append(f"| {r['clients']} | {r['requests']} | {r['errors']} | {r['requests_per_s']:.0f} | "
                     f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {100 * r['load_generator_cpu_share_of_2_cores']:.0f}% |")
    lines += ["", f"In process, same bundle and speed: {reference['p50_ms_one_text']:.3f} ms p50 for one text; "
              f"{reference['texts_per_s_batch32']:.0f} texts/s at batch 32.", "",
              f"- server overhead at 1 client (p50): {t['overhead_p50_ms_1_client']:.2f} ms (target <= 1 ms)",
              f"- 64 clients: {100 * t['throughput_64_vs_in_process_b32']:.0f}% of in-process batch-32 throughput "
              f"(target >= 50%), p99 {t['p99_ms_64_clients']:.1f} ms (target <= 50), errors {t['errors']}",
              f"- cross-request batching vs --max-batch 1 at 64 clients: {t['batching_gain_64_clients']:.2f}x",
              f"- server RSS {rss_before:.0f} -> {rss_after:.0f} MB over {result['server_rss_mb']['requests_between']} "
              f"requests ({100 * result['server_rss_mb']['growth']:+.1f}%, target < 5%)"]
    (out / f"{args.stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
