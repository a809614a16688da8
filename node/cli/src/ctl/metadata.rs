use restate_proto::node_ctl::{GetMetadataRequest, PutMetadataRequest};
use serde_json::json;

use super::{connect, CtlError, Globals};
use crate::output::{confirm, print_json};

pub async fn metadata_get(globals: &Globals, key: &str) -> Result<(), CtlError> {
    let mut client = connect(&globals.address).await?;
    let r = client
        .get_metadata(GetMetadataRequest { key: key.to_owned() })
        .await
        .map_err(|s| CtlError::from_status(&globals.address, s))?
        .into_inner();
    if !r.found {
        return Err(CtlError(format!("metadata key '{key}' has no value")));
    }
    // JSON values are shown as JSON; anything else as text (lossy for binary).
    let parsed: Option<serde_json::Value> = serde_json::from_slice(&r.value).ok();
    if globals.json {
        let value = parsed.unwrap_or_else(|| json!(String::from_utf8_lossy(&r.value)));
        print_json(&json!({ "key": key, "version": r.version, "value": value }));
    } else {
        println!("key: {key}\nversion: {}", r.version);
        match parsed {
            Some(v) => println!("{}", serde_json::to_string_pretty(&v).expect("serializes")),
            None => println!("{}", String::from_utf8_lossy(&r.value)),
        }
    }
    Ok(())
}

pub async fn metadata_put(globals: &Globals, key: &str, value: &str, version: Option<u32>) -> Result<(), CtlError> {
    let question = match version {
        Some(v) => format!("Write metadata key '{key}' (expected current version {v})?"),
        None => format!("Write metadata key '{key}' unconditionally?"),
    };
    if !confirm(&question, globals.yes) {
        return Err(CtlError("aborted; nothing was changed".into()));
    }
    let mut client = connect(&globals.address).await?;
    let r = client
        .put_metadata(PutMetadataRequest {
            key: key.to_owned(),
            value: value.as_bytes().to_vec(),
            expected_version: version,
        })
        .await
        .map_err(|s| CtlError::from_status(&globals.address, s))?
        .into_inner();
    if globals.json {
        print_json(&json!({ "key": key, "version": r.version }));
    } else {
        println!("key '{key}' is now at version {}", r.version);
    }
    Ok(())
}
