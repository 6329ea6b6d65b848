//! Collector extensions that other components refer to by id (authenticators).

pub mod auth;
pub mod basicauth;
pub mod bearertokenauth;
