"""The cuts tests/filter.rs gives alertstream filter, evaluated in Python on
what fastavro reads, as an independent reference. Prints one JSON object:
the candids each cut selects. A missing or null field fails its comparison.

  cuts.py FILE...
"""
import json
import sys

import fastavro


def purity(c):
    """ZTF's recommended purity cut (ztf-avro-alert docs/filtering.md)."""
    try:
        return (c["rb"] >= 0.65 and c["nbad"] == 0 and c["fwhm"] <= 5
                and c["elong"] <= 1.2 and abs(c["magdiff"]) <= 0.1)
    except (KeyError, TypeError):
        return False


def bright(c):
    try:
        return c["magpsf"] < 18.5
    except (KeyError, TypeError):
        return False


selected = {"purity": [], "bright": []}
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        for alert in fastavro.reader(f):
            for name, cut in (("purity", purity), ("bright", bright)):
                if cut(alert["candidate"]):
                    selected[name].append([alert["candid"], alert.get("schemavsn", "")])
print(json.dumps(selected))
