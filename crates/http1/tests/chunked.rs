//! Chunked body validation: whole, split at every point, byte by byte.

use ringlb_http1::{ChunkedDecoder, ErrorKind, Limits, Side};

/// Feed `input` in pieces of `step` bytes; return (bytes consumed, done, decoded payload).
fn run(input: &[u8], step: usize) -> Result<(usize, bool, Vec<u8>), ErrorKind> {
    let mut d = ChunkedDecoder::new(Side::Client, &Limits::default());
    let mut consumed = 0;
    let mut payload = Vec::new();
    for piece in input.chunks(step.max(1)) {
        let f = d
            .feed_with(piece, |data| payload.extend_from_slice(data))
            .map_err(|e| e.kind)?;
        consumed += f.consumed;
        if f.done {
            assert_eq!(d.payload_bytes(), payload.len() as u64);
            return Ok((consumed, true, payload));
        }
        assert_eq!(f.consumed, piece.len(), "stopped early without being done");
    }
    Ok((consumed, false, payload))
}

fn all_steps(input: &[u8]) -> Result<(usize, bool, Vec<u8>), ErrorKind> {
    let whole = run(input, input.len());
    for step in [1, 2, 3, 7] {
        assert_eq!(
            run(input, step),
            whole,
            "step {step} on {:?}",
            String::from_utf8_lossy(input)
        );
    }
    whole
}

#[test]
fn valid_bodies() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"0\r\n\r\n", b""),
        (b"5\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", b"hello world"),
        (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        (b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        (b"0002\r\nab\r\n0\r\n\r\n", b"ab"), // haproxy 2.6 accepts leading zeros
        (b"2 \r\nab\r\n0\r\n\r\n", b"ab"),   // haproxy 2.6 accepts BWS after the size
        (b"2\t;a=b\r\nab\r\n0\r\n\r\n", b"ab"),
        (b"2;a=b\r\nab\r\n0;x\r\nT: v\r\n\r\n", b"ab"), // haproxy 2.6 accepts
        (b"2;a=\"q s\";b\r\nab\r\n0\r\n\r\n", b"ab"),
        (b"2\r\n\r\n\r\n0\r\n\r\n", b"\r\n"),
        (b"0\r\nExpires: never\r\nX-Sum:  a\tb \r\n\r\n", b""),
        (b"0\r\nX-Empty:\r\n\r\n", b""),
    ];
    for (input, payload) in cases {
        let (consumed, done, got) = all_steps(input)
            .unwrap_or_else(|e| panic!("{e:?} on {:?}", String::from_utf8_lossy(input)));
        assert!(done);
        assert_eq!(consumed, input.len());
        assert_eq!(got, *payload);
    }
}

#[test]
fn stops_at_the_end_of_the_message() {
    let input = b"3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\n\r\n";
    let mut d = ChunkedDecoder::new(Side::Client, &Limits::default());
    let f = d.feed(input).unwrap();
    assert!(f.done);
    assert_eq!(f.consumed, 13);
    assert!(d.is_done());
    // Further input is not consumed.
    assert_eq!(d.feed(b"more").unwrap().consumed, 0);
    d.reset();
    assert!(!d.is_done());
    assert!(d.feed(b"0\r\n\r\n").unwrap().done);
}

#[test]
fn incomplete_bodies_are_not_done() {
    for input in [
        &b"5\r\nhel"[..],
        b"5\r\nhello",
        b"5\r\nhello\r\n",
        b"0\r\n",
        b"0\r\n\r",
        b"0\r\nX: y\r\n",
        b"",
        b"ff",
    ] {
        let (consumed, done, _) = all_steps(input).unwrap();
        assert!(!done);
        assert_eq!(consumed, input.len());
    }
}

#[test]
fn invalid_bodies() {
    use ErrorKind::*;
    let cases: &[(&[u8], ErrorKind)] = &[
        (b"ffffffffffffffffff\r\n", ChunkSizeOverflow), // haproxy 2.6: 400
        (b"10000000000000000\r\n", ChunkSizeOverflow),
        (b"0x10\r\n", BadChunkSize), // haproxy 2.6: 400
        (b"\r\n", BadChunkSize),
        (b";a\r\n", BadChunkSize),
        (b" 2\r\nab\r\n0\r\n\r\n", BadChunkSize),
        (b"-2\r\n", BadChunkSize),
        (b"+2\r\n", BadChunkSize),
        (b"2\nab\r\n0\r\n\r\n", BadChunkSize),
        (b"2;a\nb\r\nab\r\n0\r\n\r\n", BadChunkSize), // haproxy 2.6 accepts (and desyncs)
        (b"2;a\x00b\r\nab\r\n0\r\n\r\n", BadChunkSize),
        (b"2;a\x01b\r\nab\r\n0\r\n\r\n", BadChunkSize),
        (b"2;a\x7fb\r\nab\r\n0\r\n\r\n", BadChunkSize),
        (b"2\rab\r\n", BadChunkSize),
        (b"2 2\r\nab\r\n", BadChunkSize),
        (b"g\r\n", BadChunkSize),
        (b"2\r\nabc\r\n0\r\n\r\n", BadChunkTerminator),
        (b"2\r\nab\n0\r\n\r\n", BadChunkTerminator),
        (b"2\r\nab\r0\r\n\r\n", BadChunkTerminator),
        (b"2\r\nabXY0\r\n\r\n", BadChunkTerminator),
        (b"0\r\n\n", BadTrailer),
        (b"0\r\n\r\r", BadTrailer),
        (b"0\r\nX: y\n\r\n", BadTrailer),
        (b"0\r\nX: y\r\n y\r\n\r\n", BadTrailer),
        (b"0\r\n X: y\r\n\r\n", BadTrailer),
        (b"0\r\nX : y\r\n\r\n", BadTrailer),
        (b"0\r\n: y\r\n\r\n", BadTrailer),
        (b"0\r\nX\r\n\r\n", BadTrailer),
        (b"0\r\nX: a\x00b\r\n\r\n", BadTrailer),
        (b"0\r\nX: a\x01b\r\n\r\n", BadTrailer),
        (b"0\r\nX(: a\r\n\r\n", BadTrailer),
        (b"0\r\nX: a\rb\r\n\r\n", BadTrailer),
    ];
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|(input, want)| {
            let got = all_steps(input);
            (got != Err(*want)).then(|| {
                format!(
                    "{:?}: want {want:?}, got {got:?}",
                    String::from_utf8_lossy(input)
                )
            })
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn errors_are_sticky_and_sided() {
    let mut d = ChunkedDecoder::new(Side::Server, &Limits::default());
    let e = d.feed(b"zz").unwrap_err();
    assert_eq!(e.status(), 502);
    assert_eq!(
        d.feed(b"0\r\n\r\n").unwrap_err().kind,
        ErrorKind::BadChunkSize
    );
}

#[test]
fn line_and_trailer_limits() {
    let limits = Limits {
        max_headers: 3,
        max_head_bytes: 32,
    };
    let mut d = ChunkedDecoder::new(Side::Client, &limits);
    let long_ext = format!("1;{}\r\n", "a".repeat(40));
    assert_eq!(
        d.feed(long_ext.as_bytes()).unwrap_err().kind,
        ErrorKind::BadChunkSize
    );
    let mut d = ChunkedDecoder::new(Side::Client, &limits);
    let zeros = format!("{}1\r\n", "0".repeat(40));
    assert_eq!(
        d.feed(zeros.as_bytes()).unwrap_err().kind,
        ErrorKind::BadChunkSize
    );
    let mut d = ChunkedDecoder::new(Side::Client, &limits);
    assert_eq!(
        d.feed(b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n")
            .unwrap_err()
            .kind,
        ErrorKind::BadTrailer
    );
    let mut d = ChunkedDecoder::new(Side::Client, &limits);
    assert!(d.feed(b"0\r\nA: 1\r\nB: 2\r\n\r\n").unwrap().done);
    let mut d = ChunkedDecoder::new(Side::Client, &limits);
    let big = format!("0\r\nA: {}\r\n\r\n", "v".repeat(40));
    assert_eq!(
        d.feed(big.as_bytes()).unwrap_err().kind,
        ErrorKind::BadTrailer
    );
}

#[test]
fn huge_chunk_is_counted_not_buffered() {
    let mut d = ChunkedDecoder::new(Side::Client, &Limits::default());
    assert_eq!(d.feed(b"fffffffffffffff\r\n").unwrap().consumed, 17);
    let block = vec![b'x'; 1 << 16];
    for _ in 0..16 {
        let f = d.feed(&block).unwrap();
        assert_eq!(f.consumed, block.len());
        assert!(!f.done);
    }
    assert_eq!(d.payload_bytes(), 16 << 16);
}

#[test]
fn trailer_section_is_handed_over_byte_by_byte_at_any_split() {
    let input = b"4\r\nabcd\r\n0\r\ngrpc-status: 0\r\ngrpc-message:  ok \r\n\r\nNEXT";
    for step in [1, 2, 5, input.len()] {
        let mut d = ChunkedDecoder::new(Side::Server, &Limits::default());
        let (mut data, mut trailer) = (Vec::new(), Vec::new());
        let mut consumed = 0;
        for piece in input.chunks(step) {
            let f = d
                .feed_parts(piece, |x| data.extend_from_slice(x), |b| trailer.push(b))
                .unwrap();
            consumed += f.consumed;
            if f.done {
                break;
            }
        }
        assert_eq!(consumed, input.len() - 4, "step {step}");
        assert_eq!(data, b"abcd");
        assert_eq!(trailer, b"grpc-status: 0\r\ngrpc-message:  ok \r\n\r\n");
        let fields: Vec<_> = ringlb_http1::trailer_fields(&trailer).collect();
        assert_eq!(
            fields,
            vec![
                (&b"grpc-status"[..], &b"0"[..]),
                (&b"grpc-message"[..], &b"ok"[..])
            ]
        );
    }
}

#[test]
fn no_trailers_is_just_the_final_crlf() {
    let mut d = ChunkedDecoder::new(Side::Server, &Limits::default());
    let mut trailer = Vec::new();
    let f = d
        .feed_parts(b"0\r\n\r\n", |_| {}, |b| trailer.push(b))
        .unwrap();
    assert!(f.done);
    assert_eq!(trailer, b"\r\n");
    assert_eq!(ringlb_http1::trailer_fields(&trailer).count(), 0);
}
