"""Reads a topic the way Babamul's client does: each message an Avro object
container, decoded by babamul.avro.deserialize_alert (Babamul's own
deserializer). Babamul's AlertConsumer itself only connects over SASL to
Babamul's brokers, and its models describe Babamul's enriched alerts (cutouts
as bytes), so the messages come from a plain confluent-kafka consumer and
the dictionaries are compared as they are. Prints each alert as a JSON line
(cutouts left out, as alert_peer.py prints them).

    babamul_check.py BROKERS TOPIC COUNT
"""

import sys

from alert_peer import line
from babamul.avro import deserialize_alert
from confluent_kafka import Consumer


def main():
    brokers, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": f"babamul-{topic}",
        "auto.offset.reset": "earliest",
    })
    consumer.subscribe([topic])
    got = 0
    try:
        while got < count:
            message = consumer.poll(60)
            if message is None:
                sys.exit(f"timed out after {got} of {count} alert(s)")
            if message.error():
                continue
            print(line(deserialize_alert(message.value())))
            got += 1
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
