//! Fuzzes `address::validate`, which reads the address anyone types into the request form.
//!
//! Input: the address (UTF-8, lossily). Checks: no panic; an accepted address fits in 254 bytes,
//! has an unquoted local part and a dotted domain name, validates to itself again, and lettre
//! builds a message to it whose envelope holds exactly that address (what the mail composer
//! needs: nothing accepted fails later as an outage).

#![no_main]

use docgate::address::validate;
use lettre::Message;
use lettre::message::Mailbox;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let Ok(address) = validate(&raw) else {
        return;
    };
    let text = address.to_string();
    assert!(text.len() <= 254, "{text:?}");
    assert!(!address.user().contains(['"', '\\', ' ']), "{text:?}");
    assert!(address.domain().contains('.'), "{text:?}");
    assert_eq!(validate(&text), Ok(address.clone()));
    let mailbox = Mailbox::new(None, address.clone());
    let message = Message::builder()
        .from(mailbox.clone())
        .to(mailbox)
        .subject("fuzz")
        .body(String::new());
    match message {
        Ok(message) => assert_eq!(message.envelope().to(), std::slice::from_ref(&address)),
        Err(e) => panic!("{text:?} was accepted but cannot be mailed: {e}"),
    }
});
