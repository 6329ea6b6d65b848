//! Per-destination queues. The router only sees [`Queue`]: reserve room (all-or-nothing across
//! `block` destinations), commit, or offer under a drop policy. Exporter workers pop batches and
//! release their bytes once the destination took them. The memory queue is the one
//! implementation today; a durable (write-ahead log) queue fits behind the same interface.

pub mod memory;

pub use memory::{MemoryQueue, Offer, Reservation};
