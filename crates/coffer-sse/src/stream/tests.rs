use super::*;
use proptest::prelude::*;

const CS: u64 = CHUNK_SIZE as u64;
const SCS: u64 = SEALED_CHUNK_SIZE as u64;
const TAG: u64 = TAG_LEN as u64;

/// Deterministic, non-repeating-looking test data (not crypto).
fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

struct Fixture {
    dek: DataKey,
    salt: StreamSalt,
}

impl Fixture {
    fn new() -> Self {
        Self {
            dek: DataKey::generate().unwrap(),
            salt: StreamSalt::random().unwrap(),
        }
    }

    fn key(&self) -> StreamKey {
        self.dek.stream_key(1, &self.salt).unwrap()
    }
}

fn encrypt_with(layout: Layout, key: StreamKey, plain: &[u8], piece: usize) -> Vec<u8> {
    let mut enc = StreamEncryptor::with_layout(key, layout);
    let mut out = Vec::new();
    for p in plain.chunks(piece.max(1)) {
        enc.push(p, &mut out).unwrap();
        // Only whole, non-last chunks are ever emitted by push.
        assert_eq!(out.len() % (layout.chunk + TAG_LEN), 0);
    }
    assert_eq!(enc.finish(&mut out).unwrap(), plain.len() as u64);
    assert_eq!(out.len() as u64, layout.ciphertext_len(plain.len() as u64));
    out
}

fn encrypt(key: StreamKey, plain: &[u8], piece: usize) -> Vec<u8> {
    encrypt_with(Layout::DEFAULT, key, plain, piece)
}

/// Decrypts `cipher` (exactly the span's bytes) pushed in `piece`-sized pieces.
fn decrypt_with(
    layout: Layout,
    key: StreamKey,
    plaintext_len: u64,
    span: CipherSpan,
    cipher: &[u8],
    piece: usize,
) -> Result<Vec<u8>, ChunkError> {
    let mut dec = StreamDecryptor::with_layout(key, plaintext_len, span, layout);
    let mut out = Vec::new();
    for p in cipher.chunks(piece.max(1)) {
        dec.push(p, &mut out)?;
    }
    dec.finish()?;
    Ok(out)
}

fn decrypt(
    key: StreamKey,
    plaintext_len: u64,
    span: CipherSpan,
    cipher: &[u8],
    piece: usize,
) -> Result<Vec<u8>, ChunkError> {
    decrypt_with(Layout::DEFAULT, key, plaintext_len, span, cipher, piece)
}

fn span_bytes<'a>(cipher: &'a [u8], span: &CipherSpan) -> &'a [u8] {
    let start = span.cipher_offset as usize;
    &cipher[start..start + span.cipher_len as usize]
}

/// Independent, obviously-correct span computation to check the real one.
fn model_span(chunk: u64, len: u64, start: u64, end: u64) -> CipherSpan {
    let sealed_len = |i: u64| (len - i * chunk).min(chunk) + TAG;
    let first = start / chunk;
    let last = end / chunk;
    let offset: u64 = (0..first).map(sealed_len).sum();
    let cipher_len: u64 = (first..=last).map(sealed_len).sum();
    CipherSpan {
        first_chunk: first,
        last_chunk: last,
        cipher_offset: offset,
        cipher_len,
        skip_front: (start % chunk) as usize,
        plaintext_len_out: end - start + 1,
    }
}

#[test]
fn lengths() {
    assert_eq!(SEALED_CHUNK_SIZE, 65536 + 16);
    for (len, count) in [
        (0, 1),
        (1, 1),
        (CS - 1, 1),
        (CS, 1),
        (CS + 1, 2),
        (2 * CS, 2),
        (2 * CS + 1, 3),
        ((1 << 20) + 3, 17),
    ] {
        assert_eq!(chunk_count(len), count, "len {len}");
        assert_eq!(ciphertext_len(len), len + count * TAG, "len {len}");
    }
    assert_eq!(ciphertext_len(0), 16);
    // Absurd lengths saturate instead of panicking.
    let _ = ciphertext_len(u64::MAX);
    let _ = span_for_range(u64::MAX, 0, u64::MAX);
    let _ = span_for_range(u64::MAX, u64::MAX - 1, u64::MAX - 1);
    let _ = full_span(u64::MAX);
}

#[test]
fn round_trips() {
    let f = Fixture::new();
    for len in [0usize, 1, 65535, 65536, 65537, (1 << 20) + 3] {
        let plain = data(len, len as u64);
        let reference = encrypt(f.key(), &plain, len.max(1));
        for piece in [1usize, 7, CHUNK_SIZE, len.max(1)] {
            let cipher = encrypt(f.key(), &plain, piece);
            // Same key and nonces: the piece size must not change the output.
            assert_eq!(cipher, reference, "len {len} piece {piece}");
            for dpiece in [
                1usize,
                7,
                SEALED_CHUNK_SIZE,
                SEALED_CHUNK_SIZE + 1,
                cipher.len(),
            ] {
                let got =
                    decrypt(f.key(), len as u64, full_span(len as u64), &cipher, dpiece).unwrap();
                assert!(got == plain, "len {len} piece {piece} dpiece {dpiece}");
            }
        }
    }
}

#[test]
fn empty_pushes_are_harmless() {
    let f = Fixture::new();
    let plain = data(CHUNK_SIZE * 2, 9);
    let mut enc = StreamEncryptor::new(f.key());
    let mut out = Vec::new();
    enc.push(&[], &mut out).unwrap();
    enc.push(&plain[..CHUNK_SIZE], &mut out).unwrap();
    enc.push(&[], &mut out).unwrap();
    // A full chunk is held back until more data proves it is not last.
    assert!(out.is_empty());
    enc.push(&plain[CHUNK_SIZE..], &mut out).unwrap();
    assert_eq!(out.len(), SEALED_CHUNK_SIZE);
    enc.push(&[], &mut out).unwrap();
    assert_eq!(enc.finish(&mut out).unwrap(), plain.len() as u64);
    assert_eq!(out, encrypt(f.key(), &plain, CHUNK_SIZE * 2));

    let mut dec = StreamDecryptor::new(f.key(), plain.len() as u64, full_span(plain.len() as u64));
    let mut got = Vec::new();
    dec.push(&[], &mut got).unwrap();
    dec.push(&out, &mut got).unwrap();
    dec.push(&[], &mut got).unwrap();
    dec.finish().unwrap();
    assert!(got == plain);
}

#[test]
fn span_math_at_boundaries() {
    let len = 2 * CS + CS / 2;
    let total = ciphertext_len(len);
    let cases = [
        // (start, end, expected)
        (0, 0, (0, 0, 0, SCS, 0, 1)),
        (0, CS - 1, (0, 0, 0, SCS, 0, CS)),
        (CS - 1, CS - 1, (0, 0, 0, SCS, CHUNK_SIZE - 1, 1)),
        (CS - 1, CS, (0, 1, 0, 2 * SCS, CHUNK_SIZE - 1, 2)),
        (CS, CS, (1, 1, SCS, SCS, 0, 1)),
        (CS, 2 * CS - 1, (1, 1, SCS, SCS, 0, CS)),
        (CS + 5, 2 * CS, (1, 2, SCS, total - SCS, 5, CS - 4)),
        (2 * CS, len - 1, (2, 2, 2 * SCS, CS / 2 + TAG, 0, CS / 2)),
        (
            len - 1,
            len - 1,
            (2, 2, 2 * SCS, CS / 2 + TAG, CHUNK_SIZE / 2 - 1, 1),
        ),
        (0, len - 1, (0, 2, 0, total, 0, len)),
    ];
    for (start, end, (fc, lc, off, clen, skip, out)) in cases {
        let expected = CipherSpan {
            first_chunk: fc,
            last_chunk: lc,
            cipher_offset: off,
            cipher_len: clen,
            skip_front: skip,
            plaintext_len_out: out,
        };
        assert_eq!(span_for_range(len, start, end), expected, "{start}..={end}");
        assert_eq!(
            model_span(CS, len, start, end),
            expected,
            "model {start}..={end}"
        );
    }

    // Exactly one full chunk: that chunk is the last one.
    assert_eq!(
        span_for_range(CS, 0, CS - 1),
        CipherSpan {
            first_chunk: 0,
            last_chunk: 0,
            cipher_offset: 0,
            cipher_len: SCS,
            skip_front: 0,
            plaintext_len_out: CS
        }
    );
    assert_eq!(span_for_range(CS, 0, CS - 1), full_span(CS));
    assert_eq!(span_for_range(len, 0, len - 1), full_span(len));
    assert_eq!(
        full_span(0),
        CipherSpan {
            first_chunk: 0,
            last_chunk: 0,
            cipher_offset: 0,
            cipher_len: TAG,
            skip_front: 0,
            plaintext_len_out: 0
        }
    );
    // Out-of-contract input is clamped, not a panic.
    assert_eq!(span_for_range(0, 0, 0), full_span(0));
    assert_eq!(span_for_range(10, 5, 100), span_for_range(10, 5, 9));
    assert_eq!(span_for_range(10, 7, 3), span_for_range(10, 3, 3));
}

#[test]
fn span_math_matches_model_for_small_chunks() {
    for chunk in [1usize, 2, 3, 5, 16] {
        let layout = Layout { chunk };
        for len in 1..=40u64 {
            for start in 0..len {
                for end in start..len {
                    assert_eq!(
                        layout.span_for_range(len, start, end),
                        model_span(chunk as u64, len, start, end),
                        "chunk {chunk} len {len} {start}..={end}"
                    );
                }
            }
        }
    }
}

/// Every range of every object up to a few chunks, end to end with real
/// crypto, using tiny chunks so that chunk boundaries are everywhere.
#[test]
fn every_range_small_chunks() {
    let f = Fixture::new();
    for chunk in [1usize, 3, 16] {
        let layout = Layout { chunk };
        for len in 0..=(3 * chunk + 2) {
            let plain = data(len, 77 + len as u64);
            let cipher = encrypt_with(layout, f.key(), &plain, 5);
            let full = layout.full_span(len as u64);
            assert_eq!(
                decrypt_with(layout, f.key(), len as u64, full, &cipher, 4).unwrap(),
                plain
            );
            for start in 0..len {
                for end in start..len {
                    let span = layout.span_for_range(len as u64, start as u64, end as u64);
                    for piece in [1usize, 7, usize::MAX] {
                        let got = decrypt_with(
                            layout,
                            f.key(),
                            len as u64,
                            span,
                            span_bytes(&cipher, &span),
                            piece,
                        )
                        .unwrap();
                        assert_eq!(
                            got,
                            &plain[start..=end],
                            "chunk {chunk} len {len} {start}..={end}"
                        );
                    }
                }
            }
        }
    }
}

/// Every range of objects up to 300 bytes with the real chunk size (one chunk).
#[test]
fn every_range_up_to_300_bytes() {
    let f = Fixture::new();
    for len in [1usize, 2, 17, 255, 300] {
        let plain = data(len, len as u64);
        let cipher = encrypt(f.key(), &plain, 64);
        for start in 0..len {
            for end in start..len {
                let span = span_for_range(len as u64, start as u64, end as u64);
                let got =
                    decrypt(f.key(), len as u64, span, span_bytes(&cipher, &span), 100).unwrap();
                assert_eq!(got, &plain[start..=end]);
            }
        }
    }
}

/// Ranges of a 2.5-chunk object with the real chunk size: every pair from a
/// set of boundary and pseudo-random points.
#[test]
fn ranges_of_two_and_a_half_chunks() {
    let f = Fixture::new();
    let len = 2 * CHUNK_SIZE + CHUNK_SIZE / 2;
    let plain = data(len, 42);
    let cipher = encrypt(f.key(), &plain, 10_000);
    let mut points = vec![0usize, 1, 2, len - 2, len - 1, len / 2];
    for b in [CHUNK_SIZE, 2 * CHUNK_SIZE] {
        points.extend([b - 2, b - 1, b, b + 1]);
    }
    points.extend(
        data(12, 5)
            .chunks(2)
            .map(|c| (usize::from(c[0]) << 8 | usize::from(c[1])) * 2),
    );
    points.sort_unstable();
    points.dedup();
    for &start in &points {
        for &end in points.iter().filter(|&&e| e >= start) {
            let span = span_for_range(len as u64, start as u64, end as u64);
            for piece in [4093usize, SEALED_CHUNK_SIZE] {
                let got =
                    decrypt(f.key(), len as u64, span, span_bytes(&cipher, &span), piece).unwrap();
                assert!(got == plain[start..=end], "{start}..={end}");
            }
        }
    }
}

#[test]
fn every_flipped_byte_is_detected() {
    let f = Fixture::new();
    let len = CHUNK_SIZE + 100;
    let plain = data(len, 1);
    let mut cipher = encrypt(f.key(), &plain, len);
    let span = full_span(len as u64);
    for i in 0..cipher.len() {
        let bit = 1u8 << (i % 8);
        cipher[i] ^= bit;
        let err = decrypt(f.key(), len as u64, span, &cipher, cipher.len()).unwrap_err();
        let chunk = (i / SEALED_CHUNK_SIZE) as u64;
        assert_eq!(err, ChunkError::Authentication { chunk }, "byte {i}");
        cipher[i] ^= bit;
    }
    assert!(decrypt(f.key(), len as u64, span, &cipher, cipher.len()).unwrap() == plain);
}

#[test]
fn every_flipped_byte_is_detected_small_chunks() {
    let f = Fixture::new();
    let layout = Layout { chunk: 8 };
    for len in [0usize, 5, 8, 20] {
        let plain = data(len, 3);
        let mut cipher = encrypt_with(layout, f.key(), &plain, 3);
        let span = layout.full_span(len as u64);
        for i in 0..cipher.len() {
            for bit in 0..8 {
                cipher[i] ^= 1 << bit;
                let r = decrypt_with(layout, f.key(), len as u64, span, &cipher, 5);
                assert!(
                    matches!(r, Err(ChunkError::Authentication { .. })),
                    "len {len} byte {i}"
                );
                cipher[i] ^= 1 << bit;
            }
        }
    }
}

#[test]
fn truncation_is_detected() {
    let f = Fixture::new();
    let len = 2 * CHUNK_SIZE + 10;
    let plain = data(len, 2);
    let cipher = encrypt(f.key(), &plain, len);
    let span = full_span(len as u64);

    // Drop the last chunk entirely.
    let cut = &cipher[..2 * SEALED_CHUNK_SIZE];
    assert_eq!(
        decrypt(f.key(), len as u64, span, cut, 1000),
        Err(ChunkError::Truncated)
    );
    // Drop a few bytes, or one.
    for drop in [1usize, 5, TAG_LEN, 26] {
        let cut = &cipher[..cipher.len() - drop];
        assert_eq!(
            decrypt(f.key(), len as u64, span, cut, 1000),
            Err(ChunkError::Truncated)
        );
    }
    // Nothing at all.
    assert_eq!(
        decrypt(f.key(), len as u64, span, &[], 1),
        Err(ChunkError::Truncated)
    );

    // Drop the tail and lie about the length so that the previous full
    // chunk would be the last one: its "not last" nonce gives it away.
    for keep_chunks in [1u64, 2] {
        let fake_len = keep_chunks * CS;
        let cut = &cipher[..(keep_chunks * SCS) as usize];
        assert_eq!(
            decrypt(f.key(), fake_len, full_span(fake_len), cut, 1000),
            Err(ChunkError::Authentication {
                chunk: keep_chunks - 1
            })
        );
        // Same with a range read that touches only the would-be last chunk.
        let span = span_for_range(fake_len, fake_len - 1, fake_len - 1);
        assert_eq!(
            decrypt(f.key(), fake_len, span, span_bytes(cut, &span), 1000),
            Err(ChunkError::Authentication {
                chunk: keep_chunks - 1
            })
        );
    }

    // Lying the other way: claiming a shorter last chunk.
    let short_len = (len - 3) as u64;
    let r = decrypt(
        f.key(),
        short_len,
        full_span(short_len),
        &cipher[..cipher.len() - 3],
        1000,
    );
    assert_eq!(r, Err(ChunkError::Authentication { chunk: 2 }));
}

#[test]
fn extension_is_detected() {
    let f = Fixture::new();
    let len = CHUNK_SIZE + 1;
    let plain = data(len, 4);
    let mut cipher = encrypt(f.key(), &plain, len);
    cipher.push(0);
    let span = full_span(len as u64);
    assert_eq!(
        decrypt(f.key(), len as u64, span, &cipher, cipher.len()),
        Err(ChunkError::TooLong)
    );
    assert_eq!(
        decrypt(f.key(), len as u64, span, &cipher, 1),
        Err(ChunkError::TooLong)
    );

    // Appending a whole extra chunk from a longer stream under the same key
    // fails too: the old last chunk is flagged last.
    let longer = data(2 * CHUNK_SIZE + 1, 4);
    let longer_cipher = encrypt(f.key(), &longer, 99_999);
    let ext_len = 2 * CS + 1;
    assert_eq!(
        decrypt(
            f.key(),
            ext_len,
            full_span(ext_len),
            &longer_cipher[..],
            4096
        )
        .unwrap(),
        longer
    );
    let mut spliced = encrypt(f.key(), &longer[..CHUNK_SIZE * 2], 99_999);
    spliced.extend_from_slice(&longer_cipher[2 * SEALED_CHUNK_SIZE..]);
    assert_eq!(
        decrypt(f.key(), ext_len, full_span(ext_len), &spliced, 4096),
        Err(ChunkError::Authentication { chunk: 1 })
    );
}

#[test]
fn reordering_is_detected() {
    let f = Fixture::new();
    let len = 3 * CHUNK_SIZE;
    let plain = data(len, 5);
    let cipher = encrypt(f.key(), &plain, len);
    let chunks: Vec<&[u8]> = cipher.chunks(SEALED_CHUNK_SIZE).collect();
    assert_eq!(chunks.len(), 3);
    for (a, b) in [(0usize, 1usize), (1, 2), (0, 2)] {
        let mut order = [0usize, 1, 2];
        order.swap(a, b);
        let swapped: Vec<u8> = order
            .iter()
            .flat_map(|&i| chunks[i].iter().copied())
            .collect();
        let err = decrypt(
            f.key(),
            len as u64,
            full_span(len as u64),
            &swapped,
            1 << 20,
        )
        .unwrap_err();
        assert_eq!(err, ChunkError::Authentication { chunk: a as u64 });
    }
    // A range read of chunk 1 served chunk 0's bytes.
    let span = span_for_range(len as u64, CS, CS + 10);
    assert_eq!(
        decrypt(f.key(), len as u64, span, chunks[0], 1 << 20),
        Err(ChunkError::Authentication { chunk: 1 })
    );
}

#[test]
fn chunks_from_another_stream_are_rejected() {
    let f = Fixture::new();
    let other_salt = StreamSalt::random().unwrap();
    let len = 2 * CHUNK_SIZE + 7;
    let plain = data(len, 6);
    let cipher = encrypt(f.key(), &plain, len);
    let other = encrypt(f.dek.stream_key(1, &other_salt).unwrap(), &plain, len);
    assert_ne!(cipher, other);
    for i in 0..3 {
        let mut mixed = cipher.clone();
        let range = i * SEALED_CHUNK_SIZE..((i + 1) * SEALED_CHUNK_SIZE).min(cipher.len());
        mixed[range.clone()].copy_from_slice(&other[range]);
        assert_eq!(
            decrypt(f.key(), len as u64, full_span(len as u64), &mixed, 1 << 20),
            Err(ChunkError::Authentication { chunk: i as u64 })
        );
    }
    // Another part number of the same upload is another stream as well.
    let part2 = encrypt(f.dek.stream_key(2, &f.salt).unwrap(), &plain, len);
    assert_ne!(part2, cipher);
    assert_eq!(
        decrypt(f.key(), len as u64, full_span(len as u64), &part2, 1 << 20),
        Err(ChunkError::Authentication { chunk: 0 })
    );
}

#[test]
fn wrong_key_is_detected_even_for_empty_objects() {
    let f = Fixture::new();
    let g = Fixture::new();
    for len in [0usize, 1, CHUNK_SIZE] {
        let plain = data(len, 7);
        let cipher = encrypt(f.key(), &plain, 1000);
        assert_eq!(
            decrypt(g.key(), len as u64, full_span(len as u64), &cipher, 1000),
            Err(ChunkError::Authentication { chunk: 0 })
        );
        // Same DEK, other salt.
        let salted = f.dek.stream_key(1, &g.salt).unwrap();
        assert_eq!(
            decrypt(salted, len as u64, full_span(len as u64), &cipher, 1000),
            Err(ChunkError::Authentication { chunk: 0 })
        );
    }
}

#[test]
fn fresh_salts_give_different_ciphertexts() {
    let f = Fixture::new();
    let s2 = StreamSalt::random().unwrap();
    assert_ne!(f.salt, s2);
    for len in [0usize, 1, 1000] {
        let plain = data(len, 8);
        let a = encrypt(f.key(), &plain, 100);
        let b = encrypt(f.dek.stream_key(1, &s2).unwrap(), &plain, 100);
        assert_eq!(a.len(), b.len());
        assert_ne!(a, b);
    }
}

#[test]
fn last_flag_is_bound() {
    let f = Fixture::new();
    let key = f.key();
    let plain = data(CHUNK_SIZE, 10);
    for last in [false, true] {
        let mut buf = plain.clone();
        key.seal_chunk(0, last, &mut buf).unwrap();
        assert_eq!(buf.len(), SEALED_CHUNK_SIZE);
        let mut wrong = buf.clone();
        assert_eq!(
            key.open_chunk(0, !last, &mut wrong).unwrap_err(),
            ChunkError::Authentication { chunk: 0 }
        );
        let mut other_index = buf.clone();
        assert_eq!(
            key.open_chunk(1, last, &mut other_index).unwrap_err(),
            ChunkError::Authentication { chunk: 1 }
        );
        let opened = key.open_chunk(0, last, &mut buf).unwrap();
        assert!(*opened == plain[..]);
    }
}

#[test]
fn seal_chunk_matches_encryptor_and_checks_lengths() {
    let f = Fixture::new();
    let key = f.key();
    let plain = data(CHUNK_SIZE + 3, 11);
    let mut manual = Vec::new();
    let mut c0 = plain[..CHUNK_SIZE].to_vec();
    key.seal_chunk(0, false, &mut c0).unwrap();
    manual.extend_from_slice(&c0);
    let mut c1 = plain[CHUNK_SIZE..].to_vec();
    key.seal_chunk(1, true, &mut c1).unwrap();
    manual.extend_from_slice(&c1);
    assert_eq!(manual, encrypt(f.key(), &plain, 5000));

    let mut empty = Vec::new();
    key.seal_chunk(0, true, &mut empty).unwrap();
    assert_eq!(empty, encrypt(f.key(), &[], 1));

    for (index, last, len) in [
        (0u64, true, CHUNK_SIZE + 1),
        (0, false, CHUNK_SIZE + 1),
        (0, false, CHUNK_SIZE - 1),
        (3, false, 0),
        (1, true, 0),
    ] {
        let mut buf = vec![0u8; len];
        assert_eq!(
            key.seal_chunk(index, last, &mut buf),
            Err(CryptoError::InvalidChunk { index, len }),
            "{index} {last} {len}"
        );
        assert_eq!(buf, vec![0u8; len], "buffer untouched on refusal");
    }

    let mut short = [0u8; TAG_LEN - 1];
    assert_eq!(
        key.open_chunk(0, true, &mut short).unwrap_err(),
        ChunkError::Truncated
    );
    let mut long = vec![0u8; SEALED_CHUNK_SIZE + 1];
    assert_eq!(
        key.open_chunk(0, true, &mut long).unwrap_err(),
        ChunkError::TooLong
    );
}

#[test]
fn nonce_layout() {
    let n = chunk_nonce(0x0102_0304_0506_0708, true);
    assert_eq!(n.as_ref(), &[0, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 1]);
    assert_eq!(chunk_nonce(0, false).as_ref(), &[0u8; 12]);
}

#[test]
fn decryptor_releases_nothing_unverified_and_stays_failed() {
    let f = Fixture::new();
    let len = 3 * CHUNK_SIZE;
    let plain = data(len, 12);
    let mut cipher = encrypt(f.key(), &plain, len);
    cipher[SEALED_CHUNK_SIZE + 10] ^= 1; // corrupt chunk 1

    let mut dec = StreamDecryptor::new(f.key(), len as u64, full_span(len as u64));
    let mut out = vec![0xAAu8; 3]; // existing content must be preserved
    // Chunk 0 whole and most of chunk 1 in one push: chunk 0 is released.
    dec.push(&cipher[..SEALED_CHUNK_SIZE + 100], &mut out)
        .unwrap();
    assert_eq!(out.len(), 3 + CHUNK_SIZE);
    assert!(out[3..] == plain[..CHUNK_SIZE]);
    // Completing chunk 1 fails, and nothing of it shows up in `out`.
    let err = dec
        .push(
            &cipher[SEALED_CHUNK_SIZE + 100..2 * SEALED_CHUNK_SIZE + 5],
            &mut out,
        )
        .unwrap_err();
    assert_eq!(err, ChunkError::Authentication { chunk: 1 });
    assert_eq!(out.len(), 3 + CHUNK_SIZE);
    // Poisoned from now on.
    assert_eq!(
        dec.push(&cipher[2 * SEALED_CHUNK_SIZE + 5..], &mut out),
        Err(err)
    );
    assert_eq!(out.len(), 3 + CHUNK_SIZE);
    assert_eq!(dec.finish(), Err(err));

    // Same for a single push holding everything.
    let mut dec = StreamDecryptor::new(f.key(), len as u64, full_span(len as u64));
    let mut out = Vec::new();
    assert_eq!(dec.push(&cipher, &mut out), Err(err));
    assert!(out == plain[..CHUNK_SIZE]);
}

#[test]
fn push_after_completion_is_too_long() {
    let f = Fixture::new();
    let len = 100usize;
    let plain = data(len, 13);
    let cipher = encrypt(f.key(), &plain, len);
    let mut dec = StreamDecryptor::new(f.key(), len as u64, full_span(len as u64));
    let mut out = Vec::new();
    dec.push(&cipher, &mut out).unwrap();
    assert_eq!(out, plain);
    assert_eq!(dec.push(&[0], &mut out), Err(ChunkError::TooLong));
    assert_eq!(out, plain);
    assert_eq!(dec.finish(), Err(ChunkError::TooLong));
}

#[test]
fn debug_is_redacted() {
    let f = Fixture::new();
    let key = f.key();
    assert_eq!(format!("{key:?}"), "StreamKey(<redacted>)");
    let enc = StreamEncryptor::new(f.key());
    assert!(!format!("{enc:?}").contains("LessSafeKey"));
    let dec = StreamDecryptor::new(f.key(), 0, full_span(0));
    assert!(format!("{dec:?}").starts_with("StreamDecryptor"));
}

/// Decrypts `cipher` (exactly the span's bytes) with `open_in_place`, fed in
/// buffers of `chunks_per_buf` whole sealed chunks, as the read path does.
fn open_in_place_with(
    layout: Layout,
    key: StreamKey,
    plaintext_len: u64,
    span: CipherSpan,
    cipher: &[u8],
    chunks_per_buf: usize,
) -> Result<Vec<u8>, ChunkError> {
    let mut dec = StreamDecryptor::with_layout(key, plaintext_len, span, layout);
    let mut out = Vec::new();
    let mut ranges = Vec::new();
    let step = (layout.chunk + TAG_LEN) * chunks_per_buf.max(1);
    for piece in cipher.chunks(step) {
        let mut buf = piece.to_vec();
        ranges.clear();
        dec.open_in_place(&mut buf, &mut ranges)?;
        let mut last_end = 0;
        for r in &ranges {
            assert!(r.start >= last_end && r.end <= buf.len() && r.start < r.end);
            last_end = r.end;
            out.extend_from_slice(&buf[r.clone()]);
        }
    }
    dec.finish()?;
    Ok(out)
}

/// `open_in_place` gives what `push` gives, for every range of objects of a
/// few tiny chunks and any number of chunks per buffer.
#[test]
fn open_in_place_every_range_small_chunks() {
    let f = Fixture::new();
    for chunk in [1usize, 3, 16] {
        let layout = Layout { chunk };
        for len in 0..=(3 * chunk + 2) {
            let plain = data(len, 91 + len as u64);
            let cipher = encrypt_with(layout, f.key(), &plain, 5);
            let full = layout.full_span(len as u64);
            for per_buf in [1usize, 2, 4] {
                assert_eq!(
                    open_in_place_with(layout, f.key(), len as u64, full, &cipher, per_buf)
                        .unwrap(),
                    plain
                );
            }
            for start in 0..len {
                for end in start..len {
                    let span = layout.span_for_range(len as u64, start as u64, end as u64);
                    for per_buf in [1usize, 2, 5] {
                        let got = open_in_place_with(
                            layout,
                            f.key(),
                            len as u64,
                            span,
                            span_bytes(&cipher, &span),
                            per_buf,
                        )
                        .unwrap();
                        assert_eq!(
                            got,
                            &plain[start..=end],
                            "chunk {chunk} len {len} {start}..={end} per_buf {per_buf}"
                        );
                    }
                }
            }
        }
    }
}

/// Real chunk size, ranges at odd offsets across chunk boundaries.
#[test]
fn open_in_place_odd_ranges_real_chunks() {
    let f = Fixture::new();
    let len = 3 * CHUNK_SIZE + 12_345;
    let plain = data(len, 17);
    let cipher = encrypt(f.key(), &plain, 100_000);
    let points = [
        0usize,
        1,
        4095,
        CHUNK_SIZE - 1,
        CHUNK_SIZE,
        CHUNK_SIZE + 7,
        2 * CHUNK_SIZE - 3,
        3 * CHUNK_SIZE + 1,
        len - 1,
    ];
    for &start in &points {
        for &end in points.iter().filter(|&&e| e >= start) {
            let span = span_for_range(len as u64, start as u64, end as u64);
            for per_buf in [1usize, 3, 16] {
                let got = open_in_place_with(
                    Layout::DEFAULT,
                    f.key(),
                    len as u64,
                    span,
                    span_bytes(&cipher, &span),
                    per_buf,
                )
                .unwrap();
                assert!(
                    got == plain[start..=end],
                    "{start}..={end} per_buf {per_buf}"
                );
            }
        }
    }
}

/// A tampered chunk in the middle of a buffer: nothing of the buffer is
/// released, earlier buffers were, and the decryptor stays failed.
#[test]
fn open_in_place_refuses_a_tampered_chunk_mid_stream() {
    let f = Fixture::new();
    let len = 5 * CHUNK_SIZE + 3;
    let plain = data(len, 23);
    let mut cipher = encrypt(f.key(), &plain, len);
    cipher[3 * SEALED_CHUNK_SIZE + 1000] ^= 0x40; // chunk 3

    let mut dec = StreamDecryptor::new(f.key(), len as u64, full_span(len as u64));
    let mut ranges = vec![7..9, 0..1]; // existing entries must be kept
    let mut first = cipher[..2 * SEALED_CHUNK_SIZE].to_vec();
    dec.open_in_place(&mut first, &mut ranges).unwrap();
    assert_eq!(
        ranges,
        vec![
            7..9,
            0..1,
            0..CHUNK_SIZE,
            SEALED_CHUNK_SIZE..SEALED_CHUNK_SIZE + CHUNK_SIZE
        ]
    );
    assert!(first[..CHUNK_SIZE] == plain[..CHUNK_SIZE]);

    // Chunks 2, 3 (tampered) and 4 in one buffer: chunk 2 verifies, yet no
    // range of this buffer comes out.
    let mut second = cipher[2 * SEALED_CHUNK_SIZE..].to_vec();
    let err = dec.open_in_place(&mut second, &mut ranges).unwrap_err();
    assert_eq!(err, ChunkError::Authentication { chunk: 3 });
    assert_eq!(ranges.len(), 4);
    // Poisoned from now on, whatever comes next.
    let mut again = cipher[2 * SEALED_CHUNK_SIZE..3 * SEALED_CHUNK_SIZE].to_vec();
    assert_eq!(dec.open_in_place(&mut again, &mut ranges), Err(err));
    assert_eq!(dec.finish(), Err(err));
}

#[test]
fn open_in_place_detects_truncation_and_extension() {
    let f = Fixture::new();
    let len = 2 * CHUNK_SIZE + 10;
    let plain = data(len, 29);
    let cipher = encrypt(f.key(), &plain, len);
    let span = full_span(len as u64);
    let open = |bufs: &[&[u8]]| {
        let mut dec = StreamDecryptor::new(f.key(), len as u64, span);
        let mut ranges = Vec::new();
        for b in bufs {
            dec.open_in_place(&mut b.to_vec(), &mut ranges)?;
        }
        dec.finish()
    };
    let whole = &cipher[..];
    assert_eq!(open(&[whole]), Ok(()));
    // A missing last chunk: every buffer verifies, finish() refuses.
    assert_eq!(
        open(&[&cipher[..2 * SEALED_CHUNK_SIZE]]),
        Err(ChunkError::Truncated)
    );
    // A buffer ending inside a chunk.
    for cut in [1usize, TAG_LEN, 26] {
        assert_eq!(
            open(&[&cipher[..cipher.len() - cut]]),
            Err(ChunkError::Truncated)
        );
        assert_eq!(
            open(&[
                &cipher[..SEALED_CHUNK_SIZE],
                &cipher[SEALED_CHUNK_SIZE..SEALED_CHUNK_SIZE + 5]
            ]),
            Err(ChunkError::Truncated)
        );
    }
    // Bytes past the span.
    let mut longer = cipher.clone();
    longer.push(0);
    assert_eq!(open(&[&longer]), Err(ChunkError::TooLong));
    assert_eq!(open(&[whole, &[0u8; 17][..]]), Err(ChunkError::TooLong));
    // A dropped tail with a lying length: the "not last" nonce gives it away.
    let fake_len = 2 * CS;
    let mut dec = StreamDecryptor::new(f.key(), fake_len, full_span(fake_len));
    let mut cut = cipher[..2 * SEALED_CHUNK_SIZE].to_vec();
    assert_eq!(
        dec.open_in_place(&mut cut, &mut Vec::new()),
        Err(ChunkError::Authentication { chunk: 1 })
    );
}

#[test]
fn open_in_place_after_a_partial_push_is_refused() {
    let f = Fixture::new();
    let len = 2 * CHUNK_SIZE;
    let plain = data(len, 31);
    let cipher = encrypt(f.key(), &plain, len);
    let mut dec = StreamDecryptor::new(f.key(), len as u64, full_span(len as u64));
    let mut out = Vec::new();
    dec.push(&cipher[..100], &mut out).unwrap();
    let mut rest = cipher[100..].to_vec();
    assert_eq!(
        dec.open_in_place(&mut rest, &mut Vec::new()),
        Err(ChunkError::Truncated)
    );
    assert!(out.is_empty());
}

fn len_and_range(max_len: usize) -> impl Strategy<Value = (usize, usize, usize)> {
    (1..=max_len).prop_flat_map(|len| {
        (0..len).prop_flat_map(move |start| (Just(len), Just(start), start..len))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn prop_round_trip_real_chunks(
        (len, start, end) in len_and_range(3 * CHUNK_SIZE + 100),
        piece in 1usize..100_000,
        dpiece in 1usize..100_000,
        seed in any::<u64>(),
    ) {
        let f = Fixture::new();
        let plain = data(len, seed);
        let cipher = encrypt(f.key(), &plain, piece);
        prop_assert_eq!(cipher.len() as u64, ciphertext_len(len as u64));
        let span = span_for_range(len as u64, start as u64, end as u64);
        prop_assert_eq!(span, model_span(CS, len as u64, start as u64, end as u64));
        let got = decrypt(f.key(), len as u64, span, span_bytes(&cipher, &span), dpiece).unwrap();
        prop_assert!(got == plain[start..=end]);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn prop_round_trip_small_chunks(
        chunk in 1usize..20,
        (len, start, end) in len_and_range(120),
        piece in 1usize..50,
        dpiece in 1usize..50,
        seed in any::<u64>(),
    ) {
        let layout = Layout { chunk };
        let f = Fixture::new();
        let plain = data(len, seed);
        let cipher = encrypt_with(layout, f.key(), &plain, piece);
        let span = layout.span_for_range(len as u64, start as u64, end as u64);
        let got = decrypt_with(layout, f.key(), len as u64, span, span_bytes(&cipher, &span), dpiece).unwrap();
        prop_assert_eq!(&got[..], &plain[start..=end]);

        // Flip one byte of the span: must fail, whatever the byte.
        let mut bad = span_bytes(&cipher, &span).to_vec();
        let at = (seed as usize) % bad.len();
        bad[at] ^= 0x40;
        let r = decrypt_with(layout, f.key(), len as u64, span, &bad, dpiece);
        let failed = matches!(r, Err(ChunkError::Authentication { .. }));
        prop_assert!(failed, "tampered byte {} accepted", at);
    }
}
