//! How directory mode reads a document while it streams it: exact bytes from a cold page cache
//! (reads that wait for the disk) and for ranges that start and end at chunk boundaries, a file
//! truncated mid-stream cut short rather than padded, and a client that stops reading stopping
//! the reads from disk.

use docgate::objects::dir::READ_SIZE;
use docgate::store::LinkState;

use crate::support::*;

/// Drops `path`'s pages from the page cache: the next reads of it wait for the disk.
fn evict(path: &std::path::Path) {
    let file = std::fs::File::open(path).unwrap();
    file.sync_all().unwrap();
    rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
}

#[tokio::test]
async fn a_document_out_of_the_page_cache_downloads_exact_whole_and_in_ranges() {
    let app = TestApp::start().await;
    let file = app.path("documents/big.bin");
    let whole = content(3, BIG_LEN);

    evict(&file);
    let (claims, link) = app.mint("big").await;
    let response = app.get(&link).await;
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), BIG_LEN);
    assert_eq!(sha256(&body), sha256(&whole));
    assert_eq!(app.released(&claims.jti).await, LinkState::Used);

    // Ranges starting and ending on either side of a read's boundary, each read cold.
    let c = READ_SIZE;
    for (start, end) in [(c - 1, c), (c, 2 * c - 1), (c, 3 * c), (5 * c - 1, 9 * c)] {
        evict(&file);
        let (claims, link) = app.mint("big").await;
        let response = app.get_range(&link, &format!("bytes={start}-{end}")).await;
        assert_eq!(response.status(), 206, "{start}-{end}");
        let body = response.bytes().await.unwrap();
        assert_eq!(body[..], whole[start..=end], "{start}-{end}");
        // A range short of the end does not spend the link: one download of it has begun.
        assert_eq!(
            app.released(&claims.jti).await,
            LinkState::Ready { started: 1 },
            "{start}-{end}"
        );
    }
}

#[tokio::test]
async fn a_document_truncated_mid_stream_is_cut_short_not_padded() {
    let app = TestApp::start().await;
    let (claims, link) = app.mint("big").await;
    let file = app.path("documents/big.bin");
    let whole = content(3, BIG_LEN);
    let kept = BIG_LEN / 2 + READ_SIZE / 3;

    let mut cut = PartialGet::start(&app, &link, &[], READ_SIZE).await;
    assert_eq!(cut.status, 200);
    assert_eq!(cut.header("content-length"), Some(&*BIG_LEN.to_string()));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(kept as u64)
        .unwrap();
    // Reads until the server ends the connection (bounded: at most the whole document).
    cut.read_more(BIG_LEN).await;

    // Only bytes of the document, in order, and none past its new end: no padding.
    let received = cut.body.len();
    assert!(received <= kept, "{received} bytes of a file cut at {kept}");
    assert!(received < BIG_LEN);
    assert!(
        cut.body[..] == whole[..received],
        "the bytes are the document's"
    );
    drop(cut);
    // Docgate's failure: the link is released, neither attempt nor bytes counted.
    assert_eq!(
        app.released(&claims.jti).await,
        LinkState::Ready { started: 0 }
    );
}

#[tokio::test]
async fn a_client_that_stops_reading_stops_the_reads_from_disk() {
    let app = TestApp::start().await;
    let (_, link) = app.mint("big").await;
    let file = app.path("documents/big.bin");
    let before = content(3, BIG_LEN);
    let after = content(4, BIG_LEN);

    // The client takes a little, then stops reading for a while: every buffer on the way fills.
    let mut slow = PartialGet::start(&app, &link, &[], 64 * 1024).await;
    assert_eq!(slow.status, 200);
    let taken = slow.body.len();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    // The document is rewritten in place (same inode, same length) while the client is stalled:
    // whatever docgate reads from now on is the new version.
    std::os::unix::fs::FileExt::write_all_at(
        &std::fs::OpenOptions::new().write(true).open(&file).unwrap(),
        &after,
        0,
    )
    .unwrap();
    let got = slow.read_more(BIG_LEN).await + taken;
    assert_eq!(got, BIG_LEN);

    // The body is the old version up to where docgate had read when the client stopped, then the
    // new one: what it read ahead of the client is bounded (socket buffers, one queued chunk,
    // one read ahead), nowhere near the whole document.
    let switch = (0..BIG_LEN)
        .find(|&i| slow.body[i] != before[i])
        .expect("the rewrite shows in the body");
    assert!(
        slow.body[switch..] == after[switch..],
        "old bytes, then new ones"
    );
    let ahead = switch - taken;
    assert!(
        ahead <= 1024 * 1024,
        "{ahead} bytes read ahead of a client that stopped reading"
    );
}
