#!/usr/bin/env python3
"""Rubin's own stream client, lsst-alert-stream (GPL-3.0, from PyPI, never
copied here): its serialize_alert frames alerts Confluent-style with schema
id 0 (not registered), its deserialize_alert reads them back, both with the
latest schema lsst-alert-packet publishes.

    lsst_stream_check.py produce BROKERS TOPIC         sends the latest sample
                                                       alerts; prints them
    lsst_stream_check.py consume BROKERS TOPIC COUNT   prints what it reads
    lsst_stream_check.py schema-dir                    the latest schema's folder
    lsst_stream_check.py sample                        the latest sample file

JSON lines follow alertstream's printout conventions (see alert_peer.py).
"""

import os
import sys

import fastavro
import lsst.alert.packet
from confluent_kafka import Consumer, KafkaError, Producer
from lsst.alert.stream.serialization import deserialize_alert, serialize_alert

sys.path.insert(0, os.path.dirname(__file__))
from alert_peer import line  # noqa: E402
from registry_peer import plain  # noqa: E402

SCHEMA_DIR = os.path.dirname(lsst.alert.packet.get_path_to_latest_schema())
SAMPLE = os.path.join(SCHEMA_DIR, "sample_data", "fakeAlert.avro")


def produce(brokers, topic):
    with open(SAMPLE, "rb") as f:
        alerts = list(fastavro.reader(f))
    producer = Producer({"bootstrap.servers": brokers})
    for alert in alerts:
        producer.produce(topic, serialize_alert(alert))
        print(line(plain(alert)))
    if producer.flush(30) != 0:
        sys.exit("not every message was delivered")


def consume(brokers, topic, count):
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"lsst-stream-{os.getpid()}",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    seen = 0
    while seen < count:
        message = consumer.poll(30)
        if message is None:
            sys.exit(f"only {seen} of {count} messages arrived")
        if message.error():
            if message.error().code() == KafkaError._PARTITION_EOF:
                continue
            sys.exit(str(message.error()))
        print(line(plain(deserialize_alert(message.value()))))
        seen += 1
    consumer.close()


def main():
    command = sys.argv[1]
    if command == "produce":
        produce(sys.argv[2], sys.argv[3])
    elif command == "consume":
        consume(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif command == "schema-dir":
        print(SCHEMA_DIR)
    elif command == "sample":
        print(SAMPLE)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
