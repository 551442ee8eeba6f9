//! Scraping and checking: `GET /metrics` as Prometheus sends it, the samples parsed,
//! and Debian's `promtool` / `prometheus` found on `PATH`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf()
}

pub fn deploy(path: &str) -> PathBuf {
    repo_root().join("deploy").join(path)
}

/// A tool from Debian's `prometheus` package; missing is a failure, not a skip.
pub fn prometheus_tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("`{name}` is not installed: install Debian's prometheus package (apt-get install prometheus; scripts/test.sh does)")
    })
}

pub fn promtool(args: &[&str], stdin: Option<&str>, dir: &Path) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(prometheus_tool("promtool"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("write promtool's input");
    drop(input);
    let output = child.wait_with_output().expect("promtool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// One scrape, parsed: every sample, and each family's `# TYPE`.
#[derive(Debug, Default)]
pub struct Scrape {
    pub text: String,
    pub types: BTreeMap<String, String>,
    pub samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Scrape {
    pub fn parse(text: &str) -> Scrape {
        let mut scrape = Scrape {
            text: text.to_string(),
            ..Scrape::default()
        };
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
                let previous = scrape.types.insert(name.to_string(), kind.to_string());
                assert!(previous.is_none(), "{name} typed twice:\n{text}");
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("sample value");
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                other => other.parse().unwrap_or_else(|_| panic!("value in {line}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, parse_labels(labels.trim_end_matches('}'))),
                None => (series, BTreeMap::new()),
            };
            scrape.samples.push((name.to_string(), labels, value));
        }
        scrape
    }

    /// The sample of `name` whose labels include `labels`; None when absent.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(sample, have, _)| {
                sample == name
                    && labels
                        .iter()
                        .all(|(k, v)| have.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, value)| *value)
    }

    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in:\n{}", self.text))
    }
}

/// `a="x",b="y"` (c2c's label values have no commas or quotes, which keeps this simple).
fn parse_labels(labels: &str) -> BTreeMap<String, String> {
    labels
        .split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').expect("label=value");
            (name.to_string(), value.trim_matches('"').to_string())
        })
        .collect()
}

/// `GET /metrics` over a plain socket, as Prometheus does; checks the status and the
/// content type.
pub async fn scrape(address: SocketAddr) -> Scrape {
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect for /metrics");
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {address}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send GET /metrics");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut response))
        .await
        .expect("/metrics answered in time")
        .expect("read /metrics");
    let response = String::from_utf8(response).expect("UTF-8 metrics");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{body}");
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(!head.contains("transfer-encoding"), "{head}");
    Scrape::parse(body)
}

/// Scrapes until `predicate` holds (panics with the last scrape after `timeout`).
pub async fn scrape_until(
    address: SocketAddr,
    what: &str,
    timeout: Duration,
    predicate: impl Fn(&Scrape) -> bool,
) -> Scrape {
    let deadline = Instant::now() + timeout;
    loop {
        let scraped = scrape(address).await;
        if predicate(&scraped) {
            return scraped;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; last scrape:\n{}",
            scraped.text
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn lint(scraped: &Scrape) {
    let output = promtool(
        &["check", "metrics"],
        Some(&scraped.text),
        &std::env::temp_dir(),
    );
    assert!(
        output.trim().is_empty(),
        "promtool check metrics found problems:\n{output}"
    );
}
