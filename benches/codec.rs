//! Codec speed per core: encoding and decoding the real ZTF fixture packets
//! (`tests/data/ztf/`) and the built-in samples. `scripts/bench` reads
//! criterion's estimates to put them beside fastavro's on the same alerts.
//!
//!     cargo bench --bench codec

use std::hint::black_box;
use std::path::Path;

use apache_avro::types::Value;
use apache_avro::{Reader, Schema};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

use alertstream::avro::codec::{self, Decoder, Encoder};

/// (name, writer schema, alert) for every fixture and sample.
fn corpus() -> Vec<(String, Schema, Value)> {
    let mut files: Vec<_> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ztf"))
            .expect("ZTF fixtures in tests/data/ztf")
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "avro"))
            .collect();
    files.sort();
    let mut corpus = Vec::new();
    for file in files {
        let reader = Reader::new(std::fs::File::open(&file).unwrap()).unwrap();
        let schema = reader.writer_schema().clone();
        for value in reader {
            let name = file.file_stem().unwrap().to_string_lossy().into_owned();
            corpus.push((name, schema.clone(), value.unwrap()));
        }
    }
    corpus
}

fn bench(c: &mut Criterion) {
    let corpus = corpus();
    let encoded: Vec<Vec<u8>> = corpus
        .iter()
        .map(|(_, s, v)| codec::encode(s, v).unwrap())
        .collect();
    let bytes: u64 = encoded.iter().map(|e| e.len() as u64).sum();
    let encoders: Vec<Encoder> = corpus
        .iter()
        .map(|(_, s, _)| Encoder::new(s).unwrap())
        .collect();
    let decoders: Vec<Decoder> = corpus
        .iter()
        .map(|(_, s, _)| Decoder::new(s.clone(), false))
        .collect();

    let mut group = c.benchmark_group("ztf-fixtures");
    group.throughput(Throughput::Elements(corpus.len() as u64));
    group.bench_function("encode", |b| {
        b.iter(|| {
            for (encoder, (_, _, value)) in encoders.iter().zip(&corpus) {
                black_box(encoder.encode(value).unwrap());
            }
        })
    });
    group.bench_function("decode", |b| {
        b.iter(|| {
            for (decoder, payload) in decoders.iter().zip(&encoded) {
                black_box(decoder.decode(payload).unwrap());
            }
        })
    });
    let mut out = Vec::with_capacity(1 << 20);
    group.bench_function("decode-to-json", |b| {
        b.iter(|| {
            for (decoder, payload) in decoders.iter().zip(&encoded) {
                out.clear();
                decoder.decode_json(payload, &mut out).unwrap();
                black_box(&out);
            }
        })
    });
    group.finish();
    eprintln!("{} fixture alerts, {} bytes encoded", corpus.len(), bytes);
}

/// A plain FITS image of `side` x `side` float32 pixels (BITPIX -32).
fn plain_fits(side: usize) -> Vec<u8> {
    let cards = [
        "SIMPLE  =                    T".to_string(),
        "BITPIX  =                  -32".to_string(),
        "NAXIS   =                    2".to_string(),
        format!("NAXIS1  = {side:>20}"),
        format!("NAXIS2  = {side:>20}"),
        "END".to_string(),
    ];
    let mut fits: Vec<u8> = cards
        .iter()
        .flat_map(|c| format!("{c:<80}").into_bytes())
        .collect();
    fits.resize(2880, b' ');
    for i in 0..side * side {
        // A sky of noise with a source in the middle.
        let (x, y) = (
            (i % side) as f32 - side as f32 / 2.0,
            (i / side) as f32 - side as f32 / 2.0,
        );
        let value = 100.0 + ((i * 7919) % 97) as f32 + 5000.0 * (-(x * x + y * y) / 20.0).exp();
        fits.extend_from_slice(&value.to_be_bytes());
    }
    fits.resize(fits.len().div_ceil(2880) * 2880, 0);
    fits
}

/// `view`'s cutout path per stamp: decode, zscale, PNG. `scripts/bench
/// --only view` reads the medians.
fn cutouts(c: &mut Criterion) {
    use alertstream::page::cutout::{decode, render_png, Stamp};
    let ztf = corpus()
        .into_iter()
        .find_map(|(_, _, alert)| {
            alertstream::alerts::stamps::cutouts(&alert)
                .into_iter()
                .find(|c| c.field == "cutoutScience")
                .map(|c| c.data.to_vec())
        })
        .expect("a ZTF science cutout");
    let mut group = c.benchmark_group("cutouts");
    for (name, bytes) in [
        ("ztf-63x63-gzip", ztf),
        ("plain-300x300-f32", plain_fits(300)),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let image = decode(black_box(&bytes)).unwrap();
                black_box(render_png(&image, Stamp::Science));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench, cutouts);
criterion_main!(benches);
