"""`fan-edge serve` under concurrent clients, with and without dynamic batching, in one run.

The shipped tiny bundle (models/tiny-synthetic) served on localhost; N clients (1, 4, 16
threads, each its own HTTP connection) send 8-frame clips to `fan_8f` for a fixed number of
requests each. Reports throughput and p50/p99 latency per N, for a server with Triton's
dynamic batcher (max batch 16, 2 ms queue delay) and one without. Before timing, answers for a
few clips are checked against `Predictor` on the same clips.

    python benchmarks/serve.py [--requests 400] [--clients 1 4 16]
"""

import argparse
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine  # noqa: E402

from fan_edge.runtime import Predictor  # noqa: E402

BUNDLE = Path("models/tiny-synthetic/bundle")
RESULTS = Path("benchmarks/results/serve.md")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def start(batching: bool) -> tuple[subprocess.Popen, int]:
    import tritonclient.http as http

    port, grpc, metrics = free_ports(3)
    flag = "--batching" if batching else "--no-batching"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fan_edge.cli", "serve", str(BUNDLE), flag, "--http-port",
         str(port), "--grpc-port", str(grpc), "--metrics-port", str(metrics)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    client = http.InferenceServerClient(f"localhost:{port}")
    for _ in range(240):
        try:
            if client.is_model_ready("fan_8f"):
                return proc, port
        except Exception:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit("error: the server did not start in 120 s")


def request(client, module, clip: np.ndarray) -> np.ndarray:
    inp = module.InferInput("clip", [1, *clip.shape], "FP32")
    inp.set_data_from_numpy(clip[None])
    return client.infer("fan_8f", [inp]).as_numpy("logits")[0]


def clips(predictor, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, (n, 8, 40, 48, 3), dtype=np.uint8)
    return [predictor.preprocess(r)[0] for r in raw]


def load(port: int, clients: int, per_client: int, data: list[np.ndarray]) -> dict:
    import tritonclient.http as http

    latencies: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)

    def worker(k):  # tritonclient.http (gevent) wants each client in its own thread
        c = http.InferenceServerClient(f"localhost:{port}")
        mine = []
        try:
            request(c, http, data[0])  # warm the connection
            ready.wait()
            for i in range(per_client):
                t0 = time.perf_counter()
                request(c, http, data[(k + i) % len(data)])
                mine.append((time.perf_counter() - t0) * 1e3)
        except BaseException as e:
            errors.append(e)
            ready.abort()
        finally:
            c.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    ready.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"error: a client failed: {errors[0]}")
    lat = np.array(latencies)
    return {
        "clients": clients,
        "requests": len(lat),
        "throughput": len(lat) / wall,
        "p50": float(np.percentile(lat, 50)),
        "p99": float(np.percentile(lat, 99)),
    }


def main() -> None:
    import tritonclient.http as http

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=400, help="requests per client count")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    args = ap.parse_args()
    predictor = Predictor(BUNDLE)
    sub = predictor.bundle.subnetwork_for(8)
    data = clips(predictor, 16)
    lines = [
        f"machine: {machine()}",
        f"bundle: {BUNDLE} (8-frame clips, {predictor.bundle.input['size']} px), localhost HTTP",
        "",
        "| server | clients | requests | throughput (clips/s) | p50 ms | p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    rows = {}
    for batching in (False, True):
        proc, port = start(batching)
        try:
            c = http.InferenceServerClient(f"localhost:{port}")
            for x in data[:4]:  # the server answers what Predictor answers
                want = predictor.logits(x[None], sub)[0]
                np.testing.assert_allclose(request(c, http, x), want, rtol=1e-5, atol=1e-5)
            c.close()
            for n in args.clients:
                r = load(port, n, max(args.requests // n, 1), data)
                rows[(batching, n)] = r
                name = "dynamic batching" if batching else "no batching"
                lines.append(
                    f"| {name} | {n} | {r['requests']} | {r['throughput']:.0f} | "
                    f"{r['p50']:.1f} | {r['p99']:.1f} |"
                )
                print(lines[-1], flush=True)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    base = rows.get((False, 1))
    top = rows.get((True, max(args.clients)))
    if base and top:
        ratio = top["throughput"] / base["throughput"]
        lines += [
            "",
            f"dynamic batching at {top['clients']} clients / sequential single requests "
            f"(1 client, no batching): {ratio:.2f}x throughput",
        ]
    text = "\n".join(lines) + "\n"
    RESULTS.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
