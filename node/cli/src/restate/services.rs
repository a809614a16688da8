//! `restate services list|describe`.

use serde_json::Value;

use super::{path_segment, CliError, Globals};
use crate::output::{key_values, print_json, table};

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn handler_names(service: &Value) -> String {
    let handlers = service["handlers"].as_array().cloned().unwrap_or_default();
    handlers.iter().map(|h| text(&h["name"])).collect::<Vec<_>>().join(", ")
}

/// Every registered service with its type, revision, handlers and deployment.
pub async fn list(globals: &Globals) -> Result<(), CliError> {
    let answer = globals.client()?.get("/services").await?;
    if globals.json {
        print_json(&answer);
        return Ok(());
    }
    let services = answer["services"].as_array().cloned().unwrap_or_default();
    if services.is_empty() {
        println!("No services registered. Register a deployment with `restate deployments register <URL>`.");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = services
        .iter()
        .map(|s| {
            vec![text(&s["name"]), text(&s["ty"]), text(&s["revision"]), text(&s["deployment_id"]), handler_names(s)]
        })
        .collect();
    print!("{}", table(&["NAME", "TYPE", "REVISION", "DEPLOYMENT", "HANDLERS"], &rows));
    Ok(())
}

/// One service with each handler and its type.
pub async fn describe(globals: &Globals, name: &str) -> Result<(), CliError> {
    let service = globals.client()?.get(&format!("/services/{}", path_segment(name))).await?;
    if globals.json {
        print_json(&service);
        return Ok(());
    }
    print!(
        "{}",
        key_values(&[
            ("Name", text(&service["name"])),
            ("Type", text(&service["ty"])),
            ("Revision", text(&service["revision"])),
            ("Deployment", text(&service["deployment_id"])),
        ])
    );
    println!();
    let rows: Vec<Vec<String>> = service["handlers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|h| vec![text(&h["name"]), text(&h["ty"])])
        .collect();
    print!("{}", table(&["HANDLER", "TYPE"], &rows));
    Ok(())
}
