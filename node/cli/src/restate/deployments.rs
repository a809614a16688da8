//! `restate deployments register|list|describe|remove`.

use serde_json::{json, Map, Value};

use super::{path_segment, AdminClient, CliError, Globals};
use crate::output::{confirm, key_values, print_json, table};

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn array(value: &Value) -> Vec<Value> {
    value.as_array().cloned().unwrap_or_default()
}

/// What `restate deployments register` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RegisterArgs {
    pub url: String,
    pub force: bool,
    pub headers: Vec<(String, String)>,
    /// Only show what would be registered.
    pub dry_run: bool,
    /// Reach the deployment over HTTP/1.1 instead of HTTP/2 with prior knowledge.
    pub use_http_11: bool,
}

/// One row per handler: service, type and revision on the first row of each service.
fn services_table(services: &[Value]) -> String {
    let mut rows = Vec::new();
    for service in services {
        let handlers = array(&service["handlers"]);
        let head = vec![text(&service["name"]), text(&service["ty"]), text(&service["revision"])];
        if handlers.is_empty() {
            rows.push([head.clone(), vec!["(no handlers)".into(), String::new()]].concat());
        }
        for (i, handler) in handlers.iter().enumerate() {
            let lead = if i == 0 { head.clone() } else { vec![String::new(); 3] };
            let ty = if handler["ty"].is_null() { String::new() } else { text(&handler["ty"]) };
            rows.push([lead, vec![text(&handler["name"]), ty]].concat());
        }
    }
    table(&["SERVICE", "TYPE", "REVISION", "HANDLER", "HANDLER TYPE"], &rows)
}

/// Discovers (dry run), shows the services, confirms on a terminal, registers.
pub async fn register(globals: &Globals, args: &RegisterArgs) -> Result<(), CliError> {
    let client = globals.client()?;
    let url = args.url.trim();
    let headers: Map<String, Value> = args.headers.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();
    let request = |dry_run: bool| {
        json!({
            "uri": url,
            "additional_headers": headers,
            "force": args.force,
            "dry_run": dry_run,
            "use_http_11": args.use_http_11,
        })
    };
    let failed = |e: CliError| CliError(format!("cannot register {url}: {e}"));

    let (_, preview) = client.post("/deployments", &request(true)).await.map_err(failed)?;
    let outcome = preview["outcome"].as_str().unwrap_or_default().to_owned();
    let id = text(&preview["id"]);
    if args.dry_run {
        if globals.json {
            print_json(&preview);
        } else {
            print_preview(url, &preview, &outcome, &id);
        }
        return Ok(());
    }
    if !globals.json {
        print_preview(url, &preview, &outcome, &id);
    }
    if outcome != "unchanged" {
        let question = match outcome.as_str() {
            "overwritten" => format!("Overwrite deployment {id} with what {url} serves now?"),
            _ => format!("Register deployment {url}?"),
        };
        if !confirm(&question, globals.yes) {
            return Err(CliError("aborted; nothing was registered".into()));
        }
    }

    let (_, answer) = client.post("/deployments", &request(false)).await.map_err(failed)?;
    if globals.json {
        print_json(&answer);
        return Ok(());
    }
    let id = text(&answer["id"]);
    let count = array(&answer["services"]).len();
    match answer["outcome"].as_str().unwrap_or_default() {
        "unchanged" => println!("Deployment {id} is already registered with these services; nothing changed."),
        "overwritten" => println!("Deployment {id} overwritten ({count} services)."),
        _ => println!("Deployment {id} registered ({count} services)."),
    }
    let removed = array(&answer["removed_services"]);
    if !removed.is_empty() {
        println!("Removed services: {}", removed.iter().map(text).collect::<Vec<_>>().join(", "));
    }
    Ok(())
}

fn print_preview(url: &str, preview: &Value, outcome: &str, id: &str) {
    match outcome {
        "unchanged" => println!("Deployment {url} is already registered as {id} with the same services:"),
        "overwritten" => println!("Deployment {url} ({id}) will be overwritten; it now serves:"),
        _ => println!("Deployment {url} serves:"),
    }
    print!("{}", services_table(&array(&preview["services"])));
    let removed = array(&preview["removed_services"]);
    if !removed.is_empty() {
        println!(
            "These services will be removed (the deployment no longer declares them): {}",
            removed.iter().map(text).collect::<Vec<_>>().join(", ")
        );
    }
}

/// Every deployment with its URI, services (name@revision; `*` where a newer deployment
/// took the service over) and creation time.
pub async fn list(globals: &Globals) -> Result<(), CliError> {
    let answer = globals.client()?.get("/deployments").await?;
    if globals.json {
        print_json(&answer);
        return Ok(());
    }
    let deployments = array(&answer["deployments"]);
    if deployments.is_empty() {
        println!("No deployments registered. Register one with `restate deployments register <URL>`.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = deployments
        .iter()
        .map(|d| {
            let services: Vec<String> = array(&d["services"])
                .iter()
                .map(|s| {
                    let superseded = if s["latest"] == false { "*" } else { "" };
                    format!("{}@{}{superseded}", text(&s["name"]), text(&s["revision"]))
                })
                .collect();
            vec![text(&d["id"]), text(&d["uri"]), text(&d["created_at"]), services.join(", ")]
        })
        .collect();
    print!("{}", table(&["ID", "URI", "CREATED AT", "SERVICES"], &rows));
    if deployments.iter().any(|d| array(&d["services"]).iter().any(|s| s["latest"] == false)) {
        println!("* a newer deployment serves this service now");
    }
    Ok(())
}

/// One deployment with its services and handlers.
pub async fn describe(globals: &Globals, id: &str) -> Result<(), CliError> {
    let deployment = globals.client()?.get(&format!("/deployments/{}", path_segment(id))).await?;
    if globals.json {
        print_json(&deployment);
        return Ok(());
    }
    let headers = deployment["additional_headers"]
        .as_object()
        .map(|h| h.keys().cloned().collect::<Vec<_>>().join(", "))
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "-".into());
    print!(
        "{}",
        key_values(&[
            ("ID", text(&deployment["id"])),
            ("URI", text(&deployment["uri"])),
            ("Created at", text(&deployment["created_at"])),
            (
                "Protocol",
                format!(
                    "v{} to v{} ({})",
                    text(&deployment["min_protocol_version"]),
                    text(&deployment["max_protocol_version"]),
                    text(&deployment["protocol_mode"])
                )
            ),
            ("Extra headers", headers),
        ])
    );
    println!();
    print!("{}", services_table(&array(&deployment["services"])));
    Ok(())
}

/// Removes a deployment; refused by the admin API while it serves a service's latest
/// revision, unless `force`.
pub async fn remove(globals: &Globals, id: &str, force: bool) -> Result<(), CliError> {
    let client: AdminClient = globals.client()?;
    let question = if force {
        format!("Remove deployment {id} and every service whose latest revision it serves?")
    } else {
        format!("Remove deployment {id}?")
    };
    if !confirm(&question, globals.yes) {
        return Err(CliError("aborted; nothing was removed".into()));
    }
    let path = format!("/deployments/{}{}", path_segment(id), if force { "?force=true" } else { "" });
    let answer = client.delete(&path).await?;
    if globals.json {
        print_json(&answer);
        return Ok(());
    }
    println!("Deployment {id} removed.");
    let removed = array(&answer["removed_services"]);
    if !removed.is_empty() {
        println!("Removed services: {}", removed.iter().map(text).collect::<Vec<_>>().join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_table_has_one_row_per_handler() {
        let services = vec![
            json!({"name": "Counter", "ty": "VIRTUAL_OBJECT", "revision": 1,
                   "handlers": [{"name": "add", "ty": "EXCLUSIVE"}, {"name": "get", "ty": "SHARED"}]}),
            json!({"name": "Greeter", "ty": "SERVICE", "revision": 2, "handlers": [{"name": "greet", "ty": null}]}),
        ];
        let out = services_table(&services);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[0].starts_with("SERVICE") && lines[0].contains("HANDLER TYPE"), "{out}");
        assert!(lines[1].starts_with("Counter") && lines[1].ends_with("EXCLUSIVE"), "{out}");
        assert!(lines[2].trim_start().starts_with("get") && lines[2].ends_with("SHARED"), "{out}");
        assert!(lines[3].starts_with("Greeter") && lines[3].ends_with("greet"), "{out}");
    }
}
