//! The outcome of a run: what the spec covers, what each engine replayed and passed, and
//! every failure with its reason, printed as a coverage table.

use std::fmt;
use std::path::PathBuf;

use switchyard_server::testing::harness::TestEngine;

use crate::spec::{Case, Operation, Spec};

const COLUMNS: [&str; 7] = ["operation", "method", "path", "statuses", "examples", "replayed", "passed"];

pub struct Report {
    pub spec: PathBuf,
    pub operations: Vec<OperationRow>,
    /// Engines not run, and why.
    pub skipped: Vec<String>,
    pub runs: Vec<EngineRun>,
}

/// One operation of the spec and its examples.
pub struct OperationRow {
    pub id: String,
    pub method: String,
    pub path: String,
    pub statuses: Vec<u16>,
    pub examples: usize,
    /// Declared statuses without an example.
    pub missing: Vec<u16>,
}

pub struct EngineRun {
    pub engine: TestEngine,
    /// One per case, in spec order.
    pub results: Vec<CaseResult>,
}

pub struct CaseResult {
    pub operation_id: String,
    pub status: u16,
    pub example: String,
    /// Whether the request was sent (not when the plan or a setup step failed first).
    pub replayed: bool,
    pub failures: Vec<String>,
}

impl CaseResult {
    /// A result for `case` that has not been sent yet.
    pub(crate) fn unreplayed(operation: &Operation, case: &Case) -> Self {
        Self {
            operation_id: operation.id.clone(),
            status: case.status,
            example: case.example.clone(),
            replayed: false,
            failures: Vec::new(),
        }
    }

    pub fn passed(&self) -> bool {
        self.replayed && self.failures.is_empty()
    }
}

impl Report {
    pub fn new(spec_path: PathBuf, spec: &Spec) -> Self {
        let operations = spec
            .operations
            .iter()
            .map(|operation| OperationRow {
                id: operation.id.clone(),
                method: operation.method.to_string(),
                path: operation.path.clone(),
                statuses: operation.statuses.clone(),
                examples: operation.cases.len(),
                missing: operation.missing_statuses(),
            })
            .collect();
        Self { spec: spec_path, operations, skipped: Vec::new(), runs: Vec::new() }
    }

    /// Every example replayed and conformed on every engine run, and none is missing.
    pub fn passed(&self) -> bool {
        self.operations.iter().all(|operation| operation.missing.is_empty())
            && self.runs.iter().all(|run| run.results.iter().all(CaseResult::passed))
    }

    fn missing_count(&self) -> usize {
        self.operations.iter().map(|operation| operation.missing.len()).sum()
    }

    fn failed_count(&self) -> usize {
        self.runs.iter().flat_map(|run| &run.results).filter(|result| !result.passed()).count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "conformance of {}", self.spec.display())?;
        for skipped in &self.skipped {
            writeln!(f, "{skipped}")?;
        }
        for run in &self.runs {
            writeln!(f, "\n{}:", run.engine.name())?;
            write_table(f, &self.operations, run)?;
        }
        let (missing, failed) = (self.missing_count(), self.failed_count());
        if missing + failed > 0 {
            writeln!(f, "\nfailures:")?;
        }
        for operation in &self.operations {
            for status in &operation.missing {
                writeln!(f, "  missing example for {} {status}", operation.id)?;
            }
        }
        for run in &self.runs {
            for result in run.results.iter().filter(|result| !result.passed()) {
                let name = format!("{} {} `{}`", result.operation_id, result.status, result.example);
                writeln!(f, "  [{}] {name}:", run.engine.name())?;
                for failure in &result.failures {
                    writeln!(f, "      {failure}")?;
                }
            }
        }
        if self.passed() {
            writeln!(f, "\nconformance: passed")
        } else {
            writeln!(f, "\nconformance: FAILED (failed cases: {failed}, missing examples: {missing})")
        }
    }
}

fn write_table(f: &mut fmt::Formatter<'_>, operations: &[OperationRow], run: &EngineRun) -> fmt::Result {
    let mut rows = vec![COLUMNS.map(String::from)];
    let (mut examples, mut replayed, mut passed) = (0, 0, 0);
    for operation in operations {
        let results: Vec<_> =
            run.results.iter().filter(|result| result.operation_id == operation.id).collect();
        let row_replayed = results.iter().filter(|result| result.replayed).count();
        let row_passed = results.iter().filter(|result| result.passed()).count();
        let statuses: Vec<_> = operation.statuses.iter().map(u16::to_string).collect();
        rows.push([
            operation.id.clone(),
            operation.method.clone(),
            operation.path.clone(),
            statuses.join(","),
            operation.examples.to_string(),
            row_replayed.to_string(),
            row_passed.to_string(),
        ]);
        examples += operation.examples;
        replayed += row_replayed;
        passed += row_passed;
    }
    let mut widths = [0; COLUMNS.len()];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    for row in &rows {
        let cells: Vec<_> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
        writeln!(f, "  {}", cells.join("  ").trim_end())?;
    }
    writeln!(
        f,
        "  operations {}, examples {examples}, replayed {replayed}, passed {passed}",
        operations.len()
    )
}
