//! A gzip stream whose compressor is reused. Setting up a deflate compressor allocates and
//! zeroes about 300 KB of tables; a snapshot of a small catalogue spent more time there than
//! in everything else it does (16 % of the server's samples under `jobline bench`). Each
//! thread keeps the compressors of finished streams and the next stream resets one instead.
//! A reset still zeroes the tables (6 % of the server's samples under `jobline bench`), so a
//! stream that ends below [`STORED_BELOW`] bytes takes no compressor at all: its bytes are
//! written as one stored deflate block, still a standard gzip member.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use std::cell::RefCell;
use std::io;

/// Compressors kept per thread: more than the jobs one thread interleaves at once is waste.
const KEPT_PER_THREAD: usize = 8;

thread_local! {
    static IDLE: RefCell<Vec<Compress>> = const { RefCell::new(Vec::new()) };
}

/// Streams shorter than this are stored, not deflated: a small catalogue's snapshot would
/// save a few hundred bytes of download for more work than the rest of its job.
const STORED_BELOW: usize = 2048;

/// The gzip member header: deflate, no name or time, "fastest" (XFL 4), unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255];

/// Gzip-compresses what is written to it (fastest level); the compressed bytes are taken
/// out as they come ([`Gzip::take`]) and the rest with [`Gzip::finish`].
pub(crate) struct Gzip {
    /// Taken when the stream reaches [`STORED_BELOW`] bytes; `None` before, and after
    /// `finish`.
    compress: Option<Compress>,
    /// What was written while no compressor was taken.
    held: Vec<u8>,
    crc: Crc,
    out: Vec<u8>,
}

impl Gzip {
    /// A new stream.
    pub(crate) fn new() -> Gzip {
        Gzip {
            compress: None,
            held: Vec::new(),
            crc: Crc::new(),
            out: HEADER.to_vec(),
        }
    }

    /// The compressed bytes produced so far, taken out of the stream.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.out)
    }

    /// Ends the stream: the last compressed bytes and the trailer (CRC-32, length).
    pub(crate) fn finish(mut self) -> io::Result<Vec<u8>> {
        if self.compress.is_some() {
            self.deflate(&[], FlushCompress::Finish)?;
        } else {
            // One final stored block: BFINAL and type 00, then LEN and its complement.
            let len = self.held.len() as u16;
            self.out.push(1);
            self.out.extend_from_slice(&len.to_le_bytes());
            self.out.extend_from_slice(&(!len).to_le_bytes());
            self.out.append(&mut self.held);
        }
        let mut out = std::mem::take(&mut self.out);
        out.extend_from_slice(&self.crc.sum().to_le_bytes());
        out.extend_from_slice(&self.crc.amount().to_le_bytes());
        Ok(out)
    }

    fn deflate(&mut self, mut input: &[u8], flush: FlushCompress) -> io::Result<()> {
        let compress = self.compress.as_mut().expect("a stream being deflated");
        loop {
            // compress_vec writes into spare capacity only.
            if self.out.capacity() - self.out.len() < 4096 {
                self.out.reserve(input.len() / 2 + 4096);
            }
            let before = compress.total_in();
            let status = compress
                .compress_vec(input, &mut self.out, flush)
                .map_err(io::Error::other)?;
            input = &input[(compress.total_in() - before) as usize..];
            let done = match flush {
                FlushCompress::Finish => status == Status::StreamEnd,
                _ => input.is_empty(),
            };
            if done {
                return Ok(());
            }
        }
    }
}

impl io::Write for Gzip {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.crc.update(buf);
        if self.compress.is_none() {
            if self.held.len() + buf.len() < STORED_BELOW {
                self.held.extend_from_slice(buf);
                return Ok(buf.len());
            }
            // Long enough to deflate: on a compressor this thread kept, if it has one.
            self.compress = Some(
                IDLE.with_borrow_mut(Vec::pop)
                    .unwrap_or_else(|| Compress::new(Compression::fast(), false)),
            );
            let held = std::mem::take(&mut self.held);
            self.deflate(&held, FlushCompress::None)?;
        }
        self.deflate(buf, FlushCompress::None)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Gzip {
    fn drop(&mut self) {
        if let Some(mut compress) = self.compress.take() {
            compress.reset();
            IDLE.with_borrow_mut(|idle| {
                if idle.len() < KEPT_PER_THREAD {
                    idle.push(compress);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Gzip;
    use flate2::read::GzDecoder;
    use std::io::{Read, Write};

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        out
    }

    fn compress(parts: &[&[u8]]) -> Vec<u8> {
        let mut gz = Gzip::new();
        let mut out = Vec::new();
        for part in parts {
            gz.write_all(part).unwrap();
            out.extend(gz.take());
        }
        out.extend(gz.finish().unwrap());
        out
    }

    #[test]
    fn round_trips_through_a_standard_decoder() {
        let big: Vec<u8> = (0..300_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for parts in [
            vec![],
            vec![&b""[..]],
            vec![&b"{\"a\":1}\n"[..]],
            vec![&big[..1500], &big[1500..2047]],
            vec![&big[..2000], &big[2000..2100]],
            vec![&big[..]],
        ] {
            let expected: Vec<u8> = parts.concat();
            assert_eq!(gunzip(&compress(&parts)), expected);
        }
    }

    #[test]
    fn a_reused_compressor_starts_clean() {
        // Long enough to be deflated, so each stream takes a compressor.
        let lines: Vec<u8> = (0..400)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect();
        let first = compress(&[&lines]);
        // Dropped unfinished: its compressor goes back mid-stream and must be reset.
        let mut abandoned = Gzip::new();
        abandoned
            .write_all(&lines[..super::STORED_BELOW + 10])
            .unwrap();
        drop(abandoned);
        let again = compress(&[&lines]);
        assert_eq!(first, again);
        assert_eq!(gunzip(&again), lines);
    }

    #[test]
    fn a_short_stream_is_stored_and_a_long_one_deflated() {
        let short = compress(&[b"{\"a\":1}\n"]);
        assert_eq!(
            short.len(),
            10 + 5 + 8 + 8,
            "header, stored block, data, trailer"
        );
        let long: Vec<u8> = vec![b'x'; super::STORED_BELOW];
        assert!(compress(&[&long]).len() < 100, "deflated");
    }
}
