//! Tokens of one policy line.

use super::error::ErrorKind;
use super::ir::{ArgPart, ArgRef};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Ident(String),
    Int(u64),
    Arg(ArgRef),
    LParen,
    RParen,
    LBrack,
    RBrack,
    Comma,
    Colon,
    Semi,
    Assign,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Amp,
    /// `&?`, the bit-test operator.
    AmpQ,
    Pipe,
    Caret,
    Tilde,
    Shl,
    Shr,
    AndAnd,
    OrOr,
    Bang,
    EqEq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl Tok {
    /// How the token appears in error messages.
    pub fn describe(&self) -> String {
        let s = match self {
            Tok::Ident(name) => return format!("'{name}'"),
            Tok::Int(n) => return format!("number {n}"),
            Tok::Arg(a) => return format!("'{}'", describe_arg(*a)),
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBrack => "[",
            Tok::RBrack => "]",
            Tok::Comma => ",",
            Tok::Colon => ":",
            Tok::Semi => ";",
            Tok::Assign => "=",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Amp => "&",
            Tok::AmpQ => "&?",
            Tok::Pipe => "|",
            Tok::Caret => "^",
            Tok::Tilde => "~",
            Tok::Shl => "<<",
            Tok::Shr => ">>",
            Tok::AndAnd => "&&",
            Tok::OrOr => "||",
            Tok::Bang => "!",
            Tok::EqEq => "==",
            Tok::Ne => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
        };
        format!("'{s}'")
    }
}

fn describe_arg(a: ArgRef) -> String {
    let part = match a.part {
        ArgPart::Full => "",
        ArgPart::High => "H",
        ArgPart::Low => "L",
    };
    format!("arg{part}{}", a.index)
}

/// A token and its 1-based column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub tok: Tok,
    pub col: u32,
}

/// Splits one line (without its newline) into tokens. A `#` starts a comment.
/// On error returns the 1-based column and what is wrong.
pub fn tokenize(line: &str) -> Result<Vec<Token>, (u32, ErrorKind)> {
    let chars: Vec<char> = line.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let col = i as u32 + 1;
        if c == '#' {
            break;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let (tok, len) = if c.is_ascii_alphabetic() || c == '_' {
            word(&chars[i..])
        } else if c.is_ascii_digit() {
            number(&chars[i..]).map_err(|kind| (col, kind))?
        } else {
            punct(&chars[i..]).ok_or((col, ErrorKind::InvalidCharacter(c)))?
        };
        out.push(Token { tok, col });
        i += len;
    }
    Ok(out)
}

fn word(chars: &[char]) -> (Tok, usize) {
    let len = chars.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == '_').count();
    let text: String = chars[..len].iter().collect();
    let tok = arg_ref(&text).map(Tok::Arg).unwrap_or(Tok::Ident(text));
    (tok, len)
}

/// `arg0`..`arg5`, `argH0`..`argH5`, `argL0`..`argL5`.
fn arg_ref(text: &str) -> Option<ArgRef> {
    let rest = text.strip_prefix("arg")?;
    let (part, digit) = match rest.as_bytes() {
        [d] => (ArgPart::Full, *d),
        [b'H', d] => (ArgPart::High, *d),
        [b'L', d] => (ArgPart::Low, *d),
        _ => return None,
    };
    match digit {
        b'0'..=b'5' => Some(ArgRef { index: digit - b'0', part }),
        _ => None,
    }
}

fn number(chars: &[char]) -> Result<(Tok, usize), ErrorKind> {
    let len = chars.iter().take_while(|c| c.is_ascii_alphanumeric() || **c == '_').count();
    let text: String = chars[..len].iter().collect();
    let lower = text.to_ascii_lowercase();
    let parsed = if let Some(hex) = lower.strip_prefix("0x") {
        u64::from_str_radix(hex, 16)
    } else if let Some(bin) = lower.strip_prefix("0b") {
        u64::from_str_radix(bin, 2)
    } else if lower.len() > 1 && lower.starts_with('0') {
        u64::from_str_radix(&lower[1..], 8)
    } else {
        lower.parse::<u64>()
    };
    match parsed {
        Ok(n) => Ok((Tok::Int(n), len)),
        Err(e) if *e.kind() == std::num::IntErrorKind::PosOverflow => Err(ErrorKind::NumberOverflow(text)),
        Err(_) => Err(ErrorKind::InvalidNumber(text)),
    }
}

fn punct(chars: &[char]) -> Option<(Tok, usize)> {
    let next = chars.get(1).copied().unwrap_or('\0');
    let two = match (chars[0], next) {
        ('&', '&') => Some(Tok::AndAnd),
        ('&', '?') => Some(Tok::AmpQ),
        ('|', '|') => Some(Tok::OrOr),
        ('=', '=') => Some(Tok::EqEq),
        ('!', '=') => Some(Tok::Ne),
        ('<', '=') => Some(Tok::Le),
        ('>', '=') => Some(Tok::Ge),
        ('<', '<') => Some(Tok::Shl),
        ('>', '>') => Some(Tok::Shr),
        _ => None,
    };
    if let Some(tok) = two {
        return Some((tok, 2));
    }
    let one = match chars[0] {
        '(' => Tok::LParen,
        ')' => Tok::RParen,
        '[' => Tok::LBrack,
        ']' => Tok::RBrack,
        ',' => Tok::Comma,
        ':' => Tok::Colon,
        ';' => Tok::Semi,
        '=' => Tok::Assign,
        '+' => Tok::Plus,
        '-' => Tok::Minus,
        '*' => Tok::Star,
        '/' => Tok::Slash,
        '%' => Tok::Percent,
        '&' => Tok::Amp,
        '|' => Tok::Pipe,
        '^' => Tok::Caret,
        '~' => Tok::Tilde,
        '!' => Tok::Bang,
        '<' => Tok::Lt,
        '>' => Tok::Gt,
        _ => return None,
    };
    Some((one, 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(line: &str) -> Vec<Tok> {
        tokenize(line).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn literals_in_every_base() {
        assert_eq!(
            toks("42 0x2A 0X2a 052 0b101010 0"),
            vec![Tok::Int(42); 5].into_iter().chain([Tok::Int(0)]).collect::<Vec<_>>()
        );
    }

    #[test]
    fn operators_and_columns() {
        let t = tokenize("a&?b && c|d != e # comment").unwrap();
        let cols: Vec<u32> = t.iter().map(|t| t.col).collect();
        assert_eq!(cols, vec![1, 2, 4, 6, 9, 10, 11, 13, 16]);
        assert_eq!(t[1].tok, Tok::AmpQ);
        assert_eq!(t[3].tok, Tok::AndAnd);
        assert_eq!(t[5].tok, Tok::Pipe);
    }

    #[test]
    fn arguments() {
        assert_eq!(
            toks("arg0 argH5 argL1 arg6 args"),
            vec![
                Tok::Arg(ArgRef { index: 0, part: ArgPart::Full }),
                Tok::Arg(ArgRef { index: 5, part: ArgPart::High }),
                Tok::Arg(ArgRef { index: 1, part: ArgPart::Low }),
                Tok::Ident("arg6".into()),
                Tok::Ident("args".into()),
            ]
        );
    }

    #[test]
    fn bad_numbers_and_characters() {
        assert_eq!(tokenize("  089").unwrap_err(), (3, ErrorKind::InvalidNumber("089".into())));
        assert_eq!(
            tokenize("0x1ffffffffffffffff").unwrap_err().1,
            ErrorKind::NumberOverflow("0x1ffffffffffffffff".into())
        );
        assert_eq!(tokenize("a @").unwrap_err(), (3, ErrorKind::InvalidCharacter('@')));
    }
}
