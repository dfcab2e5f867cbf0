"""`fan-edge serve` (PyTriton): per-sub-network and routed results equal to `Predictor`,
Triton errors for bad requests without killing the server, `run --server`, clean shutdown."""

import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from fan_edge.runtime import Predictor
from fan_edge.serve.route import route, softmax

pytriton = pytest.importorskip(
    "pytriton", reason="PyTriton is not installed (pip install 'fan-edge[serve]')"
)
httpclient = pytest.importorskip("tritonclient.http")
grpcclient = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@pytest.fixture(scope="module")
def server(tiny_bundle):
    """`fan-edge serve` in its own process, as a user starts it."""
    http, grpc, metrics = free_ports(3)
    proc = subprocess.Popen(
        [sys.executable, "-m", "fan_edge.cli", "serve", str(tiny_bundle), "--http-port",
         str(http), "--grpc-port", str(grpc), "--metrics-port", str(metrics)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    client = httpclient.InferenceServerClient(f"localhost:{http}")
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if client.is_server_ready() and client.is_model_ready("fan"):
                break
        except Exception:
            pass
        if proc.poll() is not None:
            pytest.fail(f"the server exited: {proc.stderr.read()[-2000:]}")
        time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail("the server did not become ready in 120 s")
    yield {"proc": proc, "http": http, "grpc": grpc, "client": client}
    client.close()
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def clip_of(predictor, frames: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, (frames, 40, 48, 3), dtype=np.uint8)
    return predictor.preprocess(raw)[0]  # (T, 3, S, S)


def infer(client, module, model, inputs: dict, outputs: list[str]):
    ins = []
    for name, value in inputs.items():
        dtype = "BYTES" if value.dtype == object else "FP32"
        i = module.InferInput(name, list(value.shape), dtype)
        i.set_data_from_numpy(value)
        ins.append(i)
    result = client.infer(model, ins)
    return [result.as_numpy(o) for o in outputs]


def test_each_subnetwork_model_gives_the_predictors_logits_batched(server, tiny_bundle):
    predictor = Predictor(tiny_bundle)
    client = server["client"]
    for sub in predictor.bundle.subnetworks:
        clips = np.stack([clip_of(predictor, sub.frames, seed) for seed in range(3)])
        (logits,) = infer(client, httpclient, f"fan_{sub.frames}f", {"clip": clips}, ["logits"])
        np.testing.assert_allclose(logits, predictor.logits(clips, sub), rtol=1e-5, atol=1e-5)


def test_concurrent_requests_batched_together_each_get_their_own_answer(server, tiny_bundle):
    """16 clients at once: Triton stacks their clips into batches (the engine runs them as
    one); each client must get the logits of its own clip."""
    import threading

    predictor = Predictor(tiny_bundle)
    sub = predictor.bundle.subnetwork_for(8)
    clips = [clip_of(predictor, 8, seed) for seed in range(16)]
    got, errors = {}, []
    start = threading.Barrier(16)

    def client(k):
        c = httpclient.InferenceServerClient(f"localhost:{server['http']}")
        try:
            start.wait()
            for _ in range(3):
                (z,) = infer(c, httpclient, "fan_8f", {"clip": clips[k][None]}, ["logits"])
                got.setdefault(k, []).append(z[0])
        except BaseException as e:
            errors.append(e)
        finally:
            c.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    want = predictor.logits(np.stack(clips), sub)
    for k in range(16):
        for z in got[k]:
            np.testing.assert_allclose(z, want[k], rtol=1e-5, atol=1e-5)


def test_the_router_answers_any_frame_count_as_the_runtime_rule_does(server, tiny_bundle):
    predictor = Predictor(tiny_bundle)
    client = grpcclient.InferenceServerClient(f"localhost:{server['grpc']}")  # gRPC too
    try:
        for frames, budget in [(8, None), (11, None), (32, None), (16, "4frames"), (16, None)]:
            clip = clip_of(predictor, frames, seed=frames)
            inputs = {"clip": clip}
            if budget:
                inputs["budget"] = np.array([budget.encode()], dtype=object)
            label, probs, ran, reason = infer(
                client, grpcclient, "fan", inputs, ["label", "probs", "frames", "reason"]
            )
            sub, taken, why = route(predictor, clip, budget)
            want = softmax(predictor.logits(taken[None], sub)[0])
            assert int(ran[0]) == sub.frames and reason[0].decode() == why
            np.testing.assert_allclose(probs, want, rtol=1e-5, atol=1e-6)
            assert label[0].decode() == predictor.bundle.classes[int(want.argmax())]
    finally:
        client.close()


@pytest.mark.parametrize(
    "model, inputs, message",
    [
        ("fan_8f", {"clip": np.zeros((1, 4, 3, 32, 32), np.float32)}, "shape"),
        ("fan_8f", {"clip": np.zeros((1, 8, 3, 32, 32), np.float64)}, "FP64"),
        ("fan_99f", {"clip": np.zeros((1, 99, 3, 32, 32), np.float32)}, "fan_99f"),
        (
            "fan",
            {
                "clip": np.zeros((8, 3, 32, 32), np.float32),
                "budget": np.array([b"0.0001gflops"], dtype=object),
            },
            "nothing fits 0.0001 GFLOPs",
        ),
        (
            "fan",
            {
                "clip": np.zeros((8, 3, 32, 32), np.float32),
                "budget": np.array([b"soon"], dtype=object),
            },
            "cannot read budget 'soon'",
        ),
    ],
)
def test_bad_requests_get_triton_errors_and_the_server_goes_on(server, model, inputs, message):
    client = server["client"]
    ins = []
    for name, value in inputs.items():
        dtype = {np.float32: "FP32", np.float64: "FP64"}.get(value.dtype.type, "BYTES")
        i = httpclient.InferInput(name, list(value.shape), dtype)
        i.set_data_from_numpy(value)
        ins.append(i)
    with pytest.raises(InferenceServerException, match=message):
        client.infer(model, ins)
    assert client.is_server_live() and client.is_model_ready("fan")
    assert server["proc"].poll() is None


def test_run_with_server_gives_the_local_answer(server, tiny_bundle, example_video, cli):
    import json

    code, out, err = cli(
        "run", example_video, "--bundle", tiny_bundle, "--budget", "8frames", "--json"
    )
    assert code == 0, err
    code, remote_out, err = cli(
        "run", example_video, "--bundle", tiny_bundle, "--budget", "8frames", "--json",
        "--server", f"http://localhost:{server['http']}",
    )  # fmt: skip
    assert code == 0, err
    here, there = json.loads(out)[0], json.loads(remote_out)[0]
    assert there["labels"] == here["labels"] and there["frames"] == 8
    np.testing.assert_allclose(there["probs"], here["probs"], rtol=1e-5, atol=1e-6)
    assert there["backend"].startswith("triton")


def test_run_with_server_refuses_what_only_a_local_engine_has(
    server, tiny_bundle, example_video, cli
):
    url = f"http://localhost:{server['http']}"
    for args, message in [
        (["--precision", "int8"], "--precision is the server's to choose"),
        (["--budget", "15ms"], "a latency budget needs this device's profile"),
    ]:
        code, _, err = cli("run", example_video, "--bundle", tiny_bundle, "--server", url, *args)
        assert code == 1 and message in err, err


def test_run_with_an_unreachable_server_is_one_line(tiny_bundle, example_video, cli):
    (port,) = free_ports(1)
    server = f"localhost:{port}"
    code, _, err = cli("run", example_video, "--bundle", tiny_bundle, "--server", server)
    assert code == 1 and err.startswith("error: cannot reach the server at")
    assert err.count("\n") == 1


def test_a_port_in_use_is_a_one_line_error(tiny_bundle, server, cli):
    code, _, err = cli("serve", tiny_bundle, "--port", str(server["http"]))
    assert code == 1 and f"port {server['http']} is in use" in err and err.count("\n") == 1


def test_sigterm_stops_the_server_cleanly(server):
    """Last in this file: the module's server is stopped here."""
    proc = server["proc"]
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    assert "stopping" in out
