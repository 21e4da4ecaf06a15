//! The table row of an alert: who, when, where, how bright, how real. Read
//! from the alert in `print`'s JSON shape, for ZTF and Rubin alike (older
//! Rubin schemas name the same fields differently).

use serde::Serialize;
use serde_json::Value;

use crate::avro::plan::Need;

/// What the stream page's table shows of one alert.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub object_id: Option<String>,
    /// The exposure's time as Unix milliseconds (UTC).
    pub time_ms: Option<i64>,
    pub ra: Option<f64>,
    pub dec: Option<f64>,
    pub band: Option<String>,
    /// A magnitude (ZTF) or a flux in nJy (Rubin), per `unit`.
    pub value: Option<f64>,
    pub error: Option<f64>,
    pub unit: &'static str,
    /// The real/bogus score: ZTF's drb (else rb), Rubin's reliability.
    pub score: Option<f64>,
}

/// Julian date of the Unix epoch, and MJD's offset from JD.
const UNIX_EPOCH_JD: f64 = 2_440_587.5;
const MJD_OFFSET: f64 = 2_400_000.5;
/// TAI minus UTC since 2017 (Rubin's times are TAI).
const TAI_MINUS_UTC_S: f64 = 37.0;

/// The fields a row reads, ZTF's and Rubin's (old and new names): decoding
/// only these skips the rest of an alert (its history, its cutouts).
const ROW_FIELDS: &[&str] = &[
    "objectId",
    "diaSourceId",
    "alertId",
    "diaObject.diaObjectId",
    "candidate.jd",
    "candidate.ra",
    "candidate.dec",
    "candidate.fid",
    "candidate.magpsf",
    "candidate.sigmapsf",
    "candidate.rb",
    "candidate.drb",
    "diaSource.midpointMjdTai",
    "diaSource.midPointTai",
    "diaSource.ra",
    "diaSource.dec",
    "diaSource.decl",
    "diaSource.band",
    "diaSource.filterName",
    "diaSource.psfFlux",
    "diaSource.psFlux",
    "diaSource.psfFluxErr",
    "diaSource.psFluxErr",
    "diaSource.reliability",
    "diaSource.diaObjectId",
    "diaSource.ssObjectId",
];

/// What the decoder must decode of an alert for its row.
pub fn need() -> Need {
    let mut need = Need::none();
    for path in ROW_FIELDS {
        let parts: Vec<String> = path.split('.').map(str::to_string).collect();
        need.add(&parts);
    }
    need
}

impl Summary {
    /// The row of an alert decoded with at least [`need`].
    pub fn of_avro(alert: &apache_avro::types::Value) -> Self {
        let mut line = Vec::with_capacity(1024);
        crate::avro::json::write_alert(&mut line, alert);
        serde_json::from_slice(&line)
            .map(|alert| Self::of(&alert))
            .unwrap_or_default()
    }

    pub fn of(alert: &Value) -> Self {
        if let Some(candidate) = alert.get("candidate").filter(|c| c.is_object()) {
            return Self::ztf(alert, candidate);
        }
        if let Some(source) = alert.get("diaSource").filter(|s| s.is_object()) {
            return Self::rubin(alert, source);
        }
        Self::default()
    }

    fn ztf(alert: &Value, candidate: &Value) -> Self {
        let band = number(candidate, &["fid"]).map(|fid| match fid as i64 {
            1 => "g".to_string(),
            2 => "r".to_string(),
            3 => "i".to_string(),
            other => format!("fid {other}"),
        });
        Self {
            object_id: text(alert, &["objectId"]),
            time_ms: number(candidate, &["jd"]).and_then(|jd| unix_ms(jd - UNIX_EPOCH_JD, 0.0)),
            ra: number(candidate, &["ra"]),
            dec: number(candidate, &["dec"]),
            band,
            value: number(candidate, &["magpsf"]),
            error: number(candidate, &["sigmapsf"]),
            unit: "mag",
            score: number(candidate, &["drb"]).or_else(|| number(candidate, &["rb"])),
        }
    }

    fn rubin(alert: &Value, source: &Value) -> Self {
        let object = alert.get("diaObject").unwrap_or(&Value::Null);
        let object_id = text(object, &["diaObjectId"])
            .or_else(|| text(source, &["diaObjectId", "ssObjectId"]))
            .or_else(|| text(alert, &["diaSourceId", "alertId"]));
        let mjd = number(source, &["midpointMjdTai", "midPointTai"]);
        Self {
            object_id,
            time_ms: mjd.and_then(|mjd| unix_ms(mjd + MJD_OFFSET - UNIX_EPOCH_JD, TAI_MINUS_UTC_S)),
            ra: number(source, &["ra"]),
            dec: number(source, &["dec", "decl"]),
            band: text(source, &["band", "filterName"]),
            value: number(source, &["psfFlux", "psFlux"]),
            error: number(source, &["psfFluxErr", "psFluxErr"]),
            unit: "nJy",
            score: number(source, &["reliability"]),
        }
    }
}

/// Days since the Unix epoch as milliseconds, less `minus_s` seconds.
fn unix_ms(days: f64, minus_s: f64) -> Option<i64> {
    let ms = (days * 86_400.0 - minus_s) * 1000.0;
    (ms.is_finite() && ms.abs() < 1e15).then(|| ms.round() as i64)
}

/// The first of `names` that is a finite number (NaN arrives as a string).
fn number(record: &Value, names: &[&str]) -> Option<f64> {
    names
        .iter()
        .find_map(|name| record.get(name)?.as_f64().filter(|v| v.is_finite()))
}

/// The first of `names` that is a string or a number, as text.
fn text(record: &Value, names: &[&str]) -> Option<String> {
    names.iter().find_map(|name| match record.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ztf_row() {
        let alert = json!({"objectId": "ZTF18abc", "candidate": {
            "jd": 2_460_000.5, "ra": 10.5, "dec": -3.25, "fid": 2, "magpsf": 18.5,
            "sigmapsf": 0.1, "rb": 0.7, "drb": "NaN"}});
        let row = Summary::of(&alert);
        assert_eq!(row.object_id.as_deref(), Some("ZTF18abc"));
        assert_eq!(row.band.as_deref(), Some("r"));
        // JD 2460000.5 is 2023-02-25T00:00:00Z.
        assert_eq!(row.time_ms, Some(1_677_283_200_000));
        assert_eq!(row.score, Some(0.7), "a NaN drb falls back to rb");
        assert_eq!((row.value, row.unit), (Some(18.5), "mag"));
    }

    #[test]
    fn rubin_rows_old_and_new_names() {
        let new = json!({"diaSourceId": 7, "diaObject": {"diaObjectId": 42},
            "diaSource": {"midpointMjdTai": 60000.0, "ra": 1.0, "dec": 2.0, "band": "g",
                "psfFlux": 1500.0, "psfFluxErr": 20.0, "reliability": 0.9}});
        let old = json!({"alertId": 7, "diaObject": null,
            "diaSource": {"midPointTai": 60000.0, "ra": 1.0, "decl": 2.0, "filterName": "g",
                "psFlux": 1500.0, "psFluxErr": 20.0, "diaObjectId": 42}});
        let (a, b) = (Summary::of(&new), Summary::of(&old));
        assert_eq!(a.object_id.as_deref(), Some("42"));
        assert_eq!(b.object_id.as_deref(), Some("42"));
        assert_eq!(a.dec, b.dec);
        assert_eq!(a.band, b.band);
        // MJD 60000 (TAI) is 2023-02-25T00:00:00 TAI, 37 s ahead of UTC.
        assert_eq!(a.time_ms, Some(1_677_283_200_000 - 37_000));
        assert_eq!((a.value, a.unit), (Some(1500.0), "nJy"));
    }

    #[test]
    fn rows_from_the_needed_fields_equal_rows_from_whole_alerts() {
        let (schema, alert) = crate::alerts::source::samples()
            .map(|a| (a[0].schema.clone(), a[0].value.clone()))
            .unwrap();
        let bytes = apache_avro::to_avro_datum(&schema, alert.clone()).unwrap();
        let decoder = crate::avro::codec::Decoder::new((*schema).clone(), false);
        let partial = decoder.fields(bytes.as_slice(), &need()).unwrap();
        let row = Summary::of_avro(&partial[0]);
        assert_eq!(row, Summary::of_avro(&alert));
        assert!(
            row.object_id.is_some() && row.value.is_some() && row.time_ms.is_some(),
            "{row:?}"
        );
    }

    #[test]
    fn anything_else_is_an_empty_row() {
        assert_eq!(Summary::of(&json!({"x": 1})), Summary::default());
        assert_eq!(Summary::of(&json!([1, 2])), Summary::default());
    }
}
