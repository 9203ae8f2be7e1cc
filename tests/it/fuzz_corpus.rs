//! Replays the committed fuzz corpora (`fuzz/corpus/<target>/`) through
//! the same functions the fuzz targets call (`callflow::fuzzing`), so that
//! `cargo test` keeps every input the fuzzer found interesting, and every
//! input that once crashed, passing. No fuzzing happens here: run the
//! targets with `cargo +nightly fuzz run <target>` (see the README).
//!
//! Each function panics when a property of its entry point fails; this
//! test names the file that made it panic.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read the corpus {}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let bytes = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (
                path.file_name().unwrap().to_string_lossy().into_owned(),
                bytes,
            )
        })
        .collect();
    files.sort();
    files
}

/// Runs `run` on every file of `target`'s corpus; fails naming each file
/// that panicked. Returns how many files were replayed.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    let files = corpus(target);
    assert!(!files.is_empty(), "the {target} corpus is empty");
    let failed: Vec<&str> = files
        .iter()
        .filter(|(_, bytes)| catch_unwind(AssertUnwindSafe(|| run(bytes))).is_err())
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(
        failed.is_empty(),
        "fuzz/corpus/{target}: {} of {} inputs fail: {failed:?}",
        failed.len(),
        files.len()
    );
    files.len()
}

#[test]
fn the_notification_corpus_replays() {
    replay("notification", callflow::fuzzing::notification);
}

#[test]
fn the_token_corpus_replays() {
    replay("token", callflow::fuzzing::token);
}

#[test]
fn the_flow_loader_corpus_replays() {
    replay("flow_loader", callflow::fuzzing::flow_loader);
}

/// The corpora hold the inputs that matter, not only noise: a valid
/// token, a legacy body, a flow that loads.
#[test]
fn the_corpora_reach_the_deep_paths() {
    use callflow::graph::notification::{CallbackBody, read_callback};
    let legacy = corpus("notification")
        .iter()
        .filter(|(_, b)| matches!(read_callback(b), Ok(CallbackBody::LegacySkype)))
        .count();
    assert!(
        legacy > 0,
        "no legacy Skype body in the notification corpus"
    );
    let read = corpus("notification")
        .iter()
        .filter(|(_, b)| matches!(read_callback(b), Ok(CallbackBody::Graph(batch)) if !batch.notifications.is_empty()))
        .count();
    assert!(read > 0, "no readable notification in the corpus");
    let flows = corpus("flow_loader")
        .iter()
        .filter(|(_, b)| {
            std::str::from_utf8(b)
                .is_ok_and(|t| callflow::flow::load_str("f.yaml", t).flow.is_some())
        })
        .count();
    assert!(flows > 0, "no flow that loads in the flow_loader corpus");
    assert!(
        corpus("token")
            .iter()
            .any(|(_, b)| callflow::fuzzing::token_accepted(b)),
        "no valid token in the token corpus"
    );
}
