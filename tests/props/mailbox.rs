//! Mailboxes (the per-address budget's key): idempotent, blind to case and `+tags`, and to dots
//! only at the providers that ignore them.

use super::*;

/// A local part without `+`: dot-separated atoms of letters, digits, `-` and `_`.
pub(crate) fn local_part() -> impl Strategy<Value = String> {
    prop::collection::vec("[a-zA-Z0-9_-]{1,6}", 1..4).prop_map(|atoms| atoms.join("."))
}

/// A domain, among them the dot-blind providers in mixed case and an international one.
pub(crate) fn mail_domain() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,8}\\.(org|com|example)",
        Just("gmail.com".to_owned()),
        Just("GoogleMail.COM".to_owned()),
        Just("Gmail.com".to_owned()),
        Just("bücher.example".to_owned()),
    ]
}

/// The mailbox of an address as typed; `None` when docgate refuses the address.
pub(crate) fn mailbox_of(raw: &str) -> Option<String> {
    address::validate(raw).ok().map(|a| address::mailbox(&a))
}

proptest! {
    #![proptest_config(config(2000))]

    /// A mailbox is itself an address, and its own mailbox.
    #[test]
    fn mailbox_is_idempotent(
        local in local_part(),
        tag in "(\\+[a-zA-Z0-9._-]{0,6})?",
        domain in mail_domain(),
    ) {
        let raw = format!("{local}{tag}@{domain}");
        let Some(mailbox) = mailbox_of(&raw) else {
            return Err(TestCaseError::reject("refused"));
        };
        prop_assert_eq!(mailbox_of(&mailbox), Some(mailbox.clone()), "{}", raw);
    }

    /// Case does not change the mailbox, in the local part or the domain.
    #[test]
    fn mailbox_ignores_case(
        local in local_part(),
        domain in mail_domain(),
        flips in prop::collection::vec(any::<bool>(), 40),
    ) {
        let raw = format!("{local}@{domain}");
        let recased: String = raw
            .chars()
            .zip(flips.iter().cycle())
            .map(|(c, &up)| {
                if up {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect();
        let Some(mailbox) = mailbox_of(&raw) else {
            return Err(TestCaseError::reject("refused"));
        };
        prop_assert_eq!(mailbox_of(&recased), Some(mailbox), "{} / {}", raw, recased);
    }

    /// A `+tag` does not change the mailbox, at any domain.
    #[test]
    fn mailbox_ignores_tags(
        local in local_part(),
        tag in "[a-zA-Z0-9_-]{0,6}(\\.[a-zA-Z0-9_+-]{1,4})?",
        domain in mail_domain(),
    ) {
        let bare = format!("{local}@{domain}");
        let tagged = format!("{local}+{tag}@{domain}");
        let Some(mailbox) = mailbox_of(&bare) else {
            return Err(TestCaseError::reject("refused"));
        };
        prop_assert_eq!(mailbox_of(&tagged), Some(mailbox), "{}", tagged);
    }

    /// Dots fold only at the dot-blind providers: elsewhere the local part keeps them.
    #[test]
    fn mailbox_keeps_dots_except_at_dot_blind_providers(
        local in local_part(),
        domain in mail_domain(),
    ) {
        let raw = format!("{local}@{domain}");
        let Some(mailbox) = mailbox_of(&raw) else {
            return Err(TestCaseError::reject("refused"));
        };
        let (kept, _) = mailbox.rsplit_once('@').unwrap_or_default();
        let lower = local.to_lowercase();
        let dot_blind = address::DOT_BLIND_PROVIDERS
            .iter()
            .any(|(d, _)| d.eq_ignore_ascii_case(&domain));
        if dot_blind {
            prop_assert_eq!(kept, lower.replace('.', ""));
            prop_assert!(mailbox.ends_with("@gmail.com"));
        } else {
            prop_assert_eq!(kept, lower);
        }
    }
}
