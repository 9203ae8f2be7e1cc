//! What several test modules share.

pub mod poll;
pub mod require;
pub mod seeds;
