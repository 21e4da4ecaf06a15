//! `alertstream view`'s web page: thin axum handlers over the shared
//! [`store::Store`]. Cutout rendering ([`cutout`]) and light-curve drawing
//! ([`lightcurve`]) are plain functions; the page itself is HTML, CSS and
//! JavaScript files embedded at build time (no CDN, no build step), which
//! build every element from alert text with `textContent`, never as markup.

pub mod cutout;
pub mod lightcurve;
mod routes;
pub mod store;
pub mod summary;

use std::sync::{Mutex, MutexGuard};

use apache_avro::Schema;

use crate::avro::codec::Decoder;
pub use routes::router;

/// What every request handler reads.
pub struct Shared {
    pub store: store::Store,
    /// Decodes kept messages again for the alert page, cutouts and filters.
    decoder: Mutex<Decoder>,
    /// The reader schema the filter box's expressions are checked against.
    pub reader: Schema,
    /// `--token`: required on every request but /healthz when set.
    pub token: Option<String>,
}

impl Shared {
    pub fn new(
        store: store::Store,
        decoder: Decoder,
        reader: Schema,
        token: Option<String>,
    ) -> Self {
        Self {
            store,
            decoder: Mutex::new(decoder),
            reader,
            token,
        }
    }

    fn decoder(&self) -> MutexGuard<'_, Decoder> {
        self.decoder.lock().unwrap_or_else(|p| p.into_inner())
    }
}
