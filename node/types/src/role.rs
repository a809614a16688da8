use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ParseError;

/// What a node does in the cluster. A node runs any set of roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs partition processors; also serves ingress.
    Worker,
    /// Admin API and the cluster controller.
    Admin,
    /// Member of the metadata store.
    MetadataServer,
    /// Stores replicated loglet records.
    LogServer,
    /// Ingress HTTP without partition processing.
    HttpIngress,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Worker, Role::Admin, Role::MetadataServer, Role::LogServer, Role::HttpIngress];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Worker => "worker",
            Role::Admin => "admin",
            Role::MetadataServer => "metadata-server",
            Role::LogServer => "log-server",
            Role::HttpIngress => "http-ingress",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| ParseError {
            what: "role",
            input: s.to_owned(),
            expected: "expected one of: worker, admin, metadata-server, log-server, http-ingress".to_owned(),
        })
    }
}

/// A set of roles, ordered as `Role::ALL` for stable output.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoleSet(BTreeSet<Role>);

impl RoleSet {
    pub fn all() -> RoleSet {
        RoleSet(Role::ALL.into_iter().collect())
    }
    pub fn contains(&self, role: Role) -> bool {
        self.0.contains(&role)
    }
    /// A node with the worker role also serves ingress.
    pub fn serves_ingress(&self) -> bool {
        self.contains(Role::Worker) || self.contains(Role::HttpIngress)
    }
    pub fn iter(&self) -> impl Iterator<Item = Role> + '_ {
        self.0.iter().copied()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<Role> for RoleSet {
    fn from_iter<T: IntoIterator<Item = Role>>(iter: T) -> Self {
        RoleSet(iter.into_iter().collect())
    }
}

impl Default for RoleSet {
    fn default() -> Self {
        RoleSet::all()
    }
}

impl fmt::Display for RoleSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Role::as_str).collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_as_restate_writes_them() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        let err = "ingress".parse::<Role>().unwrap_err();
        assert!(err.to_string().contains("http-ingress"), "{err}");
    }

    #[test]
    fn worker_serves_ingress() {
        assert!([Role::Worker].into_iter().collect::<RoleSet>().serves_ingress());
        assert!(![Role::Admin].into_iter().collect::<RoleSet>().serves_ingress());
    }
}
