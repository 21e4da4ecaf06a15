//! Postage-stamp cutouts for simulated alerts: the science, template and
//! difference images around a source, and their encoding as FITS files the
//! way each survey ships them in its alert packets.
//!
//! # Images
//!
//! Every image is a pure function of its [`Spec`]: the pixel noise comes from
//! an [`rng::Stream`] seeded by [`Spec::noise_seed`], so the same spec gives
//! the same pixels (and the same bytes) on any host.
//!
//! The point-spread function is a circular Gaussian of FWHM [`Spec::fwhm`]
//! integrated over each pixel. It is separable, so a source costs two 1-D
//! weight vectors (`size + 1` evaluations of `erf` per axis) instead of a
//! per-pixel `exp`, and the weights of all pixels of the unbounded grid sum to
//! one: a source of flux F puts F into the image, less only what falls off
//! its edges. The scene (positions in 0-based pixel coordinates, x = column,
//! y = row, row 0 being the first FITS row, the bottom of the image):
//!
//! * [`Look::Real`]: a static source of `reference_flux` at the centre plus
//!   [`Spec::offset`], in both images; the science image adds
//!   `difference_flux` at the same place. Science noise is `sigma`, template
//!   noise `sigma / 3` (a deeper coadd), and difference = science - template,
//!   so it holds the difference source and the noise of both.
//! * [`Look::Dipole`] (bogus): the science image is misregistered against the
//!   template by half a FWHM (direction drawn from the seed), so the static
//!   source leaves a positive and a negative lobe in the difference. The
//!   static source's flux is at least `2 * |difference_flux|`, so there is a
//!   visible dipole even with no host; the net flux is still
//!   `difference_flux`.
//! * [`Look::CosmicRay`] (bogus): the static source as for `Real`, and
//!   `difference_flux` deposited in a track of one to three pixels (no PSF)
//!   in the science image; a negative `difference_flux` hits the template
//!   instead, so the difference shows a negative spike.
//!
//! Inputs are sanitised rather than trusted: the side is clamped to
//! `1..=`[`MAX_SIZE`], non-finite fluxes, background and offsets count as
//! zero, offsets are clamped to one image width, a negative or non-finite
//! sigma counts as zero and the FWHM is clamped to
//! [`MIN_FWHM`]`..=`[`MAX_FWHM`]. Nothing here panics.
//!
//! # FITS
//!
//! Both writers follow FITS 4.0: 80-column cards in fixed format (logicals and
//! numbers right-justified to column 30, strings quoted from column 11), an
//! `END` card, the header padded with spaces and the data (big-endian IEEE)
//! with zeros to 2880-byte blocks. A non-finite header value is written as an
//! undefined value (blank value field) rather than an invalid number; an
//! image shorter than `size * size` is padded with NaN.
//!
//! * ZTF ([`ztf_fits`]): one primary HDU, `BITPIX = -32`, `size` x `size`,
//!   with a subset of the cards of ZTF's image headers (origin, filter, field,
//!   CCD and quadrant, exposure, photometric zero point, gain, saturation)
//!   and a TAN WCS; the whole file gzip-compressed, as ZTF's
//!   `cutout*.stampData` are.
//! * Rubin ([`rubin_fits`]): uncompressed, laid out as `astropy`'s
//!   `CCDData.write` lays out the `CCDData` that `lsst.ap.association`'s
//!   `PackageAlertsTask.createCcdDataCutout` builds (image in nJy, a
//!   `VarianceUncertainty`, the mask as `flags`, the WCS, the PSF kernel, meta
//!   `cutMinX`/`cutMinY` and a `ROTPA` card): a primary HDU with the float32
//!   image, `EXTEND`, `CUTMINX`, `CUTMINY`, `ROTPA`, `BUNIT = 'nJy'` and the
//!   WCS in the form astropy writes it (`PCi_j` with `CDELTi = 1`); an
//!   `UNCERT` image extension with the variance (float32,
//!   `UTYPE = 'VarianceUncertainty'`); and, when asked for, a `PSFIMAGE`
//!   extension with the float64 PSF kernel normalised to unit sum. No mask
//!   extension: `CCDData.write` does not serialise `flags` (its `hdu_flags`
//!   defaults to `None`) and the task sets no `mask`, so Rubin's cutouts
//!   have none. One deliberate difference: Rubin builds its cutout WCS
//!   without `CTYPE`s (a linear WCS); we write `RA---TAN`/`DEC--TAN` so that
//!   astropy gives sky coordinates.
//!
//! The WCS is a tangent projection with no rotation, north up and east to
//! the left (`CD1_1 < 0`), the pixel scale from the header, `CRVAL` = the
//! header's (ra, dec) and `CRPIX = (size + 1) / 2 + offset`: pass the
//! spec's offset so that (ra, dec) sits on the source, as in Rubin's cutouts.

use super::rng::{self, Stream};

/// The largest image side made or written, in pixels (bounds memory).
pub const MAX_SIZE: usize = 512;
/// ZTF's cutout side in pixels.
pub const ZTF_SIZE: usize = 63;
/// Rubin's default (minimum) cutout side in pixels (`minCutoutSize`).
pub const RUBIN_SIZE: usize = 30;
/// ZTF's pixel scale in arcseconds per pixel.
pub const ZTF_PIXEL_SCALE: f64 = 1.01;
/// Rubin's pixel scale in arcseconds per pixel.
pub const RUBIN_PIXEL_SCALE: f64 = 0.2;
/// The narrowest PSF accepted, FWHM in pixels.
pub const MIN_FWHM: f64 = 0.1;
/// The widest PSF accepted, FWHM in pixels.
pub const MAX_FWHM: f64 = 4.0 * MAX_SIZE as f64;

/// The largest PSF kernel written to Rubin's `PSFIMAGE` extension.
const MAX_PSF_SIZE: usize = 255;
/// Misregistration of a dipole, in units of the FWHM.
const DIPOLE_SHIFT: f64 = 0.5;
/// Coordinates of the draws made from the noise seed.
const NOISE_TAG: u64 = 0x6375_746f_7574_0001;
const DIPOLE_TAG: u64 = 0x6375_746f_7574_0002;
const COSMIC_TAG: u64 = 0x6375_746f_7574_0003;

const BLOCK: usize = 2880;
const CARD: usize = 80;
/// FWHM / sigma of a Gaussian: 2 sqrt(2 ln 2).
const FWHM_PER_SIGMA: f64 = 2.354_820_045_030_949_3;

/// What the alert's source looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Look {
    /// A real point source in the difference image.
    Real,
    /// Bogus: a misregistered static source, positive and negative lobes.
    Dipole,
    /// Bogus: a cosmic-ray hit, one to three pixels, much sharper than the PSF.
    CosmicRay,
}

/// Everything that determines the three images of an alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// Image side in pixels (ZTF 63, Rubin 30 or more); clamped to `1..=512`.
    pub size: usize,
    /// Seeds the pixel noise (and the dipole direction, the cosmic-ray track).
    pub noise_seed: u64,
    /// Sky level per pixel in the image's units (science and template).
    pub background: f64,
    /// Per-pixel noise standard deviation of the science image; the
    /// template's is `sigma / 3`.
    pub sigma: f64,
    /// Total flux of the static source (host, or the star itself) in the
    /// template and the science image.
    pub reference_flux: f64,
    /// Total flux of the difference source (negative: fading); the science
    /// image is the template's scene plus this.
    pub difference_flux: f64,
    /// PSF FWHM in pixels (Gaussian).
    pub fwhm: f64,
    /// Offset (x, y) in pixels of the source from the image centre.
    pub offset: (f64, f64),
    /// Real source or one of the bogus looks.
    pub look: Look,
}

impl Spec {
    /// The per-pixel noise variances of the (science, template, difference)
    /// images, for Rubin's variance planes.
    pub fn variances(&self) -> (f64, f64, f64) {
        let s = sanitize_sigma(self.sigma);
        let science = s * s;
        let template = science / 9.0;
        (science, template, science + template)
    }
}

/// The three cutouts of an alert, row-major, row 0 = the first FITS row (the
/// bottom of the image), `size * size` pixels each.
#[derive(Debug, Clone, PartialEq)]
pub struct Images {
    /// Side in pixels, after clamping.
    pub size: usize,
    pub science: Vec<f32>,
    pub template: Vec<f32>,
    pub difference: Vec<f32>,
}

/// The header values of a ZTF cutout.
#[derive(Debug, Clone, PartialEq)]
pub struct ZtfHeader {
    /// Right ascension and declination (deg) at the reference pixel.
    pub ra: f64,
    pub dec: f64,
    /// Offset (x, y) in pixels of the reference pixel from the image centre;
    /// pass [`Spec::offset`] to put (ra, dec) on the source.
    pub offset: (f64, f64),
    /// Arcseconds per pixel.
    pub pixel_scale: f64,
    /// `OBSJD` (`OBSMJD` = `OBSJD - 2400000.5`).
    pub obsjd: f64,
    /// 1 = g, 2 = r, 3 = i (`FILTERID`, and `FILTER` = 'ZTF_g' ...).
    pub filter_id: u8,
    pub field_id: i64,
    /// 1..=16.
    pub ccd_id: i64,
    /// Quadrant, 1..=4 (`RCID` = 4 (ccd_id - 1) + qid - 1).
    pub qid: i64,
    /// Seconds.
    pub exptime: f64,
    /// Photometric zero point: mag = `magzp - 2.5 log10(counts)`.
    pub magzp: f64,
    pub magzpunc: f64,
    /// Electrons per count.
    pub gain: f64,
    /// Saturation level, counts.
    pub saturate: f64,
}

impl Default for ZtfHeader {
    fn default() -> Self {
        Self {
            ra: 0.0,
            dec: 0.0,
            offset: (0.0, 0.0),
            pixel_scale: ZTF_PIXEL_SCALE,
            obsjd: 2_460_000.5,
            filter_id: 2,
            field_id: 0,
            ccd_id: 1,
            qid: 1,
            exptime: 30.0,
            magzp: 26.0,
            magzpunc: 0.01,
            gain: 6.2,
            saturate: 50_000.0,
        }
    }
}

/// The header values of a Rubin cutout.
#[derive(Debug, Clone, PartialEq)]
pub struct RubinHeader {
    /// Right ascension and declination (deg) at the reference pixel.
    pub ra: f64,
    pub dec: f64,
    /// Offset (x, y) in pixels of the reference pixel from the image centre;
    /// pass [`Spec::offset`] to put (ra, dec) on the source, as Rubin does.
    pub offset: (f64, f64),
    /// Arcseconds per pixel.
    pub pixel_scale: f64,
    /// Position of the cutout on the detector (`CUTMINX`, `CUTMINY`).
    pub cut_min: (i64, i64),
    /// `ROTPA`: position angle (deg) of the focal plane's +Y from north.
    /// The WCS written is not rotated, so 0 is the consistent value.
    pub rotpa: f64,
    /// Per-pixel variance (nJy²) for the `UNCERT` extension; `None` leaves
    /// the extension out. See [`Spec::variances`].
    pub variance: Option<f64>,
    /// FWHM in pixels of the PSF kernel in the `PSFIMAGE` extension.
    pub psf_fwhm: f64,
    /// Side of the PSF kernel; 0 leaves `PSFIMAGE` out. At most 255.
    pub psf_size: usize,
}

impl Default for RubinHeader {
    fn default() -> Self {
        Self {
            ra: 0.0,
            dec: 0.0,
            offset: (0.0, 0.0),
            pixel_scale: RUBIN_PIXEL_SCALE,
            cut_min: (0, 0),
            rotpa: 0.0,
            variance: None,
            psf_fwhm: 4.0,
            psf_size: 0,
        }
    }
}

// ---------------------------------------------------------------------------
// Images

/// A separable source: flux times the outer product of two weight vectors.
struct Blob {
    flux: f64,
    wx: Vec<f64>,
    wy: Vec<f64>,
}

impl Blob {
    fn new(flux: f64, x: f64, y: f64, sigma: f64, n: usize) -> Self {
        Self {
            flux,
            wx: pixel_weights(n, x, sigma),
            wy: pixel_weights(n, y, sigma),
        }
    }

    fn with_flux(&self, flux: f64) -> Self {
        Self {
            flux,
            wx: self.wx.clone(),
            wy: self.wy.clone(),
        }
    }

    /// Row `y` of the model.
    fn row(&self, y: usize, out: &mut [f64]) {
        let a = self.flux * self.wy.get(y).copied().unwrap_or(0.0);
        for (o, w) in out.iter_mut().zip(&self.wx) {
            *o = a * w;
        }
    }
}

/// Makes the science, template and difference cutouts of `spec`.
pub fn images(spec: &Spec) -> Images {
    let n = clamp_size(spec.size);
    let background = finite_or_zero(spec.background);
    let sigma = sanitize_sigma(spec.sigma);
    let reference = finite_or_zero(spec.reference_flux);
    let flux = finite_or_zero(spec.difference_flux);
    let psf_sigma = sanitize_fwhm(spec.fwhm) / FWHM_PER_SIGMA;
    let (ox, oy) = sanitize_offset(spec.offset, n);
    let centre = (n as f64 - 1.0) / 2.0;
    let (x0, y0) = (centre + ox, centre + oy);

    // Sources of the science and template images, and cosmic-ray deposits
    // (pixel index, flux, in science?) added after the noise.
    let mut deposits: Vec<(usize, f64, bool)> = Vec::new();
    let (science_source, template_source) = match spec.look {
        Look::Real => {
            let template = Blob::new(reference, x0, y0, psf_sigma, n);
            (template.with_flux(reference + flux), template)
        }
        Look::Dipole => {
            let lobe = reference.max(2.0 * flux.abs());
            let angle =
                std::f64::consts::TAU * rng::unit(rng::hash(spec.noise_seed, &[DIPOLE_TAG]));
            let half = 0.5 * DIPOLE_SHIFT * sanitize_fwhm(spec.fwhm);
            let (dx, dy) = (half * angle.cos(), half * angle.sin());
            let science = Blob::new(lobe + flux, x0 + dx, y0 + dy, psf_sigma, n);
            let template = Blob::new(lobe, x0 - dx, y0 - dy, psf_sigma, n);
            (science, template)
        }
        Look::CosmicRay => {
            let template = Blob::new(reference, x0, y0, psf_sigma, n);
            deposits = cosmic_ray(spec.noise_seed, x0, y0, n, flux);
            (template.with_flux(reference), template)
        }
    };

    let nn = n * n;
    let mut science = Vec::with_capacity(nn);
    let mut template = Vec::with_capacity(nn);
    let mut difference = Vec::with_capacity(nn);
    let mut science_row = vec![0.0f64; n];
    let mut template_row = vec![0.0f64; n];
    let template_sigma = sigma / 3.0;
    let mut noise = Stream::new(spec.noise_seed, &[NOISE_TAG]);
    for y in 0..n {
        science_source.row(y, &mut science_row);
        template_source.row(y, &mut template_row);
        for (&s, &t) in science_row.iter().zip(&template_row) {
            let (z1, z2) = (noise.pixel_noise(), noise.pixel_noise());
            let (ns, nt) = (sigma * z1, template_sigma * z2);
            science.push((background + s + ns) as f32);
            template.push((background + t + nt) as f32);
            difference.push((s - t + ns - nt) as f32);
        }
    }
    for (index, amount, in_science) in deposits {
        let image = if in_science {
            &mut science
        } else {
            &mut template
        };
        if let Some(p) = image.get_mut(index) {
            *p = (f64::from(*p) + amount) as f32;
        }
        let signed = if in_science { amount } else { -amount };
        if let Some(p) = difference.get_mut(index) {
            *p = (f64::from(*p) + signed) as f32;
        }
    }
    Images {
        size: n,
        science,
        template,
        difference,
    }
}

/// The fraction of a 1-D Gaussian (centre `c`, std `s`) falling in each of
/// `n` pixels, pixel `i` spanning `[i - 0.5, i + 0.5)`.
fn pixel_weights(n: usize, c: f64, s: f64) -> Vec<f64> {
    let k = 1.0 / (s * std::f64::consts::SQRT_2);
    let mut previous = erf((-0.5 - c) * k);
    (0..n)
        .map(|i| {
            let next = erf((i as f64 + 0.5 - c) * k);
            let w = 0.5 * (next - previous);
            previous = next;
            w.max(0.0)
        })
        .collect()
}

/// The error function (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7).
fn erf(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.327_591_1 * x.abs());
    let poly = ((((1.061_405_429 * t - 1.453_152_027) * t + 1.421_413_741) * t - 0.284_496_736)
        * t
        + 0.254_829_592)
        * t;
    let y = 1.0 - poly * (-x * x).exp();
    if x < 0.0 {
        -y
    } else {
        y
    }
}

/// A cosmic-ray track: one to three pixels from the source's pixel, holding
/// `flux` between them; in the science image, or the template if negative.
fn cosmic_ray(seed: u64, x0: f64, y0: f64, n: usize, flux: f64) -> Vec<(usize, f64, bool)> {
    const SHARES: [&[f64]; 3] = [&[1.0], &[0.7, 0.3], &[0.6, 0.25, 0.15]];
    const STEPS: [(i64, i64); 8] = [
        (1, 0),
        (1, 1),
        (0, 1),
        (-1, 1),
        (-1, 0),
        (-1, -1),
        (0, -1),
        (1, -1),
    ];
    let h = rng::hash(seed, &[COSMIC_TAG]);
    let shares = SHARES[(h % 3) as usize];
    let (sx, sy) = STEPS[((h >> 8) % 8) as usize];
    let last = n as i64 - 1;
    let px = (x0.round() as i64).clamp(0, last);
    let py = (y0.round() as i64).clamp(0, last);
    let in_science = flux >= 0.0;
    shares
        .iter()
        .zip(0i64..)
        .map(|(share, k)| {
            let x = (px + k * sx).clamp(0, last) as usize;
            let y = (py + k * sy).clamp(0, last) as usize;
            (y * n + x, share * flux.abs(), in_science)
        })
        .collect()
}

fn clamp_size(size: usize) -> usize {
    size.clamp(1, MAX_SIZE)
}

fn finite_or_zero(v: f64) -> f64 {
    if v.is_finite() {
        v
    } else {
        0.0
    }
}

fn sanitize_sigma(sigma: f64) -> f64 {
    if sigma.is_finite() && sigma > 0.0 {
        sigma
    } else {
        0.0
    }
}

fn sanitize_fwhm(fwhm: f64) -> f64 {
    if fwhm.is_finite() {
        fwhm.clamp(MIN_FWHM, MAX_FWHM)
    } else {
        MIN_FWHM
    }
}

fn sanitize_offset(offset: (f64, f64), n: usize) -> (f64, f64) {
    let limit = n as f64;
    (
        finite_or_zero(offset.0).clamp(-limit, limit),
        finite_or_zero(offset.1).clamp(-limit, limit),
    )
}

// ---------------------------------------------------------------------------
// FITS

/// A ZTF cutout: a gzip-compressed single-HDU FITS file, float32,
/// `size` x `size` (clamped to `1..=512`).
pub fn ztf_fits(image: &[f32], size: usize, header: &ZtfHeader) -> Vec<u8> {
    let n = clamp_size(size);
    let mut h = Header::new();
    h.logical("SIMPLE", true, "conforms to FITS standard");
    h.int("BITPIX", -32, "array data type");
    h.int("NAXIS", 2, "number of array dimensions");
    h.int("NAXIS1", n as i64, "");
    h.int("NAXIS2", n as i64, "");
    h.string("ORIGIN", "Zwicky Transient Facility", "Data origin");
    h.string("TELESCOP", "P48", "Name of telescope");
    h.string("INSTRUME", "ZTF/MOSAIC", "Instrument name");
    let filter = match header.filter_id {
        1 => "ZTF_g",
        2 => "ZTF_r",
        3 => "ZTF_i",
        _ => "UNKNOWN",
    };
    h.string("FILTER", filter, "Filter name");
    h.int(
        "FILTERID",
        i64::from(header.filter_id),
        "Filter ID (1=g, 2=r, 3=i)",
    );
    h.int("FIELDID", header.field_id, "ZTF field ID");
    h.int("CCDID", header.ccd_id, "CCD number (1..16)");
    h.int("QID", header.qid, "CCD quadrant (1..4)");
    let rcid = header
        .ccd_id
        .saturating_sub(1)
        .saturating_mul(4)
        .saturating_add(header.qid)
        .saturating_sub(1);
    h.int("RCID", rcid, "Readout channel (0..63)");
    h.float("EXPTIME", header.exptime, "[s] Exposure time");
    h.float(
        "OBSJD",
        header.obsjd,
        "[day] Julian date of the observation",
    );
    h.float(
        "OBSMJD",
        header.obsjd - 2_400_000.5,
        "[day] MJD of the observation",
    );
    h.float("MAGZP", header.magzp, "[mag] Photometric zero point");
    h.float("MAGZPUNC", header.magzpunc, "[mag] Zero point uncertainty");
    h.float("GAIN", header.gain, "[e-/DN] Detector gain");
    h.float("SATURATE", header.saturate, "[DN] Saturation level");
    h.float("PIXSCALE", header.pixel_scale, "[arcsec/pixel] Pixel scale");
    h.string("RADESYS", "ICRS", "Equatorial coordinate system");
    let wcs = Wcs::new(n, header.ra, header.dec, header.offset, header.pixel_scale);
    h.string("CTYPE1", "RA---TAN", "Right ascension, gnomonic projection");
    h.string("CTYPE2", "DEC--TAN", "Declination, gnomonic projection");
    h.string("CUNIT1", "deg", "Units of coordinate increment and value");
    h.string("CUNIT2", "deg", "Units of coordinate increment and value");
    h.float("CRPIX1", wcs.crpix.0, "Pixel coordinate of reference point");
    h.float("CRPIX2", wcs.crpix.1, "Pixel coordinate of reference point");
    h.float("CRVAL1", wcs.crval.0, "[deg] RA at reference point");
    h.float("CRVAL2", wcs.crval.1, "[deg] Dec at reference point");
    h.float("CD1_1", -wcs.scale, "[deg/pixel] Transformation matrix");
    h.float("CD1_2", 0.0, "[deg/pixel] Transformation matrix");
    h.float("CD2_1", 0.0, "[deg/pixel] Transformation matrix");
    h.float("CD2_2", wcs.scale, "[deg/pixel] Transformation matrix");
    let mut fits = h.finish();
    push_f32_data(&mut fits, image, n * n);
    gzip(&fits)
}

/// A Rubin cutout: uncompressed FITS as astropy writes Rubin's `CCDData`
/// cutouts (primary image in nJy with WCS, `UNCERT` variance extension if
/// `header.variance` is set, `PSFIMAGE` if `header.psf_size > 0`).
pub fn rubin_fits(image: &[f32], size: usize, header: &RubinHeader) -> Vec<u8> {
    let n = clamp_size(size);
    let mut h = Header::new();
    h.logical("SIMPLE", true, "conforms to FITS standard");
    h.int("BITPIX", -32, "array data type");
    h.int("NAXIS", 2, "number of array dimensions");
    h.int("NAXIS1", n as i64, "");
    h.int("NAXIS2", n as i64, "");
    h.logical("EXTEND", true, "");
    h.int("CUTMINX", header.cut_min.0, "");
    h.int("CUTMINY", header.cut_min.1, "");
    h.float(
        "ROTPA",
        header.rotpa,
        "Pos angle in deg of focal plane +Y wrt North",
    );
    h.string("BUNIT", "nJy", "");
    let wcs = Wcs::new(n, header.ra, header.dec, header.offset, header.pixel_scale);
    h.int("WCSAXES", 2, "Number of coordinate axes");
    h.float("CRPIX1", wcs.crpix.0, "Pixel coordinate of reference point");
    h.float("CRPIX2", wcs.crpix.1, "Pixel coordinate of reference point");
    h.float(
        "PC1_1",
        -wcs.scale,
        "Coordinate transformation matrix element",
    );
    h.float(
        "PC2_2",
        wcs.scale,
        "Coordinate transformation matrix element",
    );
    h.float(
        "CDELT1",
        1.0,
        "[deg] Coordinate increment at reference point",
    );
    h.float(
        "CDELT2",
        1.0,
        "[deg] Coordinate increment at reference point",
    );
    h.string("CUNIT1", "deg", "Units of coordinate increment and value");
    h.string("CUNIT2", "deg", "Units of coordinate increment and value");
    h.string("CTYPE1", "RA---TAN", "Right ascension, gnomonic projection");
    h.string("CTYPE2", "DEC--TAN", "Declination, gnomonic projection");
    h.float(
        "CRVAL1",
        wcs.crval.0,
        "[deg] Coordinate value at reference point",
    );
    h.float(
        "CRVAL2",
        wcs.crval.1,
        "[deg] Coordinate value at reference point",
    );
    h.float("LONPOLE", 180.0, "[deg] Native longitude of celestial pole");
    h.float(
        "LATPOLE",
        wcs.crval.1,
        "[deg] Native latitude of celestial pole",
    );
    h.float("MJDREF", 0.0, "[d] MJD of fiducial time");
    h.string("RADESYS", "ICRS", "Equatorial coordinate system");
    let mut fits = h.finish();
    push_f32_data(&mut fits, image, n * n);

    if let Some(variance) = header.variance {
        let mut h = extension_header(-32, n, n);
        h.string("UTYPE", "VarianceUncertainty", "");
        h.string("EXTNAME", "UNCERT", "extension name");
        fits.extend_from_slice(&h.finish());
        let v = (variance as f32).to_be_bytes();
        push_block_data(&mut fits, n * n, |out, _| out.extend_from_slice(&v));
    }

    let psf_size = header.psf_size.min(MAX_PSF_SIZE);
    if psf_size > 0 {
        let mut h = extension_header(-64, psf_size, psf_size);
        h.string("EXTNAME", "PSFIMAGE", "extension name");
        fits.extend_from_slice(&h.finish());
        let sigma = sanitize_fwhm(header.psf_fwhm) / FWHM_PER_SIGMA;
        let centre = (psf_size as f64 - 1.0) / 2.0;
        let w = pixel_weights(psf_size, centre, sigma);
        let total: f64 = w.iter().sum();
        let norm = if total > 0.0 {
            1.0 / (total * total)
        } else {
            0.0
        };
        push_block_data(&mut fits, psf_size * psf_size, |out, i| {
            let wy = w.get(i / psf_size).copied().unwrap_or(0.0);
            let wx = w.get(i % psf_size).copied().unwrap_or(0.0);
            out.extend_from_slice(&(wx * wy * norm).to_be_bytes());
        });
    }
    fits
}

/// The mandatory cards of an IMAGE extension.
fn extension_header(bitpix: i64, naxis1: usize, naxis2: usize) -> Header {
    let mut h = Header::new();
    h.string("XTENSION", "IMAGE", "Image extension");
    h.int("BITPIX", bitpix, "array data type");
    h.int("NAXIS", 2, "number of array dimensions");
    h.int("NAXIS1", naxis1 as i64, "");
    h.int("NAXIS2", naxis2 as i64, "");
    h.int("PCOUNT", 0, "number of parameters");
    h.int("GCOUNT", 1, "number of groups");
    h
}

/// Sanitised WCS values: CRPIX (1-based), CRVAL (deg), scale (deg/pixel).
struct Wcs {
    crpix: (f64, f64),
    crval: (f64, f64),
    scale: f64,
}

impl Wcs {
    fn new(n: usize, ra: f64, dec: f64, offset: (f64, f64), arcsec_per_pixel: f64) -> Self {
        let (ox, oy) = sanitize_offset(offset, n);
        let centre = (n as f64 + 1.0) / 2.0;
        // Non-finite values stay so and are written as undefined.
        let ra = if ra.is_finite() {
            ra.rem_euclid(360.0)
        } else {
            ra
        };
        let dec = if dec.is_finite() {
            dec.clamp(-90.0, 90.0)
        } else {
            dec
        };
        Self {
            crpix: (centre + ox, centre + oy),
            crval: (ra, dec),
            scale: arcsec_per_pixel / 3600.0,
        }
    }
}

/// Appends `count` pixels of `image` (NaN past its end) as big-endian
/// float32, padded with zeros to a block.
fn push_f32_data(fits: &mut Vec<u8>, image: &[f32], count: usize) {
    push_block_data(fits, count, |out, i| {
        let v = image.get(i).copied().unwrap_or(f32::NAN);
        out.extend_from_slice(&v.to_be_bytes());
    });
}

/// Appends a data unit of `count` elements, element `i` written by
/// `write(out, i)`, padded with zeros to a block.
fn push_block_data(fits: &mut Vec<u8>, count: usize, mut write: impl FnMut(&mut Vec<u8>, usize)) {
    let start = fits.len();
    fits.reserve(count * 8 + BLOCK);
    for i in 0..count {
        write(fits, i);
    }
    let padded = (fits.len() - start).div_ceil(BLOCK) * BLOCK;
    fits.resize(start + padded, 0);
}

/// A gzip file (RFC 1952) of stored deflate blocks (RFC 1951, BTYPE 00):
/// ZTF's cutouts are gzip files, but float pixel noise does not compress
/// (the fastest level saved under 2% here), and a deflate library's stored
/// mode still walked every byte: most of a simulated alert's cost. Stored
/// blocks are a header, the bytes as they are, and the CRC-32.
fn gzip(data: &[u8]) -> Vec<u8> {
    const MAX_STORED: usize = 65_535;
    let blocks = data.len().div_ceil(MAX_STORED).max(1);
    let mut out = Vec::with_capacity(18 + data.len() + 5 * blocks);
    // Magic, deflate, no flags, no time, no extra flags, unknown OS.
    out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
    let mut chunks = data.chunks(MAX_STORED).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        let last = chunks.peek().is_none();
        let len = chunk.len() as u16;
        out.push(u8::from(last));
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out.extend_from_slice(&crc32fast::hash(data).to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// A FITS header being written, card by card.
struct Header {
    bytes: Vec<u8>,
}

impl Header {
    fn new() -> Self {
        Self {
            bytes: Vec::with_capacity(2 * BLOCK),
        }
    }

    /// A card from its keyword, value field (from column 11) and comment.
    fn card(&mut self, key: &str, value: &str, comment: &str) {
        let start = self.bytes.len();
        let key: String = key.chars().take(8).collect();
        self.bytes
            .extend_from_slice(format!("{key:<8}= {value}").as_bytes());
        if !comment.is_empty() && self.bytes.len() - start + 3 < CARD {
            self.bytes.extend_from_slice(b" / ");
            self.bytes.extend(comment.chars().map(printable));
        }
        self.bytes.truncate(start + CARD);
        self.bytes.resize(start + CARD, b' ');
    }

    fn logical(&mut self, key: &str, value: bool, comment: &str) {
        let v = if value { "T" } else { "F" };
        self.card(key, &format!("{v:>20}"), comment);
    }

    fn int(&mut self, key: &str, value: i64, comment: &str) {
        self.card(key, &format!("{value:>20}"), comment);
    }

    /// A real value; non-finite values are written as undefined.
    fn float(&mut self, key: &str, value: f64, comment: &str) {
        let text = format_float(value).unwrap_or_default();
        self.card(key, &format!("{text:>20}"), comment);
    }

    /// A string value: printable ASCII, quotes doubled, at least 8
    /// characters, at most what fits in the card.
    fn string(&mut self, key: &str, value: &str, comment: &str) {
        let mut quoted = String::with_capacity(value.len() + 2);
        for c in value.chars() {
            let c = char::from(printable(c));
            let extra = if c == '\'' { 2 } else { 1 };
            if quoted.len() + extra > CARD - 12 {
                break;
            }
            quoted.push(c);
            if c == '\'' {
                quoted.push('\'');
            }
        }
        self.card(key, &format!("{:<20}", format!("'{quoted:<8}'")), comment);
    }

    /// The header with its END card, padded with spaces to a block.
    fn finish(mut self) -> Vec<u8> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b"END");
        self.bytes.resize(start + CARD, b' ');
        let padded = self.bytes.len().div_ceil(BLOCK) * BLOCK;
        self.bytes.resize(padded, b' ');
        self.bytes
    }
}

/// A character allowed in a header (printable ASCII), else '?'.
fn printable(c: char) -> u8 {
    if (' '..='~').contains(&c) {
        c as u8
    } else {
        b'?'
    }
}

/// A FITS real of at most 20 characters, or `None` if not finite.
fn format_float(v: f64) -> Option<String> {
    if !v.is_finite() {
        return None;
    }
    let mut plain = format!("{v}");
    if !plain.contains('.') {
        plain.push_str(".0");
    }
    if plain.len() <= 20 {
        return Some(plain);
    }
    let exp = format!("{v:E}");
    let exp = if exp.contains('.') {
        exp
    } else {
        exp.replacen('E', ".0E", 1)
    };
    if exp.len() <= 20 {
        return Some(exp);
    }
    (0..16)
        .rev()
        .map(|precision| format!("{v:.precision$E}"))
        .find(|s| s.len() <= 20 && s.parse::<f64>().is_ok_and(f64::is_finite))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Read;

    fn spec(look: Look) -> Spec {
        Spec {
            size: ZTF_SIZE,
            noise_seed: 42,
            background: 150.0,
            sigma: 5.0,
            reference_flux: 2_000.0,
            difference_flux: 1_500.0,
            fwhm: 2.5,
            offset: (0.3, -0.2),
            look,
        }
    }

    /// Stored gzip of any length reads back whole (and its CRC checks).
    #[test]
    fn stored_gzip_round_trips() {
        for len in [0usize, 1, 65_535, 65_536, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            assert_eq!(gunzip(&gzip(&data)), data, "{len} bytes");
        }
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("valid gzip");
        out
    }

    /// One parsed HDU: its cards (keyword -> value field) and raw data.
    struct Hdu {
        cards: HashMap<String, String>,
        order: Vec<String>,
        data: Vec<u8>,
    }

    /// Parses a FITS file, checking the layout rules on the way.
    fn parse(fits: &[u8]) -> Vec<Hdu> {
        assert_eq!(fits.len() % BLOCK, 0, "file not block aligned");
        let mut hdus = Vec::new();
        let mut at = 0;
        while at < fits.len() {
            let mut cards = HashMap::new();
            let mut order = Vec::new();
            let mut end = None;
            for (i, card) in fits[at..].chunks(CARD).enumerate() {
                assert!(card.iter().all(|b| (b' '..=b'~').contains(b)), "{card:?}");
                let text = std::str::from_utf8(card).expect("ascii");
                let key = text[..8].trim_end().to_string();
                if key == "END" {
                    assert!(text[3..].bytes().all(|b| b == b' '));
                    end = Some(i);
                    break;
                }
                assert_eq!(&text[8..10], "= ", "{text}");
                let field = &text[10..];
                let value = if let Some(quoted) = field.strip_prefix('\'') {
                    let close = quoted.find("' ").unwrap_or(quoted.len() - 1);
                    assert!(close >= 8, "string shorter than 8: {text}");
                    quoted[..close].trim_end().replace("''", "'")
                } else {
                    // Fixed format: right-justified, ending in column 30.
                    let v = &field[..20];
                    assert!(v.trim().is_empty() || !v.ends_with(' '), "{text}");
                    assert!(field[20..].is_empty() || field[20..].starts_with(' '));
                    v.trim().to_string()
                };
                order.push(key.clone());
                cards.insert(key, value);
            }
            let end = end.expect("END card");
            let header_len = ((end + 1) * CARD).div_ceil(BLOCK) * BLOCK;
            assert!(fits[at + (end + 1) * CARD..at + header_len]
                .iter()
                .all(|&b| b == b' '));
            at += header_len;
            let int = |k: &str| cards[k].parse::<i64>().expect("int");
            let bytes = (int("BITPIX").unsigned_abs() / 8) as usize
                * int("NAXIS1") as usize
                * int("NAXIS2") as usize;
            let data = fits[at..at + bytes].to_vec();
            let padded = bytes.div_ceil(BLOCK) * BLOCK;
            assert!(fits[at + bytes..at + padded].iter().all(|&b| b == 0));
            at += padded;
            hdus.push(Hdu { cards, order, data });
        }
        hdus
    }

    fn f32s(data: &[u8]) -> Vec<f32> {
        data.chunks(4)
            .map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    }

    fn aperture_sum(image: &[f32], n: usize, x0: f64, y0: f64, radius: f64) -> (f64, usize) {
        let mut sum = 0.0;
        let mut count = 0;
        for y in 0..n {
            for x in 0..n {
                let (dx, dy) = (x as f64 - x0, y as f64 - y0);
                if dx * dx + dy * dy <= radius * radius {
                    sum += f64::from(image[y * n + x]);
                    count += 1;
                }
            }
        }
        (sum, count)
    }

    #[test]
    fn sizes_are_clamped() {
        for (asked, got) in [
            (0, 1),
            (1, 1),
            (30, 30),
            (63, 63),
            (512, 512),
            (100_000, 512),
        ] {
            let mut s = spec(Look::Real);
            s.size = asked;
            let im = images(&s);
            assert_eq!(im.size, got);
            for plane in [&im.science, &im.template, &im.difference] {
                assert_eq!(plane.len(), got * got);
                assert!(plane.iter().all(|v| v.is_finite()));
            }
        }
    }

    #[test]
    fn flux_is_conserved() {
        for look in [Look::Real, Look::Dipole, Look::CosmicRay] {
            for flux in [1_500.0, -800.0] {
                let mut s = spec(look);
                s.difference_flux = flux;
                s.sigma = 0.0;
                let im = images(&s);
                let c = (ZTF_SIZE as f64 - 1.0) / 2.0;
                let (sum, _) = aperture_sum(&im.difference, ZTF_SIZE, c + 0.3, c - 0.2, 3.0 * 2.5);
                assert!(
                    (sum - flux).abs() < 1e-3 * flux.abs(),
                    "{look:?} {sum} {flux}"
                );
                let template: f64 = im.template.iter().map(|&v| f64::from(v) - 150.0).sum();
                if look == Look::Real || (look == Look::CosmicRay && flux > 0.0) {
                    assert!((template - 2_000.0).abs() < 1.0, "{template}");
                }
            }
        }
    }

    #[test]
    fn noisy_aperture_flux_is_within_three_sigma() {
        let s = spec(Look::Real);
        let c = (ZTF_SIZE as f64 - 1.0) / 2.0;
        let mut misses = 0;
        for seed in 0..50 {
            let im = images(&Spec {
                noise_seed: seed,
                ..s.clone()
            });
            let (sum, count) = aperture_sum(&im.difference, ZTF_SIZE, c + 0.3, c - 0.2, 7.5);
            let sigma = s.variances().2.sqrt() * (count as f64).sqrt();
            if (sum - s.difference_flux).abs() > 3.0 * sigma {
                misses += 1;
            }
        }
        assert!(misses <= 2, "{misses}");
    }

    #[test]
    fn noise_has_the_asked_sigma() {
        let s = Spec {
            reference_flux: 0.0,
            difference_flux: 0.0,
            size: 200,
            ..spec(Look::Real)
        };
        let im = images(&s);
        let std = |v: &[f32], mean: f64| {
            (v.iter()
                .map(|&x| (f64::from(x) - mean).powi(2))
                .sum::<f64>()
                / v.len() as f64)
                .sqrt()
        };
        assert!((std(&im.science, 150.0) / 5.0 - 1.0).abs() < 0.02);
        assert!((std(&im.template, 150.0) / (5.0 / 3.0) - 1.0).abs() < 0.02);
        let diff = std(&im.difference, 0.0) / s.variances().2.sqrt();
        assert!((diff - 1.0).abs() < 0.02, "{diff}");
    }

    #[test]
    fn looks_differ_as_described() {
        let quiet = |look| {
            images(&Spec {
                sigma: 0.5,
                ..spec(look)
            })
        };
        let real = quiet(Look::Real);
        let max = |v: &[f32]| v.iter().copied().fold(f32::MIN, f32::max);
        let min = |v: &[f32]| v.iter().copied().fold(f32::MAX, f32::min);
        // A 2.5 px FWHM PSF peaks at ~14% of its flux.
        let peak = max(&real.difference) / 1_500.0;
        assert!(peak > 0.08 && peak < 0.2, "{peak}");
        assert!(min(&real.difference) > -5.0);
        let dipole = quiet(Look::Dipole);
        assert!(max(&dipole.difference) > 100.0 && min(&dipole.difference) < -100.0);
        let cosmic = quiet(Look::CosmicRay);
        assert!(
            max(&cosmic.difference) / 1_500.0 > 0.55,
            "{}",
            max(&cosmic.difference)
        );
        assert!(min(&cosmic.difference) > -5.0);
        // A negative cosmic ray sits in the template.
        let negative = images(&Spec {
            difference_flux: -900.0,
            sigma: 0.5,
            ..spec(Look::CosmicRay)
        });
        assert!(min(&negative.difference) < -500.0 && max(&negative.template) > 500.0);
    }

    #[test]
    fn deterministic_in_the_seed() {
        let s = spec(Look::Real);
        let h = ZtfHeader::default();
        let a = images(&s);
        assert_eq!(a, images(&s));
        assert_eq!(
            ztf_fits(&a.science, a.size, &h),
            ztf_fits(&a.science, a.size, &h)
        );
        let b = images(&Spec {
            noise_seed: 43,
            ..s
        });
        assert_ne!(a.science, b.science);
        assert_ne!(
            ztf_fits(&a.science, a.size, &h),
            ztf_fits(&b.science, b.size, &h)
        );
    }

    #[test]
    fn absurd_inputs_do_not_panic() {
        let odd = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
            0.0,
            1e300,
            -1e-300,
        ];
        for look in [Look::Real, Look::Dipole, Look::CosmicRay] {
            for &v in &odd {
                for size in [0, 1, 2, 100_000] {
                    let s = Spec {
                        size,
                        noise_seed: u64::MAX,
                        background: v,
                        sigma: v,
                        reference_flux: v,
                        difference_flux: v,
                        fwhm: v,
                        offset: (v, -v),
                        look,
                    };
                    let im = images(&s);
                    assert_eq!(im.science.len(), im.size * im.size);
                    let z = ZtfHeader {
                        ra: v,
                        dec: v,
                        offset: (v, v),
                        pixel_scale: v,
                        obsjd: v,
                        magzp: v,
                        ccd_id: i64::MIN,
                        qid: i64::MAX,
                        ..ZtfHeader::default()
                    };
                    parse(&gunzip(&ztf_fits(&im.difference, size, &z)));
                    let r = RubinHeader {
                        ra: v,
                        dec: v,
                        variance: Some(v),
                        psf_fwhm: v,
                        psf_size: 100_000,
                        ..RubinHeader::default()
                    };
                    parse(&rubin_fits(&im.difference, size, &r));
                }
            }
        }
        // A short image is padded with NaN.
        let hdus = parse(&gunzip(&ztf_fits(&[1.0], 2, &ZtfHeader::default())));
        let px = f32s(&hdus[0].data);
        assert_eq!(px[0], 1.0);
        assert!(px[1..].iter().all(|v| v.is_nan()));
    }

    #[test]
    fn ztf_layout() {
        let im = images(&spec(Look::Real));
        let header = ZtfHeader {
            ra: 210.5,
            dec: -12.25,
            ..ZtfHeader::default()
        };
        let raw = gunzip(&ztf_fits(&im.science, im.size, &header));
        assert_eq!(raw.len(), BLOCK + 6 * BLOCK);
        assert!(raw.starts_with(
            format!(
                "{:<80}",
                "SIMPLE  =                    T / conforms to FITS standard"
            )
            .as_bytes()
        ));
        let hdus = parse(&raw);
        assert_eq!(hdus.len(), 1);
        let h = &hdus[0];
        assert_eq!(
            h.order[..5],
            ["SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2"]
        );
        assert_eq!(h.cards["BITPIX"], "-32");
        assert_eq!(h.cards["NAXIS1"], "63");
        assert_eq!(h.cards["FILTER"], "ZTF_r");
        assert_eq!(h.cards["CTYPE1"], "RA---TAN");
        assert_eq!(h.cards["CRPIX1"], "32.0");
        assert_eq!(h.cards["CRVAL1"], "210.5");
        assert_eq!(h.cards["CRVAL2"], "-12.25");
        assert!(h.cards["CD1_1"].parse::<f64>().expect("real") < 0.0);
        assert_eq!(f32s(&h.data), im.science);
    }

    #[test]
    fn rubin_layout() {
        let s = Spec {
            size: RUBIN_SIZE,
            ..spec(Look::Real)
        };
        let im = images(&s);
        let header = RubinHeader {
            ra: 10.0,
            dec: 45.0,
            offset: s.offset,
            variance: Some(s.variances().0),
            psf_size: 21,
            psf_fwhm: 2.5,
            ..RubinHeader::default()
        };
        let fits = rubin_fits(&im.science, im.size, &header);
        let hdus = parse(&fits);
        assert_eq!(hdus.len(), 3);
        assert_eq!(hdus[0].cards["BUNIT"], "nJy");
        assert_eq!(hdus[0].cards["EXTEND"], "T");
        assert_eq!(hdus[0].cards["CRPIX1"], "15.8");
        assert_eq!(f32s(&hdus[0].data), im.science);
        assert_eq!(hdus[1].cards["XTENSION"], "IMAGE");
        assert_eq!(hdus[1].cards["EXTNAME"], "UNCERT");
        assert_eq!(hdus[1].cards["UTYPE"], "VarianceUncertainty");
        assert!(f32s(&hdus[1].data).iter().all(|&v| v == 25.0));
        assert_eq!(hdus[2].cards["EXTNAME"], "PSFIMAGE");
        assert_eq!(hdus[2].cards["BITPIX"], "-64");
        let psf: Vec<f64> = hdus[2]
            .data
            .chunks(8)
            .map(|c| f64::from_be_bytes(c.try_into().expect("8 bytes")))
            .collect();
        assert!((psf.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert_eq!(psf.iter().cloned().fold(0.0, f64::max), psf[10 * 21 + 10]);
        // Without extensions: one HDU.
        let bare = rubin_fits(&im.science, im.size, &RubinHeader::default());
        assert_eq!(parse(&bare).len(), 1);
    }

    #[test]
    fn header_values_are_formatted() {
        for v in [
            0.0,
            -0.0,
            1.0,
            150.1,
            -5.5555555555556e-5,
            1e-300,
            1e300,
            f64::MAX,
            f64::MIN_POSITIVE,
            0.1 + 0.2,
            -123_456_789.123_456_79,
        ] {
            let s = format_float(v).expect("finite");
            assert!(s.len() <= 20 && s.contains('.'), "{s}");
            let back: f64 = s.parse().expect("parses");
            assert!((back - v).abs() <= 1e-13 * v.abs(), "{v} {s}");
        }
        assert_eq!(format_float(f64::NAN), None);
        let mut h = Header::new();
        h.string(
            "OBJECT",
            "it's caf\u{e9} and a very long name that goes on and on and on and on and on",
            "c",
        );
        h.float("BAD", f64::NAN, "undefined");
        let bytes = h.finish();
        let card = std::str::from_utf8(&bytes[..80]).expect("ascii");
        assert!(
            card.starts_with("OBJECT  = 'it''s caf? and a very long"),
            "{card}"
        );
        assert!(card.ends_with('\''), "{card}");
        let bad = std::str::from_utf8(&bytes[80..160]).expect("ascii");
        assert_eq!(bad.trim_end(), format!("BAD     = {:20} / undefined", ""));
    }
}
