//! Email address validation for link requests: syntax by lettre's RFC 5322 parser, policy here.
//!
//! What docgate cannot mail it refuses here, at the door: an address lettre parses but cannot
//! turn into a `To` header and an SMTP envelope (a quoted local part such as `"john doe"@`) is
//! [`AddressError::Unmailable`], so it never reaches the mail composer.
//!
//! An address is accepted when lettre parses it, it fits in 254 bytes, its domain is a domain name
//! with at least one dot (not an IP literal, not `localhost`), and neither the domain nor any parent
//! of it is on the `mailchecker` list of disposable mail providers. The list is loaded into a hash
//! set once; the crate's own checker scans it linearly on every call.
//!
//! Internationalised domains (`bücher.example`) are converted to their ASCII form
//! (`xn--bcher-kva.example`, IDNA/punycode) before any check, so every mail server can route
//! them and the disposable list sees the name it lists. A non-ASCII local part (`jürgen@`) is
//! valid (RFC 6531); lettre then asks the server for SMTPUTF8 and a server without it refuses
//! the mail, which lands in the dead letters.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::OnceLock;

use lettre::message::Mailbox;
use lettre::{Address, Message};

/// The longest address accepted (RFC 5321's path limit less the angle brackets).
const MAX_LEN: usize = 254;

/// Providers known to ignore dots in the local part (`j.a.n.e@gmail.com` is `jane@gmail.com`),
/// each with the domain its mailboxes are counted under: Gmail's two domains are one set of
/// mailboxes. Only providers that document this; elsewhere `a.b@` and `ab@` may be two people.
pub const DOT_BLIND_PROVIDERS: &[(&str, &str)] =
    &[("gmail.com", "gmail.com"), ("googlemail.com", "gmail.com")];

/// Domains shared by millions of unrelated people, exempt from the per-domain budget: a budget
/// on `gmail.com` would let one sprayer silence every Gmail user. Their mailboxes keep their
/// own budget, and the per-client and service-wide limits still apply.
pub const SHARED_PROVIDERS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "outlook.com",
    "hotmail.com",
    "live.com",
    "msn.com",
    "yahoo.com",
    "icloud.com",
    "me.com",
    "aol.com",
    "proton.me",
    "protonmail.com",
    "gmx.de",
    "gmx.net",
    "web.de",
    "yandex.ru",
    "mail.ru",
    "qq.com",
];

/// Why an address was refused. The display text is shown to the person who typed it.
#[derive(Debug, Clone, Copy, thiserror::Error, PartialEq, Eq)]
pub enum AddressError {
    #[error("{}", crate::texts::pages::EMAIL_MISSING)]
    Missing,
    #[error("{}", crate::texts::pages::EMAIL_TOO_LONG)]
    TooLong,
    #[error("{}", crate::texts::pages::EMAIL_INVALID)]
    Invalid,
    #[error("{}", crate::texts::pages::EMAIL_NOT_A_DOMAIN)]
    NotADomain,
    #[error("{}", crate::texts::pages::EMAIL_DISPOSABLE)]
    Disposable,
    /// The parser accepts it, but no mail can be addressed to it (a quoted local part).
    #[error("{}", crate::texts::pages::ADDRESS_UNMAILABLE)]
    Unmailable,
}

/// Validates an address as typed (surrounding white space is ignored).
pub fn validate(raw: &str) -> Result<Address, AddressError> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(AddressError::Missing);
    }
    if text.len() > MAX_LEN {
        return Err(AddressError::TooLong);
    }
    let address = ascii(Address::from_str(text).map_err(|_| AddressError::Invalid)?)?;
    if address.to_string().len() > MAX_LEN {
        return Err(AddressError::TooLong);
    }
    let domain = address.domain().to_lowercase();
    if !is_domain_name(&domain) {
        return Err(AddressError::NotADomain);
    }
    if is_disposable(&domain) {
        return Err(AddressError::Disposable);
    }
    if !mailable(&address) {
        return Err(AddressError::Unmailable);
    }
    Ok(address)
}

/// A domain as written in configuration (a catalog's `allowed_domains`), in the form [`validate`]
/// leaves an accepted address's domain and [`domain_of`] reads it back: ASCII (IDNA, punycode)
/// and lowercase. `None` unless an accepted address could have it: a domain name with at least
/// one dot, not an IP literal, no empty label.
pub fn domain_name(text: &str) -> Option<String> {
    let address = ascii(Address::new("x", text.trim()).ok()?).ok()?;
    let domain = address.domain().to_lowercase();
    is_domain_name(&domain).then_some(domain)
}

/// The domain of an accepted address, as [`domain_name`] writes a domain: lowercase ASCII.
pub fn domain_of(address: &Address) -> String {
    address.domain().to_ascii_lowercase()
}

/// `address` with its domain in ASCII (IDNA, punycode) when it was not.
fn ascii(address: Address) -> Result<Address, AddressError> {
    if address.domain().is_ascii() {
        return Ok(address);
    }
    let ascii = idna::domain_to_ascii(address.domain()).map_err(|_| AddressError::Invalid)?;
    Address::new(address.user(), ascii).map_err(|_| AddressError::Invalid)
}

/// True for a lowercase domain mail can be routed by name to: at least two labels, none empty,
/// not an IP literal.
fn is_domain_name(domain: &str) -> bool {
    if domain.starts_with('[') || domain.parse::<std::net::IpAddr>().is_ok() {
        return false;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2 && labels.iter().all(|l| !l.is_empty())
}

/// The mailbox `address` reaches, as one string for counting: the same for every spelling that
/// lands in the same inbox. The local part is lowercased (every provider worth the name treats it
/// case-insensitively), a `+tag` subaddress is removed (for every domain: `a+1@` and `a@` are one
/// inbox wherever subaddressing exists, and elsewhere `+` is too rare to matter), and at
/// [`DOT_BLIND_PROVIDERS`] dots are removed and the domain mapped to its canonical one. The
/// domain is lowercased ASCII (punycode, as [`validate`] left it). A part that would become empty
/// is kept as it was, so the result is always an address and `mailbox` of it is itself.
pub fn mailbox(address: &Address) -> String {
    let domain = address.domain().to_ascii_lowercase();
    let (domain, dot_blind) = match DOT_BLIND_PROVIDERS.iter().find(|(d, _)| *d == domain) {
        Some((_, canonical)) => ((*canonical).to_owned(), true),
        None => (domain, false),
    };
    let lower = address.user().to_lowercase();
    let mut local = match lower.split_once('+') {
        Some((base, _)) if !base.is_empty() => base.to_owned(),
        _ => lower,
    };
    if dot_blind {
        let undotted: String = local.chars().filter(|&c| c != '.').collect();
        if !undotted.is_empty() {
            local = undotted;
        }
    }
    format!("{local}@{domain}")
}

/// The domain whose per-domain budget `address` spends: its domain lowercased (ASCII, punycode),
/// or `None` for [`SHARED_PROVIDERS`], which have no such budget.
pub fn budget_domain(address: &Address) -> Option<String> {
    let domain = address.domain().to_ascii_lowercase();
    (!SHARED_PROVIDERS.contains(&domain.as_str())).then_some(domain)
}

/// True when a mail can be addressed to `address` exactly as the mail composer does it: an
/// unquoted local part (RFC 5322's quoted strings, `"john doe"@`, are valid syntax that lettre
/// parses but does not write back into a header or an SMTP envelope faithfully), a `To` mailbox
/// that reads back as the same address, and a message lettre builds with an envelope for it.
fn mailable(address: &Address) -> bool {
    if address.user().contains(['"', '\\', ' ']) {
        return false;
    }
    let mailbox = Mailbox::new(None, address.clone());
    let reread = mailbox.to_string().parse::<Mailbox>();
    if !reread.is_ok_and(|m| m.email == *address) {
        return false;
    }
    Message::builder()
        .from(mailbox.clone())
        .to(mailbox)
        .subject("check")
        .body(String::new())
        .is_ok_and(|message| message.envelope().to() == std::slice::from_ref(address))
}

/// True when `domain` or one of its parent domains is a disposable mail provider.
pub fn is_disposable(domain: &str) -> bool {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    let list = LIST.get_or_init(|| mailchecker::blacklist().into_iter().collect());
    let domain = domain.trim_end_matches('.').to_lowercase();
    let mut rest = domain.as_str();
    loop {
        if list.contains(rest) {
            return true;
        }
        match rest.split_once('.') {
            Some((_, parent)) if parent.contains('.') => rest = parent,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_addresses_pass() {
        for ok in [
            "jane@example.com",
            "Jane.Doe+docs@mail.example.co.uk",
            "  padded@example.org  ",
            "o'brien@example.ie",
        ] {
            assert!(validate(ok).is_ok(), "{ok:?}");
        }
        assert_eq!(
            validate(" jane@example.com ").unwrap().to_string(),
            "jane@example.com"
        );
    }

    #[test]
    fn malformed_addresses_fail() {
        assert_eq!(validate(""), Err(AddressError::Missing));
        assert_eq!(validate("   "), Err(AddressError::Missing));
        for bad in [
            "plainaddress",
            "@example.com",
            "jane@",
            "jane@@example.com",
            "jane doe@example.com",
            "a@b.com\r\nBcc: x@y.com",
            "a@b.com\nBcc: x@y.com",
            "Jane <jane@example.com>",
            "a@b.com, c@d.com",
        ] {
            assert_eq!(validate(bad), Err(AddressError::Invalid), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(validate(&long), Err(AddressError::TooLong));
    }

    #[test]
    fn addresses_no_mail_can_carry_are_refused() {
        for bad in [
            "\"john doe\"@example.com",
            "\"john\"@example.com",
            "\"john\\\"doe\"@example.com",
            "\"a@b\"@example.com",
            "\"\"@example.com",
            "\"john.doe\".x@example.com",
        ] {
            let result = validate(bad);
            assert!(
                matches!(
                    result,
                    Err(AddressError::Unmailable | AddressError::Invalid)
                ),
                "{bad:?}: {result:?}"
            );
        }
        assert_eq!(
            validate("\"john doe\"@example.com"),
            Err(AddressError::Unmailable)
        );
        // Every accepted address builds a message with itself as the only recipient.
        for ok in [
            "jane@example.com",
            "o'brien@example.ie",
            "a+b=c@example.org",
            "jürgen@xn--bcher-kva.example",
        ] {
            let address = validate(ok).unwrap();
            assert!(mailable(&address), "{ok}");
        }
    }

    #[test]
    fn international_domains_become_ascii_and_local_parts_stay() {
        let address = validate("jane@bücher.example").unwrap();
        assert_eq!(address.to_string(), "jane@xn--bcher-kva.example");
        let address = validate("Jürgen@Bücher.Example").unwrap();
        assert_eq!(address.to_string(), "Jürgen@xn--bcher-kva.example");
        assert_eq!(
            validate("x@mailinator.com").unwrap_err(),
            AddressError::Disposable
        );
        assert_eq!(
            validate("jane@bü\u{0}cher.example"),
            Err(AddressError::Invalid)
        );
    }

    #[test]
    fn ip_literals_and_bare_hosts_fail() {
        for bad in [
            "jane@[127.0.0.1]",
            "jane@localhost",
            "jane@127.0.0.1",
            "jane@example.",
        ] {
            let result = validate(bad);
            assert!(
                matches!(
                    result,
                    Err(AddressError::NotADomain | AddressError::Invalid)
                ),
                "{bad:?}: {result:?}"
            );
        }
    }

    fn mailbox_of(raw: &str) -> String {
        mailbox(&validate(raw).unwrap())
    }

    #[test]
    fn spellings_of_one_inbox_are_one_mailbox() {
        for same in [
            "a@example.org",
            "A@example.org",
            "a+1@example.org",
            "A+x+y@EXAMPLE.org",
        ] {
            assert_eq!(mailbox_of(same), "a@example.org", "{same}");
        }
        for same in [
            "ab@gmail.com",
            "a.b@gmail.com",
            "A.B+x@googlemail.com",
            "A.b@GMAIL.com",
        ] {
            assert_eq!(mailbox_of(same), "ab@gmail.com", "{same}");
        }
        assert_eq!(
            mailbox_of("Jürgen@Bücher.Example"),
            "jürgen@xn--bcher-kva.example"
        );
    }

    #[test]
    fn different_inboxes_stay_apart() {
        assert_ne!(mailbox_of("a.b@example.org"), mailbox_of("ab@example.org"));
        assert_ne!(mailbox_of("a@example.org"), mailbox_of("a@example.com"));
        assert_ne!(mailbox_of("a-1@example.org"), mailbox_of("a@example.org"));
        // Only the part before the first `+` is the mailbox; with nothing before it, the whole.
        assert_eq!(mailbox_of("+tag@example.org"), "+tag@example.org");
        assert_eq!(
            mailbox_of(mailbox_of("+tag@example.org").as_str()),
            "+tag@example.org"
        );
    }

    #[test]
    fn shared_providers_have_no_domain_budget() {
        let domain = |raw: &str| budget_domain(&validate(raw).unwrap());
        assert_eq!(domain("Jane@Example.ORG"), Some("example.org".to_owned()));
        assert_eq!(
            domain("jane@Bücher.example"),
            Some("xn--bcher-kva.example".to_owned())
        );
        assert_eq!(domain("jane@GMail.com"), None);
        assert_eq!(domain("jane@googlemail.com"), None);
        assert_eq!(
            domain("jane@mail.gmail.com.example"),
            Some("mail.gmail.com.example".to_owned())
        );
    }

    #[test]
    fn configured_domains_read_as_address_domains_do() {
        assert_eq!(domain_name("Example.COM"), Some("example.com".to_owned()));
        assert_eq!(
            domain_name(" Bücher.Example "),
            Some("xn--bcher-kva.example".to_owned())
        );
        assert_eq!(
            domain_name("bücher.example"),
            Some(domain_of(&validate("jürgen@Bücher.Example").unwrap()))
        );
        for bad in [
            "",
            "example",
            "example.",
            ".example.com",
            "a..b",
            "[127.0.0.1]",
            "127.0.0.1",
            "exa mple.com",
            "@example.com",
            "jane@example.com",
            "*.example.com",
            "https://example.com",
        ] {
            assert_eq!(domain_name(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn disposable_domains_and_their_subdomains_fail() {
        assert_eq!(validate("x@mailinator.com"), Err(AddressError::Disposable));
        assert_eq!(validate("x@sub.33mail.com"), Err(AddressError::Disposable));
        assert_eq!(validate("x@MAILINATOR.COM"), Err(AddressError::Disposable));
        assert!(!is_disposable("example.com"));
        assert!(!is_disposable("com"));
    }
}
