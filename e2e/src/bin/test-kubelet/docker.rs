//! Thin layer over the `docker` CLI: one command per function, errors carry docker's stderr.
//! Parsing of `docker inspect` output is pure and unit-tested.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Stdio;

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;
use tokio::process::Command;

/// Labels on every container this kubelet creates. `LABEL_NODE` finds them for `--cleanup`;
/// the others tell which pod a container belongs to without asking the API server.
pub const LABEL_NODE: &str = "restate-testbed.node";
pub const LABEL_NAMESPACE: &str = "restate-testbed.pod-namespace";
pub const LABEL_POD: &str = "restate-testbed.pod-name";
pub const LABEL_UID: &str = "restate-testbed.pod-uid";
pub const LABEL_IP: &str = "restate-testbed.pod-ip";

/// What the kubelet needs from `docker inspect` of a container.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerInfo {
    pub id: String,
    /// `sha256:...` of the image the container was created from.
    pub image_id: String,
    pub running: bool,
    pub exit_code: i64,
    pub oom_killed: bool,
    /// RFC 3339 as docker prints them; `0001-01-01T00:00:00Z` when never started/finished.
    pub started_at: String,
    pub finished_at: String,
    pub labels: BTreeMap<String, String>,
}

/// A user-defined docker network with an IPv4 subnet (needed for `docker run --ip`).
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkInfo {
    pub subnet: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Ipv4Addr,
    /// Addresses of the containers attached right now (running ones only).
    pub attached: Vec<Ipv4Addr>,
}

/// Runs `docker ARGS`, returns stdout. The error names the subcommand, never the full
/// argument list (a `run` carries secret values in `-e`).
async fn docker(args: &[String]) -> Result<String> {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await
        .context("cannot run the docker CLI (is it installed?)")?;
    if !output.status.success() {
        bail!(
            "docker {} failed: {}",
            args.first().map(String::as_str).unwrap_or(""),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

fn is_not_found(err: &anyhow::Error) -> bool {
    let text = err.to_string();
    text.contains("No such container") || text.contains("No such object") || text.contains("No such image")
}

/// `docker container inspect NAME_OR_ID`; `None` when there is no such container.
pub async fn inspect(name: &str) -> Result<Option<ContainerInfo>> {
    match docker(&strings(&["container", "inspect", name])).await {
        Ok(out) => Ok(parse_inspect(&out)?.into_iter().next()),
        Err(err) if is_not_found(&err) => Ok(None),
        Err(err) => Err(err),
    }
}

/// All containers (running or not) carrying `label` (`key` or `key=value`).
pub async fn list_labelled(label: &str) -> Result<Vec<ContainerInfo>> {
    let ids = docker(&strings(&["ps", "-a", "-q", "--no-trunc", "--filter", &format!("label={label}")])).await?;
    let mut args = strings(&["container", "inspect"]);
    args.extend(ids.split_whitespace().map(str::to_owned));
    if args.len() == 2 {
        return Ok(Vec::new());
    }
    match docker(&args).await {
        Ok(out) => parse_inspect(&out),
        // A container removed between `ps` and `inspect`: try again next time.
        Err(err) if is_not_found(&err) => Ok(Vec::new()),
        Err(err) => Err(err),
    }
}

/// Parses the JSON array `docker container inspect` prints.
pub fn parse_inspect(json: &str) -> Result<Vec<ContainerInfo>> {
    let value: Value = serde_json::from_str(json).context("docker inspect printed no JSON")?;
    let items = value.as_array().ok_or_else(|| anyhow!("docker inspect printed no JSON array"))?;
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    Ok(items
        .iter()
        .map(|item| {
            let state = &item["State"];
            let labels = item["Config"]["Labels"]
                .as_object()
                .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
                .unwrap_or_default();
            ContainerInfo {
                id: text(&item["Id"]),
                image_id: text(&item["Image"]),
                running: state["Running"].as_bool().unwrap_or(false),
                exit_code: state["ExitCode"].as_i64().unwrap_or(0),
                oom_killed: state["OOMKilled"].as_bool().unwrap_or(false),
                started_at: text(&state["StartedAt"]),
                finished_at: text(&state["FinishedAt"]),
                labels,
            }
        })
        .collect())
}

/// `docker network inspect NAME`.
pub async fn network(name: &str) -> Result<NetworkInfo> {
    let out = docker(&strings(&["network", "inspect", name])).await.with_context(|| {
        format!(
            "docker network {name} is not usable: `scripts/testbed/kube.sh start` creates it, \
             or `docker network create --subnet 172.30.0.0/16 {name}`"
        )
    })?;
    parse_network(name, &out)
}

/// Parses `docker network inspect` output: the first IPv4 subnet of its IPAM config.
pub fn parse_network(name: &str, json: &str) -> Result<NetworkInfo> {
    let value: Value = serde_json::from_str(json).context("docker network inspect printed no JSON")?;
    let net = &value[0];
    let configs = net["IPAM"]["Config"].as_array().cloned().unwrap_or_default();
    let (subnet, prefix, gateway) = configs
        .iter()
        .find_map(|c| {
            let (addr, prefix) = c["Subnet"].as_str()?.split_once('/')?;
            let subnet: Ipv4Addr = addr.parse().ok()?;
            let prefix: u8 = prefix.parse().ok()?;
            let gateway = c["Gateway"]
                .as_str()
                .and_then(|g| g.parse().ok())
                .unwrap_or_else(|| Ipv4Addr::from(u32::from(subnet) + 1));
            Some((subnet, prefix, gateway))
        })
        .ok_or_else(|| {
            anyhow!("docker network {name} has no configured IPv4 subnet (create it with --subnet, `docker run --ip` needs one)")
        })?;
    if prefix > 30 {
        bail!("docker network {name}: subnet /{prefix} is too small");
    }
    let attached = net["Containers"]
        .as_object()
        .map(|m| m.values().filter_map(|c| c["IPv4Address"].as_str()?.split('/').next()?.parse().ok()).collect())
        .unwrap_or_default();
    Ok(NetworkInfo { subnet, prefix, gateway, attached })
}

/// `sha256:...` of a local image, `None` when it is not there (images are never pulled).
pub async fn image_id(image: &str) -> Result<Option<String>> {
    match docker(&strings(&["image", "inspect", "--format", "{{.Id}}", image])).await {
        Ok(out) => Ok(Some(out.trim().to_owned())),
        Err(err) if is_not_found(&err) => Ok(None),
        Err(err) => Err(err),
    }
}

/// `docker run ARGS` (ARGS start after `run`, see `ContainerPlan`); returns the container id.
pub async fn run(args: &[String]) -> Result<String> {
    let mut full = vec!["run".to_owned()];
    full.extend_from_slice(args);
    Ok(docker(&full).await?.trim().to_owned())
}

pub async fn start(id: &str) -> Result<()> {
    docker(&strings(&["start", id])).await.map(drop)
}

/// SIGTERM, then SIGKILL after `grace_seconds`.
pub async fn stop(id: &str, grace_seconds: i64) -> Result<()> {
    docker(&strings(&["stop", "-t", &grace_seconds.to_string(), id])).await.map(drop)
}

/// Force-removes the container and its anonymous volumes; no error if it is already gone.
pub async fn remove(id: &str) -> Result<()> {
    match docker(&strings(&["rm", "-f", "-v", id])).await {
        Err(err) if !is_not_found(&err) => Err(err),
        _ => Ok(()),
    }
}

/// Appends `header` and the container's output (stdout and stderr interleaved; only the
/// last `tail` lines when given) to `path`.
pub async fn save_logs(id: &str, path: &Path, tail: Option<usize>, header: &str) -> Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(file, "==== {header}")?;
    let mut cmd = Command::new("docker");
    cmd.arg("logs");
    if let Some(tail) = tail {
        cmd.args(["--tail", &tail.to_string()]);
    }
    let status = cmd
        .arg(id)
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .await
        .context("cannot run docker logs")?;
    if !status.success() {
        bail!("docker logs {id} failed (see {})", path.display());
    }
    Ok(())
}

/// Addresses recorded in `LABEL_IP` of all containers carrying it, stopped ones included
/// (a stopped container holds no address on the network but gets it back on `docker start`).
pub async fn labelled_ips() -> Result<Vec<Ipv4Addr>> {
    let format = format!("{{{{.Label \"{LABEL_IP}\"}}}}");
    let out = docker(&strings(&["ps", "-a", "--filter", &format!("label={LABEL_IP}"), "--format", &format])).await?;
    Ok(out.lines().filter_map(|l| l.trim().parse().ok()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_container_inspect() {
        let json = r#"[{"Id":"abc","Image":"sha256:123","State":{"Status":"exited","Running":false,
            "ExitCode":137,"OOMKilled":false,"StartedAt":"2024-05-01T10:00:00.5Z","FinishedAt":"2024-05-01T10:01:00Z"},
            "Config":{"Labels":{"restate-testbed.pod-uid":"u1"}}}]"#;
        let info = &parse_inspect(json).unwrap()[0];
        assert_eq!(info.id, "abc");
        assert_eq!(info.image_id, "sha256:123");
        assert!(!info.running);
        assert_eq!(info.exit_code, 137);
        assert_eq!(info.labels[LABEL_UID], "u1");
    }

    #[test]
    fn parses_network_inspect() {
        let json = r#"[{"Name":"n","IPAM":{"Config":[{"Subnet":"172.30.0.0/16","Gateway":"172.30.0.1"}]},
            "Containers":{"x":{"IPv4Address":"172.30.128.1/16"}}}]"#;
        let net = parse_network("n", json).unwrap();
        assert_eq!(net.subnet, Ipv4Addr::new(172, 30, 0, 0));
        assert_eq!(net.prefix, 16);
        assert_eq!(net.gateway, Ipv4Addr::new(172, 30, 0, 1));
        assert_eq!(net.attached, vec![Ipv4Addr::new(172, 30, 128, 1)]);

        let no_gateway = r#"[{"IPAM":{"Config":[{"Subnet":"10.5.0.0/24"}]}}]"#;
        assert_eq!(parse_network("n", no_gateway).unwrap().gateway, Ipv4Addr::new(10, 5, 0, 1));
        assert!(parse_network("n", r#"[{"IPAM":{"Config":[]}}]"#).is_err());
    }
}
