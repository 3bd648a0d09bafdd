//! Framing: every message is a `u32` little-endian body length followed by
//! the body, a bincode 2 encoding (serde, `config::legacy()`: fixed-width
//! little-endian integers) of one [`crate::Request`] or [`crate::Response`].
//!
//! The runner's async reader and the blocking [`crate::Client`] both build on
//! [`encode_frame`], [`body_len`] and [`decode_body`], so the size limit and
//! the "no trailing bytes" rule are enforced identically on both ends.

use std::io::{self, Read, Write};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Largest body a frame may carry (16 MiB). Anything larger is a protocol
/// error, checked before allocating.
pub const MAX_FRAME_LEN: u32 = 16 * 1024 * 1024;

/// Largest Hello frame (header + body) the runner accepts on the broker.
pub const MAX_HELLO_FRAME: usize = 64 * 1024;

/// Size of the length header.
pub const HEADER_LEN: usize = 4;

/// Why a frame could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The header announced a body above [`MAX_FRAME_LEN`].
    #[error("frame of {len} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    TooLarge {
        /// The announced body length.
        len: u64,
    },
    /// The body is not a valid encoding of the expected message.
    #[error("undecodable frame body: {0}")]
    Decode(String),
    /// The body decoded, but bytes were left over after the message.
    #[error("frame body has {extra} trailing bytes after the message")]
    TrailingBytes {
        /// How many bytes were left.
        extra: usize,
    },
    /// The message could not be encoded (should not happen for protocol types).
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// The stream ended in the middle of a frame.
    #[error("connection closed in the middle of a frame ({got} of {want} bytes)")]
    Truncated {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        want: usize,
    },
    /// Reading or writing the stream failed.
    #[error("i/o error on the bridge connection: {0}")]
    Io(#[from] io::Error),
}

fn config() -> impl bincode::config::Config {
    bincode::config::legacy().with_limit::<{ MAX_FRAME_LEN as usize }>()
}

/// Encodes `msg` as one complete frame (header + body).
pub fn encode_frame<T: Serialize>(msg: &T) -> Result<Vec<u8>, FrameError> {
    let mut frame = vec![0u8; HEADER_LEN];
    bincode::serde::encode_into_std_write(msg, &mut frame, config())
        .map_err(|e| FrameError::Encode(e.to_string()))?;
    let body_len = frame.len() - HEADER_LEN;
    if body_len > MAX_FRAME_LEN as usize {
        return Err(FrameError::TooLarge {
            len: body_len as u64,
        });
    }
    frame[..HEADER_LEN].copy_from_slice(&(body_len as u32).to_le_bytes());
    Ok(frame)
}

/// Reads the body length from a header, rejecting oversized frames.
pub fn body_len(header: [u8; HEADER_LEN]) -> Result<usize, FrameError> {
    let len = u32::from_le_bytes(header);
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len: len.into() });
    }
    Ok(len as usize)
}

/// Decodes one message from a frame body (without its header). The body
/// must contain exactly one message.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let (msg, used) = bincode::serde::decode_from_slice(body, config())
        .map_err(|e| FrameError::Decode(e.to_string()))?;
    if used != body.len() {
        return Err(FrameError::TrailingBytes {
            extra: body.len() - used,
        });
    }
    Ok(msg)
}

/// Decodes a complete frame held in one buffer (a broker datagram): the
/// header must announce exactly the remaining length.
pub fn decode_frame<T: DeserializeOwned>(frame: &[u8]) -> Result<T, FrameError> {
    let Some((header, body)) = frame.split_first_chunk::<HEADER_LEN>() else {
        return Err(FrameError::Truncated {
            got: frame.len(),
            want: HEADER_LEN,
        });
    };
    let len = body_len(*header)?;
    if body.len() < len {
        return Err(FrameError::Truncated {
            got: body.len(),
            want: len,
        });
    }
    if body.len() > len {
        return Err(FrameError::TrailingBytes {
            extra: body.len() - len,
        });
    }
    decode_body(body)
}

/// Writes one frame to a blocking stream.
pub fn write_frame<T: Serialize>(out: &mut impl Write, msg: &T) -> Result<(), FrameError> {
    out.write_all(&encode_frame(msg)?)?;
    Ok(())
}

/// Reads one frame from a blocking stream. `Ok(None)` means the stream ended
/// cleanly at a frame boundary.
pub fn read_frame<T: DeserializeOwned>(input: &mut impl Read) -> Result<Option<T>, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let got = read_full(input, &mut header)?;
    if got == 0 {
        return Ok(None);
    }
    if got < HEADER_LEN {
        return Err(FrameError::Truncated {
            got,
            want: HEADER_LEN,
        });
    }
    let len = body_len(header)?;
    let mut body = vec![0u8; len];
    let got = read_full(input, &mut body)?;
    if got < len {
        return Err(FrameError::Truncated { got, want: len });
    }
    decode_body(&body).map(Some)
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{EnvQuery, Request, Response};

    fn body(msg: &impl Serialize) -> Vec<u8> {
        let frame = encode_frame(msg).expect("encodes");
        let len = u32::from_le_bytes(frame[..4].try_into().expect("header")) as usize;
        assert_eq!(len, frame.len() - 4, "header announces the body length");
        frame[4..].to_vec()
    }

    // These byte layouts are the ones written in docs/protocol.md: if one
    // changes, the spec (and every non-Rust client) is wrong.
    #[test]
    fn hello_bytes_match_the_spec() {
        let hello = Request::Hello {
            protocol: 1,
            token: "ab".into(),
            pid: 0x0102_0304,
            client: "x".into(),
        };
        let mut want = vec![0, 0, 0, 0]; // variant 0
        want.extend([1, 0, 0, 0]); // protocol u32
        want.extend([2, 0, 0, 0, 0, 0, 0, 0, b'a', b'b']); // token: u64 len + bytes
        want.extend([4, 3, 2, 1]); // pid u32
        want.extend([1, 0, 0, 0, 0, 0, 0, 0, b'x']); // client
        assert_eq!(body(&hello), want);
    }

    #[test]
    fn request_bytes_match_the_spec() {
        let path = Request::IgnoreInput {
            path: b"/a".to_vec(),
        };
        assert_eq!(
            body(&path),
            [1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, b'/', b'a']
        );
        let out = Request::IgnoreOutput {
            path: b"/".to_vec(),
        };
        assert_eq!(body(&out), [2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, b'/']);
        assert_eq!(body(&Request::DisableCache), [3, 0, 0, 0]);
        let get = Request::GetEnv {
            name: b"A".to_vec(),
            tracked: true,
        };
        assert_eq!(body(&get), [4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, b'A', 1]);
        let glob = Request::GetEnvs {
            query: EnvQuery::Glob(b"V*".to_vec()),
            tracked: false,
        };
        assert_eq!(
            body(&glob),
            [
                5, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, b'V', b'*', 0
            ]
        );
        let prefix = Request::GetEnvs {
            query: EnvQuery::Prefix(b"V".to_vec()),
            tracked: true,
        };
        assert_eq!(
            body(&prefix),
            [5, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, b'V', 1]
        );
    }

    #[test]
    fn response_bytes_match_the_spec() {
        assert_eq!(body(&Response::Ack), [0, 0, 0, 0]);
        assert_eq!(body(&Response::Env { value: None }), [1, 0, 0, 0, 0]);
        assert_eq!(
            body(&Response::Env {
                value: Some(b"v".to_vec())
            }),
            [1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, b'v']
        );
        let map = BTreeMap::from([(b"K".to_vec(), b"v".to_vec())]);
        let mut want = vec![2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
        want.extend([1, 0, 0, 0, 0, 0, 0, 0, b'K', 1, 0, 0, 0, 0, 0, 0, 0, b'v']);
        assert_eq!(body(&Response::Envs { map }), want);
        let err = Response::Error {
            message: "no".into(),
        };
        assert_eq!(body(&err), [3, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, b'n', b'o']);
    }

    #[test]
    fn frames_round_trip_through_a_stream() {
        let msgs = [
            Request::DisableCache,
            Request::GetEnv {
                name: vec![0xff, 0xfe],
                tracked: false,
            },
        ];
        let mut buf = Vec::new();
        for m in &msgs {
            write_frame(&mut buf, m).expect("writes");
        }
        let mut input = buf.as_slice();
        for m in &msgs {
            let got: Request = read_frame(&mut input).expect("reads").expect("a frame");
            assert_eq!(&got, m);
        }
        assert!(
            read_frame::<Request>(&mut input)
                .expect("clean end")
                .is_none()
        );
    }

    #[test]
    fn oversized_header_is_rejected_before_allocating() {
        let header = (MAX_FRAME_LEN + 1).to_le_bytes();
        assert!(matches!(body_len(header), Err(FrameError::TooLarge { .. })));
        let mut input: &[u8] = &u32::MAX.to_le_bytes();
        let err = read_frame::<Request>(&mut input).expect_err("too large");
        assert!(err.to_string().contains("exceeds"), "{err}");
    }

    #[test]
    fn truncated_frames_are_errors() {
        let frame = encode_frame(&Request::DisableCache).expect("encodes");
        let mut short: &[u8] = &frame[..2];
        assert!(matches!(
            read_frame::<Request>(&mut short),
            Err(FrameError::Truncated { got: 2, want: 4 })
        ));
        let long = encode_frame(&Request::IgnoreInput {
            path: b"/x".to_vec(),
        })
        .expect("encodes");
        let mut cut: &[u8] = &long[..long.len() - 1];
        assert!(matches!(
            read_frame::<Request>(&mut cut),
            Err(FrameError::Truncated { .. })
        ));
        assert!(matches!(
            decode_frame::<Request>(&long[..long.len() - 1]),
            Err(FrameError::Truncated { .. })
        ));
    }

    #[test]
    fn garbage_and_trailing_bytes_are_errors() {
        assert!(matches!(
            decode_body::<Request>(&[9, 9, 9, 9]),
            Err(FrameError::Decode(_))
        ));
        // A Vec length far beyond the body must fail, not allocate.
        let mut huge = vec![1, 0, 0, 0];
        huge.extend(u64::MAX.to_le_bytes());
        assert!(decode_body::<Request>(&huge).is_err());
        assert!(matches!(
            decode_body::<Request>(&[3, 0, 0, 0, 7]),
            Err(FrameError::TrailingBytes { extra: 1 })
        ));
        let mut frame = encode_frame(&Request::DisableCache).expect("encodes");
        frame.push(0);
        assert!(matches!(
            decode_frame::<Request>(&frame),
            Err(FrameError::TrailingBytes { extra: 1 })
        ));
    }

    #[test]
    fn invalid_utf8_in_a_string_field_is_an_error() {
        let mut body = vec![0, 0, 0, 0, 1, 0, 0, 0];
        body.extend([1, 0, 0, 0, 0, 0, 0, 0, 0xff]);
        body.extend([1, 0, 0, 0]);
        body.extend([0u8; 8]);
        assert!(decode_body::<Request>(&body).is_err());
    }
}
