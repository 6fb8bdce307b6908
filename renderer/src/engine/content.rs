//! A content stream read for the few operations [`super::glyphs`] follows: which font is
//! set, what text it shows, which forms and patterns are drawn. A scanner of PDF's token
//! syntax (ISO 32000-1, 7.2 and 7.8.2) that keeps only those operands: lopdf's parser
//! builds an object for every number of every path, which made reading a page cost more
//! than cutting it from the group.

use crate::postprocess::syntax::{is_delimiter, is_whitespace, read_literal};

/// An operand, as far as the operations followed need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Operand {
    Name(Vec<u8>),
    String(Vec<u8>),
    /// An array's strings (a `TJ`'s text; its numbers are kerning).
    Array(Vec<Vec<u8>>),
    /// A number, boolean, null or dictionary.
    Other,
}

/// Calls `each` with every operator of `bytes` and its operands, in order.
pub(super) fn operations(
    bytes: &[u8],
    mut each: impl FnMut(&[u8], &[Operand]) -> Result<(), String>,
) -> Result<(), String> {
    let mut s = Scanner { bytes, at: 0 };
    let mut operands = Vec::new();
    while let Some(token) = s.token()? {
        match token {
            Token::Operand(o) => operands.push(o),
            Token::Operator(op) if op == b"BI" => {
                s.skip_inline_image()?;
                operands.clear();
            }
            Token::Operator(op) => {
                each(op, &operands)?;
                operands.clear();
            }
            Token::ArrayEnd => return Err(String::from("a content stream: unbalanced ]")),
        }
    }
    Ok(())
}

enum Token<'a> {
    Operand(Operand),
    Operator(&'a [u8]),
    ArrayEnd,
}

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
}

/// How deep arrays and dictionaries may nest among operands.
const MAX_NESTING: usize = 64;

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn skip_space(&mut self) {
        while let Some(b) = self.peek() {
            if is_whitespace(b) {
                self.at += 1;
            } else if b == b'%' {
                while self.peek().is_some_and(|b| b != b'\n' && b != b'\r') {
                    self.at += 1;
                }
            } else {
                break;
            }
        }
    }

    fn regular(&mut self) -> &'a [u8] {
        let start = self.at;
        while self.peek().is_some_and(|b| !is_whitespace(b) && !is_delimiter(b)) {
            self.at += 1;
        }
        &self.bytes[start..self.at]
    }

    fn token(&mut self) -> Result<Option<Token<'a>>, String> {
        self.token_at(0)
    }

    fn token_at(&mut self, depth: usize) -> Result<Option<Token<'a>>, String> {
        if depth > MAX_NESTING {
            return Err(String::from("a content stream: operands nest too deep"));
        }
        self.skip_space();
        let Some(b) = self.peek() else { return Ok(None) };
        let operand = match b {
            b'/' => {
                self.at += 1;
                Operand::Name(name(self.regular())?)
            }
            b'(' => {
                self.at += 1;
                Operand::String(self.literal()?)
            }
            b'<' if self.bytes.get(self.at + 1) == Some(&b'<') => {
                self.at += 2;
                self.dictionary(depth)?;
                Operand::Other
            }
            b'<' => {
                self.at += 1;
                Operand::String(self.hex()?)
            }
            b'[' => {
                self.at += 1;
                let mut strings = Vec::new();
                loop {
                    match self.token_at(depth + 1)? {
                        Some(Token::ArrayEnd) => break,
                        Some(Token::Operand(Operand::String(s))) => strings.push(s),
                        Some(Token::Operand(_)) => {}
                        Some(Token::Operator(_)) | None => {
                            return Err(String::from("a content stream: an unclosed array"));
                        }
                    }
                }
                Operand::Array(strings)
            }
            b']' => {
                self.at += 1;
                return Ok(Some(Token::ArrayEnd));
            }
            b')' | b'>' | b'{' | b'}' => {
                return Err(format!("a content stream: an unexpected {}", char::from(b)));
            }
            _ => {
                let word = self.regular();
                let numeric = word.first().is_some_and(|c| b"+-.0123456789".contains(c));
                if numeric || matches!(word, b"true" | b"false" | b"null") {
                    Operand::Other
                } else {
                    return Ok(Some(Token::Operator(word)));
                }
            }
        };
        Ok(Some(Token::Operand(operand)))
    }

    /// The rest of a dictionary after `<<`: keys and values skipped.
    fn dictionary(&mut self, depth: usize) -> Result<(), String> {
        loop {
            self.skip_space();
            if self.bytes[self.at..].starts_with(b">>") {
                self.at += 2;
                return Ok(());
            }
            match self.token_at(depth + 1)? {
                Some(Token::Operand(_)) => {}
                _ => return Err(String::from("a content stream: an unclosed dictionary")),
            }
        }
    }

    /// A literal string's bytes, after its `(`.
    fn literal(&mut self) -> Result<Vec<u8>, String> {
        let (out, read) =
            read_literal(&self.bytes[self.at..]).ok_or("a content stream: an unclosed string")?;
        self.at += read;
        Ok(out)
    }

    /// A hexadecimal string's bytes, after its `<`.
    fn hex(&mut self) -> Result<Vec<u8>, String> {
        let mut out = Vec::new();
        let mut high: Option<u8> = None;
        loop {
            let b = self.peek().ok_or("a content stream: an unclosed hex string")?;
            self.at += 1;
            let digit = match b {
                b'>' => break,
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                b'A'..=b'F' => b - b'A' + 10,
                b if is_whitespace(b) => continue,
                _ => return Err(String::from("a content stream: a bad hex string")),
            };
            match high.take() {
                Some(h) => out.push(h << 4 | digit),
                None => high = Some(digit),
            }
        }
        // An odd last digit is followed by a 0.
        if let Some(h) = high {
            out.push(h << 4);
        }
        Ok(out)
    }

    /// An inline image after `BI`: its dictionary up to `ID`, then its data up to the `EI`
    /// that stands alone between white space.
    fn skip_inline_image(&mut self) -> Result<(), String> {
        loop {
            match self.token()? {
                Some(Token::Operand(_)) => {}
                Some(Token::Operator(b"ID")) => break,
                _ => return Err(String::from("a content stream: an inline image without ID")),
            }
        }
        self.at += 1; // the one white-space byte after ID
        let data = self.bytes.get(self.at..).unwrap_or_default();
        let end = (0..data.len().saturating_sub(1))
            .find(|&p| {
                data[p..].starts_with(b"EI")
                    && p.checked_sub(1).is_none_or(|q| is_whitespace(data[q]))
                    && data.get(p + 2).is_none_or(|b| is_whitespace(*b))
            })
            .ok_or("a content stream: an inline image without EI")?;
        self.at += end + 2;
        Ok(())
    }
}

/// A name's bytes with its `#xx` escapes resolved.
fn name(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'#' {
            let hex = raw.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(byte.ok_or("a content stream: a bad # in a name")?);
            i += 3;
        } else {
            out.push(raw[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(bytes: &[u8]) -> Result<Vec<(String, Vec<Operand>)>, String> {
        let mut out = Vec::new();
        operations(bytes, |op, operands| {
            out.push((String::from_utf8_lossy(op).into_owned(), operands.to_vec()));
            Ok(())
        })?;
        Ok(out)
    }

    #[test]
    fn every_form_of_operand_is_read() {
        let stream = b"q 1 0 0 -1 0 792 cm % a comment ( not a string\n\
            /Span <</MCID 3 /Alt (x\\)) /Nested << /A [1 2] >> >> BDC\n\
            BT /F#31 12 Tf (a\\(b\\)\\\\c\\101\\0611\\\r\nd(e)f\rg) Tj\n\
            [<0001 02>-250<0a0>] TJ <> Tj ET EMC\n\
            BI /W 2 /H 1 /CS /G /BPC 8 ID \x00EI\xff EI Q\n\
            /P0 scn /Im1 Do true false null -.5 +3 d0";
        let ops = read(stream).unwrap();
        let names: Vec<&str> = ops.iter().map(|(op, _)| op.as_str()).collect();
        assert_eq!(
            names,
            ["q", "cm", "BDC", "BT", "Tf", "Tj", "TJ", "Tj", "ET", "EMC", "Q", "scn", "Do", "d0"]
        );
        let name = |n: &str| Operand::Name(n.as_bytes().to_vec());
        assert_eq!(ops[2].1, [name("Span"), Operand::Other]);
        assert_eq!(ops[4].1, [name("F1"), Operand::Other]);
        assert_eq!(ops[5].1, [Operand::String(b"a(b)\\cA11d(e)f\ng".to_vec())]);
        assert_eq!(ops[6].1, [Operand::Array(vec![vec![0, 1, 2], vec![0x0a, 0]])]);
        assert_eq!(ops[7].1, [Operand::String(Vec::new())]);
        assert_eq!(ops[11].1, [name("P0")]);
        assert_eq!(ops[13].1.len(), 5);
    }

    #[test]
    fn malformed_streams_are_refused_not_guessed() {
        for bad in [
            &b"(open Tj"[..],
            b"<0g> Tj",
            b"[ (a) TJ",
            b"] TJ",
            b"<< /A 1 Tf",
            b"BI /W 1 ID xx",
            b"/A#4 Tf",
            b") Tj",
        ] {
            assert!(read(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let deep = "[".repeat(100_000);
        assert!(read(deep.as_bytes()).is_err());
    }
}
