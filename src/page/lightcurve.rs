//! Light curves for the quick-look page: the photometry one alert packet
//! carries (its own detection and the history sent along with it), read from
//! the alert's print shape, and drawn as a self-contained SVG.
//!
//! Only the packet is used, never an archive: the page shows what a broker
//! downstream would see in this one message. The browser tests count the
//! SVG's marks against the packet, so the rules below are the contract and
//! are kept exact and simple.
//!
//! # Rules
//!
//! A *number* is a JSON number that is finite; anything else (null, a
//! string such as "NaN", "Infinity", "-Infinity", a missing field) is
//! missing. `days` is the entry's time minus the alert time (ZTF jd and Rubin
//! MJD are both in days); an entry without a time, or whose difference is not
//! finite, is skipped. Points come out in time order.
//!
//! **ZTF** (the alert has a `candidate` whose `jd` is a number; unit
//! magnitude; band from `fid`: 1 "g", 2 "r", 3 "i", any other integer N
//! "fid N", no integer "fid ?"). The alert time is `candidate.jd`.
//! - Detection: `candidate` if its `magpsf` is a number, and every
//!   `prv_candidates` entry whose `magpsf` is a number. Value `magpsf`,
//!   error `sigmapsf` when a number.
//! - Limit: every `prv_candidates` entry whose `magpsf` is missing and whose
//!   `diffmaglim` is a number. Value `diffmaglim`, no error.
//! - Forced: every `fp_hists` entry whose `forcediffimflux`,
//!   `forcediffimfluxunc` and `magzpsci` are numbers, none of them the
//!   missing-value sentinel -99999, and `forcediffimfluxunc` > 0. With
//!   flux / unc >= 3 the value is `magzpsci - 2.5 log10(flux)` with error
//!   `1.0857 unc / flux`; otherwise it is the 5-sigma upper limit
//!   `magzpsci - 2.5 log10(5 unc)` with no error (still a forced mark).
//!
//! **Rubin** (otherwise, when the alert has a `diaSource` with a time; unit
//! nJy). Time is `midpointMjdTai`, else `midPointTai` (schemas before 5);
//! flux `psfFlux`, else `psFlux`; error `psfFluxErr`, else `psFluxErr`; band
//! `band`, else `filterName`, else "?". The alert time is the diaSource's.
//! - Detection: `diaSource` and every `prvDiaSources` entry whose flux is a
//!   number. Value the flux, error the flux error when a number.
//! - Forced: every `prvDiaForcedSources` entry whose flux is a number, same
//!   value and error.
//! - No limits (`prvDiaNondetectionLimits` of schemas 3 to 7 is not drawn).
//!
//! # Drawing
//!
//! x runs forward in time with the alert at the right; its tick labels count
//! days *before* the alert. Magnitudes grow downwards (bright at the top);
//! fluxes grow upwards, with 0 always in range and a dashed zero line. Each
//! point is exactly one element of class `mark detection` (filled circle),
//! `mark limit` (open down-pointing triangle) or `mark forced` (square,
//! filled when it has an error, open otherwise), with `data-band` and a
//! `<title>` tooltip; error bars are separate `line.errorbar` elements.
//! Every text taken from the alert is escaped, so a hostile band name stays
//! text.

use std::collections::HashSet;
use std::fmt::Write as _;

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Detection,
    Limit,
    Forced,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Magnitude,
    FluxNjy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Time minus the alert's own time, in days: <= 0 for history.
    pub days: f64,
    pub band: String,
    pub value: f64,
    pub error: Option<f64>,
    pub mark: Mark,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub unit: Unit,
    pub points: Vec<Point>,
}

/// ZTF's "no value" in forced photometry, where null would have been honest.
const ZTF_MISSING: f64 = -99999.0;

/// 2.5 / ln 10: a relative flux error of 1 is this many magnitudes.
const MAG_PER_RELATIVE_ERROR: f64 = 1.0857;

/// Below this signal-to-noise a forced flux says little; its 5-sigma limit
/// is drawn instead.
const FORCED_MIN_SNR: f64 = 3.0;

/// The alert's photometry by the rules of the module documentation; None
/// when the alert is of neither family (no candidate/diaSource with a time).
pub fn from_alert(alert: &Value) -> Option<Curve> {
    if let Some(candidate) = alert.get("candidate").and_then(Value::as_object) {
        if let Some(t0) = number(candidate, "jd") {
            return Some(ztf(alert, candidate, t0));
        }
    }
    let source = alert.get("diaSource").and_then(Value::as_object)?;
    let t0 = rubin_time(source)?;
    Some(rubin(alert, source, t0))
}

/// (detections, limits, forced), for the page's caption and the tests.
pub fn counts(curve: &Curve) -> (usize, usize, usize) {
    curve
        .points
        .iter()
        .fold((0, 0, 0), |(d, l, f), point| match point.mark {
            Mark::Detection => (d + 1, l, f),
            Mark::Limit => (d, l + 1, f),
            Mark::Forced => (d, l, f + 1),
        })
}

/// A field as a finite number; strings ("NaN"), null and absence are all
/// "missing", which is what the print shape makes of non-finite floats.
fn number(record: &Map<String, Value>, key: &str) -> Option<f64> {
    record.get(key)?.as_f64().filter(|value| value.is_finite())
}

/// The records of a nullable list field; anything that is not a record is
/// ignored rather than trusted.
fn records<'a>(alert: &'a Value, key: &str) -> impl Iterator<Item = &'a Map<String, Value>> {
    alert
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
}

/// A point, unless its time difference overflowed (hostile times only).
fn point(
    time: f64,
    t0: f64,
    band: String,
    value: f64,
    error: Option<f64>,
    mark: Mark,
) -> Option<Point> {
    let days = time - t0;
    (days.is_finite() && value.is_finite()).then_some(Point {
        days,
        band,
        value,
        error: error.filter(|e| e.is_finite()),
        mark,
    })
}

fn in_time_order(unit: Unit, mut points: Vec<Point>) -> Curve {
    points.sort_by(|a, b| a.days.total_cmp(&b.days));
    Curve { unit, points }
}

fn ztf(alert: &Value, candidate: &Map<String, Value>, t0: f64) -> Curve {
    let mut points: Vec<Point> = ztf_detection(candidate, t0).into_iter().collect();
    for entry in records(alert, "prv_candidates") {
        points.extend(ztf_detection(entry, t0).or_else(|| ztf_limit(entry, t0)));
    }
    points.extend(records(alert, "fp_hists").filter_map(|entry| ztf_forced(entry, t0)));
    in_time_order(Unit::Magnitude, points)
}

fn ztf_band(record: &Map<String, Value>) -> String {
    match record.get("fid").and_then(Value::as_i64) {
        Some(1) => "g".to_string(),
        Some(2) => "r".to_string(),
        Some(3) => "i".to_string(),
        Some(other) => format!("fid {other}"),
        None => "fid ?".to_string(),
    }
}

fn ztf_detection(record: &Map<String, Value>, t0: f64) -> Option<Point> {
    let jd = number(record, "jd")?;
    let mag = number(record, "magpsf")?;
    let error = number(record, "sigmapsf");
    point(jd, t0, ztf_band(record), mag, error, Mark::Detection)
}

/// A non-detection: ZTF sends these in prv_candidates with magpsf null.
fn ztf_limit(record: &Map<String, Value>, t0: f64) -> Option<Point> {
    if number(record, "magpsf").is_some() {
        return None;
    }
    let jd = number(record, "jd")?;
    let limit = number(record, "diffmaglim")?;
    point(jd, t0, ztf_band(record), limit, None, Mark::Limit)
}

/// Forced photometry is a flux in counts at the science zero point; a mark
/// needs a magnitude, so faint or negative fluxes become 5-sigma limits.
fn ztf_forced(record: &Map<String, Value>, t0: f64) -> Option<Point> {
    let jd = number(record, "jd")?;
    let flux = number(record, "forcediffimflux")?;
    let unc = number(record, "forcediffimfluxunc")?;
    let zero_point = number(record, "magzpsci")?;
    if [flux, unc, zero_point].contains(&ZTF_MISSING) || unc <= 0.0 {
        return None;
    }
    let (value, error) = if flux / unc >= FORCED_MIN_SNR {
        let mag = zero_point - 2.5 * flux.log10();
        (mag, Some(MAG_PER_RELATIVE_ERROR * unc / flux))
    } else {
        (zero_point - 2.5 * (5.0 * unc).log10(), None)
    };
    point(jd, t0, ztf_band(record), value, error, Mark::Forced)
}

/// Rubin renamed its fields in schema 5; the old names are read as well.
fn rubin_time(record: &Map<String, Value>) -> Option<f64> {
    number(record, "midpointMjdTai").or_else(|| number(record, "midPointTai"))
}

fn rubin(alert: &Value, source: &Map<String, Value>, t0: f64) -> Curve {
    let mut points: Vec<Point> = rubin_point(source, t0, Mark::Detection)
        .into_iter()
        .collect();
    for entry in records(alert, "prvDiaSources") {
        points.extend(rubin_point(entry, t0, Mark::Detection));
    }
    for entry in records(alert, "prvDiaForcedSources") {
        points.extend(rubin_point(entry, t0, Mark::Forced));
    }
    in_time_order(Unit::FluxNjy, points)
}

fn rubin_point(record: &Map<String, Value>, t0: f64, mark: Mark) -> Option<Point> {
    let time = rubin_time(record)?;
    let flux = number(record, "psfFlux").or_else(|| number(record, "psFlux"))?;
    let error = number(record, "psfFluxErr").or_else(|| number(record, "psFluxErr"));
    let band = ["band", "filterName"]
        .iter()
        .find_map(|key| record.get(*key).and_then(Value::as_str))
        .unwrap_or("?");
    point(time, t0, band.to_string(), flux, error, mark)
}

// ---------------------------------------------------------------------------
// Drawing

/// Below this the axes and legend no longer fit; smaller requests get this.
const MIN_WIDTH: f64 = 240.0;
const MIN_HEIGHT: f64 = 140.0;

/// Room around the plot for tick labels, axis titles and the legend.
const MARGIN_LEFT: f64 = 60.0;
const MARGIN_RIGHT: f64 = 14.0;
const MARGIN_TOP: f64 = 30.0;
const MARGIN_BOTTOM: f64 = 42.0;

/// Band names are alert text of any length; the legend shows this much.
const LEGEND_BAND_CHARS: usize = 16;

const AXIS_COLOUR: &str = "#333333";
const GRID_COLOUR: &str = "#e4e4e4";
const UNKNOWN_BAND_COLOUR: &str = "#888888";

/// An SVG document of the curve, `width` x `height` px (at least 240 x 140).
/// Points whose days or value are not finite (possible only in a curve built
/// by hand) are left out.
pub fn svg(curve: &Curve, width: u32, height: u32) -> String {
    let width = f64::from(width).max(MIN_WIDTH);
    let height = f64::from(height).max(MIN_HEIGHT);
    let plot = Plot {
        left: MARGIN_LEFT,
        right: width - MARGIN_RIGHT,
        top: MARGIN_TOP,
        bottom: height - MARGIN_BOTTOM,
    };
    let points: Vec<&Point> = curve
        .points
        .iter()
        .filter(|p| p.days.is_finite() && p.value.is_finite())
        .collect();
    let mut out = String::with_capacity(2048 + 400 * points.len());
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="lightcurve" width="{width}" height="{height}" viewBox="0 0 {width} {height}""#
    );
    out.push_str(
        r#" role="img" aria-label="light curve" font-family="sans-serif" font-size="11">"#,
    );
    let _ = write!(
        out,
        r##"<rect width="{width}" height="{height}" fill="#ffffff"/>"##
    );
    if points.is_empty() {
        let _ = write!(
            out,
            r#"<text class="empty" x="{:.1}" y="{:.1}" text-anchor="middle" fill="{AXIS_COLOUR}">no photometry</text>"#,
            width / 2.0,
            height / 2.0,
        );
    } else {
        let x = Scale::days(&points, &plot);
        let y = Scale::values(curve.unit, &points, &plot);
        draw_axes(&mut out, &plot, &x, &y, curve.unit);
        draw_points(&mut out, &points, &x, &y, curve.unit);
        draw_legend(&mut out, &points, &plot, curve.unit);
    }
    out.push_str("</svg>");
    out
}

/// The plot area, in pixels.
struct Plot {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
}

/// A data range mapped linearly onto a pixel range (`from` is where `lo`
/// lands: the bottom for fluxes, the top for magnitudes).
struct Scale {
    lo: f64,
    hi: f64,
    from: f64,
    to: f64,
}

impl Scale {
    /// Days, always reaching the alert itself at 0 and at least one day
    /// back, so that a lone alert still sits at the right end.
    fn days(points: &[&Point], plot: &Plot) -> Scale {
        let (lo, hi) = padded_range(points.iter().map(|p| p.days).chain([0.0, -1.0]), 0.5);
        Scale {
            lo,
            hi,
            from: plot.left,
            to: plot.right,
        }
    }

    /// Values only, not error bars: one wild error must not flatten the
    /// curve (bars are clipped to the plot instead).
    fn values(unit: Unit, points: &[&Point], plot: &Plot) -> Scale {
        let values = points.iter().map(|p| p.value);
        match unit {
            Unit::Magnitude => {
                let (lo, hi) = padded_range(values, 0.5);
                Scale {
                    lo,
                    hi,
                    from: plot.top,
                    to: plot.bottom,
                }
            }
            Unit::FluxNjy => {
                let (lo, hi) = padded_range(values.chain([0.0]), 1.0);
                Scale {
                    lo,
                    hi,
                    from: plot.bottom,
                    to: plot.top,
                }
            }
        }
    }

    /// A pixel position, kept inside the plot whatever the value.
    fn at(&self, value: f64) -> f64 {
        let pixel = self.from + (value - self.lo) / (self.hi - self.lo) * (self.to - self.from);
        let (min, max) = (self.from.min(self.to), self.from.max(self.to));
        if pixel.is_nan() {
            (min + max) / 2.0
        } else {
            pixel.clamp(min, max)
        }
    }
}

/// A range that holds every finite value with a 6% margin each side, and
/// is never empty or infinite: it is at least `least` either side of its
/// middle, `least` growing with the values' size so that adding it still
/// changes them.
fn padded_range(values: impl Iterator<Item = f64>, least: f64) -> (f64, f64) {
    const LARGEST: f64 = 1e300;
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for value in values.filter(|v| v.is_finite()) {
        lo = lo.min(value.clamp(-LARGEST, LARGEST));
        hi = hi.max(value.clamp(-LARGEST, LARGEST));
    }
    if lo > hi {
        return (-least, least);
    }
    let span = hi - lo;
    let middle = lo + span / 2.0;
    let half = (span * 0.56).max(least).max(middle.abs() * 1e-6);
    (middle - half, middle + half)
}

/// Round-number ticks (1, 2 or 5 times a power of ten) inside [lo, hi],
/// about `target` of them, and the decimals their labels need.
fn ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, usize) {
    let rough = (hi - lo) / target.max(1) as f64;
    if !(rough.is_finite() && rough > 0.0) {
        return (Vec::new(), 0);
    }
    let power = 10f64.powf(rough.log10().floor());
    let step = match rough / power {
        r if r < 1.5 => power,
        r if r < 3.0 => 2.0 * power,
        r if r < 7.0 => 5.0 * power,
        _ => 10.0 * power,
    };
    let decimals = (-step.log10().floor()).clamp(0.0, 9.0) as usize;
    let first = (lo / step).ceil();
    let ticks = (0..=4 * target)
        .map(|i| (first + i as f64) * step)
        .take_while(|tick| *tick <= hi + step * 1e-9)
        .collect();
    (ticks, decimals)
}

/// A tick label; -0 prints as 0.
fn tick_label(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    if text.trim_start_matches(['-', '0', '.']).is_empty() {
        format!("{:.decimals$}", 0.0)
    } else {
        text
    }
}

fn draw_axes(out: &mut String, plot: &Plot, x: &Scale, y: &Scale, unit: Unit) {
    out.push_str(r#"<g class="axes">"#);
    let (x_ticks, x_decimals) = ticks(x.lo, x.hi, 6);
    for tick in x_ticks {
        let px = x.at(tick);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="{GRID_COLOUR}"/><text class="tick" x="{px:.1}" y="{:.1}" text-anchor="middle" fill="{AXIS_COLOUR}">{}</text>"#,
            plot.top,
            plot.bottom,
            plot.bottom + 15.0,
            tick_label(-tick, x_decimals),
        );
    }
    let (y_ticks, y_decimals) = ticks(y.lo, y.hi, 5);
    for tick in y_ticks {
        let py = y.at(tick);
        let _ = write!(
            out,
            r#"<line class="grid" x1="{:.1}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="{GRID_COLOUR}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end" fill="{AXIS_COLOUR}">{}</text>"#,
            plot.left,
            plot.right,
            plot.left - 6.0,
            py + 4.0,
            tick_label(tick, y_decimals),
        );
    }
    if unit == Unit::FluxNjy {
        let zero = y.at(0.0);
        let _ = write!(
            out,
            r#"<line class="zero" x1="{:.1}" y1="{zero:.1}" x2="{:.1}" y2="{zero:.1}" stroke="{AXIS_COLOUR}" stroke-dasharray="4 3"/>"#,
            plot.left, plot.right,
        );
    }
    let y_title = match unit {
        Unit::Magnitude => "magnitude",
        Unit::FluxNjy => "flux (nJy)",
    };
    let _ = write!(
        out,
        r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="none" stroke="{AXIS_COLOUR}"/>"#,
        plot.left,
        plot.top,
        plot.right - plot.left,
        plot.bottom - plot.top,
    );
    let _ = write!(
        out,
        r#"<text class="axis-title" x="{:.1}" y="{:.1}" text-anchor="middle" fill="{AXIS_COLOUR}">days before the alert</text>"#,
        (plot.left + plot.right) / 2.0,
        plot.bottom + 33.0,
    );
    let _ = write!(
        out,
        r#"<text class="axis-title" transform="translate(14 {:.1}) rotate(-90)" text-anchor="middle" fill="{AXIS_COLOUR}">{y_title}</text></g>"#,
        (plot.top + plot.bottom) / 2.0,
    );
}

/// Error bars first, marks after, so that no bar hides a mark.
fn draw_points(out: &mut String, points: &[&Point], x: &Scale, y: &Scale, unit: Unit) {
    out.push_str(r#"<g class="errorbars">"#);
    for point in points {
        let Some(error) = point.error else { continue };
        let px = x.at(point.days);
        let _ = write!(
            out,
            r#"<line class="errorbar" data-band="{}" x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}" stroke="{}"/>"#,
            escape(&point.band),
            y.at(point.value - error.abs()),
            y.at(point.value + error.abs()),
            colour(unit, &point.band),
        );
    }
    out.push_str(r#"</g><g class="points">"#);
    for point in points {
        draw_mark(out, point, x.at(point.days), y.at(point.value), unit);
    }
    out.push_str("</g>");
}

/// One element per point, its tooltip inside it.
fn draw_mark(out: &mut String, point: &Point, px: f64, py: f64, unit: Unit) {
    let band = escape(&point.band);
    let colour = colour(unit, &point.band);
    let title = escape(&tooltip(point, unit));
    let _ = match (point.mark, point.error) {
        (Mark::Detection, _) => write!(
            out,
            r#"<circle class="mark detection" data-band="{band}" cx="{px:.1}" cy="{py:.1}" r="3.5" fill="{colour}"><title>{title}</title></circle>"#
        ),
        (Mark::Limit, _) => write!(
            out,
            r#"<path class="mark limit" data-band="{band}" d="M{:.1} {:.1}H{:.1}L{px:.1} {:.1}Z" fill="none" stroke="{colour}" stroke-width="1.5"><title>{title}</title></path>"#,
            px - 4.5,
            py - 3.5,
            px + 4.5,
            py + 4.5,
        ),
        (Mark::Forced, error) => write!(
            out,
            r#"<rect class="mark forced" data-band="{band}" x="{:.1}" y="{:.1}" width="6" height="6" fill="{}" stroke="{colour}" stroke-width="1.2"><title>{title}</title></rect>"#,
            px - 3.0,
            py - 3.0,
            if error.is_some() { colour } else { "none" },
        ),
    };
}

/// The hover text: band, kind, when, and value ± error with its unit.
fn tooltip(point: &Point, unit: Unit) -> String {
    let kind = match (point.mark, point.error) {
        (Mark::Detection, _) => "detection",
        (Mark::Limit, _) => "upper limit",
        (Mark::Forced, Some(_)) => "forced",
        (Mark::Forced, None) => match unit {
            Unit::Magnitude => "forced, 5σ limit",
            Unit::FluxNjy => "forced",
        },
    };
    let (decimals, suffix) = match unit {
        Unit::Magnitude => (3, "mag"),
        Unit::FluxNjy => (1, "nJy"),
    };
    let days = tick_label(-point.days, 3);
    let mut text = format!(
        "{} · {kind} · {days} d before · {:.decimals$}",
        point.band, point.value
    );
    if let Some(error) = point.error {
        let _ = write!(text, " ± {:.decimals$}", error.abs());
    }
    let _ = write!(text, " {suffix}");
    text
}

/// The bands in the plot, in the surveys' wavelength order, then any others
/// as they first appear.
fn legend_bands<'a>(points: &[&'a Point]) -> Vec<&'a str> {
    // A hostile packet may hold thousands of distinct bands: no quadratic scan.
    let mut seen = HashSet::new();
    let mut bands: Vec<&str> = Vec::new();
    for point in points {
        if seen.insert(point.band.as_str()) {
            bands.push(&point.band);
        }
    }
    let order = |band: &str| {
        ["u", "g", "r", "i", "z", "y"]
            .iter()
            .position(|known| *known == band)
            .unwrap_or(usize::MAX)
    };
    bands.sort_by_key(|band| order(band));
    bands
}

/// Bands left to right above the plot, as far as they fit before the key
/// of mark shapes at the right; the rest are summed up as "+N more".
/// Nothing here carries the class `mark`, so marks can be counted by class.
fn draw_legend(out: &mut String, points: &[&Point], plot: &Plot, unit: Unit) {
    let y = plot.top - 12.0;
    out.push_str(r#"<g class="legend">"#);
    let key = shape_key(points, unit);
    let key_width = 6.5 * key.chars().count() as f64;
    // A narrow plot keeps its room for the bands; the tooltips still tell.
    let room = if plot.right - plot.left > key_width + 120.0 {
        let _ = write!(
            out,
            r#"<text class="legend-key" x="{:.1}" y="{:.1}" text-anchor="end" fill="{AXIS_COLOUR}">{key}</text>"#,
            plot.right,
            y + 4.0,
        );
        plot.right - key_width - 12.0
    } else {
        plot.right
    };
    let bands = legend_bands(points);
    let mut x = plot.left;
    for (shown, band) in bands.iter().enumerate() {
        let mut label: String = band.chars().take(LEGEND_BAND_CHARS).collect();
        if label.len() < band.len() {
            label.push('…');
        }
        let width = 22.0 + 6.5 * label.chars().count() as f64;
        let more = bands.len() - shown - 1;
        if x + width + if more > 0 { 60.0 } else { 0.0 } > room {
            let _ = write!(
                out,
                r#"<text class="legend-more" x="{x:.1}" y="{:.1}" fill="{AXIS_COLOUR}">+{} more</text>"#,
                y + 4.0,
                more + 1,
            );
            break;
        }
        let _ = write!(
            out,
            r#"<g class="legend-item"><circle cx="{:.1}" cy="{y:.1}" r="4" fill="{}"/><text x="{:.1}" y="{:.1}" fill="{AXIS_COLOUR}">{}</text></g>"#,
            x + 4.0,
            colour(unit, band),
            x + 12.0,
            y + 4.0,
            escape(&label),
        );
        x += width;
    }
    out.push_str("</g>");
}

/// What the shapes mean, for the kinds present ("● detection  ▽ limit …").
fn shape_key(points: &[&Point], unit: Unit) -> String {
    let open_forced = match unit {
        Unit::Magnitude => "□ forced 5σ limit",
        Unit::FluxNjy => "□ forced, no error",
    };
    // Only forced squares come both filled and open.
    let filled = |p: &Point| p.mark != Mark::Forced || p.error.is_some();
    let kinds = [
        ((Mark::Detection, true), "● detection"),
        ((Mark::Limit, true), "▽ limit"),
        ((Mark::Forced, true), "■ forced"),
        ((Mark::Forced, false), open_forced),
    ];
    kinds
        .iter()
        .filter(|(kind, _)| points.iter().any(|p| (p.mark, filled(p)) == *kind))
        .map(|(_, text)| *text)
        .collect::<Vec<_>>()
        .join("  ")
}

/// Survey colours: ZTF's three filters, Rubin's six; grey for the rest.
fn colour(unit: Unit, band: &str) -> &'static str {
    match (unit, band) {
        (Unit::Magnitude, "g") => "#1b9e3e",
        (Unit::Magnitude, "r") => "#d62728",
        (Unit::Magnitude, "i") => "#b8860b",
        (Unit::FluxNjy, "u") => "#7b3fbf",
        (Unit::FluxNjy, "g") => "#2ca02c",
        (Unit::FluxNjy, "r") => "#d62728",
        (Unit::FluxNjy, "i") => "#ff8c00",
        (Unit::FluxNjy, "z") => "#8b0000",
        (Unit::FluxNjy, "y") => "#4a2c17",
        _ => UNKNOWN_BAND_COLOUR,
    }
}

/// Text for XML content and attribute values. Characters XML forbids even
/// escaped (most controls, U+FFFE, U+FFFF) become U+FFFD, since the page
/// serves the SVG as a standalone document that must stay well-formed.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' | ' '..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'.. => {
                out.push(c)
            }
            _ => out.push('\u{FFFD}'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const T0: f64 = 2460000.5;

    fn marks(svg: &str, kind: &str) -> usize {
        svg.matches(&format!(r#"class="mark {kind}""#)).count()
    }

    fn find(curve: &Curve, mark: Mark, days: f64) -> &Point {
        curve
            .points
            .iter()
            .find(|p| p.mark == mark && (p.days - days).abs() < 1e-9)
            .unwrap_or_else(|| panic!("no {mark:?} at {days}"))
    }

    fn fp(days: f64, flux: Value, unc: Value, zero_point: Value) -> Value {
        json!({"jd": T0 + days, "fid": 2, "forcediffimflux": flux,
               "forcediffimfluxunc": unc, "magzpsci": zero_point})
    }

    fn ztf_alert() -> Value {
        json!({
            "candidate": {"jd": T0, "fid": 1, "magpsf": 18.5, "sigmapsf": 0.1, "diffmaglim": 20.5},
            "prv_candidates": [
                {"jd": T0 - 1.0, "fid": 2, "magpsf": 18.9, "sigmapsf": "NaN", "diffmaglim": 20.0},
                {"jd": T0 - 2.0, "fid": 3, "magpsf": null, "sigmapsf": null, "diffmaglim": 20.25},
                {"jd": T0 - 3.0, "fid": 1, "magpsf": "NaN", "diffmaglim": 19.5},
                {"jd": T0 - 4.0, "fid": 1, "magpsf": null, "diffmaglim": null},
                {"jd": null, "fid": 1, "magpsf": 17.0, "sigmapsf": 0.1},
                {"jd": "Infinity", "fid": 1, "magpsf": null, "diffmaglim": 20.0},
                "not a record"
            ],
            "fp_hists": [
                fp(-5.0, json!(1000.0), json!(100.0), json!(26.0)),
                fp(-6.0, json!(100.0), json!(100.0), json!(26.0)),
                fp(-7.0, json!(-250.0), json!(50.0), json!(26.0)),
                fp(-8.0, json!(-99999.0), json!(100.0), json!(26.0)),
                fp(-9.0, json!(1000.0), json!(-99999.0), json!(26.0)),
                fp(-10.0, json!(1000.0), json!(100.0), json!(-99999.0)),
                fp(-11.0, json!("NaN"), json!(100.0), json!(26.0)),
                fp(-12.0, json!(1000.0), json!(0.0), json!(26.0)),
                fp(-13.0, json!(1000.0), json!(100.0), json!(null)),
            ]
        })
    }

    #[test]
    fn ztf_marks_follow_the_rules() {
        let curve = from_alert(&ztf_alert()).unwrap();
        assert_eq!(curve.unit, Unit::Magnitude);
        assert_eq!(counts(&curve), (2, 2, 3));
        let own = find(&curve, Mark::Detection, 0.0);
        assert_eq!(
            (own.band.as_str(), own.value, own.error),
            ("g", 18.5, Some(0.1))
        );
        let earlier = find(&curve, Mark::Detection, -1.0);
        assert_eq!((earlier.band.as_str(), earlier.error), ("r", None));
        let limit = find(&curve, Mark::Limit, -2.0);
        assert_eq!(
            (limit.band.as_str(), limit.value, limit.error),
            ("i", 20.25, None)
        );
        // magpsf "NaN" is missing: a limit at diffmaglim.
        assert_eq!(find(&curve, Mark::Limit, -3.0).value, 19.5);
        let days: Vec<f64> = curve.points.iter().map(|p| p.days).collect();
        assert!(days.windows(2).all(|w| w[0] <= w[1]), "time order");
    }

    #[test]
    fn ztf_forced_photometry_magnitudes_and_limits() {
        let curve = from_alert(&ztf_alert()).unwrap();
        // SNR 10: 26 - 2.5 log10(1000) = 18.5, error 1.0857 / 10.
        let bright = find(&curve, Mark::Forced, -5.0);
        assert!((bright.value - 18.5).abs() < 1e-12);
        assert!((bright.error.unwrap() - 0.10857).abs() < 1e-12);
        // SNR 1, and a negative flux: 5-sigma limits, no error.
        let faint = find(&curve, Mark::Forced, -6.0);
        assert!((faint.value - (26.0 - 2.5 * 500f64.log10())).abs() < 1e-12);
        assert_eq!(faint.error, None);
        let negative = find(&curve, Mark::Forced, -7.0);
        assert!((negative.value - (26.0 - 2.5 * 250f64.log10())).abs() < 1e-12);
        assert_eq!(negative.error, None);
        // Sentinels, "NaN", zero uncertainty and a null zero point: skipped.
        assert!(curve.points.iter().all(|p| p.days > -7.5));
    }

    #[test]
    fn ztf_bands_come_from_fid() {
        let band = |fid: Value| ztf_band(json!({ "fid": fid }).as_object().unwrap());
        assert_eq!(band(json!(1)), "g");
        assert_eq!(band(json!(3)), "i");
        assert_eq!(band(json!(7)), "fid 7");
        assert_eq!(band(json!(null)), "fid ?");
    }

    #[test]
    fn rubin_current_field_names() {
        let alert = json!({
            "diaSource": {"midpointMjdTai": 60000.5, "band": "r", "psfFlux": 1241.0, "psfFluxErr": 12.0},
            "prvDiaSources": [
                {"midpointMjdTai": 59990.5, "band": "g", "psfFlux": 500.0, "psfFluxErr": "NaN"},
                {"midpointMjdTai": 59991.5, "band": "g", "psfFlux": null, "psfFluxErr": 3.0},
                {"midpointMjdTai": "NaN", "band": "g", "psfFlux": 400.0, "psfFluxErr": 3.0}
            ],
            "prvDiaForcedSources": [
                {"midpointMjdTai": 59995.0, "band": null, "psfFlux": -20.0, "psfFluxErr": 10.0},
                {"midpointMjdTai": 59996.0, "band": "z", "psfFlux": "Infinity", "psfFluxErr": 10.0}
            ],
            "prvDiaNondetectionLimits": [{"midpointMjdTai": 59997.0, "band": "r", "diaNoise": 5.0}]
        });
        let curve = from_alert(&alert).unwrap();
        assert_eq!(curve.unit, Unit::FluxNjy);
        assert_eq!(counts(&curve), (2, 0, 1));
        assert_eq!(find(&curve, Mark::Detection, 0.0).error, Some(12.0));
        let earlier = find(&curve, Mark::Detection, -10.0);
        assert_eq!(
            (earlier.band.as_str(), earlier.value, earlier.error),
            ("g", 500.0, None)
        );
        let forced = find(&curve, Mark::Forced, -5.5);
        assert_eq!(
            (forced.band.as_str(), forced.value, forced.error),
            ("?", -20.0, Some(10.0))
        );
    }

    #[test]
    fn rubin_old_field_names() {
        let alert = json!({
            "diaSource": {"midPointTai": 58000.0, "filterName": "u", "psFlux": 10.0, "psFluxErr": 1.0},
            "prvDiaSources": [{"midPointTai": 57999.0, "filterName": "y", "psFlux": 5.0, "psFluxErr": 1.0}],
            "prvDiaForcedSources": [{"midPointTai": 57998.0, "filterName": "i", "psFlux": 1.0, "psFluxErr": 2.0}]
        });
        let curve = from_alert(&alert).unwrap();
        assert_eq!(counts(&curve), (2, 0, 1));
        assert_eq!(find(&curve, Mark::Detection, 0.0).band, "u");
        assert_eq!(find(&curve, Mark::Detection, -1.0).value, 5.0);
        assert_eq!(find(&curve, Mark::Forced, -2.0).error, Some(2.0));
    }

    #[test]
    fn neither_family_is_none() {
        assert_eq!(from_alert(&json!({})), None);
        assert_eq!(from_alert(&json!([1, 2])), None);
        assert_eq!(
            from_alert(&json!({"candidate": {"jd": "NaN", "magpsf": 18.0}})),
            None
        );
        assert_eq!(
            from_alert(&json!({"diaSource": {"band": "r", "psfFlux": 1.0}})),
            None
        );
        // A time but no usable photometry is still a (empty) curve.
        let bare = from_alert(&json!({"candidate": {"jd": T0, "magpsf": null}})).unwrap();
        assert!(bare.points.is_empty());
    }

    #[test]
    fn svg_has_one_mark_per_point() {
        let curve = from_alert(&ztf_alert()).unwrap();
        let svg = svg(&curve, 640, 320);
        assert!(svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg""#));
        assert!(svg.contains(r#"viewBox="0 0 640 320""#) && svg.ends_with("</svg>"));
        assert_eq!(marks(&svg, "detection"), 2);
        assert_eq!(marks(&svg, "limit"), 2);
        assert_eq!(marks(&svg, "forced"), 3);
        assert_eq!(svg.matches("class=\"mark").count(), 7);
        assert_eq!(svg.matches("<title>").count(), 7);
        assert_eq!(svg.matches(r#"class="errorbar""#).count(), 2);
        assert_eq!(svg.matches(r#"data-band="g""#).count(), 3);
        assert!(svg.contains("days before the alert") && svg.contains(">magnitude<"));
        assert!(!svg.contains("class=\"zero\""));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
        for banned in ["<script", "href", "url(", "@import", "<style"] {
            assert!(!svg.contains(banned), "{banned}");
        }
    }

    #[test]
    fn flux_curves_get_a_zero_line() {
        let alert =
            json!({"diaSource": {"midpointMjdTai": 60000.5, "band": "r", "psfFlux": 1241.0}});
        let svg = svg(&from_alert(&alert).unwrap(), 640, 320);
        assert!(svg.contains(r#"class="zero""#) && svg.contains("stroke-dasharray"));
        assert!(svg.contains("flux (nJy)"));
    }

    #[test]
    fn hostile_band_is_escaped() {
        let hostile = "</svg><script>alert(1)</script>\"'&\u{0}";
        let alert = json!({
            "diaSource": {"midpointMjdTai": 60000.5, "band": hostile, "psfFlux": 1.0, "psfFluxErr": 0.5}
        });
        let svg = svg(&from_alert(&alert).unwrap(), 640, 320);
        assert!(!svg.contains("<script") && !svg.contains("</svg><"));
        assert!(!svg.contains('\u{0}'));
        assert!(svg
            .contains("&lt;/svg&gt;&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;\u{FFFD}"));
        assert_eq!(marks(&svg, "detection"), 1);
    }

    #[test]
    fn escape_covers_markup_and_forbidden_characters() {
        assert_eq!(escape(r#"a<b>&"c'"#), "a&lt;b&gt;&amp;&quot;c&#39;");
        assert_eq!(
            escape("tab\tnl\n\u{1}\u{FFFE}é😀"),
            "tab\tnl\n\u{FFFD}\u{FFFD}é😀"
        );
    }

    fn single(unit: Unit, value: f64, mark: Mark) -> Curve {
        let point = Point {
            days: 0.0,
            band: "r".into(),
            value,
            error: None,
            mark,
        };
        Curve {
            unit,
            points: vec![point],
        }
    }

    #[test]
    fn single_and_identical_points_draw_without_nan() {
        let mut same = single(Unit::FluxNjy, 0.0, Mark::Forced);
        same.points.push(same.points[0].clone());
        for curve in [
            single(Unit::Magnitude, 19.0, Mark::Detection),
            single(Unit::FluxNjy, 1e6, Mark::Detection),
            single(Unit::Magnitude, 1e300, Mark::Limit),
            same,
        ] {
            let svg = svg(&curve, 640, 320);
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
            assert_eq!(svg.matches("class=\"mark").count(), curve.points.len());
            assert!(svg.matches(r#"class="tick""#).count() >= 4, "{svg}");
        }
    }

    #[test]
    fn tiny_sizes_and_unfinite_points_stay_valid() {
        let mut curve = single(Unit::Magnitude, 19.0, Mark::Detection);
        curve.points[0].error = Some(f64::MAX);
        curve.points.push(Point {
            days: f64::NAN,
            ..curve.points[0].clone()
        });
        let svg = svg(&curve, 0, 0);
        assert!(svg.contains(r#"viewBox="0 0 240 140""#));
        assert_eq!(svg.matches("class=\"mark").count(), 1);
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }

    #[test]
    fn legend_names_bands_without_counting_as_marks() {
        let points: Vec<Point> = (0..40)
            .map(|i| Point {
                days: -f64::from(i),
                band: if i < 3 {
                    "ugr"[i as usize..=i as usize].into()
                } else {
                    format!("b{i}")
                },
                value: f64::from(i),
                error: None,
                mark: Mark::Forced,
            })
            .collect();
        let curve = Curve {
            unit: Unit::FluxNjy,
            points,
        };
        let svg = svg(&curve, 640, 320);
        assert_eq!(marks(&svg, "forced"), 40);
        assert_eq!(svg.matches("class=\"mark").count(), 40);
        assert!(svg.contains(r#"class="legend-item""#) && svg.contains(" more</text>"));
        assert!(svg.contains("□ forced, no error") && !svg.contains("■ forced"));
        let u = svg.find(">u</text>").unwrap();
        assert!(u < svg.find(">g</text>").unwrap() && u < svg.find(">b3</text>").unwrap());
    }

    #[test]
    fn empty_curve_says_no_photometry() {
        let empty = Curve {
            unit: Unit::Magnitude,
            points: Vec::new(),
        };
        let svg = svg(&empty, 640, 320);
        assert!(svg.contains("no photometry") && svg.contains("xmlns="));
        assert!(!svg.contains("class=\"mark") && !svg.contains("NaN"));
        assert_eq!(counts(&empty), (0, 0, 0));
    }

    #[test]
    fn magnitudes_grow_downwards_and_fluxes_upwards() {
        let plot = Plot {
            left: 0.0,
            right: 100.0,
            top: 0.0,
            bottom: 100.0,
        };
        let faint = single(Unit::Magnitude, 20.0, Mark::Detection).points;
        let bright = single(Unit::Magnitude, 17.0, Mark::Detection).points;
        let points = [&faint[0], &bright[0]];
        let mag = Scale::values(Unit::Magnitude, &points, &plot);
        assert!(mag.at(17.0) < mag.at(20.0));
        let flux = Scale::values(Unit::FluxNjy, &points, &plot);
        assert!(flux.at(17.0) > flux.at(20.0));
        assert!(flux.lo < 0.0, "zero stays in range");
    }

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(
            ticks(0.0, 10.0, 5),
            (vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0], 0)
        );
        let (values, decimals) = ticks(17.3, 18.4, 5);
        assert_eq!(decimals, 1);
        let labels: Vec<String> = values.iter().map(|v| tick_label(*v, decimals)).collect();
        assert_eq!(labels, ["17.4", "17.6", "17.8", "18.0", "18.2", "18.4"]);
        assert_eq!(tick_label(-0.0, 1), "0.0");
        assert_eq!(ticks(1.0, 1.0, 5).0, Vec::<f64>::new());
    }

    /// The real ZTF packets (schemas 1.7 to 3.3) decoded and printed as the
    /// project prints them; expected counts computed by hand with fastavro.
    #[test]
    fn real_ztf_packets() {
        let expected = [
            ("v1.7_396522680015020000", (1, 12, 0)),
            ("v1.7_396522680015025001", (1, 41, 0)),
            ("v1.8_396522680015040000", (1, 12, 0)),
            ("v1.8_396522680015040001", (1, 11, 0)),
            ("v1.8_396522680015040002", (1, 41, 0)),
            ("v2.0_472263571115090000", (1, 11, 0)),
            ("v2.0_472263571115095000", (63, 11, 0)),
            ("v2.0_472263571115095002", (4, 11, 0)),
            ("v2.0_472263571115095005", (3, 11, 0)),
            ("v3.0_472263571115115000", (1, 11, 0)),
            ("v3.0_472263571115115008", (1, 11, 0)),
            ("v3.0_472263571115115011", (1, 11, 0)),
            ("v3.0_472263571115115014", (1, 11, 0)),
            ("v3.1_472263571115115000", (1, 11, 0)),
            ("v3.1_472263571115115008", (1, 11, 0)),
            ("v3.1_472263571115115011", (1, 11, 0)),
            ("v3.1_472263571115115014", (1, 11, 0)),
            ("v3.2_472263571115115000", (1, 11, 0)),
            ("v3.2_739260766315010006", (23, 6, 0)),
            ("v3.3_472263571115115000", (1, 11, 0)),
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ztf");
        for (name, want) in expected {
            let bytes = std::fs::read(dir.join(format!("{name}.avro"))).unwrap();
            let mut reader = apache_avro::Reader::new(bytes.as_slice()).unwrap();
            let mut printed = Vec::new();
            crate::avro::json::write_alert(&mut printed, &reader.next().unwrap().unwrap());
            let alert: Value = serde_json::from_slice(&printed).unwrap();
            let curve = from_alert(&alert).unwrap();
            assert_eq!(counts(&curve), want, "{name}");
            let svg = svg(&curve, 640, 320);
            let drawn = (
                marks(&svg, "detection"),
                marks(&svg, "limit"),
                marks(&svg, "forced"),
            );
            assert_eq!(drawn, want, "{name}");
        }
    }
}
