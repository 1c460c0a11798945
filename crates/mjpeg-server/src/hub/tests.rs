//! Unit tests of the hub.

use super::*;

fn jpeg() -> Vec<u8> {
    crate::test_data::corpus("jpeg_5k.jpg")
}

#[test]
fn names_are_checked() {
    let s = Streams::new();
    for good in ["a", "cam-1", "Graphs_2", &"x".repeat(64)] {
        s.add(good).unwrap();
    }
    for bad in ["", "a b", "../x", "ü", "a/b", "a?b", &"x".repeat(65)] {
        assert_eq!(s.add(bad).unwrap_err(), NameError::Invalid(bad.to_string()));
    }
    assert_eq!(s.add("a").unwrap_err(), NameError::Duplicate("a".into()));
    assert_eq!(s.nth(1).unwrap().name(), "cam-1");
}

#[test]
fn a_per_stream_limit_counts_every_client() {
    let hub = Hub::new("t");
    let a = hub.try_subscribe_from(None, Some(2)).unwrap();
    let _b = hub.subscribe();
    assert!(hub.try_subscribe_from(None, Some(2)).is_none());
    assert_eq!(hub.stats().clients, 2);
    drop(a);
    assert!(hub.try_subscribe_from(None, Some(2)).is_some());
    assert!(hub.try_subscribe_from(None, None).is_some());
    assert_eq!(hub.stats().clients, 1);
}

#[tokio::test]
async fn a_slow_subscriber_gets_only_the_newest_frame() {
    let hub = Hub::new("t");
    let mut sub = hub.subscribe();
    assert!(sub.take_unseen().is_none());
    for _ in 0..5 {
        hub.publish_jpeg(jpeg()).unwrap();
    }
    assert_eq!(sub.next().await.seq(), 5);
    assert!(sub.take_unseen().is_none());
    hub.publish_jpeg(jpeg()).unwrap();
    assert_eq!(sub.next().await.seq(), 6);
}

#[tokio::test]
async fn a_waiting_subscriber_wakes_for_each_new_frame() {
    let hub = Hub::new("t");
    let mut sub = hub.subscribe();
    let waiter = tokio::spawn(async move {
        let a = sub.next().await.seq();
        let b = sub.next().await.seq();
        (a, b)
    });
    tokio::task::yield_now().await;
    hub.publish_jpeg(jpeg()).unwrap();
    // Wait until the first frame was taken before publishing the second.
    while hub.inner.tx.receiver_count() > 0 && !waiter.is_finished() {
        if hub.inner.tx.borrow().is_some() {
            tokio::time::sleep(Duration::from_millis(20)).await;
            hub.publish_jpeg(jpeg()).unwrap();
            break;
        }
    }
    let (a, b) = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a, 1);
    assert!(b >= 2);
}

#[tokio::test]
async fn a_new_subscriber_sees_the_current_frame_at_once() {
    let hub = Hub::new("t");
    hub.publish_jpeg(jpeg()).unwrap();
    let mut sub = hub.subscribe();
    assert_eq!(sub.next().await.seq(), 1);
}

#[test]
fn clients_are_counted_until_dropped() {
    let hub = Hub::new("t");
    let a = hub.subscribe();
    let b = hub.subscribe();
    assert_eq!(hub.stats().clients, 2);
    drop(a);
    drop(b);
    assert_eq!(hub.stats().clients, 0);
}

#[test]
fn rejected_frames_keep_the_last_good_one() {
    let hub = Hub::new("t");
    hub.publish_jpeg(jpeg()).unwrap();
    assert!(hub.publish_jpeg(&b"garbage"[..]).is_err());
    let mut boundary = jpeg();
    // A COM segment carrying the boundary string is a valid JPEG.
    let mut com = vec![0xFF, 0xFE, 0, 21];
    com.extend_from_slice(multipart::BOUNDARY.as_bytes());
    boundary.splice(2..2, com);
    assert_eq!(
        hub.publish_jpeg(boundary).unwrap_err(),
        PublishError::ContainsBoundary
    );
    let stats = hub.stats();
    assert_eq!(stats.frames_published, 1);
    assert_eq!(stats.frames_rejected, 2);
    assert_eq!(hub.latest().unwrap().seq(), 1);
    assert!(stats.last_error.unwrap().contains("boundary"));
}
