//! OTTL, the OpenTelemetry Transformation Language, in the subset docs/processing.md lists:
//! the Collector's syntax and semantics (pkg/ottl), compiled once when the config loads and
//! evaluated on decoded OTLP items by the `filter` and `transform` processors.

pub mod ast;
pub mod context;
pub mod eval;
pub mod functions;
pub mod grammar;
pub mod value;
pub mod walk;

pub use context::{Context, EvalError, Item, Tx};
pub use eval::{CBool, CStatement, CompileError};

use serde::Deserialize;

/// What a failing statement or condition does (`error_mode`, as in the Collector):
/// `propagate` fails the whole request, `ignore` logs and goes on, `silent` goes on quietly.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorMode {
    #[default]
    Propagate,
    Ignore,
    Silent,
}

/// Compiles a statement (`editor(args) where condition`) for a context.
pub fn statement(ctx: Context, text: &str) -> Result<CStatement, CompileError> {
    let ast = grammar::parse_statement(text).map_err(|e| CompileError::new(e.offset, e.message))?;
    eval::compile_statement(ctx, &ast)
}

/// Compiles a condition for a context.
pub fn condition(ctx: Context, text: &str) -> Result<CBool, CompileError> {
    let ast = grammar::parse_condition(text).map_err(|e| CompileError::new(e.offset, e.message))?;
    eval::Compiler { ctx }.condition(&ast)
}

/// Handles an evaluation error per the error mode: `Err` only for `propagate`.
pub fn handle(mode: ErrorMode, what: &str, e: EvalError) -> Result<(), EvalError> {
    match mode {
        ErrorMode::Propagate => Err(EvalError(format!("{what}: {e}"))),
        ErrorMode::Ignore => {
            tracing::warn!(error = %e, "{what} failed; ignored (error_mode: ignore)");
            Ok(())
        }
        ErrorMode::Silent => Ok(()),
    }
}

#[cfg(test)]
mod tests;
