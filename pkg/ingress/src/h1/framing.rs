//! Where a message body ends (RFC 9112 §6): a length, chunked coding, or
//! the connection's close. Bodies are relayed as they are, so chunked
//! bodies are only scanned for their end, never decoded.

/// How a body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the sender closes the connection (responses only).
    UntilClose,
}

/// A body's bytes are not valid chunked coding.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid chunked body")]
pub struct InvalidChunk;

/// Longest chunk-size line accepted, extensions included.
const MAX_SIZE_LINE: usize = 4096;
/// Longest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// In the chunk-size line: the size so far, whether a digit was seen,
    /// whether extensions began.
    Size {
        size: u64,
        digits: bool,
        extension: bool,
    },
    /// The size line's CR was seen.
    SizeLf {
        size: u64,
    },
    /// Inside a chunk's data: bytes left.
    Data(u64),
    DataCr,
    DataLf,
    /// At the start of a trailer line (or the final CRLF).
    TrailerStart,
    TrailerLine,
    TrailerLf,
    FinalLf,
    Done,
}

/// Finds the end of a chunked body fed to it in pieces.
#[derive(Clone, Debug)]
pub struct ChunkedEnd {
    state: State,
    /// Bytes of the current size line or of the trailers.
    line: usize,
}

impl Default for ChunkedEnd {
    fn default() -> Self {
        Self {
            state: State::Size {
                size: 0,
                digits: false,
                extension: false,
            },
            line: 0,
        }
    }
}

impl ChunkedEnd {
    /// Whether the whole body has been seen.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Scans `input`, the body's next bytes; returns how many of them belong
    /// to the body (all, unless its end is among them).
    pub fn feed(&mut self, input: &[u8]) -> Result<usize, InvalidChunk> {
        let mut i = 0;
        while i < input.len() {
            if let State::Data(left) = self.state {
                let take = left.min((input.len() - i) as u64);
                i += take as usize;
                self.state = if take == left {
                    State::DataCr
                } else {
                    State::Data(left - take)
                };
                continue;
            }
            let byte = input[i];
            i += 1;
            self.state = match self.state {
                State::Size {
                    size,
                    digits,
                    extension,
                } => {
                    self.line += 1;
                    if self.line > MAX_SIZE_LINE {
                        return Err(InvalidChunk);
                    }
                    match byte {
                        b'\r' if digits => State::SizeLf { size },
                        _ if extension => State::Size {
                            size,
                            digits,
                            extension,
                        },
                        b';' | b' ' | b'\t' if digits => State::Size {
                            size,
                            digits,
                            extension: true,
                        },
                        _ => {
                            let digit = (byte as char).to_digit(16).ok_or(InvalidChunk)?;
                            let size = size
                                .checked_mul(16)
                                .and_then(|s| s.checked_add(u64::from(digit)))
                                .ok_or(InvalidChunk)?;
                            State::Size {
                                size,
                                digits: true,
                                extension,
                            }
                        }
                    }
                }
                State::SizeLf { size } if byte == b'\n' => {
                    self.line = 0;
                    if size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data(size)
                    }
                }
                State::DataCr if byte == b'\r' => State::DataLf,
                State::DataLf if byte == b'\n' => State::Size {
                    size: 0,
                    digits: false,
                    extension: false,
                },
                State::TrailerStart if byte == b'\r' => State::FinalLf,
                State::TrailerStart | State::TrailerLine => {
                    self.line += 1;
                    if self.line > MAX_TRAILERS {
                        return Err(InvalidChunk);
                    }
                    if byte == b'\r' {
                        State::TrailerLf
                    } else {
                        State::TrailerLine
                    }
                }
                State::TrailerLf if byte == b'\n' => State::TrailerStart,
                State::FinalLf if byte == b'\n' => {
                    self.state = State::Done;
                    return Ok(i);
                }
                State::Done => return Ok(i - 1),
                _ => return Err(InvalidChunk),
            };
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn encode(chunks: &[Vec<u8>], trailers: &str) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in chunks.iter().filter(|c| !c.is_empty()) {
            out.extend(format!("{:x};ext=1\r\n", chunk.len()).bytes());
            out.extend(chunk);
            out.extend(b"\r\n");
        }
        out.extend(format!("0\r\n{trailers}\r\n").bytes());
        out
    }

    #[test]
    fn the_end_is_found_and_what_follows_is_left() {
        let mut body = encode(&[b"hello".to_vec(), b" world".to_vec()], "X-T: 1\r\n");
        let length = body.len();
        body.extend(b"GET / HTTP/1.1\r\n");
        let mut end = ChunkedEnd::default();
        assert_eq!(end.feed(&body), Ok(length));
        assert!(end.is_done());
    }

    #[test]
    fn bad_codings_are_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"5\r\nhelloXX",
            b"5\n",
            b"fffffffffffffffff\r\n",
        ] {
            assert_eq!(
                ChunkedEnd::default().feed(bad),
                Err(InvalidChunk),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_split_finds_the_same_end(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6),
            trailer in proptest::bool::ANY,
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let body = encode(&chunks, if trailer { "A: b\r\nC: d\r\n" } else { "" });
            let mut stream = body.clone();
            stream.extend(b"next");
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(stream.len())).collect();
            points.push(0);
            points.push(stream.len());
            points.sort_unstable();
            let mut end = ChunkedEnd::default();
            let mut consumed = 0;
            for pair in points.windows(2) {
                if end.is_done() {
                    break;
                }
                consumed += end.feed(&stream[pair[0]..pair[1]]).unwrap();
            }
            prop_assert!(end.is_done());
            prop_assert_eq!(consumed, body.len());
        }
    }
}
