//! Extensions: components that are not on the data path (the Collector's `extensions:`):
//! authenticators other components refer to by id, and the zpages status pages.

pub mod auth;
pub mod basicauth;
pub mod bearertokenauth;
pub mod zpages;
