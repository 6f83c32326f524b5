//! The former pre-parse guard, compiled for tests only: it read a payload's
//! depth and widths off the bytes before the parse. The bounded parse must
//! refuse exactly what it refused, at the same pointer and in the same
//! document order, for every well-formed payload (`tests.rs`).

use crate::schema::{Violation, escape_pointer_segment};

use super::{MAX_ARRAY_ITEMS, MAX_OBJECT_KEYS, ShapeError};

/// One open array or object.
struct Frame {
    object: bool,
    /// Commas seen at this level: members so far, less one.
    commas: usize,
    /// In an object: the next string at this level is a key.
    want_key: bool,
    /// In an object: where the current member's key (quotes included) is.
    key: (usize, usize),
}

/// The first shape problem of `bytes` read as JSON, in document order.
/// Brackets and commas inside strings do not count. Malformed input is left
/// to the parser, except that it may be refused here first (a run of commas
/// counts as items). Members are counted as written: an object that repeats
/// a key counts each repeat.
pub fn check_shape(bytes: &[u8], max_depth: usize) -> Result<(), ShapeError> {
    let mut frames: Vec<Frame> = Vec::new();
    let mut at = 0;
    while let Some(&b) = bytes.get(at) {
        match b {
            b'"' => {
                // An unterminated string: nothing after it counts.
                let Some(end) = string_end(bytes, at + 1) else {
                    return Ok(());
                };
                if let Some(top) = frames.last_mut().filter(|f| f.object && f.want_key) {
                    top.want_key = false;
                    top.key = (at, end);
                }
                at = end;
                continue;
            }
            b'[' | b'{' => {
                if frames.len() >= max_depth {
                    return Err(ShapeError::TooDeep);
                }
                frames.push(Frame {
                    object: b == b'{',
                    commas: 0,
                    want_key: b == b'{',
                    key: (0, 0),
                });
            }
            b']' | b'}' => {
                frames.pop();
            }
            b',' => {
                if let Some(top) = frames.last_mut() {
                    top.commas += 1;
                    top.want_key = top.object;
                    let bound = if top.object {
                        MAX_OBJECT_KEYS
                    } else {
                        MAX_ARRAY_ITEMS
                    };
                    // The comma opens member `commas + 1`.
                    if top.commas >= bound {
                        return Err(ShapeError::TooWide(too_wide(bytes, &frames)));
                    }
                }
            }
            _ => {}
        }
        at += 1;
    }
    Ok(())
}

/// The violation for the innermost frame, named by the pointer the frames
/// below it spell out. Only a refused payload pays for it.
fn too_wide(bytes: &[u8], frames: &[Frame]) -> Violation {
    let (wide, path) = frames.split_last().expect("a frame is open");
    let mut pointer = String::new();
    for frame in path {
        pointer.push('/');
        if frame.object {
            let (start, end) = frame.key;
            let key = serde_json::from_slice::<String>(&bytes[start..end])
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes[start..end]).into_owned());
            pointer.push_str(&escape_pointer_segment(&key));
        } else {
            pointer.push_str(&frame.commas.to_string());
        }
    }
    if wide.object {
        Violation {
            pointer,
            code: "too_many_keys",
            message: format!("holds more than {MAX_OBJECT_KEYS} keys"),
        }
    } else {
        Violation {
            pointer,
            code: "too_many_items",
            message: format!("holds more than {MAX_ARRAY_ITEMS} items"),
        }
    }
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
