//! `netc report` in a real browser: Debian's chromium, headless, renders the shop's report; the
//! test checks the DOM it built (every section, a node per workload, the matrix, a row per rule)
//! and that its screenshot is a real picture (large, many distinct colours, not one background).
//!
//! Skipped, with the reason printed, when `chromium` is not installed (`apt-get install chromium`;
//! `.ci/install-deps` does it). Every run of chromium gets its own profile directory in a
//! temporary directory, no network (the page fetches nothing anyway), and a time limit after which
//! the test kills the process it started and fails.
//!
//! Set `NETC_REPORT_SCREENSHOT=path.png` to keep the screenshot (that is how
//! `docs/img/report.png` is made).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netc::SourceFile;
use netc::report::{ReportInput, render};

const BROWSER: &str = "chromium";
const TIME_LIMIT: Duration = Duration::from_secs(90);

fn repo(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(relative)
}

fn browser_available() -> bool {
    Command::new(BROWSER)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Run chromium headless on `page` with `extra` arguments, in its own profile directory under
/// `dir`; its stdout.
fn chromium(dir: &Path, page: &Path, extra: &[String]) -> String {
    let profile = tempfile::tempdir_in(dir).expect("a profile directory");
    let stdout_path = dir.join(format!("stdout-{}.txt", extra.len()));
    let stdout = std::fs::File::create(&stdout_path).expect("stdout file");
    let mut child = Command::new(BROWSER)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1400,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for chromium") {
            assert!(status.success(), "chromium failed: {status}");
            break;
        }
        if started.elapsed() > TIME_LIMIT {
            // Only the process this test started.
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {TIME_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::read_to_string(&stdout_path).expect("chromium's output")
}

/// Width, height and RGB pixels of a PNG.
fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<[u8; 3]>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut buffer = vec![0; reader.output_buffer_size().expect("a size that fits in memory")];
    let info = reader.next_frame(&mut buffer).expect("one frame");
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("chromium writes RGB(A) screenshots, not {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let pixels = buffer[..info.buffer_size()].chunks_exact(step).map(|p| [p[0], p[1], p[2]]).collect();
    (info.width, info.height, pixels)
}

#[test]
fn the_report_renders_in_a_headless_browser() {
    if !browser_available() {
        println!("skipped: `{BROWSER}` is not installed (apt-get install chromium, or run .ci/install-deps)");
        return;
    }
    let text = std::fs::read_to_string(repo("examples/shop.np")).expect("the shop example");
    let sources = vec![SourceFile::new("examples/shop.np", text)];
    let out = netc::compile(&sources);
    let ir = out.ir.as_ref().expect("the shop compiles");
    let html = render(&ReportInput {
        sources: &sources,
        ir,
        diagnostics: &out.diagnostics,
        assertions: &out.assertions,
        cluster: None,
    })
    .expect("the report renders");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).expect("write the page");

    // The DOM chromium built from the page.
    let dom = chromium(dir.path(), &page, &["--dump-dom".to_owned()]);
    for section in ["overview", "graph", "matrix", "workloads", "rules", "assertions", "warnings", "source"] {
        assert!(dom.contains(&format!("id=\"{section}\"")), "section #{section} is missing from the DOM");
    }
    let graph = netc::graph::Graph::from_ir(ir, &netc::graph::ExternalNames::from_sources(&sources));
    assert_eq!(dom.matches("<g class=\"node ").count(), graph.nodes.len(), "one SVG node per graph node");
    assert_eq!(dom.matches("<path class=\"line\"").count(), graph.edges.len(), "one SVG path per edge");
    assert_eq!(
        dom.matches("<li class=\"assertion held\"").count(),
        sources[0].text.lines().filter(|l| l.starts_with("assert ")).count(),
        "one held assertion per assert statement of the shop"
    );
    let rules = ir.rules().count();
    assert_eq!(dom.matches("<tr id=\"rule-").count(), rules, "one table row per rule");
    let rows = dom.matches("<th class=\"row\" scope=\"row\">").count();
    assert_eq!(rows, graph.nodes.len(), "one matrix row per node");
    assert_eq!(
        dom.matches("<div class=\"line").count(),
        sources[0].text.lines().count(),
        "one line element per source line"
    );

    // A screenshot: a real picture, not a blank or one-colour page.
    let shot = dir.path().join("report.png");
    chromium(dir.path(), &page, &[format!("--screenshot={}", shot.display())]);
    let bytes = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(bytes.len() > 50_000, "a screenshot of {} bytes is too small to show the page", bytes.len());
    let (width, height, pixels) = decode_png(&bytes);
    assert_eq!((width, height), (1400, 1400));
    let colours: BTreeSet<[u8; 3]> = pixels.iter().copied().collect();
    assert!(colours.len() > 200, "only {} distinct colours: the page did not render", colours.len());
    // No single colour (the background) covers nearly everything.
    let background = pixels.iter().filter(|p| **p == pixels[pixels.len() / 2]).count();
    assert!(
        background < pixels.len() * 9 / 10,
        "the middle colour covers {background} of {} pixels",
        pixels.len()
    );
    // The palette's colours are on screen: guarded (blue) door pills and allowed (green) edges.
    let near = |p: &[u8; 3], c: [u8; 3]| p.iter().zip(c).all(|(a, b)| a.abs_diff(b) <= 12);
    let count = |c: [u8; 3]| pixels.iter().filter(|p| near(p, c)).count();
    assert!(count([0x09, 0x69, 0xda]) > 200, "no guarded-door blue on screen");
    assert!(count([0x1a, 0x7f, 0x37]) > 100, "no allowed green on screen");
    if let Some(keep) = std::env::var_os("NETC_REPORT_SCREENSHOT") {
        std::fs::copy(&shot, &keep).expect("keep the screenshot");
        println!("screenshot kept in {}", PathBuf::from(keep).display());
    }
}
