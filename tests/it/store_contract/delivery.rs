//! The store contract's cases on what downloads deliver: the bytes each reports (running totals,
//! refunds of our failures, a dead holder's last report), the link spent once they cover the
//! document, and the second fetch's re-arm for a link that delivered one copy.

use std::time::Duration;

use docgate::store::{ClaimOutcome, Lease, LinkState, Sent, TokenStore};

use super::{LINK_TTL, insert, insert_for, lease};

pub(super) async fn a_completed_link_is_rearmed_once_for_its_network(store: &dyn TokenStore) {
    let window = Duration::from_secs(60);
    let ttl = Duration::from_secs(10);
    let jti = insert(store, LINK_TTL, 3).await;
    // Not while usable, nor for an unnamed network.
    assert!(!store.rearm(&jti, "net-a", window).await.unwrap());
    let by_a = Lease::held_by(ttl, "net-a", true);
    assert!(matches!(
        store.claim(&jti, &by_a).await.unwrap(),
        ClaimOutcome::Granted { attempt: 1 }
    ));
    assert!(store.complete(&jti, &by_a, Sent::default()).await.unwrap());
    assert!(!store.rearm(&jti, "", window).await.unwrap());
    assert!(!store.rearm(&jti, "net-b", window).await.unwrap());
    assert!(store.rearm(&jti, "net-a", window).await.unwrap());
    assert_eq!(
        store.peek(&jti).await.unwrap(),
        LinkState::Ready { started: 0 }
    );
    // Only that network may claim it.
    let by_b = Lease::held_by(ttl, "net-b", false);
    assert_eq!(
        store.claim(&jti, &by_b).await.unwrap(),
        ClaimOutcome::Refused(LinkState::Used)
    );
    // One more download, and only one: even a refunded failure spends it.
    let again = Lease::held_by(ttl, "net-a", false);
    assert!(matches!(
        store.claim(&jti, &again).await.unwrap(),
        ClaimOutcome::Granted { attempt: 1 }
    ));
    store
        .release(&jti, &again, Sent::default(), true)
        .await
        .unwrap();
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::Used);
    assert!(!store.rearm(&jti, "net-a", window).await.unwrap());
    let late = Lease::held_by(ttl, "net-a", false);
    assert_eq!(
        store.claim(&jti, &late).await.unwrap(),
        ClaimOutcome::Refused(LinkState::Used)
    );

    // Completed by a download that does not arm (a script's GET): never re-armed.
    let jti = insert(store, LINK_TTL, 3).await;
    let plain = Lease::held_by(ttl, "net-a", false);
    store.claim(&jti, &plain).await.unwrap();
    assert!(store.complete(&jti, &plain, Sent::default()).await.unwrap());
    assert!(!store.rearm(&jti, "net-a", window).await.unwrap());

    // Too late: the window has passed.
    let jti = insert(store, LINK_TTL, 3).await;
    let by_a = Lease::held_by(ttl, "net-a", true);
    store.claim(&jti, &by_a).await.unwrap();
    assert!(store.complete(&jti, &by_a, Sent::default()).await.unwrap());
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        !store
            .rearm(&jti, "net-a", Duration::from_millis(100))
            .await
            .unwrap()
    );
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::Used);

    // Revoked before or after its completion: no second fetch.
    let jti = insert(store, LINK_TTL, 3).await;
    assert!(store.revoke(&jti).await.unwrap());
    assert!(!store.rearm(&jti, "net-a", window).await.unwrap());
    let jti = insert(store, LINK_TTL, 3).await;
    let by_a = Lease::held_by(ttl, "net-a", true);
    store.claim(&jti, &by_a).await.unwrap();
    assert!(store.complete(&jti, &by_a, Sent::default()).await.unwrap());
    assert!(
        store.revoke(&jti).await.unwrap(),
        "its second fetch was withdrawn"
    );
    assert!(!store.rearm(&jti, "net-a", window).await.unwrap());
    assert!(
        !store.revoke(&jti).await.unwrap(),
        "nothing left to withdraw"
    );
    // ... and so is every link of one person.
    let jti = insert_for(store, LINK_TTL, 3, Some("owner-z")).await;
    let by_a = Lease::held_by(ttl, "net-a", true);
    store.claim(&jti, &by_a).await.unwrap();
    assert!(store.complete(&jti, &by_a, Sent::default()).await.unwrap());
    store.revoke_owner("owner-z").await.unwrap();
    assert!(!store.rearm(&jti, "net-a", window).await.unwrap());
}

/// The document size the byte-accounting cases report.
const SIZE: u64 = 1000;

fn sent(bytes: u64) -> Sent {
    Sent::new(bytes, SIZE)
}

pub(super) async fn bytes_sent_in_all_spend_the_link_once_they_cover_the_document(
    store: &dyn TokenStore,
) {
    // Attempts to spare: only the bytes spend this link.
    let jti = insert(store, LINK_TTL, 10).await;
    let first = lease();
    assert_eq!(
        store.claim(&jti, &first).await.unwrap(),
        ClaimOutcome::Granted { attempt: 1 }
    );
    // Reports are running totals: a repeated or a smaller one counts nothing more.
    for bytes in [300, 600, 600, 500] {
        assert!(store.renew(&jti, &first, sent(bytes)).await.unwrap());
    }
    store.release(&jti, &first, sent(600), false).await.unwrap();
    // A release retried after the fact counts nothing: the lease is no longer held.
    store.release(&jti, &first, sent(600), false).await.unwrap();
    assert_eq!(
        store.peek(&jti).await.unwrap(),
        LinkState::Ready { started: 1 }
    );
    let second = lease();
    assert_eq!(
        store.claim(&jti, &second).await.unwrap(),
        ClaimOutcome::Granted { attempt: 2 }
    );
    store
        .release(&jti, &second, sent(399), false)
        .await
        .unwrap();
    assert_eq!(
        store.peek(&jti).await.unwrap(),
        LinkState::Ready { started: 2 },
        "999 bytes of 1000 in all"
    );
    let third = lease();
    assert_eq!(
        store.claim(&jti, &third).await.unwrap(),
        ClaimOutcome::Granted { attempt: 3 }
    );
    store.release(&jti, &third, sent(1), false).await.unwrap();
    assert_eq!(
        store.peek(&jti).await.unwrap(),
        LinkState::Used,
        "the bytes cover the document"
    );
    assert_eq!(
        store.claim(&jti, &lease()).await.unwrap(),
        ClaimOutcome::Refused(LinkState::Used)
    );
    assert!(
        !store
            .rearm(&jti, "net-a", Duration::from_secs(60))
            .await
            .unwrap()
    );
}

pub(super) async fn a_failure_of_ours_refunds_its_bytes(store: &dyn TokenStore) {
    let jti = insert(store, LINK_TTL, 10).await;
    let failed = lease();
    store.claim(&jti, &failed).await.unwrap();
    assert!(store.renew(&jti, &failed, sent(900)).await.unwrap());
    store.release(&jti, &failed, sent(950), true).await.unwrap();
    assert_eq!(
        store.peek(&jti).await.unwrap(),
        LinkState::Ready { started: 0 }
    );
    let next = lease();
    assert_eq!(
        store.claim(&jti, &next).await.unwrap(),
        ClaimOutcome::Granted { attempt: 1 }
    );
    store.release(&jti, &next, sent(999), false).await.unwrap();
    assert_eq!(
        store.peek(&jti).await.unwrap(),
        LinkState::Ready { started: 1 },
        "the refunded download's bytes did not count"
    );
}

pub(super) async fn a_download_passing_the_size_streams_on_until_it_ends(store: &dyn TokenStore) {
    let jti = insert(store, LINK_TTL, 10).await;
    let cut = lease();
    store.claim(&jti, &cut).await.unwrap();
    store.release(&jti, &cut, sent(900), false).await.unwrap();
    // A whole download after a cut-off one: the link's total passes the size on the way, and
    // the download keeps its lease until it delivers the last byte.
    let whole = lease();
    assert_eq!(
        store.claim(&jti, &whole).await.unwrap(),
        ClaimOutcome::Granted { attempt: 2 }
    );
    assert!(store.renew(&jti, &whole, sent(500)).await.unwrap());
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::InFlight);
    assert!(store.complete(&jti, &whole, sent(SIZE)).await.unwrap());
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::Used);
}

/// Real time, kept short: leases of 300 ms.
pub(super) async fn a_dead_holders_reported_bytes_count(store: &dyn TokenStore) {
    let short = || Lease::new(Duration::from_millis(300));
    let most = insert(store, LINK_TTL, 10).await;
    let all = insert(store, LINK_TTL, 10).await;
    let (dying_most, dying_all) = (short(), short());
    store.claim(&most, &dying_most).await.unwrap();
    store.claim(&all, &dying_all).await.unwrap();
    assert!(store.renew(&most, &dying_most, sent(700)).await.unwrap());
    assert!(store.renew(&all, &dying_all, sent(SIZE)).await.unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Its holder died having sent all of it: spent.
    assert_eq!(store.peek(&all).await.unwrap(), LinkState::Used);
    assert_eq!(
        store.claim(&all, &lease()).await.unwrap(),
        ClaimOutcome::Refused(LinkState::Used)
    );
    // Its holder died having sent 700: 300 more spend it.
    assert_eq!(
        store.peek(&most).await.unwrap(),
        LinkState::Ready { started: 1 }
    );
    let next = lease();
    assert_eq!(
        store.claim(&most, &next).await.unwrap(),
        ClaimOutcome::Granted { attempt: 2 }
    );
    assert!(!store.renew(&most, &dying_most, sent(800)).await.unwrap());
    store.release(&most, &next, sent(300), false).await.unwrap();
    assert_eq!(store.peek(&most).await.unwrap(), LinkState::Used);
}

pub(super) async fn only_a_link_that_delivered_one_copy_is_rearmed(store: &dyn TokenStore) {
    let window = Duration::from_secs(60);
    let ttl = Duration::from_secs(10);
    // A clean download from the button: one copy, and the second fetch makes two.
    let jti = insert(store, LINK_TTL, 3).await;
    let by_a = Lease::held_by(ttl, "net-a", true);
    store.claim(&jti, &by_a).await.unwrap();
    assert!(store.renew(&jti, &by_a, sent(600)).await.unwrap());
    assert!(store.complete(&jti, &by_a, sent(SIZE)).await.unwrap());
    assert!(store.rearm(&jti, "net-a", window).await.unwrap());
    let again = Lease::held_by(ttl, "net-a", false);
    assert!(matches!(
        store.claim(&jti, &again).await.unwrap(),
        ClaimOutcome::Granted { .. }
    ));
    assert!(store.complete(&jti, &again, sent(SIZE)).await.unwrap());
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::Used);

    // Completed after a cut-off download: more than one copy already, no second fetch.
    let jti = insert(store, LINK_TTL, 3).await;
    let cut = Lease::held_by(ttl, "net-a", true);
    store.claim(&jti, &cut).await.unwrap();
    store.release(&jti, &cut, sent(400), false).await.unwrap();
    let by_a = Lease::held_by(ttl, "net-a", true);
    store.claim(&jti, &by_a).await.unwrap();
    assert!(store.complete(&jti, &by_a, sent(SIZE)).await.unwrap());
    assert!(!store.rearm(&jti, "net-a", window).await.unwrap());
    assert_eq!(store.peek(&jti).await.unwrap(), LinkState::Used);

    // A resume that completes what was cut off delivered one copy in all: re-armed.
    let jti = insert(store, LINK_TTL, 3).await;
    let cut = Lease::held_by(ttl, "net-a", true);
    store.claim(&jti, &cut).await.unwrap();
    store.release(&jti, &cut, sent(400), false).await.unwrap();
    let rest = Lease::held_by(ttl, "net-a", true);
    store.claim(&jti, &rest).await.unwrap();
    assert!(store.complete(&jti, &rest, sent(600)).await.unwrap());
    assert!(store.rearm(&jti, "net-a", window).await.unwrap());
}
