//! Errors of the policy parser, each tied to a file, line and column.

use std::fmt;
use std::path::PathBuf;

/// A policy file that cannot be read or parsed. Displays as `file:line:col: message`
/// (`file: message` when the problem is the file itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    pub file: PathBuf,
    /// 1-based; 0 when the error concerns the whole file.
    pub line: u32,
    /// 1-based; 0 when the error concerns the whole file.
    pub col: u32,
    pub kind: ErrorKind,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.kind)
        } else {
            write!(f, "{}:{}:{}: {}", self.file.display(), self.line, self.col, self.kind)
        }
    }
}

impl std::error::Error for PolicyError {}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("read: {0}")]
    Read(String),
    #[error("file is not valid UTF-8")]
    NotUtf8,
    #[error("file too large ({0} bytes, limit {1})")]
    TooLarge(u64, u64),
    #[error("invalid character {0:?}")]
    InvalidCharacter(char),
    #[error("invalid number {0:?}")]
    InvalidNumber(String),
    #[error("number {0} does not fit in 64 bits")]
    NumberOverflow(String),
    #[error("unknown syscall {0:?}")]
    UnknownSyscall(String),
    #[error("unknown constant {0:?}")]
    UnknownConstant(String),
    #[error("unexpected {found}, expected {expected}")]
    UnexpectedToken { found: String, expected: &'static str },
    #[error("unexpected end of line, expected {0}")]
    UnexpectedEnd(&'static str),
    #[error("unbalanced parenthesis: '(' is never closed")]
    UnclosedParen,
    #[error("unbalanced parenthesis: ')' without '('")]
    UnopenedParen,
    #[error("line is neither a rule (`name: expr`) nor a definition (`NAME = expr`)")]
    NotARuleOrDefinition,
    #[error("unknown action {0:?} (expected allow, kill, trap, trace, log, an errno name or number)")]
    UnknownAction(String),
    #[error("errno {0} out of range (0..=4095)")]
    ErrnoOutOfRange(u64),
    #[error("{0} action given twice")]
    DuplicateAction(&'static str),
    #[error("macro {name} takes {expected} argument(s), got {found}")]
    Arity { name: String, expected: usize, found: usize },
    #[error("{0} is a macro with parameters and needs arguments: {0}(...)")]
    MacroNeedsArguments(String),
    #[error("{0} is already defined at line {1}; macros cannot be redefined")]
    MacroRedefined(String, u32),
    #[error("{0} is not a macro and cannot be called")]
    NotAMacro(String),
    #[error("division by zero")]
    DivisionByZero,
    #[error("shift by {0} is out of range (0..64)")]
    ShiftOutOfRange(u64),
    #[error("in()/notIn() needs a value and at least one candidate")]
    EmptyIn,
    #[error("expression nests too deeply (limit {0})")]
    TooDeep(usize),
    #[error("expression too large after expanding definitions (limit {0} nodes)")]
    ExprTooLarge(usize),
    #[error("must be owned by root and not writable by group or others (owner uid {uid}, mode {mode:o})")]
    Permissions { uid: u32, mode: u32 },
}

impl PolicyError {
    pub fn new(file: impl Into<PathBuf>, line: u32, col: u32, kind: ErrorKind) -> Self {
        PolicyError { file: file.into(), line, col, kind }
    }
}
