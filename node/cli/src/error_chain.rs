//! One-line rendering of an error with its sources.

/// An error and its sources joined with `: `, skipping a source whose text the line
/// already holds (hyper and tonic keep the useful part in the sources).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(next) = source {
        let next_text = next.to_string();
        if !text.contains(&next_text) {
            text = format!("{text}: {next_text}");
        }
        source = next.source();
    }
    text
}
