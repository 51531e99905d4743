//! Just enough MIME to read back what the adapters wrote: headers (unfolded, RFC 2047
//! words decoded), `multipart/*` parts, and bodies in 7bit, 8bit, quoted-printable or base64.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// A message or one part of it.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Part {
    pub(crate) fn parse(raw: &[u8]) -> Part {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a blank line after the headers");
        let head = std::str::from_utf8(&raw[..split]).expect("ASCII headers");
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                let last = headers.last_mut().expect("a header before a folded line");
                last.1.push_str(line);
            } else {
                let (name, value) = line.split_once(':').expect("name: value");
                headers.push((name.to_owned(), value.trim_start().to_owned()));
            }
        }
        Part {
            headers,
            body: raw[split + 4..].to_vec(),
        }
    }

    /// The header's value, unfolded, encoded words decoded; `None` when absent.
    pub(crate) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| decode_words(v))
    }

    /// How many times the header appears.
    pub(crate) fn count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }

    /// `text/plain`, `multipart/alternative`, ...: the media type without parameters.
    pub(crate) fn media_type(&self) -> String {
        let value = self.header("Content-Type").unwrap_or_default();
        value.split(';').next().unwrap().trim().to_ascii_lowercase()
    }

    /// The sub-parts of a multipart body.
    pub(crate) fn parts(&self) -> Vec<Part> {
        let content_type = self.header("Content-Type").expect("Content-Type");
        let boundary = content_type
            .split(';')
            .filter_map(|p| p.trim().strip_prefix("boundary="))
            .next()
            .expect("a boundary")
            .trim_matches('"')
            .to_owned();
        let body = String::from_utf8(self.body.clone()).expect("ASCII multipart body");
        let delimiter = format!("--{boundary}");
        let closing = format!("--{boundary}--");
        assert!(body.contains(&closing), "no closing delimiter in {body}");
        body.split(&delimiter)
            .skip(1)
            .take_while(|chunk| !chunk.starts_with("--"))
            .map(|chunk| {
                let chunk = chunk.strip_prefix("\r\n").expect("CRLF after a delimiter");
                let chunk = chunk.strip_suffix("\r\n").unwrap_or(chunk);
                Part::parse(chunk.as_bytes())
            })
            .collect()
    }

    /// The body, transfer-decoded, as UTF-8.
    pub(crate) fn text(&self) -> String {
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_else(|| "7bit".to_owned())
            .to_ascii_lowercase();
        let bytes = match encoding.as_str() {
            "7bit" | "8bit" | "binary" => self.body.clone(),
            "quoted-printable" => {
                quoted_printable::decode(&self.body, quoted_printable::ParseMode::Strict)
                    .expect("valid quoted-printable")
            }
            "base64" => {
                let compact: Vec<u8> = self
                    .body
                    .iter()
                    .copied()
                    .filter(|b| !b.is_ascii_whitespace())
                    .collect();
                STANDARD.decode(compact).expect("valid base64")
            }
            other => panic!("unexpected transfer encoding {other}"),
        };
        String::from_utf8(bytes).expect("UTF-8 body")
    }
}

/// Decodes RFC 2047 `=?utf-8?b?...?=` and `=?utf-8?q?...?=` words (white space between two
/// words is dropped, as the RFC says).
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, from) = rest.split_at(start);
        let Some(word) = parse_word(from) else {
            out.push_str(&rest[..start + 2]);
            rest = &rest[start + 2..];
            after_word = false;
            continue;
        };
        if !(after_word && before.trim().is_empty()) {
            out.push_str(before);
        }
        out.push_str(&word.0);
        rest = &from[word.1..];
        after_word = true;
    }
    out.push_str(rest);
    out
}

/// `(decoded text, length of the encoded word)`.
fn parse_word(s: &str) -> Option<(String, usize)> {
    let inner = s.strip_prefix("=?")?;
    let (charset, inner) = inner.split_once('?')?;
    let (encoding, inner) = inner.split_once('?')?;
    let end = inner.find("?=")?;
    let payload = &inner[..end];
    if !charset.eq_ignore_ascii_case("utf-8") {
        return None;
    }
    let bytes = match encoding {
        "b" | "B" => STANDARD.decode(payload).ok()?,
        "q" | "Q" => quoted_printable::decode(
            payload.replace('_', " "),
            quoted_printable::ParseMode::Strict,
        )
        .ok()?,
        _ => return None,
    };
    let consumed = s.len() - inner.len() + end + 2;
    Some((String::from_utf8(bytes).ok()?, consumed))
}

#[test]
fn encoded_words_decode() {
    assert_eq!(decode_words("plain"), "plain");
    assert_eq!(decode_words("=?utf-8?b?w6k=?= x"), "é x");
    assert_eq!(
        decode_words("=?utf-8?b?w6k=?= =?utf-8?q?=C3=A9_y?="),
        "éé y"
    );
}
