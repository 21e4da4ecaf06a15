//! `view::cutout`'s zscale, held to astropy's `ZScaleInterval()` on real
//! cutouts (every stamp of the ZTF fixtures) and on simulated Rubin and ZTF
//! ones: tests/peer/zscale_check.py writes each cutout's bytes to a file and
//! reports astropy's limits; we decode the same bytes with
//! `view::cutout::decode` and our limits must agree within 1% of the image's
//! finite range. Like the other Python-peer tests, these fail (never skip)
//! without the test venv's Python (ALERTSTREAM_PYTHON, or .venv).

mod common;

use std::path::{Path, PathBuf};

use alertstream::page::cutout::{decode, zscale};
use common::*;

const START: &str = "2026-11-30T05:00:00Z";

/// Rubin's schema from the installed lsst-alert-packet, as tests/simulate.rs
/// finds it (never copied into the repo: it is GPL).
fn rubin_schema(version: &str) -> PathBuf {
    let root = PathBuf::from(python_script("registry_peer.py", &["schema-root"]).trim());
    let (major, minor) = version.split_once('.').unwrap();
    root.join(major).join(minor)
}

/// astropy's findings for every cutout of `inputs`, whose bytes the script
/// writes under `out`.
fn astropy_limits(out: &Path, inputs: &[&Path]) -> Vec<serde_json::Value> {
    let mut args = vec!["--out", out.to_str().unwrap()];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    let stdout = python_script("zscale_check.py", &args);
    match serde_json::from_str(&stdout) {
        Ok(serde_json::Value::Array(entries)) => entries,
        other => panic!("zscale_check.py printed no JSON list ({other:?}):\n{stdout:.500}"),
    }
}

fn number(entry: &serde_json::Value, key: &str) -> f64 {
    entry[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {entry}"))
}

/// Checks every entry; returns how many were compared.
fn compare(entries: &[serde_json::Value]) -> usize {
    let mut worst = 0.0f64;
    for entry in entries {
        let file = entry["file"].as_str().expect("file");
        let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
        let image = decode(&bytes).unwrap_or_else(|e| panic!("{file}: decode: {e}"));
        let (width, height) = (number(entry, "width"), number(entry, "height"));
        assert_eq!(
            (image.width as f64, image.height as f64),
            (width, height),
            "{file}: shape"
        );
        let (min, max) = (number(entry, "min"), number(entry, "max"));
        let finite = image.pixels.iter().filter(|v| v.is_finite());
        let ours_min = finite.clone().fold(f32::INFINITY, |a, &b| a.min(b)) as f64;
        let ours_max = finite.fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        // float32 pixels through f64 and JSON: equal to far better than f32's precision.
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-7 * a.abs().max(b.abs());
        assert!(
            close(ours_min, min) && close(ours_max, max),
            "{file}: pixel values: ours ({ours_min}, {ours_max}), astropy ({min}, {max})"
        );
        let (lo, hi) = zscale(&image.pixels).unwrap_or_else(|| panic!("{file}: no limits"));
        let (astropy_lo, astropy_hi) = (number(entry, "astropy_lo"), number(entry, "astropy_hi"));
        let range = max - min;
        // A constant image has range 0; its limits are then exact, up to
        // the last bit of a JSON round trip.
        let tolerance = (0.01 * range).max(1e-9 * min.abs().max(max.abs()));
        let (d_lo, d_hi) = ((lo - astropy_lo).abs(), (hi - astropy_hi).abs());
        assert!(
            d_lo <= tolerance && d_hi <= tolerance,
            "{file}: ours ({lo}, {hi}), astropy ({astropy_lo}, {astropy_hi}), range {range}"
        );
        if range > 0.0 {
            worst = worst.max(d_lo.max(d_hi) / range);
        }
    }
    eprintln!(
        "{} cutouts: worst difference {worst:.2e} of the range",
        entries.len()
    );
    entries.len()
}

fn simulate(dir: &Path, args: &[&str]) {
    let mut all = vec!["simulate"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", dir.to_str().unwrap(), "--start", START]);
    ok(&all);
}

#[test]
fn zscale_agrees_with_astropy_on_every_ztf_fixture_cutout() {
    let out = tempfile::tempdir().unwrap();
    let entries = astropy_limits(out.path(), &[&ztf_fixtures()]);
    // 20 packets x 3 cutouts: a short list would mean cutouts went missing.
    assert_eq!(compare(&entries), 60);
}

#[test]
fn zscale_agrees_with_astropy_on_simulated_rubin_cutouts() {
    let alerts = tempfile::tempdir().unwrap();
    let schema = rubin_schema("11.1");
    simulate(
        alerts.path(),
        &["rubin", "5", "--schema", schema.to_str().unwrap()],
    );
    let out = tempfile::tempdir().unwrap();
    let entries = astropy_limits(out.path(), &[alerts.path()]);
    assert_eq!(compare(&entries), 15);
}

#[test]
fn zscale_agrees_with_astropy_on_simulated_ztf_cutouts() {
    let alerts = tempfile::tempdir().unwrap();
    simulate(alerts.path(), &["ztf", "5"]);
    let out = tempfile::tempdir().unwrap();
    let entries = astropy_limits(out.path(), &[alerts.path()]);
    assert_eq!(compare(&entries), 15);
}
