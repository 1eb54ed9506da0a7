//! The buildspec editor (`inject`, its self-check included) on a realistic buildspec and on
//! the worst inputs up to the size limit: alias bombs (never expanded), the nested "billion
//! laughs", and the shapes that cost the parser most per byte. The bound to keep: under 1 s
//! and under 16 MiB of extra memory for any buildspec up to `MAX_INPUT_BYTES`. Besides the
//! times, prints each case's peak heap while injecting, measured by a counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bridge_core::buildspec::{MAX_INPUT_BYTES, inject};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// Counts live heap bytes and their peak; everything else is the system allocator's.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// The one way to see a program's heap from inside it; only counts, then defers to `System`.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: `layout` comes from the caller under `GlobalAlloc::alloc`'s contract.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `alloc` above with this `layout`.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn variables() -> Vec<(&'static str, String)> {
    vec![
        ("PAGURE_CAUSE", "2".into()),
        ("PAGURE_REPO", "https://pagure.io/forks/bob/demo.git".into()),
        ("PAGURE_BRANCH", "bob-fix".into()),
        ("PAGURE_BRANCH_TO", "main".into()),
        ("PAGURE_COMMIT", "05bab967134e26fd2a307065b49ce0bc2a2063ed".into()),
        ("PAGURE_PR_ID", "2".into()),
        ("PAGURE_PROJECT", "demo".into()),
        ("PAGURE_REQUEST_ID", "0123456789abcdef0123456789abcdef".into()),
    ]
}

/// Fills up to the size limit with copies of `line`.
fn up_to_limit(head: &str, line: &str, tail: &str) -> String {
    let mut text = head.to_owned();
    while text.len() + line.len() + tail.len() <= MAX_INPUT_BYTES {
        text.push_str(line);
    }
    text.push_str(tail);
    text
}

fn cases() -> Vec<(&'static str, String)> {
    let mut laughs = String::from("version: 0.2\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        laughs.push_str(&format!("a{i}: &a{i} [{}]\n", vec![format!("*a{}", i - 1); 10].join(", ")));
    }
    let big = format!("version: 0.2\nbig: &a {}\nlist:\n", "x".repeat(100_000));
    vec![
        ("corpus 02-rpm-fedora", include_str!("../../../tests/fixtures/buildspecs/02-rpm-fedora.yml").to_owned()),
        ("billion laughs (nested)", laughs),
        ("flat bomb 100 kB x 2000", format!("{big}{}", "  - *a\n".repeat(2_000))),
        ("flat bomb 1 MiB", up_to_limit(&big, "  - *a\n", "")),
        (
            "1 MiB of commands",
            up_to_limit("version: 0.2\nphases:\n  build:\n    commands:\n", "      - make check # c\n", ""),
        ),
        ("10 000 anchors, 1 MiB of aliases", {
            let anchors: String = (0..10_000).map(|i| format!("  - &anchor{i:05} a\n")).collect();
            up_to_limit(&format!("version: 0.2\nlist:\n{anchors}"), "  - *anchor09999\n", "")
        }),
        ("1 MiB flow sequence", up_to_limit("version: 0.2\nx: [", "a,", "a]\n")),
        (
            "1 MiB nested flow",
            up_to_limit("version: 0.2\nx: [", &format!("{}{}, ", "[".repeat(200), "]".repeat(200)), "a]\n"),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let variables = variables();
    let mut group = c.benchmark_group("buildspec");
    group.sample_size(10);
    for (name, text) in cases() {
        PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
        let before = LIVE.load(Ordering::Relaxed);
        let started = std::time::Instant::now();
        let result = inject(&text, &variables);
        let took = started.elapsed();
        let peak = PEAK.load(Ordering::Relaxed) - before;
        println!(
            "buildspec/{name}: {} bytes, {} in {took:.1?}, peak extra heap {:.2} MiB",
            text.len(),
            match &result {
                Ok(out) => format!("injected ({} bytes)", out.text.len()),
                Err(e) => format!("refused ({e})"),
            },
            peak as f64 / (1024.0 * 1024.0)
        );
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| b.iter(|| inject(&text, &variables)));
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
