#!/usr/bin/env python3
"""The schema-registry peer for tests/registry.rs: Python's confluent-kafka
AvroSerializer and AvroDeserializer against the same registry as alertstream,
with Rubin's published schemas and sample alerts from PyPI's
lsst-alert-packet (read from the installed package, never copied).

JSON lines follow alertstream's printout conventions (see alert_peer.py).
"""

import argparse
import datetime
import json
import os
import sys

import fastavro
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

sys.path.insert(0, os.path.dirname(__file__))
from alert_peer import jsonable, line  # noqa: E402

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

# Seconds a registry request may take. Apicurio once left a lookup by id
# unanswered on an open connection for over ten minutes while answering
# others; the client has no timeout by default, so the test hung. A request
# that times out is sent again by the client itself (a transport error),
# here up to 3 times.
REGISTRY_CONF = {"timeout": 10, "max.retries": 3}


def registry_client(url):
    return SchemaRegistryClient({"url": url, **REGISTRY_CONF})


def plain(value):
    """Logical types back to the numbers on the wire, as alertstream prints them."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, datetime.datetime):
        return (value - EPOCH) // datetime.timedelta(microseconds=1)
    return value


def rubin_root():
    import lsst.alert.packet

    return os.path.join(os.path.dirname(lsst.alert.packet.__file__), "schema")


def rubin_sample(version):
    major, minor = version.split(".")
    path = os.path.join(rubin_root(), major, minor, "sample_data", "fakeAlert.avro")
    with open(path, "rb") as f:
        reader = fastavro.reader(f)
        return reader.writer_schema, list(reader)


def cmd_schema_root(_args):
    print(rubin_root())


def cmd_produce_rubin(args):
    """Produces each version's sample alert through AvroSerializer; prints
    each as fastavro reads it, in the order sent."""
    registry = registry_client(args.registry)
    producer = Producer({"bootstrap.servers": args.brokers})
    for version in args.versions:
        schema, alerts = rubin_sample(version)
        serializer = AvroSerializer(
            registry,
            json.dumps(schema),
            conf={"subject.name.strategy.type": "TOPIC_RECORD", "auto.register.schemas": True},
        )
        context = SerializationContext(args.topic, MessageField.VALUE)
        for alert in alerts:
            producer.produce(args.topic, serializer(alert, context))
            print(line(plain(alert)))
    if producer.flush(30) != 0:
        sys.exit("not every message was delivered")


def cmd_consume(args):
    """Reads COUNT messages with AvroDeserializer (writer schema by id)."""
    registry = registry_client(args.registry)
    deserializer = AvroDeserializer(registry)
    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": f"registry-peer-{os.getpid()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([args.topic])
    seen = 0
    while seen < args.count:
        message = consumer.poll(30)
        if message is None:
            sys.exit(f"only {seen} of {args.count} messages arrived")
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                continue
            sys.exit(str(message.error()))
        context = SerializationContext(args.topic, MessageField.VALUE)
        alert = deserializer(message.value(), context)
        schema_id = int.from_bytes(message.value()[1:5], "big")
        print(json.dumps({"schema_id": schema_id, "alert": json.loads(line(plain(alert)))}))
        seen += 1
    consumer.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("schema-root", help="print lsst-alert-packet's schema folder")
    p.set_defaults(run=cmd_schema_root)
    p = sub.add_parser("produce-rubin", help="produce Rubin sample alerts of some versions")
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--registry", required=True)
    p.add_argument("versions", nargs="+", help="e.g. 7.3 9.0")
    p.set_defaults(run=cmd_produce_rubin)
    p = sub.add_parser("consume", help="read messages with AvroDeserializer")
    p.add_argument("--brokers", required=True)
    p.add_argument("--topic", required=True)
    p.add_argument("--registry", required=True)
    p.add_argument("--count", type=int, required=True)
    p.set_defaults(run=cmd_consume)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
