use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use futures::stream::{self, BoxStream};

use super::*;

type Source = BoxStream<'static, io::Result<Bytes>>;

/// 1 MiB of zeros, shared by the large sources.
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// `data` in chunks of `chunk` bytes.
fn chunks(data: Vec<u8>, chunk: usize) -> Source {
    let data = Bytes::from(data);
    let parts: Vec<io::Result<Bytes>> =
        (0..data.len()).step_by(chunk.max(1)).map(|i| Ok(data.slice(i..(i + chunk).min(data.len())))).collect();
    stream::iter(parts).boxed()
}

/// `len` zero bytes in 1 MiB chunks, without allocating them.
fn zeros(len: u64) -> Source {
    let full = len / ZEROS.len() as u64;
    let rest = (len % ZEROS.len() as u64) as usize;
    let body = stream::iter(0..full).map(|_| Ok(Bytes::from_static(&ZEROS)));
    let tail = stream::iter((rest > 0).then(|| Ok(Bytes::from_static(&ZEROS[..rest]))));
    body.chain(tail).boxed()
}

/// Deterministic bytes that do not compress.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn entry(name: &str, size: u64, compress: bool) -> Entry {
    Entry { name: name.to_string(), size, modified_ms: 1_700_000_000_000, compress }
}

/// The archive of `entries` whose sources are `data` (in chunks of 64 KiB), whole.
async fn build(entries: Vec<Entry>, data: Vec<Vec<u8>>) -> Vec<u8> {
    let stream = zip_stream(entries, move |i| {
        let source = chunks(data[i].clone(), 64 * 1024);
        async move { Ok(source) }
    });
    let parts: Vec<io::Result<Bytes>> = stream.collect().await;
    let mut out = Vec::new();
    for part in parts {
        let part = part.expect("archive chunk");
        assert!(part.len() <= CHUNK && !part.is_empty(), "chunk of {} bytes", part.len());
        out.extend_from_slice(&part);
    }
    out
}

#[tokio::test]
async fn round_trip_mixed_entries_read_back_byte_identical() {
    let text = "The quick brown fox jumps over the lazy dog.\n".repeat(4000).into_bytes();
    let photo = noise(300_000, 7);
    let names =
        entry_names(&["notes.txt", "photo.jpg", "empty.txt", "empty.bin", "Ünïcödé 日本 résumé.pdf", "a.pdf", "A.PDF"]);
    assert_eq!(names[5], "a.pdf");
    assert_eq!(names[6], "A (2).PDF");
    let data =
        vec![text.clone(), photo.clone(), vec![], vec![], noise(5_000, 3), b"first".to_vec(), b"second".to_vec()];
    let mimes = [
        "text/plain",
        "image/jpeg",
        "text/plain",
        "application/octet-stream",
        "application/pdf",
        "application/pdf",
        "application/pdf",
    ];
    let entries: Vec<Entry> = names
        .iter()
        .zip(&data)
        .zip(mimes)
        .map(|((name, bytes), mime)| entry(name, bytes.len() as u64, should_compress(mime)))
        .collect();
    let zip = build(entries.clone(), data.clone()).await;

    let mut archive = zip::ZipArchive::new(Cursor::new(zip)).expect("a readable ZIP");
    assert_eq!(archive.len(), entries.len());
    for (i, expected) in data.iter().enumerate() {
        let mut file = archive.by_index(i).expect("entry");
        assert_eq!(file.name().expect("name"), names[i]);
        let method =
            if entries[i].compress { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
        assert_eq!(file.compression(), method, "{}", names[i]);
        assert_eq!(file.size(), expected.len() as u64);
        assert_eq!(file.crc32(), crc32fast::hash(expected));
        let modified = file.last_modified().expect("a date");
        // 1_700_000_000 s is 2023-11-14 22:13:20 UTC.
        assert_eq!(
            (modified.year(), modified.month(), modified.day(), modified.hour(), modified.minute(), modified.second()),
            (2023, 11, 14, 22, 13, 20)
        );
        assert_eq!(file.unix_mode(), Some(0o100644));
        let mut content = Vec::new();
        file.read_to_end(&mut content).expect("entry data");
        assert!(content == *expected, "{} differs", names[i]);
    }
    // Text shrinks; stored entries keep their size.
    assert!(archive.by_index(0).expect("notes").compressed_size() < text.len() as u64 / 10);
    assert_eq!(archive.by_index(1).expect("photo").compressed_size(), photo.len() as u64);
}

#[tokio::test]
async fn stored_length_is_the_exact_length_of_stored_archives() {
    let mixes: Vec<Vec<(String, Vec<u8>)>> = vec![
        vec![],
        vec![("empty".into(), vec![])],
        vec![("a.jpg".into(), noise(1000, 1)), ("b c ü.mp4".into(), noise(CHUNK + 17, 2))],
        (0..300).map(|i| (format!("file {i}.bin"), noise(i * 7, i as u64))).collect(),
    ];
    for mix in mixes {
        let entries: Vec<Entry> = mix.iter().map(|(name, data)| entry(name, data.len() as u64, false)).collect();
        let expected = stored_length(&entries).expect("all stored");
        let zip = build(entries, mix.into_iter().map(|(_, d)| d).collect()).await;
        assert_eq!(zip.len() as u64, expected);
        zip::ZipArchive::new(Cursor::new(zip)).expect("a readable ZIP");
    }
    assert_eq!(stored_length(&[entry("a.txt", 3, true)]), None);
    assert_eq!(stored_length(&[entry("a.jpg", 3, false), entry("b.txt", 0, true)]), None);
}

#[test]
fn stored_length_past_4_gib_is_computed_without_writing() {
    const GIB: u64 = 1 << 30;
    let entries = vec![entry("one.mp4", 3 * GIB, false), entry("two.mp4", 5 * GIB, false), entry("x", 0, false)];
    let per_entry = |name: &str, size: u64| 30 + 20 + 24 + 46 + 28 + 2 * name.len() as u64 + size;
    let expected = per_entry("one.mp4", 3 * GIB) + per_entry("two.mp4", 5 * GIB) + per_entry("x", 0) + 56 + 20 + 22;
    assert_eq!(stored_length(&entries), Some(expected));
    assert!(expected > 8 * GIB);
    // 70,000 entries: more than the 65,535 the classic end record counts.
    let many: Vec<Entry> = (0..70_000).map(|i| entry(&format!("{i}.jpg"), 1, false)).collect();
    let names: u64 = many.iter().map(|e| e.name.len() as u64).sum();
    assert_eq!(stored_length(&many), Some(70_000 * (148 + 1) + 2 * names + 98));
}

/// Writes the archive to a sparse file (runs of zeros are skipped, not written), so a ZIP past
/// 4 GiB is read back with a real reader without using 4 GiB of disk.
#[tokio::test]
async fn zip64_archive_past_4_gib_reads_back() {
    let big = (4u64 << 30) + 65_537;
    let before = noise(10_000, 5);
    let after = b"after the big one".to_vec();
    let entries = vec![entry("before.bin", 10_000, false), entry("big.bin", big, false), entry("after.txt", 17, false)];
    let expected_len = stored_length(&entries).expect("all stored");
    let small = [before.clone(), vec![], after.clone()];
    let stream = zip_stream(entries, move |i| {
        let source = if i == 1 { zeros(big) } else { chunks(small[i].clone(), 4096) };
        async move { Ok(source) }
    });
    futures::pin_mut!(stream);

    let mut file = tempfile::tempfile().expect("temp file");
    let mut total = 0u64;
    let mut tail: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("archive chunk");
        assert!(chunk.len() <= CHUNK);
        if chunk[..] == ZEROS[..chunk.len()] {
            file.seek(SeekFrom::Current(chunk.len() as i64)).expect("seek");
        } else {
            file.write_all(&chunk).expect("write");
        }
        total += chunk.len() as u64;
        tail.extend_from_slice(&chunk);
        if tail.len() > 4 * CHUNK {
            tail.drain(..tail.len() - CHUNK);
        }
    }
    file.set_len(total).expect("length");
    assert_eq!(total, expected_len);
    assert!(total > u64::from(u32::MAX));

    // The end records: ZIP64 record and locator, then the classic record pointing to them.
    let le16 = |b: &[u8], at: usize| u16::from_le_bytes([b[at], b[at + 1]]);
    let le32 = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
    let le64 = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
    let eocd = tail.len() - 22;
    assert_eq!(le32(&tail, eocd), 0x0605_4b50);
    assert_eq!(le16(&tail, eocd + 10), 3);
    assert_eq!(le32(&tail, eocd + 16), u32::MAX, "the classic record defers to ZIP64");
    let locator = eocd - 20;
    assert_eq!(le32(&tail, locator), 0x0706_4b50);
    let record_at = le64(&tail, locator + 8);
    let record = tail.len() - (total - record_at) as usize;
    assert_eq!(record, locator - 56);
    assert_eq!(le32(&tail, record), 0x0606_4b50);
    assert_eq!(le64(&tail, record + 32), 3, "entries");
    let cd_offset = le64(&tail, record + 48);
    assert!(cd_offset > u64::from(u32::MAX));
    assert_eq!(cd_offset + le64(&tail, record + 40), record_at, "the directory ends where the record starts");

    // And a ZIP reader agrees.
    file.rewind().expect("rewind");
    let mut archive = zip::ZipArchive::new(file).expect("a readable ZIP64");
    let mut crc = crc32fast::Hasher::new();
    let mut left = big;
    while left > 0 {
        let n = left.min(ZEROS.len() as u64) as usize;
        crc.update(&ZEROS[..n]);
        left -= n as u64;
    }
    let crc = crc.finalize();
    {
        let big_file = archive.by_name("big.bin").expect("big.bin");
        assert_eq!(big_file.size(), big);
        assert_eq!(big_file.compressed_size(), big);
        assert_eq!(big_file.crc32(), crc);
    }
    let mut content = Vec::new();
    let mut last = archive.by_name("after.txt").expect("after.txt");
    assert!(last.header_start() > u64::from(u32::MAX));
    last.read_to_end(&mut content).expect("after.txt data");
    assert_eq!(content, after);
    drop(last);
    let mut content = Vec::new();
    archive.by_name("before.bin").expect("before.bin").read_to_end(&mut content).expect("data");
    assert_eq!(content, before);
}

/// A source that counts the bytes taken from it and notes when it is dropped.
struct Counted {
    inner: Source,
    taken: Arc<AtomicU64>,
    dropped: Arc<AtomicBool>,
}

impl Stream for Counted {
    type Item = io::Result<Bytes>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(Ok(chunk))) = &item {
            self.taken.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        }
        item
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.dropped.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn each_entry_is_opened_only_after_everything_before_it_was_taken() {
    let sizes = [600_000u64, 0, 700_000, 300];
    let entries: Vec<Entry> = sizes.iter().enumerate().map(|(i, s)| entry(&format!("f{i}.bin"), *s, false)).collect();
    let received = Arc::new(AtomicU64::new(0));
    let opened_at = Arc::new(Mutex::new(Vec::new()));
    let (seen, log) = (received.clone(), opened_at.clone());
    let stream = zip_stream(entries.clone(), move |i| {
        log.lock().expect("log").push((i, seen.load(Ordering::SeqCst)));
        let source = zeros(sizes[i]);
        async move { Ok(source) }
    });
    futures::pin_mut!(stream);
    let first = stream.next().await.expect("a chunk").expect("bytes");
    received.fetch_add(first.len() as u64, Ordering::SeqCst);
    assert_eq!(opened_at.lock().expect("log").len(), 1, "only the first entry is open");
    while let Some(chunk) = stream.next().await {
        received.fetch_add(chunk.expect("bytes").len() as u64, Ordering::SeqCst);
    }
    // Entry i opens when exactly the bytes of the entries before it have been taken.
    let mut before = 0;
    let mut expected = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        expected.push((i, before));
        before += 30 + 20 + e.name.len() as u64 + e.size + 24;
    }
    assert_eq!(*opened_at.lock().expect("log"), expected);
}

#[tokio::test]
async fn dropping_the_stream_stops_the_reads_at_once() {
    let opened = Arc::new(AtomicUsize::new(0));
    let taken = Arc::new(AtomicU64::new(0));
    let dropped = Arc::new(AtomicBool::new(false));
    let entries = vec![entry("a.bin", 8 << 20, false), entry("b.bin", 8 << 20, false)];
    let (count, take, drop_flag) = (opened.clone(), taken.clone(), dropped.clone());
    let stream = zip_stream(entries, move |_| {
        count.fetch_add(1, Ordering::SeqCst);
        let source =
            Counted { inner: chunks(vec![1; 8 << 20], 64 * 1024), taken: take.clone(), dropped: drop_flag.clone() };
        async move { Ok(source) }
    });
    let mut stream = Box::pin(stream);
    let first = stream.next().await.expect("a chunk").expect("bytes");
    assert!(!first.is_empty());
    assert!(!dropped.load(Ordering::SeqCst));
    drop(stream);
    assert!(dropped.load(Ordering::SeqCst), "the source is dropped with the stream");
    let read = taken.load(Ordering::SeqCst);
    assert!(read <= (CHUNK + 64 * 1024) as u64, "{read} bytes read for one chunk");
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert_eq!(taken.load(Ordering::SeqCst), read, "nothing reads after the drop");
    assert_eq!(opened.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_source_of_the_wrong_length_or_that_fails_ends_the_archive_with_an_error() {
    async fn outcome(declared: u64, actual: usize, fail_open: bool) -> Vec<io::Result<Bytes>> {
        let stream = zip_stream(vec![entry("a.txt", declared, true), entry("b.txt", 1, false)], move |_| {
            let source = chunks(vec![b'x'; actual], 1000);
            async move { if fail_open { Err(io::Error::new(io::ErrorKind::NotFound, "gone")) } else { Ok(source) } }
        });
        stream.collect().await
    }
    for (declared, actual, fail_open, kind) in [
        (5000, 4000, false, io::ErrorKind::UnexpectedEof),
        (3000, 4000, false, io::ErrorKind::InvalidData),
        (10, 10, true, io::ErrorKind::NotFound),
    ] {
        let items = outcome(declared, actual, fail_open).await;
        let last = items.last().expect("an item");
        assert_eq!(last.as_ref().err().map(io::Error::kind), Some(kind));
        assert!(items[..items.len() - 1].iter().all(Result::is_ok), "the error is the last item");
    }
}

#[tokio::test]
async fn two_hundred_megabytes_go_through_in_bounded_chunks() {
    const MB: u64 = 1_000_000;
    let sizes = [80 * MB, 70 * MB, 50 * MB];
    let mut entries: Vec<Entry> =
        sizes.iter().enumerate().map(|(i, s)| entry(&format!("{i}.mp4"), *s, false)).collect();
    entries.push(entry("readme.txt", 2 * MB, true));
    let stream = zip_stream(entries, move |i| {
        let source = if i < 3 { zeros(sizes[i]) } else { chunks(b"hello zip\n".repeat(200_000), 1 << 20) };
        async move { Ok(source) }
    });
    futures::pin_mut!(stream);
    let (mut total, mut largest, mut count) = (0u64, 0usize, 0u64);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("bytes");
        largest = largest.max(chunk.len());
        total += chunk.len() as u64;
        count += 1;
    }
    assert!(total > 200 * MB);
    assert!(largest <= CHUNK, "largest chunk {largest}");
    // Chunks are full, not dribbles: the stored data goes out in CHUNK-sized pieces.
    assert!(count < total / (CHUNK as u64 / 2), "{count} chunks for {total} bytes");
}

#[test]
fn names_are_sanitised() {
    let names = entry_names(&[
        "../../etc/passwd",
        "a/b\\c.txt",
        "bad\u{0}na\u{7}me\n.txt",
        "",
        "...",
        "  .hidden ",
        "/",
        "trail. . ",
        "what?<x>:\"y\"|*.txt",
        "CON",
        "nul.txt",
        "evil\u{202E}fdp.exe",
        "cafe\u{301}.txt",
    ]);
    assert_eq!(
        names,
        [
            "etc_passwd",
            "a_b_c.txt",
            "badname.txt",
            "file",
            "file (2)",
            "hidden",
            "file (3)",
            "trail",
            "what__x___y___.txt",
            "_CON",
            "_nul.txt",
            "evilfdp.exe",
            "caf\u{e9}.txt",
        ]
    );
}

#[test]
fn long_names_are_cut_to_255_bytes_keeping_the_extension() {
    let long = format!("{}.pdf", "x".repeat(400));
    let unicode = format!("{}.jpeg", "é".repeat(300));
    let names = entry_names(&[long.as_str(), long.as_str(), unicode.as_str(), "y".repeat(300).as_str()]);
    for name in &names {
        assert!(name.len() <= MAX_NAME_BYTES, "{} bytes", name.len());
    }
    assert_eq!(names[0], format!("{}.pdf", "x".repeat(251)));
    assert_eq!(names[1], format!("{} (2).pdf", "x".repeat(247)));
    assert!(names[2].ends_with("é.jpeg") && names[2].len() >= MAX_NAME_BYTES - 1);
    assert_eq!(names[3], "y".repeat(255));
}

#[test]
fn duplicates_become_numbered_comparing_without_case() {
    let names = entry_names(&[
        "a.pdf",
        "A.pdf",
        "a.PDF",
        "a (2).pdf",
        "b",
        "B",
        "Ä.txt",
        "ä.txt",
        "report.tar.gz",
        "report.tar.gz",
    ]);
    assert_eq!(
        names,
        [
            "a.pdf",
            "A (2).pdf",
            "a (3).PDF",
            "a (2) (2).pdf",
            "b",
            "B (2)",
            "Ä.txt",
            "ä (2).txt",
            "report.tar.gz",
            "report.tar (2).gz"
        ]
    );
}

#[test]
fn already_compressed_types_are_stored() {
    for mime in [
        "image/jpeg",
        "image/png",
        "image/webp",
        "video/mp4",
        "audio/mpeg",
        "audio/wav",
        "application/zip",
        "application/pdf",
        "application/x-7z-compressed",
        "application/gzip",
        "application/octet-stream",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.oasis.opendocument.text",
        "IMAGE/JPEG; foo=bar",
    ] {
        assert!(!should_compress(mime), "{mime}");
    }
    for mime in [
        "text/plain",
        "text/csv; charset=utf-8",
        "application/json",
        "image/svg+xml",
        "image/bmp",
        "image/tiff",
        "application/msword",
        "application/rtf",
        "application/vnd.ms-excel",
    ] {
        assert!(should_compress(mime), "{mime}");
    }
}

#[test]
fn dates_outside_the_dos_range_are_clamped() {
    let at = |ms| {
        let d = dos_date(ms);
        (d.year(), d.month(), d.day(), d.hour(), d.minute(), d.second())
    };
    assert_eq!(at(0), (1980, 1, 1, 0, 0, 0));
    assert_eq!(at(-5_000), (1980, 1, 1, 0, 0, 0));
    assert_eq!(at(i64::MAX), (1980, 1, 1, 0, 0, 0), "out of range for the calendar: the earliest date");
    assert_eq!(at(4_500_000_000_000), (2107, 12, 31, 23, 59, 58));
    assert_eq!(at(1_700_000_001_999), (2023, 11, 14, 22, 13, 20), "two-second steps");
}
