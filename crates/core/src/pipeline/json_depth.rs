//! A pre-parse guard: refuse JSON nested deeper than the configured limit
//! before building any value, so hostile input costs one linear scan.

/// True when `bytes`, read as JSON, opens more than `max` nested arrays/objects.
/// Brackets inside strings do not count. Malformed input is left to the parser.
pub fn exceeds_depth(bytes: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
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

    proptest! {
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
