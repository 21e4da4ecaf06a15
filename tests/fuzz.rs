//! Property tests over arbitrary and mutated bytes: the message decoder (every
//! framing, both decode paths) and the container-file reader never panic and
//! never allocate beyond the input. Bounded, so they run in CI on every push.

use alertstream::alerts::source;
use alertstream::avro::codec::{self, Decoder};
use alertstream::avro::schema;
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
    // Output is bounded by the input: no length in the payload is trusted.
    assert!(
        out.len() <= bytes.len() * 8 + 4096,
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
