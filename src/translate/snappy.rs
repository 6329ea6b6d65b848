//! Snappy block compression of a finished request body, which remote-write and Loki's push
//! API both require. Shared by the two exporters so that both avoid `compress_vec`'s cost: it
//! zeroes a fresh worst-case-sized output buffer for every call, which costs about as much as
//! compressing.

/// Compresses `raw` with snappy's block format (not the framed stream format).
pub fn compress(raw: &[u8]) -> Result<Vec<u8>, snap::Error> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        let need = snap::raw::max_compress_len(raw.len());
        if buf.len() < need {
            buf.resize(need, 0);
        }
        let n = snap::raw::Encoder::new().compress(raw, &mut buf[..need])?;
        let out = buf[..n].to_vec();
        // Do not keep a huge buffer around after one huge request.
        if buf.len() > (64 << 20) {
            *buf = Vec::new();
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reuses_its_buffer_safely() {
        // a large body first, then smaller ones: no stale bytes of the large one leak out
        let big: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for raw in [&big[..], b"short body", b"", &big[..1000]] {
            let c = compress(raw).expect("compress");
            let back = snap::raw::Decoder::new()
                .decompress_vec(&c)
                .expect("decompress");
            assert_eq!(back, raw);
            assert_eq!(
                c,
                snap::raw::Encoder::new()
                    .compress_vec(raw)
                    .expect("reference")
            );
        }
    }
}
