//! What several test modules share.

pub mod browser;
pub mod demo;
pub mod designer;
pub mod poll;
pub mod require;
pub mod seeds;
pub mod studio;
