//! Expressions: a recursive-descent parser with gosecco's precedence, folding constants as it goes.
//!
//! Precedence, loosest first (gosecco's documented order; binary operators associate left):
//! `||`, `&&`, `== !=`, `< <= > >= &?`, `|`, `^`, `&`, `<< >>`, `+ -`, `* / %`,
//! unary `! ~`, primary (literal, `argN`, name, `name(args)`, `in(...)`, `notIn(...)`, `( expr )`).
//! Unlike C, the bitwise operators bind tighter than comparisons, so
//! `arg1 == SOCK_DGRAM|SOCK_NONBLOCK` compares arg1 with the or of both flags.

use std::collections::HashMap;

use super::consts;
use super::error::ErrorKind;
use super::ir::{BinOp, CmpOp, Expr, UnaryOp};
use super::lexer::{Tok, Token};

/// Deepest nesting of parentheses, unary operators and macro calls the parser recurses into.
pub const MAX_DEPTH: usize = 64;
/// Deepest expression tree accepted (`||`/`&&` chains are balanced, so they count log2).
pub const MAX_TREE_DEPTH: usize = 200;
/// Most nodes one expression may have after macro expansion.
pub const MAX_NODES: usize = 100_000;

/// Depth and size of a parsed expression, tracked so that nothing downstream (lowering,
/// dropping) recurses or allocates without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub depth: usize,
    pub size: usize,
}

impl Meta {
    const LEAF: Meta = Meta { depth: 1, size: 1 };
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub expr: Expr,
    pub meta: Meta,
}

impl Node {
    fn leaf(expr: Expr) -> Node {
        Node { expr, meta: Meta::LEAF }
    }
}

/// A `NAME = expr` or `NAME(params) = expr` definition.
#[derive(Debug, Clone)]
pub enum Def {
    Value { node: Node, line: u32 },
    Macro { params: Vec<String>, body: Vec<Token>, line: u32 },
}

pub type Defs = HashMap<String, Def>;

/// Where a parse error happened: line and column, plus what.
pub type ExprError = (u32, u32, ErrorKind);

pub struct ExprParser<'a> {
    toks: &'a [Token],
    pos: usize,
    line: u32,
    /// Column reported for "unexpected end of line".
    end_col: u32,
    defs: &'a Defs,
    scope: &'a HashMap<String, Node>,
    depth: usize,
}

impl<'a> ExprParser<'a> {
    pub fn new(toks: &'a [Token], line: u32, end_col: u32, defs: &'a Defs, scope: &'a HashMap<String, Node>) -> Self {
        ExprParser { toks, pos: 0, line, end_col, defs, scope, depth: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn peek(&self) -> Option<&'a Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }

    /// Parses a full expression starting at the current token.
    pub fn expr(&mut self) -> Result<Node, ExprError> {
        self.or_expr()
    }

    /// Errors unless every token was consumed.
    pub fn expect_end(&self, expected: &'static str) -> Result<(), ExprError> {
        match self.toks.get(self.pos) {
            None => Ok(()),
            Some(t) if t.tok == Tok::RParen => Err((self.line, t.col, ErrorKind::UnopenedParen)),
            Some(t) => Err(self.unexpected(t, expected)),
        }
    }

    fn unexpected(&self, t: &Token, expected: &'static str) -> ExprError {
        (self.line, t.col, ErrorKind::UnexpectedToken { found: t.tok.describe(), expected })
    }

    fn err_here(&self, expected: &'static str) -> ExprError {
        match self.toks.get(self.pos) {
            Some(t) => self.unexpected(t, expected),
            None => (self.line, self.end_col, ErrorKind::UnexpectedEnd(expected)),
        }
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == Some(tok) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn col(&self) -> u32 {
        self.toks.get(self.pos).map(|t| t.col).unwrap_or(self.end_col)
    }

    /// Builds a node from its children, enforcing the depth and size limits at column `col`.
    fn node(&self, col: u32, expr: Expr, parts: &[Meta]) -> Result<Node, ExprError> {
        if matches!(expr, Expr::Num(_) | Expr::Bool(_)) {
            return Ok(Node { expr, meta: Meta::LEAF });
        }
        let depth = 1 + parts.iter().map(|m| m.depth).max().unwrap_or(0);
        let size = parts.iter().fold(1usize, |acc, m| acc.saturating_add(m.size));
        if depth > MAX_TREE_DEPTH {
            return Err((self.line, col, ErrorKind::TooDeep(MAX_TREE_DEPTH)));
        }
        if size > MAX_NODES {
            return Err((self.line, col, ErrorKind::ExprTooLarge(MAX_NODES)));
        }
        Ok(Node { expr, meta: Meta { depth, size } })
    }

    fn or_expr(&mut self) -> Result<Node, ExprError> {
        let col = self.col();
        let mut operands = vec![self.and_expr()?];
        while self.eat(&Tok::OrOr) {
            operands.push(self.and_expr()?);
        }
        self.chain(col, operands, true)
    }

    fn and_expr(&mut self) -> Result<Node, ExprError> {
        let col = self.col();
        let mut operands = vec![self.equality()?];
        while self.eat(&Tok::AndAnd) {
            operands.push(self.equality()?);
        }
        self.chain(col, operands, false)
    }

    /// `a || b || c` (or `&&`) as a balanced tree: `||` and `&&` are associative, and a
    /// balanced tree keeps a long generated whitelist line shallow.
    fn chain(&self, col: u32, operands: Vec<Node>, is_or: bool) -> Result<Node, ExprError> {
        let mut operands = operands;
        if operands.len() == 1 {
            return Ok(operands.remove(0));
        }
        let (a, b) = {
            let right = operands.split_off(operands.len() / 2);
            (self.chain(col, operands, is_or)?, self.chain(col, right, is_or)?)
        };
        let metas = [a.meta, b.meta];
        let e = if is_or { fold_or(a.expr, b.expr) } else { fold_and(a.expr, b.expr) };
        self.node(col, e, &metas)
    }

    fn equality(&mut self) -> Result<Node, ExprError> {
        let mut left = self.relational()?;
        loop {
            let op = match self.peek() {
                Some(Tok::EqEq) => CmpOp::Eq,
                Some(Tok::Ne) => CmpOp::Ne,
                _ => return Ok(left),
            };
            let col = self.col();
            self.pos += 1;
            let right = self.relational()?;
            let metas = [left.meta, right.meta];
            let e = fold_compare(op, left.expr, right.expr);
            left = self.node(col, e, &metas)?;
        }
    }

    fn relational(&mut self) -> Result<Node, ExprError> {
        let mut left = self.binary(0)?;
        loop {
            let op = match self.peek() {
                Some(Tok::Lt) => Some(CmpOp::Lt),
                Some(Tok::Le) => Some(CmpOp::Le),
                Some(Tok::Gt) => Some(CmpOp::Gt),
                Some(Tok::Ge) => Some(CmpOp::Ge),
                Some(Tok::AmpQ) => None,
                _ => return Ok(left),
            };
            let col = self.col();
            self.pos += 1;
            let right = self.binary(0)?;
            let metas = [left.meta, right.meta];
            let e = match op {
                Some(op) => fold_compare(op, left.expr, right.expr),
                None => fold_bit_test(left.expr, right.expr),
            };
            left = self.node(col, e, &metas)?;
        }
    }

    /// Arithmetic levels 0 (`|`) to 5 (`* / %`), left-associative.
    fn binary(&mut self, level: usize) -> Result<Node, ExprError> {
        if level == ARITH_LEVELS.len() {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        loop {
            let Some(op) = self.peek().and_then(|t| arith_op(level, t)) else {
                return Ok(left);
            };
            let col = self.col();
            self.pos += 1;
            let right = self.binary(level + 1)?;
            let metas = [left.meta, right.meta];
            let e = fold_binary(op, left.expr, right.expr).map_err(|kind| (self.line, col, kind))?;
            left = self.node(col, e, &metas)?;
        }
    }

    fn unary(&mut self) -> Result<Node, ExprError> {
        let op = match self.peek() {
            Some(Tok::Bang) => UnaryOp::Not,
            Some(Tok::Tilde) => UnaryOp::BitNot,
            _ => return self.primary(),
        };
        let col = self.col();
        self.pos += 1;
        self.enter()?;
        let operand = self.unary()?;
        self.depth -= 1;
        let meta = operand.meta;
        self.node(col, fold_unary(op, operand.expr), &[meta])
    }

    /// Guards the parser's own recursion (parentheses, unary operators, macro calls).
    fn enter(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err((self.line, self.col(), ErrorKind::TooDeep(MAX_DEPTH)));
        }
        Ok(())
    }

    fn primary(&mut self) -> Result<Node, ExprError> {
        let Some(token) = self.toks.get(self.pos) else {
            return Err(self.err_here("a value"));
        };
        match &token.tok {
            Tok::Int(n) => {
                self.pos += 1;
                Ok(Node::leaf(Expr::Num(*n)))
            }
            Tok::Arg(a) => {
                self.pos += 1;
                Ok(Node::leaf(Expr::Arg(*a)))
            }
            Tok::LParen => {
                self.pos += 1;
                self.enter()?;
                let inner = self.expr()?;
                self.depth -= 1;
                match self.toks.get(self.pos) {
                    Some(t) if t.tok == Tok::RParen => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    Some(t) => Err(self.unexpected(t, "')'")),
                    None => Err((self.line, token.col, ErrorKind::UnclosedParen)),
                }
            }
            Tok::RParen => Err((self.line, token.col, ErrorKind::UnopenedParen)),
            Tok::Ident(name) => {
                self.pos += 1;
                self.name(name, token.col)
            }
            _ => Err(self.unexpected(token, "a value")),
        }
    }

    /// A name: macro parameter, definition, macro call, `in`/`notIn`, `true`/`false`, constant.
    fn name(&mut self, name: &str, col: u32) -> Result<Node, ExprError> {
        let lower = name.to_ascii_lowercase();
        if self.peek() == Some(&Tok::LParen) {
            if lower == "in" || lower == "notin" {
                return self.inclusion(lower == "notin", col);
            }
            return self.call(name, col);
        }
        if let Some(e) = self.scope.get(name) {
            return Ok(e.clone());
        }
        match self.defs.get(name) {
            Some(Def::Value { node, .. }) => return Ok(node.clone()),
            Some(Def::Macro { .. }) => return Err((self.line, col, ErrorKind::MacroNeedsArguments(name.to_string()))),
            None => {}
        }
        match lower.as_str() {
            "true" => return Ok(Node::leaf(Expr::Bool(true))),
            "false" => return Ok(Node::leaf(Expr::Bool(false))),
            _ => {}
        }
        consts::constant(name).map(|n| Node::leaf(Expr::Num(n))).ok_or((
            self.line,
            col,
            ErrorKind::UnknownConstant(name.to_string()),
        ))
    }

    /// `( expr, expr, ... )` after a name.
    fn arguments(&mut self) -> Result<Vec<Node>, ExprError> {
        let open_col = self.col();
        self.pos += 1; // '('
        let mut args = Vec::new();
        if self.eat(&Tok::RParen) {
            return Ok(args);
        }
        loop {
            args.push(self.expr()?);
            if self.eat(&Tok::RParen) {
                return Ok(args);
            }
            if !self.eat(&Tok::Comma) {
                return match self.toks.get(self.pos) {
                    None => Err((self.line, open_col, ErrorKind::UnclosedParen)),
                    Some(t) => Err(self.unexpected(t, "',' or ')'")),
                };
            }
        }
    }

    fn inclusion(&mut self, negated: bool, col: u32) -> Result<Node, ExprError> {
        let args = self.arguments()?;
        if args.len() < 2 {
            return Err((self.line, col, ErrorKind::EmptyIn));
        }
        let metas: Vec<Meta> = args.iter().map(|n| n.meta).collect();
        let mut exprs = args.into_iter().map(|n| n.expr);
        let value = Box::new(exprs.next().unwrap_or(Expr::Bool(false)));
        let e = Expr::In { negated, value, set: exprs.collect() };
        self.node(col, e, &metas)
    }

    fn call(&mut self, name: &str, col: u32) -> Result<Node, ExprError> {
        let args = self.arguments()?;
        let Some(Def::Macro { params, body, line }) = self.defs.get(name) else {
            let kind = if self.defs.contains_key(name) {
                ErrorKind::NotAMacro(name.to_string())
            } else {
                ErrorKind::UnknownConstant(name.to_string())
            };
            return Err((self.line, col, kind));
        };
        if params.len() != args.len() {
            let kind = ErrorKind::Arity { name: name.to_string(), expected: params.len(), found: args.len() };
            return Err((self.line, col, kind));
        }
        let scope: HashMap<String, Node> = params.iter().cloned().zip(args).collect();
        let end_col = body.last().map(|t| t.col + 1).unwrap_or(1);
        let mut inner = ExprParser::new(body, *line, end_col, self.defs, &scope);
        inner.depth = self.depth + 1;
        if inner.depth > MAX_DEPTH {
            return Err((self.line, col, ErrorKind::TooDeep(MAX_DEPTH)));
        }
        let e = inner.expr()?;
        inner.expect_end("end of macro body")?;
        Ok(e)
    }
}

const ARITH_LEVELS: [&[(Tok, BinOp)]; 6] = [
    &[(Tok::Pipe, BinOp::Or)],
    &[(Tok::Caret, BinOp::Xor)],
    &[(Tok::Amp, BinOp::And)],
    &[(Tok::Shl, BinOp::Shl), (Tok::Shr, BinOp::Shr)],
    &[(Tok::Plus, BinOp::Add), (Tok::Minus, BinOp::Sub)],
    &[(Tok::Star, BinOp::Mul), (Tok::Slash, BinOp::Div), (Tok::Percent, BinOp::Mod)],
];

fn arith_op(level: usize, tok: &Tok) -> Option<BinOp> {
    ARITH_LEVELS[level].iter().find(|(t, _)| t == tok).map(|(_, op)| *op)
}

/// The truth value of a constant expression, if it is one.
fn truth(e: &Expr) -> Option<bool> {
    match e {
        Expr::Bool(b) => Some(*b),
        Expr::Num(n) => Some(*n != 0),
        _ => None,
    }
}

fn fold_or(l: Expr, r: Expr) -> Expr {
    match (truth(&l), truth(&r)) {
        (Some(true), _) | (_, Some(true)) => Expr::Bool(true),
        (Some(false), _) => r,
        (_, Some(false)) => l,
        _ => Expr::Or(Box::new(l), Box::new(r)),
    }
}

fn fold_and(l: Expr, r: Expr) -> Expr {
    match (truth(&l), truth(&r)) {
        (Some(false), _) | (_, Some(false)) => Expr::Bool(false),
        (Some(true), _) => r,
        (_, Some(true)) => l,
        _ => Expr::And(Box::new(l), Box::new(r)),
    }
}

fn fold_compare(op: CmpOp, l: Expr, r: Expr) -> Expr {
    match (&l, &r) {
        (Expr::Num(a), Expr::Num(b)) => Expr::Bool(op.eval(*a, *b)),
        _ => Expr::Compare(op, Box::new(l), Box::new(r)),
    }
}

fn fold_bit_test(l: Expr, r: Expr) -> Expr {
    match (&l, &r) {
        (Expr::Num(a), Expr::Num(b)) => Expr::Bool(a & b != 0),
        _ => Expr::BitTest(Box::new(l), Box::new(r)),
    }
}

fn fold_unary(op: UnaryOp, e: Expr) -> Expr {
    match (op, &e) {
        (UnaryOp::BitNot, Expr::Num(n)) => Expr::Num(!n),
        (UnaryOp::Not, _) if truth(&e).is_some() => Expr::Bool(!truth(&e).unwrap_or(false)),
        _ => Expr::Unary(op, Box::new(e)),
    }
}

fn fold_binary(op: BinOp, l: Expr, r: Expr) -> Result<Expr, ErrorKind> {
    let (Expr::Num(a), Expr::Num(b)) = (&l, &r) else {
        return Ok(Expr::Binary(op, Box::new(l), Box::new(r)));
    };
    let (a, b) = (*a, *b);
    let v = match op {
        BinOp::Add => a.wrapping_add(b),
        BinOp::Sub => a.wrapping_sub(b),
        BinOp::Mul => a.wrapping_mul(b),
        BinOp::Div => a.checked_div(b).ok_or(ErrorKind::DivisionByZero)?,
        BinOp::Mod => a.checked_rem(b).ok_or(ErrorKind::DivisionByZero)?,
        BinOp::And => a & b,
        BinOp::Or => a | b,
        BinOp::Xor => a ^ b,
        BinOp::Shl => a.checked_shl(shift(b)?).ok_or(ErrorKind::ShiftOutOfRange(b))?,
        BinOp::Shr => a.checked_shr(shift(b)?).ok_or(ErrorKind::ShiftOutOfRange(b))?,
    };
    Ok(Expr::Num(v))
}

fn shift(b: u64) -> Result<u32, ErrorKind> {
    if b < 64 {
        Ok(b as u32)
    } else {
        Err(ErrorKind::ShiftOutOfRange(b))
    }
}
