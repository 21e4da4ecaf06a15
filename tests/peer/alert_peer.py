#!/usr/bin/env python3
"""An independent peer for interop tests, on the original's stack
(confluent-kafka + fastavro): it decodes reference files, produces and
consumes alerts in each wire framing, and writes test files.

JSON lines use alertstream's printout conventions: bytes as base64, NaN and
infinities as strings, top-level cutout fields left out (unless --stamps).
"""

import argparse
import base64
import io
import json
import math
import struct
import sys

import fastavro
from confluent_kafka import Consumer, KafkaError, Producer


def jsonable(value):
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
    return value


def line(alert, stamps=False):
    if not stamps:
        alert = {k: v for k, v in alert.items() if not k.startswith("cutout")}
    return json.dumps(jsonable(alert), allow_nan=False)


def read_file(path):
    with open(path, "rb") as f:
        reader = fastavro.reader(f)
        return reader.writer_schema, list(reader)


def frame(schema, alert, fmt, schema_id):
    out = io.BytesIO()
    if fmt == "container":
        fastavro.writer(out, schema, [alert])
        return out.getvalue()
    if fmt == "confluent":
        out.write(b"\x00" + struct.pack(">I", schema_id))
    fastavro.schemaless_writer(out, schema, alert)
    return out.getvalue()


def key_of(schema, fmt):
    """The message key: the writer schema's JSON in key-schema framing (as Fink writes)."""
    return json.dumps(schema).encode() if fmt == "key-schema" else None


def unframe(payload, fmt, schema, key=None):
    if fmt == "key-schema":
        schema = fastavro.parse_schema(json.loads(key))
    if fmt == "container":
        return list(fastavro.reader(io.BytesIO(payload)))
    if fmt == "confluent":
        if payload[:1] != b"\x00":
            raise ValueError("not Confluent framing")
        payload = payload[5:]
    return [fastavro.schemaless_reader(io.BytesIO(payload), schema, None)]


def cmd_decode(args):
    reader_schema = None
    if args.reader_schema:
        # .avsc files, inner named types first, as the original combined them.
        reader_schema = fastavro.schema.load_schema_ordered(args.reader_schema)
    for path in args.files:
        with open(path, "rb") as f:
            for alert in fastavro.reader(f, reader_schema=reader_schema):
                print(line(alert, args.stamps))


def cmd_schema(args):
    schema, _ = read_file(args.file)
    with open(args.out, "w") as f:
        json.dump(schema, f)


def cmd_produce(args):
    producer = Producer({"bootstrap.servers": args.brokers, "acks": "all"})
    sent = 0
    for path in args.files:
        schema, alerts = read_file(path)
        parsed = fastavro.parse_schema(schema)
        key = key_of(schema, args.format)
        for alert in alerts:
            producer.produce(args.topic, frame(parsed, alert, args.format, args.schema_id), key=key)
            sent += 1
    left = producer.flush(30)
    if left:
        sys.exit(f"{left} message(s) not delivered")
    print(sent)


def cmd_consume(args):
    schema = None
    if args.schema:
        with open(args.schema) as f:
            schema = fastavro.parse_schema(json.load(f))
    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": args.group,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([args.topic])
    got = 0
    try:
        while got < args.count:
            msg = consumer.poll(args.timeout)
            if msg is None:
                sys.exit(f"timed out after {got} of {args.count} message(s)")
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                sys.exit(f"consumer error: {msg.error()}")
            for alert in unframe(msg.value(), args.format, schema, msg.key()):
                print(line(alert, args.stamps))
            got += 1
    finally:
        consumer.close()


def rubin_schema():
    source = {
        "type": "record",
        "name": "diaSource",
        "namespace": "lsst.v7_4",
        "fields": [
            {"name": "diaSourceId", "type": "long"},
            {"name": "visit", "type": "long"},
            {"name": "detector", "type": "int"},
            {"name": "diaObjectId", "type": ["null", "long"], "default": None},
            {"name": "midpointMjdTai", "type": "double"},
            {"name": "ra", "type": "double"},
            {"name": "dec", "type": "double"},
            {"name": "raErr", "type": ["null", "float"], "default": None},
            {"name": "psfFlux", "type": ["null", "float"], "default": None},
            {"name": "psfFluxErr", "type": ["null", "float"], "default": None},
            {"name": "snr", "type": ["null", "float"], "default": None},
            {"name": "isDipole", "type": ["null", "boolean"], "default": None},
            {"name": "band", "type": ["null", "string"], "default": None},
        ],
    }
    return {
        "type": "record",
        "name": "alert",
        "namespace": "lsst.v7_4",
        "fields": [
            {"name": "alertId", "type": "long"},
            {"name": "diaSource", "type": source},
            {
                "name": "prvDiaSources",
                "type": ["null", {"type": "array", "items": "lsst.v7_4.diaSource"}],
                "default": None,
            },
            {
                "name": "diaObject",
                "type": [
                    "null",
                    {
                        "type": "record",
                        "name": "diaObject",
                        "fields": [
                            {"name": "diaObjectId", "type": "long"},
                            {"name": "ra", "type": "double"},
                            {"name": "dec", "type": "double"},
                            {"name": "nDiaSources", "type": "int"},
                            {"name": "flags", "type": {"type": "map", "values": "int"}},
                        ],
                    },
                ],
                "default": None,
            },
            {"name": "cutoutDifference", "type": ["null", "bytes"], "default": None},
            {"name": "cutoutScience", "type": ["null", "bytes"], "default": None},
            {"name": "cutoutTemplate", "type": ["null", "bytes"], "default": None},
        ],
    }


def cmd_write_rubin(args):
    """A few Rubin-style alerts (bytes cutouts, NaN fluxes, maps, booleans)."""
    alerts = []
    for i in range(args.count):
        source_id = 170_000_000_000_000_000 + i * 7919
        def dia(n, flux):
            return {
                "diaSourceId": source_id - n,
                "visit": 2026112800123 - n,
                "detector": (i * 13 + n) % 189,
                "diaObjectId": None if n == 2 else 5_000_000 + i,
                "midpointMjdTai": 61371.25 - n * 0.75 + i * 1e-6,
                "ra": 150.125 + i * 0.01,
                "dec": -30.5 - i * 0.02,
                "raErr": 1e-5 * (n + 1),
                "psfFlux": flux,
                "psfFluxErr": 12.5,
                "snr": None if n == 1 else 42.0 + n,
                "isDipole": bool(n % 2),
                "band": "ugrizy"[(i + n) % 6],
            }
        alerts.append(
            {
                "alertId": 9_000_000 + i,
                "diaSource": dia(0, 1234.5 + i),
                "prvDiaSources": [dia(n, float("nan") if n == 1 else 800.0 + n) for n in range(1, 4)],
                "diaObject": {
                    "diaObjectId": 5_000_000 + i,
                    "ra": 150.125,
                    "dec": -30.5,
                    "nDiaSources": 4,
                    "flags": {"saturated": 0, "edge": i % 2},
                },
                "cutoutDifference": b"SIMPLE  = T difference %d" % i,
                "cutoutScience": b"SIMPLE  = T science %d" % i,
                "cutoutTemplate": None if i == 1 else b"SIMPLE  = T template %d" % i,
            }
        )
    with open(args.out, "wb") as f:
        fastavro.writer(f, fastavro.parse_schema(rubin_schema()), alerts, codec=args.codec)


def cmd_recode(args):
    schema, alerts = read_file(args.input)
    with open(args.out, "wb") as f:
        fastavro.writer(f, fastavro.parse_schema(schema), alerts * args.repeat, codec=args.codec)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("decode", help="print the alerts of container files as JSON lines")
    p.add_argument("files", nargs="+")
    p.add_argument("--stamps", action="store_true")
    p.add_argument("--reader-schema", nargs="+", help="resolve to these .avsc files (inner first)")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("schema", help="write the writer schema of a container file")
    p.add_argument("file")
    p.add_argument("out")
    p.set_defaults(func=cmd_schema)

    for name, func in (("produce", cmd_produce), ("consume", cmd_consume)):
        p = sub.add_parser(name)
        p.add_argument("--brokers", required=True)
        p.add_argument("--topic", required=True)
        p.add_argument(
            "--format", choices=["schemaless", "container", "confluent", "key-schema"], required=True
        )
        p.set_defaults(func=func)
        if name == "produce":
            p.add_argument("--schema-id", type=int, default=1)
            p.add_argument("files", nargs="+")
        else:
            p.add_argument("--schema")
            p.add_argument("--group", default="alert-peer")
            p.add_argument("--count", type=int, required=True)
            p.add_argument("--timeout", type=float, default=60.0)
            p.add_argument("--stamps", action="store_true")

    p = sub.add_parser("write-rubin", help="write Rubin-style alerts to a container file")
    p.add_argument("out")
    p.add_argument("--count", type=int, default=3)
    p.add_argument("--codec", default="deflate")
    p.set_defaults(func=cmd_write_rubin)

    p = sub.add_parser("recode", help="rewrite a container file with another codec")
    p.add_argument("input")
    p.add_argument("out")
    p.add_argument("--codec", required=True)
    p.add_argument("--repeat", type=int, default=1)
    p.set_defaults(func=cmd_recode)

    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
