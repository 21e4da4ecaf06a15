#!/usr/bin/env python3
"""astropy's zscale limits of every cutout in some Avro alert files: the
reference that tests/zscale.rs holds `view::cutout::zscale` to.

  zscale_check.py --out DIR FILE_OR_FOLDER...

Reads every alert (fastavro) of the given Avro files (a folder: its *.avro
files, sorted) and, for each of cutoutScience, cutoutTemplate and
cutoutDifference, writes the cutout's bytes as they are in the alert
(gzip-compressed FITS for ZTF, plain FITS for Rubin) to
DIR/<file stem>-<alert index>-<stamp>.fits, then opens them with astropy.io.fits
(ignore_missing_simple=True, as ZTF's first card is non-standard) and takes
the first HDU that holds an image of two or more axes.

Prints one JSON list, an entry per cutout written:
  {"file": path, "astropy_lo": .., "astropy_hi": .., "min": .., "max": ..,
   "width": NAXIS1, "height": NAXIS2}
with ZScaleInterval()'s limits (its defaults), the finite minimum and
maximum, and the image's shape. A missing (null or empty) cutout is left out; a cutout that astropy
cannot open fails the script (exit 1), as the comparison would be void.
"""

import argparse
import gzip
import io
import json
import os
import sys
import warnings

import fastavro
import numpy as np
from astropy.io import fits
from astropy.visualization import ZScaleInterval

STAMPS = (("cutoutScience", "science"), ("cutoutTemplate", "template"),
          ("cutoutDifference", "difference"))


def avro_files(paths):
    for path in paths:
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                if name.endswith(".avro"):
                    yield os.path.join(path, name)
        else:
            yield path


def stamp_bytes(value):
    """ZTF: a record with stampData; Rubin: the bytes themselves."""
    if isinstance(value, dict):
        value = value.get("stampData")
    if isinstance(value, (bytes, bytearray)) and len(value) > 0:
        return bytes(value)
    return None


def image_of(data):
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdus = fits.open(io.BytesIO(data), memmap=False, ignore_missing_simple=True)
        for hdu in hdus:
            if hdu.is_image and hdu.data is not None and hdu.data.ndim >= 2:
                return np.asarray(hdu.data)
    raise ValueError("no image HDU of two or more axes")


def limits(path, data):
    image = image_of(data)
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return None
    lo, hi = ZScaleInterval().get_limits(image)
    return {
        "file": path,
        "astropy_lo": float(lo),
        "astropy_hi": float(hi),
        "min": float(finite.min()),
        "max": float(finite.max()),
        "width": int(image.shape[-1]),
        "height": int(image.shape[-2]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder for the cutout files")
    parser.add_argument("paths", nargs="+", help="Avro files or folders of them")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    found = []
    for avro in avro_files(args.paths):
        stem = os.path.splitext(os.path.basename(avro))[0]
        with open(avro, "rb") as f:
            for index, alert in enumerate(fastavro.reader(f)):
                for field, name in STAMPS:
                    data = stamp_bytes(alert.get(field))
                    if data is None:
                        continue
                    path = os.path.join(args.out, f"{stem}-{index}-{name}.fits")
                    with open(path, "wb") as out:
                        out.write(data)
                    try:
                        entry = limits(path, data)
                    except Exception as e:  # noqa: BLE001 - any failure voids the test
                        print(f"{path}: astropy cannot read it: {e}", file=sys.stderr)
                        sys.exit(1)
                    if entry is not None:
                        found.append(entry)
    json.dump(found, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
