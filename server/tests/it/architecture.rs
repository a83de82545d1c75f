//! The server's module layout holds by itself: no module reaches one above
//! it, SQL stays in the stores and is never built at run time, no area
//! makes its store public, no handler sees a store or its rows, and time is
//! read from the one clock. Reads
//! `server/src` as text; a test, not a convention, so a change that breaks
//! the layering fails CI with the file and the path it used.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every top-level module of the server library, lowest first. A module may
/// use `crate::<m>` only for modules strictly below it; areas' `api`
/// submodules (their HTTP handlers) sit above `http` and `state`.
const LAYERS: &[(&str, u8)] = &[
    ("db", 0),
    ("kernel", 1),
    ("contract", 2),
    ("idempotency", 2),
    ("limits", 2),
    ("mail", 2),
    ("metrics", 2),
    ("outbound", 2),
    ("telemetry", 2),
    ("audit", 3),
    ("identity", 4),
    ("gateway", 5),
    ("state", 6),
    ("runs", 7),
    ("http", 8),
    // 9: every area's `api` submodule.
    ("ops", 9),
    ("routes", 10),
    ("config", 11),
    ("app", 12),
    ("testing", 13),
    ("lib", 14),
    ("main", 14),
];
const AREA_API: u8 = 9;

/// Where `sqlx::` may appear: the pool and engines, each area's store, and
/// the test harness (which creates and drops databases).
fn may_use_sqlx(relative: &Path) -> bool {
    let parts: Vec<&str> = relative.iter().filter_map(|part| part.to_str()).collect();
    matches!(parts.first(), Some(&"db" | &"testing"))
        || parts.iter().any(|part| *part == "store" || *part == "store.rs")
}

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The file's code without comments and without its `#[cfg(test)]` tail.
fn production_code(text: &str) -> String {
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines().filter(|line| !line.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

fn rank_of(module: &str) -> Option<u8> {
    LAYERS.iter().find(|(name, _)| *name == module).map(|(_, rank)| *rank)
}

/// The module a file belongs to and its rank: `identity/api/orgs.rs` is an
/// area's API (rank 8), `identity/orgs.rs` is `identity`.
fn module_of(relative: &Path) -> (String, Option<u8>) {
    let parts: Vec<&str> = relative.iter().filter_map(|part| part.to_str()).collect();
    let module = parts[0].trim_end_matches(".rs").to_owned();
    let in_api = parts[1..].iter().any(|part| *part == "api" || *part == "api.rs");
    let rank = if in_api { Some(AREA_API) } else { rank_of(&module) };
    (module, rank)
}

/// The top-level modules a file names as `crate::<module>` or in
/// `crate::{a, b::c}`; names the crate root re-exports count as their module.
fn modules_used(code: &str) -> BTreeSet<String> {
    let ident =
        |text: &str| -> String { text.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    let mut used = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        if code[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        let names: Vec<String> = match rest.strip_prefix('{') {
            Some(group) => group
                .split('}')
                .next()
                .unwrap_or_default()
                .split(',')
                .map(|name| ident(name.trim()))
                .filter(|name| !name.is_empty())
                .collect(),
            None => vec![ident(rest)],
        };
        used.extend(names.into_iter().map(|name| root_export_module(&name).unwrap_or(&name).to_owned()));
    }
    used
}

/// The module behind a name `lib.rs` re-exports, such as `crate::App`.
fn root_export_module(name: &str) -> Option<&'static str> {
    match name {
        "App" | "AppError" => Some("app"),
        "Config" => Some("config"),
        "AppState" => Some("state"),
        _ => None,
    }
}

/// Items defined at the crate root, below every module: exported macros and
/// the version.
const ROOT_ITEMS: [&str; 3] = ["operation_errors", "with_response_headers", "VERSION"];

#[test]
fn no_module_uses_one_above_it() {
    let root = source_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut problems = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&root).unwrap();
        let (module, rank) = module_of(relative);
        let Some(rank) = rank else {
            problems.push(format!("{}: module `{module}` is missing from LAYERS", relative.display()));
            continue;
        };
        let code = production_code(&std::fs::read_to_string(file).unwrap());
        for used in modules_used(&code) {
            if used == module || ROOT_ITEMS.contains(&used.as_str()) {
                continue;
            }
            match rank_of(&used) {
                None => {
                    problems.push(format!("{}: `crate::{used}` is missing from LAYERS", relative.display()))
                }
                Some(used_rank) if used_rank >= rank => problems.push(format!(
                    "{}: uses `crate::{used}` (layer {used_rank}), not below its own (layer {rank})",
                    relative.display()
                )),
                Some(_) => {}
            }
        }
    }
    assert!(problems.is_empty(), "the layering is broken:\n{}", problems.join("\n"));
}

#[test]
fn sql_stays_in_the_stores() {
    let root = source_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let offenders: Vec<String> = files
        .iter()
        .filter(|file| !may_use_sqlx(file.strip_prefix(&root).unwrap()))
        .filter(|file| production_code(&std::fs::read_to_string(file).unwrap()).contains("sqlx::"))
        .map(|file| file.strip_prefix(&root).unwrap().display().to_string())
        .collect();
    assert!(offenders.is_empty(), "`sqlx::` outside db/ and the stores: {offenders:?}");
}

#[test]
fn sql_is_never_built_at_run_time() {
    // Queries are literals (or `concat!` of literals): a `&String` handed to
    // sqlx is SQL assembled while serving, one edit away from an injection.
    let root = source_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let mut offenders = Vec::new();
    for file in &files {
        let code = production_code(&std::fs::read_to_string(file).unwrap());
        for built in ["sqlx::query(&", "sqlx::query_as(&", "sqlx::query_scalar(&", "query(&format!"] {
            if code.contains(built) {
                offenders.push(format!("{}: {built}…", file.strip_prefix(&root).unwrap().display()));
            }
        }
    }
    assert!(offenders.is_empty(), "SQL built at run time: {offenders:?}");
}

/// The handler files (areas' `api` modules) whose production code matches.
fn handlers_where(matches: impl Fn(&str) -> bool) -> Vec<String> {
    let root = source_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files
        .iter()
        .filter(|file| module_of(file.strip_prefix(&root).unwrap()).1 == Some(AREA_API))
        .filter(|file| matches(&production_code(&std::fs::read_to_string(file).unwrap())))
        .map(|file| file.strip_prefix(&root).unwrap().display().to_string())
        .collect()
}

#[test]
fn handlers_leave_the_key_cache_to_the_domain() {
    // The domain function that changes what keys may do drops what the cache
    // holds; a handler that had to remember it would one day forget.
    let offenders = handlers_where(|code| code.contains("keys.forget") || code.contains("keys.changed"));
    assert!(offenders.is_empty(), "handlers touching the key cache: {offenders:?}");
}

#[test]
fn handlers_never_see_storage() {
    // Domain functions hand out domain types; a handler holding a row would
    // put storage detail (a password hash, a stored role string) one field
    // away from the wire.
    let offenders = handlers_where(|code| {
        let names_a_row = code
            .split(|c: char| !c.is_alphanumeric() && c != '_')
            .any(|word| word.len() > 3 && word.ends_with("Row"));
        code.contains("::store::") || code.contains("::store;") || names_a_row
    });
    assert!(offenders.is_empty(), "handlers using a store or its rows: {offenders:?}");
}

#[test]
fn time_is_read_from_the_clock() {
    // Expiry, windows and days are judged by `kernel::clock::Clock`, which
    // tests move forward; a direct read of the system time would not move.
    // `Instant` (durations, never dates) is fine.
    const MAY_READ_THE_SYSTEM_TIME: &[&str] = &[
        "kernel/clock.rs",
        // The model list's `created`: when the route table was built.
        "gateway/mod.rs",
    ];
    let root = source_root();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let offenders: Vec<String> = files
        .iter()
        .map(|file| file.strip_prefix(&root).unwrap())
        .filter(|relative| !MAY_READ_THE_SYSTEM_TIME.iter().any(|allowed| Path::new(allowed) == *relative))
        .filter(|relative| {
            let code = production_code(&std::fs::read_to_string(root.join(relative)).unwrap());
            code.contains("Utc::now()") || code.contains("SystemTime::now()")
        })
        .map(|relative| relative.display().to_string())
        .collect();
    assert!(offenders.is_empty(), "reading the system time instead of the clock: {offenders:?}");
}

#[test]
fn no_area_makes_its_store_public() {
    let root = source_root();
    for entry in std::fs::read_dir(&root).unwrap() {
        let front = entry.unwrap().path().join("mod.rs");
        let Ok(text) = std::fs::read_to_string(&front) else { continue };
        for line in text.lines() {
            let line = line.trim();
            let declares_store = line.ends_with("mod store;");
            assert!(
                !declares_store || line == "mod store;",
                "{}: `{line}`: a store is private to its area; export what others need from the front",
                front.display()
            );
        }
    }
}

#[test]
fn the_checks_see_what_they_check() {
    // The scan must find files and paths, or the tests above pass vacuously.
    let mut files = Vec::new();
    rust_files(&source_root(), &mut files);
    assert!(files.len() > 50, "only {} files under src/", files.len());
    let used = modules_used("use crate::db::Db;\nlet x = $crate::kernel::x; crate::identity::orgs::Role");
    assert_eq!(used.into_iter().collect::<Vec<_>>(), ["db", "identity"]);
    let used = modules_used("use crate::{App, Config, mail::Mailer};");
    assert_eq!(used.into_iter().collect::<Vec<_>>(), ["app", "config", "mail"]);
    assert_eq!(module_of(Path::new("gateway/usage/api.rs")).1, Some(AREA_API));
    assert_eq!(module_of(Path::new("gateway/usage/service.rs")).1, rank_of("gateway"));
    assert!(
        may_use_sqlx(Path::new("identity/store/users.rs")) && !may_use_sqlx(Path::new("identity/orgs.rs"))
    );
    let handlers = handlers_where(|code| code.contains("#[OpenApi"));
    assert!(handlers.len() > 8, "only {handlers:?} hold handlers");
}
