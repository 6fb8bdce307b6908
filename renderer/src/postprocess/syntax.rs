//! PDF objects read from and written to bytes (ISO 32000-1, 7.3), for the objects the
//! post-processing stage writes itself: the ones it adds or changes in an incremental update,
//! and every object of a document it writes whole (a batch's). lopdf keeps numbers as `f32`
//! and writes them shortest-first (`595.92`); Chromium (Skia) writes the same `f32` with up
//! to nine digits (`595.91998`), and a reader parses those as `f64`, so lopdf's spelling moves
//! every box by a few millionths of a point and rasterised pages by a pixel here and there.
//! [`real`] writes them as Skia does.

use lopdf::{Dictionary, Object, Stream, StringFormat};

/// Deeper than this, an object is not read (arrays and dictionaries nest without end).
const MAX_DEPTH: usize = 64;

/// Writes `object` in PDF syntax.
pub(super) fn write(out: &mut Vec<u8>, object: &Object) {
    match object {
        Object::Null => out.extend_from_slice(b"null"),
        Object::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Object::Integer(i) => integer(out, *i),
        Object::Real(r) => real(out, *r),
        Object::Name(name) => write_name(out, name),
        Object::String(bytes, StringFormat::Literal) => literal(out, bytes),
        Object::String(bytes, StringFormat::Hexadecimal) => {
            out.push(b'<');
            out.extend(bytes.iter().flat_map(|b| hex_digits(*b)));
            out.push(b'>');
        }
        Object::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                write(out, item);
            }
            out.push(b']');
        }
        Object::Dictionary(dict) => dictionary(out, dict, None),
        Object::Stream(stream) => {
            dictionary(out, &stream.dict, Some(stream.content.len()));
            out.extend_from_slice(b"\nstream\n");
            out.extend_from_slice(&stream.content);
            out.extend_from_slice(b"\nendstream");
        }
        Object::Reference((number, generation)) => {
            integer(out, i64::from(*number));
            out.push(b' ');
            integer(out, i64::from(*generation));
            out.extend_from_slice(b" R");
        }
    }
}

/// `<<...>>`, one entry a line as Chromium writes them; a stream's `/Length` is its data's.
fn dictionary(out: &mut Vec<u8>, dict: &Dictionary, length: Option<usize>) {
    out.extend_from_slice(b"<<");
    let mut first = true;
    for (key, value) in dict.iter() {
        if length.is_some() && key.as_slice() == b"Length" {
            continue;
        }
        if !first {
            out.push(b'\n');
        }
        first = false;
        write_name(out, key);
        out.push(b' ');
        write(out, value);
    }
    if let Some(length) = length {
        if !first {
            out.push(b'\n');
        }
        out.extend_from_slice(b"/Length ");
        integer(out, i64::try_from(length).unwrap_or(i64::MAX));
    }
    out.extend_from_slice(b">>");
}

pub(super) fn integer(out: &mut Vec<u8>, i: i64) {
    out.extend_from_slice(i.to_string().as_bytes());
}

fn hex_digits(b: u8) -> [u8; 2] {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]
}

fn write_name(out: &mut Vec<u8>, name: &[u8]) {
    out.push(b'/');
    for &b in name {
        if (0x21..=0x7e).contains(&b) && !is_delimiter(b) && b != b'#' {
            out.push(b);
        } else {
            out.push(b'#');
            out.extend_from_slice(&hex_digits(b));
        }
    }
}

fn literal(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'(');
    for &b in bytes {
        match b {
            b'(' | b')' | b'\\' => out.extend_from_slice(&[b'\\', b]),
            // A bare CR would be read as a line end (LF).
            b'\r' => out.extend_from_slice(b"\\r"),
            b => out.push(b),
        }
    }
    out.push(b')');
}

/// `value` as Skia's `SkFloatToDecimal` writes it (skia/src/utils/SkFloatToDecimal.cpp): nine
/// significant digits (eight past 167772159), trailing zeros dropped, no exponent, no leading
/// zero, infinities as the largest finite `f32`, NaN as 0. The same arithmetic in the same
/// order, so that every number reads back as Chromium wrote it.
pub(super) fn real(out: &mut Vec<u8>, value: f32) {
    // Skia's buffer: 48 characters at most (the digits of a denormal stop there).
    const MAX_LEN: usize = 48;
    let mut value = match value {
        f32::INFINITY => f32::MAX,
        f32::NEG_INFINITY => -f32::MAX,
        v => v,
    };
    if !value.is_finite() || value == 0.0 {
        out.push(b'0');
        return;
    }
    let start = out.len();
    if value < 0.0 {
        out.push(b'-');
        value = -value;
    }
    let value = f64::from(value);
    // Skia's `kLog2`, 0.3010299956639812: the same double.
    let log2 = std::f64::consts::LOG10_2;
    let decimal_exponent = (log2 * f64::from(frexp_exponent(value))).floor();
    // Within ±50: an f32's decimal exponent.
    let decimal_exponent = decimal_exponent as i32;
    let mut shift = decimal_exponent - 8;
    let power = pow10(-shift);
    // Below 10^9 (nine digits), as Skia's `int`.
    let mut d = (value * power + 0.5) as i64;
    if d > 167_772_159 {
        // One digit fewer for 24 bits of precision.
        shift = decimal_exponent - 7;
        d = (value * (power * 0.1) + 0.5) as i64;
    }
    if d <= 0 {
        // Never for a finite non-zero f32; a number all the same.
        out.truncate(start);
        out.push(b'0');
        return;
    }
    while d % 10 == 0 {
        d /= 10;
        shift += 1;
    }
    let digits = d.to_string();
    let digits = digits.as_bytes();
    let len = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    if shift >= 0 {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', usize::try_from(shift).unwrap_or(0)));
        return;
    }
    let before = len + shift;
    let mut rest = digits;
    if before > 0 {
        let (int, frac) = digits.split_at(usize::try_from(before).unwrap_or(0).min(digits.len()));
        out.extend_from_slice(int);
        rest = frac;
        out.push(b'.');
    } else {
        out.push(b'.');
        out.extend(std::iter::repeat_n(b'0', usize::try_from(-before).unwrap_or(0)));
    }
    for &digit in rest {
        out.push(digit);
        if out.len() - start == MAX_LEN {
            break;
        }
    }
}

/// The exponent `std::frexp` gives: `value = m · 2^e`, `0.5 ≤ m < 1`, for a positive finite
/// `value` (an `f32`'s denormals are normal as `f64`).
fn frexp_exponent(value: f64) -> i32 {
    let biased = i32::try_from((value.to_bits() >> 52) & 0x7ff).unwrap_or(0);
    biased - 1022
}

/// Skia's `pow10`: exact for 0..=15, by squaring beyond (not `powi`, whose rounding differs).
fn pow10(e: i32) -> f64 {
    const EXACT: [f64; 16] =
        [1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];
    match usize::try_from(e) {
        Ok(i) if i < EXACT.len() => EXACT[i],
        Ok(_) => pow_by_squaring(1e15, 10.0, e - 15),
        Err(_) => pow_by_squaring(1.0, 0.1, -e),
    }
}

/// `value · base^e` for `e > 0`, as Skia computes it.
fn pow_by_squaring(mut value: f64, mut base: f64, mut e: i32) -> f64 {
    loop {
        if e & 1 == 1 {
            value *= base;
        }
        e >>= 1;
        if e == 0 {
            return value;
        }
        base *= base;
    }
}

pub(crate) fn is_whitespace(b: u8) -> bool {
    matches!(b, b'\0' | b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

pub(crate) fn is_delimiter(b: u8) -> bool {
    matches!(b, b'(' | b')' | b'<' | b'>' | b'[' | b']' | b'{' | b'}' | b'/' | b'%')
}

/// A literal string's bytes (ISO 32000-1, 7.3.4.2), `bytes` starting after its `(`: the
/// bytes, and how many were read with its `)`; `None` when it is not closed. The content
/// streams' scanner (`engine::content`) reads its strings with this too.
pub(crate) fn read_literal(bytes: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut at = 0;
    let mut out = Vec::new();
    let mut open = 0usize;
    loop {
        let b = bytes.get(at).copied()?;
        at += 1;
        match b {
            b'(' => {
                open += 1;
                out.push(b);
            }
            b')' if open == 0 => return Some((out, at)),
            b')' => {
                open -= 1;
                out.push(b);
            }
            b'\\' => {
                let e = bytes.get(at).copied()?;
                at += 1;
                match e {
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b't' => out.push(b'\t'),
                    b'b' => out.push(b'\x08'),
                    b'f' => out.push(b'\x0c'),
                    b'0'..=b'7' => {
                        let mut code = u32::from(e - b'0');
                        for _ in 0..2 {
                            match bytes.get(at).copied() {
                                Some(d @ b'0'..=b'7') => {
                                    code = code * 8 + u32::from(d - b'0');
                                    at += 1;
                                }
                                _ => break,
                            }
                        }
                        out.push((code & 0xff) as u8);
                    }
                    // A line continued: the line end is no part of the string.
                    b'\r' => {
                        if bytes.get(at).copied() == Some(b'\n') {
                            at += 1;
                        }
                    }
                    b'\n' => {}
                    other => out.push(other),
                }
            }
            // A line end in the string is a LF, however it is written.
            b'\r' => {
                if bytes.get(at).copied() == Some(b'\n') {
                    at += 1;
                }
                out.push(b'\n');
            }
            b => out.push(b),
        }
    }
}

/// Reads objects from `bytes`. Every method answers `None` for what it cannot read (the
/// caller then reads the file with lopdf); none panics on any input.
pub(super) struct Parser<'a> {
    bytes: &'a [u8],
    pub(super) pos: usize,
}

impl<'a> Parser<'a> {
    pub(super) fn new(bytes: &'a [u8], pos: usize) -> Self {
        Self { bytes, pos }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Skips whitespace and comments.
    pub(super) fn skip_space(&mut self) {
        while let Some(b) = self.peek() {
            if is_whitespace(b) {
                self.pos += 1;
            } else if b == b'%' {
                while self.peek().is_some_and(|b| b != b'\n' && b != b'\r') {
                    self.pos += 1;
                }
            } else {
                break;
            }
        }
    }

    /// The keyword `word` (and no longer word) next, consumed.
    pub(super) fn keyword(&mut self, word: &[u8]) -> bool {
        self.skip_space();
        let end = self.pos + word.len();
        let here = self.bytes.get(self.pos..end) == Some(word);
        let ends = self.bytes.get(end).is_none_or(|b| is_whitespace(*b) || is_delimiter(*b));
        if here && ends {
            self.pos = end;
        }
        here && ends
    }

    /// An unsigned integer (a number of the file's structure: object numbers, offsets).
    pub(super) fn unsigned(&mut self) -> Option<u64> {
        self.skip_space();
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits = std::str::from_utf8(self.bytes.get(start..self.pos)?).ok()?;
        digits.parse().ok()
    }

    /// `number generation obj` and the object after it: a stream only with a direct
    /// `/Length`. The numbers must be `id`'s.
    pub(super) fn indirect(&mut self, id: lopdf::ObjectId) -> Option<Object> {
        let number = self.unsigned()?;
        let generation = self.unsigned()?;
        if number != u64::from(id.0) || generation != u64::from(id.1) || !self.keyword(b"obj") {
            return None;
        }
        let object = self.object()?;
        let Object::Dictionary(dict) = object else { return Some(object) };
        let before = self.pos;
        if !self.keyword(b"stream") {
            self.pos = before;
            return Some(Object::Dictionary(dict));
        }
        // The data starts after CRLF or LF (7.3.8.1).
        match self.peek() {
            Some(b'\r') if self.bytes.get(self.pos + 1) == Some(&b'\n') => self.pos += 2,
            Some(b'\n') => self.pos += 1,
            _ => return None,
        }
        let length = usize::try_from(dict.get(b"Length").ok()?.as_i64().ok()?).ok()?;
        let content = self.bytes.get(self.pos..self.pos.checked_add(length)?)?.to_vec();
        let mut stream = Stream::new(dict, content);
        stream.allows_compression = false;
        Some(Object::Stream(stream))
    }

    /// One direct object.
    pub(super) fn object(&mut self) -> Option<Object> {
        self.object_at(0)
    }

    fn object_at(&mut self, depth: usize) -> Option<Object> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_space();
        match self.peek()? {
            b'/' => self.name().map(Object::Name),
            b'(' => self.literal_string(),
            b'<' if self.bytes.get(self.pos + 1) == Some(&b'<') => {
                self.pos += 2;
                let mut dict = Dictionary::new();
                loop {
                    self.skip_space();
                    if self.bytes.get(self.pos..self.pos + 2) == Some(b">>") {
                        self.pos += 2;
                        return Some(Object::Dictionary(dict));
                    }
                    if self.peek()? != b'/' {
                        return None;
                    }
                    let key = self.name()?;
                    let value = self.object_at(depth + 1)?;
                    dict.set(key, value);
                }
            }
            b'<' => self.hex_string(),
            b'[' => {
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_space();
                    if self.peek()? == b']' {
                        self.pos += 1;
                        return Some(Object::Array(items));
                    }
                    items.push(self.object_at(depth + 1)?);
                }
            }
            b'+' | b'-' | b'.' | b'0'..=b'9' => self.number_or_reference(),
            _ if self.keyword(b"true") => Some(Object::Boolean(true)),
            _ if self.keyword(b"false") => Some(Object::Boolean(false)),
            _ if self.keyword(b"null") => Some(Object::Null),
            _ => None,
        }
    }

    fn name(&mut self) -> Option<Vec<u8>> {
        self.pos += 1;
        let mut name = Vec::new();
        while let Some(b) = self.peek() {
            if is_whitespace(b) || is_delimiter(b) {
                break;
            }
            self.pos += 1;
            if b == b'#' {
                let hex = self.bytes.get(self.pos..self.pos + 2)?;
                name.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                self.pos += 2;
            } else {
                name.push(b);
            }
        }
        Some(name)
    }

    fn literal_string(&mut self) -> Option<Object> {
        let (out, read) = read_literal(self.bytes.get(self.pos + 1..)?)?;
        self.pos += 1 + read;
        Some(Object::String(out, StringFormat::Literal))
    }

    fn hex_string(&mut self) -> Option<Object> {
        self.pos += 1;
        let mut digits = Vec::new();
        loop {
            let b = self.peek()?;
            self.pos += 1;
            match b {
                b'>' => break,
                b if is_whitespace(b) => {}
                b => digits.push(char::from(b).to_digit(16)? as u8),
            }
        }
        if digits.len() % 2 == 1 {
            digits.push(0);
        }
        let bytes = digits.chunks_exact(2).map(|p| p[0] << 4 | p[1]).collect();
        Some(Object::String(bytes, StringFormat::Hexadecimal))
    }

    fn number_or_reference(&mut self) -> Option<Object> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')) {
            self.pos += 1;
        }
        let text = std::str::from_utf8(self.bytes.get(start..self.pos)?).ok()?;
        if text.contains('.') {
            return text.parse::<f32>().ok().map(Object::Real);
        }
        let int: i64 = text.parse().ok()?;
        // `number generation R`
        let after = self.pos;
        let reference = (|| {
            let number = u32::try_from(int).ok()?;
            self.skip_space();
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            let generation = u16::try_from(self.unsigned()?).ok()?;
            self.keyword(b"R").then_some(Object::Reference((number, generation)))
        })();
        match reference {
            Some(r) => Some(r),
            None => {
                self.pos = after;
                Some(Object::Integer(int))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(value: f32) -> String {
        let mut out = Vec::new();
        real(&mut out, value);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn reals_are_written_as_skia_writes_them() {
        // As Chromium 156 wrote them (A4's box; a centimetre), and Skia's port run elsewhere.
        for (value, skia) in [
            (595.92, "595.91998"),
            (841.92, "841.91998"),
            (28.346457, "28.346457"),
            (0.5, ".5"),
            (-1.5, "-1.5"),
            (612.0, "612"),
            (0.01, ".0099999998"),
            (0.1, ".100000001"),
            (1_234_567.8, "1234567.75"),
            (123_456_789.0, "123456792"),
        ] {
            assert_eq!(text(value), skia, "{value}");
            assert_eq!(skia.parse::<f32>().unwrap(), value);
        }
        // lopdf's spelling of the same f32: another number to a reader that parses f64.
        assert_eq!(595.92f32.to_string(), "595.92");
        assert_eq!(text(0.0), "0");
        assert_eq!(text(f32::NAN), "0");
        assert_eq!(text(f32::INFINITY), text(f32::MAX));
        assert_eq!(text(f32::MAX), "340282350000000000000000000000000000000");
        assert_eq!(text(-f32::MIN_POSITIVE), "-.0000000000000000000000000000000000000117549435");
        // Denormals stop at Skia's 48 characters.
        assert_eq!(text(f32::from_bits(1)), format!(".{}140", "0".repeat(44)));
    }

    #[test]
    fn every_f32_written_reads_back_as_itself() {
        let mut state = 0x9e37_79b9_u32;
        for _ in 0..200_000 {
            // xorshift: bit patterns across every exponent.
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let value = f32::from_bits(state);
            if !value.is_finite() || value.is_subnormal() {
                continue;
            }
            let written = text(value);
            assert!(!written.contains('e'), "{written}");
            assert_eq!(written.parse::<f32>().unwrap(), value, "{written}");
        }
    }

    #[test]
    fn objects_read_back_as_they_were_written() {
        let source = b"<</Type /Catalog\n/Pages 3 0 R /Lang (en \\(GB\\)\\\\\\101) /Empty ()\
            /K [1 -2 +3 .5 -.25 4. 12 0 R true false null <FEFF00e9> <</A#20B /x>>]\
            /MarkInfo <</Marked true>> % a comment\n/N 5>>";
        let object = Parser::new(source, 0).object().unwrap();
        let dict = object.as_dict().unwrap();
        assert_eq!(dict.get(b"Pages").unwrap(), &Object::Reference((3, 0)));
        assert_eq!(dict.get(b"Lang").unwrap().as_str().unwrap(), b"en (GB)\\A");
        let k = dict.get(b"K").unwrap().as_array().unwrap();
        assert_eq!(k[0..3], [Object::Integer(1), Object::Integer(-2), Object::Integer(3)]);
        assert_eq!(k[3..6], [Object::Real(0.5), Object::Real(-0.25), Object::Real(4.0)]);
        assert_eq!(k[6], Object::Reference((12, 0)));
        assert_eq!(k[10], Object::String(vec![0xfe, 0xff, 0, 0xe9], StringFormat::Hexadecimal));
        assert!(k[11].as_dict().unwrap().has(b"A B"));
        assert_eq!(dict.get(b"N").unwrap(), &Object::Integer(5));
        let mut written = Vec::new();
        write(&mut written, &object);
        // The same object but for `4.`, which Skia (and so this writer) spells `4`.
        let again = Parser::new(&written, 0).object().unwrap();
        let k_again = again.as_dict().unwrap().get(b"K").unwrap().as_array().unwrap();
        assert_eq!(k_again[5], Object::Integer(4));
        let mut rewritten = Vec::new();
        write(&mut rewritten, &again);
        assert_eq!(String::from_utf8_lossy(&rewritten), String::from_utf8_lossy(&written));
        let mut dict = dict.clone();
        dict.remove(b"K");
        let mut again = again.as_dict().unwrap().clone();
        again.remove(b"K");
        assert_eq!(again, dict);
    }

    #[test]
    fn bad_input_is_refused_never_a_panic() {
        for bad in [
            &b"<</A"[..],
            b"[1 2",
            b"(open",
            b"<4G>",
            b"/A#4",
            b"<< 1 2 >>",
            b"99999999999999999999999",
            b"",
            b"endobj",
        ] {
            assert_eq!(Parser::new(bad, 0).object(), None, "{:?}", String::from_utf8_lossy(bad));
        }
        let deep = "[".repeat(10_000);
        assert_eq!(Parser::new(deep.as_bytes(), 0).object(), None);
        let mut p = Parser::new(b"7 0 obj\n<</Length 99>>\nstream\nshort\nendstream", 0);
        assert_eq!(p.indirect((7, 0)), None, "data shorter than its /Length");
        let mut p = Parser::new(b"7 0 obj\n<</Length 5>>\nstream\nshort\nendstream", 0);
        assert_eq!(p.indirect((7, 0)).unwrap().as_stream().unwrap().content, b"short");
        assert_eq!(Parser::new(b"8 0 obj 1 endobj", 0).indirect((7, 0)), None);
    }
}
