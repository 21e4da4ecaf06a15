//! Everything that talks to Kafka: one configuration builder shared by every
//! command, one client context, and the topic administration `send` needs.

pub mod admin;
pub mod config;
pub mod consume;
pub mod consumer;
pub mod context;
pub mod dead_letter;
pub mod groups;
pub mod lag;
pub mod produce;

pub use config::KafkaSettings;
pub use context::ClientLog;
