//! `restate`: the service registry through the admin REST API (`--admin-url`, 9070).
//!
//! `restate deployments register|list|describe|remove` (alias `dp`) and
//! `restate services list|describe` (alias `svc`), and `restate invocations
//! list|describe|cancel|kill` (alias `inv`), and `restate sql "SELECT ..."`. Registration first asks the admin API
//! for a dry run, shows the services and handlers discovered, asks for confirmation when
//! stdin is a terminal (`--yes` skips it), then registers.

mod client;
pub mod deployments;
pub mod invocations;
pub mod kv;
pub mod services;
pub mod sql;

pub use client::AdminClient;

/// A failed command: printed as `error: ...`, exit code 1.
#[derive(Debug)]
pub struct CliError(pub String);

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Options every subcommand shares.
#[derive(Debug, Clone)]
pub struct Globals {
    pub admin_url: String,
    pub json: bool,
    pub yes: bool,
}

impl Globals {
    pub fn client(&self) -> Result<AdminClient, CliError> {
        AdminClient::new(&self.admin_url)
    }
}

/// Parses a `--header K=V` argument into its name and value.
pub fn parse_header(arg: &str) -> Result<(String, String), String> {
    let (name, value) =
        arg.split_once('=').ok_or_else(|| format!("'{arg}' is not K=V (e.g. authorization=Bearer 123)"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("'{arg}' has an empty header name"));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// A path segment with the characters that would change the path percent-encoded.
pub(crate) fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(byte as char),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_k_equals_v() {
        assert_eq!(parse_header("authorization=Bearer a=b").unwrap(), ("authorization".into(), "Bearer a=b".into()));
        assert!(parse_header("novalue").unwrap_err().contains("K=V"));
        assert!(parse_header("=v").is_err());
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(path_segment("dp_ABC"), "dp_ABC");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
