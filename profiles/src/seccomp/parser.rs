//! Policy files: one rule, definition or comment per line.
//!
//! ```text
//! # comment
//! NAME = expr                      constant, or macro when it mentions arguments
//! f(x, y) = x == y                 macro with parameters
//! DEFAULT_POSITIVE = trace         file-wide default actions (also _NEGATIVE, _POLICY)
//! read: 1                          rule: the condition is an expression
//! read[+log, -EPERM]: arg0 == 3    rule with its own positive and negative actions
//! read: return EPERM               the call fails with this errno
//! read: arg0 == 3; return EACCES   when the condition is false, fail with this errno
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::consts;
use super::error::{ErrorKind, PolicyError};
use super::expr_parser::{Def, Defs, ExprError, ExprParser};
use super::ir::{Action, Expr, Policy, Rule, RuleAction, Span};
use super::lexer::{tokenize, Tok, Token};
use super::names;

/// Policy files larger than this are rejected before reading them whole.
pub const MAX_POLICY_BYTES: u64 = 1 << 20;

/// Prefix of an `extradefs` entry that carries definitions inline instead of naming a file.
pub const INLINE_PREFIX: &str = "{inline}";

/// Parses policy text. `origin` names the text in errors and in [`Policy::origin`].
pub fn parse_policy(text: &str, origin: &Path) -> Result<Policy, PolicyError> {
    let mut state = ParseState::new(origin);
    state.parse_text(text, origin)?;
    Ok(state.policy)
}

/// Reads and parses a policy file, after the `extradefs`: each either a file path or inline text
/// prefixed with `{inline}`. Their definitions (and rules, if any) come before the file's.
pub fn load_policy_file(path: impl AsRef<Path>, extradefs: &[String]) -> Result<Policy, PolicyError> {
    let path = path.as_ref();
    let mut state = ParseState::new(path);
    for extra in extradefs {
        match extra.strip_prefix(INLINE_PREFIX) {
            Some(inline) => state.parse_text(inline, Path::new("<inline extradefs>"))?,
            None => {
                let extra_path = PathBuf::from(extra);
                let text = read_policy(&extra_path)?;
                state.parse_text(&text, &extra_path)?;
            }
        }
    }
    let text = read_policy(path)?;
    state.parse_text(&text, path)?;
    Ok(state.policy)
}

/// Reads a policy file with a size cap, as UTF-8.
pub fn read_policy(path: &Path) -> Result<String, PolicyError> {
    use std::io::Read;
    let file_err = |kind| PolicyError::new(path, 0, 0, kind);
    let file = std::fs::File::open(path).map_err(|e| file_err(ErrorKind::Read(e.to_string())))?;
    let mut bytes = Vec::new();
    file.take(MAX_POLICY_BYTES + 1).read_to_end(&mut bytes).map_err(|e| file_err(ErrorKind::Read(e.to_string())))?;
    if bytes.len() as u64 > MAX_POLICY_BYTES {
        return Err(file_err(ErrorKind::TooLarge(bytes.len() as u64, MAX_POLICY_BYTES)));
    }
    String::from_utf8(bytes).map_err(|_| file_err(ErrorKind::NotUtf8))
}

struct ParseState {
    policy: Policy,
    defs: Defs,
    /// The file being parsed when it is not the policy's own (an `extradefs` file).
    extra: Option<PathBuf>,
}

impl ParseState {
    fn new(origin: &Path) -> Self {
        let policy = Policy { origin: origin.to_path_buf(), ..Policy::default() };
        ParseState { policy, defs: HashMap::new(), extra: None }
    }

    fn parse_text(&mut self, text: &str, origin: &Path) -> Result<(), PolicyError> {
        self.extra = (origin != self.policy.origin).then(|| origin.to_path_buf());
        for (idx, line) in text.lines().enumerate() {
            let lineno = idx as u32 + 1;
            self.parse_line(line, lineno).map_err(|(line, col, kind)| PolicyError::new(origin, line, col, kind))?;
        }
        Ok(())
    }

    fn parse_line(&mut self, line: &str, lineno: u32) -> Result<(), ExprError> {
        let toks = tokenize(line).map_err(|(col, kind)| (lineno, col, kind))?;
        let end_col = line.trim_end().chars().count() as u32 + 1;
        let Some(first) = toks.first() else {
            return Ok(());
        };
        let Tok::Ident(name) = &first.tok else {
            return Err((lineno, first.col, ErrorKind::NotARuleOrDefinition));
        };
        match toks.get(1).map(|t| &t.tok) {
            Some(Tok::Assign) => self.definition(name, &toks[2..], lineno, end_col),
            Some(Tok::LParen) => self.macro_definition(name, &toks, lineno),
            Some(Tok::Colon) | Some(Tok::LBrack) => {
                let rule = self.rule(name, first.col, &toks[1..], lineno, end_col)?;
                self.policy.rules.push(rule);
                Ok(())
            }
            Some(_) => Err((lineno, toks[1].col, ErrorKind::NotARuleOrDefinition)),
            None => Err((lineno, end_col, ErrorKind::UnexpectedEnd("':' or '='"))),
        }
    }

    fn definition(&mut self, name: &str, body: &[Token], lineno: u32, end_col: u32) -> Result<(), ExprError> {
        let slot = match name {
            "DEFAULT_POSITIVE" => Some(&mut self.policy.defaults.positive),
            "DEFAULT_NEGATIVE" => Some(&mut self.policy.defaults.negative),
            "DEFAULT_POLICY" => Some(&mut self.policy.defaults.policy),
            _ => None,
        };
        if let Some(slot) = slot {
            let (action, used) = action_value(body, lineno, end_col, true)?;
            expect_consumed(body, used, lineno)?;
            *slot = Some(action);
            return Ok(());
        }
        if body.is_empty() {
            return Err((lineno, end_col, ErrorKind::UnexpectedEnd("an expression")));
        }
        if let Some(Def::Macro { line, .. }) = self.defs.get(name) {
            let kind = ErrorKind::MacroRedefined(name.to_string(), *line);
            return Err((lineno, 1, kind));
        }
        let scope = HashMap::new();
        let mut p = ExprParser::new(body, lineno, end_col, &self.defs, &scope);
        let value = p.expr()?;
        p.expect_end("end of line")?;
        self.defs.insert(name.to_string(), Def::Value { node: value, line: lineno });
        Ok(())
    }

    /// `name(p1, p2) = body`: the body is kept as tokens and parsed at each use.
    /// A macro's name must be new and its body may only use names known now, so macros
    /// cannot recurse.
    fn macro_definition(&mut self, name: &str, toks: &[Token], lineno: u32) -> Result<(), ExprError> {
        if let Some(previous) = self.defs.get(name) {
            let line = match previous {
                Def::Macro { line, .. } => *line,
                Def::Value { line, .. } => *line,
            };
            return Err((lineno, toks[0].col, ErrorKind::MacroRedefined(name.to_string(), line)));
        }
        let mut params = Vec::new();
        let mut i = 2;
        loop {
            match toks.get(i).map(|t| &t.tok) {
                Some(Tok::Ident(p)) if params.is_empty() || toks[i - 1].tok == Tok::Comma => {
                    params.push(p.clone());
                }
                Some(Tok::Comma) if !params.is_empty() && toks[i - 1].tok != Tok::Comma => {}
                Some(Tok::RParen) if toks[i - 1].tok != Tok::Comma => break,
                Some(t) => {
                    let found = t.describe();
                    let kind = ErrorKind::UnexpectedToken { found, expected: "a parameter name" };
                    return Err((lineno, toks[i].col, kind));
                }
                None => return Err((lineno, toks[1].col, ErrorKind::UnclosedParen)),
            }
            i += 1;
        }
        match toks.get(i + 1) {
            Some(t) if t.tok == Tok::Assign => {}
            Some(t) => {
                let kind = ErrorKind::UnexpectedToken { found: t.tok.describe(), expected: "'='" };
                return Err((lineno, t.col, kind));
            }
            None => return Err((lineno, toks[i].col + 1, ErrorKind::UnexpectedEnd("'='"))),
        }
        let body = toks[i + 2..].to_vec();
        self.check_macro_names(&body, &params, lineno)?;
        if body.is_empty() {
            return Err((lineno, toks[i + 1].col + 1, ErrorKind::UnexpectedEnd("an expression")));
        }
        self.defs.insert(name.to_string(), Def::Macro { params, body, line: lineno });
        Ok(())
    }

    /// Every name in a macro body must be a parameter, an earlier definition, a built-in constant
    /// or a keyword.
    fn check_macro_names(&self, body: &[Token], params: &[String], line: u32) -> Result<(), ExprError> {
        for t in body {
            let Tok::Ident(word) = &t.tok else { continue };
            let lower = word.to_ascii_lowercase();
            let known = params.contains(word)
                || self.defs.contains_key(word)
                || consts::constant(word).is_some()
                || matches!(lower.as_str(), "true" | "false" | "in" | "notin");
            if !known {
                return Err((line, t.col, ErrorKind::UnknownConstant(word.clone())));
            }
        }
        Ok(())
    }

    /// `[actions] : body` after the syscall name.
    fn rule(&self, name: &str, name_col: u32, toks: &[Token], lineno: u32, end_col: u32) -> Result<Rule, ExprError> {
        if !names::is_known(name) {
            return Err((lineno, name_col, ErrorKind::UnknownSyscall(name.to_string())));
        }
        let (mut action, mut i) =
            if toks[0].tok == Tok::LBrack { rule_actions(toks, lineno, end_col)? } else { (RuleAction::default(), 0) };
        match toks.get(i) {
            Some(t) if t.tok == Tok::Colon => i += 1,
            Some(t) => {
                let kind = ErrorKind::UnexpectedToken { found: t.tok.describe(), expected: "':'" };
                return Err((lineno, t.col, kind));
            }
            None => return Err((lineno, end_col, ErrorKind::UnexpectedEnd("':'"))),
        }
        let body = &toks[i..];
        let condition = self.rule_body(body, &mut action, lineno, end_col)?;
        let span = Span { line: lineno, col: name_col };
        Ok(Rule { syscall: name.to_string(), action, condition, span, origin: self.extra.clone() })
    }

    fn rule_body(&self, body: &[Token], action: &mut RuleAction, lineno: u32, end_col: u32) -> Result<Expr, ExprError> {
        if let Some(rest) = strip_return(body) {
            let (errno, used) = action_value(rest, lineno, end_col, false)?;
            expect_consumed(rest, used, lineno)?;
            set_action(&mut action.positive, errno, "positive", lineno, body[0].col)?;
            return Ok(Expr::Bool(true));
        }
        if body.is_empty() {
            return Err((lineno, end_col, ErrorKind::UnexpectedEnd("a condition")));
        }
        let scope = HashMap::new();
        let mut p = ExprParser::new(body, lineno, end_col, &self.defs, &scope);
        let condition = p.expr()?.expr;
        let used = p.position();
        if let Some(semi) = body.get(used).filter(|t| t.tok == Tok::Semi) {
            let Some(rest) = strip_return(&body[used + 1..]) else {
                return Err(match body.get(used + 1) {
                    Some(t) => {
                        let found = t.tok.describe();
                        (lineno, t.col, ErrorKind::UnexpectedToken { found, expected: "'return'" })
                    }
                    None => (lineno, semi.col + 1, ErrorKind::UnexpectedEnd("'return'")),
                });
            };
            let (errno, n) = action_value(rest, lineno, end_col, false)?;
            expect_consumed(rest, n, lineno)?;
            set_action(&mut action.negative, errno, "negative", lineno, semi.col)?;
            return Ok(condition);
        }
        p.expect_end("an operator or end of line")?;
        Ok(condition)
    }
}

/// The tokens after a leading `return`, if the body starts with it.
fn strip_return(toks: &[Token]) -> Option<&[Token]> {
    match toks.first().map(|t| &t.tok) {
        Some(Tok::Ident(w)) if w == "return" => Some(&toks[1..]),
        _ => None,
    }
}

fn set_action(
    slot: &mut Option<Action>,
    action: Action,
    which: &'static str,
    line: u32,
    col: u32,
) -> Result<(), ExprError> {
    if slot.is_some() {
        return Err((line, col, ErrorKind::DuplicateAction(which)));
    }
    *slot = Some(action);
    Ok(())
}

fn expect_consumed(toks: &[Token], used: usize, line: u32) -> Result<(), ExprError> {
    match toks.get(used) {
        None => Ok(()),
        Some(t) => {
            let found = t.tok.describe();
            Err((line, t.col, ErrorKind::UnexpectedToken { found, expected: "end of line" }))
        }
    }
}

/// `[+action, -action]`; returns the actions and the index after `]`.
fn rule_actions(toks: &[Token], line: u32, end_col: u32) -> Result<(RuleAction, usize), ExprError> {
    let mut action = RuleAction::default();
    let mut i = 1;
    loop {
        let Some(t) = toks.get(i) else {
            return Err((line, toks[0].col, ErrorKind::UnexpectedEnd("']'")));
        };
        let (slot, which) = match t.tok {
            Tok::RBrack => return Ok((action, i + 1)),
            Tok::Comma if i > 1 => {
                i += 1;
                continue;
            }
            Tok::Plus => (&mut action.positive, "positive"),
            Tok::Minus => (&mut action.negative, "negative"),
            _ => {
                let found = t.tok.describe();
                let kind = ErrorKind::UnexpectedToken { found, expected: "'+action' or '-action'" };
                return Err((line, t.col, kind));
            }
        };
        let (value, used) = action_value(&toks[i + 1..], line, end_col, true)?;
        set_action(slot, value, which, line, t.col)?;
        i += 1 + used;
    }
}

/// An action: `allow`, `kill`, `trap`, `trace`, `log` (when `named` is allowed), an errno name
/// or an errno number. Returns it and the number of tokens used.
fn action_value(toks: &[Token], line: u32, end_col: u32, named: bool) -> Result<(Action, usize), ExprError> {
    let Some(t) = toks.first() else {
        return Err((line, end_col, ErrorKind::UnexpectedEnd("an action")));
    };
    let action = match &t.tok {
        Tok::Int(n) if *n <= 4095 => Action::Errno(*n as u16),
        Tok::Int(n) => return Err((line, t.col, ErrorKind::ErrnoOutOfRange(*n))),
        Tok::Ident(word) => match (named, word.to_ascii_lowercase().as_str()) {
            (true, "allow") => Action::Allow,
            (true, "kill") => Action::Kill,
            (true, "trap") => Action::Trap,
            (true, "trace") => Action::Trace,
            (true, "log") => Action::Log,
            _ => consts::errno(word).map(Action::Errno).ok_or((line, t.col, ErrorKind::UnknownAction(word.clone())))?,
        },
        other => {
            let kind = ErrorKind::UnexpectedToken { found: other.describe(), expected: "an action" };
            return Err((line, t.col, kind));
        }
    };
    Ok((action, 1))
}

#[cfg(test)]
mod tests;
