//! `docs/benchmarks.md`: an introduction written once, and for each suite a
//! "Latest run" section between two marker comments that its runs replace,
//! with the date, the commit, the machine and the command next to the tables.

use std::io::ErrorKind;
use std::path::Path;
use std::process::Command;

use super::Paths;

/// One suite's part of the file.
pub struct Part {
    /// The name in the marker comments, `<!-- bench:<name>:begin -->`.
    pub name: &'static str,
    pub command: &'static str,
    /// The heading of its "Latest run" section.
    pub heading: &'static str,
    /// Written before the section when the file has no markers for it yet.
    pub intro: &'static str,
}

/// The gateway suite, introduced by the file's own introduction.
pub const GATEWAY: Part =
    Part { name: "gateway", command: "cargo xtask bench gateway", heading: "## Latest run", intro: "" };

const INTRO: &str = "\
# Benchmarks

`cargo xtask bench gateway` measures what Switchyard's model gateway adds to a
chat completion, and prints the table below; each run replaces the \"Latest
run\" section of this file.

How it measures:

- **Upstream**: a mock OpenAI-compatible server inside the benchmark process, on
  one tokio worker thread. `POST /v1/chat/completions` answers at once with a
  fixed `chat.completion` (with `usage`), or, for `\"stream\": true`, with 20
  `chat.completion.chunk` events, a usage-only chunk and `data: [DONE]`.
  `POST /silent/v1/chat/completions` answers the same without usage, as
  llama.cpp's server does in streams, so the gateway counts the tokens.
- **Server**: a release build of `switchyard serve` on SQLite, routing the
  model `default` to the mock and `silent` to its path without usage, called
  with an API key.
- **Load**: [oha](https://crates.io/crates/oha), installed into
  `target/tools` on first use. Each scenario runs against the mock directly,
  then through the server, each time after a 2 s warm-up, for 10 s: at a
  fixed 200 and 1,000 req/s (32 connections, latency counted from each
  request's scheduled start so that queueing is not hidden), and at maximum
  throughput with 64 connections, streamed and not; and at 1,000 req/s
  without usage upstream, streamed and not.
- **Figures**: p50 / p90 / p99 latency over all requests; *added* is through
  minus direct, per percentile. For streams, *whole answer* runs to the last
  byte and *first byte* to the first body byte (oha's first-byte time, from
  the same runs, counted from when the request was sent). Errors are failed
  requests and answers outside 2xx. The server's RSS is the highest `VmRSS`
  sampled every 50 ms during the measured run, its CPU the `utime + stime`
  spent, as a percentage of one core.
- **Caveat**: oha, the mock and the server share the machine, so at maximum
  throughput they compete for its cores; the machine should be otherwise idle.

Targets: at 1,000 req/s, added p99 ≤ 1 ms (with or without usage
upstream); maximum non-stream throughput
through the server ≥ 10,000 req/s with no errors; added p99 time to the first
stream byte ≤ 1 ms; server RSS ≤ 100 MB under load. The runs without usage
upstream come last: counting loads the `o200k_base` vocabulary (about 30 MB
resident) on first use, so their RSS shows what a server pays once it counts
for a provider that reports nothing; a server whose providers report usage
never loads it.
";

/// Prints the part's \"Latest run\" section with these tables and records it
/// in `docs/benchmarks.md`.
pub fn record(part: &Part, tables: &[String], paths: &Paths, load_before: &str) -> anyhow::Result<()> {
    let section = section(part, tables, paths, load_before);
    println!("\n{section}");
    let doc_path = paths.root.join("docs").join("benchmarks.md");
    write(&doc_path, part, &section)?;
    eprintln!("==> written to {}", doc_path.display());
    Ok(())
}

/// The \"Latest run\" section with these tables.
fn section(part: &Part, tables: &[String], paths: &Paths, load_before: &str) -> String {
    let when = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC");
    format!(
        "{}\n\n\
         - When: {when}, commit `{}`\n\
         - Machine: {}; load average before the run: {load_before}\n\
         - Command: `{}`\n\n\
         {}\n",
        part.heading,
        commit(&paths.root),
        machine(),
        part.command,
        tables.join("\n\n"),
    )
}

/// Replaces the part's section in the file at `path`, creating the file if missing.
fn write(path: &Path, part: &Part, section: &str) -> anyhow::Result<()> {
    let current = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == ErrorKind::NotFound => INTRO.to_owned(),
        Err(err) => return Err(err.into()),
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    Ok(std::fs::write(path, replace_section(&current, part, section))?)
}

/// The 1-minute load average, as `/proc/loadavg` has it.
pub fn load_average() -> String {
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    loadavg.split_whitespace().next().unwrap_or("unknown").to_owned()
}

fn replace_section(doc: &str, part: &Part, section: &str) -> String {
    let (begin, end) = markers(part);
    let block = format!("{begin}\n{section}{end}");
    match (doc.find(&begin), doc.find(&end)) {
        (Some(start), Some(stop)) if start < stop => {
            format!("{}{block}{}", &doc[..start], &doc[stop + end.len()..])
        }
        _ if part.intro.is_empty() => format!("{}\n\n{block}\n", doc.trim_end()),
        _ => format!("{}\n\n{}\n\n{block}\n", doc.trim_end(), part.intro.trim_end()),
    }
}

/// The comments around a part's section.
fn markers(part: &Part) -> (String, String) {
    (format!("<!-- bench:{}:begin -->", part.name), format!("<!-- bench:{}:end -->", part.name))
}

/// `git describe --always --dirty`: the commit, marked when the tree had changes.
fn commit(root: &Path) -> String {
    Command::new("git")
        .current_dir(root)
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map_or_else(|| "unknown".to_owned(), |out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Cores (as `nproc` counts them), CPU model, memory and kernel.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = proc_field(&cpuinfo, "model name").unwrap_or("unknown CPU");
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_kb: f64 = proc_field(&meminfo, "MemTotal")
        .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(f64::NAN);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores (`nproc`), {model}, {:.1} GiB RAM, Linux {}",
        memory_kb / 1024.0 / 1024.0,
        kernel.trim()
    )
}

/// The value of `name: value` (or `name\t: value`) in a `/proc` text file.
fn proc_field<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEGIN: &str = "<!-- bench:gateway:begin -->";
    const END: &str = "<!-- bench:gateway:end -->";
    const OTHER: Part =
        Part { name: "other", command: "other", heading: "### Latest run", intro: "## Other\n" };

    #[test]
    fn a_new_file_gets_the_intro_and_the_section() {
        let doc = replace_section(INTRO, &GATEWAY, "## Latest run\n\nfirst\n");
        assert!(doc.starts_with("# Benchmarks\n"));
        assert!(doc.ends_with(&format!("\n\n{BEGIN}\n## Latest run\n\nfirst\n{END}\n")), "{doc}");
    }

    #[test]
    fn the_section_is_replaced_and_the_rest_kept() {
        let doc = format!("intro\n\n{BEGIN}\nold\n{END}\n\nafter\n");
        let doc = replace_section(&doc, &GATEWAY, "new\n");
        assert_eq!(doc, format!("intro\n\n{BEGIN}\nnew\n{END}\n\nafter\n"));
    }

    #[test]
    fn another_part_comes_after_with_its_intro_and_leaves_the_first_alone() {
        let doc = format!("intro\n\n{BEGIN}\nold\n{END}\n");
        let doc = replace_section(&doc, &OTHER, "first\n");
        let other = "## Other\n\n<!-- bench:other:begin -->\n";
        assert_eq!(doc, format!("intro\n\n{BEGIN}\nold\n{END}\n\n{other}first\n<!-- bench:other:end -->\n"));
        let doc = replace_section(&doc, &OTHER, "second\n");
        assert!(doc.contains(&format!("{END}\n\n{other}second\n<!-- bench:other:end -->\n")), "{doc}");
        assert!(doc.contains("old"), "{doc}");
    }

    #[test]
    fn proc_fields_are_read() {
        let text = "processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\nMemTotal:       24576000 kB\n";
        assert_eq!(proc_field(text, "model name"), Some("Some CPU @ 2.0GHz"));
        assert_eq!(proc_field(text, "MemTotal"), Some("24576000 kB"));
        assert_eq!(proc_field(text, "flags"), None);
    }
}
