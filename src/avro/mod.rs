//! The Avro codec every command shares: schemas, encoding and decoding, and
//! the JSON shape alerts are printed in.

pub mod codec;
pub mod container;
mod encode;
pub mod gate;
pub mod ids;
pub mod input;
pub mod json;
pub mod plan;
pub mod registry;
pub mod schema;
pub mod varint;
