//! The common shapes of mapping expressions (`has()`, field reads,
//! comparisons, `&&`/`||`/`!`, `in [...]`, ternaries, string `+` and
//! `startsWith`, `double()`/`int()` and arithmetic on doubles, list literals
//! and `[n]`), compiled at load time into a tree that reads the record's JSON
//! directly: no conversion of the record to CEL values, no CEL context.
//!
//! It agrees with CEL by construction and by test (`tests_agree` in
//! `expr.rs` runs both on arbitrary records for every expression in
//! `mappings/`): where CEL's answer depends on something this tree does not
//! model (values of different kinds compared, an index out of range, a
//! number from a string...), evaluation answers [`Fail::Unsupported`] and the
//! caller asks CEL. The macros `exists` and `filter` are compiled too (they
//! bind their iteration variable); expressions with other constructs (`all`,
//! `map`, `size`, `string`) are not compiled at all.

use std::borrow::Cow;

use cel::IdedExpr;
use cel::common::ast::{ComprehensionExpr, Expr as Ast, LiteralValue, operators};
use serde_json::Value;

/// A compiled expression.
#[derive(Debug)]
pub enum Node {
    Lit(Lit),
    Var(Var),
    /// `operand.a.b.c`: a chain of field selections walked in one loop.
    Select(Box<Node>, Vec<String>),
    Has(Box<Node>, String),
    Not(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Eq(Box<Node>, Box<Node>),
    Ne(Box<Node>, Box<Node>),
    /// `x in ['a', 'b']`: a list of string literals.
    InStrings(Box<Node>, Vec<String>),
    Binary(BinOp, Box<Node>, Box<Node>),
    StartsWith(Box<Node>, Box<Node>),
    List(Vec<Node>),
    Index(Box<Node>, i64),
    Double(Box<Node>),
    Int(Box<Node>),
    /// `list.exists(x, predicate)`.
    Exists(Box<Node>, Box<Node>),
    /// `list.filter(x, predicate)`.
    Filter(Box<Node>, Box<Node>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Var {
    Value,
    Record,
    Ctx,
    /// The iteration variable of an enclosing macro, by depth (0 outermost).
    Bound(usize),
}

#[derive(Debug)]
pub enum Lit {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Why no value came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fail {
    /// CEL fails here too (a missing field, a condition that is not a bool).
    Error,
    /// Not modelled: CEL decides.
    Unsupported,
}

/// A value during evaluation: JSON read in place, or one computed.
#[derive(Debug, Clone)]
pub enum V<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(Cow<'a, str>),
    /// A JSON object or array, read in place.
    Json(&'a Value),
    List(Vec<V<'a>>),
}

/// The variables an evaluation sees.
pub struct Vars<'a> {
    pub value: Option<&'a Value>,
    pub record: Option<&'a Value>,
    pub ctx: &'a Value,
    /// The iteration variables of the enclosing macros, outermost first.
    pub bound: Vec<V<'a>>,
}

impl<'a> Vars<'a> {
    pub fn new(value: Option<&'a Value>, record: Option<&'a Value>, ctx: &'a Value) -> Vars<'a> {
        Vars {
            value,
            record,
            ctx,
            bound: Vec::new(),
        }
    }

    /// These variables with one more iteration variable bound.
    fn binding(&self, item: V<'a>) -> Vars<'a> {
        let mut bound = Vec::with_capacity(self.bound.len() + 1);
        bound.extend(self.bound.iter().cloned());
        bound.push(item);
        Vars { bound, ..*self }
    }

    /// The innermost iteration variable (set by [`Vars::binding`]).
    fn innermost(&mut self) -> &mut V<'a> {
        self.bound.last_mut().expect("a binding binds a variable")
    }
}

type R<'a> = Result<V<'a>, Fail>;

/// Compile `ast`, or `None` when it holds a construct this tree does not
/// model (CEL evaluates it then).
pub fn compile(ast: &IdedExpr) -> Option<Node> {
    compile_in(
        ast,
        Env {
            bound: &[],
            depth: 0,
        },
    )
}

/// Deeper expressions stay in CEL: the shipped ones nest under 15 levels,
/// and each level here is a few stack frames.
const MAX_NATIVE_DEPTH: usize = 64;

/// Where a sub-expression sits: the iteration variables in scope, outermost
/// first (an inner one shadows an outer one and the globals), and its depth.
#[derive(Clone, Copy)]
struct Env<'s> {
    bound: &'s [&'s str],
    depth: usize,
}

fn compile_in(ast: &IdedExpr, env: Env<'_>) -> Option<Node> {
    if env.depth > MAX_NATIVE_DEPTH {
        return None;
    }
    let env = Env {
        depth: env.depth + 1,
        ..env
    };
    let bound = env.bound;
    let compile = |ast: &IdedExpr| compile_in(ast, env);
    Some(match &ast.expr {
        Ast::Literal(lit) => Node::Lit(literal(lit)?),
        Ast::Ident(name) => Node::Var(match name.as_str() {
            name if bound.contains(&name) => Var::Bound(bound.iter().rposition(|b| *b == name)?),
            "value" => Var::Value,
            "record" => Var::Record,
            "ctx" => Var::Ctx,
            _ => return None,
        }),
        Ast::Comprehension(comprehension) => return compile_macro(comprehension, env),
        Ast::Select(select) => {
            let operand = compile(&select.operand)?;
            if select.test {
                Node::Has(Box::new(operand), select.field.clone())
            } else {
                match operand {
                    Node::Select(base, mut fields) => {
                        fields.push(select.field.clone());
                        Node::Select(base, fields)
                    }
                    operand => Node::Select(Box::new(operand), vec![select.field.clone()]),
                }
            }
        }
        Ast::List(list) if list.optional_indices.is_empty() => {
            Node::List(list.elements.iter().map(compile).collect::<Option<_>>()?)
        }
        Ast::Call(call) => {
            return compile_call(&call.func_name, call.target.as_deref(), &call.args, env);
        }
        _ => return None,
    })
}

/// `exists` and `filter`, recognised by the comprehension CEL's parser
/// expands them into (`cel::parser::macros`): for `exists` the accumulator
/// starts `false` and each step is `accu || predicate`; for `filter` it starts
/// `[]` and each step is `predicate ? accu + [x] : accu`. Any other
/// comprehension is left to CEL.
fn compile_macro(c: &ComprehensionExpr, env: Env<'_>) -> Option<Node> {
    if c.iter_var2.is_some() {
        return None;
    }
    let accu = |e: &IdedExpr| matches!(&e.expr, Ast::Ident(n) if *n == c.accu_var);
    if !accu(&c.result) {
        return None;
    }
    let mut bound = env.bound.to_vec();
    bound.push(c.iter_var.as_str());
    let inner = Env {
        bound: &bound,
        ..env
    };
    let range = Box::new(compile_in(&c.iter_range, env)?);
    let Ast::Call(step) = &c.loop_step.expr else {
        return None;
    };
    match (
        &c.accu_init.expr,
        step.func_name.as_str(),
        step.args.as_slice(),
    ) {
        (Ast::Literal(LiteralValue::Boolean(b)), operators::LOGICAL_OR, [acc, predicate])
            if !*b.inner() && accu(acc) =>
        {
            Some(Node::Exists(range, Box::new(compile_in(predicate, inner)?)))
        }
        (Ast::List(init), operators::CONDITIONAL, [predicate, add, otherwise])
            if init.elements.is_empty() && accu(otherwise) && appends_iter_var(add, c) =>
        {
            Some(Node::Filter(range, Box::new(compile_in(predicate, inner)?)))
        }
        _ => None,
    }
}

/// Whether `e` is `accu + [iter_var]`.
fn appends_iter_var(e: &IdedExpr, c: &ComprehensionExpr) -> bool {
    let Ast::Call(call) = &e.expr else {
        return false;
    };
    match (call.func_name.as_str(), call.args.as_slice()) {
        (operators::ADD, [acc, list]) => {
            matches!(&acc.expr, Ast::Ident(n) if *n == c.accu_var)
                && matches!(&list.expr, Ast::List(l)
                    if matches!(l.elements.as_slice(), [only] if matches!(&only.expr, Ast::Ident(n) if *n == c.iter_var)))
        }
        _ => false,
    }
}

fn literal(lit: &LiteralValue) -> Option<Lit> {
    Some(match lit {
        LiteralValue::Null => Lit::Null,
        LiteralValue::Boolean(b) => Lit::Bool(*b.inner()),
        LiteralValue::Int(i) => Lit::Int(*i.inner()),
        LiteralValue::UInt(u) => Lit::UInt(*u.inner()),
        LiteralValue::Double(d) => Lit::Double(*d.inner()),
        LiteralValue::String(s) => Lit::Str(s.inner().to_string()),
        LiteralValue::Bytes(_) => return None,
    })
}

fn compile_call(
    name: &str,
    target: Option<&IdedExpr>,
    args: &[IdedExpr],
    env: Env<'_>,
) -> Option<Node> {
    let compile = |ast: &IdedExpr| compile_in(ast, env);
    let arg = |i: usize| compile(&args[i]).map(Box::new);
    Some(match (name, target, args.len()) {
        (operators::CONDITIONAL, None, 3) => Node::Cond(arg(0)?, arg(1)?, arg(2)?),
        (operators::LOGICAL_AND, None, 2) => Node::And(arg(0)?, arg(1)?),
        (operators::LOGICAL_OR, None, 2) => Node::Or(arg(0)?, arg(1)?),
        (operators::LOGICAL_NOT, None, 1) => Node::Not(arg(0)?),
        (operators::EQUALS, None, 2) => Node::Eq(arg(0)?, arg(1)?),
        (operators::NOT_EQUALS, None, 2) => Node::Ne(arg(0)?, arg(1)?),
        (operators::IN, None, 2) => {
            let Ast::List(list) = &args[1].expr else {
                return None;
            };
            let strings = list
                .elements
                .iter()
                .map(|e| match &e.expr {
                    Ast::Literal(LiteralValue::String(s)) => Some(s.inner().to_string()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()?;
            if !list.optional_indices.is_empty() {
                return None;
            }
            Node::InStrings(arg(0)?, strings)
        }
        (operators::INDEX, None, 2) => match &args[1].expr {
            Ast::Literal(LiteralValue::Int(i)) if *i.inner() >= 0 => {
                Node::Index(arg(0)?, *i.inner())
            }
            _ => return None,
        },
        ("startsWith", Some(target), 1) => Node::StartsWith(Box::new(compile(target)?), arg(0)?),
        ("double", None, 1) => Node::Double(arg(0)?),
        ("int", None, 1) => Node::Int(arg(0)?),
        (op, None, 2) => {
            let op = match op {
                operators::ADD => BinOp::Add,
                operators::SUBSTRACT => BinOp::Sub,
                operators::MULTIPLY => BinOp::Mul,
                operators::DIVIDE => BinOp::Div,
                operators::LESS => BinOp::Lt,
                operators::LESS_EQUALS => BinOp::Le,
                operators::GREATER => BinOp::Gt,
                operators::GREATER_EQUALS => BinOp::Ge,
                _ => return None,
            };
            Node::Binary(op, arg(0)?, arg(1)?)
        }
        _ => return None,
    })
}

/// A JSON value as CEL sees it (`cel::to_value`): a non-negative integer is
/// a uint, a negative one an int, any other number a double.
fn read(value: &Value) -> V<'_> {
    match value {
        Value::Null => V::Null,
        Value::Bool(b) => V::Bool(*b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                V::UInt(u)
            } else if let Some(i) = n.as_i64() {
                V::Int(i)
            } else {
                V::Double(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => V::Str(Cow::Borrowed(s)),
        Value::Array(_) | Value::Object(_) => V::Json(value),
    }
}

impl Node {
    pub fn eval<'a>(&'a self, vars: &Vars<'a>) -> R<'a> {
        match self {
            Node::Lit(lit) => Ok(match lit {
                Lit::Null => V::Null,
                Lit::Bool(b) => V::Bool(*b),
                Lit::Int(i) => V::Int(*i),
                Lit::UInt(u) => V::UInt(*u),
                Lit::Double(d) => V::Double(*d),
                Lit::Str(s) => V::Str(Cow::Borrowed(s)),
            }),
            Node::Var(var) => match var {
                Var::Value => vars.value.map(read).ok_or(Fail::Error),
                Var::Record => vars.record.map(read).ok_or(Fail::Unsupported),
                Var::Ctx => Ok(read(vars.ctx)),
                Var::Bound(depth) => vars.bound.get(*depth).cloned().ok_or(Fail::Unsupported),
            },
            Node::Select(operand, fields) => {
                let mut value = operand.eval(vars)?;
                for field in fields {
                    value = match value {
                        V::Json(Value::Object(map)) => {
                            map.get(field).map(read).ok_or(Fail::Error)?
                        }
                        _ => return Err(Fail::Unsupported),
                    };
                }
                Ok(value)
            }
            Node::Has(operand, field) => match operand.eval(vars)? {
                V::Json(Value::Object(map)) => Ok(V::Bool(map.contains_key(field))),
                _ => Err(Fail::Unsupported),
            },
            Node::Not(operand) => match operand.eval(vars)? {
                V::Bool(b) => Ok(V::Bool(!b)),
                _ => Err(Fail::Error),
            },
            Node::And(left, right) => logic(left, right, vars, false),
            Node::Or(left, right) => logic(left, right, vars, true),
            Node::Cond(cond, then, otherwise) => match cond.eval(vars)? {
                V::Bool(true) => then.eval(vars),
                V::Bool(false) => otherwise.eval(vars),
                _ => Err(Fail::Error),
            },
            Node::Eq(left, right) => equal(&left.eval(vars)?, &right.eval(vars)?).map(V::Bool),
            Node::Ne(left, right) => {
                equal(&left.eval(vars)?, &right.eval(vars)?).map(|eq| V::Bool(!eq))
            }
            Node::InStrings(operand, list) => match operand.eval(vars)? {
                V::Str(s) => Ok(V::Bool(list.iter().any(|item| *item == *s))),
                _ => Err(Fail::Unsupported),
            },
            Node::Binary(op, left, right) => binary(*op, left.eval(vars)?, right.eval(vars)?),
            Node::StartsWith(target, prefix) => match (target.eval(vars)?, prefix.eval(vars)?) {
                (V::Str(s), V::Str(p)) => Ok(V::Bool(s.starts_with(&*p))),
                _ => Err(Fail::Unsupported),
            },
            Node::List(items) => Ok(V::List(
                items
                    .iter()
                    .map(|n| n.eval(vars))
                    .collect::<Result<_, _>>()?,
            )),
            Node::Index(list, at) => {
                let at = usize::try_from(*at).map_err(|_| Fail::Unsupported)?;
                match list.eval(vars)? {
                    V::Json(Value::Array(items)) => {
                        items.get(at).map(read).ok_or(Fail::Unsupported)
                    }
                    V::List(mut items) if at < items.len() => Ok(items.swap_remove(at)),
                    _ => Err(Fail::Unsupported),
                }
            }
            Node::Double(operand) => match operand.eval(vars)? {
                V::Double(d) => Ok(V::Double(d)),
                V::Int(i) => Ok(V::Double(i as f64)),
                V::UInt(u) => Ok(V::Double(u as f64)),
                _ => Err(Fail::Unsupported),
            },
            Node::Int(operand) => match operand.eval(vars)? {
                V::Int(i) => Ok(V::Int(i)),
                // Well inside i64's range, where truncation is all there is.
                V::Double(d) if d.is_finite() && d.abs() < 9.0e18 => Ok(V::Int(d.trunc() as i64)),
                _ => Err(Fail::Unsupported),
            },
            Node::Exists(range, predicate) => {
                let items = items(range.eval(vars)?)?;
                // One binding per macro, its variable set to each item in turn.
                let mut inner = vars.binding(V::Null);
                for item in items {
                    *inner.innermost() = item;
                    match predicate.eval(&inner) {
                        Ok(V::Bool(true)) => return Ok(V::Bool(true)),
                        Ok(V::Bool(false)) => {}
                        // CEL forgives an error when a later item holds: let it decide.
                        _ => return Err(Fail::Unsupported),
                    }
                }
                Ok(V::Bool(false))
            }
            Node::Filter(range, predicate) => {
                let items = items(range.eval(vars)?)?;
                let mut inner = vars.binding(V::Null);
                let mut kept = Vec::new();
                for item in items {
                    *inner.innermost() = item;
                    match predicate.eval(&inner) {
                        Ok(V::Bool(true)) => {
                            kept.push(std::mem::replace(inner.innermost(), V::Null))
                        }
                        Ok(V::Bool(false)) => {}
                        _ => return Err(Fail::Unsupported),
                    }
                }
                Ok(V::List(kept))
            }
        }
    }
}

/// The items a macro iterates over: a list's. A map's keys are left to CEL.
fn items(range: V<'_>) -> Result<Items<'_>, Fail> {
    match range {
        V::Json(Value::Array(items)) => Ok(Items::Json(items.iter())),
        V::List(items) => Ok(Items::List(items.into_iter())),
        _ => Err(Fail::Unsupported),
    }
}

/// A list's items, read in place from JSON or taken from a computed list
/// (not collected first: a macro runs per record, often several times).
enum Items<'a> {
    Json(std::slice::Iter<'a, Value>),
    List(std::vec::IntoIter<V<'a>>),
}

impl<'a> Iterator for Items<'a> {
    type Item = V<'a>;

    fn next(&mut self) -> Option<V<'a>> {
        match self {
            Items::Json(items) => items.next().map(read),
            Items::List(items) => items.next(),
        }
    }
}

/// `&&` (`or` false) and `||` (`or` true) as CEL evaluates them: the left
/// side decides alone when it is the absorbing value; otherwise an error on
/// the left is forgiven only when the right side is the absorbing value.
fn logic<'a>(left: &'a Node, right: &'a Node, vars: &Vars<'a>, or: bool) -> R<'a> {
    let left = match left.eval(vars) {
        Ok(V::Bool(b)) => Ok(b),
        Err(Fail::Unsupported) => return Err(Fail::Unsupported),
        _ => Err(()),
    };
    if left == Ok(or) {
        return Ok(V::Bool(or));
    }
    match (left, right.eval(vars)?) {
        (Ok(_), V::Bool(r)) => Ok(V::Bool(r)),
        (Err(()), V::Bool(r)) if r == or => Ok(V::Bool(or)),
        _ => Err(Fail::Error),
    }
}

/// Equality of two values of the same kind; values of different kinds are
/// left to CEL.
fn equal(left: &V<'_>, right: &V<'_>) -> Result<bool, Fail> {
    Ok(match (left, right) {
        (V::Null, V::Null) => true,
        (V::Bool(a), V::Bool(b)) => a == b,
        (V::Str(a), V::Str(b)) => a == b,
        (V::Int(a), V::Int(b)) => a == b,
        (V::UInt(a), V::UInt(b)) => a == b,
        _ => return Err(Fail::Unsupported),
    })
}

fn binary<'a>(op: BinOp, left: V<'a>, right: V<'a>) -> R<'a> {
    use std::cmp::Ordering;
    let order = match (&left, &right) {
        (V::Double(a), V::Double(b)) => a.partial_cmp(b),
        (V::Int(a), V::Int(b)) => Some(a.cmp(b)),
        (V::UInt(a), V::UInt(b)) => Some(a.cmp(b)),
        _ => None,
    };
    match (op, left, right) {
        (BinOp::Add, V::Str(a), V::Str(b)) => Ok(V::Str(Cow::Owned(format!("{a}{b}")))),
        (BinOp::Add, V::Double(a), V::Double(b)) => Ok(V::Double(a + b)),
        (BinOp::Sub, V::Double(a), V::Double(b)) => Ok(V::Double(a - b)),
        (BinOp::Mul, V::Double(a), V::Double(b)) => Ok(V::Double(a * b)),
        (BinOp::Div, V::Double(a), V::Double(b)) if b != 0.0 => Ok(V::Double(a / b)),
        (BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge, _, _) => {
            let Some(order) = order else {
                return Err(Fail::Unsupported);
            };
            Ok(V::Bool(match op {
                BinOp::Lt => order == Ordering::Less,
                BinOp::Le => order != Ordering::Greater,
                BinOp::Gt => order == Ordering::Greater,
                _ => order != Ordering::Less,
            }))
        }
        _ => Err(Fail::Unsupported),
    }
}

impl V<'_> {
    /// The JSON CEL's `json()` gives for the same value.
    pub fn into_json(self) -> Value {
        match self {
            V::Null => Value::Null,
            V::Bool(b) => Value::Bool(b),
            V::Int(i) => Value::from(i),
            V::UInt(u) => Value::from(u),
            V::Double(d) => Value::from(d),
            V::Str(s) => Value::String(s.into_owned()),
            V::Json(v) => v.clone(),
            V::List(items) => Value::Array(items.into_iter().map(V::into_json).collect()),
        }
    }

    pub fn is_true(&self) -> bool {
        matches!(self, V::Bool(true))
    }
}
