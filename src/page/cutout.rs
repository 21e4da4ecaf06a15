//! Cutout images for `alertstream view`: decoding an alert's FITS stamps,
//! IRAF/astropy zscale limits, and PNG rendering.
//!
//! Cutouts come straight out of an alert stream, so every byte is treated as
//! hostile: sizes are checked against a pixel cap and against the bytes
//! actually present before anything is allocated, gzip is inflated through a
//! bounded reader, and the FITS parser (fitsrs) runs behind
//! `catch_unwind`, so one bad stamp costs a placeholder, never the server.

use std::fmt;
use std::io::{Cursor, Read};
use std::panic::{self, AssertUnwindSafe};

use fitsrs::card::Value;
use fitsrs::hdu::header::Bitpix;
use fitsrs::hdu::HDU;
use fitsrs::Fits;

/// Which of an alert's three cutouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stamp {
    Science,
    Template,
    Difference,
}

impl Stamp {
    /// The lower-case names used in URLs: "science", "template", "difference".
    pub fn parse(name: &str) -> Option<Stamp> {
        match name {
            "science" => Some(Stamp::Science),
            "template" => Some(Stamp::Template),
            "difference" => Some(Stamp::Difference),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Stamp::Science => "science",
            Stamp::Template => "template",
            Stamp::Difference => "difference",
        }
    }
}

/// One decoded cutout image. pixels are in FITS order: row 0 first (row 0 is
/// the BOTTOM row of the sky image), NAXIS1 (width) fastest. BSCALE/BZERO
/// applied; BLANK integer pixels become NaN. Non-finite values kept (NaN).
#[derive(Debug, Clone)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub bitpix: i32,
    pub pixels: Vec<f32>,
}

/// Why a cutout cannot be shown: one short line, shown next to the placeholder.
#[derive(Debug, Clone, PartialEq)]
pub struct CutoutError(pub String);

impl fmt::Display for CutoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CutoutError {}

/// Real cutouts are 63x63 (ZTF) to a few hundred pixels square (Rubin); the
/// cap only has to stop a header from making us allocate gigabytes.
pub const MAX_PIXELS: usize = 4_000_000;
/// A gzip bomb stops here: 4,000,000 float64 pixels plus headers fit.
pub const MAX_INFLATED_BYTES: usize = 64 << 20;

/// What the header of the chosen HDU says, read out of fitsrs so that all
/// of our own checks run outside the `catch_unwind` backstop.
struct Layout {
    bitpix: Bitpix,
    axes: Vec<u64>,
    data_offset: u64,
    bscale: f64,
    bzero: f64,
    blank: Option<i64>,
}

/// Decodes a cutout: gzip-compressed FITS (ZTF, magic 1f 8b) or plain FITS
/// (Rubin: multi-extension, the first HDU that is an image with NAXIS >= 2
/// and data; extra axes must be 1).
pub fn decode(bytes: &[u8]) -> Result<Image, CutoutError> {
    if bytes.is_empty() {
        return Err(error("empty"));
    }
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let inflated = inflate(bytes)?;
        if inflated.is_empty() {
            return Err(error("gzip: inflates to nothing"));
        }
        return decode_fits(&inflated);
    }
    decode_fits(bytes)
}

fn error(message: impl Into<String>) -> CutoutError {
    CutoutError(message.into())
}

/// Inflates at most MAX_INFLATED_BYTES (one byte more tells that there was more).
fn inflate(bytes: &[u8]) -> Result<Vec<u8>, CutoutError> {
    let limit = MAX_INFLATED_BYTES as u64 + 1;
    let mut reader = flate2::read::MultiGzDecoder::new(bytes).take(limit);
    // ZTF's stamps inflate about threefold; a small start avoids reallocating
    // for them without trusting anything the stream says about its size.
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(1 << 20));
    reader
        .read_to_end(&mut out)
        .map_err(|e| error(format!("gzip: {}", one_line(&e.to_string()))))?;
    if out.len() > MAX_INFLATED_BYTES {
        return Err(error(format!(
            "gzip: inflates to over {} MiB",
            MAX_INFLATED_BYTES >> 20
        )));
    }
    Ok(out)
}

fn decode_fits(bytes: &[u8]) -> Result<Image, CutoutError> {
    if !bytes.starts_with(b"SIMPLE") {
        return Err(error("not FITS (no SIMPLE card)"));
    }
    // fitsrs indexes and multiplies header values without checking them
    // (an overflowing NAXISn product panics in debug builds); the backstop
    // turns any such panic into an error for this one stamp.
    let layout = panic::catch_unwind(AssertUnwindSafe(|| find_image(bytes)))
        .map_err(|_| error("malformed FITS"))??;
    let (width, height, count) = checked_size(&layout.axes)?;
    let size = layout.bitpix.byte_size();
    let needed = count as u128 * size as u128;
    let start = usize::try_from(layout.data_offset).unwrap_or(usize::MAX);
    let present = bytes.len().saturating_sub(start);
    if (present as u128) < needed {
        return Err(error(format!(
            "truncated: {} of {} data bytes",
            grouped(present as u128),
            grouped(needed)
        )));
    }
    let data = &bytes[start..start + count * size];
    let pixels = convert(data, &layout);
    // Nothing to scale or see: say so rather than draw a blank square.
    if !pixels.iter().any(|v| v.is_finite()) {
        return Err(error("no pixel has a value (all NaN or BLANK)"));
    }
    Ok(Image {
        width,
        height,
        bitpix: layout.bitpix as i32,
        pixels,
    })
}

/// Walks the HDUs to the first image with two or more axes and some data.
fn find_image(bytes: &[u8]) -> Result<Layout, CutoutError> {
    let mut hdus = Fits::from_reader(Cursor::new(bytes));
    for hdu in &mut hdus {
        let hdu = match hdu {
            Ok(HDU::Primary(hdu)) | Ok(HDU::XImage(hdu)) => hdu,
            Ok(_) => continue,
            Err(e) => return Err(malformed(e)),
        };
        let header = hdu.get_header();
        let image = header.get_xtension();
        let axes = image.get_naxis();
        if axes.len() < 2 || axes.contains(&0) {
            continue;
        }
        let number = |key: &str| match header.get(key) {
            Some(Value::Integer { value, .. }) => Some(*value as f64),
            Some(Value::Float { value, .. }) => Some(*value),
            _ => None,
        };
        let blank = match header.get("BLANK") {
            Some(Value::Integer { value, .. }) => Some(*value),
            _ => None,
        };
        return Ok(Layout {
            bitpix: image.get_bitpix(),
            axes: axes.to_vec(),
            data_offset: hdu.get_data_unit_byte_offset(),
            bscale: number("BSCALE")
                .filter(|s| s.is_finite() && *s != 0.0)
                .unwrap_or(1.0),
            bzero: number("BZERO").filter(|z| z.is_finite()).unwrap_or(0.0),
            blank,
        });
    }
    Err(error("no 2-D image in the FITS file"))
}

fn malformed(e: fitsrs::error::Error) -> CutoutError {
    let why = match e {
        // fitsrs reads cards until END: running out of bytes first is the
        // usual way a header is broken (cut short, or not FITS after all).
        fitsrs::error::Error::Io(std::io::ErrorKind::UnexpectedEof) => {
            "the header ends without an END card".to_string()
        }
        // fitsrs' words for a header whose 2880-byte block is cut short.
        fitsrs::error::Error::StaticError("EOF reached") => {
            "the header's 2880-byte block is cut short".to_string()
        }
        fitsrs::error::Error::Io(kind) => kind.to_string(),
        other => one_line(&other.to_string()),
    };
    error(format!("malformed FITS: {why}"))
}

/// Width, height and pixel count, refusing cubes and anything over the cap
/// before a byte is allocated for the pixels.
fn checked_size(axes: &[u64]) -> Result<(usize, usize, usize), CutoutError> {
    if let Some((i, n)) = axes.iter().enumerate().skip(2).find(|(_, &n)| n != 1) {
        return Err(error(format!(
            "NAXIS{} = {}: not a 2-D image",
            i + 1,
            grouped(*n as u128)
        )));
    }
    let (width, height) = (axes[0], axes[1]);
    let count = width as u128 * height as u128;
    if count > MAX_PIXELS as u128 {
        // The axes as the header writes them, so the reason can be matched to it.
        return Err(error(format!(
            "{width} x {height} pixels is over the {}-pixel cap",
            grouped(MAX_PIXELS as u128)
        )));
    }
    // Both fit: their product is at most MAX_PIXELS.
    Ok((width as usize, height as usize, count as usize))
}

/// Big-endian FITS values to f32, scaled, BLANK as NaN.
fn convert(data: &[u8], layout: &Layout) -> Vec<f32> {
    let (scale, zero) = (layout.bscale, layout.bzero);
    let plain = scale == 1.0 && zero == 0.0;
    let blank = layout.blank;
    let int = |raw: i64| -> f32 {
        if Some(raw) == blank {
            f32::NAN
        } else {
            (raw as f64 * scale + zero) as f32
        }
    };
    let float = |raw: f64| -> f32 {
        if plain {
            raw as f32
        } else {
            (raw * scale + zero) as f32
        }
    };
    match layout.bitpix {
        Bitpix::U8 => data.iter().map(|&b| int(b as i64)).collect(),
        Bitpix::I16 => from_be(data, |b: [u8; 2]| int(i16::from_be_bytes(b) as i64)),
        Bitpix::I32 => from_be(data, |b: [u8; 4]| int(i32::from_be_bytes(b) as i64)),
        Bitpix::I64 => from_be(data, |b: [u8; 8]| int(i64::from_be_bytes(b))),
        Bitpix::F32 => from_be(data, |b: [u8; 4]| float(f32::from_be_bytes(b) as f64)),
        Bitpix::F64 => from_be(data, |b: [u8; 8]| float(f64::from_be_bytes(b))),
    }
}

/// One pass over exact N-byte chunks into a vector sized from the slice we
/// hold, not from anything the header claimed.
fn from_be<const N: usize>(data: &[u8], value: impl Fn([u8; N]) -> f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(data.len() / N);
    for chunk in data.chunks_exact(N) {
        let mut bytes = [0u8; N];
        bytes.copy_from_slice(chunk);
        out.push(value(bytes));
    }
    out
}

/// 40000000000 -> "40,000,000,000": error lines are read by people.
fn grouped(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Parser messages can quote whole header cards; the page wants one short line.
fn one_line(message: &str) -> String {
    let clean: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let trimmed = clean.trim();
    match trimmed.char_indices().nth(120) {
        Some((cut, _)) => format!("{}...", &trimmed[..cut]),
        None => trimmed.to_string(),
    }
}

// ------------------------------------------------------------------ zscale

const N_SAMPLES: usize = 1000;
const CONTRAST: f64 = 0.25;
const MAX_REJECT: f64 = 0.5;
const MIN_NPIXELS: usize = 5;
const KREJ: f64 = 2.5;
const MAX_ITERATIONS: usize = 5;

/// zscale limits, the IRAF algorithm exactly as astropy's
/// `ZScaleInterval()` with its defaults, so that a stamp looks here as it
/// does in a notebook. None when there is no finite pixel; (v, v) when all
/// sampled values are v.
pub fn zscale(pixels: &[f32]) -> Option<(f64, f64)> {
    let finite = pixels.iter().filter(|v| v.is_finite()).count();
    if finite == 0 {
        return None;
    }
    // astropy: int(max(1.0, size / n_samples)), then values[::stride][:n_samples].
    let stride = (finite / N_SAMPLES).max(1);
    let mut samples: Vec<f64> = pixels
        .iter()
        .filter(|v| v.is_finite())
        .step_by(stride)
        .take(N_SAMPLES)
        .map(|&v| v as f64)
        .collect();
    samples.sort_unstable_by(f64::total_cmp);
    let npix = samples.len();
    let (vmin, vmax) = (samples[0], samples[npix - 1]);
    if vmin == vmax {
        return Some((vmin, vmax));
    }
    let minpix = MIN_NPIXELS.max((npix as f64 * MAX_REJECT) as usize);
    let Some(slope) = rejected_fit_slope(&samples, minpix) else {
        return Some((vmin, vmax));
    };
    let slope = slope / CONTRAST;
    let center = ((npix - 1) / 2) as f64;
    let median = median_of_sorted(&samples);
    let lo = vmin.max(median - (center - 1.0) * slope);
    let hi = vmax.min(median + (npix as f64 - center) * slope);
    Some((lo, hi))
}

/// The iterative k-sigma line fit over the sorted samples; the slope of the
/// last fit when enough pixels survive, None when astropy falls back to the
/// samples' min and max.
fn rejected_fit_slope(samples: &[f64], minpix: usize) -> Option<f64> {
    let npix = samples.len();
    let ngrow = ((npix as f64 * 0.01) as usize).max(1);
    let mut badpix = vec![false; npix];
    let mut grown = vec![false; npix];
    let mut ngoodpix = npix;
    let mut last_ngoodpix = npix + 1;
    let mut slope = None;
    for _ in 0..MAX_ITERATIONS {
        if ngoodpix >= last_ngoodpix || ngoodpix < minpix {
            break;
        }
        let (m, c) = line_fit(samples, &badpix);
        slope = Some(m);
        let threshold = KREJ * residual_std(samples, &badpix, m, c);
        for (i, (&y, bad)) in samples.iter().zip(badpix.iter_mut()).enumerate() {
            let flat = y - (m * i as f64 + c);
            if flat < -threshold || flat > threshold {
                *bad = true;
            }
        }
        dilate_same(&badpix, ngrow, &mut grown);
        std::mem::swap(&mut badpix, &mut grown);
        last_ngoodpix = ngoodpix;
        ngoodpix = badpix.iter().filter(|&&b| !b).count();
    }
    if ngoodpix >= minpix {
        slope
    } else {
        None
    }
}

/// Least-squares line through the good samples against their index, as
/// np.polyfit(x, y, 1, w=0/1 weights): (slope, intercept). Centred sums keep
/// it exact for a flat run of samples.
fn line_fit(samples: &[f64], badpix: &[bool]) -> (f64, f64) {
    let good = || {
        samples
            .iter()
            .zip(badpix)
            .enumerate()
            .filter(|(_, (_, &bad))| !bad)
            .map(|(i, (&y, _))| (i as f64, y))
    };
    let (mut n, mut sx, mut sy) = (0.0, 0.0, 0.0);
    for (x, y) in good() {
        n += 1.0;
        sx += x;
        sy += y;
    }
    let (xbar, ybar) = (sx / n, sy / n);
    let (mut sxx, mut sxy) = (0.0, 0.0);
    for (x, y) in good() {
        sxx += (x - xbar) * (x - xbar);
        sxy += (x - xbar) * (y - ybar);
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (slope, ybar - slope * xbar)
}

/// Population standard deviation (numpy's default ddof=0) of the good
/// samples' residuals from the line.
fn residual_std(samples: &[f64], badpix: &[bool], m: f64, c: f64) -> f64 {
    let residuals = || {
        samples
            .iter()
            .zip(badpix)
            .enumerate()
            .filter(|(_, (_, &bad))| !bad)
            .map(|(i, (&y, _))| y - (m * i as f64 + c))
    };
    let (mut n, mut sum) = (0.0, 0.0);
    for r in residuals() {
        n += 1.0;
        sum += r;
    }
    if n == 0.0 {
        return 0.0;
    }
    let mean = sum / n;
    let var = residuals().map(|r| (r - mean) * (r - mean)).sum::<f64>() / n;
    var.sqrt()
}

/// np.convolve(mask, ones(ngrow), mode="same") for a boolean mask: the full
/// convolution, cut to the input's length starting at (ngrow - 1) / 2, so
/// output i is set when any input in [i + off - ngrow + 1, i + off] is. For
/// even ngrow this leans one pixel towards lower indices, as numpy does.
fn dilate_same(mask: &[bool], ngrow: usize, out: &mut [bool]) {
    let n = mask.len();
    let off = (ngrow - 1) / 2;
    // Running count of set inputs in the window, moved one step per output.
    let mut count = mask[..off.min(n)].iter().filter(|&&b| b).count();
    for (i, o) in out.iter_mut().enumerate() {
        let enter = i + off;
        if enter < n && mask[enter] {
            count += 1;
        }
        if let Some(leave) = (enter + 1).checked_sub(ngrow + 1) {
            if mask[leave] {
                count -= 1;
            }
        }
        *o = count > 0;
    }
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

// ------------------------------------------------------------------ PNG

/// Non-finite pixels: a dull green, which neither the grey scale nor the
/// blue-white-red difference map contains.
pub const NAN_RGB: [u8; 3] = [60, 150, 60];

/// ColorBrewer RdBu (5 classes), blue for negative to red for positive, so
/// a fading source (negative difference) and a brightening one look different.
const DIVERGING: [[f64; 3]; 5] = [
    [5.0, 113.0, 176.0],
    [146.0, 197.0, 222.0],
    [247.0, 247.0, 247.0],
    [244.0, 165.0, 130.0],
    [202.0, 0.0, 32.0],
];

/// A PNG of the image at its own size (the page enlarges it with
/// nearest-neighbour CSS), rows flipped so FITS row 0 is at the bottom.
/// Always 8-bit RGB: grey as r=g=b for Science and Template (linear between
/// the zscale limits, clipped), the diverging map for Difference, and
/// [`NAN_RGB`] (dull green) for non-finite pixels. An Image whose fields
/// disagree (pixels.len() != width * height, or no pixels) gets the placeholder.
pub fn render_png(image: &Image, stamp: Stamp) -> Vec<u8> {
    let (w, h) = (image.width, image.height);
    let consistent = w.checked_mul(h) == Some(image.pixels.len());
    let (Ok(w32), Ok(h32)) = (u32::try_from(w), u32::try_from(h)) else {
        return placeholder_png();
    };
    if !consistent || image.pixels.is_empty() {
        return placeholder_png();
    }
    let colour = colour_map(&image.pixels, stamp);
    let mut rgb = Vec::with_capacity(w * h * 3);
    for row in image.pixels.chunks_exact(w).rev() {
        for &v in row {
            rgb.extend_from_slice(&colour(v));
        }
    }
    encode_rgb(w32, h32, &rgb).unwrap_or_else(|_| placeholder_png())
}

/// The pixel-to-colour function for a stamp, with its limits worked out once.
fn colour_map(pixels: &[f32], stamp: Stamp) -> impl Fn(f32) -> [u8; 3] {
    let limits = zscale(pixels);
    let (lo, hi) = match limits {
        Some((lo, hi)) if hi > lo => (lo, hi),
        // zscale saw one value: the full finite range still shows the rest.
        Some(_) => finite_range(pixels).unwrap_or((0.0, 0.0)),
        None => (0.0, 0.0),
    };
    let difference = stamp == Stamp::Difference;
    let (base, span) = if difference {
        (0.0, lo.abs().max(hi.abs()))
    } else {
        (lo, hi - lo)
    };
    let lut = if difference {
        diverging_lut()
    } else {
        grey_lut()
    };
    move |v: f32| {
        if !v.is_finite() {
            return NAN_RGB;
        }
        // The LUTs span 0..=255: grey over [lo, hi], the diverging map over [-L, L].
        let t = match (span > 0.0, difference) {
            (false, _) => 0.5,
            (true, false) => (v as f64 - base) / span,
            (true, true) => (v as f64 / span + 1.0) / 2.0,
        };
        lut[(t.clamp(0.0, 1.0) * 255.0).round() as usize]
    }
}

fn finite_range(pixels: &[f32]) -> Option<(f64, f64)> {
    let mut finite = pixels.iter().filter(|v| v.is_finite()).map(|&v| v as f64);
    let first = finite.next()?;
    Some(finite.fold((first, first), |(lo, hi), v| (lo.min(v), hi.max(v))))
}

fn grey_lut() -> [[u8; 3]; 256] {
    std::array::from_fn(|i| [i as u8; 3])
}

fn diverging_lut() -> [[u8; 3]; 256] {
    std::array::from_fn(|i| {
        let x = i as f64 / 255.0 * (DIVERGING.len() - 1) as f64;
        let k = (x.floor() as usize).min(DIVERGING.len() - 2);
        let f = x - k as f64;
        let (a, b) = (DIVERGING[k], DIVERGING[k + 1]);
        std::array::from_fn(|c| (a[c] + (b[c] - a[c]) * f).round() as u8)
    })
}

fn encode_rgb(width: u32, height: u32, rgb: &[u8]) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::with_capacity(rgb.len() / 2 + 64);
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    // Stamps are small and served live: speed matters more than bytes.
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(rgb)?;
    writer.finish()?;
    Ok(out)
}

/// A 63x63 grey hatch (ZTF's stamp size) for a cutout that cannot be shown;
/// the page puts the CutoutError text next to it.
pub fn placeholder_png() -> Vec<u8> {
    const SIZE: u32 = 63;
    let mut rgb = Vec::with_capacity((SIZE * SIZE * 3) as usize);
    for y in 0..SIZE {
        for x in 0..SIZE {
            let line = (x + y) % 8 < 2 || (x + SIZE - 1 - y) % 8 < 2;
            rgb.extend_from_slice(&[if line { 150 } else { 205 }; 3]);
        }
    }
    // Encoding a fixed, well-formed 63x63 RGB buffer into memory cannot fail;
    // an empty body is the least harmful answer if it ever did.
    encode_rgb(SIZE, SIZE, &rgb).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// One 80-byte header card: `KEY     = value` (value right-aligned to
    /// column 30 as the standard's fixed format has it).
    fn card(key: &str, value: &str) -> String {
        let text = if key == "END" {
            "END".to_string()
        } else {
            format!("{key:<8}= {value:>20}")
        };
        format!("{text:<80}")
    }

    fn pad(mut bytes: Vec<u8>, fill: u8) -> Vec<u8> {
        let rem = bytes.len() % 2880;
        if rem != 0 {
            bytes.resize(bytes.len() + 2880 - rem, fill);
        }
        bytes
    }

    /// A header of the given cards (END appended), padded to 2880 bytes.
    fn header(cards: &[(&str, &str)]) -> Vec<u8> {
        let mut text: String = cards.iter().map(|(k, v)| card(k, v)).collect();
        text.push_str(&card("END", ""));
        pad(text.into_bytes(), b' ')
    }

    /// A single-HDU FITS file: BITPIX, a width x height image, extra cards,
    /// and big-endian data padded to 2880 bytes.
    fn fits(
        bitpix: i32,
        width: usize,
        height: usize,
        extra: &[(&str, &str)],
        data: &[u8],
    ) -> Vec<u8> {
        let (b, w, h) = (bitpix.to_string(), width.to_string(), height.to_string());
        let mut cards = vec![
            ("SIMPLE", "T"),
            ("BITPIX", b.as_str()),
            ("NAXIS", "2"),
            ("NAXIS1", w.as_str()),
            ("NAXIS2", h.as_str()),
        ];
        cards.extend_from_slice(extra);
        let mut bytes = header(&cards);
        bytes.extend(pad(data.to_vec(), 0));
        bytes
    }

    fn f32_data(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn refused(bytes: &[u8]) -> String {
        match decode(bytes) {
            Ok(image) => panic!(
                "decoded {}x{}, expected an error",
                image.width, image.height
            ),
            Err(CutoutError(message)) => message,
        }
    }

    fn same(a: &[f32], b: &[f32]) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
    }

    #[test]
    fn every_bitpix_round_trips() {
        let cases: [(i32, Vec<u8>, [f32; 4]); 6] = [
            (8, vec![0, 1, 200, 255], [0.0, 1.0, 200.0, 255.0]),
            (
                16,
                [-32768i16, -1, 0, 32767]
                    .iter()
                    .flat_map(|v| v.to_be_bytes())
                    .collect(),
                [-32768.0, -1.0, 0.0, 32767.0],
            ),
            (
                32,
                [i32::MIN, -5, 7, 1_000_000]
                    .iter()
                    .flat_map(|v| v.to_be_bytes())
                    .collect(),
                [i32::MIN as f32, -5.0, 7.0, 1_000_000.0],
            ),
            (
                64,
                [-(1i64 << 40), -1, 0, 1 << 40]
                    .iter()
                    .flat_map(|v| v.to_be_bytes())
                    .collect(),
                [-(2f32.powi(40)), -1.0, 0.0, 2f32.powi(40)],
            ),
            (
                -32,
                f32_data(&[-1.5, 0.0, 3.25, f32::NAN]),
                [-1.5, 0.0, 3.25, f32::NAN],
            ),
            (
                -64,
                [-1e10f64, 0.5, 2.0, f64::INFINITY]
                    .iter()
                    .flat_map(|v| v.to_be_bytes())
                    .collect(),
                [-1e10, 0.5, 2.0, f32::INFINITY],
            ),
        ];
        for (bitpix, data, expected) in cases {
            let image = decode(&fits(bitpix, 2, 2, &[], &data))
                .unwrap_or_else(|e| panic!("BITPIX {bitpix}: {e}"));
            assert_eq!((image.width, image.height, image.bitpix), (2, 2, bitpix));
            assert!(
                same(&image.pixels, &expected),
                "BITPIX {bitpix}: {:?}",
                image.pixels
            );
        }
    }

    #[test]
    fn bscale_bzero_and_blank_are_applied() {
        let raw: Vec<u8> = [-32768i16, 1, 7, -99]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect();
        let extra = [("BSCALE", "2.0"), ("BZERO", "32768"), ("BLANK", "-99")];
        let image = decode(&fits(16, 2, 2, &extra, &raw)).unwrap();
        assert!(
            same(&image.pixels, &[-32768.0, 32770.0, 32782.0, f32::NAN]),
            "{:?}",
            image.pixels
        );
        let floats = decode(&fits(
            -32,
            2,
            1,
            &[("BZERO", "-1.5")],
            &f32_data(&[1.0, 2.0]),
        ))
        .unwrap();
        assert_eq!(floats.pixels, [-0.5, 0.5]);
    }

    #[test]
    fn an_image_without_a_value_is_refused_with_the_reason() {
        let nan = fits(-32, 2, 2, &[], &f32_data(&[f32::NAN; 4]));
        assert_eq!(refused(&nan), "no pixel has a value (all NaN or BLANK)");
        let raw: Vec<u8> = [-99i16; 4].iter().flat_map(|v| v.to_be_bytes()).collect();
        let blank = fits(16, 2, 2, &[("BLANK", "-99")], &raw);
        assert_eq!(refused(&blank), "no pixel has a value (all NaN or BLANK)");
        // One value is enough to draw.
        let one = fits(-32, 2, 1, &[], &f32_data(&[f32::NAN, 1.0]));
        assert_eq!(decode(&one).unwrap().pixels[1], 1.0);
    }

    #[test]
    fn gzip_fits_decodes_like_plain_and_ztf_simple_card_is_accepted() {
        let data = f32_data(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        let plain = fits(-32, 3, 2, &[], &data);
        let image = decode(&gzip(&plain)).unwrap();
        assert_eq!((image.width, image.height), (3, 2));
        assert_eq!(image.pixels, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // ZTF writes its first card non-standard, the value not in column 30.
        let mut ztf = plain.clone();
        ztf[..80].copy_from_slice(format!("{:<80}", "SIMPLE  =  T").as_bytes());
        assert_eq!(decode(&gzip(&ztf)).unwrap().pixels, image.pixels);
    }

    #[test]
    fn the_first_2d_image_hdu_of_a_multi_extension_file_is_used() {
        let mut bytes = header(&[
            ("SIMPLE", "T"),
            ("BITPIX", "8"),
            ("NAXIS", "0"),
            ("EXTEND", "T"),
        ]);
        bytes.extend(header(&[
            ("XTENSION", "'IMAGE   '"),
            ("BITPIX", "-32"),
            ("NAXIS", "3"),
            ("NAXIS1", "2"),
            ("NAXIS2", "1"),
            ("NAXIS3", "1"),
            ("PCOUNT", "0"),
            ("GCOUNT", "1"),
        ]));
        bytes.extend(pad(f32_data(&[7.0, -7.0]), 0));
        let image = decode(&bytes).unwrap();
        assert_eq!(
            (image.width, image.height, image.pixels.clone()),
            (2, 1, vec![7.0, -7.0])
        );
        let cube = header(&[
            ("SIMPLE", "T"),
            ("BITPIX", "8"),
            ("NAXIS", "3"),
            ("NAXIS1", "2"),
            ("NAXIS2", "2"),
            ("NAXIS3", "2"),
        ]);
        let cube = [cube, pad(vec![0; 8], 0)].concat();
        assert_eq!(refused(&cube), "NAXIS3 = 2: not a 2-D image");
    }

    #[test]
    fn a_huge_header_in_a_small_file_is_refused_before_allocating() {
        // 100,000 x 100,000 float32 would be 40 GB: allocating it, or collecting
        // from a size hint, would abort this test process instead of failing it.
        let bytes = fits(-32, 100_000, 100_000, &[], &[]);
        assert_eq!(bytes.len(), 2880, "a header and no data");
        assert_eq!(
            refused(&bytes),
            "100000 x 100000 pixels is over the 4,000,000-pixel cap"
        );
        // Axes whose product overflows u64 (fitsrs multiplies them unchecked,
        // a panic in debug builds that the backstop catches): an error, never a crash.
        assert!(decode(&fits(-64, 1 << 40, 1 << 40, &[], &[])).is_err());
        // At the cap, the pixels are checked against the bytes present.
        assert_eq!(
            refused(&fits(-32, 2000, 2000, &[], &[])),
            "truncated: 0 of 16,000,000 data bytes"
        );
    }

    #[test]
    fn truncated_data_is_refused() {
        let mut bytes = fits(-32, 10, 10, &[], &f32_data(&[1.0; 100]));
        bytes.truncate(2880 + 100);
        assert_eq!(refused(&bytes), "truncated: 100 of 400 data bytes");
        // A header cut before its END card (5 cards of 6), and one cut in
        // the blank padding after END.
        let header = fits(-32, 10, 10, &[], &[]);
        assert_eq!(
            refused(&header[..400]),
            "malformed FITS: the header ends without an END card"
        );
        assert_eq!(
            refused(&header[..800]),
            "malformed FITS: the header's 2880-byte block is cut short"
        );
    }

    #[test]
    fn garbage_and_empty_input_are_refused() {
        assert_eq!(refused(b""), "empty");
        assert_eq!(
            refused(b"<html>not a cutout</html>"),
            "not FITS (no SIMPLE card)"
        );
        assert!(refused(&[0x1f, 0x8b, 1, 2, 3, 4, 5, 6, 7, 8]).starts_with("gzip: "));
        assert!(refused(&[0x1f, 0x8b, 8, 0, 0, 0]).starts_with("gzip: "));
        assert!(refused(&gzip(b"")).starts_with("gzip: "));
        assert!(
            refused(&[b"SIMPLE".as_slice(), &[0xff; 3000]].concat()).starts_with("malformed FITS")
        );
        // No 2-D image anywhere.
        let empty = header(&[("SIMPLE", "T"), ("BITPIX", "8"), ("NAXIS", "0")]);
        assert_eq!(refused(&empty), "no 2-D image in the FITS file");
    }

    #[test]
    fn a_gzip_bomb_stops_at_the_inflate_cap() {
        let bomb = gzip(&vec![b' '; MAX_INFLATED_BYTES + 1]);
        assert!(bomb.len() < 1 << 20);
        assert_eq!(refused(&bomb), "gzip: inflates to over 64 MiB");
    }

    #[test]
    fn damaged_files_give_errors_not_panics() {
        let mut valid = header(&[
            ("SIMPLE", "T"),
            ("BITPIX", "16"),
            ("NAXIS", "0"),
            ("EXTEND", "T"),
        ]);
        valid.extend(header(&[
            ("XTENSION", "'IMAGE   '"),
            ("BITPIX", "16"),
            ("NAXIS", "2"),
            ("NAXIS1", "3"),
            ("NAXIS2", "3"),
            ("BZERO", "32768"),
        ]));
        valid.extend(pad(vec![1; 18], 0));
        assert!(decode(&valid).is_ok());
        // Deterministic xorshift: flip header bytes to digits, quotes and
        // junk, and cut the file anywhere.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b"0123456789-+.' =/&TFEX\x00\xff";
        for round in 0..3000 {
            let mut bytes = valid.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % (2 * 2880) as u64) as usize;
                bytes[at] = alphabet[(next() % alphabet.len() as u64) as usize];
            }
            if round % 3 == 0 {
                bytes.truncate((next() % bytes.len() as u64) as usize);
            }
            let _ = decode(&bytes);
            let _ = decode(&gzip(&bytes));
        }
    }

    fn png_rgb(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
        let decoder = png::Decoder::new(Cursor::new(bytes));
        let mut reader = decoder.read_info().expect("a PNG");
        let mut buf = vec![0; reader.output_buffer_size().expect("a size")];
        let info = reader.next_frame(&mut buf).expect("a frame");
        assert_eq!(info.color_type, png::ColorType::Rgb);
        buf.truncate(info.buffer_size());
        (info.width, info.height, buf)
    }

    fn image(width: usize, height: usize, pixels: Vec<f32>) -> Image {
        Image {
            width,
            height,
            bitpix: -32,
            pixels,
        }
    }

    #[test]
    fn nan_and_constant_images_render() {
        for stamp in [Stamp::Science, Stamp::Difference] {
            let (w, h, rgb) = png_rgb(&render_png(&image(3, 2, vec![f32::NAN; 6]), stamp));
            assert_eq!((w, h), (3, 2));
            assert!(rgb.chunks(3).all(|p| p == NAN_RGB), "{stamp:?}: {rgb:?}");
            let (w, h, rgb) = png_rgb(&render_png(&image(4, 5, vec![7.5; 20]), stamp));
            assert_eq!((w, h), (4, 5));
            assert!(
                rgb.chunks(3).all(|p| p == &rgb[..3]),
                "{stamp:?}: one colour: {rgb:?}"
            );
        }
        // Constant science: mid grey; constant positive difference: all positive (red).
        let grey = png_rgb(&render_png(&image(2, 1, vec![7.5; 2]), Stamp::Science)).2;
        assert_eq!(&grey[..3], &[128, 128, 128]);
        let red = png_rgb(&render_png(&image(2, 1, vec![7.5; 2]), Stamp::Difference)).2;
        assert!(red[0] > red[2] + 100, "{red:?}");
        let zero = png_rgb(&render_png(&image(2, 2, vec![0.0; 4]), Stamp::Difference)).2;
        assert!(
            zero.iter().all(|&c| c > 230),
            "zero difference is white-ish: {zero:?}"
        );
        // Inconsistent fields: the placeholder, not a panic.
        let (w, h, _) = png_rgb(&render_png(&image(10, 10, vec![1.0; 3]), Stamp::Template));
        assert_eq!((w, h), (63, 63));
    }

    #[test]
    fn fits_row_zero_is_the_png_bottom_row() {
        // Row 0 bright, row 1 dark: the PNG's last row must be the bright one.
        let (w, h, rgb) = png_rgb(&render_png(
            &image(2, 2, vec![10.0, 10.0, 0.0, 0.0]),
            Stamp::Science,
        ));
        assert_eq!((w, h), (2, 2));
        assert_eq!(&rgb[..6], &[0; 6], "top row");
        assert_eq!(&rgb[6..], &[255; 6], "bottom row");
    }

    #[test]
    fn difference_map_is_blue_for_negative_red_for_positive() {
        let (_, _, rgb) = png_rgb(&render_png(
            &image(4, 1, vec![-10.0, 0.0, 10.0, f32::NAN]),
            Stamp::Difference,
        ));
        let (neg, zero, pos, nan) = (&rgb[0..3], &rgb[3..6], &rgb[6..9], &rgb[9..12]);
        assert!(neg[2] > neg[0] + 100, "negative is blue: {neg:?}");
        assert!(pos[0] > pos[2] + 100, "positive is red: {pos:?}");
        assert!(zero.iter().all(|&c| c > 230), "zero is white-ish: {zero:?}");
        assert_eq!(nan, NAN_RGB);
        // Science is grey: r = g = b.
        let (_, _, grey) = png_rgb(&render_png(
            &image(3, 1, vec![-10.0, 0.0, 10.0]),
            Stamp::Science,
        ));
        assert!(grey.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
        assert_eq!((grey[0], grey[6]), (0, 255));
    }

    #[test]
    fn placeholder_is_a_63_pixel_square() {
        let (w, h, rgb) = png_rgb(&placeholder_png());
        assert_eq!((w, h), (63, 63));
        assert!(
            rgb.iter().any(|&c| c != rgb[0]),
            "a pattern, not a flat square"
        );
    }

    #[test]
    fn stamp_names_round_trip() {
        for stamp in [Stamp::Science, Stamp::Template, Stamp::Difference] {
            assert_eq!(Stamp::parse(stamp.name()), Some(stamp));
        }
        assert_eq!(Stamp::parse("Science"), None);
        assert_eq!(Stamp::parse(""), None);
    }

    /// Reference values computed by astropy 8.0.2 (numpy 2.4) with
    /// `ZScaleInterval().get_limits(v)` on float32 arrays built by the same
    /// formulas in Python; not derived from this implementation.
    #[test]
    fn zscale_matches_astropy_reference_values() {
        // a: 2500 values (stride 2, 1000 samples, ngrow 10: even), outliers and NaN.
        let a: Vec<f32> = (0..2500u32)
            .map(|i| {
                if i % 250 == 7 {
                    f32::NAN
                } else {
                    ((i * 37) % 101) as f32 + if i % 97 == 0 { 500.0 } else { 0.0 }
                }
            })
            .collect();
        // b: a 63x63 ramp with bright and dark outliers.
        let b: Vec<f32> = (0..63 * 63u64)
            .map(|i| {
                let v = 100.0
                    + ((i * 7919) % 1009) as f64 / 50.0
                    + if i % 311 == 5 { 3000.0 } else { 0.0 }
                    - if i % 211 == 3 { 2000.0 } else { 0.0 };
                v as f32
            })
            .collect();
        // c: too few pixels survive rejection: astropy falls back to min and max.
        let c = [
            1.0f32, 2.0, 3.0, 4.0, 100.0, 5.0, 6.0, 7.0, 8.0, 9.0, -50.0, 10.0,
        ];
        let cases: [(&[f32], f64, f64); 3] = [
            (&a, 0.0, 255.36616822912367),
            (&b, 69.40584437604608, 150.85874795166671),
            (&c, -50.0, 100.0),
        ];
        for (i, (pixels, lo, hi)) in cases.into_iter().enumerate() {
            let (ours_lo, ours_hi) = zscale(pixels).unwrap();
            let tol = 1e-6 * (hi - lo);
            assert!(
                (ours_lo - lo).abs() <= tol && (ours_hi - hi).abs() <= tol,
                "case {i}: ({ours_lo}, {ours_hi}) vs astropy ({lo}, {hi})"
            );
        }
    }

    #[test]
    fn zscale_edge_cases() {
        assert_eq!(zscale(&[]), None);
        assert_eq!(zscale(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY]), None);
        assert_eq!(
            zscale(&[f32::NAN, 3.0, 3.0, 3.0, f32::NAN]),
            Some((3.0, 3.0))
        );
        assert_eq!(zscale(&[4.25; 5000]), Some((4.25, 4.25)));
        assert_eq!(zscale(&[2.0, f32::NAN, -1.0]), Some((-1.0, 2.0)));
    }

    #[test]
    fn dilation_matches_numpy_convolve_same() {
        // np.convolve(a, np.ones(m, bool), mode="same") for a = 10 zeros with
        // a[3] set, m = 1..5 (numpy 2.4's output).
        let numpy: [[u8; 10]; 5] = [
            [0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 1, 0, 0, 0, 0, 0],
            [0, 0, 1, 1, 1, 1, 0, 0, 0, 0],
            [0, 1, 1, 1, 1, 1, 0, 0, 0, 0],
        ];
        let mut mask = [false; 10];
        mask[3] = true;
        for (m, expected) in numpy.iter().enumerate() {
            let mut out = [false; 10];
            dilate_same(&mask, m + 1, &mut out);
            let got: Vec<u8> = out.iter().map(|&b| b as u8).collect();
            assert_eq!(got, expected, "ngrow {}", m + 1);
        }
        // And against the definition, at the edges and for wider kernels.
        let mask: Vec<bool> = (0..23).map(|i| i % 7 == 0 || i == 22).collect();
        for ngrow in 1..=12 {
            let off = (ngrow - 1) / 2;
            let mut out = vec![false; mask.len()];
            dilate_same(&mask, ngrow, &mut out);
            for (i, &o) in out.iter().enumerate() {
                let want = (0..ngrow).any(|j| {
                    (i + off)
                        .checked_sub(j)
                        .is_some_and(|k| k < mask.len() && mask[k])
                });
                assert_eq!(o, want, "ngrow {ngrow}, i {i}");
            }
        }
    }
}
