//! The OTTL grammar (pkg/ottl `grammar.go` of the Collector): statements
//! `editor(args) [where condition]` and conditions with `and`, `or`, `not`, comparisons,
//! literals, paths, enums, lists, maps and converter calls. Written with `winnow`; errors carry
//! the byte offset where parsing stopped.

use super::ast::{BoolExpr, Expr, Invocation, Key, Literal, PathExpr, Statement};
use super::value::CmpOp;
use winnow::LocatingSlice;
use winnow::ascii::{digit1, multispace0};
use winnow::combinator::{alt, cut_err, delimited, eof, not, opt, peek, preceded, separated};
use winnow::error::{ContextError, ErrMode, StrContext, StrContextValue};
use winnow::prelude::*;
use winnow::stream::Location;
use winnow::token::{any, one_of, take_while};

type In<'a> = LocatingSlice<&'a str>;

/// A syntax error: the offset (0-based, in bytes) and what was expected there.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("syntax error at column {}: {message}", .offset + 1)]
pub struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

/// Parses one statement.
pub fn parse_statement(text: &str) -> Result<Statement, SyntaxError> {
    finish(text, (statement, multispace0, eof).map(|(s, _, _)| s))
}

/// Parses one condition (as the `filter` processor and `where` use them).
pub fn parse_condition(text: &str) -> Result<BoolExpr, SyntaxError> {
    finish(
        text,
        (multispace0, or_expr, multispace0, eof).map(|(_, c, _, _)| c),
    )
}

fn finish<'a, O>(
    text: &'a str,
    mut p: impl Parser<In<'a>, O, ErrMode<ContextError>>,
) -> Result<O, SyntaxError> {
    p.parse(LocatingSlice::new(text)).map_err(|e| {
        let ctx = e.inner().to_string();
        let found = text[e.offset()..].chars().next();
        let mut message = match (ctx.is_empty(), found) {
            (true, Some(c)) => format!("unexpected {c:?}"),
            (true, None) => "unexpected end of statement".into(),
            (false, Some(c)) => format!("{ctx}, found {c:?}"),
            (false, None) => format!("{ctx}, found end of statement"),
        };
        // the Collector's math expressions are the likely intent of these
        if matches!(found, Some('+' | '-' | '*' | '/' | '(')) {
            message.push_str(
                " (math expressions and parentheses around values are not supported by Watchtower's OTTL)",
            );
        }
        SyntaxError {
            offset: e.offset(),
            message,
        }
    })
}

fn expected(what: &'static str) -> StrContext {
    StrContext::Expected(StrContextValue::Description(what))
}

fn ws(i: &mut In<'_>) -> ModalResult<()> {
    multispace0.void().parse_next(i)
}

fn ident<'a>(i: &mut In<'a>) -> ModalResult<&'a str> {
    (
        one_of(|c: char| c.is_ascii_alphabetic() || c == '_'),
        take_while(0.., |c: char| c.is_ascii_alphanumeric() || c == '_'),
    )
        .take()
        .parse_next(i)
}

/// A keyword not followed by an identifier character.
fn keyword<'a>(kw: &'static str) -> impl Parser<In<'a>, (), ErrMode<ContextError>> {
    (
        kw,
        not(one_of(|c: char| c.is_ascii_alphanumeric() || c == '_')),
    )
        .void()
}

fn statement(i: &mut In<'_>) -> ModalResult<Statement> {
    ws(i)?;
    let pos = i.current_token_start();
    let name = ident.context(expected("editor name")).parse_next(i)?;
    ws(i)?;
    let args = cut_err(arg_list).parse_next(i)?;
    ws(i)?;
    let condition = opt(preceded((keyword("where"), ws), cut_err(or_expr))).parse_next(i)?;
    Ok(Statement {
        editor: Invocation {
            name: name.to_string(),
            pos,
            args,
        },
        condition,
    })
}

fn arg_list(i: &mut In<'_>) -> ModalResult<Vec<Expr>> {
    ('(', ws).parse_next(i)?;
    let mut args = Vec::new();
    if let Some(first) = opt(value).parse_next(i)? {
        args.push(first);
        ws(i)?;
        // after a ',' an argument must follow: the error then points at it, not at the ','
        while opt((',', ws)).parse_next(i)?.is_some() {
            args.push(cut_err(value).parse_next(i)?);
            ws(i)?;
        }
    }
    ')'.context(expected("',' or ')'")).parse_next(i)?;
    Ok(args)
}

fn or_expr(i: &mut In<'_>) -> ModalResult<BoolExpr> {
    let terms: Vec<BoolExpr> = separated(1.., and_expr, (ws, keyword("or"), ws)).parse_next(i)?;
    Ok(flatten(terms, BoolExpr::Or))
}

fn and_expr(i: &mut In<'_>) -> ModalResult<BoolExpr> {
    let terms: Vec<BoolExpr> = separated(1.., not_expr, (ws, keyword("and"), ws)).parse_next(i)?;
    Ok(flatten(terms, BoolExpr::And))
}

fn flatten(mut terms: Vec<BoolExpr>, f: fn(Vec<BoolExpr>) -> BoolExpr) -> BoolExpr {
    if terms.len() == 1 {
        terms.remove(0)
    } else {
        f(terms)
    }
}

fn not_expr(i: &mut In<'_>) -> ModalResult<BoolExpr> {
    alt((
        preceded((keyword("not"), ws), cut_err(not_expr)).map(|e| BoolExpr::Not(Box::new(e))),
        delimited(('(', ws), cut_err(or_expr), (ws, cut_err(')'))),
        comparison,
    ))
    .parse_next(i)
}

fn comparison(i: &mut In<'_>) -> ModalResult<BoolExpr> {
    let left = value.context(expected("a condition")).parse_next(i)?;
    let op = opt(preceded(ws, cmp_op)).parse_next(i)?;
    match op {
        None => Ok(BoolExpr::Value(left)),
        Some(op) => {
            ws(i)?;
            let right = cut_err(value).parse_next(i)?;
            Ok(BoolExpr::Compare(left, op, right))
        }
    }
}

fn cmp_op(i: &mut In<'_>) -> ModalResult<CmpOp> {
    alt((
        "==".value(CmpOp::Eq),
        "!=".value(CmpOp::Ne),
        "<=".value(CmpOp::Le),
        ">=".value(CmpOp::Ge),
        "<".value(CmpOp::Lt),
        ">".value(CmpOp::Gt),
    ))
    .parse_next(i)
}

fn value(i: &mut In<'_>) -> ModalResult<Expr> {
    alt((
        string.map(|s| Expr::Literal(Literal::Str(s))),
        bytes.map(|b| Expr::Literal(Literal::Bytes(b))),
        number.map(Expr::Literal),
        list,
        map,
        keyword("nil").value(Expr::Literal(Literal::Nil)),
        keyword("true").value(Expr::Literal(Literal::Bool(true))),
        keyword("false").value(Expr::Literal(Literal::Bool(false))),
        upper_name,
        path.map(Expr::Path),
    ))
    .context(expected("a value"))
    .parse_next(i)
}

fn string(i: &mut In<'_>) -> ModalResult<String> {
    '"'.parse_next(i)?;
    let mut out = String::new();
    loop {
        let c = cut_err(any.context(expected("closing '\"'"))).parse_next(i)?;
        match c {
            '"' => return Ok(out),
            '\\' => {
                let e = cut_err(any.context(expected("closing '\"'"))).parse_next(i)?;
                match e {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    other => {
                        // kept as written, so regular expressions like "\d+" read naturally
                        out.push('\\');
                        out.push(other);
                    }
                }
            }
            c => out.push(c),
        }
    }
}

fn bytes(i: &mut In<'_>) -> ModalResult<Vec<u8>> {
    let digits = preceded(
        "0x",
        cut_err(take_while(1.., |c: char| c.is_ascii_hexdigit())),
    )
    .parse_next(i)?;
    hex::decode(digits).map_err(|_| ErrMode::Cut(ContextError::new()))
}

fn number(i: &mut In<'_>) -> ModalResult<Literal> {
    let text = (opt(one_of(['-', '+'])), digit1, opt(('.', digit1)))
        .take()
        .parse_next(i)?;
    if text.contains('.') {
        text.parse::<f64>()
            .map(Literal::Double)
            .map_err(|_| ErrMode::Cut(ContextError::new()))
    } else {
        text.parse::<i64>()
            .map(Literal::Int)
            .map_err(|_| ErrMode::Cut(ContextError::new()))
    }
}

fn list(i: &mut In<'_>) -> ModalResult<Expr> {
    delimited(
        ('[', ws),
        separated(0.., (value, ws).map(|(v, _)| v), (',', ws)),
        cut_err(']'.context(expected("',' or ']'"))),
    )
    .map(Expr::List)
    .parse_next(i)
}

fn map(i: &mut In<'_>) -> ModalResult<Expr> {
    delimited(
        ('{', ws),
        separated(
            0..,
            (string, ws, cut_err(':'), ws, cut_err(value), ws).map(|(k, _, _, _, v, _)| (k, v)),
            (',', ws),
        ),
        cut_err('}'.context(expected("',' or '}'"))),
    )
    .map(Expr::Map)
    .parse_next(i)
}

/// Converter call (`Name(...)` with optional indexes) or enum / function name.
fn upper_name(i: &mut In<'_>) -> ModalResult<Expr> {
    let pos = i.current_token_start();
    let name = (
        one_of(|c: char| c.is_ascii_uppercase()),
        take_while(0.., |c: char| c.is_ascii_alphanumeric() || c == '_'),
    )
        .take()
        .parse_next(i)?;
    let call = opt(preceded(ws, peek('('))).parse_next(i)?;
    if call.is_none() {
        return Ok(Expr::Enum(name.to_string(), pos));
    }
    ws(i)?;
    let args = arg_list.parse_next(i)?;
    let keys = keys.parse_next(i)?;
    Ok(Expr::Converter(
        Invocation {
            name: name.to_string(),
            pos,
            args,
        },
        keys,
    ))
}

fn keys(i: &mut In<'_>) -> ModalResult<Vec<Key>> {
    winnow::combinator::repeat(
        0..,
        delimited(
            '[',
            cut_err(alt((
                string.map(Key::Str),
                number.verify_map(|n| match n {
                    Literal::Int(i) => Some(Key::Int(i)),
                    _ => None,
                }),
            )))
            .context(expected("a string or integer index")),
            cut_err(']'),
        ),
    )
    .parse_next(i)
}

fn path(i: &mut In<'_>) -> ModalResult<PathExpr> {
    let pos = i.current_token_start();
    let first = (
        one_of(|c: char| c.is_ascii_lowercase() || c == '_'),
        take_while(0.., |c: char| c.is_ascii_alphanumeric() || c == '_'),
    )
        .take()
        .parse_next(i)?;
    let rest: Vec<&str> =
        winnow::combinator::repeat(0.., preceded('.', cut_err(ident))).parse_next(i)?;
    let keys = keys.parse_next(i)?;
    let mut fields = vec![first.to_string()];
    fields.extend(rest.into_iter().map(String::from));
    // a field after indexes (`body["a"].string`) is not part of the supported grammar
    Ok(PathExpr { fields, keys, pos })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_statements() {
        let s = parse_statement(
            r#"set(attributes["a"]["b"], Concat([name, "x"], "-")) where kind == SPAN_KIND_SERVER and not (status.code != 2 or IsMatch(name, "^h.*"))"#,
        )
        .unwrap();
        assert_eq!(s.editor.name, "set");
        assert_eq!(s.editor.args.len(), 2);
        match &s.editor.args[0] {
            Expr::Path(p) => {
                assert_eq!(p.fields, vec!["attributes"]);
                assert_eq!(p.keys, vec![Key::Str("a".into()), Key::Str("b".into())]);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(s.condition, Some(BoolExpr::And(ref v)) if v.len() == 2));
    }

    #[test]
    fn literals() {
        let c = parse_condition(
            r#"attributes["n"] >= -1.5 or body == nil or x == 0xAB01 or y == true"#,
        )
        .unwrap();
        let BoolExpr::Or(terms) = c else { panic!() };
        assert_eq!(
            terms[0],
            BoolExpr::Compare(
                Expr::Path(PathExpr {
                    fields: vec!["attributes".into()],
                    keys: vec![Key::Str("n".into())],
                    pos: 0
                }),
                CmpOp::Ge,
                Expr::Literal(Literal::Double(-1.5))
            )
        );
        assert!(
            matches!(&terms[2], BoolExpr::Compare(_, _, Expr::Literal(Literal::Bytes(b))) if b == &vec![0xab, 0x01])
        );
    }

    #[test]
    fn keywords_need_a_boundary() {
        // `order` starts with `or`, `notes` with `not`
        let c = parse_condition(r#"order == 1 and notes == "x""#).unwrap();
        assert!(matches!(c, BoolExpr::And(_)));
    }

    #[test]
    fn errors_carry_positions() {
        let e = parse_statement(r#"set(name, "x") where name == "#).unwrap_err();
        assert_eq!(e.offset, 29, "{e}");
        let e = parse_statement(r#"set(name "x")"#).unwrap_err();
        assert_eq!(e.offset, 9, "{e}");
        assert!(
            e.to_string().starts_with("syntax error at column 10"),
            "{e}"
        );
        let e = parse_condition(r#"name == "open"#).unwrap_err();
        assert_eq!(e.offset, 13, "{e}");
        let e = parse_condition("name ==").unwrap_err();
        assert_eq!(e.offset, 7, "{e}");
    }
}
