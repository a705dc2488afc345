//! The store contract's cases on claims and their settling: a completed download spends the link,
//! cut-offs count until attempts run out, refunds do not, only the holder settles, operators
//! revoke, leases and links expire, and racing claims have one winner.

use std::sync::Arc;
use std::time::Duration;

use docgate::store::{ClaimOutcome, Lease, LinkState, Sent, TokenStore};
use docgate::token::Jti;

use super::{LINK_TTL, insert, insert_for, lease};
use crate::support::owner_id;

pub(super) async fn a_completed_download_spends_the_link(store: &dyn TokenStore) {
    let jti = insert(store, LINK_TTL, 3).await;
    assert_eq!(
        store.peek(&jti).await.unwrap(),
        LinkState::Ready { started: 0 }
    );
    let l = lease();
    assert_eq!(
        store.claim(&jti, &l).await.unwrap(),
        ClaimOutcome::Granted { attempt: 1 }
    );
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::InFlight);
    assert_eq!(
        store.claim(&jti, &lease()).await.unwrap(),
        ClaimOutcome::Refused(LinkState::InFlight)
    );
    assert!(store.renew(&jti, &l, Sent::default()).await.unwrap());
    assert!(store.complete(&jti, &l, Sent::default()).await.unwrap());
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::Used);
    assert_eq!(
        store.claim(&jti, &lease()).await.unwrap(),
        ClaimOutcome::Refused(LinkState::Used)
    );
}

pub(super) async fn cut_offs_count_until_attempts_run_out(store: &dyn TokenStore) {
    let jti = insert(store, LINK_TTL, 3).await;
    for attempt in 1..=3 {
        let l = lease();
        assert_eq!(
            store.claim(&jti, &l).await.unwrap(),
            ClaimOutcome::Granted { attempt }
        );
        store
            .release(&jti, &l, Sent::default(), false)
            .await
            .unwrap();
    }
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::Used);
    assert_eq!(
        store.claim(&jti, &lease()).await.unwrap(),
        ClaimOutcome::Refused(LinkState::Used)
    );
}

pub(super) async fn refunds_do_not_count(store: &dyn TokenStore) {
    let jti = insert(store, LINK_TTL, 2).await;
    for _ in 0..4 {
        let l = lease();
        assert_eq!(
            store.claim(&jti, &l).await.unwrap(),
            ClaimOutcome::Granted { attempt: 1 }
        );
        store
            .release(&jti, &l, Sent::default(), true)
            .await
            .unwrap();
    }
    assert_eq!(
        store.peek(&jti).await.unwrap(),
        LinkState::Ready { started: 0 }
    );
}

pub(super) async fn only_the_holder_settles(store: &dyn TokenStore) {
    let jti = insert(store, LINK_TTL, 3).await;
    let holder = lease();
    store.claim(&jti, &holder).await.unwrap();
    let stranger = lease();
    assert!(!store.renew(&jti, &stranger, Sent::default()).await.unwrap());
    assert!(
        !store
            .complete(&jti, &stranger, Sent::default())
            .await
            .unwrap()
    );
    store
        .release(&jti, &stranger, Sent::default(), false)
        .await
        .unwrap();
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::InFlight);
    assert!(
        store
            .complete(&jti, &holder, Sent::default())
            .await
            .unwrap()
    );
}

pub(super) async fn unknown_links_are_revoked(store: &dyn TokenStore) {
    let jti = Jti::generate();
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::Revoked);
    assert_eq!(
        store.claim(&jti, &lease()).await.unwrap(),
        ClaimOutcome::Refused(LinkState::Revoked)
    );
}

pub(super) async fn operators_revoke_one_link_or_all_of_one_person(store: &dyn TokenStore) {
    let jane = owner_id("Jane@Example.org");
    assert_eq!(jane, owner_id("jane@example.org"), "one person, any case");
    let first = insert_for(store, LINK_TTL, 3, Some(&jane)).await;
    let second = insert_for(store, Duration::from_secs(3600), 3, Some(&jane)).await;
    let other = insert_for(store, LINK_TTL, 3, Some(&owner_id("joe@example.org"))).await;
    let single = insert(store, LINK_TTL, 3).await;

    assert!(store.revoke(&single).await.unwrap());
    assert_eq!(store.peek(&single).await.unwrap(), LinkState::Revoked);
    assert!(!store.revoke(&single).await.unwrap(), "already gone");

    // A link in flight is revoked too: its renewal fails and the download stops.
    let lease = lease();
    assert!(matches!(
        store.claim(&first, &lease).await.unwrap(),
        ClaimOutcome::Granted { .. }
    ));
    assert_eq!(store.revoke_owner(&jane).await.unwrap(), 2);
    assert!(!store.renew(&first, &lease, Sent::default()).await.unwrap());
    for jti in [&first, &second] {
        assert_eq!(store.peek(jti).await.unwrap(), LinkState::Revoked);
    }
    assert_eq!(
        store.peek(&other).await.unwrap(),
        LinkState::Ready { started: 0 },
        "another person's link is untouched"
    );
    assert_eq!(store.revoke_owner(&jane).await.unwrap(), 0);
}

/// Real time, kept short: a lease of 300 ms and a link of 300 ms.
pub(super) async fn leases_and_links_expire(store: &dyn TokenStore) {
    let jti = insert(store, LINK_TTL, 3).await;
    let short = Lease::new(Duration::from_millis(300));
    store.claim(&jti, &short).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let next = lease();
    assert_eq!(
        store.claim(&jti, &next).await.unwrap(),
        ClaimOutcome::Granted { attempt: 2 },
        "a dead holder's lease lapses"
    );
    assert!(!store.renew(&jti, &short, Sent::default()).await.unwrap());
    assert!(!store.complete(&jti, &short, Sent::default()).await.unwrap());
    assert!(store.complete(&jti, &next, Sent::default()).await.unwrap());

    let brief = insert(store, Duration::from_millis(300), 3).await;
    let streaming = insert(store, Duration::from_millis(300), 3).await;
    let l = Lease::new(Duration::from_secs(5));
    store.claim(&streaming, &l).await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(store.peek(&brief).await.unwrap(), LinkState::Revoked);
    assert!(
        store.renew(&streaming, &l, Sent::default()).await.unwrap(),
        "a download in flight keeps its link alive"
    );
    assert!(
        store
            .complete(&streaming, &l, Sent::default())
            .await
            .unwrap()
    );
}

pub(super) async fn racing_claims_have_one_winner(store: Arc<dyn TokenStore>) {
    let jti = insert(store.as_ref(), LINK_TTL, 3).await;
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let store = store.clone();
            let jti = jti.clone();
            tokio::spawn(async move { store.claim(&jti, &lease()).await.unwrap() })
        })
        .collect();
    let mut granted = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), ClaimOutcome::Granted { .. }) {
            granted += 1;
        }
    }
    assert_eq!(granted, 1);
}
