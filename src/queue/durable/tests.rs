use super::*;
use crate::queue::Queue;

fn cfg(dir: &Path, fsync: FsyncMode) -> FileStorageConfig {
    FileStorageConfig {
        directory: dir.display().to_string(),
        fsync,
        segment_size: crate::config::common::ByteSize(4096),
        ..Default::default()
    }
}

fn limits() -> Limits {
    Limits {
        max_bytes: 1 << 20,
        max_requests: 10_000,
    }
}

fn p(tag: u32, items: u64) -> Payload {
    Payload::new(
        Signal::Traces,
        Bytes::from(format!("payload-{tag:06}").into_bytes()),
        items,
    )
}

async fn open(dir: &Path, m: &Arc<Metrics>) -> Arc<DurableQueue> {
    let q = DurableQueue::open(
        "otlphttp/t",
        &cfg(dir, FsyncMode::Group),
        limits(),
        m.clone(),
    )
    .expect("open");
    for _ in 0..500 {
        if q.replay_done() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    q
}

async fn put(q: &Arc<DurableQueue>, pl: Payload) {
    let r = q
        .reserve(pl.len() as u64, Duration::ZERO)
        .await
        .expect("room");
    r.commit(pl).await.expect("commit");
}

fn tag(pl: &Payload) -> String {
    String::from_utf8_lossy(&pl.bytes).into_owned()
}

fn drain(q: &DurableQueue) -> Vec<Popped> {
    std::iter::from_fn(|| q.try_pop()).collect()
}

fn metric_line(m: &Metrics, prefix: &str) -> Option<f64> {
    m.encode()
        .lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn acked_records_are_gone_and_the_rest_replays_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(Metrics::new());
    let q = open(dir.path(), &m).await;
    assert!(q.dir().ends_with("otlphttp.t"));
    for i in 0..200 {
        put(&q, p(i, 2)).await;
    }
    assert_eq!(q.stats().0, 200);
    let got = drain(&q);
    assert_eq!(got.len(), 200);
    // deliver the first 50, leave 50..200 un-acked (in flight at a "crash")
    let tickets: Vec<Ticket> = got[..50].iter().map(|x| x.ticket).collect();
    q.done(&tickets, true);
    q.finish().await;
    drop(q);
    let q = open(dir.path(), &m).await;
    let again = drain(&q);
    let tags: Vec<String> = again.iter().map(|x| tag(&x.payload)).collect();
    assert_eq!(tags, tags_of(50..200));
    assert_eq!(m.queue.durable_replayed_count("otlphttp/t"), 300);
    // new data goes after the backlog and the segments of delivered data are deleted
    put(&q, p(999, 1)).await;
    q.done(&again.iter().map(|x| x.ticket).collect::<Vec<_>>(), true);
    let last = drain(&q);
    assert_eq!(tag(&last[0].payload), "payload-000999");
    q.done(&[last[0].ticket], true);
    q.finish().await;
    drop(q);
    let segs = std::fs::read_dir(dir.path().join("otlphttp.t"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("seg".as_ref()))
        .count();
    assert_eq!(segs, 1, "only the active segment stays");
    let q = open(dir.path(), &m).await;
    assert_eq!(q.stats(), (0, 0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_commits_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(Metrics::new());
    let q = DurableQueue::open(
        "otlp",
        &FileStorageConfig {
            directory: dir.path().display().to_string(),
            ..Default::default()
        },
        limits(),
        m.clone(),
    )
    .unwrap();
    let n = 400;
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let q = q.clone();
            tokio::spawn(async move { put(&q, p(i, 1)).await })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(q.stats().0, n as usize);
    let fsyncs = metric_line(
        &m,
        "watchtower_durable_queue_fsync_duration_seconds_count{exporter=\"otlp\"}",
    )
    .expect("fsync histogram");
    assert!(
        fsyncs >= 1.0 && fsyncs < n as f64 / 2.0,
        "{fsyncs} fsyncs for {n} commits"
    );
}

#[tokio::test]
async fn torn_tail_and_flipped_byte_are_counted_and_the_rest_replays() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(Metrics::new());
    let q = open(dir.path(), &m).await;
    for i in 0..10 {
        put(&q, p(i, 1)).await;
    }
    q.finish().await;
    drop(q);
    let seg = std::fs::read_dir(dir.path().join("otlphttp.t"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension() == Some("seg".as_ref()))
        .unwrap();
    let mut data = std::fs::read(&seg).unwrap();
    let frame = data.len() / 10;
    // flip a payload byte of record 3, cut record 9 in half
    data[3 * frame + frame - 2] ^= 0xff;
    data.truncate(9 * frame + frame / 2);
    std::fs::write(&seg, &data).unwrap();
    let q = open(dir.path(), &m).await;
    let tags: Vec<String> = drain(&q).iter().map(|x| tag(&x.payload)).collect();
    let want: Vec<String> = [0, 1, 2, 4, 5, 6, 7, 8]
        .iter()
        .map(|i| format!("payload-{i:06}"))
        .collect();
    assert_eq!(tags, want);
    assert_eq!(m.queue.durable_damage_count("otlphttp/t", "torn_tail"), 1);
    assert_eq!(
        m.queue.durable_damage_count("otlphttp/t", "corrupt_record"),
        1
    );
    assert_eq!(
        std::fs::metadata(&seg).unwrap().len() as usize,
        9 * frame,
        "torn tail truncated"
    );
}

#[tokio::test]
async fn write_failure_refuses_new_data_and_keeps_the_queued() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(Metrics::new());
    let q = open(dir.path(), &m).await;
    put(&q, p(1, 1)).await;
    q.inject_write_failure(true);
    let r = q.reserve(20, Duration::ZERO).await.unwrap();
    assert!(matches!(
        r.commit(p(2, 1)).await,
        Err(QueueError::Storage(_))
    ));
    let queue = Queue::Durable(q.clone());
    assert!(matches!(
        queue.offer(p(3, 1), FullPolicy::DropNewest).await,
        Offer::Failed { items: 1, .. }
    ));
    // the failed ones released their room; the queued one still flows
    let (n, bytes, _) = q.stats();
    assert_eq!((n, bytes), (1, 14));
    let got = drain(&q);
    assert_eq!(tag(&got[0].payload), "payload-000001");
    q.inject_write_failure(false);
    put(&q, p(4, 1)).await;
    assert_eq!(q.stats().0, 1);
}

#[tokio::test]
async fn drop_oldest_evicts_and_acks() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(Metrics::new());
    let q = DurableQueue::open(
        "x",
        &cfg(dir.path(), FsyncMode::Never),
        Limits {
            max_bytes: 30,
            max_requests: 100,
        },
        m.clone(),
    )
    .unwrap();
    assert_eq!(
        q.offer(p(1, 1), FullPolicy::DropOldest).await,
        Offer::Queued
    );
    assert_eq!(
        q.offer(p(2, 1), FullPolicy::DropOldest).await,
        Offer::Queued
    );
    assert_eq!(
        q.offer(p(3, 1), FullPolicy::DropOldest).await,
        Offer::QueuedAfterDropping { items: 1 }
    );
    assert_eq!(
        q.offer(p(4, 1), FullPolicy::DropNewest).await,
        Offer::DroppedNew { items: 1 }
    );
    q.finish().await;
    drop(q);
    let q =
        DurableQueue::open("x", &cfg(dir.path(), FsyncMode::Never), limits(), m.clone()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let tags: Vec<String> = drain(&q).iter().map(|x| tag(&x.payload)).collect();
    assert_eq!(tags, vec!["payload-000002", "payload-000003"]);
}

#[tokio::test]
async fn a_second_process_cannot_open_the_same_queue() {
    let dir = tempfile::tempdir().unwrap();
    let m = Arc::new(Metrics::new());
    let _q = open(dir.path(), &m).await;
    let again = DurableQueue::open(
        "otlphttp/t",
        &cfg(dir.path(), FsyncMode::Group),
        limits(),
        m,
    );
    assert!(matches!(again, Err(OpenError::Locked(_))));
}

#[test]
fn dir_names_are_one_to_one() {
    assert_eq!(queue_dir_name("otlphttp/tempo"), "otlphttp.tempo");
    assert_eq!(queue_dir_name("loki"), "loki");
    assert_eq!(queue_dir_name("otlp/../x"), "otlp...%2Fx");
    assert_ne!(queue_dir_name("a/b.c"), queue_dir_name("a/b%2Ec"));
}

/// Copies the queue's files as they are now (the page cache is what a kill -9 leaves).
fn crash_image(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.ends_with(".seg") || name == "acks.log" {
            std::fs::copy(e.path(), to.join(&*name)).unwrap();
        }
    }
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension() == Some("seg".as_ref()))
        .collect();
    v.sort();
    v
}

/// Opens the queue files of a crash image with fresh metrics; the payload tags it replays.
async fn replay(image: &Path) -> (Arc<Metrics>, Vec<String>) {
    let m = Arc::new(Metrics::new());
    let q = open(image, &m).await;
    let tags = drain(&q).iter().map(|x| tag(&x.payload)).collect();
    (m, tags)
}

fn tags_of(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|i| format!("payload-{i:06}")).collect()
}

fn assert_no_damage(m: &Metrics) {
    for kind in ["torn_tail", "corrupt_record", "corrupt_segment"] {
        assert_eq!(
            m.queue.durable_damage_count("otlphttp/t", kind),
            0,
            "{kind}"
        );
    }
}

/// Fills the queue until the writer moved to a preallocated spare segment; returns the number
/// of records put.
async fn fill_into_preallocated_segment(q: &Arc<DurableQueue>) -> u32 {
    let spare = q.dir().join("prealloc.tmp");
    for _ in 0..500 {
        if std::fs::metadata(&spare).ok().map(|m| m.len()) == Some(4096) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // 4096-byte segments of 40-byte frames: a plain segment is 40 * k bytes long, a
    // preallocated one 4096 until it is full; a rotation that finds the spare not ready
    // yet starts a plain segment and takes the spare at the next one
    for n in 1..2000u32 {
        put(q, p(n - 1, 1)).await;
        let segs = segments(q.dir());
        let last = segs.last().expect("a segment");
        let data = std::fs::read(last).unwrap();
        if data.len() == 4096 && data[4095] == 0 && segs.len() > 1 {
            // a few records in it, so a torn last one leaves the segment in place
            put(q, p(n, 1)).await;
            put(q, p(n + 1, 1)).await;
            return n + 2;
        }
    }
    panic!("no preallocated segment was used");
}

#[tokio::test]
async fn preallocated_segment_after_a_crash_replays_exactly_without_damage() {
    let dir = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let m = Arc::new(Metrics::new());
    let q = open(dir.path(), &m).await;
    let n = fill_into_preallocated_segment(&q).await;
    crash_image(q.dir(), &image.path().join("otlphttp.t"));
    q.finish().await;
    // a clean stop cuts the unused zeros
    let last = segments(q.dir()).pop().unwrap();
    assert!(std::fs::metadata(&last).unwrap().len() < 4096);
    drop(q);

    let (m2, tags) = replay(image.path()).await;
    assert_eq!(tags, tags_of(0..n));
    assert_no_damage(&m2);
    // the zeros of the old segment were cut
    let old = segments(&image.path().join("otlphttp.t"));
    let len = std::fs::metadata(&old[old.len() - 2]).unwrap().len();
    assert_eq!(len % 40, 0, "{len}");
    assert!(len < 4096);
}

#[tokio::test]
async fn torn_write_into_preallocated_zeros_is_a_torn_tail() {
    let dir = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let m = Arc::new(Metrics::new());
    let q = open(dir.path(), &m).await;
    let n = fill_into_preallocated_segment(&q).await;
    let qdir = image.path().join("otlphttp.t");
    crash_image(q.dir(), &qdir);
    q.finish().await;
    drop(q);
    // the last record's write was cut: its second half never reached the disk (zeros)
    let last = segments(&qdir).pop().unwrap();
    let mut data = std::fs::read(&last).unwrap();
    let end = data.iter().rposition(|&b| b != 0).unwrap() + 1;
    let frame_end = end.div_ceil(40) * 40;
    for b in &mut data[frame_end - 20..frame_end] {
        *b = 0;
    }
    std::fs::write(&last, &data).unwrap();

    let (m2, tags) = replay(image.path()).await;
    assert_eq!(tags, tags_of(0..n - 1));
    assert_eq!(m2.queue.durable_damage_count("otlphttp/t", "torn_tail"), 1);
    assert_eq!(
        m2.queue
            .durable_damage_count("otlphttp/t", "corrupt_record"),
        0
    );
    assert_eq!(
        std::fs::metadata(&last).unwrap().len() as usize,
        frame_end - 40,
        "cut at the torn frame"
    );
}

#[tokio::test]
async fn delivered_segments_are_recycled_and_their_old_records_never_replay() {
    let dir = tempfile::tempdir().unwrap();
    let image = tempfile::tempdir().unwrap();
    let m = Arc::new(Metrics::new());
    let q = open(dir.path(), &m).await;
    // steady delivery: every record is acked right after it is queued
    let mut n = 0u32;
    while m.queue.durable_segments_started("otlphttp/t", "recycled") < 3 {
        assert!(n < 5000, "no segment was recycled");
        put(&q, p(n, 1)).await;
        n += 1;
        let got = drain(&q);
        q.done(&got.iter().map(|x| x.ticket).collect::<Vec<_>>(), true);
        // let the writer take the acks before the next append
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // the active segment is a recycled file: its old records lie behind the new ones
    let active = segments(q.dir()).pop().unwrap();
    assert!(std::fs::metadata(&active).unwrap().len() >= 4096);
    // a backlog that is never delivered, then a crash
    for i in n..n + 5 {
        put(&q, p(i, 1)).await;
    }
    let qdir = image.path().join("otlphttp.t");
    crash_image(q.dir(), &qdir);
    q.finish().await;
    drop(q);

    let (m2, tags) = replay(image.path()).await;
    assert_eq!(
        tags,
        tags_of(n..n + 5),
        "exactly the backlog, none of the recycled file's old records"
    );
    assert_no_damage(&m2);
    // the old rest of the recycled file was cut at the end of its new records
    let last = segments(&qdir).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    assert!(len % 40 == 0 && len < 4096, "{len}");
}
