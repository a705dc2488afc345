//! Every text a person reads, in one place, so a translation is one directory: [`mail`] for the
//! mails, [`pages`] for the pages and the API's messages.
//!
//! Texts are constants with placeholders in braces (`{title}`), filled in by [`fill`]. A
//! translation keeps every placeholder of a text and may move it; the code that uses a text names
//! the placeholders it fills.

pub mod mail;
pub mod measures;
pub mod owner;
pub mod pages;
pub mod stamp;
pub mod subject;

/// `template` with each `{name}` of `values` replaced by its value, in one pass: a value that
/// itself contains `{...}` is never filled again. A placeholder without a value stays as written.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let value = after.find('}').and_then(|close| {
            let name = &after[..close];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v, close))
        });
        match value {
            Some((value, close)) => {
                out.push_str(value);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Checks a template an operator configures (a mail subject, the watermark's line): one line,
/// at most `max_len` characters, and every `{...}` one of `placeholders`. The error says why, for
/// `config` to print after the variable's name.
pub fn check_template(template: &str, placeholders: &[&str], max_len: usize) -> Result<(), String> {
    if template.contains(['\r', '\n']) {
        return Err("must be one line (no CR or LF)".to_owned());
    }
    if template.chars().any(char::is_control) {
        return Err("must not contain control characters".to_owned());
    }
    let len = template.chars().count();
    if len > max_len {
        return Err(format!("must be at most {max_len} characters, got {len}"));
    }
    let mut rest = template;
    while let Some(open) = rest.find(['{', '}']) {
        if rest[open..].starts_with('}') {
            return Err("has a '}' without its '{'".to_owned());
        }
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err("has a '{' without its '}'".to_owned());
        };
        let name = &after[..close];
        if !placeholders.contains(&name) {
            let known: Vec<String> = placeholders.iter().map(|p| format!("{{{p}}}")).collect();
            let known = match known.as_slice() {
                [one] => format!("the only one is {one}"),
                [init @ .., last] => format!("the only ones are {} and {last}", init.join(", ")),
                [] => "there are none".to_owned(),
            };
            return Err(format!("unknown placeholder {{{name}}}: {known}"));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::fill;

    #[test]
    fn placeholders_are_filled_once() {
        assert_eq!(
            fill("{a} and {b}, {a}", &[("a", "1"), ("b", "{a}")]),
            "1 and {a}, 1"
        );
        assert_eq!(fill("{unknown} {", &[("a", "1")]), "{unknown} {");
        assert_eq!(fill("no placeholder", &[]), "no placeholder");
    }
}
