#!/usr/bin/env python3
"""Runs the side-by-side benchmark (see scripts/bench) and writes
docs/performance.md and docs/performance.svg. Ratios, not absolute times,
are the result: the machines are shared and noisy."""

import glob
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import confluent_kafka
import fastavro
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = (ROOT / "tests/data/ztf").resolve()
BIN = ROOT / "target/release/alertstream"
TRANSPORT = ROOT / "target/release/examples/transport"
PY = sys.executable
BROKERS = os.environ.get("ALERTSTREAM_BROKERS", "127.0.0.1:9092")
QUICK = "--quick" in sys.argv
# --only simulate|dialects|view|record: just those rows (docs/performance.md keeps the rest)
ONLY = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
VISIT = 2000 if QUICK else 10000
SCALE = [1000, 5000] if QUICK else [1000, 10000, 100000]
RUN_ID = time.strftime("%H%M%S")
admin = AdminClient({"bootstrap.servers": BROKERS})


def topic(name):
    t = f"bench-{name}-{RUN_ID}"
    futures = admin.create_topics([NewTopic(t, num_partitions=1, replication_factor=1)])
    for f in futures.values():
        f.result()
    return t


def drop(*topics):
    for f in admin.delete_topics(list(topics)).values():
        try:
            f.result()
        except Exception:
            pass


def capture(cmd):
    """Runs a command; returns (stdout, stderr, peak RSS in MB)."""
    proc = subprocess.run(["/usr/bin/time", "-f", "maxrss_kb=%M cpu_s=%U+%S"] + [str(c) for c in cmd],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, RUST_LOG="info"))
    if proc.returncode:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{proc.stderr[-2000:]}")
    rss = int(re.findall(r"maxrss_kb=(\d+)", proc.stderr)[-1]) / 1024
    return proc.stdout, proc.stderr, rss


def last_json(text):
    return json.loads([l for l in text.splitlines() if l.startswith("{")][-1])


def alertstream_send(t, count, files):
    args = [BIN, "send", t, str(count)]
    for f in files:
        args += ["--alerts", f]
    _, log, rss = capture(args)
    m = re.search(r"visit 1/1: (\d+) alert\(s\) delivered in ([\d.]+)s \(\d+ alerts/s, ([\d.]+) MB/s\)", log)
    seconds = float(m.group(2))
    return {"seconds": seconds, "alerts": int(m.group(1)), "bytes": float(m.group(3)) * 1e6 * seconds, "rss": rss}


def python_send(t, count, files):
    out, _, rss = capture([PY, ROOT / "scripts/baseline.py", "send", "--brokers", BROKERS, "--topic", t,
                           "--count", count] + files)
    return dict(last_json(out), rss=rss)


def transport_send(t, count, files):
    out, _, rss = capture([TRANSPORT, "produce", t, count] + files)
    return dict(last_json(out), rss=rss)


def versions():
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    pom = (ROOT / "scripts/kafka-pom/pom.xml").read_text()
    kafka = re.search(r"<kafka.version>(.*)</kafka.version>", pom).group(1)
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {cpu}",
        "os": platform.platform(),
        "rustc": rustc,
        "kafka": f"Apache Kafka {kafka} (KRaft, 1 broker on this machine)",
        "librdkafka": f"{confluent_kafka.libversion()[0]} (Python), 2.12.1 bundled by rdkafka-sys (alertstream)",
        "python": f"Python {platform.python_version()}, fastavro {fastavro.__version__}, confluent-kafka {confluent_kafka.__version__}",
    }


def criterion(name):
    path = ROOT / f"target/criterion/ztf-fixtures/{name}/new/estimates.json"
    ns = json.loads(path.read_text())["mean"]["point_estimate"]
    return 20 / (ns * 1e-9)  # an iteration is the 20 fixture alerts


def main():
    if ONLY in ("simulate", "dialects", "view", "record"):
        r = json.loads((ROOT / "docs/performance.json").read_text())
        r[ONLY] = {"simulate": simulate_vs_samples, "dialects": dialects, "view": view_bench,
                   "record": record_alone}[ONLY]()
        write_docs(r)
        return
    fixtures = sorted(glob.glob(str(FIXTURES / "*.avro")))
    v31 = sorted(glob.glob(str(FIXTURES / "v3.1_*.avro")))
    results = {"visit": VISIT, "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    print(f"visit of {VISIT} alerts (the 20 ZTF fixtures cycled)", flush=True)

    # Codec, one core: criterion's numbers and fastavro's on the same 20 alerts.
    py = json.loads(subprocess.run([PY, ROOT / "scripts/baseline.py", "codec", "--seconds", "3"] + fixtures,
                                   capture_output=True, text=True, check=True).stdout)
    results["codec"] = {
        "encode": criterion("encode"), "decode": criterion("decode"),
        "decode_json": criterion("decode-to-json"),
        "py_encode": py["encode_per_s"], "py_decode": py["decode_per_s"],
    }
    print("codec", json.dumps(results["codec"]), flush=True)

    # Send one visit: same alerts, same producer settings, one fresh topic each.
    # alertstream and transport-only alternate three times (the median counts):
    # their difference is small and the machine is noisy.
    runs = {"alertstream": [], "transport": []}
    for i in range(3):
        for name, fn in (("alertstream", alertstream_send), ("transport", transport_send)):
            t = topic(f"send-{name}-{i}")
            runs[name].append(fn(t, VISIT, fixtures))
            drop(t)
            print("send", name, json.dumps(runs[name][-1]), flush=True)
    send = {name: sorted(r, key=lambda x: x["seconds"])[1] for name, r in runs.items()}
    t = topic("send-python")
    send["python"] = python_send(t, VISIT, fixtures)
    drop(t)
    print("send python", json.dumps(send["python"]), flush=True)
    results["send"] = send

    # Consume one visit, schemaless, one schema (the four v3.1 fixtures cycled).
    t = topic("consume")
    subprocess.run([TRANSPORT, "produce", t, str(VISIT)] + v31, check=True, capture_output=True)
    schema = ROOT / "target/bench-v3.1.avsc"
    with open(v31[0], "rb") as f:
        schema.write_text(json.dumps(fastavro.reader(f).writer_schema))
    def alertstream_consume(group):
        _, log, rss = capture([BIN, "print", t, "--group", group, "-e", "--schema", schema])
        m = re.search(r"printed (\d+) alert\(s\) from \d+ message\(s\) in ([\d.]+)s", log)
        return {"seconds": float(m.group(2)), "alerts": int(m.group(1)), "rss": rss}

    def transport_consume(group):
        out, _, rss = capture([TRANSPORT, "consume", t, VISIT, group])
        return dict(last_json(out), rss=rss)

    # alertstream and transport-only alternate three times (the median counts).
    runs = {"alertstream": [], "transport": []}
    for i in range(3):
        runs["alertstream"].append(alertstream_consume(f"as-{i}"))
        runs["transport"].append(transport_consume(f"tr-{i}"))
    consume = {name: sorted(r, key=lambda x: x["seconds"])[1] for name, r in runs.items()}
    _, log, rss = capture([PY, ROOT / "scripts/baseline.py", "consume", "--brokers", BROKERS, "--topic", t,
                           "--count", VISIT, "--group", "py", "--schema", schema])
    consume["python"] = dict(last_json(log), rss=rss)
    for name, r in consume.items():
        print("consume", name, json.dumps(r), flush=True)
    results["consume"] = consume
    results["record"] = record_vs_print(t, schema)
    results["filter"] = filter_vs_print(t, schema)
    results["overhead"] = metrics_overhead(t, schema, fixtures)
    results["kcat"] = kcat_vs_print(t, schema)
    drop(t)
    results["replay"] = replay_gaps()
    results["simulate"] = simulate_vs_samples()
    results["dialects"] = dialects()
    results["view"] = view_bench()

    # Scale: one visit of growing size.
    scale = []
    for n in SCALE:
        t = topic(f"scale-{n}")
        r = alertstream_send(t, n, fixtures)
        drop(t)
        scale.append(dict(r, visit=n))
        print("scale", json.dumps(scale[-1]), flush=True)
    results["scale"] = scale
    results["versions"] = versions()
    write_docs(results)


def machine_cpu():
    """(busy, idle) CPU-seconds of the whole machine so far (Linux /proc/stat;
    None elsewhere)."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:8]]
    except OSError:
        return None
    hz = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq = ticks
    return ((user + nice + system + irq + softirq) / hz, (idle + iowait) / hz)


def timed(cmd):
    """Whole-process wall time, peak RSS and CPU of a command, its stdout to
    /dev/null; and the whole machine's busy and idle CPU meanwhile (the broker
    included)."""
    machine = machine_cpu()
    start = time.monotonic()
    proc = subprocess.run(["/usr/bin/time", "-f", "maxrss_kb=%M cpu_s=%U+%S"] + [str(c) for c in cmd],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env=dict(os.environ, RUST_LOG="info"))
    seconds = time.monotonic() - start
    after = machine_cpu()
    busy, idle = ((after[0] - machine[0], after[1] - machine[1]) if machine and after
                  else (None, None))
    if proc.returncode:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{proc.stderr[-2000:]}")
    rss = int(re.findall(r"maxrss_kb=(\d+)", proc.stderr)[-1]) / 1024
    user, system = map(float, re.findall(r"cpu_s=([0-9.]+)\+([0-9.]+)", proc.stderr)[-1])
    return {"seconds": seconds, "rss": rss, "user": user, "sys": system, "busy": busy,
            "idle": idle, "alerts": VISIT,
            "log": proc.stderr[-300:]}


def record_alone():
    """The record rows on their own: one visit of the four v3.1 fixtures
    cycled, as the full run's consume topic."""
    v31 = sorted(glob.glob(str(FIXTURES / "v3.1_*.avro")))
    t = topic("record")
    subprocess.run([TRANSPORT, "produce", t, str(VISIT)] + v31, check=True, capture_output=True)
    schema = ROOT / "target/bench-v3.1.avsc"
    with open(v31[0], "rb") as f:
        schema.write_text(json.dumps(fastavro.reader(f).writer_schema))
    result = record_vs_print(t, schema)
    drop(t)
    return result


def record_vs_print(t, schema):
    """print, record --format avro (to disk, and to a tmpfs) and --format
    parquet of the same topic, same stop condition (-e), whole process;
    alternating, median of 5. Record writes every alert whole, cutouts
    included, and fsyncs it: on disk the device's write speed shows."""
    import shutil
    import tempfile
    outs = []

    def make(name, i):
        # The previous run's archive goes first: its dirty pages would
        # otherwise be written back during this run.
        for out in outs:
            shutil.rmtree(out, ignore_errors=True)
        if name == "print":
            return [BIN, "print", t, "--group", f"rp-{name}-{i}", "-e", "--schema", schema]
        base = "/dev/shm" if name.endswith("-tmpfs") and os.path.isdir("/dev/shm") else None
        out = tempfile.mkdtemp(prefix="bench-record-", dir=base)
        outs.append(out)
        return [BIN, "record", t, "--group", f"rp-{name}-{i}", "-e", "--schema", schema,
                "--out", out, "--format", name.split("-")[0]]
    result = alternate({"print": [], "avro": [], "avro-tmpfs": [], "parquet": [], "parquet-tmpfs": []}, make, rounds=5)
    for out in outs:
        shutil.rmtree(out, ignore_errors=True)
    return result


PURITY = ("candidate.rb >= 0.65 && candidate.nbad == 0 && candidate.fwhm <= 5.0 "
          "&& candidate.elong <= 1.2 && abs(candidate.magdiff) <= 0.1")


def alternate(runs, make, rounds=3):
    """Runs each named command `rounds` times, alternating; the median of each."""
    for i in range(rounds):
        for name in runs:
            runs[name].append(timed(make(name, i)))
            print("bench", name, json.dumps({k: v for k, v in runs[name][-1].items() if k != "log"}), flush=True)
    return {name: sorted(r, key=lambda x: x["seconds"])[rounds // 2] for name, r in runs.items()}


def filter_vs_print(t, schema):
    """filter with ZTF's purity cut vs print of the same topic, -e, whole process."""
    def make(name, i):
        if name == "print":
            return [BIN, "print", t, "--group", f"fp-{i}", "-e", "--schema", schema]
        return [BIN, "filter", t, "--group", f"ff-{i}", "-e", "--schema", schema,
                "--where", PURITY, "--to", f"{t}-pure-{i}"]
    return alternate({"print": [], "filter": []}, make, rounds=5)


def metrics_overhead(t, schema, fixtures):
    """print and send with and without --metrics, alternating, same work."""
    def make_print(name, i):
        extra = ["--metrics", "127.0.0.1:0"] if name == "with" else []
        return [BIN] + extra + ["print", t, "--group", f"mo-{name}-{i}", "-e", "--schema", schema]
    consume = alternate({"without": [], "with": []}, make_print)
    sends = {"without": [], "with": []}
    for i in range(3):
        for name in sends:
            target = topic(f"mo-send-{name}-{i}")
            args = [BIN] + (["--metrics", "127.0.0.1:0"] if name == "with" else []) + ["send", target, str(VISIT)]
            for f in fixtures:
                args += ["--alerts", f]
            sends[name].append(timed(args))
            drop(target)
    send = {name: sorted(r, key=lambda x: x["seconds"])[1] for name, r in sends.items()}
    return {"print": consume, "send": send}


def kcat_vs_print(t, schema):
    """print -e against kcat -C -e dumping the same topic, whole process."""
    def make(name, i):
        if name == "kcat":
            return ["kcat", "-C", "-e", "-q", "-b", BROKERS, "-t", t, "-o", "beginning"]
        return [BIN, "print", t, "--group", f"kc-{i}", "-e", "--schema", schema]
    return alternate({"print": [], "kcat": []}, make)


def replay_gaps():
    """Records 5 visits of 200 alerts 2 s apart, replays them at --speed 1,
    and compares each replayed alert's broker time with its recorded one."""
    import tempfile
    source, replayed = topic("replay-source"), topic("replay-target")
    capture([BIN, "send", source, "200", "--no-stamps", "--repeat", "--interval", "2", "--max-repeats", "5"])
    out = tempfile.mkdtemp(prefix="bench-replay-")
    capture([BIN, "record", source, "--out", out, "-e", "--group", "replay"])
    capture([BIN, "send", replayed, "--alerts", out, "--pace", "recorded"])
    def times(topic_name):
        text, _, _ = capture([BIN, "print", topic_name, "--meta", "-e", "--group", "gaps"])
        return [json.loads(l)["_kafka"]["timestamp"] for l in text.splitlines()]
    recorded, sent = times(source), times(replayed)
    errors = [abs((s - sent[0]) - (r - recorded[0])) for r, s in zip(recorded, sent)]
    drop(source, replayed)
    result = {"alerts": len(sent), "max_error_ms": max(errors), "mean_error_ms": sum(errors) / len(errors),
              "span_ms": recorded[-1] - recorded[0]}
    print("replay", json.dumps(result), flush=True)
    return result


def rubin_schema():
    out = subprocess.run([PY, ROOT / "tests/peer/registry_peer.py", "schema-root"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return Path(out) / "11" / "1"


def simulate_vs_samples():
    """send --simulate against sending pre-encoded alerts of the same survey
    (ZTF: the built-in samples; Rubin: 12 simulated alerts written to a file
    first), with and without cutouts; same COUNT, same fresh topic settings,
    whole process, median of three alternating runs. Then a 100,000-alert
    visit without cutouts, and the peak RSS of 20 visits with 20,000 and with
    1,000,000 objects (nothing is kept per object)."""
    rubin = rubin_schema()
    made = ROOT / "target/bench-rubin-samples"
    subprocess.run(["rm", "-rf", made], check=True)
    subprocess.run([BIN, "simulate", "rubin", "12", "--out", made, "--schema", rubin], check=True,
                   capture_output=True)
    out = {}
    for survey, samples, extra in (("ztf", [], []), ("rubin", ["--alerts", made], ["--schema", rubin])):
        for stamps in ([], ["--no-stamps"]):
            runs = {"samples": [], "simulated": []}
            for i in range(3):
                for name in runs:
                    t = topic(f"sim-{survey}-{name}-{i}")
                    args = [BIN, "send", t, VISIT] + stamps
                    args += samples if name == "samples" else ["--simulate", survey] + extra
                    runs[name].append(timed(args))
                    drop(t)
            key = f"{survey}{'-no-stamps' if stamps else ''}"
            out[key] = {name: sorted(r, key=lambda x: x["seconds"])[1] for name, r in runs.items()}
            print("simulate", key, json.dumps({k: (v["seconds"], v["rss"]) for k, v in out[key].items()}),
                  flush=True)
    big = 20000 if QUICK else 100000
    for survey, extra in (("ztf", []), ("rubin", ["--schema", rubin])):
        t = topic(f"sim-big-{survey}")
        out[f"{survey}-big"] = dict(timed([BIN, "send", t, big, "--simulate", survey, "--no-stamps"] + extra),
                                    alerts=big)
        drop(t)
        print("simulate big", survey, out[f"{survey}-big"]["seconds"], flush=True)
    for objects in (20000, 1000000):
        dest = ROOT / "target/bench-sim-objects"
        subprocess.run(["rm", "-rf", dest], check=True)
        out[f"objects-{objects}"] = timed([BIN, "simulate", "ztf", "1000", "--objects", objects, "--visits", 20,
                                           "--no-stamps", "--out", dest])
        subprocess.run(["rm", "-rf", dest], check=True)
    return out


def dialects():
    """print of the same alerts (the four v3.1 fixtures cycled, two visits,
    cutouts included) framed
    key-schema (the schema parsed from each key, once per distinct key) and
    schemaless (--schema); and print of the schemaless topic with and without
    --dead-letter, nothing refused. -e, whole process, median of five
    alternating runs."""
    v31 = sorted(glob.glob(str(FIXTURES / "v3.1_*.avro")))
    files = [a for f in v31 for a in ("--alerts", f)]
    schema = ROOT / "target/bench-v3.1.avsc"
    with open(v31[0], "rb") as f:
        schema.write_text(json.dumps(fastavro.reader(f).writer_schema))
    keyed, bare = topic("dialect-key-schema"), topic("dialect-schemaless")
    # Two visits, cutouts included, as Fink's streams carry them: a run of
    # one is mostly the group join.
    capture([BIN, "send", keyed, 2 * VISIT, "--format", "key-schema"] + files)
    capture([BIN, "send", bare, 2 * VISIT] + files)

    def make(name, i):
        group = ["--group", f"dl-{name}-{i}", "-e"]
        if name == "key-schema":
            return [BIN, "print", keyed] + group
        if name == "same-bytes":
            # The key-schema topic itself read as schemaless (its values are
            # bare Avro; the keys are fetched and ignored): the same bytes
            # from the broker, so the difference is the decoding alone.
            return [BIN, "print", keyed, "--format", "schemaless", "--schema", schema] + group
        extra = ["--dead-letter", f"{bare}-dead"] if name == "dead-letter" else []
        return [BIN, "print", bare, "--schema", schema] + group + extra
    result = alternate({"schemaless": [], "key-schema": [], "same-bytes": [], "dead-letter": []},
                       make, rounds=5)
    drop(keyed, bare, f"{bare}-dead")
    return result


def view_bench():
    """view vs print of one visit (the four v3.1 fixtures cycled, cutouts
    included), both from the topic's start outside any group (--from @0 -e),
    whole process (both exit once every partition is read), view keeping all
    (--keep 10000) and one (--keep 1); alternating, median of five.
    Then the page in headless chromium with 2,000 alerts kept: milliseconds
    from navigation until the table holds all 2,000 rows."""
    v31 = sorted(glob.glob(str(FIXTURES / "v3.1_*.avro")))
    schema = ROOT / "target/bench-v3.1.avsc"
    with open(v31[0], "rb") as f:
        schema.write_text(json.dumps(fastavro.reader(f).writer_schema))
    t = topic("view")
    subprocess.run([TRANSPORT, "produce", t, str(VISIT)] + v31, check=True, capture_output=True)
    view = [BIN, "view", t, "--from", "@0", "-e", "--listen", "127.0.0.1:0", "--schema", schema]

    def make(name, i):
        if name == "print":
            return [BIN, "print", t, "--from", "@0", "-e", "--schema", schema]
        return view + ["--keep", "10000" if name == "view" else "1"]
    result = alternate({"print": [], "view": [], "view-keep-1": []}, make, rounds=5)
    result["page_ms"] = page_ready_ms(t, schema)
    result["cutout_us"] = {name: criterion_median("cutouts", name) / 1000
                           for name in ("ztf-63x63-gzip", "plain-300x300-f32")}
    drop(t)
    return result


def criterion_median(group, name):
    path = ROOT / f"target/criterion/{group}/{name}/new/estimates.json"
    return json.loads(path.read_text())["median"]["point_estimate"]


def page_ready_ms(t, schema):
    """The stream page with 2,000 kept alerts in headless chromium (through
    chromedriver's WebDriver API): ms from navigation start until every row
    is in the table, median of three page loads."""
    import socket
    import tempfile
    import urllib.request
    proc = subprocess.Popen([str(c) for c in [BIN, "view", t, "--from", "@0", "--keep", 2000,
                                              "--listen", "127.0.0.1:0", "--schema", schema]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, RUST_LOG="info"))
    base = next(line.split("view on ")[1].split()[0] for line in proc.stderr if "view on http://" in line)
    # The bench's own wait for view to have read 2,000 alerts (not part of the measure).
    while json.loads(urllib.request.urlopen(base + "api/stats").read())["kept"] < 2000:
        time.sleep(0.05)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    profile = tempfile.mkdtemp(prefix="bench-chromium-")

    def call(method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as answer:
            return json.loads(answer.read())["value"]
    try:
        for _ in range(200):
            try:
                call("GET", "/status")
                break
            except OSError:
                time.sleep(0.05)
        args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--no-first-run", f"--user-data-dir={profile}"]
        session = call("POST", "/session", {"capabilities": {"alwaysMatch": {
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}})["sessionId"]
        call("POST", f"/session/{session}/timeouts", {"script": 60000})
        times = []
        for _ in range(3):
            call("POST", f"/session/{session}/url", {"url": base})
            times.append(call("POST", f"/session/{session}/execute/async", {"args": [], "script": """
                const done = arguments[arguments.length - 1];
                const full = () => document.querySelectorAll('#alerts tbody tr').length >= 2000;
                if (full()) return done(performance.now());
                new MutationObserver((_, o) => { if (full()) { o.disconnect(); done(performance.now()); } })
                  .observe(document.body, {subtree: true, childList: true});"""}))
        call("DELETE", f"/session/{session}")
        return sorted(times)[1]
    finally:
        driver.terminate()
        proc.terminate()
        proc.wait()


def rate(r):
    return r["alerts"] / r["seconds"]


def write_docs(r):
    s, c, k = r["send"], r["consume"], r["codec"]
    mb = lambda x: (x["bytes"] or 0) / 1e6 / x["seconds"]
    rows = [
        ("send, one visit", s),
        ("print/consume, one visit", c),
    ]
    lines = [
        "# Performance",
        "",
        f"Last run: {r['when']}, `scripts/bench{' --quick' if QUICK else ''}` "
        "(rerun it to refresh this page; timings are from one run on a shared machine, so read the ratios).",
        "",
        "| | |",
        "| --- | --- |",
    ] + [f"| {k2} | {v} |" for k2, v in r["versions"].items()] + [
        "",
        f"## One visit of {r['visit']:,} alerts",
        "",
        "The 20 ZTF fixture packets (schema 1.7 to 3.3, 45-85 KB each, cutouts included) cycled; "
        "one topic of one partition per run, on the local broker; producers use the same librdkafka "
        "settings (acks=all, idempotent, linger 5 ms, 64 MiB queue). Send time is from the first "
        "produce to the last acknowledgement; consume time is from the first message to the last "
        "(joining the group is left out), reading the four v3.1 fixtures cycled, schemaless, "
        "printed to /dev/null. alertstream and transport-only: median of three alternating runs each.",
        "",
        "| | alertstream | Python baseline | transport only | alertstream / transport time | alertstream vs Python |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, x in rows:
        a, p, t = x["alertstream"], x["python"], x["transport"]
        lines.append(
            f"| {label} | {a['seconds']:.2f} s, {rate(a):,.0f} alerts/s, {a['rss']:.0f} MB | "
            f"{p['seconds']:.2f} s, {rate(p):,.0f} alerts/s, {p['rss']:.0f} MB | "
            f"{t['seconds']:.2f} s, {rate(t):,.0f} alerts/s, {t['rss']:.0f} MB | "
            f"**{a['seconds'] / t['seconds']:.2f}x** | **{rate(a) / rate(p):.1f}x** alerts/s |"
        )
    lines += [
        "",
        f"Throughput of the send: alertstream {mb(s['alertstream']):.0f} MB/s, "
        f"transport only {mb(s['transport']):.0f} MB/s, Python {mb(s['python']):.0f} MB/s.",
        "",
        "## Codec, one core (criterion, `cargo bench --bench codec`, vs fastavro on the same alerts)",
        "",
        "| | alertstream | fastavro | ratio |",
        "| --- | --- | --- | --- |",
        f"| encode (value to bare Avro) | {k['encode']:,.0f} alerts/s | {k['py_encode']:,.0f} alerts/s | **{k['encode'] / k['py_encode']:.1f}x** |",
        f"| decode (bare Avro to values) | {k['decode']:,.0f} alerts/s | {k['py_decode']:,.0f} alerts/s | **{k['decode'] / k['py_decode']:.1f}x** |",
        f"| decode to JSON (print's path) | {k['decode_json']:,.0f} alerts/s | {k['py_decode']:,.0f} alerts/s (to dicts only) | **{k['decode_json'] / k['py_decode']:.1f}x** |",
        "",
        "## Visit size",
        "",
        "| alerts per visit | send time | alerts/s | peak RSS | fits in 39 s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for x in r["scale"]:
        lines.append(f"| {x['visit']:,} | {x['seconds']:.2f} s | {rate(x):,.0f} | {x['rss']:.0f} MB | "
                     f"{'yes' if x['seconds'] < 39 else 'no'} |")
    rec, rp = r.get("record"), r.get("replay")
    if rec:
        p = rec["print"]
        lines += [
            "",
            f"## Archiving one visit of {r['visit']:,} alerts",
            "",
            "`print` and `record` of the same topic (the four v3.1 fixtures cycled), `-e`, whole "
            "process including the group join and, for record, fsync and rename; each archive is "
            "deleted before the next run starts; median of five alternating runs. CPU is the "
            "median run's own (user + system, from `/usr/bin/time`); the machine's busy and idle "
            f"CPU-seconds in that run (`/proc/stat`, {os.cpu_count()} cores) include the broker's. "
            "Targets: Avro and Parquet at least 0.8x print's alerts/s, peak RSS at most 200 MB.",
            "",
            "| | time | alerts/s vs print | CPU user + sys | machine busy / idle | peak RSS |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for name in ("print", "avro", "avro-tmpfs", "parquet", "parquet-tmpfs"):
            if name not in rec:
                continue
            x = rec[name]
            label = {"print": "print", "avro": "record --format avro", "avro-tmpfs": "record --format avro, --out on a tmpfs",
                     "parquet": "record --format parquet",
                     "parquet-tmpfs": "record --format parquet, --out on a tmpfs"}[name]
            cpu = f"{x['user']:.2f} + {x['sys']:.2f} s" if "user" in x else ""
            machine = f"{x['busy']:.2f} / {x['idle']:.2f} s" if x.get("busy") is not None else ""
            lines.append(f"| {label} | {x['seconds']:.2f} s | **{p['seconds'] / x['seconds']:.2f}x** "
                         f"| {cpu} | {machine} | {x['rss']:.0f} MB |")
    f, o, kc = r.get("filter"), r.get("overhead"), r.get("kcat")
    if f:
        ev = r["visit"] / f["filter"]["seconds"]
        lines += [
            "",
            "## Filtering one visit",
            "",
            "`filter --where` ZTF's purity cut (rb, nbad, fwhm, elong, magdiff) to another topic, "
            "in Kafka transactions, against `print` of the same topic; `-e`, whole process, median "
            "of five alternating runs. Targets: at least 10,000 alerts/s evaluated per core, the "
            "run at most 1.5x print's time, peak RSS at most 150 MB.",
            "",
            "| | time | vs print | alerts/s evaluated (whole process) | peak RSS |",
            "| --- | --- | --- | --- | --- |",
            f"| print | {f['print']['seconds']:.2f} s | 1.00x | | {f['print']['rss']:.0f} MB |",
            f"| filter | {f['filter']['seconds']:.2f} s | **{f['filter']['seconds'] / f['print']['seconds']:.2f}x** | "
            f"**{ev:,.0f}** | {f['filter']['rss']:.0f} MB |",
        ]
    if o:
        lines += [
            "",
            "## Cost of `--metrics`",
            "",
            "The same runs with and without `--metrics` (median of three alternating). Target: at most 3%.",
            "",
            "| | without | with | cost |",
            "| --- | --- | --- | --- |",
        ]
        for name in ("print", "send"):
            a, b = o[name]["without"]["seconds"], o[name]["with"]["seconds"]
            lines.append(f"| {name} | {a:.2f} s | {b:.2f} s | **{(b / a - 1) * 100:+.1f}%** |")
    if kc:
        lines += [
            "",
            "## print -e against kcat",
            "",
            "`print -e` (decoding to JSON, in a consumer group) against `kcat -C -e` dumping the raw "
            "payloads of the same topic (no group), whole process, median of three alternating runs. "
            "Target: at most 1.1x.",
            "",
            f"print {kc['print']['seconds']:.2f} s, kcat {kc['kcat']['seconds']:.2f} s: "
            f"**{kc['print']['seconds'] / kc['kcat']['seconds']:.2f}x**.",
        ]
    if rp:
        lines += [
            "",
            "## Replay pacing",
            "",
            f"{rp['alerts']} alerts in 5 visits 2 s apart, recorded and replayed with `--pace recorded` "
            f"at `--speed 1`: each replayed alert's broker time since the first, against its recorded "
            f"one, over {rp['span_ms'] / 1000:.1f} s: largest difference **{rp['max_error_ms']} ms** "
            f"(target 20 ms), mean {rp['mean_error_ms']:.1f} ms.",
        ]
    sim = r.get("simulate")
    if sim:
        lines += [
            "",
            f"## Simulating a visit of {r['visit']:,} alerts",
            "",
            "`send --simulate` against sending pre-encoded alerts of the same survey (ZTF: the built-in "
            "samples; Rubin: 12 simulated alerts written to a file first, cycled), whole process, median "
            "of three alternating runs. Targets: at most 2x with cutouts, 1.3x without.",
            "",
            "| | pre-encoded | simulated | ratio | peak RSS simulated |",
            "| --- | --- | --- | --- | --- |",
        ]
        for key in ("ztf", "ztf-no-stamps", "rubin", "rubin-no-stamps"):
            a, b = sim[key]["samples"], sim[key]["simulated"]
            lines.append(f"| {key} | {a['seconds']:.2f} s | {b['seconds']:.2f} s | **{b['seconds'] / a['seconds']:.2f}x** | "
                         f"{b['rss']:.0f} MB |")
        small, large = sim["objects-20000"], sim["objects-1000000"]
        per_object = max(0.0, large["rss"] - small["rss"]) * 1e6 / 980000
        lines += [
            "",
            "| one visit without cutouts | alerts | time (whole process) | fits in 39 s |",
            "| --- | --- | --- | --- |",
        ] + [
            f"| {s_} | {sim[s_ + '-big']['alerts']:,} | {sim[s_ + '-big']['seconds']:.1f} s | "
            f"{'yes' if sim[s_ + '-big']['seconds'] < 39 else 'no'} |" for s_ in ("ztf", "rubin")
        ] + [
            "",
            f"Memory: 20 visits of 1,000 alerts, peak RSS {small['rss']:.0f} MB with 20,000 objects and "
            f"{large['rss']:.0f} MB with 1,000,000: **{per_object:.0f} bytes per object** (target 200).",
        ]
    dl = r.get("dialects")
    if dl:
        base = dl["schemaless"]["seconds"]
        lines += [
            "",
            "## Key-schema framing and `--dead-letter`",
            "",
            f"`print -e` of two visits of {r['visit']:,} alerts (the four v3.1 fixtures cycled, "
            "cutouts included, as Fink's streams carry them): framed "
            "key-schema (the writer schema in each key, parsed once per distinct key), and schemaless "
            "with `--schema`, with and without `--dead-letter` (nothing refused); whole process, "
            "median of five alternating runs. Targets: key-schema at most 5% over schemaless, "
            "`--dead-letter` nothing measurable. The key-schema schema is parsed once; what it costs "
            "is the framing itself: every key carries the schema's JSON (22 KB for ZTF 3.1) on top "
            "of a ~63 KB alert, a third more bytes to fetch.",
            "",
            "| | time | vs schemaless | peak RSS |",
            "| --- | --- | --- | --- |",
        ] + [
            f"| {label} | {dl[name]['seconds']:.2f} s | **{(dl[name]['seconds'] / base - 1) * 100:+.1f}%** | "
            f"{dl[name]['rss']:.0f} MB |"
            for name, label in (("schemaless", "schemaless, --schema"), ("key-schema", "key-schema"),
                                ("dead-letter", "schemaless, --dead-letter"))
        ] + ([
            "",
            "Decoding alone: the key-schema topic read as key-schema against the same topic read as "
            f"schemaless with `--schema` (the same bytes fetched, keys ignored): "
            f"**{(dl['key-schema']['seconds'] / dl['same-bytes']['seconds'] - 1) * 100:+.1f}%** "
            f"({dl['same-bytes']['seconds']:.2f} s read as schemaless).",
        ] if "same-bytes" in dl else [])
    vw = r.get("view")
    if vw:
        lines += [
            "",
            "## `view`",
            "",
            f"`view` and `print` of one visit of {r['visit']:,} alerts (the four v3.1 fixtures cycled, "
            "cutouts included), both from the topic's start outside any group (`--from @0 -e`), whole "
            "process (both exit once every partition is read), "
            "`view --keep 10000` (within the default `--keep-bytes`); median of five alternating runs. "
            "Targets: view at most 1.3x print's time, RSS at most 300 MB; a cutout in at most 1 ms "
            "(63x63) and 5 ms (large); the page interactive with 2,000 alerts in under a second.",
            "",
            "| | time | vs print | peak RSS |",
            "| --- | --- | --- | --- |",
        ] + [
            f"| {name} | {vw[name]['seconds']:.2f} s | **{vw[name]['seconds'] / vw['print']['seconds']:.2f}x** | "
            f"{vw[name]['rss']:.0f} MB |" for name in ("print", "view", "view-keep-1") if name in vw
        ] + [
            "",
            "`view-keep-1` keeps one alert: what view costs beyond print's work is keeping the "
            "alerts (the default `--keep-bytes` of messages in memory).",
            "",
            "| cutout: decode, zscale, PNG (criterion, median) | time |",
            "| --- | --- |",
            f"| ZTF 63 x 63, gzip-compressed FITS | {vw['cutout_us']['ztf-63x63-gzip']:.0f} µs |",
            f"| 300 x 300 float32, plain FITS | {vw['cutout_us']['plain-300x300-f32']:.0f} µs |",
            "",
            f"The stream page with 2,000 kept alerts in headless chromium: all rows in the table "
            f"**{vw['page_ms']:.0f} ms** after navigation starts (median of three loads).",
        ]
    lines += ["", "![alerts per second, side by side](performance.svg)", ""]
    docs = ROOT / "docs"
    docs.mkdir(exist_ok=True)
    (docs / "performance.md").write_text("\n".join(lines))
    (docs / "performance.svg").write_text(chart(r))
    (docs / "performance.json").write_text(json.dumps(r, indent=1))
    print("\n".join(lines))


def chart(r):
    """Grouped horizontal bars of alerts/s, log scale, no plotting library."""
    import math
    groups = [
        ("send", [("alertstream", rate(r["send"]["alertstream"])), ("Python", rate(r["send"]["python"])),
                  ("transport", rate(r["send"]["transport"]))]),
        ("consume", [("alertstream", rate(r["consume"]["alertstream"])), ("Python", rate(r["consume"]["python"])),
                     ("transport", rate(r["consume"]["transport"]))]),
        ("encode, 1 core", [("alertstream", r["codec"]["encode"]), ("fastavro", r["codec"]["py_encode"])]),
        ("decode, 1 core", [("alertstream", r["codec"]["decode"]), ("alertstream to JSON", r["codec"]["decode_json"]),
                            ("fastavro", r["codec"]["py_decode"])]),
    ]
    colours = {"alertstream": "#1f77b4", "alertstream to JSON": "#6baed6", "Python": "#ff7f0e",
               "fastavro": "#ff7f0e", "transport": "#7f7f7f"}
    top = max(v for _, bars in groups for _, v in bars)
    lo = 10 ** math.floor(math.log10(min(v for _, bars in groups for _, v in bars)))
    width, left, bar, gap = 900, 190, 18, 14
    scale = lambda v: (math.log10(v) - math.log10(lo)) / (math.log10(top * 1.5) - math.log10(lo)) * (width - left - 120)
    y, parts = 40, []
    for title, bars in groups:
        parts.append(f'<text x="10" y="{y + 12}" font-weight="bold">{title}</text>')
        for name, v in bars:
            w = max(scale(v), 1)
            parts.append(f'<text x="{left - 8}" y="{y + 13}" text-anchor="end">{name}</text>')
            parts.append(f'<rect x="{left}" y="{y}" width="{w:.1f}" height="{bar}" fill="{colours[name]}"/>')
            parts.append(f'<text x="{left + w + 6:.1f}" y="{y + 13}">{v:,.0f}/s</text>')
            y += bar + 4
        y += gap
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{y + 10}" '
            f'font-family="sans-serif" font-size="12">'
            f'<rect width="100%" height="100%" fill="white"/>'
            f'<text x="10" y="20" font-size="14">Alerts per second (log scale), one run of scripts/bench, '
            f'{r["visit"]:,}-alert visit</text>')
    return head + "".join(parts) + "</svg>\n"


if __name__ == "__main__":
    main()
