//! The transport-only reference for `scripts/bench`: what librdkafka alone
//! costs, with the producer and consumer settings alertstream uses and no
//! Avro work at all. Produces the given alerts' pre-encoded bytes, or consumes
//! and discards, and prints one JSON line of timings.
//!
//!     cargo run --release --example transport -- produce TOPIC COUNT FILE_OR_DIR...
//!     cargo run --release --example transport -- consume TOPIC COUNT GROUP

use std::time::{Duration, Instant};

use alertstream::alerts::source;
use alertstream::avro::codec::Framing;
use alertstream::commands::send::{prepare, Encoding, PRODUCER_DEFAULTS};
use alertstream::kafka::consumer::{subscribe, ConsumerOptions};
use alertstream::kafka::KafkaSettings;
use anyhow::{bail, Context, Result};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let brokers = std::env::var("ALERTSTREAM_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let kafka = KafkaSettings::new(&brokers, None, &[])?;
    match args.first().map(String::as_str) {
        Some("produce") if args.len() >= 4 => {
            let count: u64 = args[2].parse().context("COUNT")?;
            let paths: Vec<_> = args[3..].iter().map(Into::into).collect();
            let payloads = prepare(
                source::load(&paths)?,
                true,
                &Encoding::Avro(Framing::Schemaless),
            )?;
            let producer: BaseProducer = kafka.client_config(PRODUCER_DEFAULTS).create()?;
            let start = Instant::now();
            let mut bytes = 0usize;
            for i in 0..count {
                let payload = &payloads[(i % payloads.len() as u64) as usize];
                let mut record = BaseRecord::<(), [u8]>::to(&args[1]).payload(payload);
                loop {
                    match producer.send(record) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                            record = back;
                            producer.poll(Duration::from_millis(10));
                        }
                        Err((e, _)) => bail!("produce failed: {e}"),
                    }
                }
                bytes += payload.len();
                producer.poll(Duration::ZERO);
            }
            producer.flush(Duration::from_secs(300))?;
            println!(
                r#"{{"seconds":{},"alerts":{count},"bytes":{bytes}}}"#,
                start.elapsed().as_secs_f64()
            );
        }
        Some("consume") if args.len() == 4 => {
            let count: u64 = args[2].parse().context("COUNT")?;
            // The same group join and settings as `alertstream print`.
            let options = ConsumerOptions {
                exit_at_end: false,
                max_messages: None,
                wait_for_topic: true,
                broker_timeout: Duration::from_secs(60),
                from: None,
                until: None,
            };
            let (consumer, _) = subscribe(&kafka, &options, &args[1], &args[3], &[])?;
            let mut first = None;
            let (mut seen, mut bytes) = (0u64, 0usize);
            let deadline = Instant::now() + Duration::from_secs(120);
            while seen < count {
                if Instant::now() > deadline {
                    bail!("only {seen} of {count} messages within 120 s");
                }
                match consumer.poll(Duration::from_millis(100)) {
                    Some(Ok(message)) => {
                        first.get_or_insert_with(Instant::now);
                        bytes += message.payload_len();
                        seen += 1;
                    }
                    Some(Err(e)) => bail!("consume failed: {e}"),
                    None => {}
                }
            }
            let seconds = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
            println!(r#"{{"seconds":{seconds},"alerts":{seen},"bytes":{bytes}}}"#);
        }
        _ => {
            bail!("usage: transport produce TOPIC COUNT FILE_OR_DIR... | consume TOPIC COUNT GROUP")
        }
    }
    Ok(())
}
