//! Everything wrong with a configuration, reported at once.

use std::fmt;

use crate::sources::Source;

/// One invalid setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Full dotted key path, e.g. `admin.bind-address`; empty when the problem is not about a
    /// single key (a TOML syntax error).
    pub key: String,
    /// Where the bad value came from.
    pub source: Source,
    /// What is wrong, naming what was expected and what was found.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "({}): {}", self.source, self.message)
        } else {
            write!(f, "`{}` ({}): {}", self.key, self.source, self.message)
        }
    }
}

/// All problems found across the file, the environment and the CLI flags; never empty when
/// returned by `load`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.0.len();
        let noun = if count == 1 { "problem" } else { "problems" };
        write!(f, "invalid configuration ({count} {noun}):")?;
        for problem in &self.0 {
            write!(f, "\n  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_line_per_problem_under_a_header() {
        let errors = ConfigErrors(vec![
            ConfigProblem {
                key: "admin.bind-address".into(),
                source: Source::Env("RESTATE_ADMIN__BIND_ADDRESS".into()),
                message: "cannot parse 'abc' as a socket address like 0.0.0.0:9070".into(),
            },
            ConfigProblem {
                key: String::new(),
                source: Source::File("/etc/restate.toml".into()),
                message: "TOML syntax error at line 2, column 1: bad".into(),
            },
        ]);
        assert_eq!(
            errors.to_string(),
            "invalid configuration (2 problems):\n  \
             - `admin.bind-address` (env RESTATE_ADMIN__BIND_ADDRESS): cannot parse 'abc' as a socket address like 0.0.0.0:9070\n  \
             - (file /etc/restate.toml): TOML syntax error at line 2, column 1: bad"
        );
    }
}
