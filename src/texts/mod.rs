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
