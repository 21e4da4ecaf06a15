#!/usr/bin/env python3
"""Checks a simulated alert stream (`alertstream simulate`) with an
independent stack: fastavro for the Avro files, astropy for the cutouts.

  simulate_check.py --survey ztf|rubin [--schema PATH] DIR
                    [--interval S] [--mix periodic=..,bogus=..,sso=..]
                    [--fields N] [--count N]

Reads every DIR/visit-<n>.avro in visit order and checks: files read (and
validate against --schema), ids unique, objects recur with growing histories,
history times, one time per visit and --interval between visits, positions
of a visit close together, bogus and solar-system fractions (against --mix),
cutouts (FITS, shape, float32, central flux against the alert's flux).

Prints one JSON object with what it found; a check that the data's schema
version cannot support is skipped and listed under "skipped". On a failed
check, exits 1 with a one-line reason on stderr (the JSON still printed).
"""

import argparse
import glob
import gzip
import io
import json
import math
import os
import re
import statistics
import sys
import warnings

import fastavro
import fastavro.schema
from fastavro.validation import validate

MS_DAYS = 1e-3 / 86400.0
SSO_KEYS = {"sso", "ss", "solar", "solarsystem", "solar-system", "solar_system",
            "asteroid", "asteroids", "moving", "mover", "movers"}
SURVEY = {
    # history window (days), max distance from the visit's median (deg): the
    # field's radius (ZTF 3.5, Rubin 1.75) with room for the median to sit
    # off the field's centre
    "ztf": {"window": 30.0, "radius": 5.0, "aperture": 8.0},
    "rubin": {"window": 365.0, "radius": 2.5, "aperture": 8.0},
}


# ---------------------------------------------------------------- schemas

def parse_folder(files, top_name=None):
    """Parses .avsc files referring to each other by name, in any order
    (ZTF's folder: cutout.avsc, candidate.avsc, ..., alert.avsc)."""
    raw = {}
    for path in files:
        with open(path) as f:
            raw[path] = json.load(f)
    named, parsed, pending = {}, {}, dict(raw)
    while pending:
        progress = False
        for path, schema in list(pending.items()):
            trial = dict(named)
            try:
                parsed[path] = fastavro.parse_schema(schema, named_schemas=trial)
            except fastavro.schema.UnknownType:
                continue
            named = trial
            del pending[path]
            progress = True
        if not progress:
            raise ValueError(f"unresolved named types in {sorted(pending)}")

    def full_name(s):
        name = s.get("name", "")
        return name if "." in name or not s.get("namespace") else f"{s['namespace']}.{name}"

    for path, schema in raw.items():
        if top_name and (full_name(schema) == top_name or schema.get("name") == top_name):
            return parsed[path]
    for path, schema in raw.items():
        if schema.get("name", "").split(".")[-1] == "alert":
            return parsed[path]
    return parsed[list(parsed)[-1]]


def load_file(path):
    """One .avsc file. Rubin's lsst.vM_m.alert.avsc is loaded as
    lsst.alert.packet's Schema.from_file does: fastavro.schema.load_schema,
    which finds the named types in sibling files named after them."""
    try:
        return fastavro.schema.load_schema(path)
    except Exception:
        with open(path) as f:
            top = json.load(f)
        name = top.get("name", "")
        if "." not in name and top.get("namespace"):
            name = f"{top['namespace']}.{name}"
        folder = os.path.dirname(os.path.abspath(path))
        return parse_folder(sorted(glob.glob(os.path.join(folder, "*.avsc"))), name)


def load_schema(path):
    if not os.path.isdir(path):
        return load_file(path), path
    alert = sorted(glob.glob(os.path.join(path, "*.alert.avsc")))
    if alert:  # a Rubin version folder, schema/M/m
        return load_file(alert[-1]), alert[-1]
    latest = os.path.join(path, "latest.txt")
    if os.path.exists(latest):  # Rubin's schema root: its latest version
        with open(latest) as f:
            major, minor = f.read().strip().split(".")
        return load_schema(os.path.join(path, major, minor))
    files = sorted(glob.glob(os.path.join(path, "*.avsc")))
    if not files:
        raise ValueError(f"no .avsc file in {path}")
    return parse_folder(files), path


# ---------------------------------------------------------------- alerts

def num(value):
    """A finite float or None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def first(record, *names):
    """The first of names present in record (its value, its name)."""
    for name in names:
        if isinstance(record, dict) and name in record:
            return record[name], name
    return None, None


def ztf_alert(alert, missing):
    c = alert.get("candidate")
    if not isinstance(c, dict):
        raise ValueError("no candidate record")
    drb, rb = num(c.get("drb")), num(c.get("rb"))
    score, by = (drb, "drb") if drb is not None else (rb, "rb")
    if "rb" not in c and "drb" not in c:
        missing.add("candidate.rb/drb")
    ssd = num(c.get("ssdistnr"))
    if "ssdistnr" not in c:
        missing.add("candidate.ssdistnr")
    prv = alert.get("prv_candidates") or []
    dets = [(p.get("candid"), num(p.get("jd"))) for p in prv if p.get("candid") is not None]
    uls = [p for p in prv if p.get("candid") is None]
    hist = {"prv_candidates": [num(p.get("jd")) for p in prv]}
    if "fp_hists" in alert:
        hist["fp_hists"] = [num(p.get("jd")) for p in alert.get("fp_hists") or []]
    else:
        missing.add("fp_hists")
    flux = None
    mag, zp, pos = num(c.get("magpsf")), num(c.get("magzpsci")), c.get("isdiffpos")
    if "magzpsci" not in c:
        missing.add("candidate.magzpsci")
    if mag is not None and zp is not None:
        flux = 10 ** (-0.4 * (mag - zp))
        if str(pos).lower() in ("f", "0", "false"):
            name = (alert.get("cutoutDifference") or {}).get("fileName") or ""
            # Real ZTF ships the inverted difference (ref - sci) for negative
            # candidates: the source is positive in a *refmsci* cutout.
            flux = flux if "refmsci" in name else -flux
    stamps = {}
    for key in ("cutoutScience", "cutoutTemplate", "cutoutDifference"):
        rec = alert.get(key)
        stamps[key] = rec.get("stampData") if isinstance(rec, dict) else None
    return {
        "id": alert.get("candid"),
        "id_mismatch": alert.get("candid") != c.get("candid"),
        "extra_ids": [],
        "object": alert.get("objectId"),
        "time": num(c.get("jd")),
        "ra": num(c.get("ra")), "dec": num(c.get("dec")),
        "score": score, "score_by": by,
        "sso": ssd is not None and ssd >= 0,
        "dets": dets, "n_hist": len(prv), "n_ul": len(uls),
        "hist": hist, "flux": flux, "stamps": stamps,
        "field": c.get("field"), "visit_field": None,
    }


def rubin_alert(alert, missing):
    s = alert.get("diaSource")
    if not isinstance(s, dict):
        raise ValueError("no diaSource record")
    t, tname = first(s, "midpointMjdTai", "midPointTai")
    dec, _ = first(s, "dec", "decl")
    score, by = first(s, "reliability")
    if by is None:
        missing.add("diaSource.reliability")
    flux, fname = first(s, "psfFlux", "psFlux")
    if fname is None:
        missing.add("diaSource.psfFlux")
    ss = s.get("ssObjectId")
    if "ssObjectId" not in s:
        missing.add("diaSource.ssObjectId")
    obj = s.get("diaObjectId")
    prv = alert.get("prvDiaSources") or []
    dets = [(p.get("diaSourceId"), num(first(p, "midpointMjdTai", "midPointTai")[0])) for p in prv]
    hist = {}
    for key in ("prvDiaSources", "prvDiaForcedSources", "prvDiaNondetectionLimits"):
        if key in alert:
            hist[key] = [num(first(p, "midpointMjdTai", "midPointTai")[0]) for p in alert.get(key) or []]
    top_id = alert.get("diaSourceId")  # schema 8.0 and later
    extra = [("alertId", alert["alertId"])] if "alertId" in alert else []
    return {
        "id": s.get("diaSourceId"),
        "id_mismatch": top_id is not None and top_id != s.get("diaSourceId"),
        "extra_ids": extra,
        "object": obj if obj not in (None, 0) else None,
        "time": num(t),
        "ra": num(s.get("ra")), "dec": num(dec),
        "score": num(score), "score_by": by,
        "sso": ss not in (None, 0),
        "dets": dets, "n_hist": len(prv), "n_ul": len(alert.get("prvDiaNondetectionLimits") or []),
        "hist": hist, "flux": num(flux), "stamps": {
            key: alert.get(key) for key in ("cutoutScience", "cutoutTemplate", "cutoutDifference")
        },
        "field": None, "visit_field": s.get("visit"),
    }


# ---------------------------------------------------------------- geometry

def separation(ra1, dec1, ra2, dec2):
    """Angular distance in degrees (haversine)."""
    ra1, dec1, ra2, dec2 = map(math.radians, (ra1, dec1, ra2, dec2))
    h = math.sin((dec2 - dec1) / 2) ** 2 + math.cos(dec1) * math.cos(dec2) * math.sin((ra2 - ra1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(h))))


def median_position(points):
    ra0 = points[0][0]
    ras = [((ra - ra0 + 180.0) % 360.0) - 180.0 for ra, _ in points]
    return (ra0 + statistics.median(ras)) % 360.0, statistics.median(dec for _, dec in points)


# ---------------------------------------------------------------- cutouts

def open_stamp(data, survey):
    from astropy.io import fits

    if not isinstance(data, (bytes, bytearray)):
        raise ValueError(f"a {type(data).__name__}, not bytes")
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    elif survey == "ztf":
        raise ValueError("not gzip-compressed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdus = fits.open(io.BytesIO(data), memmap=False)
        hdus.verify("silentfix")
        names = [h.name for h in hdus]
        hdu = next(h for h in hdus if h.data is not None)
        image, header = hdu.data, hdu.header
    return image, header, names


def aperture(image, header, radius):
    """Background-subtracted sum within radius of the source, and its noise."""
    import numpy as np

    ny, nx = image.shape
    cx, cy = (nx - 1) / 2.0, (ny - 1) / 2.0
    if "CRPIX1" in header and "CRPIX2" in header:  # Rubin: the source's pixel
        cx, cy = float(header["CRPIX1"]) - 1.0, float(header["CRPIX2"]) - 1.0
    yy, xx = np.indices(image.shape)
    r = np.hypot(xx - cx, yy - cy)
    data = image.astype(np.float64)
    inner, outer = r <= radius, r > radius + 4
    good = outer & np.isfinite(data)
    bg, sigma = 0.0, 0.0
    if good.sum() >= 20:
        bg = float(np.median(data[good]))
        sigma = 1.4826 * float(np.median(np.abs(data[good] - bg)))
    total = float(np.nansum(data[inner] - bg))
    return total, sigma * math.sqrt(int(inner.sum()))


def check_stamps(alerts, survey, report, fail):
    present = [a for a in alerts if any(v for v in a["stamps"].values())]
    report["stamps"] = len(present)
    if not present:
        return
    try:
        import numpy  # noqa: F401
        from astropy.io import fits  # noqa: F401
    except ImportError as e:
        fail(f"cutouts present but cannot open them: {e}")
        return
    shapes, dtypes, bunits, layouts, bad = {}, {}, {}, {}, []
    missing = 0
    rel, matched, checked, inverted = [], 0, 0, 0
    radius = SURVEY[survey]["aperture"]
    for a in present:
        for key, data in a["stamps"].items():
            if not data:
                missing += 1
                continue
            try:
                image, header, names = open_stamp(data, survey)
            except Exception as e:
                bad.append(f"{key} of {a['id']}: {e}")
                continue
            shape = list(image.shape)
            shapes[str(shape)] = shapes.get(str(shape), 0) + 1
            dt = f"{image.dtype.kind}{image.dtype.itemsize * 8}"
            dtypes[dt] = dtypes.get(dt, 0) + 1
            bunit = str(header.get("BUNIT"))
            bunits[bunit] = bunits.get(bunit, 0) + 1
            layouts[",".join(names)] = layouts.get(",".join(names), 0) + 1
            if key != "cutoutDifference" or a["flux"] is None:
                continue
            if a["score"] is not None and a["score"] < 0.5:
                continue  # bogus: no flux to match
            if image.ndim != 2:
                continue
            total, noise = aperture(image, header, radius)
            expected = a["flux"]
            checked += 1
            diff = total - expected
            if expected != 0:
                rel.append(diff / abs(expected))
            if abs(diff) <= 0.2 * abs(expected) or abs(diff) <= 5 * noise:
                matched += 1
    report["stamp_shapes"] = shapes
    report["stamp_dtypes"] = dtypes
    report["stamp_bunit"] = bunits
    report["stamp_hdus"] = layouts
    report["stamps_missing"] = missing
    report["stamps_unreadable"] = len(bad)
    report["flux"] = {
        "checked": checked,
        "median_rel_diff": round(statistics.median(rel), 4) if rel else None,
        "match_fraction": round(matched / checked, 4) if checked else None,
    }
    if bad:
        fail(f"{len(bad)} cutout(s) do not open: {bad[0]}")
    if survey == "ztf" and set(shapes) - {"[63, 63]"}:
        fail(f"ZTF cutout shapes {sorted(shapes)}, expected [63, 63]")
    if survey == "rubin" and len(shapes) > 1:
        fail(f"Rubin cutouts of several shapes: {sorted(shapes)}")
    if set(dtypes) - {"f32"}:
        fail(f"cutout pixel types {sorted(dtypes)}, expected float32")
    if checked and matched / checked < 0.9:
        fail(f"central flux matches the alert's for {matched}/{checked} cutouts (< 90%)")
    elif not checked:
        report["skipped"].append("flux: no non-bogus alert with a difference cutout and a flux")


# ---------------------------------------------------------------- checks

def parse_mix(text):
    weights = {}
    for part in filter(None, re.split(r"[,\s]+", text)):
        key, _, value = part.replace(":", "=").partition("=")
        try:
            weights[key.strip().lower()] = float(value.rstrip("%"))
        except ValueError:
            raise ValueError(f"--mix {text!r}: {part!r} is not NAME=SHARE") from None
    total = sum(weights.values())
    if total <= 0:
        raise ValueError(f"--mix {text!r}: no positive share")
    bogus = weights.get("bogus", 0.0) / total
    sso = sum(v for k, v in weights.items() if k in SSO_KEYS) / total
    return {"bogus": round(bogus, 4), "sso": round(sso, 4)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survey", choices=["ztf", "rubin"], required=True)
    parser.add_argument("--schema", help=".avsc file or folder (ZTF's folder, a Rubin schema/M/m folder)")
    parser.add_argument("--interval", type=float, help="seconds between visits")
    parser.add_argument("--mix", help="the simulate --mix, e.g. periodic=0.4,transient=0.3,bogus=0.2,sso=0.1")
    parser.add_argument("--fields", type=int, help="at most this many distinct fields/pointings")
    parser.add_argument("--count", type=int, help="alerts each file must hold")
    parser.add_argument("dir")
    args = parser.parse_args()

    failures = []
    fail = failures.append
    report = {"survey": args.survey, "dir": args.dir, "skipped": []}
    conf = SURVEY[args.survey]
    expected_mix = None
    if args.mix:
        try:
            expected_mix = parse_mix(args.mix)
        except ValueError as e:
            sys.exit(str(e))

    files = []
    for path in glob.glob(os.path.join(args.dir, "visit-*.avro")):
        m = re.fullmatch(r"visit-(\d+)\.avro", os.path.basename(path))
        if m:
            files.append((int(m.group(1)), path))
    files.sort()
    if not files:
        sys.exit(f"no visit-<n>.avro file in {args.dir}")
    visits = [v for v, _ in files]
    report["files"] = len(files)
    report["visits"] = [visits[0], visits[-1]]
    gaps = [f"{a}->{b}" for a, b in zip(visits, visits[1:]) if b != a + 1]
    if gaps:
        fail(f"visit numbers do not increase by one: {gaps[:3]}")

    schema = None
    report["schema"] = None
    if args.schema:
        try:
            schema, used = load_schema(args.schema)
            report["schema"] = used
        except Exception as e:
            fail(f"cannot load schema {args.schema}: {e}")

    # ------------------------------------------------------------ read
    missing = set()
    per_file, alerts = [], []
    invalid, validated, writer_names = [], 0, set()
    for visit, path in files:
        try:
            with open(path, "rb") as f:
                reader = fastavro.reader(f)
                records = list(reader)
                writer_names.add(str(reader.writer_schema.get("name")))
        except Exception as e:
            fail(f"{os.path.basename(path)} does not read: {e}")
            per_file.append((visit, []))
            continue
        rows = []
        for i, record in enumerate(records):
            if schema is not None:
                try:
                    validate(record, schema, raise_errors=True)
                    validated += 1
                except Exception as e:
                    invalid.append(f"{os.path.basename(path)}[{i}]: {' '.join(str(e).split())[:200]}")
            try:
                row = (ztf_alert if args.survey == "ztf" else rubin_alert)(record, missing)
            except Exception as e:
                fail(f"{os.path.basename(path)}[{i}]: not a {args.survey} alert: {e}")
                continue
            row["visit"] = visit
            rows.append(row)
        per_file.append((visit, rows))
        alerts.extend(rows)
    counts = [len(rows) for _, rows in per_file]
    report["alerts"] = len(alerts)
    report["alerts_per_file"] = [min(counts), max(counts)]
    report["writer_schema"] = sorted(writer_names)
    if schema is not None:
        report["validated"] = validated
        report["invalid"] = len(invalid)
        if invalid:
            fail(f"{len(invalid)} record(s) do not validate against the schema: {invalid[0]}")
    if args.count is not None and set(counts) != {args.count}:
        fail(f"alerts per file {sorted(set(counts))}, expected {args.count}")
    if not alerts:
        fail("no alert read")

    # ------------------------------------------------------------ ids
    seen, dups = set(), 0
    extra_seen, extra_dups = {}, 0
    no_id = sum(1 for a in alerts if a["id"] is None)
    if no_id:
        fail(f"{no_id} alert(s) without an id")
    for a in alerts:
        if a["id"] is None:
            continue
        if a["id"] in seen:
            dups += 1
        seen.add(a["id"])
        for name, value in a["extra_ids"]:
            bucket = extra_seen.setdefault(name, set())
            extra_dups += value in bucket
            bucket.add(value)
    report["duplicate_ids"] = dups + extra_dups
    if dups:
        fail(f"{dups} duplicate {'candid' if args.survey == 'ztf' else 'diaSourceId'}(s)")
    if extra_dups:
        fail(f"{extra_dups} duplicate alertId(s)")
    mismatched = sum(a["id_mismatch"] for a in alerts)
    report["id_mismatch"] = mismatched
    if mismatched:
        fail(f"{mismatched} alert(s) whose top-level id differs from the detection's")

    # ------------------------------------------------------------ objects & histories
    by_object = {}
    for a in alerts:
        if a["object"] is not None:
            by_object.setdefault(a["object"], []).append(a)
    recurring = {k: v for k, v in by_object.items() if len({a["visit"] for a in v}) >= 2}
    report["objects"] = len(by_object)
    report["recurring_objects"] = len(recurring)
    report["max_visits_per_object"] = max((len(v) for v in by_object.values()), default=0)
    if len(files) >= 2 and not recurring:
        fail("no object appears in two visits")
    elif len(files) < 2:
        report["skipped"].append("recurrence: a single visit")

    window = conf["window"]
    hist = {"pairs": 0, "missing_previous": 0, "not_longer": 0, "entries": 0,
            "detections": 0, "upper_limits": 0, "not_before": 0, "too_old": 0,
            "unordered": 0, "max_age_days": 0.0}
    for rows in recurring.values():
        rows = sorted(rows, key=lambda a: (a["time"] is None, a["time"]))
        for early, late in zip(rows, rows[1:]):
            if early["time"] is None or late["time"] is None:
                continue
            hist["pairs"] += 1
            if late["time"] - early["time"] <= window:
                ids = {i for i, _ in late["dets"]}
                times = [t for _, t in late["dets"] if t is not None]
                if early["id"] not in ids and not any(abs(t - early["time"]) < 1e-6 for t in times):
                    hist["missing_previous"] += 1
            main_hist = early["hist"].get("prv_candidates", early["hist"].get("prvDiaSources", []))
            oldest = min([t for t in main_hist if t is not None] + [early["time"]])
            if late["time"] - oldest <= window and late["n_hist"] <= early["n_hist"]:
                hist["not_longer"] += 1
    for a in alerts:
        hist["detections"] += len(a["dets"])
        hist["upper_limits"] += a["n_ul"]
        if a["time"] is None:
            continue
        for times in a["hist"].values():
            known = [t for t in times if t is not None]
            hist["entries"] += len(times)
            hist["not_before"] += sum(t >= a["time"] for t in known)
            hist["too_old"] += sum(a["time"] - t > window + MS_DAYS for t in known)
            hist["unordered"] += sum(b < x for x, b in zip(known, known[1:]))
            if known:
                hist["max_age_days"] = max(hist["max_age_days"], round(a["time"] - min(known), 6))
    report["history"] = hist
    if hist["missing_previous"]:
        fail(f"{hist['missing_previous']} of {hist['pairs']} later alert(s) lack the earlier detection in their history")
    if hist["not_longer"]:
        fail(f"{hist['not_longer']} of {hist['pairs']} later alert(s) have no longer a history")
    if hist["not_before"]:
        fail(f"{hist['not_before']} history entr(y/ies) not before the alert's time")
    if hist["too_old"]:
        fail(f"{hist['too_old']} history entr(y/ies) older than {window:g} days")
    if hist["unordered"]:
        fail(f"{hist['unordered']} history entr(y/ies) out of time order")
    if args.survey == "ztf" and hist["entries"] and not hist["upper_limits"]:
        fail("no upper limit (prv_candidates entry with candid null) in any history")
    if "fp_hists" in missing:
        report["skipped"].append("fp_hists: not in this schema version")

    # ------------------------------------------------------------ times
    visit_times, spread = [], 0.0
    for visit, rows in per_file:
        times = [a["time"] for a in rows if a["time"] is not None]
        if times:
            spread = max(spread, max(times) - min(times))
            visit_times.append((visit, statistics.median(times)))
    diffs = [(b - a) * 86400.0 for (_, a), (_, b) in zip(visit_times, visit_times[1:])]
    report["times"] = {
        "first": visit_times[0][1] if visit_times else None,
        "spread_s": round(spread * 86400.0, 6),
        "interval_s": [round(min(diffs), 6), round(max(diffs), 6)] if diffs else None,
    }
    if spread > MS_DAYS:
        fail(f"alerts of one visit differ in time by {spread * 86400:.3f} s")
    if any(d <= 0 for d in diffs):
        fail("visit times do not increase with the visit number")
    if args.interval is not None and diffs:
        worst = max(abs(d - args.interval) for d in diffs)
        if worst > 1e-3:
            fail(f"visits {args.interval:g} s apart expected, off by up to {worst:.6f} s")

    # ------------------------------------------------------------ positions
    worst, centers = 0.0, []
    for visit, rows in per_file:
        points = [(a["ra"], a["dec"]) for a in rows if a["ra"] is not None and a["dec"] is not None]
        if not points:
            continue
        ra0, dec0 = median_position(points)
        centers.append((ra0, dec0))
        worst = max([worst] + [separation(ra0, dec0, ra, dec) for ra, dec in points])
    pointings = []
    for ra, dec in centers:
        if not any(separation(ra, dec, r, d) <= conf["radius"] for r, d in pointings):
            pointings.append((ra, dec))
    field_ids = {a["field"] for a in alerts if a["field"] is not None}
    report["positions"] = {"max_sep_deg": round(worst, 4), "limit_deg": conf["radius"],
                           "pointings": len(pointings)}
    if args.survey == "ztf":
        report["positions"]["field_ids"] = len(field_ids)
    if worst > conf["radius"]:
        fail(f"an alert lies {worst:.2f} deg from its visit's median position (> {conf['radius']:g})")
    if args.fields is not None:
        if len(pointings) > args.fields:
            fail(f"{len(pointings)} distinct pointings for --fields {args.fields}")
        if len(field_ids) > args.fields:
            fail(f"{len(field_ids)} distinct ZTF field ids for --fields {args.fields}")
    mismatch = sum(1 for a in alerts if a["visit_field"] is not None and a["visit_field"] != a["visit"])
    if args.survey == "rubin":
        report["visit_field_mismatch"] = mismatch  # diaSource.visit vs file name: reported only

    # ------------------------------------------------------------ classes
    n = len(alerts) or 1
    bogus = sum(1 for a in alerts if a["score"] is not None and a["score"] < 0.5)
    sso = sum(1 for a in alerts if a["sso"])
    by = sorted({a["score_by"] for a in alerts if a["score_by"]})
    report["classes"] = {
        "bogus_fraction": round(bogus / n, 4),
        "bogus_by": by,
        "unscored": sum(1 for a in alerts if a["score"] is None),
        "sso_fraction": round(sso / n, 4),
    }
    if expected_mix:
        expected = expected_mix
        report["classes"]["mix"] = expected
        if abs(bogus / n - expected["bogus"]) > 0.05:
            fail(f"bogus fraction {bogus / n:.3f}, the mix has {expected['bogus']:.3f}")
        if abs(sso / n - expected["sso"]) > 0.05:
            fail(f"solar-system fraction {sso / n:.3f}, the mix has {expected['sso']:.3f}")

    # ------------------------------------------------------------ cutouts
    try:
        check_stamps(alerts, args.survey, report, fail)
    except Exception as e:
        fail(f"cutout check crashed: {e!r}")

    report["skipped"].extend(f"missing field {m}" for m in sorted(missing) if m != "fp_hists")
    report["ok"] = not failures
    report["failures"] = failures
    print(json.dumps(report, allow_nan=False))
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        sys.exit(failures[0] + more)


if __name__ == "__main__":
    main()
