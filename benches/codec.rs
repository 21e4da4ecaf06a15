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

criterion_group!(benches, bench);
criterion_main!(benches);
