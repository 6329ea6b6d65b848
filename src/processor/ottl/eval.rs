//! Compiling the syntax tree against a context (paths resolved, enums replaced by their
//! numbers, regular expressions built, function arities checked) and evaluating the result on
//! an item. Compilation happens once, when the config is loaded; evaluation never parses.

use super::ast::{self, BoolExpr, Expr, Key, Literal};
use super::context::{Context, EvalError, Field, Tx, resolve};
use super::functions::{self, ConvCall, EditorCall};
use super::value::{CmpOp, Value, compare};

/// A compile error: byte offset in the statement and message.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("column {}: {message}", .offset + 1)]
pub struct CompileError {
    pub offset: usize,
    pub message: String,
}

impl CompileError {
    pub fn new(offset: usize, message: impl Into<String>) -> Self {
        CompileError {
            offset,
            message: message.into(),
        }
    }
}

/// A resolved path.
#[derive(Clone, Debug)]
pub struct CPath {
    pub field: Field,
    pub keys: Vec<Key>,
}

/// A compiled value expression.
#[derive(Clone, Debug)]
pub enum CExpr {
    Lit(Value),
    Path(CPath),
    Conv(Box<ConvCall>),
    List(Vec<CExpr>),
    Map(Vec<(String, CExpr)>),
}

/// A compiled boolean expression.
#[derive(Clone, Debug)]
pub enum CBool {
    Or(Vec<CBool>),
    And(Vec<CBool>),
    Not(Box<CBool>),
    Compare(CExpr, CmpOp, CExpr),
    Value(CExpr),
}

/// Numbers of the enums OTTL knows (pdata's values), by name.
pub fn enum_value(name: &str) -> Option<i64> {
    const SEVERITIES: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    let v = match name {
        "SPAN_KIND_UNSPECIFIED" => 0,
        "SPAN_KIND_INTERNAL" => 1,
        "SPAN_KIND_SERVER" => 2,
        "SPAN_KIND_CLIENT" => 3,
        "SPAN_KIND_PRODUCER" => 4,
        "SPAN_KIND_CONSUMER" => 5,
        "STATUS_CODE_UNSET" => 0,
        "STATUS_CODE_OK" => 1,
        "STATUS_CODE_ERROR" => 2,
        "METRIC_DATA_TYPE_NONE" => 0,
        "METRIC_DATA_TYPE_GAUGE" => 1,
        "METRIC_DATA_TYPE_SUM" => 2,
        "METRIC_DATA_TYPE_HISTOGRAM" => 3,
        "METRIC_DATA_TYPE_EXPONENTIAL_HISTOGRAM" => 4,
        "METRIC_DATA_TYPE_SUMMARY" => 5,
        "AGGREGATION_TEMPORALITY_UNSPECIFIED" => 0,
        "AGGREGATION_TEMPORALITY_DELTA" => 1,
        "AGGREGATION_TEMPORALITY_CUMULATIVE" => 2,
        "SEVERITY_NUMBER_UNSPECIFIED" => 0,
        other => {
            let rest = other.strip_prefix("SEVERITY_NUMBER_")?;
            let (level, n) = match rest.find(|c: char| c.is_ascii_digit()) {
                Some(i) => (&rest[..i], rest[i..].parse::<i64>().ok()?),
                None => (rest, 1),
            };
            let base = SEVERITIES.iter().position(|s| *s == level)? as i64;
            if !(1..=4).contains(&n) {
                return None;
            }
            base * 4 + n
        }
    };
    Some(v)
}

/// Compiles value expressions in one context.
pub struct Compiler {
    pub ctx: Context,
}

impl Compiler {
    pub fn path(&self, p: &ast::PathExpr) -> Result<CPath, CompileError> {
        let field = resolve(self.ctx, &p.fields).map_err(|m| CompileError::new(p.pos, m))?;
        if !p.keys.is_empty() && !field.indexable() {
            return Err(CompileError::new(
                p.pos,
                format!("path {:?} does not take indexes", p.fields.join(".")),
            ));
        }
        Ok(CPath {
            field,
            keys: p.keys.clone(),
        })
    }

    pub fn expr(&self, e: &Expr) -> Result<CExpr, CompileError> {
        Ok(match e {
            Expr::Literal(l) => CExpr::Lit(literal(l)),
            Expr::Path(p) => CExpr::Path(self.path(p)?),
            Expr::Converter(inv, keys) => {
                CExpr::Conv(Box::new(functions::compile_converter(self, inv, keys)?))
            }
            Expr::Enum(name, pos) => match enum_value(name) {
                Some(v) => CExpr::Lit(Value::Int(v)),
                None => {
                    return Err(CompileError::new(
                        *pos,
                        format!("unknown enum {name:?} (see docs/processing.md)"),
                    ));
                }
            },
            Expr::List(items) => CExpr::List(
                items
                    .iter()
                    .map(|i| self.expr(i))
                    .collect::<Result<_, _>>()?,
            ),
            Expr::Map(entries) => CExpr::Map(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), self.expr(v)?)))
                    .collect::<Result<_, CompileError>>()?,
            ),
        })
    }

    pub fn condition(&self, b: &BoolExpr) -> Result<CBool, CompileError> {
        Ok(match b {
            BoolExpr::Or(v) => CBool::Or(
                v.iter()
                    .map(|b| self.condition(b))
                    .collect::<Result<_, _>>()?,
            ),
            BoolExpr::And(v) => CBool::And(
                v.iter()
                    .map(|b| self.condition(b))
                    .collect::<Result<_, _>>()?,
            ),
            BoolExpr::Not(b) => CBool::Not(Box::new(self.condition(b)?)),
            BoolExpr::Compare(l, op, r) => CBool::Compare(self.expr(l)?, *op, self.expr(r)?),
            BoolExpr::Value(e) => match e {
                Expr::Literal(Literal::Bool(_)) | Expr::Converter(..) => {
                    CBool::Value(self.expr(e)?)
                }
                _ => {
                    return Err(CompileError::new(
                        expr_pos(e),
                        "a condition must be a comparison, a boolean or a converter returning one",
                    ));
                }
            },
        })
    }
}

/// Best-effort position of an expression.
pub fn expr_pos(e: &Expr) -> usize {
    match e {
        Expr::Path(p) => p.pos,
        Expr::Converter(i, _) => i.pos,
        Expr::Enum(_, p) => *p,
        _ => 0,
    }
}

fn literal(l: &Literal) -> Value {
    match l {
        Literal::Nil => Value::Nil,
        Literal::Bool(b) => Value::Bool(*b),
        Literal::Int(i) => Value::Int(*i),
        Literal::Double(d) => Value::Double(*d),
        Literal::Str(s) => Value::Str(s.clone()),
        Literal::Bytes(b) => Value::Bytes(b.clone()),
    }
}

impl CExpr {
    /// Evaluates the expression on an item.
    pub fn eval(&self, tx: &mut Tx<'_>) -> Result<Value, EvalError> {
        match self {
            CExpr::Lit(v) => Ok(v.clone()),
            CExpr::Path(p) => tx.get(p.field, &p.keys),
            CExpr::Conv(c) => c.eval(tx),
            CExpr::List(items) => Ok(Value::List(
                items.iter().map(|i| i.eval(tx)).collect::<Result<_, _>>()?,
            )),
            CExpr::Map(entries) => Ok(Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| Ok((k.clone(), v.eval(tx)?)))
                    .collect::<Result<_, EvalError>>()?,
            )),
        }
    }
}

impl CBool {
    /// Evaluates the condition on an item (`and` and `or` short-circuit).
    pub fn eval(&self, tx: &mut Tx<'_>) -> Result<bool, EvalError> {
        match self {
            CBool::Or(v) => {
                for b in v {
                    if b.eval(tx)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            CBool::And(v) => {
                for b in v {
                    if !b.eval(tx)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            CBool::Not(b) => Ok(!b.eval(tx)?),
            CBool::Compare(l, op, r) => Ok(compare(&l.eval(tx)?, *op, &r.eval(tx)?)),
            CBool::Value(e) => match e.eval(tx)? {
                Value::Bool(b) => Ok(b),
                other => Err(EvalError(format!(
                    "condition returned a {}, not a bool",
                    other.kind()
                ))),
            },
        }
    }
}

/// A compiled statement: an editor call and its optional `where` condition.
#[derive(Clone, Debug)]
pub struct CStatement {
    pub editor: EditorCall,
    pub condition: Option<CBool>,
}

impl CStatement {
    /// Runs the statement on an item: the editor runs when the condition holds.
    pub fn execute(&self, tx: &mut Tx<'_>) -> Result<(), EvalError> {
        if let Some(c) = &self.condition
            && !c.eval(tx)?
        {
            return Ok(());
        }
        self.editor.run(tx)
    }
}

/// Compiles a statement in a context.
pub fn compile_statement(ctx: Context, s: &ast::Statement) -> Result<CStatement, CompileError> {
    let c = Compiler { ctx };
    Ok(CStatement {
        editor: functions::compile_editor(&c, &s.editor)?,
        condition: s.condition.as_ref().map(|b| c.condition(b)).transpose()?,
    })
}
