//! An independent statement of the documented link request body rule (which fields a JSON object
//! or a form gives, and when it is refused), shared by the property tests
//! (`tests/props/body.rs`) and the `request_body` fuzz target.

use std::collections::HashSet;

use docgate::http::request_link::Fields;
use serde_json::{Map, Value};

/// What a `consent` string means: agreement for `true`, `on`, `yes`, `1` in any case.
pub fn agrees(value: &str) -> bool {
    let value = value.trim().to_ascii_lowercase();
    matches!(value.as_str(), "true" | "on" | "yes" | "1")
}

/// The fields a JSON object gives, or `None` when it must be refused: text fields are strings
/// or `null`, `consent` a boolean, a string or `null`. (A repeated key, which the object can no
/// longer show, is the caller's to rule out.)
pub fn json(object: &Map<String, Value>) -> Option<Fields> {
    let text = |name: &str| match object.get(name) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => None,
    };
    let consent = match object.get("consent") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(Value::String(s)) => Some(agrees(s)),
        Some(_) => return None,
    };
    Some(Fields {
        email: text("email")?,
        document: text("document")?,
        name: text("name")?,
        company: text("company")?,
        consent,
    })
}

/// The fields a form's pairs give, or `None` when a field repeats (refused).
pub fn form(pairs: &[(String, String)]) -> Option<Fields> {
    // Any name given twice refuses the form, whether docgate reads that field or not.
    let mut names = HashSet::new();
    if !pairs.iter().all(|(name, _)| names.insert(name.as_str())) {
        return None;
    }
    let value = |name: &str| {
        let mut values = pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone());
        let first = values.next();
        values.next().is_none().then_some(first)
    };
    Some(Fields {
        email: value("email")?,
        document: value("document")?,
        name: value("name")?,
        company: value("company")?,
        consent: value("consent")?.map(|v| agrees(&v)),
    })
}
