//! A pre-parse guard: refuse JSON nested deeper than the configured limit
//! before building any value, so hostile input costs one linear scan.

/// True when `bytes`, read as JSON, opens more than `max` nested arrays/objects.
/// Brackets inside strings do not count. Malformed input is left to the parser.
pub fn exceeds_depth(bytes: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        match b {
            b'"' => match string_end(bytes, at + 1) {
                Some(end) => {
                    at = end;
                    continue;
                }
                // An unterminated string: nothing after it counts.
                None => return false,
            },
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at += 1;
    }
    false
}

/// The position just past the quote closing the string whose content starts
/// at `from`. Most of a record's bytes are inside strings: they are skipped
/// by memchr rather than read one by one.
fn string_end(bytes: &[u8], mut from: usize) -> Option<usize> {
    loop {
        let rest = bytes.get(from..)?;
        let found = from + memchr::memchr2(b'"', b'\\', rest)?;
        if bytes[found] == b'"' {
            return Some(found + 1);
        }
        // A backslash escapes the byte after it.
        from = found + 2;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn counts_nesting_outside_strings_only() {
        assert!(!exceeds_depth(br#"{"a":[1,{"b":2}]}"#, 3));
        assert!(exceeds_depth(br#"{"a":[1,{"b":2}]}"#, 2));
        assert!(!exceeds_depth(br#"{"a":"[[[[[[{{{{"}"#, 1));
        assert!(!exceeds_depth(br#"{"a":"\"[[[["}"#, 1));
        assert!(exceeds_depth(&[b'['; 10_000], 64));
    }

    fn nested(depth: usize) -> String {
        "[".repeat(depth) + &"]".repeat(depth)
    }

    /// The byte-by-byte scan the fast one must agree with.
    fn reference(bytes: &[u8], max: usize) -> bool {
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for &b in bytes {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'[' | b'{' => {
                    depth += 1;
                    if depth > max {
                        return true;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        false
    }

    proptest! {
        #[test]
        fn agrees_with_a_byte_by_byte_scan(
            bytes in proptest::collection::vec(proptest::sample::select(b"[]{}\"\\ab".to_vec()), 0..64),
            max in 0usize..6,
        ) {
            prop_assert_eq!(exceeds_depth(&bytes, max), reference(&bytes, max));
        }

        #[test]
        fn agrees_with_the_real_nesting_depth(depth in 0usize..200, max in 1usize..100) {
            prop_assert_eq!(exceeds_depth(nested(depth).as_bytes(), max), depth > max);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512), max in 0usize..10) {
            let _ = exceeds_depth(&bytes, max);
        }
    }
}
