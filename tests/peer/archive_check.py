"""Reads alertstream archives with independent implementations: fastavro for
Avro archives, pyarrow for Parquet. Used by tests/record.rs.

  archive_check.py avro-equal ARCHIVE_DIR SOURCE_FILE...
      every alert of the source container files is in the archive exactly
      once, value for value as fastavro reads both; prints "ok N"
  archive_check.py parquet DIR
      prints one JSON object per Parquet file: its path, row count, the
      type of chosen columns, and the candids and candidate.rb values
  archive_check.py parquet-stamps DIR SOURCE_FILE...
      every alert of the source container files is in the Parquet files
      under DIR with the same three cutouts (file name and bytes), as
      fastavro reads the sources and pyarrow the archive; prints "ok N"
"""
import glob
import json
import os
import sys

import fastavro


def avro_records(paths):
    for path in paths:
        with open(path, "rb") as f:
            for record in fastavro.reader(f):
                yield record


def avro_equal(archive_dir, sources):
    archived = list(avro_records(sorted(glob.glob(os.path.join(archive_dir, "*.avro")))))
    expected = list(avro_records(sources))
    key = lambda r: (r["candid"], r.get("schemavsn"))
    by_key = {}
    for record in archived:
        by_key.setdefault(key(record), []).append(record)
    for record in expected:
        found = by_key.get(key(record), [])
        if len(found) != 1:
            raise SystemExit(f"candid {key(record)}: {len(found)} copies in the archive")
        if found[0] != record:
            raise SystemExit(f"candid {key(record)}: archived value differs")
    if len(archived) != len(expected):
        raise SystemExit(f"{len(archived)} archived for {len(expected)} sent")
    print(f"ok {len(archived)}")


def parquet(directory):
    import pyarrow.parquet as pq

    for path in sorted(glob.glob(os.path.join(directory, "**", "*.parquet"), recursive=True)):
        table = pq.read_table(path)
        schema = table.schema
        types = {}
        for name in ["candid", "objectId", "candidate", "prv_candidates", "cutoutScience", "_kafka"]:
            if name in schema.names:
                field = schema.field(name)
                types[name] = {"type": str(field.type), "nullable": field.nullable}
        candidate = schema.field("candidate").type
        rb = candidate.field("rb")
        types["candidate.rb"] = {"type": str(rb.type), "nullable": rb.nullable}
        rows = table.to_pylist()
        print(json.dumps({
            "path": os.path.relpath(path, directory),
            "rows": table.num_rows,
            "types": types,
            "candids": [r["candid"] for r in rows],
            "rb": [r["candidate"]["rb"] for r in rows],
            "offsets": [r["_kafka"]["offset"] for r in rows],
        }))


def parquet_stamps(directory, sources):
    import pyarrow.parquet as pq

    names = ["cutoutScience", "cutoutTemplate", "cutoutDifference"]
    key = lambda r: (r["candid"], r.get("schemavsn"))
    archived = {}
    for path in sorted(glob.glob(os.path.join(directory, "**", "*.parquet"), recursive=True)):
        present = pq.read_schema(path).names
        columns = [c for c in ["candid", "schemavsn"] + names if c in present]
        for row in pq.read_table(path, columns=columns).to_pylist():
            archived.setdefault(key(row), []).append(row)
    expected = list(avro_records(sources))
    for record in expected:
        found = archived.get(key(record), [])
        if len(found) != 1:
            raise SystemExit(f"candid {key(record)}: {len(found)} rows in the archive")
        for name in names:
            if found[0][name] != record[name]:
                raise SystemExit(f"candid {key(record)}: {name} differs")
    if sum(map(len, archived.values())) != len(expected):
        raise SystemExit(f"{sum(map(len, archived.values()))} archived for {len(expected)} sent")
    print(f"ok {len(expected)}")


if __name__ == "__main__":
    command = sys.argv[1]
    if command == "avro-equal":
        avro_equal(sys.argv[2], sys.argv[3:])
    elif command == "parquet":
        parquet(sys.argv[2])
    elif command == "parquet-stamps":
        parquet_stamps(sys.argv[2], sys.argv[3:])
    else:
        raise SystemExit(__doc__)
