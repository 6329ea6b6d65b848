//! The hasher of the translator's hash maps (label-set keys, name caches): FxHash, as rustc
//! uses it, a rotate, a xor and a multiply per 8-byte word. Those maps are probed for every
//! data point, and std's SipHash costs several times more per key. Not keyed (no HashDoS
//! resistance): acceptable for a gateway in front of an organisation's own QA and staging
//! services, not for untrusted senders.

use std::hash::{BuildHasherDefault, Hasher};

/// Small, fast, non-cryptographic hasher (FxHash) for label-set keys and name caches.
#[derive(Default)]
pub struct FxHasher(u64);

pub type FxBuild = BuildHasherDefault<FxHasher>;

impl Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}
