//! A small JSON parser that keeps positions, for diagnostics that name file:line:col.
//!
//! serde_json does not report where a value sits, so profiles and oz.conf are parsed into this
//! span-carrying tree first and decoded by hand (`load.rs`, `config_load.rs`).
//!
//! Beyond RFC 8259 it accepts exactly what the original Oz accepted: a line whose first non-blank
//! character is `#` is a comment (blanked out, so line and column numbers stay true). It guards
//! against hostile input: nesting deeper than [`MAX_DEPTH`] is an error (no recursion blow-up),
//! invalid UTF-8 is reported with its byte offset, and an empty file is an error of its own.
//! Duplicate keys are kept in order (the consumer decides; Go's decoder let the last one win) and
//! reported as warnings.
//!
//! Columns are 1-based byte columns.

use thiserror::Error;

/// Maximum nesting of arrays and objects.
pub const MAX_DEPTH: usize = 128;

/// Where a value or key starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Byte offset from the start of the input.
    pub offset: usize,
    /// 1-based line.
    pub line: u32,
    /// 1-based byte column.
    pub col: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// The number's source text (validated against the JSON grammar).
    Number(String),
    String(String),
    Array(Vec<Node>),
    Object(Vec<Member>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub key: String,
    pub key_pos: Pos,
    pub value: Node,
}

/// A parse result: the tree plus non-fatal findings.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub root: Node,
    pub warnings: Vec<JsonWarning>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonWarning {
    pub pos: Pos,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}:{}: {message}", pos.line, pos.col)]
pub struct JsonError {
    pub pos: Pos,
    pub message: String,
}

impl Value {
    /// A short name of the JSON type, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

/// Blank out comment lines (first non-blank character `#`), keeping every newline and offset.
pub fn strip_comments(input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    let mut start = 0;
    while start < out.len() {
        let end = out[start..].iter().position(|&b| b == b'\n').map_or(out.len(), |i| start + i);
        let first = out[start..end].iter().position(|b| !matches!(b, b' ' | b'\t' | b'\r'));
        if let Some(i) = first {
            if out[start + i] == b'#' {
                out[start..end].iter_mut().for_each(|b| *b = b' ');
            }
        }
        start = end + 1;
    }
    out
}

/// Parse a whole document (after comment stripping).
pub fn parse(input: &[u8]) -> Result<Document, JsonError> {
    let stripped = strip_comments(input);
    let text = match std::str::from_utf8(&stripped) {
        Ok(t) => t,
        Err(e) => {
            let at = e.valid_up_to();
            let pos = position_of(&stripped[..at], at);
            return Err(JsonError { pos, message: format!("invalid utf-8 at byte offset {at}") });
        }
    };
    let mut p = Parser { s: text.as_bytes(), i: 0, line: 1, line_start: 0, warnings: Vec::new() };
    p.skip_ws();
    if p.i == p.s.len() {
        return Err(JsonError { pos: p.pos(), message: "empty file".into() });
    }
    let root = p.value(0)?;
    p.skip_ws();
    if p.i != p.s.len() {
        return Err(p.err("unexpected data after the end of the document"));
    }
    Ok(Document { root, warnings: p.warnings })
}

/// Line and column of `offset`, given the bytes before it.
fn position_of(before: &[u8], offset: usize) -> Pos {
    let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    Pos { offset, line: line as u32, col: (offset - line_start + 1) as u32 }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    line: u32,
    line_start: usize,
    warnings: Vec<JsonWarning>,
}

impl Parser<'_> {
    fn pos(&self) -> Pos {
        Pos { offset: self.i, line: self.line, col: (self.i - self.line_start + 1) as u32 }
    }

    fn err(&self, message: impl Into<String>) -> JsonError {
        JsonError { pos: self.pos(), message: message.into() }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    /// Describe the character at the cursor for an error message.
    fn found(&self) -> String {
        match std::str::from_utf8(&self.s[self.i..]).ok().and_then(|t| t.chars().next()) {
            None if self.i >= self.s.len() => "end of file".into(),
            Some(c) => format!("{c:?}"),
            None => "invalid character".into(),
        }
    }

    fn skip_ws(&mut self) {
        while let Some(b) = self.peek() {
            match b {
                b' ' | b'\t' | b'\r' => self.i += 1,
                b'\n' => {
                    self.i += 1;
                    self.line += 1;
                    self.line_start = self.i;
                }
                _ => break,
            }
        }
    }

    fn value(&mut self, depth: usize) -> Result<Node, JsonError> {
        let pos = self.pos();
        let value = match self.peek() {
            Some(b'{') => self.object(depth + 1)?,
            Some(b'[') => self.array(depth + 1)?,
            Some(b'"') => Value::String(self.string()?),
            Some(b'-' | b'0'..=b'9') => self.number()?,
            Some(b't') => self.literal("true", Value::Bool(true))?,
            Some(b'f') => self.literal("false", Value::Bool(false))?,
            Some(b'n') => self.literal("null", Value::Null)?,
            _ => return Err(self.err(format!("expected a value, found {}", self.found()))),
        };
        Ok(Node { value, pos })
    }

    fn check_depth(&self, depth: usize) -> Result<(), JsonError> {
        if depth > MAX_DEPTH {
            return Err(self.err(format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        Ok(())
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, JsonError> {
        if self.s[self.i..].starts_with(word.as_bytes()) {
            self.i += word.len();
            Ok(value)
        } else {
            Err(self.err(format!("expected a value, found {}", self.found())))
        }
    }

    fn array(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.check_depth(depth)?;
        self.i += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.i += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.err(format!("expected ',' or ']', found {}", self.found()))),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, JsonError> {
        self.check_depth(depth)?;
        self.i += 1;
        let mut members: Vec<Member> = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.err(format!("expected a key string, found {}", self.found())));
            }
            let key_pos = self.pos();
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.err(format!("expected ':' after key, found {}", self.found())));
            }
            self.i += 1;
            self.skip_ws();
            let value = self.value(depth)?;
            if let Some(first) = members.iter().find(|m| m.key == key) {
                self.warnings.push(JsonWarning {
                    pos: key_pos,
                    message: format!(
                        "duplicate key \"{key}\" (first at line {}), the last one wins",
                        first.key_pos.line
                    ),
                });
            }
            members.push(Member { key, key_pos, value });
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {
                    self.i += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.err(format!("expected ',' or '}}', found {}", self.found()))),
            }
        }
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.i += 1; // opening quote
        let mut out = String::new();
        loop {
            let start = self.i;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.i += 1;
            }
            // The input is valid UTF-8 and we stopped at an ASCII byte, so this slice is too.
            out.push_str(std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default());
            match self.peek() {
                Some(b'"') => {
                    self.i += 1;
                    return Ok(out);
                }
                Some(b'\\') => out.push(self.escape()?),
                None => return Err(self.err("unterminated string")),
                Some(_) => return Err(self.err("control character in string")),
            }
        }
    }

    fn escape(&mut self) -> Result<char, JsonError> {
        self.i += 1;
        let c = match self.peek() {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => return self.unicode_escape(),
            _ => return Err(self.err(format!("invalid escape \\{}", self.found()))),
        };
        self.i += 1;
        Ok(c)
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let digits = self.s.get(self.i..self.i + 4).and_then(|d| std::str::from_utf8(d).ok());
        match digits.and_then(|d| u32::from_str_radix(d, 16).ok().filter(|_| !d.starts_with('+'))) {
            Some(v) => {
                self.i += 4;
                Ok(v)
            }
            None => Err(self.err("invalid \\u escape: expected 4 hex digits")),
        }
    }

    fn unicode_escape(&mut self) -> Result<char, JsonError> {
        self.i += 1; // 'u'
        let hi = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&hi) {
            if !self.s[self.i..].starts_with(b"\\u") {
                return Err(self.err("unpaired surrogate in \\u escape"));
            }
            self.i += 2;
            let lo = self.hex4()?;
            if !(0xDC00..0xE000).contains(&lo) {
                return Err(self.err("unpaired surrogate in \\u escape"));
            }
            0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
        } else {
            hi
        };
        char::from_u32(code).ok_or_else(|| self.err("unpaired surrogate in \\u escape"))
    }

    fn number(&mut self) -> Result<Value, JsonError> {
        let start = self.i;
        let digits = |p: &mut Self| {
            let s = p.i;
            while matches!(p.peek(), Some(b'0'..=b'9')) {
                p.i += 1;
            }
            p.i - s
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        let lead_zero = self.peek() == Some(b'0');
        let n = digits(self);
        if n == 0 || (lead_zero && n > 1) {
            return Err(self.err("invalid number"));
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if digits(self) == 0 {
                return Err(self.err("invalid number: digit expected after '.'"));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(self.err("invalid number: digit expected in exponent"));
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).unwrap_or_default();
        Ok(Value::Number(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &[u8]) -> JsonError {
        parse(input).expect_err("expected a parse error")
    }

    #[test]
    fn parses_values_with_positions() {
        let doc = parse(b"{\n  \"a\": [1, -2.5e3, true, null],\n  \"b\": \"x\\u00e9\\n\"\n}").unwrap();
        let Value::Object(m) = &doc.root.value else { panic!("not an object") };
        assert_eq!(m[0].key, "a");
        assert_eq!((m[0].key_pos.line, m[0].key_pos.col), (2, 3));
        assert_eq!((m[0].value.pos.line, m[0].value.pos.col), (2, 8));
        let Value::Array(items) = &m[0].value.value else { panic!("not an array") };
        assert_eq!(items[1].value, Value::Number("-2.5e3".into()));
        assert_eq!(items[2].value, Value::Bool(true));
        assert_eq!(items[3].value, Value::Null);
        assert_eq!(m[1].value.value, Value::String("x\u{e9}\n".into()));
        assert!(doc.warnings.is_empty());
    }

    #[test]
    fn comment_lines_and_comma_first_style() {
        let input = b"{\n  # a comment \"with quotes\n\"a\": 1\n\t# another\n, \"b\": 2\n}\n";
        let doc = parse(input).unwrap();
        let Value::Object(m) = &doc.root.value else { panic!("not an object") };
        assert_eq!(m.len(), 2);
        assert_eq!(m[1].key_pos.line, 5);
    }

    #[test]
    fn hash_inside_a_line_is_not_a_comment() {
        assert!(parse(b"{\"a\": 1 # no\n}").is_err());
        let doc = parse(b"{\"a\": \"#x\"}").unwrap();
        let Value::Object(m) = &doc.root.value else { panic!("not an object") };
        assert_eq!(m[0].value.value, Value::String("#x".into()));
    }

    #[test]
    fn duplicate_keys_warn() {
        let doc = parse(b"{\"a\": 1,\n\"a\": 2}").unwrap();
        assert_eq!(doc.warnings.len(), 1);
        assert_eq!(doc.warnings[0].pos.line, 2);
        assert!(doc.warnings[0].message.contains("duplicate key \"a\""));
    }

    #[test]
    fn empty_and_blank_and_comment_only_input() {
        assert_eq!(err(b"").message, "empty file");
        assert_eq!(err(b"  \n\t\n").message, "empty file");
        assert_eq!(err(b"# only a comment\n").message, "empty file");
    }

    #[test]
    fn invalid_utf8_names_offset() {
        let e = err(b"{\"a\":\n \"\xff\"}");
        assert_eq!(e.message, "invalid utf-8 at byte offset 8");
        assert_eq!((e.pos.line, e.pos.col), (2, 3));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = vec![b'['; 10 * 1024 * 1024];
        let e = err(&deep);
        assert!(e.message.contains("nesting deeper than 128"), "{e}");
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(ok.as_bytes()).is_ok());
        let objs = "{\"a\":".repeat(MAX_DEPTH + 1);
        assert!(err(objs.as_bytes()).message.contains("nesting"));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let e = err(b"{\n  \"a\": 1,\n}");
        assert_eq!((e.pos.line, e.pos.col), (3, 1));
        assert!(e.message.contains("expected a key string"), "{e}");
        assert!(err(b"[1 2]").message.contains("expected ',' or ']'"));
        assert!(err(b"{\"a\" 1}").message.contains("expected ':'"));
        assert!(err(b"\"abc").message.contains("unterminated string"));
        assert!(err(b"\"a\nb\"").message.contains("control character"));
        assert!(err(b"\"\\q\"").message.contains("invalid escape"));
        assert!(err(b"\"\\ud800\"").message.contains("surrogate"));
        assert!(err(b"01").message.contains("invalid number"));
        assert!(err(b"1.").message.contains("invalid number"));
        assert!(err(b"tru").message.contains("expected a value"));
        assert!(err(b"{} {}").message.contains("after the end"));
        assert!(err(b"[").message.contains("end of file"));
    }

    #[test]
    fn surrogate_pairs_decode() {
        let doc = parse(b"\"\\ud83d\\ude00\"").unwrap();
        assert_eq!(doc.root.value, Value::String("\u{1F600}".into()));
    }
}
