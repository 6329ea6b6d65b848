//! The on-disk record format, kept apart from file handling so that it can be unit-tested and
//! fuzzed on its own. A frame is `[body length: u32 LE][CRC32 of body: u32 LE][body]`; a body
//! starts with a kind byte. Data bodies are `[1][seq u64][signal u8][items u64][OTLP bytes]`,
//! ack bodies are `[2][seq u64]*`. The reader never trusts a length: a frame is only taken
//! when its CRC matches, and after damage it resynchronises on the next frame that checks out,
//! so one bad record never hides the ones after it.

use crate::pipeline::payload::Signal;

/// Length + CRC.
pub const HEADER_LEN: usize = 8;
/// Kind, seq, signal, items.
pub const DATA_FIXED_LEN: usize = 1 + 8 + 1 + 8;
/// Largest body the reader accepts (bigger lengths are damage, not records).
pub const MAX_BODY_LEN: usize = 256 << 20;

/// Kind byte of a data body.
pub const KIND_DATA: u8 = 1;
/// Kind byte of an ack body.
pub const KIND_ACK: u8 = 2;

/// Appends one data frame to `out`.
pub fn encode_data(out: &mut Vec<u8>, seq: u64, signal: Signal, items: u64, payload: &[u8]) {
    let body_len = DATA_FIXED_LEN + payload.len();
    out.reserve(HEADER_LEN + body_len);
    let start = out.len();
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.push(KIND_DATA);
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(signal as u8);
    out.extend_from_slice(&items.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[start + HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Header bytes of a data frame before its payload: length, CRC, kind, seq, signal, items.
pub const DATA_HEADER_LEN: usize = HEADER_LEN + DATA_FIXED_LEN;

/// The first [`DATA_HEADER_LEN`] bytes of the data frame of `payload`, CRC included, so the
/// writer can write the frame as `[header][payload]` straight from the request's bytes (one
/// vectored write, no copy of the payload). Same bytes as [`encode_data`].
pub fn data_header(seq: u64, signal: Signal, items: u64, payload: &[u8]) -> [u8; DATA_HEADER_LEN] {
    let mut h = [0u8; DATA_HEADER_LEN];
    let body_len = (DATA_FIXED_LEN + payload.len()) as u32;
    h[0..4].copy_from_slice(&body_len.to_le_bytes());
    h[8] = KIND_DATA;
    h[9..17].copy_from_slice(&seq.to_le_bytes());
    h[17] = signal as u8;
    h[18..26].copy_from_slice(&items.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&h[HEADER_LEN..]);
    crc.update(payload);
    h[4..8].copy_from_slice(&crc.finalize().to_le_bytes());
    h
}

/// Appends one ack frame listing `seqs` to `out`.
pub fn encode_acks(out: &mut Vec<u8>, seqs: &[u64]) {
    let body_len = 1 + 8 * seqs.len();
    let start = out.len();
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0u8; 4]);
    out.push(KIND_ACK);
    for s in seqs {
        out.extend_from_slice(&s.to_le_bytes());
    }
    let crc = crc32fast::hash(&out[start + HEADER_LEN..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// A decoded record body.
#[derive(Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// One queued request.
    Data {
        /// Its sequence number (what an ack names).
        seq: u64,
        /// Its signal.
        signal: Signal,
        /// Spans, data points or log records in it.
        items: u64,
        /// The encoded OTLP request.
        payload: &'a [u8],
    },
    /// Sequence numbers of records delivered (or dropped for good): not to be replayed.
    Acks(Vec<u64>),
}

/// Decodes a body whose CRC already matched. `None` for a kind or layout this version does not
/// know (treated as a corrupt record).
pub fn decode_body(body: &[u8]) -> Option<Body<'_>> {
    let (&kind, rest) = body.split_first()?;
    match kind {
        KIND_DATA => {
            if body.len() < DATA_FIXED_LEN {
                return None;
            }
            let seq = u64::from_le_bytes(rest[0..8].try_into().ok()?);
            let signal = *Signal::ALL.get(rest[8] as usize)?;
            let items = u64::from_le_bytes(rest[9..17].try_into().ok()?);
            Some(Body::Data {
                seq,
                signal,
                items,
                payload: &rest[17..],
            })
        }
        KIND_ACK => {
            if rest.len() % 8 != 0 {
                return None;
            }
            Some(Body::Acks(
                rest.chunks_exact(8)
                    .filter_map(|c| c.try_into().ok().map(u64::from_le_bytes))
                    .collect(),
            ))
        }
        _ => None,
    }
}

/// What the reader found at one place of a file.
#[derive(Debug, PartialEq, Eq)]
pub enum Item<'a> {
    /// A frame whose CRC matched and whose body decodes. `offset` is where the frame starts.
    Record {
        /// Byte offset of the frame in the file.
        offset: usize,
        /// The decoded body.
        body: Body<'a>,
    },
    /// Bytes that are not a valid frame but are followed by one: skipped.
    Corrupt {
        /// Byte offset of the damage.
        offset: usize,
        /// Bytes skipped.
        len: usize,
    },
    /// Bytes at the end that are not a valid frame (a write cut short): to be truncated.
    TornTail {
        /// Byte offset of the cut-short frame.
        offset: usize,
        /// Bytes from there to the end.
        len: usize,
    },
    /// Only zero bytes from here to the end: the unused part of a preallocated (pre-zeroed)
    /// segment. Not damage; may be truncated.
    Padding {
        /// Byte offset of the first zero byte.
        offset: usize,
        /// Zero bytes to the end.
        len: usize,
    },
    /// The rest of a recycled segment (see [`segment_items`]): not damage; may be truncated.
    Recycled {
        /// Byte offset of the first record of the previous life.
        offset: usize,
        /// Bytes from there to the end.
        len: usize,
    },
}

/// The items of the segment file whose first sequence number is `first`. A segment may be a
/// recycled file (the writer reuses delivered segments instead of zeroing new ones), so behind
/// the records of its current life lie those of its previous one, all numbered below `first`.
/// The first such record ends the segment: it, everything after it and the damage right before
/// it (the cut-off rest of an overwritten old record) become one `Recycled` item. When that
/// damage starts with the header of a record of the current life (a write cut short, or a
/// flipped byte in the last record), it is a `TornTail` to the end instead, counted as damage.
pub fn segment_items(buf: &[u8], first: u64) -> Vec<Item<'_>> {
    let mut out = Vec::new();
    for item in Reader::new(buf) {
        let Item::Record {
            offset,
            body: Body::Data { seq, .. },
        } = &item
        else {
            out.push(item);
            continue;
        };
        if *seq >= first {
            out.push(item);
            continue;
        }
        let end = match out.last() {
            Some(&Item::Corrupt { offset, .. }) => {
                out.pop();
                let len = buf.len() - offset;
                if new_data_header_at(buf, offset, first) {
                    Item::TornTail { offset, len }
                } else {
                    Item::Recycled { offset, len }
                }
            }
            _ => Item::Recycled {
                offset: *offset,
                len: buf.len() - *offset,
            },
        };
        out.push(end);
        break;
    }
    out
}

/// Whether a data frame header numbered `first` or above starts at `at` (its body may be
/// damaged): a record of a segment's current life rather than the rest of an old one.
fn new_data_header_at(buf: &[u8], at: usize, first: u64) -> bool {
    let Some(h) = buf.get(at..at + DATA_HEADER_LEN) else {
        return false;
    };
    let seq = u64::from_le_bytes([h[9], h[10], h[11], h[12], h[13], h[14], h[15], h[16]]);
    h[8] == KIND_DATA && seq >= first
}

/// Iterates over the frames of one file's contents.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// start of the all-zero suffix of `buf` (no frame can start there: a length is never 0)
    zeros_from: usize,
}

impl<'a> Reader<'a> {
    /// A reader over one file's whole contents `buf`, from offset 0.
    pub fn new(buf: &'a [u8]) -> Self {
        let zeros_from = buf.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        Reader {
            buf,
            pos: 0,
            zeros_from,
        }
    }

    /// The body of a complete, checksum-valid, decodable frame at `at`.
    fn frame_at(&self, at: usize) -> Option<(usize, Body<'a>)> {
        let buf: &'a [u8] = self.buf;
        let head = buf.get(at..at.checked_add(HEADER_LEN)?)?;
        let len = u32::from_le_bytes(head[0..4].try_into().ok()?) as usize;
        if len == 0 || len > MAX_BODY_LEN {
            return None;
        }
        let crc = u32::from_le_bytes(head[4..8].try_into().ok()?);
        let body = buf.get(at + HEADER_LEN..(at + HEADER_LEN).checked_add(len)?)?;
        // cheap layout checks before the CRC, so resynchronising over damage does not checksum
        // megabytes at every candidate offset (decode_body would refuse these anyway)
        match body.first() {
            Some(&KIND_DATA) => {
                if len < DATA_FIXED_LEN || body[9] as usize >= Signal::ALL.len() {
                    return None;
                }
            }
            Some(&KIND_ACK) => {}
            _ => return None,
        }
        if crc32fast::hash(body) != crc {
            return None;
        }
        Some((HEADER_LEN + len, decode_body(body)?))
    }
}

impl<'a> Iterator for Reader<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        if self.pos >= self.buf.len() {
            return None;
        }
        let at = self.pos;
        if let Some((len, body)) = self.frame_at(at) {
            self.pos += len;
            return Some(Item::Record { offset: at, body });
        }
        if at >= self.zeros_from {
            // the zeroed, never written rest of a preallocated segment
            self.pos = self.buf.len();
            return Some(Item::Padding {
                offset: at,
                len: self.buf.len() - at,
            });
        }
        // damage: find the next frame that checks out (none starts in the zero suffix)
        let next = (at + 1..self.zeros_from).find(|&q| self.frame_at(q).is_some());
        match next {
            Some(q) => {
                self.pos = q;
                Some(Item::Corrupt {
                    offset: at,
                    len: q - at,
                })
            }
            None => {
                self.pos = self.buf.len();
                Some(Item::TornTail {
                    offset: at,
                    len: self.buf.len() - at,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Vec<u8> {
        let mut f = Vec::new();
        encode_data(&mut f, 1, Signal::Traces, 10, b"first payload");
        encode_data(&mut f, 2, Signal::Logs, 20, b"second payload");
        encode_data(&mut f, 3, Signal::Metrics, 30, b"third payload");
        f
    }

    fn seqs(buf: &[u8]) -> Vec<u64> {
        Reader::new(buf)
            .filter_map(|i| match i {
                Item::Record {
                    body: Body::Data { seq, .. },
                    ..
                } => Some(seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn round_trip() {
        let mut f = three();
        encode_acks(&mut f, &[1, 3]);
        let items: Vec<_> = Reader::new(&f).collect();
        assert_eq!(items.len(), 4);
        match &items[1] {
            Item::Record {
                body:
                    Body::Data {
                        seq,
                        signal,
                        items,
                        payload,
                    },
                ..
            } => {
                assert_eq!((*seq, *signal, *items), (2, Signal::Logs, 20));
                assert_eq!(*payload, b"second payload");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(&items[3], Item::Record { body: Body::Acks(a), .. } if a == &vec![1, 3]));
    }

    #[test]
    fn torn_tail_at_every_cut_is_detected_and_never_panics() {
        let f = three();
        let full = f.len();
        for cut in 0..full {
            let part = &f[..cut];
            let items: Vec<_> = Reader::new(part).collect();
            let good = seqs(part);
            // only whole records before the cut survive, in order
            assert!(good.windows(2).all(|w| w[0] < w[1]));
            let torn = items.iter().any(|i| matches!(i, Item::TornTail { .. }));
            let whole_frames_end = [0usize, 39, 79, full];
            assert_eq!(torn, !whole_frames_end.contains(&cut), "cut {cut}");
            assert!(!items.iter().any(|i| matches!(i, Item::Corrupt { .. })));
        }
    }

    #[test]
    fn flipped_byte_skips_one_record_only() {
        let f = three();
        for at in 0..f.len() {
            let mut g = f.clone();
            g[at] ^= 0x40;
            let got = seqs(&g);
            let damaged: Vec<_> = Reader::new(&g)
                .filter(|i| !matches!(i, Item::Record { .. }))
                .collect();
            // exactly one record is lost, the others are read
            assert_eq!(got.len(), 2, "flip at {at}: {got:?}");
            assert_eq!(damaged.len(), 1, "flip at {at}");
        }
    }

    #[test]
    fn header_plus_payload_is_the_encoded_frame() {
        for payload in [&b""[..], b"x", b"some payload\0\0"] {
            let mut f = Vec::new();
            encode_data(&mut f, 77, Signal::Logs, 5, payload);
            let mut g = data_header(77, Signal::Logs, 5, payload).to_vec();
            g.extend_from_slice(payload);
            assert_eq!(f, g);
        }
    }

    #[test]
    fn zeroed_rest_of_a_preallocated_segment_is_padding_not_damage() {
        let mut f = three();
        // a payload that ends in zero bytes, right before the zeroed rest
        encode_data(&mut f, 4, Signal::Traces, 1, b"ends in zeros\0\0\0\0");
        let data_end = f.len();
        f.resize(data_end + 4096, 0);
        let items: Vec<_> = Reader::new(&f).collect();
        assert_eq!(seqs(&f), vec![1, 2, 3, 4]);
        assert_eq!(
            items.last(),
            Some(&Item::Padding {
                offset: data_end,
                len: 4096
            })
        );
        assert!(
            !items
                .iter()
                .any(|i| matches!(i, Item::Corrupt { .. } | Item::TornTail { .. }))
        );
        // nothing written yet at all
        let zeros = vec![0u8; 1000];
        assert_eq!(
            Reader::new(&zeros).collect::<Vec<_>>(),
            vec![Item::Padding {
                offset: 0,
                len: 1000
            }]
        );
    }

    #[test]
    fn torn_write_into_preallocated_zeros_is_a_torn_tail() {
        let f = three();
        let whole_frames_end = [0usize, 39, 79, f.len()];
        for cut in 0..f.len() {
            // the write stopped at `cut`; the preallocated zeros follow
            let mut g = f[..cut].to_vec();
            g.resize(f.len() + 512, 0);
            let items: Vec<_> = Reader::new(&g).collect();
            let good = seqs(&g);
            let whole = whole_frames_end.iter().filter(|&&e| e <= cut).count() - 1;
            assert_eq!(good.len(), whole, "cut {cut}");
            assert!(!items.iter().any(|i| matches!(i, Item::Corrupt { .. })));
            let torn = items.iter().any(|i| matches!(i, Item::TornTail { .. }));
            let padding = items.iter().any(|i| matches!(i, Item::Padding { .. }));
            // a cut between frames leaves only zeros after the last frame: padding; a cut
            // inside a frame is a torn tail (zeros included), unless only zeros of the frame's
            // own bytes were written (then it is indistinguishable from padding: not acked)
            assert!(torn != padding, "cut {cut}: {items:?}");
            if whole_frames_end.contains(&cut) {
                assert!(padding, "cut {cut}");
            }
        }
    }

    #[test]
    fn recycled_segment_ends_at_the_first_record_of_its_previous_life() {
        // the file's previous life: records 1..=40 with payloads of varying length
        let mut old = Vec::new();
        for seq in 1..=40u64 {
            encode_data(
                &mut old,
                seq,
                Signal::Traces,
                1,
                &vec![b'o'; 10 + seq as usize * 3],
            );
        }
        // its new life as segment 100: records 100.. overwrite the start, for every length
        for n in 0..=5u64 {
            let mut new = Vec::new();
            for seq in 100..100 + n {
                encode_data(
                    &mut new,
                    seq,
                    Signal::Logs,
                    2,
                    &vec![b'n'; 25 + seq as usize],
                );
            }
            let mut f = old.clone();
            f[..new.len()].copy_from_slice(&new);
            let items = segment_items(&f, 100);
            let got = seqs_of(&items);
            assert_eq!(got, (100..100 + n).collect::<Vec<_>>(), "{n} new records");
            assert!(
                !items
                    .iter()
                    .any(|i| matches!(i, Item::Corrupt { .. } | Item::TornTail { .. })),
                "{n} new records: {items:?}"
            );
            assert_eq!(
                items.last(),
                Some(&Item::Recycled {
                    offset: new.len(),
                    len: f.len() - new.len()
                }),
                "{n} new records"
            );
        }
        // damage inside the new life is still damage
        let mut new = Vec::new();
        for seq in 100..103u64 {
            encode_data(&mut new, seq, Signal::Logs, 2, b"new payload here");
        }
        let mut f = old.clone();
        f[..new.len()].copy_from_slice(&new);
        f[45] ^= 0x10; // inside record 101
        let items = segment_items(&f, 100);
        assert_eq!(seqs_of(&items), vec![100, 102]);
        assert!(items.iter().any(|i| matches!(i, Item::Corrupt { .. })));
        assert!(matches!(items.last(), Some(Item::Recycled { .. })));
        // the last new record damaged (a write cut short, or a flipped byte in its payload):
        // a torn tail to the end, counted, the records before it kept
        for at in [115, 125] {
            let mut g = f.clone();
            g[45] ^= 0x10; // undo the damage to record 101
            g[at] ^= 0x01; // inside record 102 (84..126), after its header
            let items = segment_items(&g, 100);
            assert_eq!(seqs_of(&items), vec![100, 101], "flip at {at}");
            assert_eq!(
                items.last(),
                Some(&Item::TornTail {
                    offset: 84,
                    len: g.len() - 84
                }),
                "flip at {at}"
            );
        }
        // a segment that is not recycled reads as with the plain reader
        assert_eq!(
            segment_items(&old, 1),
            Reader::new(&old).collect::<Vec<_>>()
        );
    }

    fn seqs_of(items: &[Item<'_>]) -> Vec<u64> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Record {
                    body: Body::Data { seq, .. },
                    ..
                } => Some(*seq),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn garbage_is_never_a_record() {
        let junk: Vec<u8> = (0..4096u32).map(|i| (i * 7919 % 251) as u8).collect();
        assert!(seqs(&junk).is_empty());
    }
}
