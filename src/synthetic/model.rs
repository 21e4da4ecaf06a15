//! The simulated sky: survey footprints, a population of objects and their
//! light curves, all pure functions of (seed, object index, time). Nothing is
//! stored per object: an object's class, place and light-curve parameters are
//! redrawn from the seed whenever they are needed ([`object`] costs well under
//! a microsecond), so a simulation can run for ever without its memory
//! growing, and any alert can be recomputed on any host in any order.
//!
//! Units: positions in degrees, times in MJD (days), fluxes in nJy, AB
//! magnitudes with f = 10^(-0.4 (m - 31.4)) nJy.
//!
//! Time: there is no epoch to agree on. Every light curve is a function of
//! absolute MJD, and the population looks alike at any date: a transient
//! has one supernova-like event per 200-day cycle (cycles offset per
//! object, each event drawn afresh), and a solar-system object crosses its
//! field on a fixed chord, coming back in at the far edge when it leaves,
//! so it is in its field whenever its field is observed. Hosts that start
//! at different times therefore agree on every alert.

use std::f64::consts::{FRAC_PI_2, FRAC_PI_4, LN_10, PI, TAU};
use std::fmt;
use std::str::FromStr;

use super::rng;

// ------------------------------------------------------------ photometry

/// The AB magnitude of 1 nJy.
pub const AB_NJY_ZERO_POINT: f64 = 31.4;

/// AB magnitude to flux in nJy.
pub fn mag_to_njy(mag: f64) -> f64 {
    (-0.4 * LN_10 * (mag - AB_NJY_ZERO_POINT)).exp()
}

/// Flux in nJy to AB magnitude (infinitely faint for no or negative flux).
pub fn njy_to_mag(flux: f64) -> f64 {
    if flux > 0.0 {
        AB_NJY_ZERO_POINT - 2.5 * flux.log10()
    } else {
        f64::INFINITY
    }
}

/// Brightness ratio of a magnitude difference (>= 1 for `mag` >= 0).
fn mag_ratio(mag: f64) -> f64 {
    (0.4 * LN_10 * mag).exp()
}

// ------------------------------------------------------------ surveys and bands

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Survey {
    Ztf,
    Rubin,
}

impl Survey {
    pub fn name(self) -> &'static str {
        match self {
            Survey::Ztf => "ztf",
            Survey::Rubin => "rubin",
        }
    }

    /// The 5-sigma point-source depth of a typical visit (AB mag).
    pub fn typical_limiting_mag(self) -> f64 {
        match self {
            Survey::Ztf => 20.5,
            Survey::Rubin => 24.5,
        }
    }
}

const ZTF_BANDS: [&str; 3] = ["g", "r", "i"];
const RUBIN_BANDS: [&str; 6] = ["u", "g", "r", "i", "z", "y"];
/// Effective wavelengths (nm) of the bands above.
const ZTF_NM: [f64; 3] = [472.0, 633.0, 789.0];
const RUBIN_NM: [f64; 6] = [367.0, 482.0, 622.0, 755.0, 869.0, 971.0];
/// Share of visits taken in each band: ZTF's public survey alternates g and
/// r, with some i; Rubin's baseline cadence (roughly u 7%, g 9%, r 22%, i 22%,
/// z 20%, y 20%).
const ZTF_VISIT_SHARE: [f64; 3] = [0.45, 0.45, 0.10];
const RUBIN_VISIT_SHARE: [f64; 6] = [0.07, 0.09, 0.22, 0.22, 0.20, 0.20];
/// Colours are anchored at r: a source's `mag` is its magnitude at 620 nm.
const REF_NM: f64 = 620.0;

/// The survey's bands, blue to red. A band is an index into this list
/// (ZTF's fid is index + 1: g = 1, r = 2, i = 3).
pub fn bands(survey: Survey) -> &'static [&'static str] {
    match survey {
        Survey::Ztf => &ZTF_BANDS,
        Survey::Rubin => &RUBIN_BANDS,
    }
}

/// A band index made valid: out-of-range indices mean the reddest band.
fn band_index(survey: Survey, band: usize) -> usize {
    band.min(bands(survey).len() - 1)
}

/// Effective wavelength of `band` in nm.
pub fn wavelength_nm(survey: Survey, band: usize) -> f64 {
    let band = band_index(survey, band);
    match survey {
        Survey::Ztf => ZTF_NM[band],
        Survey::Rubin => RUBIN_NM[band],
    }
}

/// The band of visit `visit` (an index into [`bands`]), drawn with the
/// survey's usual share of visits per band.
pub fn band_of_visit(survey: Survey, seed: u64, visit: i64) -> usize {
    let share: &[f64] = match survey {
        Survey::Ztf => &ZTF_VISIT_SHARE,
        Survey::Rubin => &RUBIN_VISIT_SHARE,
    };
    let u = rng::uniform(seed, &[visit as u64, T_BAND], 0.0, 1.0);
    let mut total = 0.0;
    for (band, s) in share.iter().enumerate() {
        total += s;
        if u < total {
            return band;
        }
    }
    share.len() - 1
}

/// Magnitude in `band` of a source of magnitude `mag` at 620 nm and colour
/// `g_minus_r`: a straight spectral slope through g and r, half as steep
/// redward of r (stellar and galaxy spectra flatten there).
fn band_mag(survey: Survey, band: usize, mag: f64, g_minus_r: f64) -> f64 {
    let x = (REF_NM - wavelength_nm(survey, band)) / 140.0;
    mag + g_minus_r * if x > 0.0 { x } else { 0.5 * x }
}

/// How much larger variability is in `band` than at 620 nm: (620/λ)^power.
fn chromatic(survey: Survey, band: usize, power: f64) -> f64 {
    (REF_NM / wavelength_nm(survey, band)).powf(power)
}

// ------------------------------------------------------------ classes and the mix

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Periodic,
    Transient,
    Agn,
    SolarSystem,
    Bogus,
}

const VALID_CLASS_NAMES: &str =
    "periodic, transient, agn, solar-system (or solar_system, sso), bogus";

impl Class {
    pub const ALL: [Class; 5] = [
        Class::Periodic,
        Class::Transient,
        Class::Agn,
        Class::SolarSystem,
        Class::Bogus,
    ];

    /// Position in [`Class::ALL`] (and in a [`Mix`]).
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Class::Periodic => "periodic",
            Class::Transient => "transient",
            Class::Agn => "agn",
            Class::SolarSystem => "solar-system",
            Class::Bogus => "bogus",
        }
    }

    /// A class by name, case-insensitively (solar-system also as
    /// solar_system or sso).
    pub fn from_name(name: &str) -> Option<Class> {
        match name.to_ascii_lowercase().as_str() {
            "periodic" => Some(Class::Periodic),
            "transient" => Some(Class::Transient),
            "agn" => Some(Class::Agn),
            "solar-system" | "solar_system" | "sso" => Some(Class::SolarSystem),
            "bogus" => Some(Class::Bogus),
            _ => None,
        }
    }

    /// Real astrophysical sources (everything but bogus).
    pub fn is_real(self) -> bool {
        self != Class::Bogus
    }
}

/// Default population, by [`Class`] order: a rough picture of a real
/// stream's objects, not a measurement. Variable stars are the commonest
/// alerting sources away from the ecliptic; AGN/nuclear variables and
/// supernova-like transients are the next largest real groups (transients
/// over-weighted a little: they are what consumers look for); asteroids
/// are about a tenth averaged over the sky; and some bogus gets past any
/// real/bogus cut, enough to exercise filters on reliability.
const DEFAULT_MIX: [f64; 5] = [0.35, 0.20, 0.20, 0.10, 0.15];
/// Slack for fractions typed with rounding (e.g. thirds).
const MIX_TOLERANCE: f64 = 1e-6;

/// The fraction of objects in each class, by [`Class`] order; adds up to 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mix([f64; 5]);

impl Default for Mix {
    fn default() -> Self {
        Mix(DEFAULT_MIX)
    }
}

impl Mix {
    /// Parses `periodic=0.5,bogus=0.1`: class names as in
    /// [`Class::from_name`], fractions from 0 to 1 (or percentages, `35%`).
    /// Classes not named share what is left in their default proportions;
    /// an empty text is the default mix. Refused: unknown names, a class
    /// named twice, fractions outside [0, 1], fractions adding up to more
    /// than 1, or, with every class named, not adding up to 1.
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut given: [Option<f64>; 5] = [None; 5];
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, value)) = part.split_once('=') else {
                return Err(format!(
                    "'{part}' is not name=fraction (valid names: {VALID_CLASS_NAMES})"
                ));
            };
            let name = name.trim();
            let Some(class) = Class::from_name(name) else {
                return Err(format!(
                    "unknown class '{name}' in '{part}' (valid names: {VALID_CLASS_NAMES})"
                ));
            };
            let Some(fraction) = parse_fraction(value.trim()) else {
                return Err(format!(
                    "'{part}': the fraction must be a number from 0 to 1 (or a percentage such as 35%)"
                ));
            };
            let slot = &mut given[class.index()];
            if slot.is_some() {
                return Err(format!("'{}' is given twice (in '{part}')", class.name()));
            }
            *slot = Some(fraction);
        }
        let named: f64 = given.iter().flatten().sum();
        if named > 1.0 + MIX_TOLERANCE {
            return Err(format!(
                "the fractions add up to {named:.3}, more than 1, in '{}'",
                text.trim()
            ));
        }
        let unnamed_default: f64 = DEFAULT_MIX
            .iter()
            .zip(&given)
            .filter(|(_, g)| g.is_none())
            .map(|(d, _)| d)
            .sum();
        if unnamed_default <= 0.0 && (named - 1.0).abs() > MIX_TOLERANCE {
            return Err(format!(
                "every class is named but the fractions add up to {named:.3}, not 1 (leave a class out to give it the rest) in '{}'",
                text.trim()
            ));
        }
        let rest = (1.0 - named).max(0.0);
        let mut fractions = [0.0; 5];
        for (i, f) in fractions.iter_mut().enumerate() {
            *f = match given[i] {
                Some(g) => g,
                None => rest * DEFAULT_MIX[i] / unnamed_default,
            };
        }
        Ok(Mix(fractions))
    }

    /// The fractions by [`Class`] order.
    pub fn fractions(&self) -> [f64; 5] {
        self.0
    }

    pub fn fraction(&self, class: Class) -> f64 {
        self.0[class.index()]
    }

    /// The class a uniform number `u` in [0, 1) falls on (classes in
    /// [`Class`] order take consecutive slices of [0, 1)). Out-of-range or
    /// non-finite `u` is clamped; a class with no share is never returned.
    pub fn class_of(&self, u: f64) -> Class {
        let u = if u.is_finite() {
            u.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let mut total = 0.0;
        let mut last = Class::Periodic;
        for class in Class::ALL {
            let f = self.0[class.index()];
            if f > 0.0 {
                last = class;
                total += f;
                if u < total {
                    return class;
                }
            }
        }
        last
    }
}

/// `0.35` or `35%`, within [0, 1].
fn parse_fraction(text: &str) -> Option<f64> {
    let (number, scale) = match text.strip_suffix('%') {
        Some(n) => (n.trim(), 0.01),
        None => (text, 1.0),
    };
    let f = number.parse::<f64>().ok()? * scale;
    (f.is_finite() && (0.0..=1.0).contains(&f)).then_some(f.max(0.0))
}

impl fmt::Display for Mix {
    /// `periodic=0.35,transient=0.2,...`, which [`Mix::parse`] reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, class) in Class::ALL.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            write!(f, "{sep}{}={}", class.name(), self.0[i])?;
        }
        Ok(())
    }
}

impl FromStr for Mix {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mix::parse(s)
    }
}

// ------------------------------------------------------------ the sky

/// Hash tags: each kind of draw has its own coordinates.
const T_CLASS: u64 = 0xC1A5_5000;
const T_PLACE: u64 = 0xC1A5_5001;
const T_CURVE: u64 = 0xC1A5_5002;
const T_EVENT: u64 = 0xC1A5_5003;
const T_BAND: u64 = 0xC1A5_5010;
const T_LIMIT: u64 = 0xC1A5_5011;
const T_NOISE: u64 = 0xC1A5_5012;
const T_FLOOR: u64 = 0xC1A5_5013;
const T_RELIABILITY: u64 = 0xC1A5_5014;
const T_ASTROMETRY_RA: u64 = 0xC1A5_5015;
const T_ASTROMETRY_DEC: u64 = 0xC1A5_5016;
const T_ARTEFACT: u64 = 0xC1A5_5017;
const T_ZTF_ID: u64 = 0xC1A5_5020;
const T_RUBIN_ID: u64 = 0xC1A5_5021;

/// The golden angle in degrees: successive fields turn by it in RA.
const GOLDEN_ANGLE_DEG: f64 = 137.507_764_050_037_85;

/// LSSTCam's science rafts by row, bottom to top: (first raft id, rafts in
/// the row). The 5 x 5 raft grid without its corners (wavefront sensors)
/// has rows of 3, 5, 5, 5, 3 rafts, numbered R01, R02, R03, R10, ... R43.
const RUBIN_RAFT_ROWS: [(u32, u32); 5] = [(0, 3), (3, 5), (8, 5), (13, 5), (18, 3)];
const RUBIN_RAFTS: u32 = 21;

/// A survey's tiling of the sky into `fields` pointings.
///
/// A field's focal plane is the disc of radius [`Sky::field_radius`] about
/// its centre (on the tangent plane): ZTF 7 deg across, Rubin 3.5 deg. Its
/// detectors are the camera's grid laid over the disc by an equal-area map
/// of the square onto the disc (Shirley and Chiu's concentric map), so
/// every detector gets the same share of the field and neighbouring
/// positions fall on the same or neighbouring detectors: ZTF's 16 CCDs x 4
/// readout quadrants (8 x 8 cells), Rubin's 21 rafts x 9 CCDs (raft rows
/// of 3, 5, 5, 5, 3, like LSSTCam's cross).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sky {
    pub survey: Survey,
    /// Number of fields; 0 is taken as 1.
    pub fields: u32,
}

impl Sky {
    pub fn new(survey: Survey, fields: u32) -> Sky {
        Sky { survey, fields }
    }

    fn field_count(&self) -> u32 {
        self.fields.max(1)
    }

    /// Centre (ra, dec in degrees) of field `field` (taken modulo the number
    /// of fields). Fields lie on a Fibonacci lattice over the survey's sky
    /// (ZTF: north of dec -30; Rubin: south of dec +5; the whole field
    /// inside that limit), evenly spread: up to 100 fields never overlap.
    /// Field 0 is the southernmost; the grid depends only on the survey and
    /// the number of fields, not on the seed.
    pub fn field_centre(&self, field: u32) -> (f64, f64) {
        let n = self.field_count();
        let field = field % n;
        let edge = self.field_radius().to_radians();
        let (z_lo, z_hi) = match self.survey {
            Survey::Ztf => (((-30.0f64).to_radians() + edge).sin(), 1.0),
            Survey::Rubin => (-1.0, (5.0f64.to_radians() - edge).sin()),
        };
        let z = z_lo + (z_hi - z_lo) * (f64::from(field) + 0.5) / f64::from(n);
        let dec = z.clamp(-1.0, 1.0).asin().to_degrees();
        let ra = normalise_ra(f64::from(field) * GOLDEN_ANGLE_DEG);
        (ra, dec)
    }

    /// Radius of a field in degrees: ZTF 3.5 (7 deg across, about ZTF's
    /// 47 deg2), Rubin 1.75 (3.5 deg across, about LSSTCam's 9.6 deg2).
    pub fn field_radius(&self) -> f64 {
        match self.survey {
            Survey::Ztf => 3.5,
            Survey::Rubin => 1.75,
        }
    }

    /// Detectors in a focal plane: ZTF's 64 readout quadrants, Rubin's 189
    /// science CCDs.
    pub fn detectors(&self) -> u32 {
        match self.survey {
            Survey::Ztf => 64,
            Survey::Rubin => 189,
        }
    }

    /// Focal-plane coordinates of a position in field `field`: (x, y) in
    /// units of the field radius on the tangent plane at the field centre,
    /// x towards east (growing RA), y towards north; the field is the unit
    /// disc. None on the far side of the sky or for non-finite input.
    pub fn focal_plane(&self, field: u32, ra: f64, dec: f64) -> Option<(f64, f64)> {
        let scale = self.field_radius().to_radians();
        let (xi, eta) = project(self.field_centre(field), ra, dec)?;
        Some((xi / scale, eta / scale))
    }

    /// Whether a position falls in field `field`.
    pub fn in_footprint(&self, field: u32, ra: f64, dec: f64) -> bool {
        self.focal_plane(field, ra, dec)
            .is_some_and(|(x, y)| x.hypot(y) <= 1.0)
    }

    /// The detector (in 0..detectors()) a position falls on in field
    /// `field`. ZTF: numbered like ZTF's rcid, 4 (ccdid - 1) + (qid - 1),
    /// with the 4 x 4 CCDs row by row and each CCD's 2 x 2 quadrants row by
    /// row. Rubin: LSSTCam's numbering, 9 raft + 3 sensor-row +
    /// sensor-column, rafts in the order R01, R02, R03, R10, ... R43.
    /// Positions outside the field get the detector at the nearest edge
    /// (positions on the far side of the sky, or non-finite, a central one).
    pub fn detector_of(&self, field: u32, ra: f64, dec: f64) -> u32 {
        let (x, y) = self.focal_plane(field, ra, dec).unwrap_or((0.0, 0.0));
        let (s, t) = disc_to_square(x, y);
        detector_in_square(self.survey, s, t)
    }
}

/// The detector at (s, t) of the camera's grid over the square [-1, 1]^2.
fn detector_in_square(survey: Survey, s: f64, t: f64) -> u32 {
    // To [0, 1], non-finite to the middle.
    let unit = |w: f64| {
        if w.is_finite() {
            ((w + 1.0) / 2.0).clamp(0.0, 1.0)
        } else {
            0.5
        }
    };
    let (u, v) = (unit(s), unit(t));
    let cell = |w: f64, n: u32| ((w * f64::from(n)).floor() as u32).min(n - 1);
    match survey {
        Survey::Ztf => {
            let (cx, cy) = (cell(u, 8), cell(v, 8));
            let ccd = (cy / 2) * 4 + cx / 2;
            let quadrant = (cy % 2) * 2 + cx % 2;
            ccd * 4 + quadrant
        }
        Survey::Rubin => {
            // Each raft row takes a band of the square as tall as its share
            // of the rafts, so every raft (and CCD) has the same area.
            let height = v * f64::from(RUBIN_RAFTS);
            let (first, rafts) = RUBIN_RAFT_ROWS
                .iter()
                .copied()
                .find(|&(first, rafts)| height < f64::from(first + rafts))
                .unwrap_or(RUBIN_RAFT_ROWS[4]);
            let within = ((height - f64::from(first)) / f64::from(rafts)).clamp(0.0, 1.0);
            let across = u * f64::from(rafts);
            let raft = cell(u, rafts);
            let sensor_column = cell((across - f64::from(raft)).clamp(0.0, 1.0), 3);
            (first + raft) * 9 + cell(within, 3) * 3 + sensor_column
        }
    }
}

/// Shirley and Chiu's concentric map of the square [-1, 1]^2 onto the unit
/// disc: continuous, and area-preserving up to the factor pi / 4, so a
/// uniform point of the square lands on a uniform point of the disc.
fn square_to_disc(a: f64, b: f64) -> (f64, f64) {
    if a == 0.0 && b == 0.0 {
        return (0.0, 0.0);
    }
    let (r, phi) = if a.abs() > b.abs() {
        (a, FRAC_PI_4 * (b / a))
    } else {
        (b, FRAC_PI_2 - FRAC_PI_4 * (a / b))
    };
    let (sin, cos) = phi.sin_cos();
    (r * cos, r * sin)
}

/// The inverse of [`square_to_disc`]; points beyond the unit circle are
/// first brought onto it.
fn disc_to_square(x: f64, y: f64) -> (f64, f64) {
    let r = x.hypot(y);
    if r.is_nan() || r == 0.0 {
        return (0.0, 0.0);
    }
    let r = r.min(1.0);
    let mut phi = y.atan2(x);
    if phi < -FRAC_PI_4 {
        phi += TAU;
    }
    let k = 4.0 / PI;
    let (a, b) = if phi < FRAC_PI_4 {
        (r, r * k * phi)
    } else if phi < 3.0 * FRAC_PI_4 {
        (r * k * (FRAC_PI_2 - phi), r)
    } else if phi < 5.0 * FRAC_PI_4 {
        (-r, r * k * (PI - phi))
    } else {
        (r * k * (phi - 3.0 * FRAC_PI_2), -r)
    };
    (a.clamp(-1.0, 1.0), b.clamp(-1.0, 1.0))
}

/// RA into [0, 360).
fn normalise_ra(ra: f64) -> f64 {
    let r = ra.rem_euclid(360.0);
    if r >= 360.0 {
        0.0
    } else {
        r
    }
}

/// Gnomonic projection about `centre` (degrees in, radians out); None on the
/// far hemisphere or for non-finite input.
fn project(centre: (f64, f64), ra: f64, dec: f64) -> Option<(f64, f64)> {
    let (sd0, cd0) = centre.1.to_radians().sin_cos();
    let (sd, cd) = dec.to_radians().sin_cos();
    let (sda, cda) = (ra - centre.0).to_radians().sin_cos();
    let cosc = sd0 * sd + cd0 * cd * cda;
    if cosc.is_nan() || cosc <= 1e-9 {
        return None;
    }
    Some((cd * sda / cosc, (cd0 * sd - sd0 * cd * cda) / cosc))
}

/// Inverse gnomonic projection: tangent-plane offsets (radians; xi east, eta
/// north) about `centre` to (ra, dec) in degrees. Straight lines of the
/// tangent plane are great circles.
fn deproject(centre: (f64, f64), xi: f64, eta: f64) -> (f64, f64) {
    let (sd0, cd0) = centre.1.to_radians().sin_cos();
    let denom = cd0 - eta * sd0;
    let ra = centre.0 + xi.atan2(denom).to_degrees();
    let dec = (sd0 + eta * cd0).atan2(xi.hypot(denom)).to_degrees();
    (normalise_ra(ra), dec)
}

/// Angular separation in degrees.
pub fn separation(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (d1, d2) = (a.1.to_radians(), b.1.to_radians());
    let h = ((d2 - d1) / 2.0).sin().powi(2)
        + d1.cos() * d2.cos() * ((b.0 - a.0).to_radians() / 2.0).sin().powi(2);
    (2.0 * h.clamp(0.0, 1.0).sqrt().asin()).to_degrees()
}

/// Successive independent uniform draws: a SplitMix64 stream started from a
/// hash of the draw's coordinates, one mix per draw.
struct Draws {
    state: u64,
}

impl Draws {
    fn new(seed: u64, parts: &[u64]) -> Self {
        Draws {
            state: rng::hash(seed, parts),
        }
    }

    fn unit(&mut self) -> f64 {
        // rng::mix adds SplitMix64's increment itself.
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        rng::unit(rng::mix(self.state))
    }

    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + (hi.ln() - lo.ln()) * self.unit()).exp()
    }
}

// ------------------------------------------------------------ objects

/// A date (MJD, 2026-01-01) solar-system tracks are reckoned from: a
/// solar-system object is at its object position (ra, dec) then.
pub const REFERENCE_MJD: f64 = 61_041.0;

/// Transients recur: each has one supernova-like event per cycle of this
/// many days (cycles offset by a per-object phase), so a population has
/// transients at every stage at any date, with no epoch to agree on.
pub const TRANSIENT_CYCLE_DAYS: f64 = 200.0;
/// An event explodes within the first this-many days of its cycle...
const TRANSIENT_SLACK_DAYS: f64 = 20.0;
/// ...and has faded to nothing this many days after exploding, before the
/// next cycle begins.
const TRANSIENT_LIFE_DAYS: f64 = TRANSIENT_CYCLE_DAYS - TRANSIENT_SLACK_DAYS;

/// The shape of a periodic light curve; every shape averages to the mean
/// flux over a cycle.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    /// Pulsation with equal rise and fall (RRc, Cepheid-like).
    Sinusoid,
    /// Fast rise over `rise` of the cycle, slow linear decline (RRab-like).
    Sawtooth { rise: f64 },
    /// Flat with V-shaped eclipses of half-width `width` (in phase): the
    /// primary at phase 0 has the full depth, the secondary at phase 0.5
    /// `secondary` times it (in flux).
    Eclipsing { width: f64, secondary: f64 },
}

impl Shape {
    /// Flux relative to the mean at `phase` in [0, 1) for a peak-to-peak
    /// amplitude (eclipsing: primary depth) of `depth` magnitudes.
    fn modulation(self, depth: f64, phase: f64) -> f64 {
        let ratio = mag_ratio(depth.max(0.0));
        match self {
            Shape::Sinusoid => 1.0 + (ratio - 1.0) / (ratio + 1.0) * (TAU * phase).sin(),
            Shape::Sawtooth { rise } => {
                let rise = rise.clamp(0.01, 0.99);
                let s = if phase < rise {
                    -1.0 + 2.0 * phase / rise
                } else {
                    1.0 - 2.0 * (phase - rise) / (1.0 - rise)
                };
                1.0 + (ratio - 1.0) / (ratio + 1.0) * s
            }
            Shape::Eclipsing { width, secondary } => {
                let width = width.clamp(0.001, 0.25);
                let secondary = secondary.clamp(0.0, 1.0);
                let dip = |centre: f64| {
                    let d = (phase - centre + 0.5).rem_euclid(1.0) - 0.5;
                    (1.0 - d.abs() / width).max(0.0)
                };
                // Mean of the dips over a cycle, so the curve averages to 1.
                let mean_dip = width * (1.0 + secondary);
                let b = (ratio - 1.0) / (ratio - mean_dip * (ratio - 1.0));
                1.0 + b * (mean_dip - dip(0.0) - secondary * dip(0.5))
            }
        }
    }
}

/// Sinusoids an AGN light curve is the sum of.
pub const AGN_WAVES: usize = 6;

/// One sinusoid of an AGN light curve: magnitude offset amplitude *
/// sin(2 pi t / period + phase).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Wave {
    pub period: f64,
    pub phase: f64,
    pub amplitude: f64,
}

/// A solar-system object's path: a chord of its field's disc, crossed at
/// `rate` along a great circle; at the field's edge it comes back in at the
/// other end of the chord (a new object on the same track, in effect), so
/// it is in its field at every date.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Track {
    /// The field's centre (ra, dec) and radius, degrees.
    pub centre: (f64, f64),
    pub radius: f64,
    /// Position angle of the motion, radians from north through east.
    pub direction: f64,
    /// Degrees per day (2 to 60 arcsec per hour).
    pub rate: f64,
    /// The chord's distance from the field centre, and the object's place
    /// along it at [`REFERENCE_MJD`], in field radii.
    pub offset: f64,
    pub along: f64,
}

impl Track {
    /// Where the object is at `mjd` (degrees), before astrometric scatter.
    pub fn at(&self, mjd: f64) -> (f64, f64) {
        let half = (1.0 - self.offset * self.offset).max(0.0).sqrt().max(1e-9);
        let speed = self.rate / self.radius.max(1e-9);
        let along =
            (self.along + speed * (mjd - REFERENCE_MJD) + half).rem_euclid(2.0 * half) - half;
        let (sin, cos) = self.direction.sin_cos();
        let x = along * sin + self.offset * cos;
        let y = along * cos - self.offset * sin;
        let scale = self.radius.to_radians();
        deproject(self.centre, x * scale, y * scale)
    }
}

/// Light-curve parameters by class. Magnitudes are at 620 nm (r); other
/// bands follow from `g_minus_r`: m(λ) = m + (g - r) (620 - λ) / 140 nm
/// blueward of 620 nm, half that slope redward.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Curve {
    /// Flux = mean x shape(phase); `amplitude` is peak-to-peak magnitudes
    /// in r (eclipsing: primary depth), a little larger in bluer bands.
    Periodic {
        mean_mag: f64,
        g_minus_r: f64,
        period: f64,
        /// Phase at MJD 0, in cycles.
        phase: f64,
        amplitude: f64,
        shape: Shape,
    },
    /// Supernova-like events on an optional host, one per cycle of
    /// [`TRANSIENT_CYCLE_DAYS`] starting at MJD `cycle_phase` + k cycles;
    /// each event's parameters are drawn per cycle (see [`transient_event`]).
    Transient {
        cycle_phase: f64,
        host_mag: Option<f64>,
        host_g_minus_r: f64,
    },
    /// Magnitude = mean_mag + sum of waves (larger in bluer bands); `rms`
    /// is the r-band rms variability in magnitudes.
    Agn {
        mean_mag: f64,
        g_minus_r: f64,
        rms: f64,
        waves: [Wave; AGN_WAVES],
    },
    /// A moving object, with a small double-peaked rotational light curve
    /// (`spin_amplitude` magnitudes peak to peak).
    SolarSystem {
        mag: f64,
        g_minus_r: f64,
        spin_period: f64,
        spin_amplitude: f64,
        spin_phase: f64,
        track: Track,
    },
    /// An artefact on a star or galaxy nucleus: the template has the star;
    /// each exposure has a residual of random sign near `artefact_mag`.
    Bogus {
        star_mag: f64,
        g_minus_r: f64,
        artefact_mag: f64,
    },
}

/// One simulated object, recomputed from (seed, index) by [`object`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Object {
    pub index: u64,
    pub survey: Survey,
    pub class: Class,
    pub field: u32,
    /// Position, degrees (solar-system objects: at [`REFERENCE_MJD`]; see
    /// [`position`]).
    pub ra: f64,
    pub dec: f64,
    pub curve: Curve,
}

/// Object `index` of a population: class from `mix`, field = index %
/// fields, position uniform over the field's disc, light-curve parameters
/// drawn from `rng::hash(seed, [index, ...])`. No epoch: transients recur
/// and solar-system objects stay in their field (see [`Curve`]), so the
/// population is alive at any date.
pub fn object(seed: u64, sky: &Sky, mix: &Mix, index: u64) -> Object {
    let class = mix.class_of(rng::uniform(seed, &[index, T_CLASS], 0.0, 1.0));
    let field = (index % u64::from(sky.field_count())) as u32;
    let mut place = Draws::new(seed, &[index, T_PLACE]);
    let (x, y) = square_to_disc(place.uniform(-1.0, 1.0), place.uniform(-1.0, 1.0));
    let centre = sky.field_centre(field);
    let scale = sky.field_radius().to_radians();
    let (ra, dec) = deproject(centre, x * scale, y * scale);
    let mut d = Draws::new(seed, &[index, T_CURVE, class.index() as u64]);
    let curve = match class {
        Class::Periodic => {
            let mean_mag = d.uniform(15.0, 21.0);
            let g_minus_r = d.uniform(-0.2, 1.2);
            let period = d.log_uniform(0.2, 20.0);
            let phase = d.unit();
            let amplitude = d.uniform(0.2, 1.0);
            let kind = d.unit();
            let (a, b) = (d.unit(), d.unit());
            let shape = if kind < 0.4 {
                Shape::Sawtooth {
                    rise: 0.1 + 0.15 * a,
                }
            } else if kind < 0.75 {
                Shape::Sinusoid
            } else {
                Shape::Eclipsing {
                    width: 0.03 + 0.07 * a,
                    secondary: 0.1 + 0.9 * b,
                }
            };
            Curve::Periodic {
                mean_mag,
                g_minus_r,
                period,
                phase,
                amplitude,
                shape,
            }
        }
        Class::Transient => {
            let cycle_phase = d.uniform(0.0, TRANSIENT_CYCLE_DAYS);
            let has_host = d.unit() < 0.75;
            let host_mag = d.uniform(21.0, 24.0);
            Curve::Transient {
                cycle_phase,
                host_mag: has_host.then_some(host_mag),
                host_g_minus_r: d.uniform(0.5, 1.0),
            }
        }
        Class::Agn => {
            let mean_mag = d.uniform(17.0, 21.0);
            let g_minus_r = d.uniform(-0.1, 0.4);
            let rms = d.uniform(0.1, 0.3);
            // A damped random walk has power f P(f) ~ x / (1 + x^2) per
            // log-frequency, x = 2 pi tau / period: the sinusoids (periods
            // log-uniform) are weighted so, with Rayleigh scatter.
            let tau = d.log_uniform(50.0, 500.0);
            let mut waves = [Wave {
                period: 1.0,
                phase: 0.0,
                amplitude: 0.0,
            }; AGN_WAVES];
            for w in waves.iter_mut() {
                let period = d.log_uniform(10.0, 1000.0);
                let x = TAU * tau / period;
                let rayleigh = (-2.0 * (1.0 - d.unit()).ln()).sqrt();
                *w = Wave {
                    period,
                    phase: TAU * d.unit(),
                    amplitude: (x / (1.0 + x * x)).sqrt() * rayleigh,
                };
            }
            let power: f64 = waves.iter().map(|w| w.amplitude * w.amplitude / 2.0).sum();
            let scale = if power > 0.0 { rms / power.sqrt() } else { 0.0 };
            for w in waves.iter_mut() {
                w.amplitude *= scale;
            }
            Curve::Agn {
                mean_mag,
                g_minus_r,
                rms,
                waves,
            }
        }
        Class::SolarSystem => {
            let mag = d.uniform(17.0, 21.0);
            let g_minus_r = d.uniform(0.4, 0.7);
            let direction = TAU * d.unit();
            let (sin, cos) = direction.sin_cos();
            let track = Track {
                centre,
                radius: sky.field_radius(),
                direction,
                rate: d.log_uniform(2.0, 60.0) * 24.0 / 3600.0,
                offset: x * cos - y * sin,
                along: x * sin + y * cos,
            };
            Curve::SolarSystem {
                mag,
                g_minus_r,
                spin_period: d.log_uniform(2.0, 20.0) / 24.0,
                spin_amplitude: d.uniform(0.05, 0.3),
                spin_phase: TAU * d.unit(),
                track,
            }
        }
        Class::Bogus => {
            let limit = sky.survey.typical_limiting_mag();
            Curve::Bogus {
                star_mag: d.uniform(14.0, limit - 0.5),
                g_minus_r: d.uniform(-0.2, 1.4),
                artefact_mag: limit - d.uniform(0.5, 3.0),
            }
        }
    };
    Object {
        index,
        survey: sky.survey,
        class,
        field,
        ra,
        dec,
        curve,
    }
}

// ------------------------------------------------------------ light curves

/// Variability amplitude ~ (620 nm / wavelength)^power.
const PULSATION_CHROMATICITY: f64 = 0.5;
const AGN_CHROMATICITY: f64 = 0.7;
/// Supernova decline time ~ (wavelength / 620 nm)^power: blue fades first.
const SN_FADE_CHROMATICITY: f64 = 0.8;

/// One supernova-like event of a transient. Flux in band b, x days after
/// the explosion: F_peak,b (1 - e^(-x/rise)) e^(-x/fall_b) / (its maximum),
/// tapered to 0 by 180 days; `peak_mag` and `peak_mjd` are the maximum at
/// 620 nm (r); bluer bands peak a little earlier and fade faster.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Event {
    pub explosion_mjd: f64,
    pub peak_mjd: f64,
    /// 17 to 21.
    pub peak_mag: f64,
    pub g_minus_r: f64,
    /// e-folding days: rise 3 to 8 (peak 1 to 3 weeks after explosion),
    /// fall 30 to 90 (at 620 nm).
    pub rise: f64,
    pub fall: f64,
}

/// The event of a transient's cycle that holds `mjd` (its flux is 0 before
/// its explosion and 180 days after); None for other classes.
pub fn transient_event(seed: u64, object: &Object, mjd: f64) -> Option<Event> {
    let Curve::Transient { cycle_phase, .. } = object.curve else {
        return None;
    };
    let cycle = ((mjd - cycle_phase) / TRANSIENT_CYCLE_DAYS).floor();
    let cycle = if cycle.is_finite() {
        cycle.clamp(-1e15, 1e15)
    } else {
        0.0
    };
    let mut d = Draws::new(seed, &[object.index, T_EVENT, cycle as i64 as u64]);
    let explosion_mjd =
        cycle_phase + cycle * TRANSIENT_CYCLE_DAYS + d.uniform(0.0, TRANSIENT_SLACK_DAYS);
    let peak_mag = d.uniform(17.0, 21.0);
    let g_minus_r = d.uniform(-0.2, 0.4);
    let rise = d.uniform(3.0, 8.0);
    let fall = d.uniform(30.0, 90.0);
    Some(Event {
        explosion_mjd,
        peak_mjd: explosion_mjd + time_to_peak(rise, fall),
        peak_mag,
        g_minus_r,
        rise,
        fall,
    })
}

/// Days from explosion to peak of (1 - e^(-x/rise)) e^(-x/fall).
fn time_to_peak(rise: f64, fall: f64) -> f64 {
    let (rise, fall) = (rise.max(1e-3), fall.max(1e-3));
    rise * ((rise + fall) / rise).ln()
}

/// (1 - e^(-x/rise)) e^(-x/fall), scaled to 1 at its peak, times a taper
/// that takes it to 0 at the end of the event's life; 0 for x <= 0.
fn supernova_shape(x: f64, rise: f64, fall: f64) -> f64 {
    if x.is_nan() || x <= 0.0 || x >= TRANSIENT_LIFE_DAYS {
        return 0.0;
    }
    let (rise, fall) = (rise.max(1e-3), fall.max(1e-3));
    let curve = |x: f64| -(-x / rise).exp_m1() * (-x / fall).exp();
    let taper = 1.0 - (x / TRANSIENT_LIFE_DAYS).powi(8);
    curve(x) / curve(time_to_peak(rise, fall)) * taper
}

/// A transient's event flux (no host) in `band` at `mjd`; 0 for other
/// classes.
fn supernova_flux(seed: u64, object: &Object, band: usize, mjd: f64) -> f64 {
    let Some(event) = transient_event(seed, object, mjd) else {
        return 0.0;
    };
    let x = mjd - event.explosion_mjd;
    if x.is_nan() || x <= 0.0 || x >= TRANSIENT_LIFE_DAYS {
        return 0.0;
    }
    let survey = object.survey;
    let fall = event.fall * (wavelength_nm(survey, band) / REF_NM).powf(SN_FADE_CHROMATICITY);
    let peak = mag_to_njy(band_mag(survey, band, event.peak_mag, event.g_minus_r));
    peak * supernova_shape(x, event.rise, fall)
}

/// The object's total (template + variable) flux in nJy at `mjd` in `band`
/// (an index into [`bands`]; out of range means the reddest band).
pub fn flux(seed: u64, object: &Object, band: usize, mjd: f64) -> f64 {
    let survey = object.survey;
    let band = band_index(survey, band);
    match object.curve {
        Curve::Periodic {
            mean_mag,
            g_minus_r,
            period,
            phase,
            amplitude,
            shape,
        } => {
            let mean = mag_to_njy(band_mag(survey, band, mean_mag, g_minus_r));
            let depth = amplitude * chromatic(survey, band, PULSATION_CHROMATICITY);
            let cycle = (mjd / period.max(1e-6) + phase).rem_euclid(1.0);
            mean * shape.modulation(depth, cycle)
        }
        Curve::Transient { .. } => {
            reference_flux(seed, object, band) + supernova_flux(seed, object, band, mjd)
        }
        Curve::Agn {
            mean_mag,
            g_minus_r,
            waves,
            ..
        } => {
            let offset: f64 = waves
                .iter()
                .map(|w| w.amplitude * (TAU * mjd / w.period + w.phase).sin())
                .sum();
            let k = chromatic(survey, band, AGN_CHROMATICITY);
            mag_to_njy(band_mag(survey, band, mean_mag, g_minus_r) + k * offset)
        }
        Curve::SolarSystem {
            mag,
            g_minus_r,
            spin_period,
            spin_amplitude,
            spin_phase,
            ..
        } => {
            // Two maxima per rotation, as for an elongated body.
            let spin = 0.5 * spin_amplitude * (2.0 * TAU * mjd / spin_period + spin_phase).sin();
            mag_to_njy(band_mag(survey, band, mag, g_minus_r) + spin)
        }
        Curve::Bogus { artefact_mag, .. } => {
            let star = reference_flux(seed, object, band);
            let h = rng::hash(
                seed,
                &[object.index, T_ARTEFACT, band as u64, mjd.to_bits()],
            );
            let size = mag_to_njy(artefact_mag + rng::unit(h) - 0.5);
            if h >> 63 == 0 {
                star + size
            } else {
                // A negative residual cannot take more than the star has.
                star - size.min(0.9 * star)
            }
        }
    }
}

/// The object's flux in the template (reference image) in nJy: the mean for
/// periodic sources and AGN, the host (or 0) for transients, 0 for
/// solar-system objects (they were elsewhere), the star for bogus.
pub fn reference_flux(_seed: u64, object: &Object, band: usize) -> f64 {
    let survey = object.survey;
    let band = band_index(survey, band);
    match object.curve {
        Curve::Periodic {
            mean_mag,
            g_minus_r,
            ..
        }
        | Curve::Agn {
            mean_mag,
            g_minus_r,
            ..
        } => mag_to_njy(band_mag(survey, band, mean_mag, g_minus_r)),
        Curve::Transient {
            host_mag,
            host_g_minus_r,
            ..
        } => host_mag.map_or(0.0, |m| {
            mag_to_njy(band_mag(survey, band, m, host_g_minus_r))
        }),
        Curve::SolarSystem { .. } => 0.0,
        Curve::Bogus {
            star_mag,
            g_minus_r,
            ..
        } => mag_to_njy(band_mag(survey, band, star_mag, g_minus_r)),
    }
}

/// Flux minus reference flux (nJy): what difference imaging sees, negative
/// when the object is fainter than in the template. No noise.
pub fn difference_flux(seed: u64, object: &Object, band: usize, mjd: f64) -> f64 {
    flux(seed, object, band, mjd) - reference_flux(seed, object, band)
}

// ------------------------------------------------------------ measurements

/// 1-sigma scatter of a visit's limiting magnitude, and its cut-off.
const LIMIT_SCATTER: f64 = 0.25;
const LIMIT_SCATTER_MAX: f64 = 0.75;

/// 1-sigma flux noise (nJy) of a typical visit: a fifth of the flux at the
/// survey's typical 5-sigma depth (ZTF 20.5: ~4580 nJy; Rubin 24.5: ~115).
pub fn noise_njy(survey: Survey) -> f64 {
    mag_to_njy(survey.typical_limiting_mag()) / 5.0
}

/// 5-sigma limiting magnitude of visit `visit`: the survey's typical depth
/// with 0.25 mag (1 sigma, cut at 0.75) of scatter for seeing, sky and
/// clouds.
pub fn limiting_mag(survey: Survey, seed: u64, visit: i64) -> f64 {
    let scatter = (LIMIT_SCATTER * rng::normal(seed, &[visit as u64, T_LIMIT]))
        .clamp(-LIMIT_SCATTER_MAX, LIMIT_SCATTER_MAX);
    survey.typical_limiting_mag() + scatter
}

/// 1-sigma flux noise (nJy) of visit `visit`, from its limiting magnitude.
pub fn flux_sigma(survey: Survey, seed: u64, visit: i64) -> f64 {
    mag_to_njy(limiting_mag(survey, seed, visit)) / 5.0
}

/// The measured difference flux (nJy) of the object's detection in visit
/// `visit`: the true difference flux plus Gaussian noise of
/// [`flux_sigma`], and when that is under 5 sigma (sigma being the larger
/// of the visit's and the typical [`noise_njy`], so the flux is a 5-sigma
/// detection whichever error goes with it) pushed out to between 5 and 7.5
/// sigma with the true difference's sign (positive when it is 0).
pub fn detection_flux(seed: u64, object: &Object, band: usize, mjd: f64, visit: i64) -> f64 {
    let truth = difference_flux(seed, object, band, mjd);
    let visit_sigma = flux_sigma(object.survey, seed, visit);
    let sigma = visit_sigma.max(noise_njy(object.survey));
    let measured = truth + visit_sigma * rng::normal(seed, &[object.index, visit as u64, T_NOISE]);
    let sign = if truth < 0.0 { -1.0 } else { 1.0 };
    if measured.is_finite() && measured.abs() >= 5.0 * sigma && measured * sign > 0.0 {
        measured
    } else {
        sign * sigma * rng::uniform(seed, &[object.index, visit as u64, T_FLOOR], 5.0, 7.5)
    }
}

/// Astrometric scatter of one detection (1 sigma per axis): 0.1 arcsec.
const ASTROMETRIC_SIGMA_DEG: f64 = 0.1 / 3600.0;

/// Where the object is detected at `mjd` in visit `visit` (ra, dec in
/// degrees): its position (solar-system objects: along their [`Track`])
/// plus 0.1 arcsec (1 sigma per axis) of scatter drawn per (object, visit).
pub fn position(seed: u64, object: &Object, mjd: f64, visit: i64) -> (f64, f64) {
    let (ra, dec) = match object.curve {
        Curve::SolarSystem { track, .. } => track.at(mjd),
        _ => (object.ra, object.dec),
    };
    let sigma = ASTROMETRIC_SIGMA_DEG.to_radians();
    let xi = sigma * rng::normal(seed, &[object.index, visit as u64, T_ASTROMETRY_RA]);
    let eta = sigma * rng::normal(seed, &[object.index, visit as u64, T_ASTROMETRY_DEC]);
    deproject((ra, dec), xi, eta)
}

/// Real/bogus score in [0, 1] of the object's detection in visit `visit`:
/// 0.7 to 1 (mostly near 1) for real classes, 0 to 0.3 (mostly near 0) for
/// bogus.
pub fn reliability(seed: u64, object: &Object, visit: i64) -> f64 {
    let u = rng::uniform(seed, &[object.index, visit as u64, T_RELIABILITY], 0.0, 1.0);
    if object.class.is_real() {
        1.0 - 0.3 * u * u
    } else {
        0.3 * u * u
    }
}

// ------------------------------------------------------------ names

/// 26^7: the number of distinct 7-letter ZTF names.
const ZTF_NAMES: u64 = 8_031_810_176;

/// ZTF-style object name: `ZTF`, the 2-digit year of `first_mjd` (the
/// first detection, UTC), 7 lowercase letters, e.g. `ZTF26qfbxkmz`. The
/// letters are a seed-keyed permutation of `index` within 26^7, so they
/// look random but two indices below 26^7 never share them (larger indices
/// wrap).
pub fn ztf_object_id(seed: u64, index: u64, first_mjd: f64) -> String {
    let key = rng::hash(seed, &[T_ZTF_ID]);
    let mut x = ztf_letters_number(key, index % ZTF_NAMES);
    let mut letters = [b'a'; 7];
    for slot in letters.iter_mut().rev() {
        *slot = b'a' + (x % 26) as u8;
        x /= 26;
    }
    let year = year_of_mjd(first_mjd).rem_euclid(100);
    format!("ZTF{year:02}{}", String::from_utf8_lossy(&letters))
}

/// A bijection of [0, 26^7): cycle-walking a permutation of [0, 2^33)
/// (which holds 26^7) until the value lands back in [0, 26^7). Each step
/// of `permute_bits` is invertible on 33 bits, so `permute_bits` is a
/// permutation; walking its cycle from a value below 26^7 to the next value
/// below 26^7 is then a permutation of [0, 26^7) (the classic cycle-walking
/// construction). 2^33 / 26^7 = 1.07, so about 1.07 steps on average.
fn ztf_letters_number(key: u64, x: u64) -> u64 {
    let mut y = x;
    loop {
        y = permute_bits(y, key, 33);
        if y < ZTF_NAMES {
            return y;
        }
    }
}

/// A keyed permutation of [0, 2^bits) (bits in 8..=64): xor with a key,
/// multiplications by odd constants and xorshifts, each invertible modulo
/// 2^bits.
fn permute_bits(x: u64, key: u64, bits: u32) -> u64 {
    let bits = bits.clamp(8, 64);
    let mask = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let half = bits / 2;
    let mut y = (x ^ key) & mask;
    y = y.wrapping_mul(0x9E37_79B9_7F4A_7C15) & mask;
    y ^= y >> half;
    y = y
        .wrapping_mul(0xBF58_476D_1CE4_E5B9)
        .wrapping_add(key >> 17)
        & mask;
    y ^= y >> (half - 3);
    y = y.wrapping_mul(0x94D0_49BB_1331_11EB) & mask;
    y ^= y >> (half + 1);
    y
}

/// Rubin-style diaObjectId: a unique positive 64-bit integer in [2^61,
/// 2^62) (the size of real LSST ids), a seed-keyed permutation of `index`,
/// unique for indices below 2^61 (larger ones wrap).
pub fn rubin_object_id(seed: u64, index: u64) -> i64 {
    let key = rng::hash(seed, &[T_RUBIN_ID]);
    let x = permute_bits(index & ((1u64 << 61) - 1), key, 61);
    ((1u64 << 61) | x) as i64
}

/// Calendar (proleptic Gregorian, UTC) year of an MJD; non-finite means MJD 0.
pub fn year_of_mjd(mjd: f64) -> i64 {
    let mjd = if mjd.is_finite() {
        mjd.clamp(-678_575.0, 2_973_483.0) // years 1 to 9999
    } else {
        0.0
    };
    let mjd_zero = jiff::civil::date(1858, 11, 17);
    jiff::Span::new()
        .try_days(mjd.floor() as i64)
        .and_then(|days| mjd_zero.checked_add(days))
        .map_or(1858, |date| i64::from(date.year()))
}

// ------------------------------------------------------------ tests

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const SEED: u64 = 42;
    const NOW: f64 = 61_000.0;

    fn skies() -> [Sky; 2] {
        [Sky::new(Survey::Ztf, 20), Sky::new(Survey::Rubin, 30)]
    }

    fn r_band(survey: Survey) -> usize {
        match survey {
            Survey::Ztf => 1,
            Survey::Rubin => 2,
        }
    }

    /// Objects of one class (found by index).
    fn of_class(sky: &Sky, class: Class, n: usize) -> Vec<Object> {
        let mix = Mix::default();
        (0u64..)
            .map(|i| object(SEED, sky, &mix, i))
            .filter(|o| o.class == class)
            .take(n)
            .collect()
    }

    #[test]
    fn everything_is_a_pure_function_of_its_inputs() {
        let mix = Mix::default();
        for sky in skies() {
            for i in 0..500 {
                let (a, b) = (object(SEED, &sky, &mix, i), object(SEED, &sky, &mix, i));
                assert_eq!(a, b);
                for band in 0..bands(sky.survey).len() {
                    let t = NOW + i as f64 * 0.37;
                    assert_eq!(
                        flux(SEED, &a, band, t).to_bits(),
                        flux(SEED, &b, band, t).to_bits()
                    );
                    assert_eq!(
                        reference_flux(SEED, &a, band),
                        reference_flux(SEED, &b, band)
                    );
                    assert_eq!(
                        detection_flux(SEED, &a, band, t, 7),
                        detection_flux(SEED, &b, band, t, 7)
                    );
                }
                assert_eq!(
                    position(SEED, &a, NOW + 1.0, 3),
                    position(SEED, &b, NOW + 1.0, 3)
                );
                assert_eq!(reliability(SEED, &a, 3), reliability(SEED, &b, 3));
                assert_eq!(
                    transient_event(SEED, &a, NOW),
                    transient_event(SEED, &b, NOW)
                );
            }
            // Another seed, another population.
            let same = (0..200)
                .filter(|&i| object(SEED, &sky, &mix, i) == object(SEED + 1, &sky, &mix, i))
                .count();
            assert_eq!(same, 0);
        }
        assert_eq!(
            band_of_visit(Survey::Rubin, 1, 5),
            band_of_visit(Survey::Rubin, 1, 5)
        );
        assert_eq!(
            limiting_mag(Survey::Ztf, 1, 5),
            limiting_mag(Survey::Ztf, 1, 5)
        );
    }

    #[test]
    fn ztf_ids_are_unique_and_well_formed() {
        let mut seen = HashSet::with_capacity(1_000_000);
        for i in 0..1_000_000u64 {
            assert!(
                seen.insert(ztf_object_id(SEED, i, 61_100.0)),
                "duplicate at {i}"
            );
        }
        let id = ztf_object_id(SEED, 12_345, 61_100.0);
        assert_eq!(id.len(), 12, "{id}");
        assert!(id.starts_with("ZTF26"), "{id}");
        assert!(id[5..].bytes().all(|b| b.is_ascii_lowercase()), "{id}");
        assert!(ztf_object_id(SEED, 1, 58_200.0).starts_with("ZTF18"));
        assert_ne!(
            ztf_object_id(SEED, 1, 61_100.0),
            ztf_object_id(SEED + 1, 1, 61_100.0)
        );
        assert_eq!(ztf_object_id(SEED, u64::MAX, f64::NAN).len(), 12);
        assert_eq!(ztf_object_id(SEED, 5, 1e300).len(), 12);
    }

    #[test]
    fn ztf_letters_are_a_permutation_of_a_small_domain_too() {
        // The same construction on a domain small enough to check whole:
        // cycle-walking a 12-bit permutation into [0, 3000).
        let walk = |x: u64| {
            let mut y = x;
            loop {
                y = permute_bits(y, 0xDEAD_BEEF, 12);
                if y < 3000 {
                    return y;
                }
            }
        };
        let images: HashSet<u64> = (0..3000).map(walk).collect();
        assert_eq!(images.len(), 3000);
        assert!(images.iter().all(|&y| y < 3000));
    }

    #[test]
    fn rubin_ids_are_unique_and_positive() {
        let mut seen = HashSet::with_capacity(1_000_000);
        for i in 0..1_000_000u64 {
            let id = rubin_object_id(SEED, i);
            assert!(id > 0);
            assert!(seen.insert(id), "duplicate at {i}");
        }
        assert!(rubin_object_id(SEED, u64::MAX) > 0);
    }

    #[test]
    fn years_of_mjds() {
        assert_eq!(year_of_mjd(51_544.0), 2000); // 2000-01-01
        assert_eq!(year_of_mjd(51_543.99), 1999);
        assert_eq!(year_of_mjd(58_119.0), 2018);
        assert_eq!(year_of_mjd(61_040.5), 2025); // 2025-12-31
        assert_eq!(year_of_mjd(REFERENCE_MJD), 2026);
        assert_eq!(year_of_mjd(40_587.0), 1970);
        assert_eq!(year_of_mjd(f64::INFINITY), 1858);
    }

    #[test]
    fn positions_fall_in_their_fields_circle() {
        let mix = Mix::default();
        for sky in skies() {
            for i in 0..20_000 {
                let o = object(SEED, &sky, &mix, i);
                assert_eq!(o.field, (i % u64::from(sky.fields)) as u32);
                let sep = separation(sky.field_centre(o.field), (o.ra, o.dec));
                assert!(sep <= sky.field_radius() + 1e-9, "{sky:?} {o:?} {sep}");
                assert!(sky.in_footprint(o.field, o.ra, o.dec), "{sky:?} {o:?}");
                assert!((0.0..360.0).contains(&o.ra) && (-90.0..=90.0).contains(&o.dec));
            }
        }
    }

    #[test]
    fn positions_fill_the_circle_uniformly() {
        let sky = Sky::new(Survey::Ztf, 1);
        let n = 20_000;
        let inner = (0..n)
            .map(|i| object(SEED, &sky, &Mix::default(), i))
            .filter(|o| separation(sky.field_centre(0), (o.ra, o.dec)) < 0.5 * sky.field_radius())
            .count();
        let share = inner as f64 / n as f64;
        assert!((share - 0.25).abs() < 0.02, "{share}");
    }

    #[test]
    fn the_concentric_map_is_invertible_and_keeps_area() {
        let mut mean_r2 = 0.0;
        let n = 20_000;
        for i in 0..n {
            let a = rng::uniform(1, &[i, 0], -1.0, 1.0);
            let b = rng::uniform(1, &[i, 1], -1.0, 1.0);
            let (x, y) = square_to_disc(a, b);
            assert!(x.hypot(y) <= 1.0 + 1e-12);
            let (a2, b2) = disc_to_square(x, y);
            assert!(
                (a - a2).abs() < 1e-9 && (b - b2).abs() < 1e-9,
                "{a} {b} {a2} {b2}"
            );
            mean_r2 += (x * x + y * y) / n as f64;
        }
        // A uniform point of the unit disc has E[r^2] = 1/2.
        assert!((mean_r2 - 0.5).abs() < 0.01, "{mean_r2}");
        assert_eq!(disc_to_square(0.0, 0.0), (0.0, 0.0));
        assert_eq!(disc_to_square(f64::NAN, 1.0), (0.0, 0.0));
        let (a, b) = disc_to_square(0.0, -5.0);
        assert!(a.abs() < 1e-12 && (b + 1.0).abs() < 1e-12);
    }

    #[test]
    fn detectors_are_in_range_and_evenly_used() {
        let mix = Mix::default();
        for survey in [Survey::Ztf, Survey::Rubin] {
            let sky = Sky::new(survey, 3);
            let n = 60_000;
            let mut hits = vec![0u32; sky.detectors() as usize];
            for i in 0..n {
                let o = object(SEED, &sky, &mix, i);
                let d = sky.detector_of(o.field, o.ra, o.dec);
                assert!(d < sky.detectors());
                hits[d as usize] += 1;
            }
            let expected = n as f64 / f64::from(sky.detectors());
            for (d, &h) in hits.iter().enumerate() {
                let off = (f64::from(h) - expected).abs();
                assert!(off < 0.3 * expected, "{survey:?} detector {d}: {h}");
            }
            // Off the field, far away, or nonsense: still a detector.
            let (ra, dec) = sky.field_centre(1);
            for (r, d) in [
                (ra + 30.0, dec),
                (ra, dec - 4.0),
                (ra + 180.0, -dec),
                (f64::NAN, 0.0),
                (f64::INFINITY, f64::NEG_INFINITY),
            ] {
                assert!(sky.detector_of(1, r, d) < sky.detectors());
            }
        }
    }

    #[test]
    fn detector_numbering_follows_the_cameras() {
        let ztf = |s, t| detector_in_square(Survey::Ztf, s, t);
        assert_eq!(ztf(-0.99, -0.99), 0); // CCD 1, quadrant 1
        assert_eq!(ztf(-0.7, -0.99), 1); // CCD 1, quadrant 2
        assert_eq!(ztf(-0.99, -0.7), 2);
        assert_eq!(ztf(-0.45, -0.99), 4); // CCD 2
        assert_eq!(ztf(0.99, 0.99), 63);
        let rubin = |s, t| detector_in_square(Survey::Rubin, s, t);
        assert_eq!(rubin(-0.99, -0.99), 0); // R01 S00
        assert_eq!(rubin(0.0, 0.0), 94); // R22 S11, the centre
        assert_eq!(rubin(0.99, 0.99), 188); // R43 S22
        assert_eq!(rubin(-0.99, 0.0), 8 * 9 + 3); // R20 S10
                                                  // The centre of the sky field is the centre detector.
        let sky = Sky::new(Survey::Rubin, 4);
        let (ra, dec) = sky.field_centre(2);
        assert_eq!(sky.detector_of(2, ra, dec), 94);
        // Neighbouring positions share a detector.
        let o = object(SEED, &sky, &Mix::default(), 6);
        let (ra2, dec2) = position(SEED, &o, NOW, 1);
        let same = sky.detector_of(o.field, o.ra, o.dec) == sky.detector_of(o.field, ra2, dec2);
        assert!(same || separation((o.ra, o.dec), (ra2, dec2)) > 0.0);
    }

    #[test]
    fn fields_cover_each_surveys_sky_without_overlapping() {
        for survey in [Survey::Ztf, Survey::Rubin] {
            for n in [1u32, 2, 5, 17, 50, 100] {
                let sky = Sky::new(survey, n);
                let r = sky.field_radius();
                let centres: Vec<(f64, f64)> = (0..n).map(|f| sky.field_centre(f)).collect();
                for (f, &(ra, dec)) in centres.iter().enumerate() {
                    assert!((0.0..360.0).contains(&ra));
                    match survey {
                        Survey::Ztf => assert!(dec - r >= -30.0 - 1e-9, "{n} {f} {dec}"),
                        Survey::Rubin => assert!(dec + r <= 5.0 + 1e-9, "{n} {f} {dec}"),
                    }
                    for &other in &centres[..f] {
                        let sep = separation((ra, dec), other);
                        assert!(sep > 2.0 * r, "{survey:?} n={n}: {sep}");
                    }
                }
            }
        }
        // No fields is taken as one; field numbers wrap.
        let none = Sky::new(Survey::Ztf, 0);
        assert_eq!(
            none.field_centre(7),
            Sky::new(Survey::Ztf, 1).field_centre(0)
        );
        let o = object(SEED, &none, &Mix::default(), 123);
        assert_eq!(o.field, 0);
        assert!(none.detector_of(u32::MAX, o.ra, o.dec) < 64);
    }

    #[test]
    fn class_fractions_follow_the_mix() {
        let sky = Sky::new(Survey::Rubin, 10);
        for mix in [
            Mix::default(),
            Mix::parse("periodic=0.1,bogus=0.5,sso=0").unwrap_or_default(),
        ] {
            let n = 100_000;
            let mut counts = [0usize; 5];
            for i in 0..n {
                counts[object(SEED, &sky, &mix, i).class.index()] += 1;
            }
            for class in Class::ALL {
                let share = counts[class.index()] as f64 / n as f64;
                let want = mix.fraction(class);
                assert!((share - want).abs() < 0.01, "{mix} {class:?} {share}");
            }
        }
    }

    #[test]
    fn class_of_skips_empty_classes_and_clamps() {
        let mix = Mix::parse("periodic=0,transient=0.5,agn=0,sso=0,bogus=0.5").unwrap_or_default();
        assert_eq!(mix.class_of(0.0), Class::Transient);
        assert_eq!(mix.class_of(0.49), Class::Transient);
        assert_eq!(mix.class_of(0.5), Class::Bogus);
        assert_eq!(mix.class_of(1.0), Class::Bogus);
        assert_eq!(mix.class_of(7.0), Class::Bogus);
        assert_eq!(mix.class_of(-1.0), Class::Transient);
        assert_eq!(mix.class_of(f64::NAN), Class::Transient);
    }

    #[test]
    fn mix_parsing() {
        let d = Mix::default();
        assert_eq!(Mix::parse(""), Ok(d));
        assert_eq!(Mix::parse("  "), Ok(d));
        assert_eq!(Mix::parse(&d.to_string()), Ok(d));
        assert_eq!("".parse::<Mix>(), Ok(d));

        let m = Mix::parse("periodic=0.5, BOGUS = 10% ,").unwrap_or_default();
        assert_eq!(m.fraction(Class::Periodic), 0.5);
        assert!((m.fraction(Class::Bogus) - 0.1).abs() < 1e-12);
        // The other three share 0.4 in proportion 0.2 : 0.2 : 0.1.
        assert!((m.fraction(Class::Transient) - 0.16).abs() < 1e-12, "{m}");
        assert!((m.fraction(Class::Agn) - 0.16).abs() < 1e-12);
        assert!((m.fraction(Class::SolarSystem) - 0.08).abs() < 1e-12);
        assert!((m.fractions().iter().sum::<f64>() - 1.0).abs() < 1e-12);

        for name in ["solar-system", "solar_system", "sso", "SSO"] {
            let m = Mix::parse(&format!("{name}=1")).unwrap_or_default();
            assert_eq!(m.fraction(Class::SolarSystem), 1.0, "{name}");
            assert_eq!(m.class_of(0.3), Class::SolarSystem);
        }
        assert!(Mix::parse("periodic=0.2,transient=0.2,agn=0.2,sso=0.2,bogus=0.2").is_ok());
        assert!(
            Mix::parse("periodic=0.3,transient=0.2,agn=0.2,solar-system=0.1,bogus=0.2").is_ok()
        );

        let err = |text: &str| Mix::parse(text).err().unwrap_or_default();
        let e = err("periodic=0.5,comet=0.1");
        assert!(
            e.contains("'comet'") && e.contains("solar-system") && e.contains("bogus"),
            "{e}"
        );
        let e = err("periodic");
        assert!(e.contains("'periodic'") && e.contains("valid names"), "{e}");
        let e = err("periodic=-0.1");
        assert!(e.contains("periodic=-0.1"), "{e}");
        let e = err("agn=1.5");
        assert!(e.contains("agn=1.5"), "{e}");
        let e = err("agn=lots");
        assert!(e.contains("agn=lots"), "{e}");
        assert!(!err("agn=NaN").is_empty());
        assert!(!err("agn=inf").is_empty());
        let e = err("periodic=0.7,bogus=0.5");
        assert!(e.contains("more than 1") && e.contains("1.2"), "{e}");
        let e = err("periodic=0.2,agn=0.3,periodic=0.1");
        assert!(e.contains("twice"), "{e}");
        let e = err("periodic=0.1,transient=0.1,agn=0.1,sso=0.1,bogus=0.1");
        assert!(e.contains("not 1"), "{e}");
        let e = err("=0.5");
        assert!(e.contains("valid names"), "{e}");
    }

    #[test]
    fn transients_are_dark_then_rise_then_decline() {
        for sky in skies() {
            for o in of_class(&sky, Class::Transient, 100) {
                let mut last_explosion = f64::NEG_INFINITY;
                // Several cycles, each its own event.
                for k in 0..4 {
                    let probe = NOW + f64::from(k) * TRANSIENT_CYCLE_DAYS;
                    let Some(e) = transient_event(SEED, &o, probe) else {
                        panic!("no event");
                    };
                    assert!(e.explosion_mjd > last_explosion + TRANSIENT_LIFE_DAYS);
                    last_explosion = e.explosion_mjd;
                    assert!((5.0..25.0).contains(&(e.peak_mjd - e.explosion_mjd)));
                    assert!((17.0..21.0).contains(&e.peak_mag));
                    // The same event all through its cycle.
                    assert_eq!(transient_event(SEED, &o, e.explosion_mjd + 1.0), Some(e));
                    assert_eq!(transient_event(SEED, &o, e.explosion_mjd + 170.0), Some(e));
                    let boom = e.explosion_mjd;
                    for band in 0..bands(sky.survey).len() {
                        let d = |t: f64| difference_flux(SEED, &o, band, t);
                        assert_eq!(d(boom - 0.001), 0.0);
                        assert_eq!(d(boom), 0.0);
                        assert!(d(boom + 0.5) > 0.0);
                        let mut last = 0.0;
                        let mut t = boom + 0.5;
                        while t < e.peak_mjd - 3.0 {
                            assert!(d(t) > last, "{o:?} {band} {t}");
                            last = d(t);
                            t += 1.0;
                        }
                        let mut last = d(e.peak_mjd + 10.0);
                        let mut t = e.peak_mjd + 11.0;
                        while t < boom + TRANSIENT_LIFE_DAYS {
                            assert!(d(t) < last && d(t) >= 0.0, "{o:?} {band} {t}");
                            last = d(t);
                            t += 1.0;
                        }
                        assert_eq!(d(boom + TRANSIENT_LIFE_DAYS), 0.0);
                        assert!(d(e.peak_mjd + 120.0) < 0.5 * d(e.peak_mjd));
                    }
                    // In r (near 620 nm) the peak is at about peak_mjd, peak_mag.
                    let r = r_band(sky.survey);
                    let peak = difference_flux(SEED, &o, r, e.peak_mjd);
                    let expected = band_mag(sky.survey, r, e.peak_mag, e.g_minus_r);
                    assert!((njy_to_mag(peak) - expected).abs() < 0.01);
                    assert!(difference_flux(SEED, &o, r, e.peak_mjd - 2.0) < peak);
                    assert!(difference_flux(SEED, &o, r, e.peak_mjd + 2.0) < peak);
                }
            }
        }
    }

    #[test]
    fn at_any_date_transients_are_at_every_stage() {
        let sky = Sky::new(Survey::Ztf, 4);
        let objects = of_class(&sky, Class::Transient, 2000);
        for now in [NOW, NOW + 12_345.6] {
            let ages: Vec<f64> = objects
                .iter()
                .filter_map(|o| transient_event(SEED, o, now).map(|e| now - e.peak_mjd))
                .collect();
            let rising = ages.iter().filter(|&&a| a < 0.0).count() as f64 / 2000.0;
            let young = ages.iter().filter(|&&a| (0.0..60.0).contains(&a)).count() as f64 / 2000.0;
            assert!((0.05..0.3).contains(&rising), "{rising}");
            assert!((0.2..0.45).contains(&young), "{young}");
        }
        assert_eq!(
            transient_event(SEED, &of_class(&sky, Class::Agn, 1)[0], NOW),
            None
        );
    }

    #[test]
    fn magnitudes_are_plausible() {
        for sky in skies() {
            let mix = Mix::default();
            for i in 0..5000 {
                let o = object(SEED, &sky, &mix, i);
                let (lo, hi) = match o.curve {
                    Curve::Periodic { mean_mag, .. } => {
                        assert!((15.0..21.0).contains(&mean_mag));
                        (12.0, 25.0)
                    }
                    Curve::Transient { host_mag, .. } => {
                        assert!(host_mag.is_none_or(|m| (21.0..24.0).contains(&m)));
                        (15.0, 99.0)
                    }
                    Curve::Agn { mean_mag, .. } => {
                        assert!((17.0..21.0).contains(&mean_mag));
                        (15.0, 23.5)
                    }
                    Curve::SolarSystem { mag, track, .. } => {
                        assert!((17.0..21.0).contains(&mag));
                        let arcsec_per_hour = track.rate * 3600.0 / 24.0;
                        assert!((2.0..60.0).contains(&arcsec_per_hour));
                        (15.0, 23.0)
                    }
                    Curve::Bogus { star_mag, .. } => {
                        assert!(star_mag >= 14.0);
                        (11.0, 32.0)
                    }
                };
                for band in 0..bands(sky.survey).len() {
                    for k in 0..20 {
                        let t = NOW - 100.0 + 13.7 * f64::from(k);
                        let f = flux(SEED, &o, band, t);
                        assert!(f.is_finite() && f >= 0.0, "{o:?} {f}");
                        if f > 0.0 {
                            let m = njy_to_mag(f);
                            assert!((lo..hi).contains(&m), "{o:?} band {band}: {m}");
                        }
                    }
                    let r = reference_flux(SEED, &o, band);
                    assert!(r.is_finite() && r >= 0.0);
                }
            }
        }
    }

    #[test]
    fn periodic_and_agn_curves_vary_about_their_template() {
        for sky in skies() {
            for o in of_class(&sky, Class::Periodic, 100) {
                let Curve::Periodic {
                    period, amplitude, ..
                } = o.curve
                else {
                    panic!("not periodic");
                };
                let steps = 2000;
                let fluxes: Vec<f64> = (0..steps)
                    .map(|k| flux(SEED, &o, 1, NOW + period * f64::from(k) / f64::from(steps)))
                    .collect();
                let mean = fluxes.iter().sum::<f64>() / f64::from(steps);
                assert!(
                    (mean / reference_flux(SEED, &o, 1) - 1.0).abs() < 1e-3,
                    "{o:?}"
                );
                let (lo, hi) = fluxes
                    .iter()
                    .fold((f64::MAX, 0.0f64), |(l, h), &f| (l.min(f), h.max(f)));
                let peak_to_peak = njy_to_mag(lo) - njy_to_mag(hi);
                assert!(
                    peak_to_peak > 0.8 * amplitude && peak_to_peak < 1.6 * amplitude,
                    "{o:?} {peak_to_peak}"
                );
                let t = NOW + 0.123;
                assert!((flux(SEED, &o, 0, t) / flux(SEED, &o, 0, t + period) - 1.0).abs() < 1e-6);
            }
            for o in of_class(&sky, Class::Agn, 100) {
                let Curve::Agn { rms, .. } = o.curve else {
                    panic!("not an AGN");
                };
                // r band: rms of the magnitude offset over ~30 years.
                let band = r_band(sky.survey);
                let reference = njy_to_mag(reference_flux(SEED, &o, band));
                let offsets: Vec<f64> = (0..3000)
                    .map(|k| njy_to_mag(flux(SEED, &o, band, NOW + 3.7 * f64::from(k))) - reference)
                    .collect();
                let n = offsets.len() as f64;
                let mean = offsets.iter().sum::<f64>() / n;
                let measured = (offsets.iter().map(|x| x * x).sum::<f64>() / n).sqrt();
                assert!(mean.abs() < 0.1, "{mean}");
                assert!((measured / rms - 1.0).abs() < 0.5, "{rms} {measured}");
                // Bluer bands vary more.
                let blue =
                    njy_to_mag(flux(SEED, &o, 0, NOW)) - njy_to_mag(reference_flux(SEED, &o, 0));
                let red = njy_to_mag(flux(SEED, &o, band, NOW)) - reference;
                assert!(blue.abs() >= red.abs());
            }
        }
    }

    #[test]
    fn solar_system_objects_move_but_stay_in_their_field() {
        for sky in skies() {
            let mut jumps = 0;
            let objects = of_class(&sky, Class::SolarSystem, 200);
            for o in &objects {
                let Curve::SolarSystem { track, .. } = o.curve else {
                    panic!("not a solar-system object");
                };
                assert_eq!(reference_flux(SEED, o, 0), 0.0);
                assert!(difference_flux(SEED, o, 0, NOW) > 0.0);
                let at_reference = position(SEED, o, REFERENCE_MJD, 1);
                assert!(separation(at_reference, (o.ra, o.dec)) < 1.0 / 3600.0);
                // An hour apart: the rate (unless it wrapped to the far edge).
                let a = position(SEED, o, NOW, 2);
                let b = position(SEED, o, NOW + 1.0 / 24.0, 3);
                let arcsec = separation(a, b) * 3600.0;
                let expected = track.rate * 3600.0 / 24.0;
                if (arcsec - expected).abs() > 1.0 {
                    jumps += 1;
                }
                // Always in its field, at any date.
                for k in 0..50 {
                    let t = NOW - 5000.0 + 377.7 * f64::from(k);
                    let (ra, dec) = position(SEED, o, t, k.into());
                    assert!(
                        sky.in_footprint(o.field, ra, dec) || {
                            let sep = separation(sky.field_centre(o.field), (ra, dec));
                            sep < sky.field_radius() + 1e-3
                        }
                    );
                }
                let (ra, dec) = position(SEED, o, 1e9, 4);
                assert!((0.0..360.0).contains(&ra) && (-90.0..=90.0).contains(&dec));
            }
            assert!(jumps <= 10, "{jumps} of {}", objects.len());
        }
    }

    #[test]
    fn fixed_objects_scatter_by_a_tenth_of_an_arcsec() {
        let sky = Sky::new(Survey::Rubin, 5);
        let o = of_class(&sky, Class::Agn, 1)[0];
        let n = 4000;
        let mut sum_sq = 0.0;
        for visit in 0..n {
            let p = position(SEED, &o, NOW + f64::from(visit), i64::from(visit));
            sum_sq += (separation(p, (o.ra, o.dec)) * 3600.0).powi(2);
        }
        // Two axes of 0.1 arcsec: mean squared offset 0.02 arcsec^2.
        let ms = sum_sq / f64::from(n);
        assert!((ms / 0.02 - 1.0).abs() < 0.1, "{ms}");
        let mut polar = o;
        polar.dec = 89.999_99;
        let (ra, dec) = position(SEED, &polar, NOW, 1);
        assert!((0.0..360.0).contains(&ra) && dec <= 90.0);
    }

    #[test]
    fn bogus_artefacts_have_both_signs_and_low_reliability() {
        for sky in skies() {
            let mut signs = [0, 0];
            for o in of_class(&sky, Class::Bogus, 50) {
                for k in 0..20 {
                    let t = NOW + k as f64;
                    let d = difference_flux(SEED, &o, k % 2, t);
                    signs[usize::from(d > 0.0)] += 1;
                    assert!(flux(SEED, &o, k % 2, t) > 0.0);
                    let r = reliability(SEED, &o, k as i64);
                    assert!((0.0..=0.3).contains(&r), "{r}");
                }
            }
            assert!(signs[0] > 300 && signs[1] > 300, "{signs:?}");
            for o in of_class(&sky, Class::Periodic, 50) {
                for v in 0..20 {
                    let r = reliability(SEED, &o, v);
                    assert!((0.7..=1.0).contains(&r), "{r}");
                }
            }
        }
    }

    #[test]
    fn detections_are_at_least_five_sigma_with_the_right_sign() {
        let mix = Mix::default();
        for sky in skies() {
            let mut pushed = 0;
            let typical = noise_njy(sky.survey);
            for i in 0..5000 {
                let o = object(SEED, &sky, &mix, i);
                let visit = i as i64 * 3 - 100;
                let band = band_of_visit(sky.survey, SEED, visit);
                let t = NOW + i as f64 * 0.01;
                let truth = difference_flux(SEED, &o, band, t);
                let measured = detection_flux(SEED, &o, band, t, visit);
                let sigma = flux_sigma(sky.survey, SEED, visit);
                // 5 sigma of the visit's noise and of the typical noise.
                assert!(
                    measured.abs() >= 5.0 * sigma.max(typical) * (1.0 - 1e-12),
                    "{o:?}"
                );
                assert!(
                    measured.abs() <= truth.abs() + 10.0 * sigma.max(typical),
                    "{o:?}"
                );
                if truth != 0.0 {
                    assert_eq!(measured.signum(), truth.signum(), "{o:?}");
                } else {
                    assert!(measured > 0.0);
                }
                if truth.abs() > 20.0 * sigma.max(typical) {
                    assert!((measured - truth).abs() < 7.0 * sigma);
                } else {
                    pushed += 1;
                }
            }
            assert!(pushed > 0);
        }
        assert!(
            (noise_njy(Survey::Ztf) - 4582.0).abs() < 1.0,
            "{}",
            noise_njy(Survey::Ztf)
        );
        assert!(
            (noise_njy(Survey::Rubin) - 115.1).abs() < 0.1,
            "{}",
            noise_njy(Survey::Rubin)
        );
        for survey in [Survey::Ztf, Survey::Rubin] {
            let typical = survey.typical_limiting_mag();
            let lims: Vec<f64> = (0..2000).map(|v| limiting_mag(survey, SEED, v)).collect();
            let mean = lims.iter().sum::<f64>() / lims.len() as f64;
            assert!((mean - typical).abs() < 0.03);
            assert!(lims.iter().all(|m| (m - typical).abs() <= 0.75));
            assert!(lims.iter().any(|m| (m - typical).abs() > 0.2));
        }
    }

    #[test]
    fn visits_use_each_band_in_proportion() {
        for (survey, share) in [
            (Survey::Ztf, &ZTF_VISIT_SHARE[..]),
            (Survey::Rubin, &RUBIN_VISIT_SHARE[..]),
        ] {
            let n = 50_000;
            let mut counts = vec![0usize; bands(survey).len()];
            for v in 0..n {
                counts[band_of_visit(survey, SEED, v - 20_000)] += 1;
            }
            for (b, &c) in counts.iter().enumerate() {
                assert!(
                    (c as f64 / n as f64 - share[b]).abs() < 0.01,
                    "{survey:?} {b} {c}"
                );
            }
        }
        assert_eq!(bands(Survey::Ztf), ["g", "r", "i"]);
        assert_eq!(bands(Survey::Rubin), ["u", "g", "r", "i", "z", "y"]);
    }

    #[test]
    fn hostile_inputs_do_not_panic() {
        let mix = Mix::default();
        for survey in [Survey::Ztf, Survey::Rubin] {
            for fields in [0, 1, u32::MAX] {
                let sky = Sky::new(survey, fields);
                for index in [0, 1, 2, 3, 4, 5, 6, 7, u64::MAX] {
                    let o = object(u64::MAX, &sky, &mix, index);
                    for t in [f64::NAN, f64::NEG_INFINITY, f64::INFINITY, 1e300, -5.0] {
                        for band in [0, 5, usize::MAX] {
                            let _ = flux(0, &o, band, t);
                            let _ = reference_flux(0, &o, band);
                            let _ = detection_flux(0, &o, band, t, i64::MIN);
                        }
                        let _ = position(0, &o, t, i64::MAX);
                        let _ = transient_event(0, &o, t);
                    }
                    let _ = reliability(0, &o, -1);
                }
                let _ = sky.in_footprint(u32::MAX, f64::NAN, 91.0);
                let _ = sky.detector_of(u32::MAX, 1e300, -1e300);
            }
            let _ = band_of_visit(survey, 0, i64::MIN);
            let _ = limiting_mag(survey, 0, i64::MAX);
        }
        for (s, t) in [(f64::NAN, 0.0), (f64::INFINITY, -2.0), (5.0, 5.0)] {
            assert!(detector_in_square(Survey::Rubin, s, t) < 189);
            assert!(detector_in_square(Survey::Ztf, s, t) < 64);
        }
    }
}
