"""Damaged or mismatched artifacts: a bundle's manifest and its latency profile.

Every damaged file is one FanEdgeError line naming the file and the fix, never a traceback
and never a silently wrong decision; a fuzzer substitutes random JSON into random fields.
"""

import json
import math
import os
import shutil
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fan_edge import FanEdgeError
from fan_edge.bundle import MANIFEST, Bundle, seal
from fan_edge.runtime import Predictor
from fan_edge.runtime.decode_cost import FEATURES
from fan_edge.runtime.profile import (
    PROFILE_FILE,
    default_threads,
    device_name,
    key_of,
    latency_for,
    read_profiles,
    write_profile,
)

# ---------------------------------------------------------------------------- helpers


def _copy(tiny_bundle, dst):
    return shutil.copytree(tiny_bundle, dst)


def _manifest(path) -> dict:
    return json.loads((path / MANIFEST).read_text())


def _write_manifest(path, m: dict, *, sealed: bool = True) -> None:
    (path / MANIFEST).write_text(json.dumps(seal(m) if sealed else m))  # NaN stays NaN


def _one_line_error(fn, match: str, *also: str) -> str:
    with pytest.raises(FanEdgeError, match=match) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg, msg
    for word in also:
        assert word in msg, msg
    return msg


def _profile(size: int = 32, latency=None, **fields) -> dict:
    """A profile as `bench` writes it: this device, ort-cpu, batch 1, default threads."""
    latency = latency or {4: 1.0, 8: 2.0, 16: 4.0}
    stats = {
        str(n): {
            "p50_ms": ms,
            "p90_ms": ms * 1.1,
            "p99_ms": ms * 1.2,
            "runs": 20,
            "clips_per_s": 1e3 / ms,
            "frames_per_s": n * 1e3 / ms,
            "gflops": 0.01,
            "with_decode": {"p50_ms": ms + 1, "p90_ms": ms + 2, "p99_ms": ms + 3, "runs": 20},
        }
        for n, ms in latency.items()
    }
    return {
        "device": device_name("ort-cpu"),
        "backend": "ort-cpu",
        "precision": "fp32",
        "batch": 1,
        "threads": default_threads(),
        "size": size,
        "peak_rss_mb": 100.0,
        "measured": "2025-01-01T00:00:00",
        "subnetworks": stats,
        "decode": {
            "features": list(FEATURES),
            "codecs": {"h264": [0.5] * len(FEATURES)},
            "fit_max_rel_error": {"h264": 0.1},
            "preprocess_ms_per_frame": 0.01,
            "short_side": size,
        },
        **fields,
    }


def _profile_doc(*profiles: dict) -> dict:
    return {"schema_version": 2, "profiles": {key_of(p): p for p in profiles}}


# ---------------------------------------------------------------------------- manifests


def _set(path: str, value):
    """An edit setting `path` ("input/mean", "subnetworks/0/gflops") to `value`."""

    def edit(m):
        *parents, last = path.split("/")
        obj = m
        for p in parents:
            obj = obj[int(p)] if isinstance(obj, list) else obj[p]
        if isinstance(obj, list):
            obj[int(last)] = value
        else:
            obj[last] = value

    return edit


def _delete(path: str):
    def edit(m):
        *parents, last = path.split("/")
        obj = m
        for p in parents:
            obj = obj[int(p)] if isinstance(obj, list) else obj[p]
        del obj[last]

    return edit


def _extra_class(m):
    m["classes"].append("one more")


def _repeat_class(m):
    m["classes"][1] = m["classes"][0]


def _repeat_frames(m):
    m["subnetworks"][1]["frames"] = m["subnetworks"][0]["frames"]


# (id, edit of the parsed manifest (re-sealed after), a word the error must contain)
MANIFEST_CASES = [
    ("one class", _set("classes", ["only"]), "classes"),
    ("no classes", _set("classes", []), "classes"),
    ("class not a string", _set("classes/0", 3), r"classes\[0\]"),
    ("repeated class", _repeat_class, "repeat a class name"),
    ("classes not a list", _set("classes", "a,b"), "classes"),
    ("more classes than the graph outputs", _extra_class, "classes"),
    ("gflops a string", _set("subnetworks/0/gflops", "0.01"), "gflops"),
    ("gflops negative", _set("subnetworks/0/gflops", -1.0), "gflops"),
    ("gflops zero", _set("subnetworks/0/gflops", 0), "gflops"),
    ("gflops NaN", _set("subnetworks/0/gflops", math.nan), "gflops"),
    ("gflops infinite", _set("subnetworks/0/gflops", math.inf), "gflops"),
    ("gflops a bool", _set("subnetworks/0/gflops", True), "gflops"),
    ("frames zero", _set("subnetworks/0/frames", 0), "frames"),
    ("frames a string", _set("subnetworks/0/frames", "4"), "frames"),
    ("frames a float", _set("subnetworks/0/frames", 4.0), "frames"),
    ("frames repeated", _repeat_frames, "repeat a frame count"),
    ("frames do not match the graph", _set("subnetworks/0/frames", 5), "takes .* frames 5"),
    ("trained_frames zero", _set("subnetworks/0/trained_frames", 0), "trained_frames"),
    (
        "trained_frames of another sub-network",
        _set("subnetworks/0/trained_frames", 8),
        r"subnetworks\[0\].trained_frames must be 4 \(.*serving 4 frames",
    ),
    ("model trained_frames missing", _delete("model/trained_frames"), "model.trained_frames"),
    ("model trained_frames repeated", _set("model/trained_frames", [4, 4, 16]), "repeat"),
    ("params zero", _set("subnetworks/0/params", 0), "params"),
    ("params a float", _set("subnetworks/0/params", 1.5), "params"),
    ("max_abs_diff negative", _set("subnetworks/0/max_abs_diff", -1e-5), "max_abs_diff"),
    ("file missing", _delete("subnetworks/0/file"), "file is missing"),
    ("file empty", _set("subnetworks/0/file", ""), "file"),
    ("subnetwork not an object", _set("subnetworks/0", [4, 4]), r"subnetworks\[0\]"),
    ("no subnetworks", _set("subnetworks", []), "subnetworks"),
    ("subnetworks missing", _delete("subnetworks"), "subnetworks is missing"),
    ("size zero", _set("input/size", 0), "input.size"),
    ("size a string", _set("input/size", "32"), "input.size"),
    ("size huge", _set("input/size", 100000), "input.size"),
    ("size does not match the graph", _set("input/size", 16), "input.size 16"),
    ("mean of length 1", _set("input/mean", [0.5]), "input.mean"),
    ("mean NaN", _set("input/mean/1", math.nan), r"input.mean\[1\]"),
    ("mean a string", _set("input/mean/0", "0.5"), r"input.mean\[0\]"),
    ("std zero", _set("input/std/2", 0.0), r"input.std\[2\]"),
    ("std negative", _set("input/std/0", -0.2), r"input.std\[0\]"),
    ("std missing", _delete("input/std"), "input.std is missing"),
    ("scale not 1/255", _set("input/scale", 1.0), "input.scale"),
    ("layout another", _set("input/layout", "BCTHW"), "input.layout"),
    ("color BGR", _set("input/color", "BGR"), "input.color"),
    ("sampling another", _set("input/sampling", "random"), "input.sampling"),
    ("input not an object", _set("input", 32), "input"),
    ("file bytes negative", _set("files/weights.bin", {"bytes": -1, "sha256": "0" * 64}), "bytes"),
    ("file sha256 not hex", _set("files/weights.bin", {"bytes": 1, "sha256": "x" * 64}), "sha256"),
    ("file record a string", _set("files/weights.bin", "abc"), "files"),
    (
        "file outside the bundle",
        _set("files", {"../x": {"bytes": 1, "sha256": "0" * 64}}),
        "inside the bundle",
    ),
    ("weights unknown", _set("weights", "mixed"), "weights"),
    ("shared weights without a file", _set("weights_file", None), "weights_file"),
    ("engines not a list", _set("engines", {"4": "x"}), "engines"),
    ("engine for no sub-network", _set("engines", [{"frames": 5, "file": "e.plan"}]), "engines"),
    ("engine file a number", _set("engines", [{"frames": 4, "file": 7}]), "file"),
    (
        "engine precision",
        _set("engines", [{"frames": 4, "file": "e", "precision": "int3"}]),
        "precision",
    ),
    ("schema_version a string", _set("schema_version", "2"), "schema_version"),
    ("schema_version newer", _set("schema_version", 99), "newer"),
]


@pytest.mark.parametrize(
    "edit,word", [c[1:] for c in MANIFEST_CASES], ids=[c[0] for c in MANIFEST_CASES]
)
def test_damaged_manifest_is_one_line_error(tiny_bundle, tmp_path, edit, word):
    b = _copy(tiny_bundle, tmp_path / "b")
    m = _manifest(b)
    edit(m)
    _write_manifest(b, m)
    _one_line_error(lambda: Bundle(b), word, str(b), "re-export")


@pytest.mark.parametrize(
    "damage,word",
    [
        ("edited", "edited after export"),
        ("hash removed", "manifest_sha256 is missing"),
        ("hash not hex", "manifest_sha256"),
        ("older schema", "older fan-edge"),
        ("not JSON", "not valid JSON"),
        ("NaN as the document", "not a fan-edge bundle manifest"),
        ("deeply nested", "not valid JSON"),
    ],
)
def test_manifest_is_hashed_and_old_ones_are_refused(tiny_bundle, tmp_path, damage, word):
    b = _copy(tiny_bundle, tmp_path / "b")
    m = _manifest(b)
    raw = None
    if damage == "edited":  # a plausible edit: another class name, not re-sealed
        m["classes"][0] = "run"
    elif damage == "hash removed":
        del m["manifest_sha256"]
    elif damage == "hash not hex":
        m["manifest_sha256"] = "sha256:" + m["manifest_sha256"]
    elif damage == "older schema":  # what fan-edge before the manifest hash wrote
        del m["manifest_sha256"]
        m["schema_version"] = 1
    elif damage == "not JSON":
        raw = b'{"schema": "fan-edge-bundle", '
    elif damage == "NaN as the document":
        raw = b"NaN"
    else:
        raw = b"[" * 100_000 + b"]" * 100_000
    if raw is None:
        _write_manifest(b, m, sealed=False)
    else:
        (b / MANIFEST).write_bytes(raw)
    _one_line_error(lambda: Bundle(b), word, MANIFEST)


def test_the_exported_manifest_is_sealed_and_passes(tiny_bundle):
    m = _manifest(tiny_bundle)
    assert m["schema_version"] == 2 and seal(m) == m
    b = Bundle(tiny_bundle)
    assert b.classes == m["classes"] and b.input["size"] == 32


def test_cli_refuses_an_edited_manifest_in_one_line(tiny_bundle, tmp_path, example_video, cli):
    b = _copy(tiny_bundle, tmp_path / "b")
    m = _manifest(b)
    m["input"]["mean"] = [0.5]
    _write_manifest(b, m, sealed=False)
    code, _, err = cli("run", example_video, "--bundle", b)
    assert code == 1 and err.startswith("error:") and err.count("\n") == 1, err
    assert "edited after export" in err
    _write_manifest(b, m)  # re-sealed, as a careful forger would: the schema catches it
    code, _, err = cli("run", example_video, "--bundle", b)
    assert code == 1 and err.startswith("error:") and err.count("\n") == 1, err
    assert "input.mean must be a list of 3" in err


# ---------------------------------------------------------------------------- profiles


@pytest.fixture
def bundle(tiny_bundle, tmp_path):
    return Bundle(_copy(tiny_bundle, tmp_path / "b"))


def _damage_profile(path: str, value):
    """Set `path` ("subnetworks/4/p50_ms") to `value`; `...` deletes it."""

    def edit(p):
        *parents, last = path.split("/")
        obj = p
        for k in parents:
            obj = obj[int(k)] if isinstance(obj, list) else obj[k]
        if value is ...:
            del obj[last]
        elif isinstance(obj, list):
            obj[int(last)] = value
        else:
            obj[last] = value

    return edit


PROFILE_CASES = [
    ("p50 negative", _damage_profile("subnetworks/16/p50_ms", -5.0), "p50_ms"),
    ("p50 zero", _damage_profile("subnetworks/4/p50_ms", 0), "p50_ms"),
    ("p50 NaN", _damage_profile("subnetworks/4/p50_ms", math.nan), "p50_ms"),
    ("p50 infinite", _damage_profile("subnetworks/4/p50_ms", math.inf), "p50_ms"),
    ("p50 a string", _damage_profile("subnetworks/4/p50_ms", "3"), "p50_ms"),
    ("p50 null", _damage_profile("subnetworks/4/p50_ms", None), "p50_ms"),
    ("p50 missing", _damage_profile("subnetworks/4/p50_ms", ...), "p50_ms is missing"),
    ("p99 below p50", _damage_profile("subnetworks/8/p99_ms", 0.5), "out of order"),
    ("runs zero", _damage_profile("subnetworks/4/runs", 0), "runs"),
    ("runs a float", _damage_profile("subnetworks/4/runs", 2.5), "runs"),
    (
        "with_decode negative",
        _damage_profile("subnetworks/4/with_decode/p90_ms", -1),
        "with_decode",
    ),
    (
        "a frame count not in the bundle",
        _damage_profile("subnetworks/5", {"p50_ms": 1}),
        "not a frame count",
    ),
    ("subnetworks a list", _damage_profile("subnetworks", [1.0, 2.0]), "subnetworks"),
    ("subnetworks empty", _damage_profile("subnetworks", {}), "subnetworks is empty"),
    ("a latency as a list", _damage_profile("subnetworks/4", [1.0]), "subnetworks"),
    ("batch zero", _damage_profile("batch", 0), "batch"),
    ("threads a string", _damage_profile("threads", "2"), "threads"),
    ("size negative", _damage_profile("size", -32), "size"),
    ("device missing", _damage_profile("device", ...), "device is missing"),
    ("decode coefficient negative", _damage_profile("decode/codecs/h264/2", -0.1), "h264"),
    ("decode coefficients short", _damage_profile("decode/codecs/h264", [1.0]), "h264"),
    ("decode features not names", _damage_profile("decode/features", [1, 2]), "features"),
    ("decode features empty", _damage_profile("decode/features", []), "features"),
    (
        "decode coefficients fewer than features",
        _damage_profile("decode/features", [*FEATURES, "more"]),
        "h264",
    ),
    (
        "decode preprocess NaN",
        _damage_profile("decode/preprocess_ms_per_frame", math.nan),
        "preprocess_ms_per_frame",
    ),
    ("decode not an object", _damage_profile("decode", 3), "decode"),
]


@pytest.mark.parametrize(
    "edit,word", [c[1:] for c in PROFILE_CASES], ids=[c[0] for c in PROFILE_CASES]
)
def test_damaged_profile_is_one_line_error(bundle, edit, word):
    p = _profile()
    edit(p)
    doc = {"schema_version": 2, "profiles": {key_of(_profile()): p}}
    (bundle.path / PROFILE_FILE).write_text(json.dumps(doc))  # NaN written as the raw text NaN
    _one_line_error(lambda: latency_for(bundle, "ort-cpu"), word, PROFILE_FILE, "fan-edge bench")


@pytest.mark.parametrize(
    "text,word",
    [
        ("", "not valid JSON"),
        ('{"schema_version": 2, "profiles": {', "not valid JSON"),
        ("[]", "JSON object"),
        ("NaN", "JSON object"),
        ('{"profiles": {}}', "schema_version is missing"),
        ('{"schema_version": 3, "profiles": {}}', "newer fan-edge"),
        ('{"schema_version": true, "profiles": {}}', "schema_version"),
        ('{"schema_version": 2, "profiles": []}', "profiles"),
        ('{"schema_version": 2}', "profiles is missing"),
        ('{"schema_version": 2, "profiles": {"x": 1}}', "profiles.x"),
        (
            '{"schema_version": 1, "profiles": {"cpu | ort-cpu | fp32": {"subnetworks": '
            '{"4": {"p50_ms": 1}}}}}',
            "older fan-edge",
        ),
    ],
)
def test_damaged_profile_file_is_one_line_error(bundle, text, word):
    (bundle.path / PROFILE_FILE).write_text(text)
    _one_line_error(lambda: latency_for(bundle, "ort-cpu"), word, PROFILE_FILE, "fan-edge bench")


def test_profile_stored_under_another_key_is_refused(bundle):
    doc = _profile_doc(_profile())
    doc["profiles"] = {key_of(_profile(batch=64)): _profile()}  # says batch 1, filed as 64
    (bundle.path / PROFILE_FILE).write_text(json.dumps(doc))
    _one_line_error(lambda: read_profiles(bundle), "another key", PROFILE_FILE)


def test_bench_at_batch_64_never_replaces_what_run_uses(bundle, example_video):
    """The reported failure: `bench --batch 64` replaced the batch-1 profile, so `run`
    priced 4 frames at 195 ms where batch 1 takes 3 ms."""
    write_profile(bundle, _profile(latency={4: 195.0, 8: 390.0, 16: 780.0}, batch=64))
    pred = Predictor(bundle.path, backend="ort-cpu", budget_for="network")
    _one_line_error(
        lambda: pred.predict(example_video, budget="10ms"),
        "no latency profile for .*batch 1 .*batch 64",
        "fan-edge bench",
    )
    write_profile(bundle, _profile(latency={4: 1.0, 8: 2.0, 16: 3.0}))
    write_profile(bundle, _profile(latency={4: 195.0, 8: 390.0, 16: 780.0}, batch=64))
    assert len(read_profiles(bundle)) == 2
    r = pred.predict(example_video, budget="10ms")
    assert r.frames == 16 and "16 frames at 3 ms" in r.reason
    # another thread count is another profile too
    other = Predictor(
        bundle.path, backend="ort-cpu", budget_for="network", threads=default_threads() + 1
    )
    _one_line_error(
        lambda: other.predict(example_video, budget="10ms"),
        f"{default_threads() + 1} threads",
        "fan-edge bench",
    )


def test_real_bench_writes_its_own_key(bundle):
    from fan_edge.runtime.bench import bench

    write_profile(bundle, _profile(latency={4: 1.0, 8: 2.0, 16: 3.0}))
    prof = bench(bundle.path, backend="ort-cpu", batch=3, iters=1, warmup=0, codecs=())
    assert (prof["batch"], prof["threads"], prof["size"]) == (3, default_threads(), 32)
    profiles = read_profiles(Bundle(bundle.path))
    assert sorted(p["batch"] for p in profiles.values()) == [1, 3]
    assert latency_for(bundle, "ort-cpu") == {4: 1.0, 8: 2.0, 16: 3.0}


def test_old_profile_file_is_replaced_by_the_next_bench(bundle):
    old = {"schema_version": 1, "profiles": {"cpu | ort-cpu | fp32": {"subnetworks": {}}}}
    (bundle.path / PROFILE_FILE).write_text(json.dumps(old))
    write_profile(bundle, _profile())
    assert list(read_profiles(bundle)) == [key_of(_profile())]


def test_decode_costs_of_another_cost_model_ask_for_a_new_bench(bundle, example_video):
    """After an upgrade that changes the decode cost model: the latencies still serve
    network budgets, whole-clip budgets ask for `bench`, and `bench` replaces the profile."""
    from fan_edge.runtime.bench import bench

    old = _profile(latency={4: 1.0, 8: 2.0, 16: 3.0})
    old["decode"]["features"] = ["clip", "seeks", "decoded"]
    old["decode"]["codecs"]["h264"] = [0.5, 0.5, 0.5]
    (bundle.path / PROFILE_FILE).write_text(json.dumps(_profile_doc(old)))
    assert latency_for(bundle, "ort-cpu") == {4: 1.0, 8: 2.0, 16: 3.0}
    network = Predictor(bundle.path, backend="ort-cpu", budget_for="network")
    assert network.predict(example_video, budget="10ms").frames == 16
    _one_line_error(
        lambda: Predictor(bundle.path, backend="ort-cpu").predict(example_video, budget="10s"),
        "another version of fan-edge",
        "fan-edge bench",
    )
    bench(bundle.path, backend="ort-cpu", iters=1, warmup=0, decode_sizes=((96, 64),))
    assert read_profiles(Bundle(bundle.path))[key_of(old)]["decode"]["features"] == list(FEATURES)
    assert Predictor(bundle.path, backend="ort-cpu").predict(example_video, budget="10s").frames


def test_cli_run_refuses_negative_latencies_in_one_line(bundle, example_video, cli):
    """The reported failure: "16 frames at -5 ms" was chosen."""
    p = _profile(latency={4: 1.0, 8: 2.0, 16: 4.0})
    p["subnetworks"]["16"].update(p50_ms=-5.0)
    (bundle.path / PROFILE_FILE).write_text(json.dumps(_profile_doc(p)))
    code, _, err = cli(
        "run", example_video, "--bundle", bundle.path, "--budget", "3ms", "--budget-for", "network"
    )
    assert code == 1 and err.startswith("error:") and err.count("\n") == 1, err
    assert "p50_ms must be a finite number > 0, got -5.0" in err and "fan-edge bench" in err


def test_concurrent_profile_writers_lose_nothing(bundle):
    """60 writers at once, each in its own thread with its own descriptor of the folder
    (flock excludes them as it does processes; threads avoid forking a threaded pytest)."""
    start = threading.Barrier(60)
    errors = []

    def write_one(i):
        try:
            start.wait()
            write_profile(bundle, _profile(device=f"device {i}"))
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    threads = [threading.Thread(target=write_one, args=(i,)) for i in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == [] and not any(t.is_alive() for t in threads)
    devices = {p["device"] for p in read_profiles(bundle).values()}
    assert devices == {f"device {i}" for i in range(60)}
    assert [p.name for p in bundle.path.iterdir() if p.name.startswith(".")] == []


# ---------------------------------------------------------------------------- fuzzing

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda kids: (
        st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3)
    ),
    max_leaves=8,
)


def _paths(obj, prefix=()):
    """Every (key, index) path inside a JSON document."""
    items = (
        obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    )
    for k, v in items:
        yield (*prefix, k)
        yield from _paths(v, (*prefix, k))


def _substitute(doc, path, value):
    """A deep copy of `doc` with `path` set to `value` (or deleted if `value` is ...)."""
    doc = json.loads(json.dumps(doc))
    obj = doc
    for k in path[:-1]:
        obj = obj[k]
    if value is ... and isinstance(obj, dict):
        del obj[path[-1]]
    elif value is ...:
        obj.pop(path[-1])
    else:
        obj[path[-1]] = value
    return doc


@pytest.fixture(scope="module")
def fuzz_bundle(tiny_bundle, tmp_path_factory):
    """A bundle to damage and its valid manifest."""
    return _copy(tiny_bundle, tmp_path_factory.mktemp("fuzz") / "b"), _manifest(tiny_bundle)


# FAN_EDGE_FUZZ=5000 for a longer search; the database is off so no .hypothesis/ is left.
FUZZ = settings(
    max_examples=int(os.environ.get("FAN_EDGE_FUZZ", 200)), deadline=None, database=None
)


@FUZZ
@given(data=st.data(), value=JSON | st.just(...))
def test_fuzzed_manifest_loads_or_is_a_fan_edge_error(fuzz_bundle, data, value):
    folder, original = fuzz_bundle
    path = data.draw(st.sampled_from(sorted(_paths(original), key=str)))
    damaged = _substitute(original, path, value)
    resealed = data.draw(st.integers(0, 3)) > 0  # mostly re-sealed, so the schema is hit
    text = json.dumps(seal(damaged) if resealed else damaged)
    (folder / MANIFEST).write_text(text)
    try:
        b = Bundle(folder)
    except FanEdgeError as e:
        assert "\n" not in str(e)
        return
    # it loaded: what the runtime reads is as the schema promises
    assert len(b.classes) >= 2 and all(s.gflops > 0 for s in b.subnetworks)
    assert len(b.input["mean"]) == 3 and all(s > 0 for s in b.input["std"])


@pytest.fixture(scope="module")
def fuzz_profile_bundle(tiny_bundle, tmp_path_factory):
    return Bundle(_copy(tiny_bundle, tmp_path_factory.mktemp("fuzzp") / "b"))


@FUZZ
@given(data=st.data(), value=JSON | st.just(...))
def test_fuzzed_profile_loads_or_is_a_fan_edge_error(fuzz_profile_bundle, data, value):
    b = fuzz_profile_bundle
    doc = _profile_doc(_profile(), _profile(batch=8))
    path = data.draw(st.sampled_from(sorted(_paths(doc), key=str)))
    (b.path / PROFILE_FILE).write_text(json.dumps(_substitute(doc, path, value)))
    try:
        latency = latency_for(b, "ort-cpu")
    except FanEdgeError as e:
        assert "\n" not in str(e)
        return
    assert latency and all(math.isfinite(ms) and ms > 0 for ms in latency.values())


def test_run_uses_the_profile_of_its_own_thread_count(tiny_bundle, tmp_path, example_video, cli):
    bundle = shutil.copytree(tiny_bundle, tmp_path / "b")
    assert cli("bench", bundle, "--threads", "3", "--iters", "1", "--no-decode")[0] == 0
    run = ["run", example_video, "--bundle", bundle, "--budget", "1s", "--budget-for", "network"]
    code, _, err = cli(*run, "--threads", "3")
    assert code == 0, err
    code, _, err = cli(*run, "--threads", "5")
    assert code == 1 and "no latency profile" in err and "3 threads" in err, err
