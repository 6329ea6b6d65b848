//! Syntax tree of OTTL statements and conditions as the grammar reads them, before names
//! are resolved against a context. Positions are byte offsets into the statement text.

use super::value::CmpOp;

/// `editor(args) where condition`.
#[derive(Clone, Debug, PartialEq)]
pub struct Statement {
    pub editor: Invocation,
    pub condition: Option<BoolExpr>,
}

/// A function call: an editor (lowercase name) or a converter (uppercase name).
#[derive(Clone, Debug, PartialEq)]
pub struct Invocation {
    pub name: String,
    pub pos: usize,
    pub args: Vec<Expr>,
}

/// One map or list index: `["key"]` or `[0]`.
#[derive(Clone, Debug, PartialEq)]
pub enum Key {
    Str(String),
    Int(i64),
}

/// A path such as `resource.attributes["host.name"]` or `attributes["a"][0]`.
#[derive(Clone, Debug, PartialEq)]
pub struct PathExpr {
    /// dot-separated names
    pub fields: Vec<String>,
    /// indexes after the last name
    pub keys: Vec<Key>,
    pub pos: usize,
}

/// A literal.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Nil,
    Bool(bool),
    Int(i64),
    Double(f64),
    Str(String),
    Bytes(Vec<u8>),
}

/// A value expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Literal(Literal),
    Path(PathExpr),
    /// `Converter(args)` with optional indexes on its result
    Converter(Invocation, Vec<Key>),
    /// An upper-case name without arguments: an enum (`SPAN_KIND_SERVER`) or, where a
    /// function argument expects one, a function name (`SHA256`).
    Enum(String, usize),
    List(Vec<Expr>),
    Map(Vec<(String, Expr)>),
}

/// A boolean expression.
#[derive(Clone, Debug, PartialEq)]
pub enum BoolExpr {
    Or(Vec<BoolExpr>),
    And(Vec<BoolExpr>),
    Not(Box<BoolExpr>),
    Compare(Expr, CmpOp, Expr),
    /// a boolean literal or a converter returning a boolean
    Value(Expr),
}
