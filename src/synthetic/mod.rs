//! The simulated survey: unique, evolving alerts made on the fly, so that
//! brokers can be tested on a stream that behaves like a real one (objects
//! that recur with growing histories, moving asteroids, bogus detections,
//! real FITS cutouts). Every alert is a pure function of the seed, the
//! object and the visit: a history is recomputed, never stored, and any host
//! computes any shard of any visit the same way.
//!
//! The timeline is a grid anchored at the Unix epoch: visit `i` is taken at
//! `i * interval`. Visit `i` points at field `i mod fields`; the field's
//! objects are `index ≡ field (mod fields)`, and a visit detects a window of
//! COUNT of them that moves by a quarter of COUNT each time the field comes
//! back, so an object is seen in four visits of its field in a row.

pub mod cutout;
mod fill;
pub mod generate;
pub mod model;
mod names;
pub mod options;
pub mod rng;
mod survey;

pub use fill::Template;
pub use options::{simulation, Asked, Simulation};
pub use survey::{Config, Detection, Planned, Simulator, VisitPlan};
