//! Property tests over arbitrary and mutated bytes: the message decoder (every
//! framing, both decode paths) and the container-file reader never panic and
//! never allocate beyond the input. Structure-aware cases build container
//! messages with valid headers, every codec, hostile metadata and hostile block
//! counts and sizes, and feed them through the decoder `print` uses, with its
//! default limits. Bounded, so they run in CI on every push.

use alertstream::alerts::source;
use alertstream::avro::codec::{self, Decoder};
use alertstream::avro::container::{write_block, write_header, Codec};
use alertstream::avro::gate::DEFAULT_MAX_ALERT_BYTES;
use alertstream::avro::plan::EMPTY_ITEM_COST;
use alertstream::avro::schema;
use alertstream::avro::varint::write_long;
use proptest::prelude::*;

use std::sync::OnceLock;

/// Built once: every case reuses them.
struct Fixtures {
    payload: Vec<u8>,
    container: Vec<u8>,
    resolving: Decoder,
    plain: Decoder,
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let alert = source::samples().unwrap().remove(0);
        let container = concat!(env!("CARGO_MANIFEST_DIR"), "/sample-alerts/visit-1.avro");
        Fixtures {
            payload: codec::encode(&alert.schema, &alert.value).unwrap(),
            container: std::fs::read(container).unwrap(),
            resolving: Decoder::new(schema::built_in(), true),
            plain: Decoder::new(schema::built_in(), false),
        }
    })
}

fn decode_everything(decoder: &Decoder, bytes: &[u8]) {
    let _ = decoder.decode(bytes);
    let mut out = Vec::new();
    let _ = decoder.decode_json(bytes, &mut out);
    // Output is bounded by the input: no length in the payload is trusted;
    // only nulls in arrays, which draw on each alert's budget, cost no bytes.
    let alerts = out.iter().filter(|b| **b == b'\n').count();
    let nulls = alerts * 5 * (DEFAULT_MAX_ALERT_BYTES / EMPTY_ITEM_COST);
    assert!(
        out.len() <= bytes.len() * 8 + 4096 + nulls,
        "{} bytes of JSON from {}",
        out.len(),
        bytes.len()
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let decoder = &fixtures().resolving;
        decode_everything(decoder, &bytes);
        for prefix in [&b"Obj\x01"[..], &[0, 0, 0, 0, 1]] {
            let framed = [prefix, &bytes].concat();
            decode_everything(decoder, &framed);
        }
        let _ = source::read_bytes("fuzz.avro", &bytes);
    }

    #[test]
    fn mutated_alerts_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let decoder = &fixtures().plain;
        let mut payload = fixtures().payload.clone();
        for (at, byte) in &flips {
            let i = at % payload.len();
            payload[i] ^= byte | 1;
        }
        payload.truncate(cut % (payload.len() + 1));
        decode_everything(decoder, &payload);
    }

    #[test]
    fn mutated_container_files_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut file = fixtures().container.clone();
        for (at, byte) in &flips {
            let i = at % file.len();
            file[i] ^= byte | 1;
        }
        // Either read whole or refused with a message naming the file.
        if let Err(e) = source::read_bytes("mutated.avro", &file) {
            prop_assert!(e.to_string().contains("mutated.avro"));
        }
        decode_everything(&fixtures().resolving, &file);
    }
}

/// Writer schemas a hostile producer might embed: the real alert layout,
/// arrays and maps of nulls, nested arrays, logical types, enums and fixed.
const SCHEMAS: [&str; 6] = [
    r#"{"type":"array","items":"null"}"#,
    r#"{"type":"map","values":{"type":"array","items":"null"}}"#,
    r#"{"type":"record","name":"r","fields":[{"name":"a","type":{"type":"array","items":{"type":"array","items":"long"}}},{"name":"s","type":["null","string"]}]}"#,
    r#"{"type":"record","name":"r","fields":[{"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":4,"scale":2}},{"name":"u","type":{"type":"string","logicalType":"uuid"}}]}"#,
    r#"{"type":"record","name":"r","fields":[{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}},{"name":"f","type":{"type":"fixed","name":"F","size":3}}]}"#,
    "ALERT",
];

const CODECS: [Codec; 4] = [Codec::Null, Codec::Deflate, Codec::Snappy, Codec::Zstandard];

/// Block data: a real alert, random bytes, or runs of huge varint counts.
fn block_data(kind: u8, random: &[u8], count: i64) -> Vec<u8> {
    match kind % 3 {
        0 => fixtures().payload.clone(),
        1 => random.to_vec(),
        _ => {
            let mut raw = Vec::new();
            for _ in 0..(random.len() % 64 + 1) {
                write_long(&mut raw, count);
            }
            raw
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn hostile_container_messages_never_panic_or_balloon(
        schema in 0..SCHEMAS.len(),
        codec in 0..CODECS.len(),
        metadata in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..16)), 0..4),
        blocks in proptest::collection::vec((any::<u8>(), any::<i64>(), proptest::collection::vec(any::<u8>(), 0..256), any::<bool>()), 0..4),
    ) {
        let codec = CODECS[codec];
        let alert_schema = schema::built_in().canonical_form();
        let schema = match SCHEMAS[schema] { "ALERT" => alert_schema.as_str(), other => other };
        let keys = ["avro.codec.compression_level", "avro.schema.extra", "x", ""];
        let extra: Vec<(&str, &[u8])> = metadata
            .iter()
            .map(|(k, v)| (keys[*k as usize % keys.len()], v.as_slice()))
            .collect();
        let sync = *b"fuzzfuzzfuzzfuzz";
        let mut bytes = write_header(schema, codec, &extra, &sync);
        for (kind, count, random, compress) in &blocks {
            let raw = block_data(*kind, random, *count);
            let data = if *compress { codec.compress(&raw).unwrap() } else { raw };
            let claimed = (*count).unsigned_abs() % (1 << 40);
            write_block(&mut bytes, claimed.max(1), &data, &sync);
        }
        decode_everything(&fixtures().resolving, &bytes);
        decode_everything(&fixtures().plain, &bytes);
    }
}
