//! Fuzzes `address::mailbox` and `address::budget_domain`, which name the budgets a link request
//! spends: a spelling that escaped its mailbox's or domain's budget would let anyone flood an
//! inbox or a company through docgate.
//!
//! Input: an address as typed (bytes that are not UTF-8 are left out). Checks, for every address
//! `address::validate` accepts: no panic; the mailbox's domain is ASCII lowercase and is the
//! budget domain (or Gmail's, or a shared provider's with no budget); the local part has no upper
//! case ASCII letter and, when the typed one had a `+` after its first character, nothing from the
//! first `+` on; a mailbox docgate accepts as an address is its own mailbox; the ASCII-uppercased
//! spelling and the one with `+fuzz` appended to the local part, when accepted, give the same
//! mailbox.

#![no_main]

use docgate::address::{self, SHARED_PROVIDERS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(typed) = address::validate(raw) else {
        return;
    };
    let mailbox = address::mailbox(&typed);
    let (local, domain) = mailbox
        .rsplit_once('@')
        .unwrap_or_else(|| panic!("{mailbox:?} has no @"));
    assert!(domain.is_ascii() && !domain.bytes().any(|b| b.is_ascii_uppercase()));
    assert!(
        !local.bytes().any(|b| b.is_ascii_uppercase()),
        "{mailbox:?}"
    );
    match address::budget_domain(&typed) {
        Some(budget) => assert_eq!(budget, domain),
        None => assert!(
            SHARED_PROVIDERS.contains(&typed.domain().to_ascii_lowercase().as_str()),
            "{raw:?}"
        ),
    }
    if typed.user().find('+').is_some_and(|at| at > 0) {
        assert!(!local.contains('+'), "{raw:?} kept its tag: {mailbox:?}");
    }
    if let Ok(again) = address::validate(&mailbox) {
        assert_eq!(address::mailbox(&again), mailbox, "{raw:?}");
    }
    let mut others = vec![raw.to_ascii_uppercase()];
    if !typed.user().starts_with('+') && !typed.user().contains('"') {
        others.push(format!("{}+fuzz@{}", typed.user(), typed.domain()));
    }
    for other in others {
        if let Ok(spelling) = address::validate(&other) {
            if spelling.domain().eq_ignore_ascii_case(typed.domain()) {
                assert_eq!(address::mailbox(&spelling), mailbox, "{raw:?} / {other:?}");
            }
        }
    }
});
