//! Alerts themselves: where `send` takes them from and what is done with their cutouts.

pub mod source;
pub mod stamps;
