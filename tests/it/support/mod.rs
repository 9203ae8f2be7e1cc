//! What several test modules share.

pub mod balancer;
pub mod browser;
pub mod demo;
pub mod designer;
pub mod pg;
pub mod poll;
pub mod proxy;
pub mod require;
pub mod seeds;
pub mod studio;
