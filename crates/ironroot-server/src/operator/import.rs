//! Register many devices from a CSV or JSON file.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

use super::devices::{AddDevice, add_one};
use super::operator;
use crate::app::{Shared, check_length, media_type, read_body};
use crate::auth::Conn;
use crate::error::{ApiError, OperatorError};

/// The hint for a bad JSON import.
const JSON_EXAMPLE: &str =
    r#"send a JSON array such as [{"id":"sensor-1","groups":["line-b"]},{"id":"sensor-2"}]"#;
/// The hint for a bad CSV import.
const CSV_EXAMPLE: &str = "send a header line naming the columns (id required; groups separated by ';', owner, attributes), one device per line, no quotes";

/// Result of an import.
#[derive(Debug, Serialize, Deserialize)]
pub struct ImportResult {
    /// Devices registered.
    pub added: usize,
    /// Lines or entries refused, with the reason.
    pub errors: Vec<String>,
}

/// Parses the CSV import format: a header line naming the columns, `id` required; `groups`
/// (separated by `;`) and `owner` optional; every other column becomes an attribute. Fields
/// may not contain commas, quotes or control characters (device ids and attributes never need
/// them); the store checks each value's syntax again when the device is added.
pub(crate) fn parse_csv(text: &str) -> Result<Vec<AddDevice>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let first = lines.next().ok_or("empty CSV")?;
    refuse_unsupported_text(1, first)?;
    let header: Vec<String> = first
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let id_col = header
        .iter()
        .position(|h| h == "id")
        .ok_or("CSV header has no 'id' column")?;
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        refuse_unsupported_text(n + 2, line)?;
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != header.len() {
            return Err(format!(
                "line {}: {} fields, header has {}",
                n + 2,
                fields.len(),
                header.len()
            ));
        }
        let mut dev = AddDevice {
            id: fields[id_col].to_owned(),
            groups: Vec::new(),
            attributes: BTreeMap::new(),
            owner: None,
        };
        for (i, h) in header.iter().enumerate() {
            let v = fields[i];
            match h.as_str() {
                "id" => {}
                "groups" | "group" => {
                    dev.groups = v
                        .split(';')
                        .filter(|g| !g.is_empty())
                        .map(str::to_owned)
                        .collect()
                }
                "owner" => dev.owner = (!v.is_empty()).then(|| v.to_owned()),
                _ if !v.is_empty() => {
                    dev.attributes.insert(h.clone(), v.to_owned());
                }
                _ => {}
            }
        }
        out.push(dev);
    }
    Ok(out)
}

/// The CSV import has no quoting: a quote or a control character on any line, the header
/// included, is refused with the line number.
fn refuse_unsupported_text(line_no: usize, line: &str) -> Result<(), String> {
    if line.contains('"') {
        return Err(format!("line {line_no}: quoted fields are not supported"));
    }
    if line.chars().any(char::is_control) {
        return Err(format!("line {line_no}: control character in a field"));
    }
    Ok(())
}

pub(crate) async fn import(
    State(state): State<Shared>,
    Extension(conn): Extension<Conn>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ImportResult>, OperatorError> {
    let actor = operator(&state, &conn, &headers, "devices.import").await?;
    let max = state.config.limits.max_import_body;
    check_length(&headers, max)?;
    let kind = media_type(&headers);
    let raw = read_body(&state, body, max).await?;
    let entries: Vec<AddDevice> = match kind.as_str() {
        "application/json" => {
            serde_json::from_slice(&raw).map_err(|e| OperatorError::json(&e, JSON_EXAMPLE))?
        }
        "text/csv" => {
            let text = std::str::from_utf8(&raw).map_err(|_| {
                OperatorError::field(
                    ApiError::BadRequest,
                    "body",
                    "the CSV file is not UTF-8",
                    CSV_EXAMPLE,
                )
            })?;
            parse_csv(text).map_err(|message| OperatorError {
                message: format!("invalid CSV: {message}"),
                ..OperatorError::field(ApiError::BadRequest, "body", "", CSV_EXAMPLE)
            })?
        }
        _ => {
            return Err(OperatorError::field(
                ApiError::UnsupportedMediaType,
                "Content-Type",
                "unsupported content type for an import",
                "send Content-Type: text/csv or application/json",
            ));
        }
    };
    let mut result = ImportResult {
        added: 0,
        errors: Vec::new(),
    };
    for e in entries {
        let id = e.id.clone();
        match add_one(&state, &actor, &conn, e).await {
            Ok(_) => result.added += 1,
            Err(err) => result
                .errors
                .push(format!("{}: {err}", id.escape_default())),
        }
    }
    Ok(Json(result))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_gives_devices_or_a_one_line_error(text in "[a-zA-Z0-9 ,;\"\r\n\t\u{7}_.:-]{0,400}") {
            crate::fuzzing::check_csv(&text);
        }

        #[test]
        fn id_first_csv_keeps_every_row(ids in proptest::collection::vec("[a-z0-9-]{1,20}", 1..40)) {
            let text = format!("id,site\n{}", ids.iter().map(|i| format!("{i},x\n")).collect::<String>());
            let devices = parse_csv(&text).unwrap();
            let got: Vec<&str> = devices.iter().map(|d| d.id.as_str()).collect();
            prop_assert_eq!(got, ids.iter().map(String::as_str).collect::<Vec<_>>());
            crate::fuzzing::check_csv(&text);
        }
    }

    #[test]
    fn control_characters_are_refused_with_their_line() {
        let e = parse_csv("id,site\nd-1,a\rb\n").unwrap_err();
        assert_eq!(e, "line 2: control character in a field");
        assert!(parse_csv("id,si\u{7}te\nd-1,x\n").is_err());
        // Found by the `server_csv_import` fuzz target: a quote in a header column name.
        assert!(parse_csv("`,`\",Id\n\n;,d`,Id\n").is_err());
        crate::fuzzing::check_csv("`,`\",Id\n\n;,d`,Id\n\n;,d#,\nI,#,\nI,[,(");
        crate::fuzzing::check_csv("id,x\na\rb,c\u{7}d\n");
    }

    #[test]
    fn csv_columns_map_to_fields() {
        let v = parse_csv("id,groups,owner,site\nd-1,a;b,ops,lyon\nd-2,,,\n").unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].groups, vec!["a", "b"]);
        assert_eq!(v[0].owner.as_deref(), Some("ops"));
        assert_eq!(
            v[0].attributes.get("site").map(String::as_str),
            Some("lyon")
        );
        assert!(v[1].groups.is_empty() && v[1].attributes.is_empty());
        assert!(parse_csv("name\nx\n").is_err());
        assert!(parse_csv("id,a\n\"x\",1\n").is_err());
        assert!(parse_csv("id,a\nx\n").is_err());
    }
}
