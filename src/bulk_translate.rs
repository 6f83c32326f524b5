//! `translate --jsonl`: bulk translation for a backfill or a registry
//! migration. One record per line in, one output per line out, in input
//! order; memory bounded by one batch of lines; the batch translated on every
//! worker thread at once.
//!
//! Output framing (documented in the CLI help and the README):
//! - line N of the output belongs to line N of the input; a record that is
//!   invalid, or whose route is denied, gets an empty line;
//! - JSON routes: the encoder's bytes, which are compact JSON on one line;
//! - XML routes: the document as one JSON string (`jq -j .` gives back
//!   exactly the bytes `translate --input/--out` writes). Escaping line
//!   feeds as `&#10;` could not be undone exactly: the encoders already
//!   write `&#10;` for a line feed inside an attribute value.
//!
//! Problems go to the error writer by line number and JSON pointer or rule,
//! never by value.

use std::io::{BufRead, Write};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::config::RouteConfig;
use crate::pipeline::Pipeline;
use crate::policy::Outcome;
use crate::translate::{self, TranslateError};

/// Lines read and translated together: bounds memory, and is large enough
/// that the threads' start-up is paid rarely.
const BATCH_LINES: usize = 2048;

pub struct Options {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Print a progress line every this often; `None`: never.
    pub progress: Option<Duration>,
    pub timestamp: Option<DateTime<Utc>>,
}

/// What a run did, for the exit code and the final line.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub lines: u64,
    pub translated: u64,
    pub invalid: u64,
    pub denied: u64,
}

/// One line's result: the output line, and what to report for it.
enum LineOutcome {
    /// The bytes, and whether they are JSON.
    Translated(Vec<u8>, bool),
    Invalid(Vec<String>),
    Denied(String),
}

#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    #[error("no source named {0} is configured")]
    UnknownSource(String),
    #[error("no route named {0} is configured")]
    UnknownRoute(String),
    #[error("reading input line {line}: {error}")]
    Read { line: u64, error: std::io::Error },
    #[error("writing output: {0}")]
    Write(#[from] std::io::Error),
}

/// Translate every line of `input` through `route`, writing outputs to `out`
/// and problems (and progress) to `err`.
pub fn run(
    pipeline: &Pipeline,
    source: &str,
    route: &str,
    input: impl BufRead,
    mut out: impl Write,
    mut err: impl Write,
    options: &Options,
) -> Result<Summary, BulkError> {
    if !pipeline.config().sources.contains_key(source) {
        return Err(BulkError::UnknownSource(source.to_string()));
    }
    let route = pipeline
        .config()
        .routes
        .iter()
        .find(|r| r.name == route)
        .ok_or_else(|| BulkError::UnknownRoute(route.to_string()))?;
    let threads = options.threads.max(1);
    let started = Instant::now();
    let mut last_progress = started;
    let mut summary = Summary::default();
    let mut lines = input.split(b'\n');
    loop {
        let mut batch = Vec::with_capacity(BATCH_LINES);
        for line in lines.by_ref().take(BATCH_LINES) {
            let mut line = line.map_err(|error| BulkError::Read {
                line: summary.lines + batch.len() as u64 + 1,
                error,
            })?;
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            batch.push(line);
        }
        if batch.is_empty() {
            break;
        }
        let outcomes = translate_batch(pipeline, source, route, &batch, threads, options);
        for outcome in outcomes {
            summary.lines += 1;
            report(
                &mut out,
                &mut err,
                summary.lines,
                route,
                outcome,
                &mut summary,
            )?;
        }
        if let Some(every) = options.progress
            && last_progress.elapsed() >= every
        {
            last_progress = Instant::now();
            progress_line(&mut err, &summary, started.elapsed())?;
        }
    }
    out.flush()?;
    if options.progress.is_some() {
        progress_line(&mut err, &summary, started.elapsed())?;
    }
    Ok(summary)
}

/// The batch split in `threads` contiguous slices, each on its own thread;
/// the results come back in input order.
fn translate_batch(
    pipeline: &Pipeline,
    source: &str,
    route: &RouteConfig,
    batch: &[Vec<u8>],
    threads: usize,
    options: &Options,
) -> Vec<LineOutcome> {
    let one = |line: &Vec<u8>| translate_line(pipeline, source, route, line, options.timestamp);
    if threads == 1 || batch.len() < 2 * threads {
        return batch.iter().map(one).collect();
    }
    let chunk = batch.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = batch
            .chunks(chunk)
            .map(|lines| scope.spawn(move || lines.iter().map(one).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a translation thread panicked"))
            .collect()
    })
}

fn translate_line(
    pipeline: &Pipeline,
    source: &str,
    route: &RouteConfig,
    line: &[u8],
    timestamp: Option<DateTime<Utc>>,
) -> LineOutcome {
    let prepared = match translate::prepare(pipeline, source, line, timestamp) {
        Ok(p) => p,
        Err(TranslateError::Invalid(violations)) => {
            return LineOutcome::Invalid(
                violations
                    .iter()
                    .map(|v| {
                        let pointer = if v.pointer.is_empty() {
                            "(document)"
                        } else {
                            &v.pointer
                        };
                        format!("{pointer} [{}]", v.code)
                    })
                    .collect(),
            );
        }
        Err(TranslateError::UnknownSource(s)) => {
            return LineOutcome::Invalid(vec![format!("no source named {s}")]);
        }
    };
    if prepared.canonical().record_type != route.record_type {
        return LineOutcome::Denied(format!(
            "[record-type] the route takes {} records, this is a {}",
            route.record_type,
            prepared.canonical().record_type
        ));
    }
    match translate::route_last(pipeline, prepared, route) {
        (Some(file), _) => {
            let json = file.name.ends_with(".json");
            LineOutcome::Translated(file.bytes, json)
        }
        (None, decision) if decision.decision == Outcome::Deny => {
            LineOutcome::Denied(format!("[{}] {}", decision.rule, decision.reason))
        }
        (None, decision) => LineOutcome::Denied(format!("[{}]", decision.rule)),
    }
}

fn report(
    out: &mut impl Write,
    err: &mut impl Write,
    line: u64,
    route: &RouteConfig,
    outcome: LineOutcome,
    summary: &mut Summary,
) -> Result<(), BulkError> {
    match outcome {
        LineOutcome::Translated(bytes, json) => {
            summary.translated += 1;
            write_one_line(out, &bytes, json)?;
        }
        LineOutcome::Invalid(problems) => {
            summary.invalid += 1;
            for p in problems {
                writeln!(err, "line {line}: invalid: {p}")?;
            }
        }
        LineOutcome::Denied(reason) => {
            summary.denied += 1;
            writeln!(err, "line {line}: {} denied: {reason}", route.name)?;
        }
    }
    out.write_all(b"\n")?;
    Ok(())
}

/// The output on one line. JSON is compact already; any other format (XML)
/// is written as a JSON string of its bytes.
fn write_one_line(out: &mut impl Write, bytes: &[u8], json: bool) -> std::io::Result<()> {
    if json && memchr::memchr(b'\n', bytes).is_none() {
        return out.write_all(bytes);
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::to_writer(&mut *out, text).map_err(std::io::Error::other),
        Err(_) => Err(std::io::Error::other(
            "an encoder wrote bytes that are not UTF-8",
        )),
    }
}

fn progress_line(
    err: &mut impl Write,
    summary: &Summary,
    elapsed: Duration,
) -> std::io::Result<()> {
    let rate = summary.lines as f64 / elapsed.as_secs_f64().max(1e-9);
    writeln!(
        err,
        "progress: {} lines ({} translated, {} invalid, {} denied) in {:.1} s, {:.0} lines/s",
        summary.lines,
        summary.translated,
        summary.invalid,
        summary.denied,
        elapsed.as_secs_f64(),
        rate
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_is_one_json_string_and_compact_json_goes_as_it_is() {
        let doc = "<?xml?>\n<a x=\"1&#10;2\">\r\n  <b>\"é\"</b>\n</a>\n";
        let mut out = Vec::new();
        write_one_line(&mut out, doc.as_bytes(), false).unwrap();
        assert!(!out.contains(&b'\n'));
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, doc);
        let mut out = Vec::new();
        write_one_line(&mut out, b"{\"a\":1}", true).unwrap();
        assert_eq!(out, b"{\"a\":1}");
    }
}
