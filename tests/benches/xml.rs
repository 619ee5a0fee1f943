//! Parse + validate + format throughput, printed as a markdown table.
//!
//! `cargo bench --bench xml`: one row per xml-samples/*.xml, one for the whole
//! libvirt networkxml2xmlin corpus (its `ok` cases that parse, from ../shared)
//! and one for the `default.xml` goal. Times are the median of several batches.

use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use virtnet::definition::{FormatFlags, NetworkDef};

const BATCHES: usize = 15;
const BATCH_TIME: Duration = Duration::from_millis(20);

/// One document through the pipeline; returns something to keep it observable.
fn round_trip(xml: &str) -> usize {
    let def = NetworkDef::parse(xml).expect("benchmark inputs parse");
    let valid = def.validate().is_ok();
    def.to_xml(FormatFlags { inactive: false }).len() + usize::from(valid)
}

fn pass(docs: &[String]) {
    for doc in docs {
        black_box(round_trip(black_box(doc)));
    }
}

/// Median time per document, in µs.
fn time_per_doc(docs: &[String]) -> f64 {
    let start = Instant::now();
    let mut passes = 0u32;
    while start.elapsed() < BATCH_TIME {
        pass(docs);
        passes += 1;
    }
    let mut batches: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..passes {
                pass(docs);
            }
            start.elapsed().as_secs_f64() * 1e6 / f64::from(passes) / docs.len() as f64
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[BATCHES / 2]
}

fn row(name: &str, bytes: usize, micros: f64) {
    println!("| {name} | {bytes} | {micros:.2} | {:.0} |", 1e6 / micros);
}

/// libvirt's networkxml2xmlin inputs whose case is `ok` and that parse here.
fn libvirt_corpus(dir: &Path) -> Option<Vec<String>> {
    let cases = fs::read_to_string(dir.join("networkxml2xml-cases.tsv")).ok()?;
    let docs = cases
        .lines()
        .filter_map(|line| {
            let mut fields = line.split('\t');
            let name = fields.next()?;
            (fields.nth(1)? == "ok").then(|| dir.join(format!("networkxml2xmlin/{name}.xml")))
        })
        .filter_map(|path| fs::read_to_string(path).ok())
        .filter(|xml| NetworkDef::parse(xml).is_ok())
        .collect();
    Some(docs)
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut samples: Vec<PathBuf> = fs::read_dir(root.join("xml-samples"))
        .expect("xml-samples/ is readable")
        .map(|entry| entry.expect("directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "xml"))
        .collect();
    samples.sort();

    println!("| input | bytes | µs/doc (median) | docs/s |");
    println!("|---|---:|---:|---:|");
    let mut default_row = None;
    for path in &samples {
        let xml = fs::read_to_string(path).expect("sample is readable");
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let micros = time_per_doc(std::slice::from_ref(&xml));
        row(&name, xml.len(), micros);
        if name == "default.xml" {
            default_row = Some((xml.len(), micros));
        }
    }

    let corpus = root.join("../shared/conformance/libvirt");
    match libvirt_corpus(&corpus) {
        Some(docs) if !docs.is_empty() => {
            let bytes = docs.iter().map(String::len).sum();
            let name = format!("libvirt networkxml2xmlin ({} ok docs, per doc)", docs.len());
            row(&name, bytes, time_per_doc(&docs));
        }
        _ => eprintln!("no libvirt corpus at {}: skipped", corpus.display()),
    }

    if let Some((bytes, micros)) = default_row {
        row("default.xml (goal ≤ 10 µs, ≥ 100k/s)", bytes, micros);
        let verdict = if micros <= 10.0 { "met" } else { "MISSED" };
        println!("\ndefault.xml goal {verdict}: {micros:.2} µs/doc");
    }
}
