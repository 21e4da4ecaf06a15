"""Reads a topic with fink-client's AlertConsumer, as Fink's users do: no
schema path, the writer schema taken from each message's key. Prints each
alert as a JSON line (cutouts left out, as alert_peer.py prints them).

    fink_check.py BROKERS TOPIC COUNT
"""

import sys

from alert_peer import line
from fink_client.consumer import AlertConsumer


def main():
    brokers, topic, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    config = {"bootstrap.servers": brokers, "group.id": f"fink-{topic}"}
    consumer = AlertConsumer([topic], config, survey="ztf")
    got = 0
    try:
        while got < count:
            _, alert, _ = consumer.poll(timeout=60)
            if alert is None:
                sys.exit(f"timed out after {got} of {count} alert(s)")
            print(line(alert))
            got += 1
    finally:
        consumer.close()


if __name__ == "__main__":
    main()
