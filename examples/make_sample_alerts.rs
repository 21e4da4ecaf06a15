//! Makes `sample-alerts/`: the alerts `alertstream send` uses when given no
//! `--alerts`. Each is a ZTF-layout alert (the built-in schema, ZTF 4.02) with
//! realistic values, a light curve of earlier detections and upper limits, a
//! forced-photometry history (`fp_hists`), and three real cutouts:
//! gzip-compressed 63x63 float32 FITS images of a point source.
//!
//! Deterministic: the same seed gives the same files. Run it with
//!     cargo run --example make_sample_alerts
//! then rebuild, since the files are embedded in the binary.

use std::io::Write;

use apache_avro::schema::{RecordField, Schema};
use apache_avro::types::Value;
use apache_avro::Writer;
use flate2::write::GzEncoder;
use flate2::Compression;

const FILES: usize = 3;
const ALERTS_PER_FILE: usize = 4;
const STAMP: usize = 63;

/// xorshift64*: small, deterministic, good enough for synthetic data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let u = self.uniform(1e-12, 1.0);
        let v = self.uniform(0.0, 1.0);
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What one object looks like; its detections share these.
struct Object {
    object_id: String,
    ra: f64,
    dec: f64,
    mag: f64,
    field: i32,
    rcid: i32,
}

fn main() -> anyhow::Result<()> {
    let schema = alertstream::avro::schema::built_in();
    let out_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("sample-alerts");
    std::fs::create_dir_all(&out_dir)?;
    let mut rng = Rng(0x5EED_A1E7_2026);
    // 2026-11-27 05:00 UTC, a night of the project's first visits.
    let night_jd = 2_461_371.708_333;
    let mut candid: i64 = 3_301_208_453_615_010_000;
    for file in 1..=FILES {
        let path = out_dir.join(format!("visit-{file}.avro"));
        let mut writer = Writer::new(&schema, Vec::new());
        let pid = 3_301_208_453_615 + file as i64;
        let jd = night_jd + file as f64 * 39.0 / 86_400.0;
        for _ in 0..ALERTS_PER_FILE {
            candid += 1 + rng.below(5_000) as i64;
            let object = Object {
                object_id: object_id(&mut rng),
                ra: rng.uniform(0.0, 360.0),
                dec: rng.uniform(-30.0, 80.0),
                mag: rng.uniform(16.0, 20.5),
                field: 200 + rng.below(700) as i32,
                rcid: rng.below(64) as i32,
            };
            let alert = alert(&schema, &mut rng, &object, candid, pid, jd)?;
            writer.append(alert)?;
        }
        let bytes = writer.into_inner()?;
        std::fs::write(&path, &bytes)?;
        println!(
            "{}: {} alerts, {} bytes",
            path.display(),
            ALERTS_PER_FILE,
            bytes.len()
        );
    }
    Ok(())
}

fn object_id(rng: &mut Rng) -> String {
    let letters: String = (0..7)
        .map(|_| (b'a' + rng.below(26) as u8) as char)
        .collect();
    format!("ZTF26{letters}")
}

/// The schema of one top-level field of the alert.
fn field_schema<'s>(schema: &'s Schema, field: &str) -> &'s Schema {
    let Schema::Record(record) = schema else {
        panic!("alert schema is not a record")
    };
    &record
        .fields
        .iter()
        .find(|f| f.name == field)
        .unwrap_or_else(|| panic!("no field {field}"))
        .schema
}

fn record_fields(schema: &Schema, field: &str) -> Vec<RecordField> {
    let mut schema = field_schema(schema, field);
    loop {
        match schema {
            Schema::Record(r) => return r.fields.clone(),
            Schema::Array(a) => schema = &a.items,
            Schema::Union(u) => {
                schema = u
                    .variants()
                    .iter()
                    .find(|s| !matches!(s, Schema::Null))
                    .expect("union with a non-null branch")
            }
            other => panic!("unexpected schema {other:?}"),
        }
    }
}

fn alert(
    schema: &Schema,
    rng: &mut Rng,
    object: &Object,
    candid: i64,
    pid: i64,
    jd: f64,
) -> anyhow::Result<Value> {
    let candidate = detection(
        &record_fields(schema, "candidate"),
        rng,
        object,
        Some(candid),
        pid,
        jd,
        object.mag,
    );
    let history_fields = record_fields(schema, "prv_candidates");
    let history: Vec<Value> = (0..10 + rng.below(20))
        .map(|i| {
            let days = 1.0 + i as f64 * rng.uniform(0.8, 3.0);
            let upper_limit = rng.below(4) == 0;
            let mag = object.mag + 0.3 * rng.normal() + 0.05 * days;
            let prv_candid = (!upper_limit).then(|| candid - 1_000_000_000 * (i as i64 + 1));
            detection(
                &history_fields,
                rng,
                object,
                prv_candid,
                pid - 1 - i as i64,
                jd - days,
                mag,
            )
        })
        .collect();
    let forced_fields = record_fields(schema, "fp_hists");
    let forced: Vec<Value> = (0..8 + rng.below(25))
        .map(|i| {
            let days = 0.5 + i as f64 * rng.uniform(0.8, 2.5);
            let mag = object.mag + 0.3 * rng.normal() + 0.05 * days;
            forced_epoch(
                &forced_fields,
                rng,
                object,
                pid - 1 - i as i64,
                jd - days,
                mag,
            )
        })
        .collect();
    let stamp_base = format!("candid{candid}_pid{pid}");
    let cutout_schema = field_schema(schema, "cutoutScience");
    let cutout = |kind: &str, image: Vec<u8>| {
        fit(
            cutout_schema,
            Some(Value::Record(vec![
                (
                    "fileName".into(),
                    Value::String(format!("{stamp_base}_{kind}.fits.gz")),
                ),
                ("stampData".into(), Value::Bytes(image)),
            ])),
        )
    };
    let flux = 10f64.powf((21.0 - object.mag) / 2.5) * 40.0;
    let science = fits_gz(rng, object, flux, 120.0, "science")?;
    let template = fits_gz(rng, object, flux * 0.2, 100.0, "template")?;
    let difference = fits_gz(rng, object, flux * 0.8, 0.0, "difference")?;
    Ok(Value::Record(vec![
        ("schemavsn".into(), Value::String("4.02".into())),
        (
            "publisher".into(),
            Value::String("alertstream sample generator".into()),
        ),
        ("objectId".into(), Value::String(object.object_id.clone())),
        ("candid".into(), Value::Long(candid)),
        ("candidate".into(), candidate),
        (
            "prv_candidates".into(),
            fit(
                field_schema(schema, "prv_candidates"),
                Some(Value::Array(history)),
            ),
        ),
        (
            "fp_hists".into(),
            fit(field_schema(schema, "fp_hists"), Some(Value::Array(forced))),
        ),
        ("cutoutScience".into(), cutout("targ_sci", science)),
        ("cutoutTemplate".into(), cutout("ref", template)),
        ("cutoutDifference".into(), cutout("scimref", difference)),
    ]))
}

/// One forced-photometry epoch: a difference-image flux at the object's
/// position, measured whether or not it was detected.
fn forced_epoch(
    fields: &[RecordField],
    rng: &mut Rng,
    object: &Object,
    pid: i64,
    jd: f64,
    mag: f64,
) -> Value {
    let zero_point = 26.2 + 0.1 * rng.normal();
    let flux = 10f64.powf((zero_point - mag) / 2.5);
    let error = flux * rng.uniform(0.02, 0.15) + 20.0;
    let values = fields
        .iter()
        .map(|field| {
            let value = match field.name.as_str() {
                "forcediffimflux" => Some(Value::Float((flux + error * rng.normal()) as f32)),
                "forcediffimfluxunc" => Some(Value::Float(error as f32)),
                "procstatus" => Some(Value::String("0".into())),
                "magzpsci" => Some(Value::Float(zero_point as f32)),
                "magzpsciunc" | "magzpscirms" => {
                    Some(Value::Float(rng.uniform(0.001, 0.05) as f32))
                }
                "sciinpseeing" => Some(Value::Float(rng.uniform(1.5, 3.5) as f32)),
                "scibckgnd" => Some(Value::Float(rng.uniform(80.0, 400.0) as f32)),
                "scisigpix" => Some(Value::Float(rng.uniform(5.0, 20.0) as f32)),
                "adpctdif1" | "adpctdif2" => Some(Value::Float(rng.uniform(0.05, 0.3) as f32)),
                _ => return detection_value(field, rng, object, None, pid, jd, mag),
            };
            (field.name.clone(), fit(&field.schema, value))
        })
        .collect();
    Value::Record(values)
}

/// A detection record (`candidate` or `prv_candidate`) with plausible values.
fn detection(
    fields: &[RecordField],
    rng: &mut Rng,
    object: &Object,
    candid: Option<i64>,
    pid: i64,
    jd: f64,
    mag: f64,
) -> Value {
    let values = fields
        .iter()
        .map(|field| detection_value(field, rng, object, candid, pid, jd, mag))
        .collect();
    Value::Record(values)
}

/// One field of a detection, by its name.
fn detection_value(
    field: &RecordField,
    rng: &mut Rng,
    object: &Object,
    candid: Option<i64>,
    pid: i64,
    jd: f64,
    mag: f64,
) -> (String, Value) {
    let detected = candid.is_some();
    let name = field.name.as_str();
    let value = match name {
        "jd" => Some(Value::Double(jd)),
        "fid" => Some(Value::Int(1 + rng.below(2) as i32)),
        "pid" => Some(Value::Long(pid)),
        "candid" => candid.map(Value::Long),
        "programid" => Some(Value::Int(1)),
        "programpi" => Some(Value::String("Kulkarni".into())),
        "isdiffpos" => {
            detected.then(|| Value::String(if rng.below(5) == 0 { "f" } else { "t" }.into()))
        }
        "ra" => detected.then(|| Value::Double(object.ra + rng.normal() * 1e-5)),
        "dec" => detected.then(|| Value::Double(object.dec + rng.normal() * 1e-5)),
        "ranr" => Some(Value::Double(object.ra + 2e-4)),
        "decnr" => Some(Value::Double(object.dec - 1e-4)),
        "magpsf" => detected.then_some(Value::Float(mag as f32)),
        "sigmapsf" => detected.then(|| Value::Float(rng.uniform(0.02, 0.2) as f32)),
        "diffmaglim" => Some(Value::Float(rng.uniform(19.8, 21.0) as f32)),
        "field" => Some(Value::Int(object.field)),
        "rcid" => Some(Value::Int(object.rcid)),
        "nid" => Some(Value::Int(2_100 + (jd as i32 % 1000))),
        "tblid" => Some(Value::Long(rng.below(200) as i64)),
        "xpos" | "ypos" => Some(Value::Float(rng.uniform(30.0, 3050.0) as f32)),
        "ndethist" | "ncovhist" | "nmtchps" | "nmatches" | "nframesref" => {
            Some(Value::Int(1 + rng.below(400) as i32))
        }
        "nneg" | "nbad" | "tooflag" => Some(Value::Int(rng.below(3) as i32)),
        "rfid" | "objectidps1" | "objectidps2" | "objectidps3" => Some(Value::Long(
            100_000_000_000_000 + rng.below(99_999_999_999_999) as i64,
        )),
        "jdstarthist" | "jdstartref" => Some(Value::Double(jd - rng.uniform(100.0, 2000.0))),
        "jdendhist" | "jdendref" => Some(Value::Double(jd - rng.uniform(0.0, 100.0))),
        "rb" | "drb" | "sgscore1" | "sgscore2" | "sgscore3" | "classtar" => {
            Some(Value::Float(rng.uniform(0.0, 1.0) as f32))
        }
        "rbversion" => Some(Value::String("t17_f5_c3".into())),
        "drbversion" => Some(Value::String("d6_m7".into())),
        "pdiffimfilename" => Some(Value::String(format!("ztf_{pid}_scimrefdiffimg.fits"))),
        "ssnamenr" => Some(Value::String("null".into())),
        "exptime" => Some(Value::Float(30.0)),
        "scorr" => detected.then(|| Value::Double(rng.uniform(5.0, 60.0))),
        _ if name.starts_with("mag")
            || name.starts_with('s') && !name.starts_with("sig") && name.contains("mag") =>
        {
            Some(Value::Float((mag + rng.normal()) as f32))
        }
        _ if name.starts_with("sig") => Some(Value::Float(rng.uniform(0.01, 0.3) as f32)),
        _ if name.starts_with("dist") => Some(Value::Float(rng.uniform(0.1, 30.0) as f32)),
        _ => Some(Value::Float(rng.normal() as f32)),
    };
    (name.to_string(), fit(&field.schema, value))
}

/// Wraps a value in the union branch its field's schema needs (null if absent).
fn fit(schema: &Schema, value: Option<Value>) -> Value {
    match schema {
        Schema::Union(union) => {
            let index = |pred: &dyn Fn(&Schema) -> bool| {
                union
                    .variants()
                    .iter()
                    .position(pred)
                    .expect("matching branch") as u32
            };
            match value {
                None => Value::Union(index(&|s| matches!(s, Schema::Null)), Box::new(Value::Null)),
                Some(v) => {
                    let v = coerce(
                        union
                            .variants()
                            .iter()
                            .find(|s| !matches!(s, Schema::Null))
                            .expect("branch"),
                        v,
                    );
                    let i = index(&|s| !matches!(s, Schema::Null));
                    Value::Union(i, Box::new(v))
                }
            }
        }
        other => coerce(other, value.expect("a value for a required field")),
    }
}

/// Converts the generated number to the field's declared numeric type.
fn coerce(schema: &Schema, value: Value) -> Value {
    let as_f64 = |v: &Value| match v {
        Value::Float(f) => f64::from(*f),
        Value::Double(d) => *d,
        Value::Int(i) => f64::from(*i),
        Value::Long(l) => *l as f64,
        _ => 0.0,
    };
    match (schema, &value) {
        (Schema::Float, Value::Double(_) | Value::Int(_)) => Value::Float(as_f64(&value) as f32),
        (Schema::Double, Value::Float(_) | Value::Int(_)) => Value::Double(as_f64(&value)),
        (Schema::Int, Value::Float(_) | Value::Double(_)) => {
            Value::Int(as_f64(&value).round() as i32)
        }
        (Schema::Long, Value::Float(_) | Value::Double(_) | Value::Int(_)) => {
            Value::Long(as_f64(&value).round() as i64)
        }
        _ => value,
    }
}

/// A gzip-compressed FITS image: sky plus noise plus a Gaussian point source.
fn fits_gz(
    rng: &mut Rng,
    object: &Object,
    flux: f64,
    sky: f64,
    kind: &str,
) -> anyhow::Result<Vec<u8>> {
    let mut header = Vec::new();
    let mut card = |key: &str, value: &str, comment: &str| {
        let text = if key == "END" {
            "END".to_string()
        } else {
            format!("{key:<8}= {value:>20} / {comment}")
        };
        let mut text = text.into_bytes();
        text.resize(80, b' ');
        header.extend_from_slice(&text[..80]);
    };
    card("SIMPLE", "T", "conforms to FITS standard");
    card("BITPIX", "-32", "IEEE single precision floating point");
    card("NAXIS", "2", "number of array dimensions");
    card("NAXIS1", &STAMP.to_string(), "image width [pixels]");
    card("NAXIS2", &STAMP.to_string(), "image height [pixels]");
    card("CTYPE1", "'RA---TAN'", "gnomonic projection");
    card("CTYPE2", "'DEC--TAN'", "gnomonic projection");
    card("CRPIX1", "32.0", "reference pixel");
    card("CRPIX2", "32.0", "reference pixel");
    card(
        "CRVAL1",
        &format!("{:.7}", object.ra),
        "RA at reference pixel [deg]",
    );
    card(
        "CRVAL2",
        &format!("{:.7}", object.dec),
        "Dec at reference pixel [deg]",
    );
    card("CDELT1", "-0.000281", "1.01 arcsec per pixel [deg]");
    card("CDELT2", "0.000281", "1.01 arcsec per pixel [deg]");
    card(
        "OBJECT",
        &format!("'{}'", object.object_id),
        "object identifier",
    );
    card("IMAGETYP", &format!("'{kind}'"), "cutout kind");
    card("END", "", "");
    header.resize(header.len().div_ceil(2880) * 2880, b' ');

    let sigma = 1.8;
    let centre = (STAMP as f64 - 1.0) / 2.0 + rng.normal() * 0.3;
    let mut data = Vec::with_capacity(STAMP * STAMP * 4);
    for y in 0..STAMP {
        for x in 0..STAMP {
            let r2 = (x as f64 - centre).powi(2) + (y as f64 - centre).powi(2);
            let source = flux / (2.0 * std::f64::consts::PI * sigma * sigma)
                * (-r2 / (2.0 * sigma * sigma)).exp();
            let noise = (sky.max(25.0) + source.max(0.0)).sqrt() * rng.normal();
            let pixel = (sky + source + noise) as f32;
            data.extend_from_slice(&pixel.to_be_bytes());
        }
    }
    data.resize(data.len().div_ceil(2880) * 2880, 0);

    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&header)?;
    gz.write_all(&data)?;
    Ok(gz.finish()?)
}
