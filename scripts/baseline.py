#!/usr/bin/env python3
"""The Python baseline for scripts/bench: the original alert_stream's way of
working (confluent-kafka + fastavro, one schemaless_writer/_reader call per
alert), timed the way alertstream is timed. Prints one JSON line.

  baseline.py send --brokers B --topic T --count N FILE...
  baseline.py consume --brokers B --topic T --count N --group G --schema FILE
  baseline.py codec --seconds S FILE...
"""

import argparse
import io
import json
import sys
import time

import fastavro
from confluent_kafka import Consumer, KafkaError, Producer

# The producer settings alertstream uses, so that only the encoding differs.
PRODUCER = {
    "acks": "all",
    "enable.idempotence": True,
    "message.timeout.ms": 120000,
    "queue.buffering.max.kbytes": 65536,
    "linger.ms": 5,
}


def load(paths):
    alerts = []
    for path in paths:
        with open(path, "rb") as f:
            reader = fastavro.reader(f)
            schema = fastavro.parse_schema(reader.writer_schema)
            alerts.extend((schema, alert) for alert in reader)
    return alerts


def send(args):
    alerts = load(args.files)
    producer = Producer(dict(PRODUCER, **{"bootstrap.servers": args.brokers}))
    start = time.perf_counter()
    sent_bytes = 0
    for i in range(args.count):
        schema, alert = alerts[i % len(alerts)]
        out = io.BytesIO()
        fastavro.schemaless_writer(out, schema, alert)
        payload = out.getvalue()
        sent_bytes += len(payload)
        while True:
            try:
                producer.produce(args.topic, payload)
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    left = producer.flush(300)
    seconds = time.perf_counter() - start
    if left:
        sys.exit(f"{left} alerts not delivered")
    print(json.dumps({"seconds": seconds, "alerts": args.count, "bytes": sent_bytes}))


def consume(args):
    with open(args.schema) as f:
        schema = fastavro.parse_schema(json.load(f))
    consumer = Consumer(
        {"bootstrap.servers": args.brokers, "group.id": args.group, "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([args.topic])
    seen, first, size = 0, None, 0
    out = sys.stdout
    while seen < args.count:
        msg = consumer.poll(60)
        if msg is None:
            sys.exit(f"no message within 60 s after {seen}")
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            sys.exit(str(msg.error()))
        if first is None:
            first = time.perf_counter()
        payload = msg.value()
        size += len(payload)
        alert = fastavro.schemaless_reader(io.BytesIO(payload), schema, None)
        # The original printed each alert without its cutouts.
        print({k: v for k, v in alert.items() if not k.startswith("cutout")}, file=out)
        seen += 1
    seconds = time.perf_counter() - first
    consumer.close()
    print(json.dumps({"seconds": seconds, "alerts": seen, "bytes": size}), file=sys.stderr)


def codec(args):
    alerts = load(args.files)
    payloads = []
    for schema, alert in alerts:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, schema, alert)
        payloads.append((schema, out.getvalue()))

    def rate(work):
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            work()
            n += len(alerts)
        return n / (time.perf_counter() - start)

    def encode_all():
        for schema, alert in alerts:
            fastavro.schemaless_writer(io.BytesIO(), schema, alert)

    def decode_all():
        for schema, payload in payloads:
            fastavro.schemaless_reader(io.BytesIO(payload), schema, None)

    print(json.dumps({"encode_per_s": rate(encode_all), "decode_per_s": rate(decode_all),
                      "alerts": len(alerts), "bytes": sum(len(p) for _, p in payloads)}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("send")
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("files", nargs="+")
    p.set_defaults(func=send)
    p = sub.add_parser("consume")
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--schema", required=True)
    p.set_defaults(func=consume)
    p = sub.add_parser("codec")
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("files", nargs="+")
    p.set_defaults(func=codec)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
