//! Visits, detections and histories: which objects a visit sees, what each
//! measured, and what came before, all recomputed from the seed.

use std::borrow::Cow;

use anyhow::Result;
use apache_avro::Schema;

use super::cutout;
use super::fill::{Quantity, Scope, Source, Stamp, Template, Q};
use super::model::{self, Class, Mix, Object, Sky, Survey};
use super::names;
use super::rng;
use crate::exit::bad_input;

/// Ids are `visit * ID_STRIDE + slot`: unique across visits, shards and runs.
pub const ID_STRIDE: i64 = 1_000_000;
/// The most alerts one visit may carry (the slot must fit under the stride).
pub const MAX_COUNT: u32 = (ID_STRIDE - 1) as u32;
/// Field visits a history looks back over in full, in blocks of this many
/// (before them, nightly epochs): an object is seen in four visits of its
/// field in a row, so a block holds its recent detections.
const RECENT: i64 = 16;
/// ZTF cutouts are 63x63; Rubin's 30x30 (6" at 0.2"/px).
const ZTF_STAMP: usize = 63;
const RUBIN_STAMP: usize = 30;
/// ZTF's science zero point (magnitudes of one DN); AB magnitude of 1 nJy.
const ZTF_ZERO_POINT: f64 = 26.3;
const AB_NJY: f64 = 31.4;
/// Rubin's times are TAI: 37 s ahead of UTC since 2017.
const TAI_MINUS_UTC_DAYS: f64 = 37.0 / 86_400.0;
const MJD_UNIX_EPOCH: f64 = 40_587.0;

/// What the simulator was asked for.
#[derive(Debug, Clone)]
pub struct Config {
    pub survey: Survey,
    pub seed: u64,
    /// Alerts per visit (of every shard together).
    pub count: u32,
    pub objects: u64,
    pub fields: u32,
    /// Seconds between visits: the grid's step.
    pub interval: f64,
    pub mix: Mix,
    /// (I, N): only detectors d with d mod N == I.
    pub shard: (u32, u32),
    pub stamps: bool,
}

/// The simulator for one schema.
#[derive(Debug)]
pub struct Simulator {
    config: Config,
    sky: Sky,
    template: Template,
}

/// One visit of the grid, as this shard sees it.
#[derive(Debug, Clone)]
pub struct VisitPlan {
    /// Its place on the grid (`mjd` = grid × interval since the epoch).
    pub grid: i64,
    pub mjd: f64,
    pub field: u32,
    pub band: usize,
    /// This shard's alerts, detector by detector.
    pub alerts: Vec<Planned>,
}

#[derive(Debug, Clone, Copy)]
pub struct Planned {
    /// Place in the visit's window: the alert's slot in its id.
    pub slot: u32,
    pub object: u64,
    pub detector: u32,
}

/// One measurement of an object: a detection, an upper limit, or a forced point.
#[derive(Debug, Clone)]
pub struct Detection {
    pub id: i64,
    pub visit: i64,
    pub mjd: f64,
    pub band: usize,
    pub ra: f64,
    pub dec: f64,
    /// Difference flux and its error, nJy.
    pub flux: f64,
    pub flux_err: f64,
    pub detected: bool,
    pub limiting_mag: f64,
    pub reliability: f64,
    pub detector: u32,
    pub field: u32,
}

impl Simulator {
    /// Compiles `schema`; a schema lacking the position or time fields is refused (exit 2).
    pub fn new(config: Config, schema: &Schema) -> Result<Self> {
        let survey_names = match config.survey {
            Survey::Ztf => names::ztf,
            Survey::Rubin => names::rubin,
        };
        let template = Template::compile(schema, survey_names)
            .map_err(|e| bad_input(format!("cannot simulate alerts of this schema: {e}")))?;
        let (time, time_name) = match config.survey {
            Survey::Ztf => (Quantity::Jd, "candidate.jd"),
            Survey::Rubin => (Quantity::Mjd, "diaSource.midpointMjdTai"),
        };
        let (source, ra, dec) = match config.survey {
            Survey::Ztf => ("candidate", "candidate.ra", "candidate.dec"),
            Survey::Rubin => ("diaSource", "diaSource.ra", "diaSource.dec"),
        };
        let missing: Vec<&str> = [(Quantity::Ra, ra), (Quantity::Dec, dec), (time, time_name)]
            .into_iter()
            .filter(|(q, _)| !template.has(Scope::Detection, *q))
            .map(|(_, name)| name)
            .collect();
        if !missing.is_empty() {
            return Err(bad_input(format!(
                "cannot simulate {} alerts with this schema: it has no {} (a {source} record \
                 with position and time is needed; give the survey's published schema with --schema)",
                config.survey.name(),
                missing.join(", ")
            )));
        }
        let sky = Sky {
            survey: config.survey,
            fields: config.fields,
        };
        Ok(Self {
            config,
            sky,
            template,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Detectors of the focal plane (ZTF: readout quadrants).
    pub fn detectors(&self) -> u32 {
        self.sky.detectors()
    }

    /// The grid visit at or after `unix_seconds`.
    pub fn grid_at(&self, unix_seconds: f64) -> i64 {
        (unix_seconds / self.config.interval - 1e-9).ceil() as i64
    }

    /// The grid visit at or before `unix_seconds`: one taken already.
    pub fn grid_before(&self, unix_seconds: f64) -> i64 {
        (unix_seconds / self.config.interval + 1e-9).floor() as i64
    }

    /// When grid visit `grid` is taken, RFC 3339.
    pub fn time_of(&self, grid: i64) -> String {
        crate::time::rfc3339_utc((grid as f64 * self.config.interval * 1000.0).round() as i64)
    }

    fn mjd(&self, grid: i64) -> f64 {
        MJD_UNIX_EPOCH + grid as f64 * self.config.interval / 86_400.0
    }

    fn fields(&self) -> i64 {
        i64::from(self.config.fields.max(1))
    }

    /// Objects in field `field`'s pool.
    fn pool(&self, field: i64) -> i64 {
        let n = self.config.objects as i64;
        ((n - field) + self.fields() - 1)
            .div_euclid(self.fields())
            .max(1)
    }

    /// Where a field's window starts in its pool on the field's `m`th visit.
    fn window_start(&self, m: i64, pool: i64) -> i64 {
        let step = i64::from((self.config.count / 4).max(1));
        ((i128::from(m) * i128::from(step)).rem_euclid(i128::from(pool))) as i64
    }

    /// The slot of the object at `position` of the pool in field visit `m`, if seen.
    fn slot(&self, position: i64, m: i64, pool: i64) -> Option<u32> {
        let r = (position - self.window_start(m, pool)).rem_euclid(pool);
        (r < i64::from(self.config.count)).then_some(r as u32)
    }

    fn object(&self, index: u64) -> Object {
        model::object(self.config.seed, &self.sky, &self.config.mix, index)
    }

    /// The visit at `grid`: its field, band, and this shard's alerts.
    pub fn plan(&self, grid: i64) -> VisitPlan {
        let (fields, seed) = (self.fields(), self.config.seed);
        let field = grid.rem_euclid(fields);
        let m = grid.div_euclid(fields);
        let pool = self.pool(field);
        let start = self.window_start(m, pool);
        let mjd = self.mjd(grid);
        let (shard, shards) = self.config.shard;
        let mut alerts: Vec<Planned> = (0..i64::from(self.config.count).min(pool))
            .filter_map(|r| {
                let position = (start + r) % pool;
                let index = (position * fields + field) as u64;
                let object = self.object(index);
                let (ra, dec) = model::position(seed, &object, mjd, grid);
                let detector = self.sky.detector_of(field as u32, ra, dec);
                (detector % shards.max(1) == shard).then_some(Planned {
                    slot: r as u32,
                    object: index,
                    detector,
                })
            })
            .collect();
        alerts.sort_by_key(|a| (a.detector, a.slot));
        VisitPlan {
            grid,
            mjd,
            field: field as u32,
            band: model::band_of_visit(self.config.survey, seed, grid),
            alerts,
        }
    }

    /// Appends one alert of `plan`, bare Avro.
    pub fn encode(&self, plan: &VisitPlan, alert: &Planned, out: &mut Vec<u8>) {
        let view = self.view(plan, alert);
        self.template.encode(&view, out);
    }

    fn view(&self, plan: &VisitPlan, alert: &Planned) -> AlertView<'_> {
        let object = self.object(alert.object);
        let id = plan.grid * ID_STRIDE + i64::from(alert.slot);
        let current = self.measure(&object, (plan.grid, plan.mjd, plan.band), id, None);
        let (history, forced) = self.history(&object, plan.grid);
        let stamps = self.config.stamps.then(|| self.cutouts(&object, &current));
        AlertView {
            sim: self,
            object,
            current,
            history,
            forced,
            stamps,
        }
    }

    /// The object's detection at `visit`, with this id; on `detector`, or
    /// the one its position falls on (an alert's own detection: shards go by it).
    fn measure(
        &self,
        object: &Object,
        (visit, mjd, band): (i64, f64, usize),
        id: i64,
        detector: Option<u32>,
    ) -> Detection {
        let seed = self.config.seed;
        let survey = self.config.survey;
        let noise = model::noise_njy(survey);
        let (ra, dec) = model::position(seed, object, mjd, visit);
        let field = object.field;
        let flux = model::detection_flux(seed, object, band, mjd, visit);
        Detection {
            id,
            visit,
            mjd,
            band,
            ra,
            dec,
            flux,
            flux_err: model::flux_sigma(survey, seed, visit).max(noise),
            detected: true,
            limiting_mag: model::limiting_mag(survey, seed, visit),
            reliability: model::reliability(seed, object, visit),
            detector: detector.unwrap_or_else(|| self.sky.detector_of(field, ra, dec)),
            field,
        }
    }

    /// Forced photometry at the object's place (`detector`): its flux
    /// measured whether or not anything was detected; nothing else drawn.
    fn forced(
        &self,
        object: &Object,
        visit: i64,
        mjd: f64,
        band: usize,
        detector: u32,
    ) -> Detection {
        let (seed, survey) = (self.config.seed, self.config.survey);
        let noise = model::noise_njy(survey);
        let flux_err = model::flux_sigma(survey, seed, visit).max(noise);
        let flux = model::flux(seed, object, band, mjd) - model::reference_flux(seed, object, band)
            + flux_err * rng::normal(seed, &[object.index, visit as u64, 11]);
        // Forced ids sit above every grid id and below archival detections'.
        let id = (1i64 << 61) | (rng::hash(seed, &[object.index, visit as u64, 6]) >> 4) as i64;
        Detection {
            id,
            visit,
            mjd,
            band,
            ra: object.ra,
            dec: object.dec,
            flux,
            flux_err,
            detected: false,
            limiting_mag: model::limiting_mag(survey, seed, visit),
            reliability: 0.0,
            detector,
            field: object.field,
        }
    }

    /// The object's earlier detections and limits, and its forced
    /// photometry, oldest first: nightly epochs over the survey's window,
    /// then every visit of its field in the recent blocks.
    fn history(&self, object: &Object, grid: i64) -> (Vec<Detection>, Vec<Detection>) {
        let (mut previous, mut forced) = (Vec::new(), Vec::new());
        // An asteroid is somewhere else at every epoch: nothing was measured
        // where it is now (bogus detections recur, like a bad column).
        if object.class == Class::SolarSystem {
            return (previous, forced);
        }
        let fields = self.fields();
        let field = i64::from(object.field);
        let m = grid.div_euclid(fields);
        let recent_from = (m.div_euclid(RECENT) - 1) * RECENT;
        let recent_mjd = self.mjd(recent_from * fields + field);
        let now = self.mjd(grid);
        let window = match self.config.survey {
            Survey::Ztf => 30.0,
            Survey::Rubin => 365.0,
        };
        let home = self.sky.detector_of(object.field, object.ra, object.dec);
        for epoch in self.nightly_epochs(field, now - window, recent_mjd) {
            let night = epoch.floor() as i64;
            // The grid visit of the epoch's time: a positive visit number.
            let key = ((epoch - MJD_UNIX_EPOCH) * 86_400.0 / self.config.interval).floor() as i64;
            let band = model::band_of_visit(self.config.survey, self.config.seed, key);
            let point = self.forced(object, key, epoch, band, home);
            let detected = point.flux.abs() >= 5.0 * point.flux_err;
            forced.push(point.clone());
            if detected {
                // Archival ids sit above every grid id: 2^62 and up.
                let hash = rng::hash(self.config.seed, &[object.index, night as u64, 5]);
                let id = (1i64 << 62) | (hash >> 2) as i64;
                previous.push(self.measure(object, (key, epoch, band), id, Some(home)));
            } else if self.config.survey == Survey::Ztf {
                // ZTF lists the epochs with nothing found as upper limits.
                previous.push(point);
            }
        }
        let pool = self.pool(field);
        let position = (object.index as i64 - field) / fields;
        for fm in recent_from.max(m - 2 * RECENT)..m {
            let visit = fm * fields + field;
            let mjd = self.mjd(visit);
            if mjd < now - window {
                continue;
            }
            let band = model::band_of_visit(self.config.survey, self.config.seed, visit);
            forced.push(self.forced(object, visit, mjd, band, home));
            if let Some(slot) = self.slot(position, fm, pool) {
                let id = visit * ID_STRIDE + i64::from(slot);
                previous.push(self.measure(object, (visit, mjd, band), id, Some(home)));
            }
        }
        (previous, forced)
    }

    /// The nights (MJD of the exposure) the survey observed `field` in [from, until).
    fn nightly_epochs(&self, field: i64, from: f64, until: f64) -> impl Iterator<Item = f64> + '_ {
        let seed = self.config.seed;
        let share = match self.config.survey {
            Survey::Ztf => 0.5,
            Survey::Rubin => 0.3,
        };
        (from.floor() as i64..=until.floor() as i64)
            .filter(move |night| {
                rng::unit(rng::hash(seed, &[field as u64, *night as u64, 77])) < share
            })
            .map(move |night| {
                night as f64
                    + 0.1
                    + 0.25 * rng::unit(rng::hash(seed, &[field as u64, night as u64, 78]))
            })
            .filter(move |mjd| *mjd >= from && *mjd < until)
    }

    /// The three cutouts of a detection, as the survey writes them.
    fn cutouts(&self, object: &Object, d: &Detection) -> [Vec<u8>; 3] {
        let seed = self.config.seed;
        let look = match object.class {
            Class::Bogus if object.index.is_multiple_of(2) => cutout::Look::Dipole,
            Class::Bogus => cutout::Look::CosmicRay,
            _ => cutout::Look::Real,
        };
        let reference = model::reference_flux(seed, object, d.band);
        let (size, scale, fwhm) = match self.config.survey {
            Survey::Ztf => (ZTF_STAMP, njy_to_dn(1.0), 2.0 / 1.01),
            Survey::Rubin => (RUBIN_STAMP, 1.0, 0.7 / 0.2),
        };
        let noise = model::noise_njy(self.config.survey) * scale;
        let spec = cutout::Spec {
            size,
            noise_seed: rng::hash(seed, &[object.index, d.visit as u64, 3]),
            background: if self.config.survey == Survey::Ztf {
                150.0
            } else {
                0.0
            },
            // The PSF spreads the noise of a measurement over ~4π σ² pixels.
            sigma: noise / (fwhm / 2.3548 * 2.0 * std::f64::consts::PI.sqrt()),
            reference_flux: reference * scale,
            difference_flux: d.flux * scale,
            fwhm,
            offset: (
                rng::uniform(seed, &[object.index, d.visit as u64, 4], -0.5, 0.5),
                rng::uniform(seed, &[object.index, d.visit as u64, 5], -0.5, 0.5),
            ),
            look,
        };
        let images = cutout::images(&spec);
        let planes = [&images.science, &images.template, &images.difference];
        match self.config.survey {
            Survey::Ztf => {
                let header = cutout::ZtfHeader {
                    ra: d.ra,
                    dec: d.dec,
                    offset: spec.offset,
                    obsjd: d.mjd + 2_400_000.5,
                    filter_id: d.band as u8 + 1,
                    field_id: i64::from(200 + d.field % 700),
                    ccd_id: i64::from(d.detector / 4 + 1),
                    qid: i64::from(d.detector % 4 + 1),
                    magzp: ZTF_ZERO_POINT,
                    ..cutout::ZtfHeader::default()
                };
                planes.map(|image| cutout::ztf_fits(image, size, &header))
            }
            Survey::Rubin => {
                let variances = spec.variances();
                let variance = [variances.0, variances.1, variances.2];
                let mut i = 0;
                planes.map(|image| {
                    let header = cutout::RubinHeader {
                        ra: d.ra,
                        dec: d.dec,
                        offset: spec.offset,
                        variance: Some(variance[i]),
                        ..cutout::RubinHeader::default()
                    };
                    i += 1;
                    cutout::rubin_fits(image, size, &header)
                })
            }
        }
    }
}

/// nJy to ZTF's DN at its zero point.
fn njy_to_dn(njy: f64) -> f64 {
    njy * 10f64.powf(-0.4 * (AB_NJY - ZTF_ZERO_POINT))
}

fn magnitude(njy: f64) -> f64 {
    AB_NJY - 2.5 * njy.abs().max(1e-9).log10()
}

/// One alert being written: the simulator's numbers by scope.
struct AlertView<'s> {
    sim: &'s Simulator,
    object: Object,
    current: Detection,
    history: Vec<Detection>,
    forced: Vec<Detection>,
    stamps: Option<[Vec<u8>; 3]>,
}

impl AlertView<'_> {
    fn survey(&self) -> Survey {
        self.sim.config.survey
    }

    fn solar_system(&self) -> bool {
        self.object.class == Class::SolarSystem
    }

    fn object_id(&self) -> Q<'_> {
        let seed = self.sim.config.seed;
        match self.survey() {
            // ZTF names an asteroid's every detection as a new object.
            Survey::Ztf if self.solar_system() => {
                let space = 26u64.pow(7) - self.sim.config.objects.min(26u64.pow(7) / 2);
                let key = rng::hash(seed, &[self.object.index, self.current.visit as u64, 13]);
                let index = self.sim.config.objects + key % space;
                Q::Str(model::ztf_object_id(seed, index, model::REFERENCE_MJD).into())
            }
            Survey::Ztf => {
                Q::Str(model::ztf_object_id(seed, self.object.index, model::REFERENCE_MJD).into())
            }
            // Rubin's pipeline gives a solar-system source diaObjectId 0.
            Survey::Rubin if self.solar_system() => Q::Int(0),
            Survey::Rubin => Q::Int(model::rubin_object_id(seed, self.object.index)),
        }
    }

    fn ss_object_id(&self) -> Q<'_> {
        if self.solar_system() {
            Q::Int(model::rubin_object_id(
                self.sim.config.seed ^ 0x55,
                self.object.index,
            ))
        } else {
            Q::Null
        }
    }

    fn stamp(&self, stamp: Stamp) -> Option<&[u8]> {
        let i = match stamp {
            Stamp::Science => 0,
            Stamp::Template => 1,
            Stamp::Difference => 2,
        };
        self.stamps.as_ref().map(|s| s[i].as_slice())
    }

    fn detections(&self) -> impl Iterator<Item = &Detection> {
        self.history
            .iter()
            .filter(|d| d.detected)
            .chain(std::iter::once(&self.current))
    }

    fn time(&self, mjd: f64) -> Q<'static> {
        match self.survey() {
            Survey::Ztf => Q::Num(mjd + 2_400_000.5),
            Survey::Rubin => Q::Num(mjd + TAI_MINUS_UTC_DAYS),
        }
    }

    /// The image-shape numbers ZTF's purity cuts read: those of a point
    /// source for real detections, of an artefact for bogus ones.
    fn shape(&self, d: &Detection, quantity: Quantity) -> f64 {
        let bogus = self.object.class == Class::Bogus;
        let u = rng::uniform(
            self.sim.config.seed,
            &[self.object.index, d.visit as u64, 9],
            0.0,
            1.0,
        );
        match (quantity, bogus) {
            (Quantity::Fwhm, false) => 1.8 + 1.4 * u,
            (Quantity::Fwhm, true) => {
                if u < 0.5 {
                    0.8 + 0.4 * u
                } else {
                    5.5 + 3.0 * u
                }
            }
            (Quantity::Elong, false) => 1.0 + 0.15 * u,
            (Quantity::Elong, true) => 1.3 + 1.2 * u,
            (Quantity::MagDiff, false) => -0.08 + 0.14 * u,
            (Quantity::MagDiff, true) => 0.2 + 0.6 * u,
            (Quantity::BadPixels, false) => 0.0,
            (Quantity::BadPixels, true) => (1.0 + 4.0 * u).floor(),
            _ => 0.0,
        }
    }

    /// When the alert was made: a minute after the exposure.
    fn processed(&self, quantity: Quantity) -> Q<'static> {
        let mjd = self.current.mjd + 60.0 / 86_400.0;
        match quantity {
            Quantity::ProcessedMicros => {
                Q::Int(((mjd - MJD_UNIX_EPOCH) * 86_400.0 * 1e6).round() as i64)
            }
            _ => Q::Num(mjd + TAI_MINUS_UTC_DAYS),
        }
    }

    /// A quantity of the whole alert or object.
    fn of_alert(&self, quantity: Quantity) -> Q<'_> {
        match quantity {
            Quantity::ObjectId => self.object_id(),
            Quantity::AlertId | Quantity::SourceId => Q::Int(self.current.id),
            Quantity::SsObjectId => self.ss_object_id(),
            Quantity::SchemaVersion => Q::Str("simulated".into()),
            Quantity::Ra => Q::Num(self.object.ra),
            Quantity::Dec => Q::Num(self.object.dec),
            Quantity::NDetections => Q::Int(self.detections().count() as i64),
            Quantity::FirstJd => self.time(self.detections().next().map_or(0.0, |d| d.mjd)),
            Quantity::LastJd => self.time(self.current.mjd),
            Quantity::StampData(stamp) => self.stamp(stamp).map_or(Q::Null, Q::Bytes),
            Quantity::ProcessedMicros | Quantity::ProcessedMjd => self.processed(quantity),
            Quantity::StampName(stamp) => Q::Str(Cow::Owned(format!(
                "candid{}_pid{}_targ_{}.fits.gz",
                self.current.id,
                self.current.visit,
                match stamp {
                    Stamp::Science => "sci",
                    Stamp::Template => "ref",
                    Stamp::Difference => "scimref",
                }
            ))),
            _ => Q::Null,
        }
    }

    /// A quantity of one measurement.
    fn of(&self, d: &Detection, quantity: Quantity, forced: bool) -> Q<'_> {
        let ztf = self.survey() == Survey::Ztf;
        let seen = d.detected || forced;
        match quantity {
            Quantity::SourceId | Quantity::AlertId if d.detected || forced => Q::Int(d.id),
            Quantity::SourceId | Quantity::AlertId => Q::Null,
            Quantity::ObjectId => self.object_id(),
            Quantity::SsObjectId => self.ss_object_id(),
            Quantity::Visit | Quantity::ProcessingId => Q::Int(d.visit),
            Quantity::Detector if ztf => Q::Int(i64::from(d.detector)),
            Quantity::Detector => Q::Int(i64::from(d.detector)),
            Quantity::Field => Q::Int(i64::from(200 + d.field % 700)),
            Quantity::ProgramId => Q::Int(1),
            Quantity::Ra if seen => Q::Num(d.ra),
            Quantity::Dec if seen => Q::Num(d.dec),
            Quantity::RaErr | Quantity::DecErr if seen => Q::Num(0.1 / 3600.0),
            Quantity::Jd | Quantity::Mjd => self.time(d.mjd),
            Quantity::Band => Q::Str(model::bands(self.survey())[d.band].into()),
            Quantity::BandId => Q::Int(d.band as i64 + 1),
            Quantity::Flux if seen => Q::Num(d.flux),
            Quantity::FluxErr if seen => Q::Num(d.flux_err),
            Quantity::ForcedFlux => Q::Num(njy_to_dn(d.flux)),
            Quantity::ForcedFluxErr => Q::Num(njy_to_dn(d.flux_err)),
            Quantity::Mag if d.detected => Q::Num(magnitude(d.flux)),
            Quantity::MagErr if d.detected => Q::Num(1.0857 * d.flux_err / d.flux.abs().max(1e-9)),
            Quantity::LimitingMag => Q::Num(d.limiting_mag),
            Quantity::IsDiffPos if d.detected && ztf => {
                Q::Str(if d.flux >= 0.0 { "t" } else { "f" }.into())
            }
            Quantity::IsDiffPos if seen => Q::Bool(d.flux < 0.0),
            Quantity::Reliability if d.detected => Q::Num(d.reliability),
            Quantity::ZeroPoint => Q::Num(ZTF_ZERO_POINT),
            // Distance to the known asteroid: its predicted place is off by
            // up to a few arcseconds.
            Quantity::SsDistance if self.solar_system() => Q::Num(rng::uniform(
                self.sim.config.seed,
                &[self.object.index, d.visit as u64, 14],
                0.05,
                4.0,
            )),
            Quantity::SsMag if self.solar_system() => Q::Num(magnitude(d.flux)),
            Quantity::SsDistance | Quantity::SsMag => Q::Num(-999.0),
            Quantity::SsName if self.solar_system() => {
                Q::Str(format!("{}", 1000 + self.object.index % 600_000).into())
            }
            Quantity::SsName => Q::Str("null".into()),
            Quantity::Snr if seen => Q::Num(d.flux.abs() / d.flux_err.max(1e-9)),
            Quantity::ProcessedMicros | Quantity::ProcessedMjd => self.processed(quantity),
            Quantity::NDetections => Q::Int(self.detections().count() as i64),
            Quantity::Fwhm | Quantity::Elong | Quantity::MagDiff | Quantity::BadPixels if seen => {
                Q::Num(self.shape(d, quantity))
            }
            Quantity::FirstJd => self.time(self.detections().next().map_or(d.mjd, |f| f.mjd)),
            Quantity::LastJd => self.time(d.mjd),
            _ => Q::Null,
        }
    }
}

impl Source for AlertView<'_> {
    fn value(&self, scope: Scope, index: usize, quantity: Quantity) -> Q<'_> {
        match scope {
            Scope::Detection => self.of(&self.current, quantity, false),
            Scope::Previous => self
                .history
                .get(index)
                .map_or(Q::Null, |d| self.of(d, quantity, false)),
            Scope::Forced => self
                .forced
                .get(index)
                .map_or(Q::Null, |d| self.of(d, quantity, true)),
            Scope::SolarSystem => match quantity {
                Quantity::SourceId => Q::Int(self.current.id),
                other => self.of_alert(other),
            },
            Scope::Alert | Scope::Object | Scope::Cutout(_) => self.of_alert(quantity),
        }
    }

    fn count(&self, scope: Scope) -> usize {
        match scope {
            Scope::Alert | Scope::Detection => 1,
            Scope::Previous => self.history.len(),
            Scope::Forced => self.forced.len(),
            Scope::Object => usize::from(!self.solar_system()),
            Scope::SolarSystem => usize::from(self.solar_system()),
            Scope::Cutout(_) => usize::from(self.stamps.is_some()),
        }
    }
}

impl Config {
    /// Checks what no visit could be made with.
    pub fn check(&self) -> Result<()> {
        if self.count == 0 || self.count > MAX_COUNT {
            return Err(bad_input(format!(
                "COUNT {}: a simulated visit carries 1 to {MAX_COUNT} alerts",
                self.count
            )));
        }
        if self.fields == 0 {
            return Err(bad_input("--fields must be at least 1"));
        }
        let (shard, of) = self.shard;
        if of == 0 || shard >= of {
            return Err(bad_input(format!(
                "--shard {shard}/{of}: give I/N with 0 <= I < N, e.g. 0/2 and 1/2 on two hosts"
            )));
        }
        let needed = u64::from(self.count) * u64::from(self.fields);
        if self.objects < needed {
            return Err(bad_input(format!(
                "--objects {}: a visit of {} alerts over {} field(s) needs at least {needed} \
                 objects (COUNT x --fields; the default is 20 x COUNT)",
                self.objects, self.count, self.fields
            )));
        }
        if !(self.interval.is_finite() && self.interval > 0.0) {
            return Err(bad_input("--interval must be a positive number of seconds"));
        }
        Ok(())
    }
}

/// A small ZTF simulator for unit tests.
#[cfg(test)]
pub(crate) fn test_simulator(count: u32) -> Simulator {
    tests::ztf(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn ztf(count: u32) -> Simulator {
        let config = Config {
            survey: Survey::Ztf,
            seed: 7,
            count,
            objects: 20 * u64::from(count),
            fields: 2,
            interval: 39.0,
            mix: Mix::default(),
            shard: (0, 1),
            stamps: false,
        };
        Simulator::new(config, &crate::avro::schema::built_in()).unwrap()
    }

    /// Every simulated alert decodes whole with its schema.
    #[test]
    fn alerts_decode_whole() {
        let sim = ztf(50);
        let schema = crate::avro::schema::built_in();
        let plan = sim.plan(46_051_662);
        assert_eq!(plan.alerts.len(), 50);
        for alert in &plan.alerts {
            let mut out = Vec::new();
            sim.encode(&plan, alert, &mut out);
            let mut rest = out.as_slice();
            apache_avro::from_avro_datum(&schema, &mut rest, None).unwrap();
            assert!(rest.is_empty(), "{} bytes left over", rest.len());
        }
    }
}
