#!/usr/bin/env python3
"""Checks ZTF alerts against the ranges ZTF's own values take, read with
fastavro (independent of alertstream's codec).

  ztf_ranges.py FILE_OR_DIR...

Each `candidate` and each detection of `prv_candidates` is checked field by
field where the field is present and not null: positions on the sky, times
in ZTF's era, magnitudes a 48-inch telescope measures, scores in [0, 1]; and
the candidate's shape, which brokers' purity cuts test (fwhm, elong,
magdiff, nbad: a real detection's magdiff lies within about -1..1, elong is
a ratio of axes, at least 1). The ranges are ZTF's documented meanings (the
schema's doc strings, ztf-avro-alert), wide enough that every real packet
of tests/data/ztf passes (tests/simulate.rs checks that too).

Prints one JSON object {"alerts", "values", "violations": [...]}; exits 1
with the first violations on stderr when any value is out of range.
"""

import glob
import json
import math
import os
import sys

import fastavro

# field: (lowest, highest), inclusive
RANGES = {
    "ra": (0.0, 360.0),
    "dec": (-90.0, 90.0),
    "jd": (2458000.5, 2470000.5),  # ZTF's first light (2017) to 2060
    "fid": (1, 3),
    "programid": (0, 3),
    "field": (1, 1900),
    "rcid": (0, 63),
    "magpsf": (10.0, 24.0),
    "sigmapsf": (0.0, 1.1),
    "diffmaglim": (14.0, 23.5),
    "magzpsci": (20.0, 30.0),
    "rb": (0.0, 1.0),
    "drb": (0.0, 1.0),
    "sgscore1": (0.0, 1.0),
    "classtar": (0.0, 1.0),
    "ndethist": (0, 100000),
    "ncovhist": (0, 100000),
    "scorr": (0.0, 1e6),
}
# The shape of the alert's own detection (real histories hold the odd
# negative fwhm of a failed fit; the detection an alert is about does not).
SHAPE = {
    "fwhm": (0.0, 100.0),
    "elong": (1.0, 10.0),
    "magdiff": (-1.5, 1.5),
    "nbad": (0, 100),
}
# ZTF writes -999 for "no such match" (no star near, no score).
SENTINEL = -999.0
MAY_BE_SENTINEL = {"sgscore1", "classtar"}
TEXT = {"isdiffpos": {"t", "f", "1", "0"}}


def files(args):
    for arg in args:
        if os.path.isdir(arg):
            yield from sorted(glob.glob(os.path.join(arg, "*.avro")))
        else:
            yield arg


def check(where, detection, ranges, violations):
    checked = 0
    for name, (low, high) in ranges.items():
        value = detection.get(name)
        if value is None or name in MAY_BE_SENTINEL and value == SENTINEL:
            continue
        checked += 1
        if isinstance(value, float) and not math.isfinite(value) or not low <= value <= high:
            violations.append(f"{where}: {name} = {value}, outside [{low}, {high}]")
    for name, allowed in TEXT.items():
        value = detection.get(name)
        if value is not None:
            checked += 1
            if value not in allowed:
                violations.append(f"{where}: {name} = {value!r}, not one of {sorted(allowed)}")
    return checked


def main():
    alerts, values, violations = 0, 0, []
    for path in files(sys.argv[1:]):
        with open(path, "rb") as f:
            for n, alert in enumerate(fastavro.reader(f)):
                alerts += 1
                where = f"{os.path.basename(path)} alert {n} ({alert.get('objectId')})"
                values += check(where + " candidate", alert["candidate"], {**RANGES, **SHAPE},
                                violations)
                for i, prv in enumerate(alert.get("prv_candidates") or []):
                    if prv.get("candid") is not None:
                        values += check(f"{where} prv_candidates[{i}]", prv, RANGES, violations)
    print(json.dumps({"alerts": alerts, "values": values, "violations": violations[:20]}))
    if violations:
        print(f"{len(violations)} value(s) out of ZTF's ranges; first: {violations[0]}",
              file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
